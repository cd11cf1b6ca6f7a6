import { OutboxCorruptError, isCorruptionError, timestampFor, type AppendResult, type Outbox } from '@power-meter/w3bstream';
import type { MeterKey } from '../key/meter-key.js';
import type { BackendSettings } from '../settings.js';
import type { MeterStore } from '../store.js';
import { bootMonotonicMs, wallTimeOf } from '../timesync.js';
import { signReadingWith } from '../transport.js';

/**
 * A measured window on its way to the outbox: signed in order, one at a time. A key in a token
 * signs off the event loop (tens to hundreds of ms on a TPM), so a window waits here meanwhile;
 * when the key cannot sign (or the clock cannot be trusted) it is held in the database instead,
 * unsigned and counted, and signed when the key is back.
 */
export interface PendingReading {
  avgPowerW: number;
  energyWh: number;
  rewards: number;
  /** Wall-clock end, when the clock was trusted at the end of the window; null: re-anchored later. */
  endWallMs: number | null;
  /** Monotonic end (the sampler's clock). */
  endMonoMs: number;
}

export interface SigningOptions {
  settings: BackendSettings;
  log: (line: string) => void;
  warn: (line: string) => void;
  /** The outbox became unusable (SQLite reports the file damaged): see MeterOptions.onFatal. */
  onFatal?: (err: OutboxCorruptError) => void;
  identity: MeterKey;
  outbox: Outbox;
  store: MeterStore;
  /** This boot (a held reading's monotonic time means nothing in another). */
  boot: string;
  /** The calibration id the wire profile may sign (`--reading-calibration-id`). */
  calibrationId: string | null;
  /** The clock may stamp readings now (trusted, or holding for it is off). */
  canTimestamp: () => boolean;
  /** Why the clock is not trusted, for the "held" line. */
  clockReason: () => string;
  /** The meter is stopping: no new step starts. */
  stopped: () => boolean;
  /** A reading (new or released) is in the outbox: drops, strict mode's sync result, the outputs. */
  stored: (stored: AppendResult) => void;
  /** Strict mode: a held window's energy reaches the card now, as a stored reading's does. */
  sync: () => void;
  /** Something state.json shows changed. */
  changed: () => void;
}

/**
 * The signing pipeline: measured windows wait here (`add`), are signed in order and stored in the
 * outbox, or held in the database while the key cannot sign or the clock is not trusted, and the
 * held ones are signed first once both are back. It exists apart from the meter because its
 * ordering and its "each step is one commit" rule (see `signLoop`) are the meter's promise that
 * no window is lost or counted twice, and they read best on their own.
 */
export class SigningPipeline {
  /** Windows measured and not yet stored or held, oldest first (see PendingReading). */
  private pending: PendingReading[] = [];
  private storeError: string | null = null;
  /** The signing loop, while it runs (one at a time). */
  private signing: Promise<void> | null = null;
  private signAgain = false;
  /** Held readings signed since the last "released" line, by what they waited for. */
  private released = { clock: 0, key: 0 };
  /** Set by stop(): a signature that comes back after the pending windows were held is dropped. */
  private signingAbandoned = false;
  /** The last timestamp signed, in the unit sent (see distinctTimeMs). */
  private lastSignedTs = 0;
  private readonly identity: MeterKey;
  private readonly outbox: Outbox;
  private readonly store: MeterStore;
  private readonly boot: string;
  private readonly warn: (line: string) => void;

  constructor(private readonly opts: SigningOptions) {
    ({ identity: this.identity, outbox: this.outbox, store: this.store, boot: this.boot, warn: this.warn } = opts);
  }

  /** Windows measured and not yet stored or held. */
  get waiting(): number {
    return this.pending.length;
  }

  /** A window to sign; the oldest pending one goes when 10,000 wait (memory stays bounded). */
  add(r: PendingReading): void {
    this.pending.push(r);
    if (this.pending.length > 10_000) this.pending.shift();
  }

  /** Runs the signing loop, or asks the running one to look again. */
  kick(): void {
    if (this.opts.stopped() || this.signingAbandoned) return;
    if (this.signing !== null) {
      this.signAgain = true;
      return;
    }
    this.signing = this.signLoop().finally(() => {
      this.signing = null;
      if (this.signAgain) {
        this.signAgain = false;
        this.kick();
      }
    });
  }

