import { exampleRewardBalance, exampleState, type MeterState } from '@power-meter/meter-files';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../src/mqtt/check.js';
import { ENTITIES, discoveryMessages, liveExpireAfterS } from '../src/mqtt/discovery.js';
import { SENSOR_CHIPS, sensorHardware } from '../src/sensor-info.js';
import { StatePlanner, statusPayload, windowPayload } from '../src/mqtt/payloads.js';
import { clientId, meterTopics, nodeId } from '../src/mqtt/topics.js';
import { BACKEND_SETTINGS } from '../src/settings.js';
import { resolveSettings, SettingError } from '@power-meter/service';
import { energyDashboardReady, sensorDiscoveryProblems } from './ha-schema.js';

const ADDR = '0xAbCdEf0123456789aBcDeF0123456789AbCdEf01';
const INFO = { deviceAddress: ADDR, version: '1.2.3', model: 'INA219' };

function state(over: Partial<MeterState> = {}): MeterState {
  return { ...exampleState(), deviceId: ADDR.toLowerCase(), ...over };
}

describe('MQTT topics', () => {
  it('puts every state topic under <prefix>/<lower-case address>/ and ids use only what discovery topics allow', () => {
    const t = meterTopics('home/power-meter', ADDR);
    expect(t.availability).toBe('home/power-meter/0xabcdef0123456789abcdef0123456789abcdef01/availability');
    expect(Object.values(t).every((x) => x.startsWith('home/power-meter/0xabcdef0123456789abcdef0123456789abcdef01/'))).toBe(true);
    expect(nodeId(ADDR)).toMatch(/^[a-zA-Z0-9_-]+$/);
    expect(clientId(ADDR)).toBe('power-meter-abcdef0123456789abcdef0123456789abcdef01');
    expect(() => nodeId('0x1234')).toThrow(/not a device address/);
  });
});

