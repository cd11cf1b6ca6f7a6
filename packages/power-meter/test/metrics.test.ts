import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleRewardBalance, exampleState, type MeterState } from '@power-meter/meter-files';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test/support/processes.js';
import { FaultCounter, METRICS } from '../src/metrics/metrics.js';
import { MetricsOutput } from '../src/metrics/output.js';
import { freePort } from '../../../test/support/free-port.js';

/** The exposition text through a real Prometheus text-format parser, as name -> family. */
function parse(text: string): Map<string, PrometheusFamily> {
  return new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
}
const value = (m: Map<string, PrometheusFamily>, name: string, labels?: Record<string, string>): number => {
  const f = m.get(name);
  if (!f) throw new Error(`no metric ${name}`);
  const s = labels ? f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v)) : f.metrics[0];
  return Number(s!.value);
};

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

// 1,045 numbers used: 45 readings signed, then 1,000 skipped (a power cut): the counter is the signatures.
const OUTBOX = { waiting: 3, dropped: 1, rejected: 2, unhandled: 0, delivered: 40, nextSeq: 1046, appended: 45, skipped: 1000 };

async function output(over: Partial<Parameters<typeof MetricsOutput.start>[0]> = {}): Promise<{ m: MetricsOutput; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-metrics-'));
  writeFileSync(join(dir, 'outbox.sqlite'), Buffer.alloc(4096));
  writeFileSync(join(dir, 'outbox.sqlite-wal'), Buffer.alloc(1000));
  const lines: string[] = [];
  const m = await MetricsOutput.start({
    outboxStats: () => OUTBOX,
    outboxFile: join(dir, 'outbox.sqlite'),
    file: '',
    fileIntervalMs: 60_000,
    port: 0,
    version: '9.9.9',
    log: (l) => lines.push(l),
    ...over,
  });
  stops.push(() => m.stop());
  return { m, lines };
}

function get(port: number, path: string, host = '127.0.0.1'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .once('error', reject);
  });
}

