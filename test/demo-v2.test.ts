import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, start, type Proc } from './support/processes.js';

const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

describe('npm run demo -- --transport w3bstream-v2', () => {
  it('runs the meter against the dev receiver in W3bstream 2 mode: every reading verified by signer recovery, with a taskID', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'demo-v2-'));
    const p = start(join(ROOT, 'scripts/demo.mjs'), [
      '--transport',
      'w3bstream-v2',
      '--load',
      '3',
      '--window',
      '1',
      '--duration',
      '10',
      '--no-preview',
      '--dir',
      dir,
    ]);
    procs.push(p);
    expect(await p.exited).toBe(0);
    expect(p.output()).toMatch(/receiver http:\/\/127\.0\.0\.1:\d+\/v1\/task/);
    /** `time  power  task 0x…  verified`, one per reading the receiver took. */
    const lines = p
      .output()
      .split('\n')
      .filter((l) => /^\d\d:\d\d:\d\d\s/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(l).toMatch(/^\S+\s+3\.\d{3}\s+task 0x[0-9a-f]{8}…\s+verified$/);
    // The receiver recovered this device from every signature; state.json names the last task.
    const records = readFileSync(join(dir, 'received.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; verified: boolean; taskId: string; project: string });
    const state = await readState(join(dir, 'data'));
    expect(state.ok).toBe(true);
    if (!state.ok) return;
    expect(records.every((r) => r.verified && r.deviceId === state.state.deviceId && r.project === '1')).toBe(true);
    expect(records.map((r) => r.taskId)).toContain(state.state.publishing.lastTaskId);
    expect(existsSync(join(dir, 'screen.png'))).toBe(true);
  }, 120_000);
});
