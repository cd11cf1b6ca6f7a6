import { discoveryTopic, meterTopics, nodeId, shortId, type MeterTopics } from './topics.js';

/**
 * Home Assistant MQTT discovery, pure: one retained config per entity, all tied to one device
 * (the meter's address). Keys are Home Assistant's documented sensor options, unabbreviated so
 * a person reading the broker understands them. `default_entity_id` replaces the deprecated
 * `object_id` (Home Assistant 2025.10; `object_id` stops working in 2026.4).
 *
 * The Energy dashboard accepts a sensor with `device_class: energy`, `state_class:
 * total_increasing` and an energy unit: `energy` below. Its value is the meter's stored total,
 * which never decreases (a decrease would read as a meter reset and show as a huge spike).
 */
export interface EntitySpec {
  /** Entity key: last level of the discovery topic, suffix of unique_id and entity id. */
  key: string;
  name: string;
  topic: keyof Pick<MeterTopics, 'power' | 'window' | 'status'>;
  /** Field of the JSON payload on that topic. */
  field: string;
  deviceClass?: 'power' | 'energy' | 'enum';
  stateClass?: 'measurement' | 'total_increasing';
  unit?: string;
  precision?: number;
  diagnostic?: boolean;
  options?: string[];
  icon?: string;
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
  },
  {
    key: 'energy',
    name: 'Energy',
    topic: 'window',
    field: 'energyTotalWh',
    deviceClass: 'energy',
    stateClass: 'total_increasing',
    unit: 'Wh',
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
    key: 'reward_rate',
    name: 'Reward rate',
    topic: 'window',
    field: 'tokensPerH',
    stateClass: 'measurement',
    unit: 'tokens/h',
    icon: 'mdi:hand-coin',
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
];

export interface DeviceInfo {
  deviceAddress: string;
  /** The program's version (device sw_version and origin). */
  version: string;
  /** What measures: shown as the device model. */
  model: string;
}

export interface DiscoveryMessage {
  topic: string;
  config: Record<string, unknown>;
}

export function discoveryMessages(discoveryPrefix: string, topicPrefix: string, info: DeviceInfo): DiscoveryMessage[] {
  const topics = meterTopics(topicPrefix, info.deviceAddress);
  const node = nodeId(info.deviceAddress);
  const short = shortId(info.deviceAddress);
  const device = {
    identifiers: [node],
    name: `Power meter ${short}`,
    manufacturer: 'power-meter (open source)',
    model: info.model,
    serial_number: info.deviceAddress.toLowerCase(),
    sw_version: info.version,
  };
  const origin = { name: 'power-meter', sw_version: info.version };
  return ENTITIES.map((e) => {
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
    return { topic: discoveryTopic(discoveryPrefix, info.deviceAddress, e.key), config };
  });
}
