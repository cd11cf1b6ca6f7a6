import { discoveryTopic, meterTopics, nodeId, shortId, type MeterTopics } from './topics.js';

/**
 * Home Assistant MQTT discovery, pure: one retained config per entity, all tied to one device
 * (the meter's address). Keys are Home Assistant's documented sensor options, unabbreviated so
 * a person reading the broker understands them. `default_entity_id` replaces the deprecated
 * `object_id` (Home Assistant 2025.10; `object_id` stops working in 2026.4). What each choice
 * below rests on (units, expiry, timestamps, the kWh migration) is in docs/home-assistant.md.
 *
 * The Energy dashboard accepts a sensor with `device_class: energy`, `state_class:
 * total_increasing` and an energy unit: `energy` below. Its value is the meter's stored total,
 * which never decreases (a decrease would read as a meter reset and show as a huge spike).
 */
export interface EntitySpec {
  /** Entity key: last level of the discovery topic, suffix of unique_id and entity id. */
  key: string;
  name: string;
  topic: keyof Pick<MeterTopics, 'power' | 'window' | 'status' | 'balance'>;
  /** Field of the JSON payload on that topic. */
  field: string;
  deviceClass?: 'power' | 'energy' | 'voltage' | 'current' | 'timestamp' | 'enum';
  stateClass?: 'measurement' | 'total_increasing';
  unit?: string;
  precision?: number;
  diagnostic?: boolean;
  options?: string[];
  icon?: string;
  /** A live figure: Home Assistant shows it unavailable when no update came for `expire_after` s. */
  live?: boolean;
  /** Created disabled: the user enables it in Home Assistant if wanted. */
  disabledByDefault?: boolean;
}

export const ENTITIES: readonly EntitySpec[] = [
  {
    key: 'power',
    name: 'Power',
    topic: 'power',
    field: 'powerW',
    deviceClass: 'power',
    stateClass: 'measurement',
    unit: 'W',
    precision: 2,
    live: true,
  },
  {
    key: 'voltage',
    name: 'Voltage',
    topic: 'power',
    field: 'busV',
    deviceClass: 'voltage',
    stateClass: 'measurement',
    unit: 'V',
    precision: 2,
    live: true,
  },
  {
    key: 'current',
    name: 'Current',
    topic: 'power',
    field: 'currentA',
    deviceClass: 'current',
    stateClass: 'measurement',
    unit: 'A',
    precision: 3,
    live: true,
  },
  {
    // Same unique_id as when it was published in Wh: Home Assistant converts the new kWh states
    // to the unit its statistics were compiled in, so existing history and the Energy dashboard
    // go on without a jump (docs/home-assistant.md, "Energy in kWh").
    key: 'energy',
    name: 'Energy',
    topic: 'window',
    field: 'energyTotalKwh',
    deviceClass: 'energy',
    stateClass: 'total_increasing',
    unit: 'kWh',
    precision: 3,
  },
  {
    key: 'window_power',
    name: 'Window average power',
    topic: 'window',
    field: 'avgPowerW',
    deviceClass: 'power',
    stateClass: 'measurement',
    unit: 'W',
    precision: 2,
  },
  {
    key: 'window_voltage',
    name: 'Window average voltage',
    topic: 'window',
    field: 'avgBusV',
    deviceClass: 'voltage',
    stateClass: 'measurement',
    unit: 'V',
    precision: 2,
  },
  {
    key: 'window_current',
    name: 'Window average current',
    topic: 'window',
    field: 'avgCurrentA',
    deviceClass: 'current',
    stateClass: 'measurement',
    unit: 'A',
    precision: 3,
  },
  {
    key: 'reward_rate',
    name: 'Reward rate',
    topic: 'window',
    field: 'tokensPerH',
    stateClass: 'measurement',
    unit: 'tokens/h',
    icon: 'mdi:hand-coin',
    disabledByDefault: true,
  },
  {
    key: 'rewards',
    name: 'Rewards',
    topic: 'window',
    field: 'rewardsTotal',
    stateClass: 'total_increasing',
    unit: 'tokens',
    precision: 3,
    icon: 'mdi:hand-coin',
    disabledByDefault: true,
  },
  {
    key: 'observed',
    name: 'Observed fraction',
    topic: 'window',
    field: 'observedPercent',
    stateClass: 'measurement',
    unit: '%',
    precision: 1,
    diagnostic: true,
    icon: 'mdi:chart-bell-curve',
  },
  {
    key: 'last_reading',
    name: 'Last reading',
    topic: 'window',
    field: 'lastReadingAt',
    deviceClass: 'timestamp',
    diagnostic: true,
  },
  {
    key: 'publishing',
    name: 'Publishing',
    topic: 'status',
    field: 'publishing',
    deviceClass: 'enum',
    options: ['disabled', 'ok', 'retrying', 'failing'],
    diagnostic: true,
    icon: 'mdi:cloud-upload',
  },
  {
    key: 'waiting',
    name: 'Readings waiting',
    topic: 'status',
    field: 'waiting',
    stateClass: 'measurement',
    unit: 'readings',
    diagnostic: true,
    icon: 'mdi:tray-full',
  },
  {
    key: 'sensor',
    name: 'Sensor',
    topic: 'status',
    field: 'sensor',
    deviceClass: 'enum',
    options: ['ok', 'fault'],
    diagnostic: true,
    icon: 'mdi:chip',
  },
  {
    // A timestamp, not a counter of seconds: Home Assistant shows it as "3 hours ago" (the
    // uptime) and records one state per start instead of one per update.
    key: 'last_restart',
    name: 'Last restart',
    topic: 'status',
    field: 'startedAt',
    deviceClass: 'timestamp',
    diagnostic: true,
  },
];

