import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { verifyBody } from '@power-meter/w3bstream';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, start, until, type Proc } from '../../../test/support/processes.js';
import { DECIMALS_SELECTOR } from '../src/chain/erc20.js';
import { ENTITIES } from '../src/mqtt/discovery.js';
import { meterTopics } from '../src/mqtt/topics.js';
import { sensorDiscoveryProblems } from './ha-schema.js';
import { freePort } from '../../../test/support/free-port.js';
import { startBroker, subscriber as subscribe, type Broker } from './support/mosquitto.js';

/** The real daemon (built dist/, simulated sensor) with its outputs, against a real broker. */
const TOKEN = 'test-token-0d5e';
const cleanups: Array<() => Promise<unknown>> = [];
const subscriber = (b: Broker, filters?: string[]) => subscribe(b, (fn) => cleanups.push(fn), filters);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function backend(dataDir: string, args: string[], env: Record<string, string> = {}): Proc {
  const p = start(BACKEND, ['--sensor', 'sim', '--window', '1', '--data-dir', dataDir, ...args], {
    W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
    POWER_METER_RETRY_MAX_MS: '500',
    POWER_METER_MQTT_RETRY_MAX_MS: '300',
    ...env,
  });
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

async function broker(): Promise<Broker> {
  const b = await startBroker();
  cleanups.push(() => b.stop('SIGKILL'));
  return b;
}

async function receiver(): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'test', token: TOKEN });
  cleanups.push(() => r.close());
  return r;
}

const mqttEnv = (b: Broker, password = b.password) => ({ POWER_METER_MQTT_USER: b.user, POWER_METER_MQTT_PASSWORD: password });

