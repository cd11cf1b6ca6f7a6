import type { Outbox } from '@power-meter/w3bstream';

/**
 * The meter's own durable state, in the outbox database so that it changes in the same SQLite
 * transaction as the outbox: a window's energy and rewards are added exactly when its reading is
 * stored (or held), so kill -9 or a power cut can neither lose a window nor count it twice.
 */
export interface Totals {
  energyWh: number;
  rewardsTotal: number;
  windows: number;
  recentAvgPowerW: number[];
  /** Held readings dropped because they were measured in an earlier boot before the clock synced. */
  heldDropped: number;
}

export interface HeldReading {
  id: number;
  bootId: string;
  endMonoMs: number;
  avgPowerW: number;
}

const RECENT = 60;

export class MeterStore {
  private readonly st;

  constructor(private readonly outbox: Outbox) {
    outbox.db.exec(`
      CREATE TABLE IF NOT EXISTS meter_totals (
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
      );
    `);
    this.st = {
      totals: outbox.db.prepare<[], { energy_wh: number; rewards_total: number; windows: number; recent: string; held_dropped: number }>('SELECT * FROM meter_totals WHERE id = 1'),
      add: outbox.db.prepare<[number, number, string]>('UPDATE meter_totals SET energy_wh = energy_wh + ?, rewards_total = rewards_total + ?, windows = windows + 1, recent = ? WHERE id = 1'),
      hold: outbox.db.prepare<[string, number, number]>('INSERT INTO held (boot_id, end_mono_ms, avg_power_w) VALUES (?, ?, ?)'),
      held: outbox.db.prepare<[], { id: number; boot_id: string; end_mono_ms: number; avg_power_w: number }>('SELECT * FROM held ORDER BY id'),
      heldCount: outbox.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM held'),
      unhold: outbox.db.prepare<[number]>('DELETE FROM held WHERE id = ?'),
      dropHeld: outbox.db.prepare<[]>('UPDATE meter_totals SET held_dropped = held_dropped + 1 WHERE id = 1'),
    };
  }

  totals(): Totals {
    const r = this.st.totals.get()!;
    return { energyWh: r.energy_wh, rewardsTotal: r.rewards_total, windows: r.windows, recentAvgPowerW: JSON.parse(r.recent) as number[], heldDropped: r.held_dropped };
  }

  heldCount(): number {
    return this.st.heldCount.get()!.n;
  }

  private addWindow(energyWh: number, rewards: number, avgPowerW: number): void {
    const recent = [...this.totals().recentAvgPowerW, Number(avgPowerW.toFixed(3))].slice(-RECENT);
    this.st.add.run(energyWh, rewards, JSON.stringify(recent));
  }

  /** Stores a signed reading and counts its window, atomically. Returns the sequence number and drops. */
  storeReading(body: string, window: { energyWh: number; rewards: number; avgPowerW: number }): { seq: number; dropped: number } {
    return this.outbox.append(body, () => this.addWindow(window.energyWh, window.rewards, window.avgPowerW));
  }

  /** Holds a reading until the clock is trusted; its window is counted now, once. */
  holdReading(r: { bootId: string; endMonoMs: number; avgPowerW: number }, window: { energyWh: number; rewards: number }): void {
    this.outbox.db.transaction(() => {
      this.st.hold.run(r.bootId, r.endMonoMs, r.avgPowerW);
      this.addWindow(window.energyWh, window.rewards, r.avgPowerW);
    })();
  }

  held(): HeldReading[] {
    return this.st.held.all().map((r) => ({ id: r.id, bootId: r.boot_id, endMonoMs: r.end_mono_ms, avgPowerW: r.avg_power_w }));
  }

  /** Moves a held reading into the outbox (signed with its re-anchored timestamp), atomically. */
  release(id: number, body: string): { seq: number; dropped: number } {
    return this.outbox.append(body, () => this.st.unhold.run(id));
  }

  /** A held reading from an earlier boot cannot be re-anchored: drop it, counted. */
  dropHeld(id: number): void {
    this.outbox.db.transaction(() => {
      this.st.unhold.run(id);
      this.st.dropHeld.run();
    })();
  }
}
