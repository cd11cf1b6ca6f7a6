import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import {
  discardWaiting,
  discardedTotal,
  groupWaiting,
  replaceMessage,
  restoreMessages,
  type BacklogAccess,
  type WaitingGroup,
} from './outbox/backlog.js';
import { OutboxOptionError } from './outbox/errors.js';
import { openCardDatabase } from './outbox/open.js';
import type { OutboxSql, SchemaExtension } from './outbox/schema.js';
import { SequenceReservation, decideNextSeq, readLocalMeta, writeLocalMeta, type LocalMeta, type SeqGapReason } from './outbox/sequence.js';
import { OutboxStaging } from './outbox/staging.js';
import { Statements } from './outbox/statements.js';

export { OutboxCorruptError, OutboxLockedError, OutboxOptionError, OutboxTooNewError, isCorruptionError } from './outbox/errors.js';
export type { Migration, OutboxSql, SchemaExtension } from './outbox/schema.js';
export type { SeqGapReason } from './outbox/sequence.js';
export type { WaitingGroup } from './outbox/backlog.js';

/**
 * The durable outbox (docs/design.md "Never losing a reading"): every signed message gets the next
 * per-device sequence number and is committed to SQLite before the first delivery attempt.
 *
 * - Sequence numbers: a counter row in the same database, advanced in the same transaction as
 *   the insert (what AUTOINCREMENT does with sqlite_sequence, without its extra B-tree). A number
 *   is never reused: not after deletes (delivered, rejected or dropped rows), not after reopening,
 *   not after kill -9 or a power cut, because the row and the counter commit or vanish together.
 * - Journal: WAL. kill -9 at any point leaves the last committed state; a torn write is rolled
 *   back by the WAL checksums, never half-applied.
 * - synchronous=FULL for appends: the commit waits until the WAL is on the disk, so a reading the
 *   outbox has acknowledged survives a power cut too. NORMAL would survive kill -9 but could lose
 *   the last few appends on power loss, which "stored durably before delivery" rules out.
 *   Removals (delivered/rejected) commit with NORMAL: losing one to a power cut only means one
 *   more delivery with the same eventID (at least once), never a lost reading, and it halves the
 *   cost of draining a backlog.
 * - locking_mode=EXCLUSIVE: a second process on the same file is refused (`OutboxLockedError`)
 *   instead of interleaving sequence numbers.
 * - Bounds: at most `maxCount` messages, and the head of the queue is dropped while it is older
 *   than `maxAgeMs`. Age is *measured* time, not the wall clock: a persistent counter advanced by
 *   the monotonic clock while the outbox is open, so a step of the system clock (NTP after a boot
 *   without a real-time clock, `date -s`) can never make a seconds-old reading look 40 days old.
 *   Time while the meter is off is not counted: a reading is kept longer, never dropped early.
 *   The oldest go first; every drop is counted in the database (`droppedTotal()`) and returned by
 *   `append`, never silent.
 * - Sequence floor (`sequenceFloorFile`, see sequence-floor.ts): numbers also never go back when
 *   the database itself is deleted, emptied, truncated or replaced by an older copy.
 * - Sequence numbers after a stop that was not clean: numbers stay contiguous when nothing was lost.
 *   Each open is a session (a random name) written into the floor and into the copy it works on
 *   (`local_meta`, a table that is never copied between the RAM copy and the card): `working` =
 *   `ram` or `card`. The next open trusts the next number of the copy it takes when that copy is
 *   the one the last session worked on (same session name, same place): the RAM copy after kill -9
 *   or a crash, the card's file when the session worked on it directly (no RAM copy, or a long
 *   backlog; every commit there is durable). Otherwise it continues above the floor's reservation
 *   and reports the skipped numbers (`openReport.seqRaised`, counted in `skipped`): the RAM copy
 *   was lost with what it held since the last sync (a power cut), or the outbox is new or older.
 *   The card is marked `working = ram` durably before a RAM copy hands out a number the card does
 *   not have. Not covered: a copy of the card's file taken while that very session ran and put
 *   back after it crashed, before the next start (it carries the session's name).
 * - Appending never fails after its commit: a reading is stored (numbered, counted) exactly once or
 *   not at all, whatever fails after (a sync to a full card: `append` returns `syncError`). Strict
 *   mode (`syncEveryAppend`) hands the publisher only messages that are on the card (`peek`).
 * - Schema: `PRAGMA user_version` and the migration list (outbox/schema.ts); the backend keeps its own tables
 *   in the same database through `schemas` (migrations) and `transaction()` (no handle is shared).
 * - Staging in RAM (`stagingFile`, on a tmpfs such as /run): every operation (append, delivery,
 *   the backend's totals) commits to a copy of the database in RAM, and `sync()` copies what
 *   changed to the file on the card in one transaction (synchronous=FULL). A process crash
 *   (kill -9) loses nothing: the RAM copy is a file, it outlives the process, and the next open
 *   takes it when it is at least as new as the card's (the `synced_gen` counter). A power cut
 *   loses what changed since the last `sync()`, never more; sequence numbers still never go back
 *   (the floor is reserved on the card before a number is used). Readings delivered between two
 *   syncs never reach the card at all. Without `stagingFile` every append is durable at once.
 * - Corruption (SQLite says the file is malformed or not a database) is `OutboxCorruptError`,
 *   never a silent new database: the caller stops and tells the user how to salvage it.
 */
