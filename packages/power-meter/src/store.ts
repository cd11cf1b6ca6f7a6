import type { AppendResult, Outbox, OutboxSql, SchemaExtension } from '@power-meter/w3bstream';

/**
 * The meter's own durable state, in the outbox database so that it changes in the same SQLite
 * transaction as the outbox: a window's energy and rewards are added exactly when its reading is
 * stored (or held), so kill -9 or a power cut can neither lose a window nor count it twice.
 *
 * Every stored number is finite: an increment that is not (it cannot come from bounded settings,
 * but a total poisoned with Infinity would stay so for ever) is counted as 0 and reported, and a
 * database that already holds a non-finite total is repaired at open (see `repairs`).
 */
export interface Totals {
  energyWh: number;
  rewardsTotal: number;
  windows: number;
  recentAvgPowerW: number[];
  /** Held readings dropped: measured in an earlier boot before the clock synced, or past the bound on readings held unsigned. */
  heldDropped: number;
}

export interface HeldReading {
  id: number;
  bootId: string;
  endMonoMs: number;
  avgPowerW: number;
  /**
   * The window's wall-clock end when the clock was trusted as it ended (a reading held because the
   * signing key could not sign); null for a reading held for the clock (re-anchored when it syncs).
   */
  endWallMs: number | null;
}

const RECENT = 60;

/** The backend's tables in the outbox database, as migrations (never edit or reorder them). */
export const METER_SCHEMA: SchemaExtension = {
  name: 'meter',
  migrations: [
    // 1: the tables of the first release (IF NOT EXISTS adopts a database from before versioning).
    `CREATE TABLE IF NOT EXISTS meter_totals (
       id INTEGER PRIMARY KEY CHECK (id = 1),
       energy_wh REAL NOT NULL,
       rewards_total REAL NOT NULL,
       windows INTEGER NOT NULL,
       recent TEXT NOT NULL,
       held_dropped INTEGER NOT NULL DEFAULT 0
     );
     INSERT OR IGNORE INTO meter_totals VALUES (1, 0, 0, 0, '[]', 0);
     CREATE TABLE IF NOT EXISTS held (
       id INTEGER PRIMARY KEY AUTOINCREMENT,
       boot_id TEXT NOT NULL,
       end_mono_ms REAL NOT NULL,
       avg_power_w REAL NOT NULL
     );`,
    // 2: readings held because the signing key (a PKCS#11 token) could not sign keep their time.
    'ALTER TABLE held ADD COLUMN end_wall_ms REAL',
  ],
};

type TotalsRow = { energy_wh: number | null; rewards_total: number | null; windows: number; recent: string; held_dropped: number };

/** A change the store made on its own at open, for the log. */
export interface StoreRepair {
  field: 'energyWh' | 'rewardsTotal';
  from: number | null;
  to: number;
  why: string;
}

export class MeterStore {
  /** What open repaired (non-finite totals); empty normally. */
  readonly repairs: StoreRepair[] = [];

  constructor(private readonly outbox: Outbox) {
    // A total that is not a finite number (Infinity from an earlier release with unbounded reward
    // tiers; NaN reads back as NULL) cannot be added to and would stay so for ever.
    const r = this.row();
    for (const [field, column, value] of [
      ['energyWh', 'energy_wh', r.energy_wh],
      ['rewardsTotal', 'rewards_total', r.rewards_total],
    ] as const) {
      if (value !== null && Number.isFinite(value) && value >= 0) continue;
      this.outbox.transaction((sql) => sql.run(`UPDATE meter_totals SET ${column} = 0 WHERE id = 1`));
      this.repairs.push({
        field,
        from: value,
        to: 0,
        why: `${column} was ${String(value)}, which no reading can produce (an earlier release accepted unbounded reward tiers)`,
      });
    }
  }

  private row(): TotalsRow {
    return this.outbox.transaction((sql) => sql.get<TotalsRow>('SELECT * FROM meter_totals WHERE id = 1')!);
  }

  totals(): Totals {
    const r = this.row();
    return {
      energyWh: r.energy_wh ?? 0,
      rewardsTotal: r.rewards_total ?? 0,
      windows: r.windows,
      recentAvgPowerW: JSON.parse(r.recent) as number[],
      heldDropped: r.held_dropped,
    };
  }

  /** The totals on the card (the last sync): what survives a power cut, so what is published. */
  syncedTotals(): Pick<Totals, 'energyWh' | 'rewardsTotal'> {
    const r = this.outbox.durable((sql) => sql.get<TotalsRow>('SELECT * FROM main.meter_totals WHERE id = 1')!);
    return { energyWh: r.energy_wh ?? 0, rewardsTotal: r.rewards_total ?? 0 };
  }

  /**
   * Totals never go back: when the database holds less than the last state the meter published
   * (`state.json`; the outbox was deleted, emptied or replaced by an older copy), the totals are
   * raised to it. `state.json` is written after the database, so normally it is at most equal
   * (its 6-decimal rounding aside). Returns what was raised, for the log.
   */
  raiseTotals(lastKnown: {
    energyWh: number;
    rewardsTotal: number;
  }): Array<{ field: 'energyWh' | 'rewardsTotal'; from: number; to: number }> {
    const t = this.totals();
    const raised: Array<{ field: 'energyWh' | 'rewardsTotal'; from: number; to: number }> = [];
    const roundingWh = 1e-6;
    if (Number.isFinite(lastKnown.energyWh) && lastKnown.energyWh > t.energyWh + roundingWh)
      raised.push({ field: 'energyWh', from: t.energyWh, to: lastKnown.energyWh });
    if (Number.isFinite(lastKnown.rewardsTotal) && lastKnown.rewardsTotal > t.rewardsTotal + roundingWh)
      raised.push({ field: 'rewardsTotal', from: t.rewardsTotal, to: lastKnown.rewardsTotal });
    this.outbox.transaction((sql) => {
      for (const r of raised)
        sql.run(`UPDATE meter_totals SET ${r.field === 'energyWh' ? 'energy_wh' : 'rewards_total'} = ? WHERE id = 1`, r.to);
    });
    return raised;
  }

