/**
 * Backend benchmark (`npm run bench`): runs the real daemon for a minute at the default settings
 * (simulated INA219 on the demo board, 5 s windows, publishing to a local dev receiver) and
 * samples its CPU time, resident memory and bytes written from /proc; then the same with a
 * simulated INA228, whose energy comes from its accumulator (BENCH_BACKEND_SKIP_INA228 skips it).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevReceiver } from '@power-meter/dev-node';
import { median, reportFigure } from '../../../scripts/bench-figure.mjs';

const DURATION_S = Number(process.env.BENCH_BACKEND_SECONDS ?? 60);
const CLK_TCK = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}
function writeBytes(pid: number): number {
  const m = /wchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

// BENCH_BACKEND_TRANSPORT=w3bstream-v2: the current node's task API, with the task state of the
// newest delivered task polled (GET /v1/task/<id>) every BENCH_TASK_POLL_S (default 60, the meter's).
const v2 = process.env.BENCH_BACKEND_TRANSPORT === 'w3bstream-v2';
const pollS = process.env.BENCH_TASK_POLL_S ?? '60';
const receiver = await startDevReceiver(v2 ? { transport: 'w3bstream-v2', taskStepMs: 1000 } : { project: 'bench', token: 'bench-token' });
const transportArgs = v2 ? ['--transport', 'w3bstream-v2', '--project-id', '1', '--task-poll-interval', pollS] : [];
// The built program beside this benchmark's output (dist-bench/ -> dist/cli.js).
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
// The service's Node flags (scripts/bench.mjs reads them from the unit's ExecStart).
const nodeFlags: string[] = JSON.parse(process.env.POWER_METER_BENCH_NODE_FLAGS ?? '[]');
// Let it start before measuring the steady state: module loading, key creation, the first
// connection to the receiver, and V8's memory reducer, which compacts the heap a few seconds
// after start (three full collections at about 8-10 s, measured with --trace-gc). A service
// runs for months: what counts is the rate it settles at, not its first quarter minute.
const WARMUP_S = Number(process.env.BENCH_BACKEND_WARMUP_SECONDS ?? 15);

interface DaemonRun {
  cpuPct: number;
  cpuPerS: number[];
  rss: number[];
  bytesPerDay: number;
  wallS: number;
  delivered: number;
}

/** One daemon in its own data directory for WARMUP_S + DURATION_S, sampled from /proc. */
async function runDaemon(extraArgs: string[]): Promise<DaemonRun> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-bench-'));
  writeFileSync(join(dir, 'config.json'), '{}'); // defaults only, whatever /etc/power-meter holds
  const before = receiver.received.length;
  const child = spawn(
    process.execPath,
    [...nodeFlags, cli, '--sensor', 'sim', ...extraArgs, '--data-dir', join(dir, 'data'), '--publish-url', receiver.url, ...transportArgs],
    {
      env: { PATH: process.env.PATH, W3BSTREAM_PUBLISHER_TOKEN: 'bench-token', POWER_METER_CONFIG: join(dir, 'config.json') },
      stdio: 'ignore',
    },
  );
  const pid = child.pid!;
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const cpu0 = cpuTicks(pid);
  const w0 = writeBytes(pid);
  const t0 = Date.now();
  const rss: number[] = [];
  const cpuPerS: number[] = [];
  let last = cpu0;
  for (let i = 0; i < DURATION_S; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const c = cpuTicks(pid);
    cpuPerS.push(((c - last) / CLK_TCK) * 100);
    last = c;
    rss.push(rssMb(pid));
  }
  const wallS = (Date.now() - t0) / 1000;
  const cpuPct = ((cpuTicks(pid) - cpu0) / CLK_TCK / wallS) * 100;
  const bytesPerDay = ((writeBytes(pid) - w0) / wallS) * 86_400;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  return { cpuPct, cpuPerS, rss, bytesPerDay, wallS, delivered: receiver.received.length - before };
}

const polled = await runDaemon([]);
// The same meter on a simulated INA228, energy from its accumulator. The emulator integrates every
// 4.17 ms cycle in this process (a real chip does that itself), so the figure is an upper bound.
const accumulated = process.env.BENCH_BACKEND_SKIP_INA228 ? null : await runDaemon(['--sim-chip', 'ina228']);
await receiver.close();

const { cpuPct, cpuPerS, rss, bytesPerDay, wallS } = polled;
console.log(
  `power-meter daemon, default settings (sim demo load, 5 s windows, publishing to a local receiver${v2 ? `: W3bstream 2 /v1/task, task state polled every ${pollS} s` : ''}), ${wallS.toFixed(0)} s after ${WARMUP_S} s of start-up, node ${nodeFlags.join(' ') || '(no flags)'}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} on ${availableParallelism()} cores:`,
);
console.log(`  CPU ${cpuPct.toFixed(2)} % of one core (per-second median ${median(cpuPerS).toFixed(1)} %, clock tick 10 ms)`);
console.log(`  RSS median ${median(rss).toFixed(1)} MB, max ${Math.max(...rss).toFixed(1)} MB`);
console.log(
  `  written (write syscalls, all files, most of it to the RAM directory; the card's share is the wear bench's): ${(bytesPerDay / 1e6).toFixed(1)} MB/day; readings delivered: ${polled.delivered}`,
);
if (accumulated)
  console.log(
    `  the same with --sim-chip ina228 (energy from the chip's accumulator): CPU ${accumulated.cpuPct.toFixed(2)} % (per-second median ${median(accumulated.cpuPerS).toFixed(1)} %), RSS max ${Math.max(...accumulated.rss).toFixed(1)} MB, readings delivered: ${accumulated.delivered}`,
  );
reportFigure(
  `backend CPU at default settings${v2 ? ` (W3bstream 2 /v1/task, task polling every ${pollS} s)` : ''}`,
  cpuPct,
  '% of a core',
  '< 1 %',
  cpuPct < 1,
);
reportFigure('backend resident memory (max)', Math.max(...rss), 'MB', '< 60 MB', Math.max(...rss) < 60);
reportFigure('backend bytes written per day', bytesPerDay / 1e6, 'MB/day', '', null);
if (accumulated) {
  reportFigure(
    'backend CPU, INA228 on its energy accumulator',
    accumulated.cpuPct,
    '% of a core',
    '< the INA219 polling figure',
    accumulated.cpuPct < cpuPct,
  );
  reportFigure('backend CPU, INA219 polling / INA228 accumulator', cpuPct / accumulated.cpuPct, 'x', '> 1', cpuPct > accumulated.cpuPct);
}