export interface OutboxMessage {
  seq: number;
  body: string;
  createdAtMs: number;
  /** Delivery attempts that did not remove it (failed, or stopped), as counted by `noteAttempt`. */
  attempts: number;
}

export interface OutboxOptions {
  /** Most messages kept (default 1,000,000: > 57 days of 5 s readings). */
  maxCount?: number;
  /** Oldest message kept, in measured time (default 30 days). */
  maxAgeMs?: number;
  /** Wall clock in ms, for `createdAtMs` only. */
  now?: () => number;
  /** Monotonic clock in ms (default `performance.now`), for the age bound. */
  monotonicNow?: () => number;
  /** The sequence floor file (beside the device key). Without it, the database alone keeps numbers. */
  sequenceFloorFile?: string;
  /** Numbers reserved per floor write (default 100). */
  sequenceBlock?: number;
  /** The user's own tables, created and migrated at open in the same database. */
  schemas?: readonly SchemaExtension[];
  /**
   * A RAM copy of the database (a path on a tmpfs, e.g. /run/power-meter/outbox.sqlite): commits
   * go there, and reach `file` only at `sync()` (see the header). Removed after a clean close.
   */
  stagingFile?: string;
  /**
   * With `stagingFile`: sync after every append, before anyone is told of it (strict mode: an
   * acknowledged message is on the card, as without staging). The RAM copy is still the one
   * the process works on, so a crash's copy is taken over whatever the mode.
   */
  syncEveryAppend?: boolean;
  /**
   * With `stagingFile`: the most messages waiting in the RAM copy (default 2,880: four hours of
   * 5 s readings, about 1.5 MB). A longer outage would fill a small tmpfs (/run is a tenth of the
   * RAM), so beyond this the outbox works on the card's file directly, every append durable at
   * once, until the backlog is down to a tenth of it; then it stages again.
   */
  stagingMaxWaiting?: number;
}

export interface OutboxStats {
  waiting: number;
  /** Dropped because the outbox was full or too old, since the database was created. */
  dropped: number;
  /** Delivered but refused by the applet (counted, not retried). */
  rejected: number;
  /** Delivered, but no applet handled the eventType (`results: null`). */
  unhandled: number;
  delivered: number;
  /** The sequence number the next append gets. */
  nextSeq: number;
  /** Messages stored (signed readings), since the database was created. */
  appended: number;
  /**
   * Sequence numbers skipped since the database was created: never given to a stored message
   * (the readings of a RAM copy lost in a power cut, a lost or older outbox, the unused rest of
   * the reserved block). `nextSeq - 1 = appended + skipped` for a database numbered from 1.
   */
  skipped: number;
}

