import { exampleState, type MeterState } from '@power-meter/meter-files';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test/support/processes.js';
import { checkMqtt } from '../src/mqtt/check.js';
import { ENTITIES } from '../src/mqtt/discovery.js';
import { MqttOutput } from '../src/mqtt/output.js';
import { meterTopics } from '../src/mqtt/topics.js';
import { sensorDiscoveryProblems } from './ha-schema.js';
import { freePort } from '../../../test/support/free-port.js';
import { startBroker, subscriber as subscribe, type Broker } from './support/mosquitto.js';

const ADDR = '0x00112233445566778899aabbccddeeff00112233';
const topics = meterTopics('power-meter', ADDR);
const cleanups: Array<() => Promise<unknown>> = [];
const subscriber = (b: Broker, filters?: string[]) => subscribe(b, (fn) => cleanups.push(fn), filters);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function broker(): Promise<Broker> {
  const b = await startBroker();
  cleanups.push(() => b.stop('SIGKILL'));
  return b;
}

function output(b: Broker, over: Partial<ConstructorParameters<typeof MqttOutput>[0]> = {}): { out: MqttOutput; lines: string[] } {
  const lines: string[] = [];
  const out = new MqttOutput({
    url: b.url,
    username: b.user,
    password: b.password,
    topicPrefix: 'power-meter',
    discoveryPrefix: 'homeassistant',
    powerIntervalMs: 500,
    readings: true,
    deviceAddress: ADDR,
    version: '0.1.0',
    model: 'INA219 (simulated)',
    log: (l) => lines.push(l),
    retryMinMs: 100,
    retryMaxMs: 300,
    ...over,
  });
  cleanups.push(() => out.stop());
  return { out, lines };
}

const st = (energyTotalWh: number, endMs: number): MeterState => {
  const e = exampleState();
  return { ...e, deviceId: ADDR, energyTotalWh, lastWindow: { ...e.lastWindow!, endMs }, updatedAtMs: endMs };
};

