import { OutboxCorruptError, isCorruptionError, type AppendResult, type Outbox } from '@power-meter/w3bstream';
import type { BackendSettings } from '../settings.js';
import { stagingFileFor } from './paths.js';

export interface CardSyncOptions {
  settings: BackendSettings;
  log: (line: string) => void;
  warn: (line: string) => void;
  /** The outbox became unusable (SQLite reports the file damaged): see MeterOptions.onFatal. */
  onFatal?: (err: OutboxCorruptError) => void;
  outbox: Outbox;
  /** The RAM directory (the RAM copy is there while the card cannot be written). */
  runtimeDir: string;
  /** A stored reading goes to the outputs (MQTT `reading`). */
  toOutputs: (body: string) => void;
  /** Something state.json shows changed (the synced totals). */
  changed: () => void;
}

/**
 * The sync point between the outbox's RAM copy and the card (`--sync-interval`, strict mode at 0),
 * and what depends on it: one log line per new sync problem and one when it is over, the line when
 * the outbox leaves RAM for a long backlog and comes back, and in strict mode the outputs getting a
 * reading only once it is on the card. Apart from the meter because these rules are about the
 * card, not about measuring.
 */
export class CardSync {
  private syncError: string | null = null;
  /**
   * Strict mode: readings stored while the card could not be written, not yet handed to the
   * outputs (MQTT `reading`): they go out with the sync that puts them on the card.
   */
  private unsyncedReadings: string[] = [];
  private loggedStaged: boolean | null = null;
  private readonly outbox: Outbox;
  private readonly runtimeDir: string;
  private readonly warn: (line: string) => void;

  constructor(private readonly opts: CardSyncOptions) {
    ({ outbox: this.outbox, runtimeDir: this.runtimeDir, warn: this.warn } = opts);
  }

  /** The last sync failed (strict mode retries without waiting for a reading). */
  get failing(): boolean {
    return this.syncError !== null;
  }

  /** Says when the outbox leaves RAM for a long backlog, and when it comes back. */
  logStaging(): void {
    if (stagingFileFor(this.opts.settings) === undefined || this.loggedStaged === this.outbox.staged) return;
    if (this.loggedStaged !== null || !this.outbox.staged)
      this.opts.log(
        this.outbox.staged
          ? 'backlog drained: the outbox works in RAM again'
          : `backlog of ${this.outbox.waiting()} readings: the outbox works on ${this.opts.settings.dataDir} directly until it drains (RAM stays small)`,
      );
    this.loggedStaged = this.outbox.staged;
  }

  /** The sync point: the outbox's RAM copy to the card. A failure is retried at the next one. */
  sync(): void {
    let error: unknown = null;
    try {
      this.outbox.sync();
      this.logStaging();
    } catch (err) {
      error = err;
    }
    this.syncDone(error);
    // The totals shown are the synced ones (they never go back, even after a power cut).
    this.opts.changed();
  }

  /** After a sync (the timer's, or strict mode's after each reading): one line per new problem, one when it is over. */
  private syncDone(err: unknown): void {
    if (err === null) {
      if (this.syncError !== null) this.opts.log(`the outbox reaches ${this.opts.settings.dataDir} again`);
      this.syncError = null;
      // Strict mode: readings now on the card go to the outputs, in order.
      for (const body of this.unsyncedReadings.splice(0)) this.opts.toOutputs(body);
      return;
    }
    if (isCorruptionError(err)) {
      this.opts.onFatal?.(new OutboxCorruptError(this.outbox.file, (err as Error).message));
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    if (msg !== this.syncError)
      this.warn(
        this.opts.settings.syncIntervalS === 0
          ? `cannot write the outbox to ${this.opts.settings.dataDir} (${msg}): readings are stored in ${this.runtimeDir}, counted once, and sent once they are on the card (strict mode); free disk space there`
          : `cannot write the outbox to ${this.opts.settings.dataDir} (${msg}): readings are kept in ${this.runtimeDir} and written at the next sync; free disk space there`,
      );
    this.syncError = msg;
  }

  /** A reading is in the outbox: drops, strict mode's sync result, the outputs. */
  readingStored(stored: AppendResult): void {
    this.reportDrops(stored.dropped);
    if (this.opts.settings.syncIntervalS === 0) {
      this.syncDone(stored.syncError);
      // Not on the card yet: the outputs get it with the sync that puts it there.
      if (stored.syncError !== null) {
        this.unsyncedReadings.push(stored.body);
        return;
      }
    }
    this.opts.toOutputs(stored.body);
  }

  /** The outbox is bounded: dropping the oldest is counted (state.json) and logged, never silent. */
  private reportDrops(dropped: number): void {
    if (dropped > 0)
      this.warn(
        `outbox full or too old: dropped ${dropped} oldest undelivered reading(s); ${this.outbox.stats().dropped} dropped since install (raise --outbox-max-count / --outbox-max-age)`,
      );
  }
}
