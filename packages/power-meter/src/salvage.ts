import { existsSync, renameSync } from 'node:fs';
import { Outbox, readDamagedOutbox } from '@power-meter/w3bstream';
import { outboxPaths } from './meter.js';
import { METER_SCHEMA, MeterStore } from './store.js';

/**
 * `power-meter outbox salvage`: recovers what can be read from a damaged outbox. The damaged file
 * is moved aside (kept, never deleted), every undelivered reading that can still be read goes into
 * a new outbox under its own sequence number (so its eventID and body stay the pair that may
 * already have reached the node), numbering continues above the highest number ever used (the
 * sequence floor), and the totals are carried over when they can be read (the next start raises
 * them to the last state.json in any case). Held readings (clock not synced) are not salvaged.
 */
export interface SalvageReport {
  damagedFile: string;
  /** Where the damaged file (and its WAL) now is. */
  keptAt: string;
  restored: number;
  /** How many undelivered readings the damaged outbox counted (null: its counter is unreadable). */
  expected: number | null;
  /** Sequence numbers that could not be read (ranges, inclusive). */
  unreadable: Array<[number, number]>;
  totalsRecovered: boolean;
  nextSeq: number;
}

/**
 * `stagingFile`: the meter's RAM copy of the outbox (meter/paths.ts `stagingFileFor`). When a crash left
 * one, it is newer than anything on the card: the new outbox starts from it, and the salvaged
 * readings are added to it.
 */
export function salvageOutbox(dataDir: string, nowMs = Date.now(), stagingFile?: string): SalvageReport {
  const paths = outboxPaths(dataDir);
  if (!existsSync(paths.outbox)) throw new Error(`no outbox at ${paths.outbox}: nothing to salvage`);
  const keptAt = `${paths.outbox}.damaged-${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}`;
  renameSync(paths.outbox, keptAt);
  for (const suffix of ['-wal', '-shm']) if (existsSync(paths.outbox + suffix)) renameSync(paths.outbox + suffix, keptAt + suffix);

  const damaged = readDamagedOutbox(keptAt, { sequenceFloorFile: paths.floor, nowMs });
  const t = damaged.tryGet<{ energy_wh: unknown; rewards_total: unknown }>(
    'SELECT energy_wh, rewards_total FROM meter_totals WHERE id = 1',
  );
  damaged.close();
  const totals =
    t &&
    typeof t.energy_wh === 'number' &&
    typeof t.rewards_total === 'number' &&
    Number.isFinite(t.energy_wh) &&
    Number.isFinite(t.rewards_total)
      ? { energyWh: t.energy_wh, rewardsTotal: t.rewards_total }
      : null;
  // Neighbouring unreadable numbers as ranges, for the report.
  const unreadable: Array<[number, number]> = [];
  for (const seq of damaged.unreadable) {
    const last = unreadable[unreadable.length - 1];
    if (last !== undefined && last[1] + 1 === seq) last[1] = seq;
    else unreadable.push([seq, seq]);
  }
  const outbox = Outbox.open(paths.outbox, { sequenceFloorFile: paths.floor, schemas: [METER_SCHEMA], stagingFile });
  try {
    const restored = outbox.restore(damaged.messages);
    if (totals !== null) new MeterStore(outbox).raiseTotals(totals);
    return {
      damagedFile: paths.outbox,
      keptAt,
      restored,
      expected: damaged.expected,
      unreadable,
      totalsRecovered: totals !== null,
      nextSeq: outbox.stats().nextSeq,
    };
  } finally {
    outbox.close();
  }
}
