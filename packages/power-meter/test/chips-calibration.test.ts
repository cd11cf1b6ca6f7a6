import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILES, parseState } from '@power-meter/meter-files';
import { verifyBody } from '@power-meter/w3bstream';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, ROOT, start, until, type Proc } from '../../../test/support/processes.js';

const TOKEN = 'test-token-28c1';
/** The program with a fault injected through its dependencies (test/support/meter-with-fault.mjs). */
const WITH_FAULT = join(ROOT, 'packages/power-meter/test/support/meter-with-fault.mjs');
const procs: Proc[] = [];
const receivers: DevReceiver[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

function run(args: string[], env: Record<string, string> = {}): Proc {
  const p = start(BACKEND, args, env);
  procs.push(p);
  return p;
}

async function finished(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; out: string }> {
  const p = run(args, env);
  const code = await p.exited;
  return { code, out: p.output() };
}

const dataDir = () => join(mkdtempSync(join(tmpdir(), 'pm28-')), 'data');

describe('choosing the chip (real processes, simulated sensors)', () => {
  it.each(['ina226', 'ina260', 'ina228'])(
    'read --sensor sim --sim-chip %s --sim-load 8 reads 8 W within 0.2 W and names the chip',
    async (chip) => {
      const { code, out } = await finished([
        'read',
        '--sensor',
        'sim',
        '--sim-chip',
        chip,
        '--sim-load',
        '8',
        '--data-dir',
        dataDir(),
        '--json',
      ]);
      expect(code).toBe(0);
      const r = JSON.parse(out) as { powerW: number; chip: string; simulated: boolean; calibrationId: string | null };
      expect(Math.abs(r.powerW - 8)).toBeLessThan(0.2);
      expect(r).toMatchObject({ chip: chip.toUpperCase(), simulated: true, calibrationId: null });
      const text = await finished(['read', '--sensor', 'sim', '--sim-chip', chip, '--sim-load', '8', '--data-dir', dataDir()]);
      expect(text.out).toMatch(new RegExp(`${chip.toUpperCase()} \\(simulated\\), uncalibrated`));
    },
  );

  it('refuses settings a chip cannot take before touching anything (exit 2)', async () => {
    const dir = dataDir();
    const a = await finished(['read', '--sensor', 'ina260', '--shunt-ohms', '0.01', '--data-dir', dir]);
    expect(a.code).toBe(2);
    expect(a.out).toMatch(/--shunt-ohms = 0.01 .*the INA260 measures through its own 2 mohm shunt/);
    const b = await finished(['read', '--sensor', 'sim', '--sim-chip', 'ina226', '--max-current', '3.2', '--data-dir', dir]);
    expect(b.code).toBe(2);
    expect(b.out).toMatch(/--max-current = 3.2 .*at most 0.82 A with a 0.1 ohm shunt .*\(INA226\)/);
    // The INA228's own breakout defaults: 0.015 ohm, 10 A (the INA219's 3.2 A would be within, 12 A is not).
    const c = await finished(['read', '--sensor', 'ina228', '--max-current', '12', '--data-dir', dir]);
    expect(c.out).toMatch(/at most 10.92 A with a 0.015 ohm shunt/);
  });

  it('a chip that is not the configured one stops read and the daemon with exit 2 and names the setting to change', async () => {
    // The simulated sensor is an INA228 while the setting says INA226 (injected: test/support/meter-with-fault.mjs).
    const wrongChip = (args: string[]): Proc => {
      const p = start(WITH_FAULT, ['emulated-chip=ina228', ...args]);
      procs.push(p);
      return p;
    };
    const rp = wrongChip(['read', '--sensor', 'sim', '--sim-chip', 'ina226', '--data-dir', dataDir()]);
    const r = { code: await rp.exited, out: rp.output() };
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/0x40 is an INA228 .*not an INA226: set --sim-chip ina228/);
    const d = wrongChip(['--sensor', 'sim', '--sim-chip', 'ina226', '--data-dir', dataDir(), '--window', '1']);
    expect(await d.exited).toBe(2);
    expect(d.output()).toMatch(/is an INA228 .*not an INA226/);
  });

  it('doctor names the simulated chip', async () => {
    const { out } = await finished(['doctor', '--sensor', 'sim', '--sim-chip', 'ina260', '--data-dir', dataDir(), '--json']);
    const checks = (JSON.parse(out) as { checks: Array<{ name: string; status: string; detail: string }> }).checks;
    expect(checks.find((c) => c.name === 'sensor')!.detail).toMatch(/^simulated INA260 /);
    expect(checks.find((c) => c.name === 'calibration')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^none/) });
  });
});

