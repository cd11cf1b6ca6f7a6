/**
 * SD-card wear benchmark (`npm run bench`): bytes that reach the block device per day, measured
 * where an SD card would see them. The data directory is its own ext4 file system (default
 * mkfs.ext4 features, initialised fully at mkfs time, mounted noatime as Raspberry Pi OS mounts
 * its root) on a loop device; the
 * real daemon runs on it with the simulated demo load, publishing to a local dev receiver; `sync`
 * runs before each reading of /sys/block/<loop>/stat (field 7: sectors written, 512 bytes each).
 *
 * Time-compressed five times, so that a few real minutes stand for a longer stretch with the
 * same writes per reading: 1 s windows and a 12 s sync interval are the defaults' 5 s and 60 s
 * divided by five (12 readings per sync either way). Per-day figures are bytes per reading times
 * 17,280 (a day of 5 s readings). The kernel's own periodic writeback and ext4's 5 s journal
 * commit are not compressed; every sync commits the journal itself, so they add no commit the
 * sync would not have made.
 *
 * Needs root (losetup, mount). Without loop devices it says so and measures nothing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { reportFigure } from '../../../scripts/bench-figure.mjs';

const COMPRESSION = 5;
const READINGS_PER_DAY = 86_400 / 5;
const BUDGET_MB_PER_DAY = 25;
const SECONDS = Number(process.env.BENCH_WEAR_SECONDS ?? 120);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** Sectors written to the device so far, after `sync` (field 7 of /sys/block/<dev>/stat). */
function bytesWritten(device: string): number {
  run('sync', []);
  const fields = readFileSync(`/sys/block/${basename(device)}/stat`, 'utf8')
    .trim()
    .split(/\s+/);
  return Number(fields[6]) * 512;
}

interface Mounted {
  device: string;
  mountPoint: string;
  cleanup(): void;
}

/** A fresh ext4 on a loop device, or the reason there is none. */
function mountLoop(base: string): Mounted | string {
  if (process.getuid?.() !== 0) return 'not root (losetup and mount need root)';
  const image = join(base, 'card.img');
  const mountPoint = join(base, 'card');
  writeFileSync(image, '');
  execFileSync('truncate', ['-s', '256M', image]);
  let device: string;
  try {
    device = run('losetup', ['-f', '--show', image]);
  } catch (err) {
    return `no loop device (${(err as Error).message.split('\n')[0]})`;
  }
  const detach = () => {
    try {
      run('losetup', ['-d', device]);
    } catch {
      // already detached
    }
  };
  try {
    // Inode tables and journal initialised now, not by ext4lazyinit in the background after
    // mounting: those writes (about 16 MB here) landed in the first case's figure, as if the
    // meter wrote them. A Pi's root file system finished its lazy init long ago.
    run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
    execFileSync('mkdir', ['-p', mountPoint]);
    run('mount', ['-o', 'noatime', device, mountPoint]);
  } catch (err) {
    detach();
    return `cannot make or mount ext4 on ${device} (${(err as Error).message.split('\n')[0]})`;
  }
  return {
    device,
    mountPoint,
    cleanup: () => {
      for (let i = 0; i < 5; i++) {
        try {
          run('umount', [mountPoint]);
          break;
        } catch {
          execFileSync('sleep', ['0.5']);
        }
      }
      detach();
    },
  };
}

// The built program beside this benchmark's output (dist-bench/ -> dist/cli.js).
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
const nodeFlags: string[] = JSON.parse(process.env.POWER_METER_BENCH_NODE_FLAGS ?? '[]');

function daemon(dataDir: string, runtimeDir: string, url: string, extra: string[], configFile: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      ...nodeFlags,
      cli,
      '--sensor',
      'sim',
      '--window',
      '1',
      '--data-dir',
      dataDir,
      '--runtime-dir',
      runtimeDir,
      '--publish-url',
      url,
      ...extra,
    ],
    {
      env: {
        PATH: process.env.PATH,
        W3BSTREAM_PUBLISHER_TOKEN: 'bench-token',
        POWER_METER_CONFIG: configFile,
        POWER_METER_RETRY_MAX_MS: '1000',
      },
      stdio: 'ignore',
    },
  );
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface CaseResult {
  bytes: number;
  readings: number;
  seconds: number;
}

/**
 * One measured stretch on a fresh data directory on the card. `phases` runs while measuring and
 * returns how many readings the stretch covered.
 */