/** What `open` found, for the caller to log and show. */
export interface OutboxOpenReport {
  /** The database had no outbox tables (a new, deleted or emptied file). */
  created: boolean;
  /**
   * Set when the sequence floor raised the next number: numbers `from` to `to - 1` are skipped
   * (see the header), and why.
   */
  seqRaised: { from: number; to: number; reason: SeqGapReason } | null;
  /** Schema version before migrations (0: created or older than versioning). */
  fromVersion: number;
}

/** What `append` did: the number, the body stored, drops, and a sync that failed after the commit. */
export interface AppendResult {
  seq: number;
  body: string;
  dropped: number;
  /**
   * With `syncEveryAppend`: the sync after the commit failed (a full or failing card). The message
   * is stored (in the RAM copy) and counted; it is handed to the publisher once a sync succeeds.
   */
  syncError: Error | null;
}

export type DeliveryOutcome = 'delivered' | 'rejected' | 'unhandled';

/** Checks the bounds and the floor's block size (before anything is opened). */
function checkedBounds(opts: OutboxOptions): { maxCount: number; maxAgeMs: number; block: number } {
  const maxCount = opts.maxCount ?? 1_000_000;
  const maxAgeMs = opts.maxAgeMs ?? 30 * 86_400_000;
  const block = opts.sequenceBlock ?? 100;
  if (!Number.isSafeInteger(maxCount) || maxCount < 1) throw new OutboxOptionError('maxCount', opts.maxCount, 'a whole number >= 1');
  if (!(maxAgeMs > 0) || !Number.isFinite(maxAgeMs)) throw new OutboxOptionError('maxAgeMs', opts.maxAgeMs, 'a duration > 0 ms');
  if (!Number.isSafeInteger(block) || block < 1) throw new OutboxOptionError('sequenceBlock', opts.sequenceBlock, 'a whole number >= 1');
  return { maxCount, maxAgeMs, block };
}

/**
 * The outbox: numbering, storing, bounds, delivery bookkeeping and the user's transactions, on
 * whichever connection it works on. Its parts live in outbox/: opening and locking the card's
 * file (open.ts), the schema (schema.ts), the numbering across opens (sequence.ts), the RAM copy
 * (staging.ts), the operations on the backlog as a whole (backlog.ts), the statements
 * (statements.ts), the errors (errors.ts).
 */