  /**
   * In order: readings held earlier (for the clock or the key) are signed first, then the pending
   * windows. While the key cannot sign or the clock is not trusted, pending windows are held in
   * the database (unsigned, counted, bounded), so the order is kept and a restart loses nothing.
   *
   * Each step is one commit (Outbox.append, or the hold): up to it, a failure (disk full, SQLite
   * busy, I/O error) rolls everything back and the window stays where it was, tried again with the
   * next window; after it, the window has left the queue (or the held table) for good, and what
   * follows (drops, strict mode's sync result, outputs, logs) runs on its own and can never put
   * it back, so no window is stored or counted twice.
   */
  private async signLoop(): Promise<void> {
    const s = this.opts.settings;
    for (;;) {
      if (this.opts.stopped() || this.signingAbandoned) return;
      const canSign = this.identity.ready() && this.opts.canTimestamp();
      let committed: (() => void) | null = null;
      try {
        if (canSign) {
          const held = this.store.held(1)[0];
          if (held !== undefined) {
            if (held.endWallMs === null && held.bootId !== this.boot) {
              this.store.dropHeld(held.id);
              this.opts.log(
                'dropped a held reading from an earlier boot: its time cannot be known (the clock never synced before that reboot)',
              );
              continue;
            }
            const wallMs = held.endWallMs ?? wallTimeOf(held.endMonoMs, { wallMs: Date.now(), monoMs: bootMonotonicMs() });
            const reading = { powerW: held.avgPowerW, timestampMs: this.distinctTimeMs(wallMs) };
            const body = await this.sign(reading);
            if (body === null) continue; // the key failed: the next turn holds
            if (this.signingAbandoned) return;
            const stored = this.store.release(held.id, body);
            // Stored: only now does the timestamp count as taken (a failed store is signed again with it).
            this.signedAt(reading.timestampMs);
            committed = () => this.afterRelease(held.endWallMs === null ? 'clock' : 'key', stored);
          }
        }
        if (committed === null) {
          const r = this.pending[0];
          if (r === undefined) return;
          if (!canSign) {
            const held = this.store.holdReading(
              { bootId: this.boot, endMonoMs: r.endMonoMs, avgPowerW: r.avgPowerW, endWallMs: r.endWallMs },
              { energyWh: r.energyWh, rewards: r.rewards },
              s.outboxMaxCount,
            );
            this.pending.shift();
            committed = () => this.afterHold(r, held);
          } else {
            const wallMs = r.endWallMs ?? wallTimeOf(r.endMonoMs, { wallMs: Date.now(), monoMs: bootMonotonicMs() });
            const reading = { powerW: r.avgPowerW, timestampMs: this.distinctTimeMs(wallMs) };
            const body = await this.sign(reading);
            if (body === null) continue;
            if (this.signingAbandoned) return;
            const stored = this.store.storeReading(body, { energyWh: r.energyWh, rewards: r.rewards, avgPowerW: r.avgPowerW });
            this.pending.shift();
            this.signedAt(reading.timestampMs);
            committed = () => {
              if (!stored.counted)
                this.opts.log(
                  `window energy ${r.energyWh} Wh / rewards ${r.rewards} is not a finite amount: counted as 0 (totals stay finite)`,
                );
              this.opts.stored(stored);
            };
          }
        }
        this.storeError = null;
      } catch (err) {
        // Nothing of this step was committed (the transaction rolled back): it is tried again.
        if (isCorruptionError(err)) {
          this.opts.onFatal?.(new OutboxCorruptError(this.outbox.file, (err as Error).message));
          return;
        }
        const msg = err instanceof Error ? err.message : String(err);
        if (msg !== this.storeError)
          this.warn(
            `cannot store a reading (${msg}): ${this.pending.length} window(s) kept in memory and retried with the next window; free disk space in ${s.dataDir}`,
          );
        this.storeError = msg;
        return;
      }
      try {
        committed();
      } catch (err) {
        this.warn(`after storing a reading: ${err instanceof Error ? err.message : String(err)}`);
      }
      this.opts.changed();
    }
  }

  /** Signs through the key; null when the key failed (it is then in its fault state and says so). */
  private async sign(reading: { powerW: number; timestampMs: number }): Promise<string | ((seq: number) => string) | null> {
    try {
      return await signReadingWith(
        this.opts.settings,
        this.identity,
        reading,
        this.readingExtras(),
        () => this.outbox.stats().nextSeq,
        // The extended reading's energy total: the one on the card, which never goes back.
        this.signedEnergyWh(),
      );
    } catch (err) {
      if (this.identity.source === 'file') throw err;
      return null;
    }
  }