describe('MQTT output against a real Mosquitto broker', () => {
  it('publishes retained discovery configs valid for Home Assistant, availability, states and signed readings', async () => {
    const b = await broker();
    const { out } = output(b);
    out.onState(st(1.5, 1000)); // before the connection: kept and sent in full on connect
    await until(() => out.connection().state === 'connected', 20_000, 'connected');
    out.onReading('{"data":"signed"}');
    out.onState(st(1.6, 6000));
    // A client that subscribes afterwards (Home Assistant starting later) gets the retained configs.
    const { seen } = await subscriber(b);
    // The 6000 window may reach the broker just before or just after this subscription: either
    // way the late subscriber gets a retained window first and ends with the latest one.
    const windows = () => seen.filter((m) => m.topic === topics.window);
    await until(
      () =>
        seen.filter((m) => m.topic.endsWith('/config')).length === ENTITIES.length &&
        windows().some((m) => (JSON.parse(m.payload) as { endMs: number }).endMs === 6000),
      20_000,
      'retained discovery and the latest state',
    );
    expect(windows()[0]!.retain).toBe(true);
    for (const m of seen.filter((x) => x.topic.startsWith('homeassistant/'))) {
      expect(m.retain).toBe(true);
      expect(sensorDiscoveryProblems(m.topic, JSON.parse(m.payload))).toEqual([]);
    }
    expect(seen.find((m) => m.topic === topics.availability)).toMatchObject({ payload: 'online', retain: true });
    expect(JSON.parse(windows().at(-1)!.payload)).toMatchObject({ energyTotalWh: 1.6, endMs: 6000 });
    expect(seen.some((m) => m.topic === topics.reading)).toBe(false); // readings are not retained

    const live = await subscriber(b);
    out.onReading('{"data":"signed-2"}');
    await until(() => live.seen.some((m) => m.topic === topics.reading), 20_000, 'reading');
    expect(live.seen.find((m) => m.topic === topics.reading)!.payload).toBe('{"data":"signed-2"}');

    // A clean stop says offline itself.
    await out.stop();
    await until(() => live.seen.some((m) => m.topic === topics.availability && m.payload === 'offline'), 20_000, 'offline on stop');
  });

  it('republishes the discovery configs and every state when Home Assistant announces itself online', async () => {
    const b = await broker();
    const { out } = output(b);
    out.onState(st(2, 1000));
    await until(() => out.connection().state === 'connected', 20_000, 'connected');
    const { client, seen } = await subscriber(b);
    await until(() => seen.some((m) => m.topic === topics.window), 20_000, 'retained window');
    seen.length = 0;
    await client.publishAsync('homeassistant/status', 'online');
    await until(
      () =>
        seen.some((m) => m.topic === topics.window && !m.retain) &&
        seen.some((m) => m.topic === topics.status && !m.retain) &&
        new Set(seen.filter((m) => m.topic.endsWith('/config') && !m.retain).map((m) => m.topic)).size === ENTITIES.length,
      20_000,
      'republished discovery configs and states',
    );
    // Anything else on that topic (offline, garbage) changes nothing.
    seen.length = 0;
    await client.publishAsync('homeassistant/status', 'offline');
    await client.publishAsync(topics.power, 'marker'); // a message that arrives after the meter handled 'offline'
    await until(() => seen.some((m) => m.payload === 'marker'), 20_000, 'marker');
    expect(seen.filter((m) => m.topic.endsWith('/config'))).toEqual([]);
  });

  it('survives a broker restart: reconnects with backoff and publishes discovery, availability and the latest state again', async () => {
    const b = await broker();
    const { out, lines } = output(b);
    out.onState(st(3, 1000));
    await until(() => out.connection().state === 'connected', 20_000, 'connected');
    await b.stop('SIGKILL');
    await until(() => out.connection().failures >= 3, 20_000, 'several failed attempts'); // refused connections now, not just the close
    out.onState(st(3.2, 6000)); // measured while the broker is away: nothing queued, latest kept
    await b.start(); // no persistence: the broker comes back empty
    await until(() => out.connection().state === 'connected', 20_000, 'reconnected');
    const { seen } = await subscriber(b);
    await until(
      () => seen.filter((m) => m.topic.endsWith('/config')).length === ENTITIES.length && seen.some((m) => m.topic === topics.window),
      20_000,
      'republished',
    );
    expect(JSON.parse(seen.find((m) => m.topic === topics.window)!.payload)).toMatchObject({ energyTotalWh: 3.2 });
    expect(seen.find((m) => m.topic === topics.availability)!.payload).toBe('online');
    expect(lines.filter((l) => /^mqtt retrying/.test(l))).toHaveLength(1); // one line per problem, not per attempt
    expect(lines.filter((l) => /^mqtt connected/.test(l))).toHaveLength(2);
  });

  it('reports a wrong password as a refused login (never showing it), and retries slowly', async () => {
    const b = await broker();
    const { out, lines } = output(b, { password: 'wrong-password-123', retryMaxMs: 60_000 });
    await until(() => out.connection().state === 'refused', 20_000, 'refused');
    expect(out.connection().reason).toMatch(/refused the login.*(Bad User Name or Password|Not authorized)/);
    const line = lines.find((l) => l.startsWith('mqtt refused'))!;
    expect(line).toMatch(/POWER_METER_MQTT_PASSWORD/);
    expect(line).toMatch(/measurement and W3bstream delivery are not affected/);
    expect(lines.join('\n')).not.toContain('wrong-password-123');
    expect(lines.join('\n')).not.toContain(b.password);
  });

  it('doctor: ok with the right login, a clear failure with a wrong one or no broker', async () => {
    const b = await broker();
    const ok = await checkMqtt({ mqttUrl: b.url, mqttUser: b.user, mqttPassword: b.password });
    expect(ok).toMatchObject({ name: 'mqtt', status: 'ok' });
    const bad = await checkMqtt({ mqttUrl: b.url, mqttUser: b.user, mqttPassword: 'nope' });
    expect(bad.status).toBe('fail');
    expect(bad.detail).toMatch(/refused the login/);
    expect(bad.fix).toMatch(/POWER_METER_MQTT_PASSWORD/);
    expect(`${bad.detail} ${bad.fix}`).not.toContain('nope');
    const none = await checkMqtt({ mqttUrl: `mqtt://127.0.0.1:${await freePort()}`, mqttUser: b.user, mqttPassword: b.password });
    expect(none).toMatchObject({ status: 'fail', detail: expect.stringMatching(/ECONNREFUSED/) });
  });
});
