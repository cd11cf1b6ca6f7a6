import { existsSync, renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Outbox, readSequenceFloor } from '@power-meter/w3bstream';
import { outboxPaths } from './meter.js';
import { METER_SCHEMA, MeterStore } from './store.js';

/**
 * `power-meter outbox salvage`: recovers what can be read from a damaged outbox. The damaged file
 * is moved aside (kept, never deleted), every undelivered reading that can still be read goes into
 * a new outbox under its own sequence number (so its eventID and body stay the pair that may
 * already have reached the node), numbering continues above the highest number ever used (the
 * sequence floor), and the totals are carried over when they can be read (the next start raises
 * them to the last state.json in any case).
 *
 * Reading a damaged B-tree: one query for the whole table first; where SQLite stops with an error,
 * the range is split in halves until the readable rows are read and the unreadable numbers are
 * known (a few queries per damaged page, not one per row).
 */
export interface SalvageReport {
  damagedFile: string;
  /** Where the damaged file (and its WAL) now is. */
  keptAt: string;
  restored: number;
  /** Sequence numbers that could not be read (ranges, inclusive). */
  unreadable: Array<[number, number]>;
  totalsRecovered: boolean;
  nextSeq: number;
}

type Message = { seq: number; body: string; createdAtMs: number };

export function salvageOutbox(dataDir: string, nowMs = Date.now()): SalvageReport {
  const paths = outboxPaths(dataDir);
  if (!existsSync(paths.outbox)) throw new Error(`no outbox at ${paths.outbox}: nothing to salvage`);
  const keptAt = `${paths.outbox}.damaged-${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}`;
  renameSync(paths.outbox, keptAt);
  for (const suffix of ['-wal', '-shm']) if (existsSync(paths.outbox + suffix)) renameSync(paths.outbox + suffix, keptAt + suffix);

  const messages: Message[] = [];
  const unreadable: Array<[number, number]> = [];
  let totals: { energyWh: number; rewardsTotal: number } | null = null;
  let db: Database.Database | null = null;
  try {
    db = new Database(keptAt, { fileMustExist: true });
  } catch {
    db = null; // not even the header can be read: nothing but the floor is left
  }
  if (db !== null) {
    const d = db;
    const tryGet = <T>(sql: string): T | undefined => {
      try {
        return d.prepare(sql).get() as T | undefined;
      } catch {
        return undefined;
      }
    };
    const floor = safeFloor(paths.floor);
    const hi = Math.max(tryGet<{ value: number }>("SELECT value FROM counters WHERE name = 'next_seq'")?.value ?? 0, tryGet<{ m: number | null }>('SELECT MAX(seq) AS m FROM messages')?.m ?? 0, floor ?? 0, 1);
    let range: Database.Statement | null = null;
    try {
      range = d.prepare('SELECT seq, body, created_ms FROM messages WHERE seq BETWEEN ? AND ? ORDER BY seq');
    } catch {
      range = null; // the schema itself is unreadable
    }
    const read = (lo: number, hi: number): void => {
      if (range === null) return void unreadable.push([lo, hi]);
      try {
        const rows = range.all(lo, hi) as Array<{ seq: number; body: string; created_ms: number }>;
        for (const r of rows) if (typeof r.body === 'string') messages.push({ seq: r.seq, body: r.body, createdAtMs: r.created_ms });
      } catch {
        if (lo === hi) return void unreadable.push([lo, hi]);
        const mid = Math.floor((lo + hi) / 2);
        read(lo, mid);
        read(mid + 1, hi);
      }
    };
    read(1, hi);
    const t = tryGet<{ energy_wh: number; rewards_total: number }>('SELECT energy_wh, rewards_total FROM meter_totals WHERE id = 1');
    if (t && Number.isFinite(t.energy_wh) && Number.isFinite(t.rewards_total)) totals = { energyWh: t.energy_wh, rewardsTotal: t.rewards_total };
    d.close();
  }
  // Merge neighbouring unreadable numbers into ranges for the report.
  const merged: Array<[number, number]> = [];
  for (const [lo, hi] of unreadable.sort((a, b) => a[0] - b[0])) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last[1] + 1 >= lo) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  const outbox = Outbox.open(paths.outbox, { sequenceFloorFile: paths.floor, schemas: [METER_SCHEMA] });
  try {
    const restored = outbox.restore(messages);
    if (totals !== null) new MeterStore(outbox).raiseTotals(totals);
    return { damagedFile: paths.outbox, keptAt, restored, unreadable: merged, totalsRecovered: totals !== null, nextSeq: outbox.stats().nextSeq };
  } finally {
    outbox.close();
  }
}

function safeFloor(file: string): number | null {
  try {
    return readSequenceFloor(file)?.nextSeq ?? null;
  } catch {
    return null;
  }
}