describe('calibrate against a reference (real processes)', () => {
  const sim = (dir: string) => ['--sensor', 'sim', '--sim-chip', 'ina228', '--sim-load', '8', '--data-dir', dir];

  it('needs a reference, refuses an absurd one without storing anything, and refuses while the meter runs', async () => {
    const dir = dataDir();
    const none = await finished(['calibrate', ...sim(dir)]);
    expect(none.code).toBe(2);
    expect(none.out).toMatch(/needs what the reference meter shows/);
    const absurd = await finished(['calibrate', ...sim(dir), '--reference-w', '80', '--seconds', '3']);
    expect(absurd.code).toBe(2);
    expect(absurd.out).toMatch(/calibration refused: the current gain would be 10\.0000 .*shunt resistance setting.*nothing was stored/);
    expect(() => statSync(join(dir, 'calibration.json'))).toThrow();
    const meter = run(['--window', '1', ...sim(dir)]);
    await until(() => parseState(safeRead(join(dir, FILES.state))).ok, 20_000, 'state.json');
    const busy = await finished(['calibrate', ...sim(dir), '--reference-w', '8', '--seconds', '3']);
    expect(busy.code).toBe(1);
    expect(busy.out).toMatch(/the meter is running on .*stop the meter first/);
    await meter.stop();
  });

  it('stores gain (one point) then gain and offset (two points), applies them to state.json and the signed readings, across restarts', async () => {
    const dir = dataDir();
    const one = await finished(['calibrate', ...sim(dir), '--reference-w', '8.08', '--seconds', '3']);
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/current gain 1\.0100\d+, current offset 0\.000 mA \(current gain from 1 point\)/);
    const file = join(dir, 'calibration.json');
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const two = await finished(['calibrate', ...sim(dir), '--sim-load', '1', '--reference-w', '1.0', '--seconds', '3']);
    expect(two.code).toBe(0);
    expect(two.out).toMatch(/\(current gain and offset from 2 points\)/);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { id: string; currentGain: number; currentOffsetA: number; points: unknown[] };
    expect(stored.points).toHaveLength(2);
    // 8 W read as 8.08, 1 W as 1.0: through both points.
    const cal = (w: number) => stored.currentGain * w + 12 * stored.currentOffsetA;
    expect(cal(8)).toBeCloseTo(8.08, 2);
    expect(cal(1)).toBeCloseTo(1.0, 2);

    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const env = { W3BSTREAM_PUBLISHER_TOKEN: TOKEN, POWER_METER_RETRY_MAX_MS: '500' };
    const args = ['--window', '1', ...sim(dir), '--publish-url', r.url, '--reading-calibration-id', 'true'];
    for (const round of [1, 2]) {
      const before = r.received.length;
      const meter = run(args, env);
      await meter.waitFor(new RegExp(`calibration ${stored.id} applied`));
      await until(() => r.received.length >= before + 2, 20_000, `2 readings in round ${round}`);
      const state = parseState(readFileSync(join(dir, FILES.state), 'utf8'));
      expect(state.ok && state.state.sensor).toMatchObject({ chip: 'INA228', simulated: true, calibrationId: stored.id });
      expect(state.ok && Math.abs(state.state.lastWindow!.avgPowerW - 8.08)).toBeLessThan(0.01);
      for (const x of r.received.slice(before)) {
        expect(x.verified).toBe(true);
        expect(Math.abs(x.sensorReading! - 8.08)).toBeLessThan(0.01);
        const v = verifyBody(x.body);
        expect(v.ok && v.dataText).toMatch(new RegExp(`,"calibration_id":"${stored.id}"}$`));
      }
      expect(await meter.stop()).toBe(0);
    }
    const doctor = await finished(['doctor', ...sim(dir), '--json']);
    const check = (JSON.parse(doctor.out) as { checks: Array<{ name: string; detail: string }> }).checks.find(
      (c) => c.name === 'calibration',
    );
    expect(check!.detail).toMatch(new RegExp(`^${stored.id} of .*current gain and offset from 2 points`));
    // Another chip does not get this chip's factors.
    const other = await finished(['read', '--sensor', 'sim', '--sim-chip', 'ina219', '--sim-load', '8', '--data-dir', dir, '--json']);
    expect(JSON.parse(other.out.split('\n')[0]!)).toMatchObject({ chip: 'INA219', calibrationId: null });
    expect(other.out).toMatch(/made with the simulated INA228, the sensor is the simulated INA219: not applied/);
    // A damaged file is named, not applied, and the meter measures on.
    writeFileSync(file, '{"version":1');
    const damaged = await finished(['read', ...sim(dir), '--json']);
    expect(JSON.parse(damaged.out.split('\n')[0]!)).toMatchObject({ calibrationId: null });
    expect(damaged.out).toMatch(/calibration.json is not JSON/);
  });
});

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