  /** A held reading was signed and stored: as a new one, plus the "released" line once none is left. */
  private afterRelease(waitedFor: 'clock' | 'key', stored: AppendResult): void {
    this.opts.stored(stored);
    this.released[waitedFor]++;
    if (this.store.held(1).length === 0) {
      const { clock, key } = this.released;
      this.opts.log(
        `released ${clock + key} held reading(s)${clock > 0 ? ' with re-anchored timestamps' : ''}${key > 0 ? `, ${key} kept unsigned while the signing key could not sign` : ''}`,
      );
      this.released = { clock: 0, key: 0 };
    }
  }

  /**
   * A window kept unsigned in the database (its energy and rewards counted, once), bounded by
   * `--outbox-max-count`: past it the oldest held reading was dropped and counted
   * (publishing.dropped) in the same transaction (MeterStore.holdReading).
   */
  private afterHold(r: PendingReading, held: { counted: boolean; droppedOldest: boolean }): void {
    if (held.droppedOldest)
      this.warn(
        `more than ${this.opts.settings.outboxMaxCount} readings held unsigned (--outbox-max-count): dropped the oldest (counted in publishing.dropped)`,
      );
    if (!held.counted)
      this.opts.log(`window energy ${r.energyWh} Wh / rewards ${r.rewards} is not a finite amount: counted as 0 (totals stay finite)`);
    const counts = this.store.heldCounts();
    if (r.endWallMs === null)
      this.opts.log(`reading held until the clock is synchronised (${this.opts.clockReason()}); held=${counts.clock}`);
    else
      this.opts.log(
        `reading held unsigned until the signing key is back (${this.identity.status().reason ?? 'key not ready'}); unsigned=${counts.key}`,
      );
    // Strict mode: the held window's energy reaches the card now, as a stored reading's does.
    if (this.opts.settings.syncIntervalS === 0) this.opts.sync();
  }

  /** The energy total an extended reading signs: the card's (the last sync), so it never decreases. */
  private signedEnergyWh(): number {
    return this.opts.settings.signedFields === 'extended'
      ? (this.outbox.staged ? this.store.syncedTotals() : this.store.totals()).energyWh
      : 0;
  }

  /** What the wire profile adds to the signed data: the calibration id with --reading-calibration-id. */
  private readingExtras(): ReadonlyArray<readonly [string, string]> {
    return this.opts.settings.readingCalibrationId ? [['calibration_id', this.opts.calibrationId ?? 'none']] : [];
  }

  /**
   * Every reading is told apart on the wire by its body, not only by its eventID or nonce: with
   * `--window 1` and second timestamps, two windows can end within the same second (window
   * lengths vary by a few ms), and the same power then gave a byte-identical body (deterministic
   * signatures) that an applet could not tell from a resend. So the timestamp sent, in its unit,
   * always goes up: a reading whose second (or ms) was taken by the previous one gets the next
   * one. The shift is under one unit, within the timestamp's own rounding (docs/w3bstream.md
   * section 2, "Decision"). Only a stored reading takes its timestamp (`signedAt`): a window that
   * could not be stored and is tried again must not push the ones behind it into the future.
   */
  private distinctTimeMs(wallMs: number): number {
    const unit = this.opts.settings.timestampUnit;
    const perUnit = unit === 's' ? 1000 : 1;
    let ts = timestampFor(wallMs, unit);
    if (ts <= this.lastSignedTs) ts = this.lastSignedTs + 1;
    return Math.max(wallMs, ts * perUnit);
  }

  /** A reading with this time (from `distinctTimeMs`) was stored: the next one must be later. */
  private signedAt(timestampMs: number): void {
    this.lastSignedTs = Math.max(this.lastSignedTs, timestampFor(timestampMs, this.opts.settings.timestampUnit));
  }

  /**
   * A signature still in the token gets up to a second to come back; whatever is still pending
   * then is held in the database (unsigned, counted), so a stop loses no measured window.
   */
  async stop(): Promise<void> {
    if (this.signing !== null) await Promise.race([this.signing, new Promise((r) => setTimeout(r, 1000))]);
    this.signingAbandoned = true;
    for (const r of this.pending.splice(0)) {
      let held: { counted: boolean; droppedOldest: boolean };
      try {
        held = this.store.holdReading(
          { bootId: this.boot, endMonoMs: r.endMonoMs, avgPowerW: r.avgPowerW, endWallMs: r.endWallMs },
          { energyWh: r.energyWh, rewards: r.rewards },
          this.opts.settings.outboxMaxCount,
        );
      } catch (err) {
        this.warn(`cannot keep a window at stop (${err instanceof Error ? err.message : String(err)}): it is lost`);
        continue;
      }
      try {
        this.afterHold(r, held);
      } catch (err) {
        this.warn(`after keeping a window at stop: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
