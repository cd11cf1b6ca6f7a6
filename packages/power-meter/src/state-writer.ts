import { lstatSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  FILES,
  STATE_SCHEMA,
  legacyFileContents,
  writeFileAtomicSync,
  type LegacyStatus,
  type MeterState,
  type HourlyRewardTier,
} from '@power-meter/meter-files';

/**
 * Writes the files the display and legacy scripts read: `state.json` plus the original
 * firmware's eight files, each replaced atomically. Files whose content did not change are not
 * rewritten; bytes written are counted so the daily write volume can be reported.
 *
 * Where: `dir` is the RAM directory (README "What is written where"): the files change up to
 * twice a second, and every atomic rewrite on an SD card costs a new inode and a journal commit.
 * `linkInto(dataDir)` keeps the data-directory contract: each file is readable at its usual path
 * through a symbolic link into `dir`. `materialize(dataDir)` (clean stop) puts real files back
 * there, so a stopped meter leaves a self-contained data directory.
 *
 * The meter calls `write` from its own turn of the event loop (Meter.scheduleWrite: requests
 * coalesce, one write at a time, each state built when its write starts, so a late write can never
 * overwrite a newer one). The file calls themselves are synchronous: on a tmpfs they take
 * microseconds, and the thread pool's round trips cost more CPU than the writes (the backend's CPU
 * budget).
 */
export class StateWriter {
  private lastContent = new Map<string, string>();
  bytesWritten = 0;
  writes = 0;

  constructor(readonly dir: string) {}

  private static files(state: MeterState, lastStatus: LegacyStatus | null): Array<[string, string]> {
    const files: Array<[string, string]> = [[FILES.state, `${JSON.stringify(state)}\n`]];
    for (const [name, content] of Object.entries(legacyFileContents(state, lastStatus))) files.push([name, content]);
    return files;
  }

  write(state: MeterState, lastStatus: LegacyStatus | null): void {
    for (const [name, content] of StateWriter.files(state, lastStatus)) {
      if (this.lastContent.get(name) === content) continue;
      writeFileAtomicSync(this.dir, name, content);
      this.lastContent.set(name, content);
      this.bytesWritten += Buffer.byteLength(content);
      this.writes++;
    }
  }

  /**
   * Makes each file readable at `dataDir/<name>` through a link into the RAM directory (replacing
   * a real file atomically: a reader sees the old file or the link, never nothing). No-op when
   * both are the same directory. Call after the first `write`, so no link points at nothing.
   */
  linkInto(dataDir: string): void {
    if (resolve(dataDir) === resolve(this.dir)) return;
    for (const name of this.lastContent.keys()) {
      const target = join(resolve(this.dir), name);
      const at = join(dataDir, name);
      try {
        if (lstatSync(at).isSymbolicLink() && readlinkSync(at) === target) continue;
      } catch {
        // missing: created below
      }
      const tmp = join(dataDir, `.${name}.tmp-${process.pid}-link`);
      rmSync(tmp, { force: true });
      symlinkSync(target, tmp);
      renameSync(tmp, at);
    }
  }

  /** Clean stop: real files with the last content in `dataDir` (replacing the links), RAM copies removed. */
  materialize(dataDir: string): void {
    if (resolve(dataDir) === resolve(this.dir)) return;
    for (const [name, content] of this.lastContent) {
      writeFileAtomicSync(dataDir, name, content);
      rmSync(join(this.dir, name), { force: true });
    }
  }
}

/** What the backend knows; buildState adds the schema and the time stamps and rounds. */
export type StateParts = Omit<MeterState, 'schema' | 'updatedAtMs' | 'updatedAt' | 'rewards'> & {
  nowMs: number;
  /** The backend always writes the configured tiers (optional only for readers of older files). */
  rewards: { tokensPerH: number; total: number; tiers: readonly HourlyRewardTier[] };
};

/** Pure: the state.json object from its parts (rounded so the file stays small and stable). */
export function buildState(p: StateParts): MeterState {
  const r = (x: number, digits: number): number => Number(x.toFixed(digits));
  return {
    schema: STATE_SCHEMA,
    updatedAtMs: Math.round(p.nowMs),
    updatedAt: new Date(p.nowMs).toISOString(),
    deviceId: p.deviceId,
    walletAddress: p.walletAddress,
    powerW: p.powerW === null ? null : r(p.powerW, 4),
    lastWindow: p.lastWindow,
    recentAvgPowerW: p.recentAvgPowerW.map((x) => r(x, 3)),
    windowS: p.windowS,
    energyTotalWh: r(p.energyTotalWh, 6),
    rewards: {
      tokensPerH: p.rewards.tokensPerH,
      total: r(p.rewards.total, 6),
      tiers: p.rewards.tiers.map((t) => ({ belowW: t.belowW, tokensPerH: t.tokensPerH })),
    },
    publishing: p.publishing,
    ...(p.rewardBalance === undefined ? {} : { rewardBalance: { ...p.rewardBalance } }),
    ...(p.ioid === undefined ? {} : { ioid: { ...p.ioid } }),
    ...(p.signing === undefined ? {} : { signing: { ...p.signing } }),
    sensor: {
      state: p.sensor.state,
      reason: p.sensor.reason,
      busV: p.sensor.busV === null ? null : r(p.sensor.busV, 3),
      currentA: p.sensor.currentA === null ? null : r(p.sensor.currentA, 5),
      ...(p.sensor.chip === undefined ? {} : { chip: p.sensor.chip }),
      ...(p.sensor.simulated === undefined ? {} : { simulated: p.sensor.simulated }),
      ...(p.sensor.calibrationId === undefined ? {} : { calibrationId: p.sensor.calibrationId }),
    },
  };
}
