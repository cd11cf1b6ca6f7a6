/**
 * Display benchmark (`npm run bench`): latency from a state.json change to the frame pushed to
 * the panel (through the real watcher), render + convert time per frame, bytes sent for a typical
 * update against a full frame, and the resident memory of the real display process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { exampleState, writeFileAtomic } from '@power-meter/meter-files';
import { openModule, rgbaToRgb565be } from '@power-meter/st7735';
import { DisplayController, buildScreenModel, ScreenRenderer, StateWatcher } from '@power-meter/power-meter-display';
import { reportFigure } from '../../../scripts/bench-figure.mjs';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'disp-bench-'));
const renderer = new ScreenRenderer('landscape');

// Render + convert per frame.
const renderUs: number[] = [];
for (let i = 0; i < 200; i++) {
  const t0 = performance.now();
  const f = renderer.render(buildScreenModel(exampleState({ updatedAtMs: 1e12, powerW: 3 + (i % 50) / 10 }), null, 1e12));
  rgbaToRgb565be(f.rgba, f.width);
  renderUs.push((performance.now() - t0) * 1000);
}
console.log(
  `render + convert a full frame: p50 ${(pct(renderUs, 50) / 1000).toFixed(2)} ms, p99 ${(pct(renderUs, 99) / 1000).toFixed(2)} ms`,
);
reportFigure('render + convert per frame (p50)', pct(renderUs, 50) / 1000, 'ms', '', null);

// Latency through the real watcher and the real driver on the emulated module.
const st7735 = await openModule({ kind: 'emulated', variant: 'greentab', rotation: 90 });
let pushedAt = 0;
const controller = new DisplayController({
  dataDir: dir,
  renderer,
  panel: {
    width: 160,
    height: 128,
    writeRegion: (x, y, w, h, px) => st7735.device.writeRegion(x, y, w, h, px),
    afterUpdate: async () => {
      pushedAt = performance.now();
    },
    close: () => st7735.close(),
  },
});
await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 4 })));
const watcher = new StateWatcher({
  dataDir: dir,
  onChange: async () => {
    await controller.refresh();
  },
});
watcher.start();
await watcher.whenReady();
const latencies: number[] = [];
const bytes: number[] = [];
// An update not pushed within 5 s counts as missed (the watcher's periodic re-check would have
// drawn it after at most 1 s, so a miss means something is broken, not slow).
let missed = 0;
for (let i = 0; i < 150; i++) {
  const before = controller.bytesSent;
  pushedAt = 0;
  const t0 = performance.now();
  await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 4 + ((i * 7) % 100) / 100 })));
  while (pushedAt === 0 && performance.now() - t0 < 5000) await sleep(1);
  if (pushedAt > 0) latencies.push(pushedAt - t0);
  else missed++;
  bytes.push(controller.bytesSent - before);
  await sleep(40);
}
await watcher.close();
const worst = Math.max(...latencies);
const full = 160 * 128 * 2;
const typical = pct(bytes, 50);
console.log(
  `state.json change -> frame pushed (watcher, render, diff, driver): p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, worst ${worst.toFixed(1)} ms over ${latencies.length} updates, ${missed} not pushed within 5 s`,
);
console.log(
  `bytes sent for a typical update (live power changes): median ${typical} B = ${((typical / full) * 100).toFixed(1)} % of a full frame (${full} B)`,
);
reportFigure('state change -> frame pushed (p99)', pct(latencies, 99), 'ms', 'p99 < 50 ms', pct(latencies, 99) < 50);
reportFigure('state change -> frame pushed (p50)', pct(latencies, 50), 'ms', '', null);
// The worst case has no budget of its own: on a loaded machine one update can wait for the
// scheduler, but a value near 1 s would again mean a missed watch event caught by the re-check.
reportFigure('state change -> frame pushed (worst)', worst, 'ms', '', null);
reportFigure('updates not pushed within 5 s', missed, 'count', '0', missed === 0);
reportFigure('bytes for a typical update vs full frame', (typical / full) * 100, '%', '< 25 %', typical / full < 0.25);

// Resident memory of the real program while updates arrive: at defaults (the ST7735 driver,
// frame diffing and SPI traffic; here the emulated module takes the SPI device's place and
// nothing is saved), and on the png panel, which also encodes and writes a PNG file per update.
// The built program beside this benchmark's output (dist-bench/ -> dist/cli.js).
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
writeFileSync(join(dir, 'config.json'), '{}');
// The service's Node flags (scripts/bench.mjs reads them from the unit's ExecStart).
const nodeFlags: string[] = JSON.parse(process.env.POWER_METER_BENCH_NODE_FLAGS ?? '[]');
// And the environment the unit gives the process (MALLOC_ARENA_MAX).
const unitEnv: Record<string, string> = JSON.parse(process.env.POWER_METER_BENCH_UNIT_ENV ?? '{}');
async function residentMb(panelArgs: string[]): Promise<{ maxMb: number; medianMb: number }> {
  const child = spawn(process.execPath, [...nodeFlags, cli, ...panelArgs, '--data-dir', dir], {
    env: { PATH: process.env.PATH, POWER_METER_CONFIG: join(dir, 'config.json'), ...unitEnv },
    stdio: 'ignore',
  });
  const rss: number[] = [];
  // A minute at 4 updates/s: memory that grows with redraws shows here (ten seconds hid it).
  for (let i = 0; i < 240; i++) {
    await writeFileAtomic(dir, 'state.json', JSON.stringify(exampleState({ updatedAtMs: Date.now(), powerW: 2 + (i % 10) })));
    await sleep(250);
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    rss.push(Number(m?.[1] ?? 0) / 1024);
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return { maxMb: Math.max(...rss), medianMb: pct(rss, 50) };
}
const atDefaults = await residentMb(['--panel', 'emulated']);
const onPng = await residentMb(['--panel', 'png', '--png', join(dir, 'screen.png')]);
rmSync(dir, { recursive: true, force: true });
const how = `4 updates/s for 60 s, node ${nodeFlags.join(' ') || '(no flags)'}, ${
  Object.entries(unitEnv)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ') || 'no unit environment'
}`;
console.log(
  `power-meter-display resident memory (${how}): at defaults (ST7735 driver, emulated panel) max ${atDefaults.maxMb.toFixed(1)} MB, median ${atDefaults.medianMb.toFixed(1)} MB; png panel max ${onPng.maxMb.toFixed(1)} MB, median ${onPng.medianMb.toFixed(1)} MB`,
);
reportFigure('display resident memory at defaults (max)', atDefaults.maxMb, 'MB', '< 70 MB', atDefaults.maxMb < 70);
reportFigure('display resident memory, png panel (max)', onPng.maxMb, 'MB', '', null);