/** Published only when the on-chain balance is read (--rpc-url, --reward-token, --wallet-address). */
export const BALANCE_ENTITY: EntitySpec = {
  key: 'reward_balance',
  name: 'Reward balance',
  topic: 'balance',
  field: 'tokens',
  stateClass: 'measurement',
  unit: 'tokens',
  precision: 2,
  icon: 'mdi:wallet',
};

export interface DeviceInfo {
  deviceAddress: string;
  /** The program's version (device sw_version and origin). */
  version: string;
  /** What measures: shown as the device model. */
  model: string;
  /** Chip and shunt, e.g. "INA219, 0.1 Ω shunt" (device hw_version). */
  hwVersion?: string;
}

export interface DiscoveryOptions {
  /** Home Assistant area for a newly discovered device, e.g. "Garage"; empty = none. */
  suggestedArea?: string;
  /** expire_after of the live entities, seconds (see liveExpireAfterS). */
  liveExpireAfterS?: number;
  /** Add the on-chain reward balance entity. */
  balance?: boolean;
}

/**
 * How long a live figure stays valid without an update: live power goes out at most every
 * `powerIntervalMs` and the meter's state at least every 5 s (its heartbeat), so three of the
 * longer of the two, and never under 30 s (a broker or Wi-Fi hiccup must not blank the card).
 */
export function liveExpireAfterS(powerIntervalMs: number): number {
  return Math.max(30, Math.ceil((3 * Math.max(powerIntervalMs, 5000)) / 1000));
}

export interface DiscoveryMessage {
  topic: string;
  config: Record<string, unknown>;
}

export function entitiesFor(o: DiscoveryOptions = {}): readonly EntitySpec[] {
  return o.balance ? [...ENTITIES, BALANCE_ENTITY] : ENTITIES;
}

export function discoveryMessages(
  discoveryPrefix: string,
  topicPrefix: string,
  info: DeviceInfo,
  o: DiscoveryOptions = {},
): DiscoveryMessage[] {
  const topics = meterTopics(topicPrefix, info.deviceAddress);
  const node = nodeId(info.deviceAddress);
  const short = shortId(info.deviceAddress);
  const device: Record<string, unknown> = {
    identifiers: [node],
    name: `Power meter ${short}`,
    manufacturer: 'power-meter (open source)',
    model: info.model,
    serial_number: info.deviceAddress.toLowerCase(),
    sw_version: info.version,
  };
  if (info.hwVersion) device.hw_version = info.hwVersion;
  if (o.suggestedArea) device.suggested_area = o.suggestedArea;
  const origin = { name: 'power-meter', sw_version: info.version };
  return entitiesFor(o).map((e) => {
    const config: Record<string, unknown> = {
      name: e.name,
      unique_id: `${node}_${e.key}`,
      default_entity_id: `sensor.power_meter_${short}_${e.key}`,
      state_topic: topics[e.topic],
      value_template: `{{ value_json.${e.field} }}`,
      availability: [{ topic: topics.availability, payload_available: 'online', payload_not_available: 'offline' }],
      device,
      origin,
    };
    if (e.deviceClass) config.device_class = e.deviceClass;
    if (e.stateClass) config.state_class = e.stateClass;
    if (e.unit) config.unit_of_measurement = e.unit;
    if (e.precision !== undefined) config.suggested_display_precision = e.precision;
    if (e.options) config.options = e.options;
    if (e.diagnostic) config.entity_category = 'diagnostic';
    if (e.icon) config.icon = e.icon;
    if (e.live && o.liveExpireAfterS) config.expire_after = o.liveExpireAfterS;
    if (e.disabledByDefault) config.enabled_by_default = false;
    return { topic: discoveryTopic(discoveryPrefix, info.deviceAddress, e.key), config };
  });
}