async function measure(
  card: Mounted,
  name: string,
  extra: string[],
  receiver: DevReceiver,
  phases: (ctx: { receiver: DevReceiver; restartWith: (url: string) => Promise<void> }) => Promise<number>,
): Promise<CaseResult> {
  const base = mkdtempSync(join(tmpdir(), 'pm-wear-'));
  const runtimeDir = join('/dev/shm', basename(base));
  const dataDir = join(card.mountPoint, name);
  const config = join(base, 'config.json');
  writeFileSync(config, '{}'); // defaults only, whatever /etc/power-meter holds
  const n0 = receiver.received.length;
  let child = daemon(dataDir, runtimeDir, receiver.url, extra, config);
  try {
    // Start-up (key, outbox, first sync) is not part of the steady state.
    await waitFor(() => receiver.received.length >= n0 + 3 || child.exitCode !== null, 'first readings');
    if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}`);
    const b0 = bytesWritten(card.device);
    const t0 = Date.now();
    const readings = await phases({
      receiver,
      restartWith: async (url) => {
        await stop(child);
        child = daemon(dataDir, runtimeDir, url, extra, config);
      },
    });
    const bytes = bytesWritten(card.device) - b0;
    return { bytes, readings, seconds: (Date.now() - t0) / 1000 };
  } finally {
    await stop(child);
    rmSync(base, { recursive: true, force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
  }
}

function report(label: string, r: CaseResult, budget: boolean): void {
  const perReading = r.bytes / Math.max(1, r.readings);
  const perDayMb = (perReading * READINGS_PER_DAY) / 1e6;
  console.log(
    `  ${label}: ${(r.bytes / 1024).toFixed(0)} KiB for ${r.readings} readings in ${r.seconds.toFixed(0)} s = ${perReading.toFixed(0)} B/reading = ${perDayMb.toFixed(1)} MB/day${budget ? ` (budget <= ${BUDGET_MB_PER_DAY})` : ''}`,
  );
  reportFigure(
    `card writes per day, ${label}`,
    perDayMb,
    'MB/day',
    budget ? `<= ${BUDGET_MB_PER_DAY} MB` : '',
    budget ? perDayMb <= BUDGET_MB_PER_DAY : null,
  );
}

const base = mkdtempSync(join(tmpdir(), 'pm-wear-card-'));
const card = mountLoop(base);
if (typeof card === 'string') {
  console.log(`SD-card wear: skipped, ${card}`);
  rmSync(base, { recursive: true, force: true });
} else {
  const cleanup = () => {
    card.cleanup();
    rmSync(base, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const receiver = await startDevReceiver({ project: 'bench', token: 'bench-token' });
  const readingsSince = (n: number) => receiver.received.length - n;
  try {
    console.log(
      `SD-card wear: ext4 on ${card.device}, ${COMPRESSION}x time-compressed (1 s windows, sync every 12 s = the defaults' 5 s / 60 s), ${SECONDS} s per case, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}:`,
    );
    const healthy = await measure(card, 'healthy', ['--sync-interval', String(60 / COMPRESSION)], receiver, async ({ receiver: r }) => {
      const n = r.received.length;
      await sleep(SECONDS * 1000);
      return readingsSince(n);
    });
    report('healthy publishing, defaults', healthy, true);

    // A one-hour outage in a day: readings pile up on the card at each sync, then drain.
    // Measured for an outage of SECONDS readings, then scaled to an hour (720 readings).
    const dead = 'http://127.0.0.1:9/srv-applet-mgr/v0/event/bench';
    let outageReadings = 0;
    const outage = await measure(
      card,
      'outage',
      ['--sync-interval', String(60 / COMPRESSION)],
      receiver,
      async ({ receiver: r, restartWith }) => {
        await restartWith(dead);
        const t0 = Date.now();
        await sleep(SECONDS * 1000);
        outageReadings = Math.round((Date.now() - t0) / 1000);
        const n = r.received.length;
        await restartWith(r.url);
        // Drained when every reading of the outage arrived, plus two syncs to write the removals.
        await waitFor(() => r.received.length - n >= outageReadings, 'the backlog delivered', 120_000);
        await sleep((2 * 60 * 1000) / COMPRESSION);
        return outageReadings;
      },
    );
    const outageExtra = outage.bytes - (healthy.bytes / Math.max(1, healthy.seconds)) * outage.seconds;
    const perHourOutage = Math.max(0, outageExtra) * (720 / Math.max(1, outageReadings));
    const dayWithOutageMb = ((healthy.bytes / Math.max(1, healthy.readings)) * READINGS_PER_DAY + perHourOutage) / 1e6;
    console.log(
      `  one-hour outage: ${(outage.bytes / 1024).toFixed(0)} KiB for a ${outageReadings}-reading outage, its drain and two syncs (${(outageExtra / 1024).toFixed(0)} KiB above healthy) -> a day with a one-hour outage: ${dayWithOutageMb.toFixed(1)} MB`,
    );
    reportFigure('card writes, a day with a one-hour outage', dayWithOutageMb, 'MB/day', '', null);

    const strict = await measure(card, 'strict', ['--sync-interval', '0'], receiver, async ({ receiver: r }) => {
      const n = r.received.length;
      await sleep(SECONDS * 1000);
      return readingsSince(n);
    });
    report('strict (--sync-interval 0)', strict, false);
  } finally {
    await receiver.close();
    cleanup();
  }
}
