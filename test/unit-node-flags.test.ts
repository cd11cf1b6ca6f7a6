import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DISPLAY, ROOT, start, until, type Proc } from './support/processes.js';
import { freePort } from './support/free-port.js';
import { backendProcess, receiverProcess, records } from './support/system.js';

/*
 * The units start Node with memory flags for a 512 MB Pi (scripts/bench.mjs measures the programs
 * with the same flags). The backend's --jitless also takes WebAssembly away, which Node's built-in
 * fetch needs: both programs must keep working with exactly the units' flags.
 */
function unitNodeFlags(unit: string): string[] {
  const exec = /^ExecStart=@NODE@ (.*)$/m.exec(readFileSync(join(ROOT, 'systemd', unit), 'utf8'));
  expect(exec, `${unit} has an ExecStart=@NODE@ line`).not.toBeNull();
  const words = exec![1]!.split(/\s+/);
  return words.slice(
    0,
    words.findIndex((w) => !w.startsWith('--')),
  );
}

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

describe("the units' Node flags", () => {
  it('limit the heap (and turn the JIT off for the backend), and this Node accepts them, the backend flags also through NODE_OPTIONS as the tests pass them', () => {
    const backend = unitNodeFlags('power-meter.service');
    expect(backend).toEqual(['--jitless', '--max-semi-space-size=1', '--max-old-space-size=64']);
    // The display keeps the JIT's interpreter tiers only (--lite-mode) and a small young
    // generation: 76 -> 68 MB at defaults (README, Benchmarks); --jitless made it grow per redraw.
    expect(unitNodeFlags('power-meter-display.service')).toEqual(['--max-semi-space-size=1', '--lite-mode', '--max-old-space-size=64']);
    for (const flags of [backend, unitNodeFlags('power-meter-display.service')]) {
      const direct = spawnSync(process.execPath, [...flags, '-p', 'typeof WebAssembly'], { encoding: 'utf8' });
      expect(direct.status, direct.stderr).toBe(0);
      // The tests pass the backend's flags through NODE_OPTIONS; --lite-mode is not allowed
      // there, so the display is started with its flags on the command line, as the unit does.
      if (flags.includes('--lite-mode')) {
        expect(direct.stdout.trim()).toBe('undefined');
        continue;
      }
      const viaEnv = spawnSync(process.execPath, ['-p', 'typeof WebAssembly'], {
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: flags.join(' ') },
      });
      expect(viaEnv.status, viaEnv.stderr).toBe(0);
      // No JIT (or, for --lite-mode, no optimising tiers), no WebAssembly (what Node's built-in
      // fetch needs): neither program may use it.
      const expected = flags.includes('--jitless') || flags.includes('--lite-mode') ? 'undefined' : 'object';
      expect(direct.stdout.trim()).toBe(expected);
      expect(viaEnv.stdout.trim()).toBe(expected);
    }
  });

  it('the backend measures, signs and delivers with them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flags-'));
    const record = join(dir, 'received.jsonl');
    const port = await freePort();
    const receiver = receiverProcess(port, record);
    procs.push(receiver);
    await receiver.waitFor(/listening/);
    const flags = unitNodeFlags('power-meter.service').join(' ');
    procs.push(backendProcess(join(dir, 'data'), port, '4', { NODE_OPTIONS: flags }));
    await until(() => records(record).length >= 2, 30_000, 'two readings from the backend under the unit flags');
    for (const r of records(record)) {
      expect(r.verified).toBe(true);
      expect(Math.abs(r.sensorReading - 4) / 4).toBeLessThan(0.01);
    }
  });

  it('the display draws the screen with them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flags-'));
    const png = join(dir, 'screen.png');
    // On the command line, as in the unit's ExecStart (NODE_OPTIONS refuses --lite-mode).
    const [first, ...rest] = unitNodeFlags('power-meter-display.service');
    procs.push(start(first!, [...rest, DISPLAY, '--panel', 'png', '--png', png, '--data-dir', join(dir, 'data')]));
    await until(() => existsSync(png) && readFileSync(png).subarray(1, 4).toString() === 'PNG', 30_000, 'the screen image');
  });
});