describe('Prometheus metrics', () => {
  it('name the chip that measures, whether simulated, and the calibration (an older state: INA219, none)', async () => {
    const { m } = await output();
    const base = exampleState();
    m.onState({ ...base, sensor: { ...base.sensor, chip: 'INA228', simulated: false, calibrationId: '20260514-3f9a1c2e' } });
    const p = parse((await m.text())!);
    expect(value(p, 'power_meter_sensor_info', { chip: 'INA228', simulated: 'false', calibration_id: '20260514-3f9a1c2e' })).toBe(1);
    expect(p.get('power_meter_sensor_info')!.metrics).toHaveLength(1);
    m.onState(base);
    const old = parse((await m.text())!);
    expect(old.get('power_meter_sensor_info')!.metrics).toEqual([
      { value: '1', labels: { chip: 'INA219', simulated: 'false', calibration_id: 'none' } },
    ]);
  });

  it('follow the naming conventions: base units, counters end in _total, every metric has help', () => {
    for (const d of METRICS) {
      expect(d.name).toMatch(/^power_meter_[a-z_]+$/);
      expect(d.name.endsWith('_total')).toBe(d.type === 'counter');
      expect(d.name).not.toMatch(/_(wh|kwh|ms|percent|kw)(_|$)/);
      expect(d.help.length).toBeGreaterThan(10);
    }
  });

  it('parse with a Prometheus text-format parser and carry the state, the outbox counters and the outbox size', async () => {
    const { m } = await output();
    expect(await m.text()).toBeNull(); // nothing before the first state
    const s = exampleState({ energyTotalWh: 12.5, powerW: 4.02 });
    m.onState(s);
    const p = parse((await m.text())!);
    expect(p.get('power_meter_energy_joules_total')!.type).toBe('COUNTER');
    expect(value(p, 'power_meter_energy_joules_total')).toBeCloseTo(12.5 * 3600, 6);
    expect(value(p, 'power_meter_power_watts')).toBeCloseTo(4.02, 6);
    expect(value(p, 'power_meter_window_average_power_watts')).toBeCloseTo(s.lastWindow!.avgPowerW, 6);
    expect(value(p, 'power_meter_window_observed_ratio')).toBeCloseTo(s.lastWindow!.observedFraction, 6);
    expect(value(p, 'power_meter_readings_signed_total')).toBe(45);
    expect(p.get('power_meter_sequence_skipped_total')!.type).toBe('COUNTER');
    expect(value(p, 'power_meter_sequence_skipped_total')).toBe(1000);
    expect(value(p, 'power_meter_readings_delivered_total')).toBe(40);
    expect(value(p, 'power_meter_readings_refused_total')).toBe(2);
    expect(value(p, 'power_meter_readings_dropped_total')).toBe(s.publishing.dropped);
    expect(value(p, 'power_meter_readings_waiting')).toBe(s.publishing.waiting);
    expect(value(p, 'power_meter_publish_state', { state: s.publishing.state })).toBe(1);
    expect(p.get('power_meter_publish_state')!.metrics.filter((x) => x.value === '1')).toHaveLength(1);
    expect(value(p, 'power_meter_publish_last_success_timestamp_seconds')).toBe(s.publishing.lastSuccessMs! / 1000);
    expect(value(p, 'power_meter_outbox_size_bytes')).toBe(5096);
    expect(value(p, 'power_meter_sensor_up')).toBe(1);
    expect(value(p, 'power_meter_info', { device_id: s.deviceId, version: '9.9.9' })).toBe(1);
    for (const d of METRICS) expect(p.has(d.name), d.name).toBe(true);
  });

  it('leave power, voltage and current out (never NaN, never 0) while the sensor is faulty, and count faults and incomplete windows', async () => {
    const { m } = await output();
    const ok = exampleState();
    const fault: MeterState = { ...ok, powerW: null, sensor: { state: 'fault', reason: 'EIO', busV: null, currentA: null } };
    m.onState(ok);
    m.onState(fault);
    m.onState(fault); // the same fault: still one
    m.onState({ ...ok, lastWindow: { ...ok.lastWindow!, endMs: ok.lastWindow!.endMs + 5000, complete: false } });
    m.onState(fault);
    const text = (await m.text())!;
    const p = parse(text);
    for (const name of ['power_meter_power_watts', 'power_meter_bus_volts', 'power_meter_current_amperes']) {
      expect(p.get(name)?.metrics ?? [], name).toEqual([]);
      expect(text).toMatch(new RegExp(`^# TYPE ${name} gauge$`, 'm')); // the family is declared, with no sample
    }
    expect(text).not.toMatch(/NaN/);
    expect(value(p, 'power_meter_sensor_up')).toBe(0);
    expect(value(p, 'power_meter_sensor_faults_total')).toBe(2);
    expect(value(p, 'power_meter_windows_incomplete_total')).toBe(1);
    const c = new FaultCounter();
    c.update(ok);
    c.update(ok);
    expect([c.sensorFaults, c.incompleteWindows]).toEqual([0, 0]);
  });

  it('have no NaN before the first window, delivery or balance read: those series are absent', async () => {
    const { m } = await output();
    const first = exampleState({
      powerW: null,
      lastWindow: null,
      publishing: { state: 'retrying', reason: 'ECONNREFUSED', waiting: 1, dropped: 0, lastSuccessMs: null, held: 0 },
      rewardBalance: exampleRewardBalance({ raw: null, decimals: null, tokens: null, readAtMs: null, error: 'RPC unreachable' }),
    });
    m.onState(first);
    const text = (await m.text())!;
    expect(text).not.toMatch(/NaN/);
    const p = parse(text);
    for (const name of [
      'power_meter_power_watts',
      'power_meter_window_average_power_watts',
      'power_meter_window_observed_ratio',
      'power_meter_window_end_timestamp_seconds',
      'power_meter_publish_last_success_timestamp_seconds',
      'power_meter_reward_balance_tokens',
      'power_meter_reward_balance_read_timestamp_seconds',
    ])
      expect(p.get(name)?.metrics ?? [], name).toEqual([]);
    // What is known is there: the totals, the counters, the state, the live voltage.
    expect(value(p, 'power_meter_energy_joules_total')).toBe(first.energyTotalWh * 3600);
    expect(value(p, 'power_meter_publish_state', { state: 'retrying' })).toBe(1);
    expect(value(p, 'power_meter_bus_volts')).toBe(11.9);
  });

  it('carry the live voltage and current and the on-chain balance with its read time', async () => {
    const { m } = await output();
    const b = exampleRewardBalance({ tokens: '40.5', readAtMs: 1_764_000_123_000 });
    m.onState(exampleState({ rewardBalance: b }));
    const p = parse((await m.text())!);
    expect(value(p, 'power_meter_bus_volts')).toBe(11.9);
    expect(value(p, 'power_meter_current_amperes')).toBe(0.338);
    expect(value(p, 'power_meter_reward_balance_tokens', { token: b.token, owner: b.owner })).toBe(40.5);
    expect(value(p, 'power_meter_reward_balance_read_timestamp_seconds')).toBe(1_764_000_123);
    // Not configured: no balance series at all.
    m.onState(exampleState());
    expect(parse((await m.text())!).get('power_meter_reward_balance_tokens')?.metrics ?? []).toEqual([]);
  });

  it('write the textfile -rw-r--r-- even under the service unit umask 0027, so node_exporter (another user) can read it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pm-prom-mode-')), 'power_meter.prom');
    const old = process.umask(0o027);
    try {
      const { m } = await output({ file, fileIntervalMs: 60_000 });
      m.onState(exampleState());
      await until(() => existsSync(file), 10_000, 'metrics file');
      expect((statSync(file).mode & 0o777).toString(8)).toBe('644');
      // The same umask gives other files the mode the unit means: what the write would have been.
      writeFileSync(`${file}.other`, 'x', { mode: 0o644 });
      expect((statSync(`${file}.other`).mode & 0o777).toString(8)).toBe('640');
    } finally {
      process.umask(old);
    }
  });

  it('serve /metrics on 127.0.0.1 only, and write the textfile atomically at most every interval', async () => {
    const port = await freePort();
    const file = join(mkdtempSync(join(tmpdir(), 'pm-prom-')), 'power_meter.prom');
    const { m, lines } = await output({ port, file, fileIntervalMs: 60_000 });
    expect(lines).toContain(`metrics listening url=http://127.0.0.1:${port}/metrics`);
    expect((await get(port, '/metrics')).status).toBe(503); // no state yet
    m.onState(exampleState({ energyTotalWh: 1 }));
    const r = await get(port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(parse(r.body), 'power_meter_energy_joules_total')).toBe(3600);
    expect((await get(port, '/other')).status).toBe(404);
    // Not on the machine's other addresses: only loopback is bound.
    const addr = (m as unknown as { server: http.Server }).server.address();
    expect(addr).toMatchObject({ address: '127.0.0.1', port });

    await until(
      () => {
        try {
          return value(parse(readFileSync(file, 'utf8')), 'power_meter_energy_joules_total') === 3600;
        } catch {
          return false;
        }
      },
      10_000,
      'metrics file',
    );
    m.onState(exampleState({ energyTotalWh: 2 })); // within the interval: the file keeps the first figures
    await new Promise((res) => setImmediate(res));
    expect(value(parse(readFileSync(file, 'utf8')), 'power_meter_energy_joules_total')).toBe(3600);
    expect(value(parse((await get(port, '/metrics')).body), 'power_meter_energy_joules_total')).toBe(7200);
  });

  it('a taken port or an unwritable file is one clear log line, not a stop', async () => {
    const port = await freePort();
    const blocker = http.createServer().listen(port, '127.0.0.1');
    stops.push(() => new Promise((r) => blocker.close(() => r())));
    await new Promise((r) => blocker.once('listening', r));
    const { m, lines } = await output({ port, file: '/nonexistent-dir/x.prom' });
    expect(lines.join('\n')).toMatch(new RegExp(`cannot listen on 127.0.0.1:${port} \\(EADDRINUSE\\): choose another --metrics-port`));
    m.onState(exampleState());
    m.onState(exampleState());
    await until(() => lines.some((l) => l.includes('cannot write /nonexistent-dir/x.prom')), 10_000, 'file error line');
  });
});