describe('power-meter with MQTT (real daemon, real Mosquitto)', () => {
  it('Home Assistant sees discovery, states and signed readings; kill -9 marks it offline; the energy total never decreases across restarts', async () => {
    const b = await broker();
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-mqtt-')), 'data');
    const { seen } = await subscriber(b);
    const first = backend(
      dir,
      ['--sim-load', '8', '--mqtt-url', b.url, '--mqtt-readings', 'true', '--mqtt-power-interval', '500'],
      mqttEnv(b),
    );
    await first.waitFor(/mqtt connected to mqtt:\/\/127\.0\.0\.1/, 20_000);
    const id = (await first.waitFor(/identity device_id=(0x[0-9a-f]{40})/))[1]!;
    const t = meterTopics('power-meter', id);
    await until(
      () => seen.filter((m) => m.topic === t.window).length >= 3 && seen.some((m) => m.topic === t.reading),
      20_000,
      'window states and a reading',
    );

    const configs = seen.filter((m) => m.topic.startsWith('homeassistant/sensor/'));
    expect(new Set(configs.map((m) => m.topic)).size).toBe(ENTITIES.length);
    for (const m of configs) expect(sensorDiscoveryProblems(m.topic, JSON.parse(m.payload))).toEqual([]);
    expect(seen.filter((m) => m.topic === t.availability).at(-1)!.payload).toBe('online');
    const power = JSON.parse(seen.filter((m) => m.topic === t.power).at(-1)!.payload) as { powerW: number; busV: number; currentA: number };
    expect(power.powerW).toBeCloseTo(8, 0);
    // Voltage and current entities exist and carry the chip's figures (P = V x I on the emulator).
    for (const key of ['voltage', 'current', 'window_voltage', 'window_current'])
      expect(
        configs.some((m) => m.topic.endsWith(`/${key}/config`)),
        key,
      ).toBe(true);
    expect(power.busV).toBeGreaterThan(1);
    expect(power.busV * power.currentA).toBeCloseTo(power.powerW, 0);
    const window = JSON.parse(seen.filter((m) => m.topic === t.window).at(-1)!.payload) as Record<string, number | string>;
    expect(Number(window.avgBusV) * Number(window.avgCurrentA)).toBeCloseTo(Number(window.avgPowerW), 0);
    expect(window.energyTotalKwh).toBeCloseTo(Number(window.energyTotalWh) / 1000, 12);
    expect(Date.parse(String(window.lastReadingAt))).toBe(Number(window.endMs));
    const reading = seen.find((m) => m.topic === t.reading)!.payload;
    expect(verifyBody(reading)).toMatchObject({ ok: true }); // verifiable without W3bstream

    // Retained: a Home Assistant connecting now gets every config at once, flagged retained.
    const late = await subscriber(b, ['homeassistant/#']);
    await until(() => late.seen.length >= ENTITIES.length, 20_000, 'retained configs');
    expect(late.seen.every((m) => m.retain)).toBe(true);

    first.proc.kill('SIGKILL');
    await first.exited;
    await until(() => seen.filter((m) => m.topic === t.availability).at(-1)?.payload === 'offline', 20_000, 'last will');

    const second = backend(dir, ['--sim-load', '8', '--mqtt-url', b.url], mqttEnv(b));
    await until(() => seen.filter((m) => m.topic === t.availability).at(-1)?.payload === 'online', 20_000, 'online again');
    const windowsBefore = seen.filter((m) => m.topic === t.window).length;
    await until(() => seen.filter((m) => m.topic === t.window).length >= windowsBefore + 3, 20_000, 'windows after the restart');
    const energy = seen.filter((m) => m.topic === t.window).map((m) => (JSON.parse(m.payload) as { energyTotalWh: number }).energyTotalWh);
    for (let i = 1; i < energy.length; i++)
      expect(energy[i]!, `energy[${i}] after ${energy[i - 1]}`).toBeGreaterThanOrEqual(energy[i - 1]!);
    expect(energy.at(-1)!).toBeGreaterThan(energy[0]!);

    expect(await second.stop('SIGTERM')).toBe(0);
    await until(() => seen.filter((m) => m.topic === t.availability).at(-1)?.payload === 'offline', 20_000, 'offline said on a clean stop');
    for (const out of [first.output(), second.output()]) {
      expect(out).not.toContain(b.password);
      expect(out).not.toContain(TOKEN);
    }
  });

  it('a broker that goes down, or a wrong password, never stops measurement or W3bstream delivery', async () => {
    const b = await broker();
    const r = await receiver();
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-mqtt-')), 'data');
    const p = backend(dir, ['--sim-load', '4', '--publish-url', r.url, '--mqtt-url', b.url], mqttEnv(b));
    await p.waitFor(/mqtt connected/, 20_000);
    await b.stop('SIGKILL');
    await p.waitFor(/mqtt retrying: mqtt:\/\/127\.0\.0\.1:\d+: .*measurement and W3bstream delivery are not affected/, 20_000);
    const delivered = r.received.length;
    await until(() => r.received.length >= delivered + 3, 20_000, 'deliveries with the broker down');
    await b.start();
    const { seen } = await subscriber(b);
    await until(() => seen.some((m) => m.topic.endsWith('/window')), 20_000, 'states after the broker came back');
    expect(await p.stop('SIGTERM')).toBe(0);

    // Wrong password: a clear, actionable line; measuring and delivering go on.
    const dir2 = join(mkdtempSync(join(tmpdir(), 'pm-mqtt-')), 'data');
    // Sync every second: the published total is the synced one.
    const q = backend(
      dir2,
      ['--sim-load', '4', '--publish-url', r.url, '--mqtt-url', b.url, '--sync-interval', '1'],
      mqttEnv(b, 'not-the-password'),
    );
    await q.waitFor(/mqtt refused: .*refused the login .*POWER_METER_MQTT_PASSWORD/, 20_000);
    await until(
      async () => {
        const s = await readState(dir2);
        return s.ok && s.state.lastWindow !== null && s.state.publishing.state === 'ok' && s.state.energyTotalWh > 0;
      },
      20_000,
      'measured and delivered',
    );
    expect(q.output()).not.toContain('not-the-password');
  });

  it('doctor checks the broker login when MQTT is configured', async () => {
    const b = await broker();
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-mqtt-')), 'data');
    const run = async (password: string) => {
      const d = start(BACKEND, ['doctor', '--sensor', 'sim', '--data-dir', dir, '--mqtt-url', b.url], {
        ...mqttEnv(b, password),
        POWER_METER_TIMESYNC_ROOT: dir,
      });
      await d.exited;
      return d.output();
    };
    expect(await run(b.password)).toMatch(/^ok\s+mqtt\s+mqtt:\/\/127\.0\.0\.1:\d+ accepted a connection/m);
    const bad = await run('bad-pw-77');
    expect(bad).toMatch(/^FAIL mqtt\s+.*refused the login/m);
    expect(bad).toMatch(/fix: set POWER_METER_MQTT_USER and POWER_METER_MQTT_PASSWORD/);
    expect(bad).not.toContain('bad-pw-77');
  });
});

