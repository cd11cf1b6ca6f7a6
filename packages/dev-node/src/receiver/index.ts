// @power-meter/dev-node/receiver: the dev receivers alone (v1 event route, v2 apinode), without the
// applet host and its database: what `power-meter dev-receiver` loads.
export { defineDevReceiverCommand } from './command.js';
export type { DevReceiverCommandIo } from './command.js';
export { DEV_ANSWER_MODES_TASK, checkTask, taskAnswer, taskStatusBody } from './receiver-task.js';
export type { DevProject, DevProjects, DevTask, TaskCheck, TaskStateLog } from './receiver-task.js';
export { DEV_ANSWER_MODES_V2, V2_ROUTE, answerMessageV2 } from './receiver-v2.js';
export { ApprovalSyntaxError, parseApproval, staticApprovals } from './approvals.js';
export type { StaticApprovalOptions } from './approvals.js';
export { DEV_ANSWER_MODES, answerEvent, startDevReceiver } from './receiver.js';
export type { AnswerConfig, DevReceiver, DevReceiverOptions } from './receiver.js';
export type { DevAnswerMode, EventAnswer, EventRequest, ReceivedEvent } from './exchange.js';