export class Outbox {
  /** What open found (new database, sequence raised by the floor, schema version). */
  readonly openReport: OutboxOpenReport;
  /** The connection commits go to: the RAM copy while staged, else the card's file. */
  #db: Database.Database;
  /** The RAM copy and the card's file (`stagingFile`); null when there is no RAM copy at all. */
  readonly #staging: OutboxStaging | null;
  readonly #syncEveryAppend: boolean;
  readonly #maxCount: number;
  readonly #maxAgeMs: number;
  readonly #nowMs: () => number;
  readonly #monoNow: () => number;
  readonly #measuredBase: number;
  readonly #monoAtOpen: number;
  /** This open's session name and its reservations in the floor file. */
  readonly #seq: SequenceReservation;
  /** Set by `restore()`: the next sync copies every message, not only the new ones. */
  #fullSync = false;
  /** Strict mode: messages below this number are on the card (or gone); only those are peeked. */
  #syncedNext = 0;
  #stmts: Statements;
  readonly #listeners = new Set<() => void>();
  /** What `transaction()` and migrations get: always the connection worked on now. */
  readonly #sql: OutboxSql = {
    run: (text, ...params) => this.#stmts.sql.run(text, ...params),
    get: <T>(text: string, ...params: unknown[]) => this.#stmts.sql.get<T>(text, ...params),
    all: <T>(text: string, ...params: unknown[]) => this.#stmts.sql.all<T>(text, ...params),
    exec: (text) => void this.#db.exec(text),
  };

  /** What the backlog operations (outbox/backlog.ts) get of this outbox. */
  readonly #backlog: BacklogAccess = {
    transaction: (fn) => this.transaction(fn),
    statements: () => this.#stmts,
    reserve: (seq) => this.#seq.reserve(seq),
    measuredNowMs: () => this.measuredNowMs(),
    copyAllAtNextSync: () => {
      this.#fullSync = true;
    },
  };

  private constructor(
    readonly file: string,
    opts: OutboxOptions,
  ) {
    const bounds = checkedBounds(opts);
    this.#maxCount = bounds.maxCount;
    this.#maxAgeMs = bounds.maxAgeMs;
    this.#nowMs = opts.now ?? Date.now;
    this.#monoNow = opts.monotonicNow ?? (() => performance.now());
    this.#seq = new SequenceReservation(opts.sequenceFloorFile ?? null, bounds.block);
    this.#syncEveryAppend = opts.syncEveryAppend === true;
    const schemas = opts.schemas ?? [];
    const card = openCardDatabase(file, schemas);
    const stagingMaxWaiting = opts.stagingMaxWaiting ?? 2880;
    if (!Number.isSafeInteger(stagingMaxWaiting) || stagingMaxWaiting < 1) {
      card.db.close();
      throw new OutboxOptionError('stagingMaxWaiting', opts.stagingMaxWaiting, 'a whole number >= 1');
    }
    // Which copy the last session worked on, as the card says (read before this session marks it).
    const cardMeta = readLocalMeta(card.db);
    const staged =
      opts.stagingFile === undefined
        ? null
        : OutboxStaging.open(card.db, {
            file: opts.stagingFile,
            cardFile: file,
            maxWaiting: stagingMaxWaiting,
            schemas,
            session: this.#seq.session,
          });
    this.#staging = staged?.staging ?? null;
    const tookRamCopy = staged?.tookRamCopy === true;
    this.#db = this.#staging?.working ?? card.db;
    this.#stmts = new Statements(this.#db);
    this.#measuredBase = this.#stmts.named.counter.get('measured_ms')!.value;
    this.#monoAtOpen = this.#monoNow();
    let seqRaised: OutboxOpenReport['seqRaised'];
    try {
      // The copy this session takes: a RAM copy left by the last session knows its own state;
      // a fresh copy of the card (or the card itself) is what the card says.
      seqRaised = this.#settleNumbering(tookRamCopy ? readLocalMeta(this.#db) : cardMeta, tookRamCopy, card.created);
    } catch (err) {
      this.#closeConnections();
      throw err;
    }
    this.openReport = { created: card.created, seqRaised, fromVersion: card.fromVersion };
    // The card now holds what the RAM copy holds (raised numbers, reserved block included).
    this.sync();
  }

  static open(file: string, opts: OutboxOptions = {}): Outbox {
    return new Outbox(file, opts);
  }

  /**
   * At open: the next number (never at or below one stored, nor below the floor unless the copy
   * taken is the one the last session numbered in; see the header), this session's mark in the
   * copy it works on, and the first block reserved before any number of it is handed out.
   */
  #settleNumbering(taken: LocalMeta, tookRamCopy: boolean, created: boolean): OutboxOpenReport['seqRaised'] {
    const s = this.#stmts.named;
    const settled = this.#db.transaction(() => {
      // The waiting counter saves a COUNT(*) (a full scan in SQLite) on every append. Recount once
      // at open so that rows removed behind our back (a user pruning the table) cannot skew it.
      s.set.run(s.count.get()!.n, 'waiting');
      const stored = s.counter.get('next_seq')!.value;
      const { next, raised } = decideNextSeq({
        stored,
        maxStored: s.maxSeq.get()!.m,
        floor: this.#seq.readFloor(),
        taken,
        tookRamCopy,
        created,
      });
      if (next !== stored) s.set.run(next, 'next_seq');
      if (raised !== null) s.bump.run(raised.to - raised.from, 'skipped');
      writeLocalMeta(this.#sql, this.#seq.session, this.staged ? 'ram' : 'card');
      // Reserve the first block before the first number of it can be handed out.
      this.#seq.reserve(next);
      return raised;
    })();
    // The card says durably that a RAM copy may hold more than it does, before a number is used.
    if (this.staged) this.#staging!.markCard('ram');
    return settled;
  }

  /** True when commits go to a RAM copy and reach the card at `sync()`. */
  get staged(): boolean {
    return this.#staging?.inRam === true;
  }

  /** Commits go to `db` from now on (the RAM copy or the card's file): its own statements. */
  #workOn(db: Database.Database): void {
    this.#db = db;
    this.#stmts = new Statements(db);
  }

  #closeConnections(): void {
    if (this.#staging !== null) this.#staging.close();
    else this.#db.close();
  }

  /**
   * Copies what changed in the RAM copy to the card in one durable transaction: messages stored
   * since the last sync, removals, and every other table (counters, the backend's totals; all
   * small). A no-op without staging (every commit is durable already). Moves the work to the card
   * when the backlog outgrows the RAM copy, and back once it drained.
   */
  sync(): void {
    const staging = this.#staging;
    if (staging === null || !this.#db.open) return;
    if (!staging.inRam) {
      if (this.waiting() <= staging.maxWaiting / 10) {
        this.#syncedNext = staging.enterRam();
        this.#workOn(staging.working);
      }
      return;
    }
    const s = this.#stmts.named;
    const gen = s.counter.get('synced_gen')!.value + 1;
    s.set.run(gen, 'synced_gen');
    const nextOnCard = s.counter.get('next_seq')!.value;
    staging.copyToCard(this.#fullSync);
    this.#fullSync = false;
    const gated = this.#syncEveryAppend && nextOnCard > this.#syncedNext;
    this.#syncedNext = nextOnCard;
    if (this.waiting() > staging.maxWaiting) {
      // The backlog outgrew the RAM copy: everything is on the card (just synced); work there.
      staging.leaveRam();
      this.#workOn(staging.disk);
    }
    // Strict mode: messages the publisher could not see until now are on the card.
    if (gated) this.#notifyAppend();
  }

  #notifyAppend(): void {
    for (const l of this.#listeners) {
      try {
        l();
      } catch {
        // A listener's failure is its own: the message is stored whatever it does.
      }
    }
  }

  /** Reads from the card's file (what survives a power cut); the same as `transaction` without staging. */
  durable<T>(fn: (sql: OutboxSql) => T): T {
    if (!this.staged) return this.transaction(fn);
    return fn(this.#staging!.cardReader());
  }

  /** Measured time in ms: persistent, advanced only by the monotonic clock while open. */
  measuredNowMs(): number {
    return this.#measuredBase + Math.max(0, this.#monoNow() - this.#monoAtOpen);
  }

  /**
   * Runs `fn` in one transaction with the outbox (nested inside `append`'s when called from its
   * `inTransaction`): the backend's own tables change exactly when a message is stored. Durable
   * (synchronous=FULL) when the outermost transaction commits.
   */
  transaction<T>(fn: (sql: OutboxSql) => T): T {
    return this.#db.inTransaction ? fn(this.#sql) : this.#db.transaction(() => fn(this.#sql))();
  }

  /**
   * Stores a message under the next sequence number, in one transaction: the number is taken (and
   * reserved in the floor), `body` is made (a function gets the number, so it can be signed into
   * the message: a W3bstream 2 task's nonce, the extended reading's seq), stored, and `inTransaction` runs with the same number (the backend counts the
   * window's energy there, so a window is counted exactly when its message is stored). Anything
   * failing up to the commit rolls all of it back: nothing is numbered, stored or counted, and the
   * caller may try again. Nothing fails after the commit: a strict-mode sync that fails is
   * returned as `syncError` (the message waits in the RAM copy until a sync succeeds), never
   * thrown, so a caller never stores the same thing twice. `dropped`: how many of the oldest
   * messages the bounds removed to make room (also counted).
   */
  append(
    body: string | ((seq: number) => string),
    opts: { createdAtMs?: number; inTransaction?: (seq: number, sql: OutboxSql) => void } = {},
  ): AppendResult {
    const createdAtMs = opts.createdAtMs ?? this.#nowMs();
    if (!Number.isFinite(createdAtMs)) throw new OutboxOptionError('createdAtMs', createdAtMs, 'a time in ms');
    const result = this.transaction(() => {
      const seq = this.#stmts.named.counter.get('next_seq')!.value;
      this.#seq.reserve(seq);
      const text = typeof body === 'function' ? body(seq) : body;
      const measured = Math.round(this.measuredNowMs());
      this.#stmts.named.bump.run(1, 'next_seq');
      this.#stmts.named.insert.run(seq, text, Math.round(createdAtMs), measured);
      this.#stmts.named.bump.run(1, 'waiting');
      this.#stmts.named.bump.run(1, 'appended');
      this.#stmts.named.set.run(measured, 'measured_ms');
      opts.inTransaction?.(seq, this.#sql);
      const dropped = this.enforceBounds();
      return { seq, body: text, dropped };
    });
    let syncError: Error | null = null;
    // Inside a caller's transaction the commit is the caller's: it syncs after it (sync()).
    if (this.#syncEveryAppend && !this.#db.inTransaction) {
      try {
        this.sync();
      } catch (err) {
        syncError = err instanceof Error ? err : new Error(String(err));
      }
    }
    this.#notifyAppend();
    return { ...result, syncError };
  }

  /**
   * Puts salvaged messages back under their own sequence numbers (`power-meter outbox salvage`):
   * the next number becomes larger than all of them. A number already stored is skipped.
   */
  restore(messages: ReadonlyArray<{ seq: number; body: string; createdAtMs: number }>): number {
    return restoreMessages(this.#backlog, messages);
  }

  /** Applies the age and count bounds now: the oldest go first, and every drop is counted. */
  enforceBounds(): number {
    return this.transaction(() => {
      const cutoff = this.measuredNowMs() - this.#maxAgeMs;
      let dropped = 0;
      for (
        let head = this.#stmts.named.oldestHead.get();
        head && head.created_measured_ms < cutoff;
        head = this.#stmts.named.oldestHead.get()
      ) {
        this.#stmts.named.remove.run(head.seq);
        dropped++;
      }
      const excess = this.#stmts.named.counter.get('waiting')!.value - dropped - this.#maxCount;
      if (excess > 0) dropped += this.#stmts.named.dropOldest.run(excess).changes;
      if (dropped > 0) {
        this.#stmts.named.bump.run(dropped, 'dropped');
        this.#stmts.named.bump.run(-dropped, 'waiting');
      }
      return dropped;
    });
  }

  /**
   * The oldest undelivered messages after `afterSeq`, in order. Strict mode (`syncEveryAppend`)
   * while staged: only those on the card (a message whose sync failed waits for the next one).
   */
  peek(limit = 1, afterSeq = 0): OutboxMessage[] {
    const below = this.#syncEveryAppend && this.staged ? this.#syncedNext : Number.MAX_SAFE_INTEGER;
    return this.#stmts.named.peek
      .all(afterSeq, below, limit)
      .map((r) => ({ seq: r.seq, body: r.body, createdAtMs: r.created_ms, attempts: r.attempts }));
  }

  /**
   * Counts an attempt that did not deliver the message. The publisher calls it after a failure
   * only, and it commits without waiting for the disk (synchronous=NORMAL): counting every
   * attempt up front with an fsync cost more than the rest of a delivery (a third of the time to
   * drain a day of backlog) and a WAL page per reading on the SD card, for a diagnostic figure.
   */
  noteAttempt(seq: number): void {
    this.#relaxed(() => void this.#stmts.named.attempt.run(seq));
  }

  /**
   * Removes a message the node answered: `delivered`, `rejected` (the node took it but the
   * applet refused this message; retrying cannot help) or `unhandled` (the node took it and no
   * applet handled its eventType). Returns false if it was not waiting (already removed, or
   * dropped by the bounds meanwhile).
   */
  markDelivered(seq: number, outcome: DeliveryOutcome = 'delivered'): boolean {
    const remove = (): boolean => {
      if (this.#stmts.named.remove.run(seq).changes === 0) return false;
      this.#stmts.named.bump.run(1, outcome);
      this.#stmts.named.bump.run(-1, 'waiting');
      return true;
    };
    return this.#relaxed(() => this.#db.transaction(remove)());
  }

  /**
   * Runs `fn` with synchronous=NORMAL (commits reach the WAL, not yet the disk): for writes whose
   * loss in a power cut is harmless. synchronous cannot change inside a transaction; inside the
   * caller's, the caller's commit decides.
   */
  #relaxed<T>(fn: () => T): T {
    if (this.#db.inTransaction || this.staged) return fn();
    this.#db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  /** The waiting messages grouped by what their JSON bodies say (see outbox/backlog.ts). */
  groupWaiting(paths: { extract?: readonly string[]; type?: readonly string[] } = {}): WaitingGroup[] {
    return groupWaiting(this.#backlog, paths);
  }

  /**
   * Removes waiting messages on the user's word (`power-meter outbox discard`), counted apart from
   * the bounds' drops (counter `discarded`). All of them, or those up to `throughSeq`. Returns how many.
   */
  discard(throughSeq: number = Number.MAX_SAFE_INTEGER): number {
    return discardWaiting(this.#backlog, throughSeq);
  }

  /** Messages removed by `discard` since the database was created. */
  discardedTotal(): number {
    return discardedTotal(this.#backlog);
  }

  /**
   * Replaces a waiting message by one built for a new sequence number, keeping its creation time
   * and place in the order (see outbox/backlog.ts). Returns the new number, or null when `seq` was
   * not waiting.
   */
  replace(seq: number, build: (newSeq: number) => string): number | null {
    return replaceMessage(this.#backlog, seq, build);
  }

  /** Messages stored and not yet delivered. */
  waiting(): number {
    return this.#stmts.named.counter.get('waiting')!.value;
  }

  /** Messages dropped by the bounds since the database was created. */
  droppedTotal(): number {
    return this.#stmts.named.counter.get('dropped')!.value;
  }

  stats(): OutboxStats {
    const c = (name: string): number => this.#stmts.named.counter.get(name)!.value;
    return {
      waiting: c('waiting'),
      dropped: c('dropped'),
      rejected: c('rejected'),
      unhandled: c('unhandled'),
      delivered: c('delivered'),
      nextSeq: c('next_seq'),
      appended: c('appended'),
      skipped: c('skipped'),
    };
  }

  /** Called after every append (the publisher wakes up). Returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Closes the database (idempotent). SQLite checkpoints the WAL into the main file on close. The
   * floor then records the exact next number, so a clean restart leaves no gap in the numbers.
   */
  close(): void {
    this.#listeners.clear();
    if (!this.#db.open) return;
    let next: number | null = null;
    let synced = false;
    try {
      this.#relaxed(() => void this.#stmts.named.set.run(Math.round(this.measuredNowMs()), 'measured_ms'));
      this.sync();
      synced = true;
      next = this.#stmts.named.counter.get('next_seq')!.value;
    } finally {
      this.#closeConnections();
    }
    // The card holds everything now: the RAM copy is redundant (if the sync failed it is kept,
    // and the next open takes it).
    if (this.staged && synced) this.#staging!.removeCopy();
    if (next !== null) this.#seq.recordCleanStop(next);
  }
}
