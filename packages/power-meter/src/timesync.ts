import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Is the wall clock trustworthy? A Pi has no real-time clock: until NTP syncs it can be years off
 * (docs/design.md "Measuring well"). Pure decision in `decideClockSync`; the probes are I/O.
 */
export type ClockSyncState = 'synced' | 'unsynced' | 'unknown';

export interface ClockProbes {
  wallNowMs: number;
  /** Earliest plausible time: the build date of this program. */
  floorMs: number;
  /** systemd-timesyncd runs (it creates /run/systemd/timesync at start). */
  timesyncdPresent: boolean;
  /** /run/systemd/timesync/synchronized exists: timesyncd has synced since boot. */
  timesyncdSynced: boolean;
  /** Kernel NTP status (covers chrony and ntpd) when such a service is present; null otherwise. */
  kernelNtpSynced: boolean | null;
}

export interface ClockSync {
  state: ClockSyncState;
  reason: string;
}

export function decideClockSync(p: ClockProbes): ClockSync {
  if (p.wallNowMs < p.floorMs)
    return {
      state: 'unsynced',
      reason: `system clock ${new Date(p.wallNowMs).toISOString()} is earlier than this build (${new Date(p.floorMs).toISOString()})`,
    };
  if (p.timesyncdSynced) return { state: 'synced', reason: 'systemd-timesyncd synchronised' };
  if (p.kernelNtpSynced === true) return { state: 'synced', reason: 'kernel NTP status synchronised' };
  if (p.timesyncdPresent) return { state: 'unsynced', reason: 'systemd-timesyncd has not synchronised yet' };
  if (p.kernelNtpSynced === false) return { state: 'unsynced', reason: 'NTP service (chrony/ntpd) has not synchronised yet' };
  // No sync service at all (container, laptop, CI): only the build-date floor applies, so the
  // meter never waits forever.
  return { state: 'unknown', reason: 'no time-sync service found; trusting a clock later than the build date' };
}

/** Readings may be timestamped and published. */
export function clockTrusted(s: ClockSync): boolean {
  return s.state !== 'unsynced';
}

export interface ProbeOptions {
  floorMs: number;
  /** Root for the /run paths (tests use a temporary directory). */
  root?: string;
  now?: () => number;
}

/** Reads the probes from the running system. */
export async function probeClock(opts: ProbeOptions): Promise<ClockProbes> {
  const root = opts.root ?? '/';
  const timesyncDir = join(root, 'run/systemd/timesync');
  const ntpServicePresent = ['run/chrony', 'var/run/chrony', 'run/ntpd.pid', 'var/run/ntpd.pid'].some((p) => existsSync(join(root, p)));
  return {
    wallNowMs: (opts.now ?? Date.now)(),
    floorMs: opts.floorMs,
    timesyncdPresent: existsSync(timesyncDir),
    timesyncdSynced: existsSync(join(timesyncDir, 'synchronized')),
    kernelNtpSynced: ntpServicePresent && root === '/' ? await timedatectlSynced() : null,
  };
}

function timedatectlSynced(): Promise<boolean | null> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 2000 }, (err, stdout) => {
      if (err) return resolve(null);
      const v = stdout.trim();
      resolve(v === 'yes' ? true : v === 'no' ? false : null);
    });
  });
}

/** Identifies this boot, so monotonic times from an earlier boot are never re-anchored wrongly. */
export function bootId(root = '/'): string {
  try {
    return readFileSync(join(root, 'proc/sys/kernel/random/boot_id'), 'utf8').trim();
  } catch {
    return 'unknown-boot';
  }
}

/** Monotonic milliseconds since boot (CLOCK_MONOTONIC, shared by every process of this boot). */
export function bootMonotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Wall time of a monotonic instant: anchor + (mono - anchorMono). Computed once the clock is
 * trusted, so a reading measured before NTP synced gets its true time, and a clock step in the
 * middle of a window changes neither its length nor its energy.
 */
export function wallTimeOf(monoMs: number, anchor: { wallMs: number; monoMs: number }): number {
  return anchor.wallMs + (monoMs - anchor.monoMs);
}
