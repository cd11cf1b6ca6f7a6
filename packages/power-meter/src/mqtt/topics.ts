/**
 * Topic names and identifiers, pure. One meter owns `<prefix>/<device address>/…`:
 *
 *   availability  `online` / `offline` (retained; `offline` is also the broker-held last will)
 *   power         {"powerW", "busV", "currentA"}: live figures, at most every --mqtt-power-interval (retained)
 *   window        the last window and the totals, once per window (retained)
 *   status        publishing and sensor state, on every change (retained)
 *   balance       the on-chain reward balance, when it is read (--rpc-url; retained)
 *   reading       each signed reading body, with --mqtt-readings (not retained)
 *
 * and one retained Home Assistant discovery config per entity under
 * `<discovery prefix>/sensor/<node id>/<entity>/config`.
 */
export interface MeterTopics {
  availability: string;
  power: string;
  window: string;
  status: string;
  balance: string;
  reading: string;
}

export function meterTopics(prefix: string, deviceAddress: string): MeterTopics {
  const base = `${prefix}/${deviceAddress.toLowerCase()}`;
  return {
    availability: `${base}/availability`,
    power: `${base}/power`,
    window: `${base}/window`,
    status: `${base}/status`,
    balance: `${base}/balance`,
    reading: `${base}/reading`,
  };
}

/** Home Assistant's node id: only `[a-zA-Z0-9_-]` is allowed in a discovery topic level. */
export function nodeId(deviceAddress: string): string {
  return `power_meter_${hex(deviceAddress)}`;
}

/** The last six hex digits: enough to tell a household's meters apart in names and entity ids. */
export function shortId(deviceAddress: string): string {
  return hex(deviceAddress).slice(-6);
}

export function discoveryTopic(discoveryPrefix: string, deviceAddress: string, entity: string): string {
  return `${discoveryPrefix}/sensor/${nodeId(deviceAddress)}/${entity}/config`;
}

/** Home Assistant publishes `online` here when it (re)starts: the cue to send discovery again. */
export function homeAssistantStatusTopic(discoveryPrefix: string): string {
  return `${discoveryPrefix}/status`;
}

/**
 * The daemon's client id, stable per device (the broker then replaces a half-dead earlier
 * session of the same meter instead of keeping two). Other processes (doctor) must use another.
 */
export function clientId(deviceAddress: string): string {
  return `power-meter-${hex(deviceAddress)}`;
}

function hex(deviceAddress: string): string {
  const h = deviceAddress.toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{40}$/.test(h)) throw new Error(`not a device address: ${deviceAddress}`);
  return h;
}