describe('power-meter with Prometheus metrics (real daemon)', () => {
  it('serves /metrics on loopback and writes the textfile; both parse and agree with state.json', async () => {
    const port = await freePort();
    const base = mkdtempSync(join(tmpdir(), 'pm-metrics-'));
    const dir = join(base, 'data');
    const file = join(base, 'power_meter.prom');
    const r = await receiver();
    const p = backend(dir, [
      '--sim-load',
      '8',
      '--publish-url',
      r.url,
      '--metrics-port',
      String(port),
      '--metrics-file',
      file,
      '--metrics-file-interval',
      '1',
      // The published totals are the synced ones: sync every second so they move within the test.
      '--sync-interval',
      '1',
    ]);
    await p.waitFor(new RegExp(`metrics listening url=http://127\\.0\\.0\\.1:${port}/metrics`), 20_000);
    await until(() => r.received.length >= 3, 20_000, 'deliveries');
    const scrape = (): Promise<string> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(body));
          })
          .once('error', reject);
      });
    const values = (text: string) => new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    await until(
      async () => Number(values(await scrape()).get('power_meter_readings_delivered_total')?.metrics[0]?.value) >= 3,
      20_000,
      'delivered counter',
    );
    const m = values(await scrape());
    const num = (name: string) => Number(m.get(name)!.metrics[0]!.value);
    expect(num('power_meter_power_watts')).toBeCloseTo(8, 0);
    expect(num('power_meter_window_average_power_watts')).toBeCloseTo(8, 0);
    expect(num('power_meter_energy_joules_total')).toBeGreaterThan(0);
    expect(num('power_meter_readings_signed_total')).toBeGreaterThanOrEqual(num('power_meter_readings_delivered_total'));
    expect(num('power_meter_outbox_size_bytes')).toBeGreaterThan(0);
    expect(m.get('power_meter_publish_state')!.metrics.find((x) => x.labels?.state === 'ok')!.value).toBe('1');
    const s = await readState(dir);
    expect(s.ok && m.get('power_meter_info')!.metrics[0]!.labels!.device_id === s.state.deviceId).toBe(true);

    await until(
      () => {
        try {
          return Number(values(readFileSync(file, 'utf8')).get('power_meter_energy_joules_total')?.metrics[0]?.value) > 0;
        } catch {
          return false;
        }
      },
      20_000,
      'metrics file',
    );
    expect(await p.stop('SIGTERM')).toBe(0);
  });
});

describe('the on-chain reward balance in MQTT and Prometheus (real daemon, real Mosquitto)', () => {
  /** A JSON-RPC endpoint answering eth_call as an Ethereum node does: decimals() 18, balanceOf 40.5 tokens. */
  async function rpc(): Promise<string> {
    const word = (n: bigint) => `0x${n.toString(16).padStart(64, '0')}`;
    const server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const rq = JSON.parse(text) as { id: number; params: [{ data: string }] };
        const result = rq.params[0].data === DECIMALS_SELECTOR ? word(18n) : word(405n * 10n ** 17n);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: rq.id, result }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('with --rpc-url the balance is a Home Assistant entity and a gauge, labelled with the token and owner', async () => {
    const b = await broker();
    const port = await freePort();
    const token = `0x${'ab'.repeat(20)}`;
    const owner = `0x${'cd'.repeat(20)}`;
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-balance-')), 'data');
    const { seen } = await subscriber(b);
    const p = backend(
      dir,
      ['--mqtt-url', b.url, '--metrics-port', String(port), '--rpc-url', await rpc(), '--reward-token', token, '--wallet-address', owner],
      mqttEnv(b),
    );
    const id = (await p.waitFor(/identity device_id=(0x[0-9a-f]{40})/, 20_000))[1]!;
    await p.waitFor(new RegExp(`metrics listening url=http://127\\.0\\.0\\.1:${port}/metrics`), 20_000);
    const t = meterTopics('power-meter', id);
    // Before the first read the state says tokens null (payloads.ts: balancePayload); on a loaded
    // machine MQTT can connect before the RPC answers, so wait for the read value.
    const balances = () => seen.filter((m) => m.topic === t.balance).map((m) => JSON.parse(m.payload) as { tokens: string | null });
    await until(() => balances().some((b) => b.tokens !== null), 20_000, 'balance published');
    expect(balances().at(-1)).toMatchObject({ tokens: '40.5', decimals: 18, token, owner });
    expect(balances().every((b) => b.tokens === null || b.tokens === '40.5')).toBe(true);
    const config = seen.find((m) => m.topic.endsWith('/reward_balance/config'));
    expect(JSON.parse(config!.payload)).toMatchObject({ state_topic: t.balance, value_template: '{{ value_json.tokens }}' });
    expect(sensorDiscoveryProblems(config!.topic, JSON.parse(config!.payload))).toEqual([]);
    const scrape = (): Promise<string> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve(body));
          })
          .once('error', reject);
      });
    await until(async () => /power_meter_reward_balance_tokens\{/.test(await scrape()), 20_000, 'balance gauge');
    const text = await scrape();
    expect(text).toContain(`power_meter_reward_balance_tokens{token="${token}",owner="${owner}"} 40.5`);
    expect(text).not.toMatch(/NaN/);
    expect(await p.stop('SIGTERM')).toBe(0);
  });
});
