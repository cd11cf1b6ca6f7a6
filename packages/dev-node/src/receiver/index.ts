// @power-meter/dev-node/receiver: the dev receivers alone (v1 event route, v2 apinode), without the
// applet host and its database: what `power-meter dev-receiver` loads.
export { defineDevReceiverCommand } from './command.js';
export type { DevReceiverCommandIo } from './command.js';
