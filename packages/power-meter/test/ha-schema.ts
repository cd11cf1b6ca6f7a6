/**
 * Home Assistant's MQTT sensor discovery schema, written from its documentation (not from our
 * code): the MQTT integration page ("Discovery topic", "Discovery payload", device and origin
 * options), the MQTT sensor page (configuration variables) and the developer docs' sensor
 * device classes and state classes; checked against Home Assistant's own code
 * (homeassistant/components/mqtt/sensor.py and schemas.py: expire_after and
 * suggested_display_precision are cv.positive_int, device fields cv.string, options only with
 * device_class enum; sensor/const.py: the units and state classes of each device class). `object_id` was deprecated in 2025.10 for
 * `default_entity_id` (home-assistant/core#151775) and stops working in 2026.4, so it is refused.
 * Returns the problems found (empty = valid).
 */
const SENSOR_KEYS = new Set([
  'availability',
  'availability_mode',
  'availability_template',
  'availability_topic',
  'default_entity_id',
  'device',
  'device_class',
  'enabled_by_default',
  'encoding',
  'entity_category',
  'entity_picture',
  'expire_after',
  'force_update',
  'icon',
  'json_attributes_template',
  'json_attributes_topic',
  'last_reset_value_template',
  'name',
  'options',
  'origin',
  'payload_available',
  'payload_not_available',
  'platform',
  'suggested_display_precision',
  'qos',
  'state_class',
  'state_topic',
  'unique_id',
  'unit_of_measurement',
  'value_template',
]);
const DEVICE_KEYS = new Set([
  'configuration_url',
  'connections',
  'hw_version',
  'identifiers',
  'manufacturer',
  'model',
  'model_id',
  'name',
  'serial_number',
  'suggested_area',
  'sw_version',
  'via_device',
]);
const ORIGIN_KEYS = new Set(['name', 'sw_version', 'support_url']);
const AVAILABILITY_KEYS = new Set(['payload_available', 'payload_not_available', 'topic', 'value_template']);
const STATE_CLASSES = new Set(['measurement', 'measurement_angle', 'total', 'total_increasing']);
/** Units each device class accepts, and the state classes it allows (developer docs, sensor entity). */
const DEVICE_CLASSES: Record<string, { units: string[]; stateClasses: string[] } | undefined> = {
  power: { units: ['mW', 'W', 'kW', 'MW', 'GW', 'TW', 'BTU/h'], stateClasses: ['measurement'] },
  energy: {
    units: ['J', 'kJ', 'MJ', 'GJ', 'mWh', 'Wh', 'kWh', 'MWh', 'GWh', 'TWh', 'cal', 'kcal', 'Mcal', 'Gcal'],
    stateClasses: ['total', 'total_increasing'],
  },
  voltage: { units: ['V', 'mV', 'µV', 'kV', 'MV'], stateClasses: ['measurement'] },
  current: { units: ['A', 'mA'], stateClasses: ['measurement'] },
};
/** Device classes whose state is not a number: no unit, no state class (sensor docs, "Non-numerical device classes"). */
const NON_NUMERIC = new Set(['timestamp', 'date', 'enum']);
const TOPIC_RE = /^[^/+#]+\/sensor\/(?:[a-zA-Z0-9_-]+\/)?[a-zA-Z0-9_-]+\/config$/;

export function sensorDiscoveryProblems(topic: string, c: Record<string, unknown>): string[] {
  const p: string[] = [];
  if (!TOPIC_RE.test(topic)) p.push(`topic ${topic} is not <prefix>/sensor/[<node_id>/]<object_id>/config with [a-zA-Z0-9_-] ids`);
  for (const k of Object.keys(c)) if (!SENSOR_KEYS.has(k)) p.push(`unknown or removed key ${k}`);
  if (typeof c.state_topic !== 'string' || c.state_topic === '' || /[+#]/.test(c.state_topic))
    p.push('state_topic is required (a topic without wildcards)');
  if (c.availability !== undefined && c.availability_topic !== undefined) p.push('availability and availability_topic are exclusive');
  if (c.availability !== undefined) {
    if (!Array.isArray(c.availability) || c.availability.length === 0) p.push('availability must be a non-empty list');
    else
      for (const a of c.availability as Array<Record<string, unknown>>) {
        for (const k of Object.keys(a)) if (!AVAILABILITY_KEYS.has(k)) p.push(`availability: unknown key ${k}`);
        if (typeof a.topic !== 'string') p.push('availability: topic is required');
      }
  }
  if (c.device !== undefined) {
    const d = c.device as Record<string, unknown>;
    for (const k of Object.keys(d)) if (!DEVICE_KEYS.has(k)) p.push(`device: unknown key ${k}`);
    for (const k of ['name', 'manufacturer', 'model', 'hw_version', 'sw_version', 'serial_number', 'suggested_area'])
      if (d[k] !== undefined && typeof d[k] !== 'string') p.push(`device: ${k} must be a string`);
    if (d.identifiers === undefined && d.connections === undefined) p.push('device needs identifiers or connections');
    if (typeof c.unique_id !== 'string' || c.unique_id === '') p.push('device only works with a unique_id');
  }
  if (c.origin !== undefined) {
    const o = c.origin as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!ORIGIN_KEYS.has(k)) p.push(`origin: unknown key ${k}`);
    if (typeof o.name !== 'string') p.push('origin: name is required');
  }
  if (c.default_entity_id !== undefined && !/^sensor\.[a-z0-9_]+$/.test(String(c.default_entity_id)))
    p.push(`default_entity_id ${String(c.default_entity_id)} is not sensor.<lowercase id>`);
  if (c.entity_category !== undefined && c.entity_category !== 'diagnostic') p.push('a sensor entity_category can only be diagnostic');
  if (c.state_class !== undefined && !STATE_CLASSES.has(String(c.state_class))) p.push(`unknown state_class ${String(c.state_class)}`);
  if (
    c.suggested_display_precision !== undefined &&
    !(Number.isInteger(c.suggested_display_precision) && (c.suggested_display_precision as number) >= 0)
  )
    p.push('suggested_display_precision must be an integer >= 0');
  if (c.expire_after !== undefined && !(Number.isInteger(c.expire_after) && (c.expire_after as number) >= 0))
    p.push('expire_after must be a whole number of seconds >= 0');
  if (c.enabled_by_default !== undefined && typeof c.enabled_by_default !== 'boolean') p.push('enabled_by_default must be a boolean');
  if (typeof c.device_class === 'string' && NON_NUMERIC.has(c.device_class) && c.device_class !== 'enum') {
    if (c.unit_of_measurement !== undefined) p.push(`a ${c.device_class} sensor has no unit_of_measurement`);
    if (c.state_class !== undefined) p.push(`a ${c.device_class} sensor has no state_class`);
    if (c.suggested_display_precision !== undefined) p.push(`a ${c.device_class} sensor is not a number: no suggested_display_precision`);
  }
  if (c.device_class === 'enum') {
    if (!Array.isArray(c.options) || c.options.length === 0) p.push('an enum sensor needs a non-empty options list');
    if (c.state_class !== undefined || c.unit_of_measurement !== undefined)
      p.push('options cannot be used with state_class or unit_of_measurement');
  } else if (c.options !== undefined) p.push('options need device_class enum');
  const dc = typeof c.device_class === 'string' ? DEVICE_CLASSES[c.device_class] : undefined;
  if (dc) {
    if (!dc.units.includes(String(c.unit_of_measurement)))
      p.push(`unit ${String(c.unit_of_measurement)} is not valid for device_class ${String(c.device_class)}`);
    if (c.state_class !== undefined && !dc.stateClasses.includes(String(c.state_class)))
      p.push(`state_class ${String(c.state_class)} is not valid for device_class ${String(c.device_class)}`);
  }
  return p;
}

/** What the Energy dashboard accepts as a consumption source (docs: "Energy" integration, sensor requirements). */
export function energyDashboardReady(c: Record<string, unknown>): boolean {
  return (
    c.device_class === 'energy' &&
    (c.state_class === 'total' || c.state_class === 'total_increasing') &&
    DEVICE_CLASSES.energy!.units.includes(String(c.unit_of_measurement))
  );
}
