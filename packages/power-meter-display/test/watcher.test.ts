import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleState, writeFileAtomic } from '@power-meter/meter-files';
import { afterEach, describe, expect, it } from 'vitest';
import { StateWatcher } from '../src/watch/watcher.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await sleep(20);
  }
}

const watchers: StateWatcher[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
});

function watch(dataDir: string, tickMs = 60_000) {
  const calls: string[] = [];
  const w = new StateWatcher({ dataDir, tickMs, coalesceMs: 30, onChange: (reason) => void calls.push(reason) });
  watchers.push(w);
  w.start();
  return calls;
}

describe('state watcher', () => {
  it('coalesces a burst of 50 rewrites into a few redraws', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-'));
    const calls = watch(dir);
    await until(() => calls.length >= 1);
    await sleep(300); // let chokidar become ready
    const before = calls.length;
    for (let i = 0; i < 50; i++) await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ powerW: i })));
    await until(() => calls.length > before);
    await sleep(300);
    const redraws = calls.length - before;
    expect(redraws).toBeGreaterThanOrEqual(1);
    expect(redraws).toBeLessThanOrEqual(10); // 50 writes, coalesced (bound loose for a busy CI machine)
  });

  it('ignores other files in the data directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'watch-'));
    const calls = watch(dir);
    await until(() => calls.length >= 1);
    await sleep(300);
    const before = calls.length;
    writeFileSync(join(dir, 'current_power_usage'), '1.000');
    writeFileSync(join(dir, 'status'), 'Success');
    await sleep(300);
    expect(calls.length).toBe(before);
  });

  it('starts before the directory exists and follows its deletion and re-creation', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'watch-'));
    const dir = join(parent, 'data');
    const calls = new Array<string>();
    const w = new StateWatcher({ dataDir: dir, tickMs: 200, coalesceMs: 10, onChange: (r) => void calls.push(r) });
    watchers.push(w);
    w.start();
    await sleep(300);
    mkdirSync(dir);
    await sleep(500); // the tick arms the watcher
    let n = calls.filter((c) => c === 'change').length;
    await writeFileAtomic(dir, 'state.json', '{}');
    await until(() => calls.filter((c) => c === 'change').length > n);
    rmSync(dir, { recursive: true });
    await sleep(400);
    mkdirSync(dir);
    await sleep(500);
    n = calls.filter((c) => c === 'change').length;
    await writeFileAtomic(dir, 'state.json', '{"again":1}');
    await until(() => calls.filter((c) => c === 'change').length > n);
  });
});