describe('Home Assistant discovery configs', () => {
  const msgs = discoveryMessages('homeassistant', 'power-meter', INFO);

  it('are valid against the documented sensor discovery schema', () => {
    expect(msgs).toHaveLength(ENTITIES.length);
    for (const m of msgs) expect(sensorDiscoveryProblems(m.topic, m.config), m.topic).toEqual([]);
    // The schema check itself catches what it should (a removed key, a wrong unit, a bad topic).
    const bad = { ...msgs[0]!.config, object_id: 'x', unit_of_measurement: 'kWh' };
    expect(sensorDiscoveryProblems('homeassistant/sensor/a b/config', bad)).toEqual(
      expect.arrayContaining([expect.stringMatching(/topic/), expect.stringMatching(/object_id/), expect.stringMatching(/unit kWh/)]),
    );
  });

  it('give power (W, measurement) and an energy total the Energy dashboard accepts (kWh, total_increasing, 3 decimals)', () => {
    const byKey = new Map(msgs.map((m) => [m.topic.split('/')[3], m.config]));
    expect(byKey.get('power')).toMatchObject({ device_class: 'power', state_class: 'measurement', unit_of_measurement: 'W' });
    expect(byKey.get('energy')).toMatchObject({
      // The same entity as when it was in Wh (unique id unchanged): Home Assistant converts.
      unique_id: `${nodeId(ADDR)}_energy`,
      device_class: 'energy',
      state_class: 'total_increasing',
      unit_of_measurement: 'kWh',
      suggested_display_precision: 3,
      value_template: '{{ value_json.energyTotalKwh }}',
    });
    expect(energyDashboardReady(byKey.get('energy')!)).toBe(true);
    expect(msgs.filter((m) => energyDashboardReady(m.config))).toHaveLength(1);
    expect(byKey.get('window_power')).toMatchObject({ device_class: 'power', unit_of_measurement: 'W' });
    expect(byKey.get('reward_rate')).toMatchObject({ unit_of_measurement: 'tokens/h', enabled_by_default: false });
    expect(byKey.get('rewards')).toMatchObject({ state_class: 'total_increasing', enabled_by_default: false });
    // Everything else is enabled (Home Assistant's default when the key is absent).
    expect(msgs.filter((m) => m.config.enabled_by_default === false).map((m) => m.topic.split('/')[3])).toEqual(['reward_rate', 'rewards']);
    expect(byKey.get('publishing')).toMatchObject({
      device_class: 'enum',
      options: ['disabled', 'ok', 'retrying', 'failing'],
      entity_category: 'diagnostic',
    });
  });

  it('share one device block (address, model, version) and one availability topic; ids are unique per meter', () => {
    const t = meterTopics('power-meter', ADDR);
    for (const m of msgs) {
      expect(m.topic).toMatch(new RegExp(`^homeassistant/sensor/${nodeId(ADDR)}/[a-z_]+/config$`));
      expect(m.config.device).toEqual(msgs[0]!.config.device);
      expect(m.config.availability).toEqual([{ topic: t.availability, payload_available: 'online', payload_not_available: 'offline' }]);
      // Every value template reads a field the state payload on its topic really has.
      const field = /value_json\.(\w+)/.exec(String(m.config.value_template))![1]!;
      const topicKey = (Object.keys(t) as Array<keyof typeof t>).find((k) => t[k] === m.config.state_topic)!;
      const sample = JSON.parse(
        topicKey === 'window'
          ? windowPayload(state())
          : new StatePlanner(t, 0).all(state(), 0).find((x) => x.topic === t[topicKey])!.payload,
      );
      expect(sample, `${m.topic} reads ${field}`).toHaveProperty(field);
    }
    expect(msgs[0]!.config.device).toMatchObject({
      identifiers: [nodeId(ADDR)],
      model: 'INA219',
      sw_version: '1.2.3',
      serial_number: ADDR.toLowerCase(),
    });
    expect(new Set(msgs.map((m) => m.config.unique_id)).size).toBe(msgs.length);
    const other = discoveryMessages('homeassistant', 'power-meter', {
      ...INFO,
      deviceAddress: '0x1111111111111111111111111111111111111111',
    });
    expect(other.some((o) => msgs.some((m) => m.config.unique_id === o.config.unique_id || m.topic === o.topic))).toBe(false);
  });
});

