import { exampleState, type MeterState } from '@power-meter/meter-files';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../src/mqtt/check.js';
import { ENTITIES, discoveryMessages } from '../src/mqtt/discovery.js';
import { StatePlanner, statusPayload, windowPayload } from '../src/mqtt/payloads.js';
import { clientId, meterTopics, nodeId } from '../src/mqtt/topics.js';
import { BACKEND_SETTINGS, sensorModel } from '../src/settings.js';
import { resolveSettings, SettingError } from '@power-meter/meter-files';
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

  it('give power (W, measurement) and an energy total the Energy dashboard accepts (Wh, total_increasing)', () => {
    const byKey = new Map(msgs.map((m) => [m.topic.split('/')[3], m.config]));
    expect(byKey.get('power')).toMatchObject({ device_class: 'power', state_class: 'measurement', unit_of_measurement: 'W' });
    expect(byKey.get('energy')).toMatchObject({
      device_class: 'energy',
      state_class: 'total_increasing',
      unit_of_measurement: 'Wh',
      value_template: '{{ value_json.energyTotalWh }}',
    });
    expect(energyDashboardReady(byKey.get('energy')!)).toBe(true);
    expect(msgs.filter((m) => energyDashboardReady(m.config))).toHaveLength(1);
    expect(byKey.get('window_power')).toMatchObject({ device_class: 'power', unit_of_measurement: 'W' });
    expect(byKey.get('reward_rate')).toMatchObject({ unit_of_measurement: 'tokens/h' });
    expect(byKey.get('rewards')).toMatchObject({ state_class: 'total_increasing' });
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
    expect(sensorModel({ sensor: 'ina228', simChip: 'ina219' })).toBe('INA228');
    expect(sensorModel({ sensor: 'sim', simChip: 'ina226' })).toBe('INA226 (simulated)');
    const device = discoveryMessages('homeassistant', 'power-meter', {
      ...INFO,
      model: sensorModel({ sensor: 'ina228', simChip: 'ina219' }),
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