  heldCount(): number {
    return this.outbox.transaction((sql) => sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM held')!.n);
  }

  /** Held readings by what they wait for: the clock (no wall time yet), or only the signing key. */
  heldCounts(): { clock: number; key: number } {
    const r = this.outbox.transaction(
      (sql) =>
        sql.get<{ clock: number | null; key: number | null }>(
          'SELECT SUM(end_wall_ms IS NULL) AS clock, SUM(end_wall_ms IS NOT NULL) AS key FROM held',
        )!,
    );
    return { clock: r.clock ?? 0, key: r.key ?? 0 };
  }

  /** Adds a window; a non-finite or negative increment counts as 0 (then it returns false). */
  private addWindow(sql: OutboxSql, energyWh: number, rewards: number, avgPowerW: number): boolean {
    const r = sql.get<TotalsRow>('SELECT * FROM meter_totals WHERE id = 1')!;
    // Each increment on its own: one that is not finite (or would make its total so) counts as 0.
    const usable = (x: number, total: number | null): boolean => Number.isFinite(x) && x >= 0 && Number.isFinite((total ?? 0) + x);
    const energyOk = usable(energyWh, r.energy_wh);
    const rewardsOk = usable(rewards, r.rewards_total);
    const recent = [...(JSON.parse(r.recent) as number[]), Number.isFinite(avgPowerW) ? Number(avgPowerW.toFixed(3)) : 0].slice(-RECENT);
    sql.run(
      'UPDATE meter_totals SET energy_wh = energy_wh + ?, rewards_total = rewards_total + ?, windows = windows + 1, recent = ? WHERE id = 1',
      energyOk ? energyWh : 0,
      rewardsOk ? rewards : 0,
      JSON.stringify(recent),
    );
    return energyOk && rewardsOk;
  }

  /**
   * Stores a signed reading and counts its window, atomically: a `body` function gets the reading's
   * sequence number inside the transaction (a task's nonce, the extended reading's seq), so a window is numbered,
   * signed, stored and counted together or not at all (Outbox.append). Returns what `append` did
   * and whether the window's increments were finite (false: counted as 0, log it).
   */
  storeReading(
    body: string | ((seq: number) => string),
    window: { energyWh: number; rewards: number; avgPowerW: number },
  ): AppendResult & { counted: boolean } {
    let counted = true;
    const r = this.outbox.append(body, {
      inTransaction: (_seq, sql) => {
        counted = this.addWindow(sql, window.energyWh, window.rewards, window.avgPowerW);
      },
    });
    return { ...r, counted };
  }

  /**
   * Holds a reading until the clock is trusted (or the signing key is back); its window is counted
   * now, once. At `maxHeld` held readings the oldest goes first, counted like the outbox's drops,
   * in the same transaction: the bound, the hold and the count change together or not at all.
   * Returns whether the window's increments were finite, and whether the oldest was dropped.
   */
  holdReading(
    r: { bootId: string; endMonoMs: number; avgPowerW: number; endWallMs?: number | null },
    window: { energyWh: number; rewards: number },
    maxHeld = Number.POSITIVE_INFINITY,
  ): { counted: boolean; droppedOldest: boolean } {
    return this.outbox.transaction((sql) => {
      const droppedOldest = sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM held')!.n >= maxHeld;
      if (droppedOldest) {
        sql.run('DELETE FROM held WHERE id = (SELECT MIN(id) FROM held)');
        sql.run('UPDATE meter_totals SET held_dropped = held_dropped + 1 WHERE id = 1');
      }
      sql.run(
        'INSERT INTO held (boot_id, end_mono_ms, avg_power_w, end_wall_ms) VALUES (?, ?, ?, ?)',
        r.bootId,
        r.endMonoMs,
        r.avgPowerW,
        r.endWallMs ?? null,
      );
      return { counted: this.addWindow(sql, window.energyWh, window.rewards, r.avgPowerW), droppedOldest };
    });
  }

  /** Held readings, oldest first (`limit` of them). */
  held(limit = -1): HeldReading[] {
    return this.outbox
      .transaction((sql) =>
        sql.all<{ id: number; boot_id: string; end_mono_ms: number; avg_power_w: number; end_wall_ms: number | null }>(
          'SELECT * FROM held ORDER BY id LIMIT ?',
          limit,
        ),
      )
      .map((r) => ({ id: r.id, bootId: r.boot_id, endMonoMs: r.end_mono_ms, avgPowerW: r.avg_power_w, endWallMs: r.end_wall_ms }));
  }

  /** Moves a held reading into the outbox (signed with its number and re-anchored timestamp), atomically. */
  release(id: number, body: string | ((seq: number) => string)): AppendResult {
    return this.outbox.append(body, { inTransaction: (_seq, sql) => void sql.run('DELETE FROM held WHERE id = ?', id) });
  }

  /** A held reading from an earlier boot cannot be re-anchored: drop it, counted. */
  dropHeld(id: number): void {
    this.outbox.transaction((sql) => {
      sql.run('DELETE FROM held WHERE id = ?', id);
      sql.run('UPDATE meter_totals SET held_dropped = held_dropped + 1 WHERE id = 1');
    });
  }
}