describe('Home Assistant entities added for issue 24', () => {
  const opts = { suggestedArea: 'Garage', liveExpireAfterS: 30 };
  const info = { ...INFO, hwVersion: 'INA219, 0.1 Ω shunt' };
  const msgs = discoveryMessages('homeassistant', 'power-meter', info, opts);
  const byKey = new Map(msgs.map((m) => [m.topic.split('/')[3]!, m.config]));
  const t = meterTopics('power-meter', ADDR);

  it('voltage (V) and current (A), live and per window, each valid for its device class', () => {
    expect(byKey.get('voltage')).toMatchObject({
      device_class: 'voltage',
      unit_of_measurement: 'V',
      state_class: 'measurement',
      state_topic: t.power,
      value_template: '{{ value_json.busV }}',
    });
    expect(byKey.get('current')).toMatchObject({
      device_class: 'current',
      unit_of_measurement: 'A',
      state_class: 'measurement',
      state_topic: t.power,
      value_template: '{{ value_json.currentA }}',
    });
    expect(byKey.get('window_voltage')).toMatchObject({ device_class: 'voltage', unit_of_measurement: 'V', state_topic: t.window });
    expect(byKey.get('window_current')).toMatchObject({ device_class: 'current', unit_of_measurement: 'A', state_topic: t.window });
    for (const m of msgs) expect(sensorDiscoveryProblems(m.topic, m.config), m.topic).toEqual([]);
    // The schema check refuses what Home Assistant refuses for these classes.
    expect(sensorDiscoveryProblems(msgs[0]!.topic, { ...byKey.get('voltage')!, unit_of_measurement: 'W' })).toEqual([
      'unit W is not valid for device_class voltage',
    ]);
  });

  it('expire_after only on the live figures (power, voltage, current), from the publish interval', () => {
    expect(msgs.filter((m) => m.config.expire_after !== undefined).map((m) => m.topic.split('/')[3])).toEqual([
      'power',
      'voltage',
      'current',
    ]);
    expect(byKey.get('power')!.expire_after).toBe(30);
    expect(liveExpireAfterS(5000)).toBe(30); // the default: three heartbeats would be 15 s, floored at 30
    expect(liveExpireAfterS(500)).toBe(30);
    expect(liveExpireAfterS(60_000)).toBe(180);
    expect(discoveryMessages('homeassistant', 'power-meter', info).some((m) => 'expire_after' in m.config)).toBe(false);
  });

  it('diagnostics: last reading time and last restart are timestamps (no unit, no state class)', () => {
    expect(byKey.get('last_reading')).toMatchObject({
      device_class: 'timestamp',
      entity_category: 'diagnostic',
      state_topic: t.window,
      value_template: '{{ value_json.lastReadingAt }}',
    });
    expect(byKey.get('last_restart')).toMatchObject({
      device_class: 'timestamp',
      entity_category: 'diagnostic',
      state_topic: t.status,
      value_template: '{{ value_json.startedAt }}',
    });
    for (const k of ['last_reading', 'last_restart']) {
      expect(byKey.get(k)).not.toHaveProperty('unit_of_measurement');
      expect(byKey.get(k)).not.toHaveProperty('state_class');
    }
    expect(sensorDiscoveryProblems(msgs[0]!.topic, { ...byKey.get('last_reading')!, state_class: 'measurement' })).toEqual([
      'a timestamp sensor has no state_class',
    ]);
  });

  it('the device carries hw_version (chip and shunt) and the suggested area; none when not set', () => {
    expect(msgs[0]!.config.device).toMatchObject({ hw_version: 'INA219, 0.1 Ω shunt', suggested_area: 'Garage' });
    const plain = discoveryMessages('homeassistant', 'power-meter', INFO)[0]!.config.device as Record<string, unknown>;
    expect(plain).not.toHaveProperty('suggested_area');
    expect(plain).not.toHaveProperty('hw_version');
  });

  it('the on-chain reward balance is an entity only when it is read', () => {
    expect(byKey.has('reward_balance')).toBe(false);
    const withBalance = discoveryMessages('homeassistant', 'power-meter', info, { ...opts, balance: true });
    expect(withBalance).toHaveLength(ENTITIES.length + 1);
    const b = withBalance.find((m) => m.topic.endsWith('/reward_balance/config'))!;
    expect(b.config).toMatchObject({ state_topic: t.balance, value_template: '{{ value_json.tokens }}', unit_of_measurement: 'tokens' });
    expect(b.config).not.toHaveProperty('enabled_by_default'); // asked for with --rpc-url: shown
    expect(sensorDiscoveryProblems(b.topic, b.config)).toEqual([]);
  });

  it('hw_version names the chip from one table, with the shunt', () => {
    expect(sensorHardware({ sensor: 'ina219', shuntOhms: 0.1 })).toEqual({ model: 'INA219', hwVersion: 'INA219, 0.1 Ω shunt' });
    expect(sensorHardware({ sensor: 'sim', shuntOhms: 0.002 })).toEqual({
      model: 'INA219 (simulated)',
      hwVersion: 'INA219 (simulated), 2 mΩ shunt',
    });
    // Every --sensor value has a row (the type demands it; this checks the setting agrees).
    for (const k of Object.keys(SENSOR_CHIPS)) expect(BACKEND_SETTINGS.sensor.parse(k)).toBe(k);
  });

  it('payloads carry what the templates read: live V and A (null on a fault), window means, ISO times, the balance', () => {
    const s = state({
      rewardBalance: exampleRewardBalance(),
      lastWindow: { ...exampleState().lastWindow!, endMs: Date.UTC(2026, 0, 2, 3, 4, 5), busV: 12.01, currentA: 0.5 },
    });
    const planner = new StatePlanner(t, 0, Date.UTC(2026, 0, 1));
    const out = new Map(planner.all(s, 0).map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
    expect(out.get(t.power)).toMatchObject({ powerW: s.powerW, busV: 11.9, currentA: 0.338 });
    expect(out.get(t.window)).toMatchObject({
      energyTotalWh: 12.5,
      energyTotalKwh: 0.0125,
      avgBusV: 12.01,
      avgCurrentA: 0.5,
      lastReadingAt: '2026-01-02T03:04:05.000Z',
    });
    expect(out.get(t.status)).toMatchObject({ startedAt: '2026-01-01T00:00:00.000Z' });
    expect(out.get(t.balance)).toMatchObject({ tokens: '40', readAt: new Date(1_764_000_000_000).toISOString() });
    // Every template of every entity reads a field its topic's payload has.
    for (const m of discoveryMessages('homeassistant', 'power-meter', info, { ...opts, balance: true })) {
      const field = /value_json\.(\w+)/.exec(String(m.config.value_template))![1]!;
      expect(out.get(String(m.config.state_topic)), m.topic).toHaveProperty(field);
    }
    const fault = state({ powerW: null, sensor: { state: 'fault', reason: 'EIO', busV: 11.9, currentA: 0.3 }, lastWindow: null });
    const f = new Map(new StatePlanner(t, 0).all(fault, 0).map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
    expect(f.get(t.power)).toMatchObject({ powerW: null, busV: null, currentA: null });
    expect(f.get(t.window)).toMatchObject({ avgBusV: null, lastReadingAt: null });
    expect(f.has(t.balance)).toBe(false); // not configured: no balance topic
  });
});

describe('state messages', () => {
  const t = meterTopics('power-meter', ADDR);

  it('send the window once per window, status on change, and power at most every interval', () => {
    const p = new StatePlanner(t, 5000);
    const s0 = state();
    expect(p.next(s0, 0).map((m) => m.topic)).toEqual([t.window, t.status, t.power]);
    expect(p.next({ ...s0, powerW: 9 }, 1000)).toEqual([]); // same window, same status, power too soon
    const later = p.next({ ...s0, powerW: 9 }, 5000);
    expect(later).toEqual([{ topic: t.power, payload: expect.stringContaining('"powerW":9') }]);
    const w2 = { ...s0, lastWindow: { ...s0.lastWindow!, endMs: s0.lastWindow!.endMs + 5000 }, energyTotalWh: s0.energyTotalWh + 0.01 };
    expect(p.next(w2, 6000).map((m) => m.topic)).toEqual([t.window]);
    const failing = { ...w2, publishing: { ...w2.publishing, state: 'failing' as const, reason: 'InvalidToken' } };
    expect(p.next(failing, 7000).map((m) => m.topic)).toEqual([t.status]);
    expect(p.all(failing, 7001).map((m) => m.topic)).toEqual([t.window, t.status, t.power]);
  });

  it('carry the stored energy total and null (unknown in Home Assistant) where there is no value', () => {
    const s = state({ powerW: null, lastWindow: null, energyTotalWh: 12.5 });
    const [w, , pw] = new StatePlanner(t, 0).all(s, 0);
    expect(JSON.parse(w!.payload)).toMatchObject({ energyTotalWh: 12.5, avgPowerW: null, observedPercent: null });
    expect(JSON.parse(pw!.payload)).toMatchObject({ powerW: null });
  });
});

describe('which chip measured', () => {
  it('the status carries the chip and the calibration; the device model names the chip, simulated or not', () => {
    const base = state();
    const s = state({ sensor: { ...base.sensor, chip: 'INA260', simulated: false, calibrationId: null } });
    expect(JSON.parse(statusPayload(s))).toMatchObject({ sensor: 'ok', sensorChip: 'INA260', calibrationId: null });
    expect(JSON.parse(statusPayload(base))).not.toHaveProperty('sensorChip'); // an older state: nothing invented
    expect(sensorHardware({ sensor: 'ina228', simChip: 'ina219', shuntOhms: 0.015 })).toEqual({
      model: 'INA228',
      hwVersion: 'INA228, 15 mΩ shunt',
    });
    expect(sensorHardware({ sensor: 'sim', simChip: 'ina226', shuntOhms: 0.1 }).model).toBe('INA226 (simulated)');
    expect(sensorHardware({ sensor: 'ina260', shuntOhms: 0.002 }).hwVersion).toBe('INA260, 2 mΩ shunt inside');
    const device = discoveryMessages('homeassistant', 'power-meter', {
      ...INFO,
      model: sensorHardware({ sensor: 'ina228', shuntOhms: 0.015 }).model,
    })[0]!.config.device as { model: string };
    expect(device.model).toBe('INA228');
  });
});

describe('MQTT settings', () => {
  const resolve = (env: Record<string, string>, flags: Record<string, unknown> = {}) =>
    resolveSettings(BACKEND_SETTINGS, { flags, env, config: {} }).values;

  it('accept mqtt:// and mqtts:// URLs; refuse other schemes, credentials in the URL (without echoing them) and wildcard prefixes', () => {
    expect(resolve({ POWER_METER_MQTT_URL: 'mqtts://broker.lan:8883' }).mqttUrl).toBe('mqtts://broker.lan:8883');
    expect(resolve({}).mqttUrl).toBe('');
    expect(() => resolve({}, { mqttUrl: 'http://broker:1883' })).toThrow(SettingError);
    try {
      resolve({}, { mqttUrl: 'mqtt://meter:s3cret-pw@broker:1883' });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toMatch(/--mqtt-url/);
      expect((err as Error).message).toMatch(/POWER_METER_MQTT_USER/);
      expect((err as Error).message).not.toContain('s3cret-pw');
    }
    expect(() => resolve({ POWER_METER_MQTT_TOPIC_PREFIX: 'home/+/meter' })).toThrow(/POWER_METER_MQTT_TOPIC_PREFIX/);
    expect(() => resolve({ POWER_METER_MQTT_DISCOVERY_PREFIX: 'homeassistant/' })).toThrow(SettingError);
    expect(() => resolve({ POWER_METER_METRICS_FILE: 'relative.prom' })).toThrow(/POWER_METER_METRICS_FILE/);
    expect(() => resolve({ POWER_METER_METRICS_FILE: '/var/lib/x.txt' })).toThrow(SettingError);
  });

  it('take the user and password from the environment only, never from a flag', () => {
    expect(BACKEND_SETTINGS.mqttUser.flag).toBeNull();
    expect(BACKEND_SETTINGS.mqttPassword.flag).toBeNull();
    expect(BACKEND_SETTINGS.mqttPassword.secret).toBe(true);
    expect(resolve({ POWER_METER_MQTT_USER: 'meter', POWER_METER_MQTT_PASSWORD: 'pw' })).toMatchObject({
      mqttUser: 'meter',
      mqttPassword: 'pw',
    });
  });

  it('read the login from an environment file the way systemd does', () => {
    const env = parseEnvFile(
      '# comment\nW3BSTREAM_PUBLISHER_TOKEN=abc\nPOWER_METER_MQTT_USER=meter\nPOWER_METER_MQTT_PASSWORD="p w=1"\n  # POWER_METER_MQTT_USER=nobody\n',
    );
    expect(env).toEqual({ W3BSTREAM_PUBLISHER_TOKEN: 'abc', POWER_METER_MQTT_USER: 'meter', POWER_METER_MQTT_PASSWORD: 'p w=1' });
  });
});
