import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * The durable outbox (design.md "Never losing a reading"): every signed message gets the next
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
 *   than `maxAgeMs` (by `createdAtMs`; creation order is queue order unless the wall clock stepped
 *   back). The oldest go first; every drop is counted in the database (`droppedTotal()`) and
 *   returned by `append`, never silent.
 */
export interface OutboxMessage {
  seq: number;
  body: string;
  createdAtMs: number;
  /** Same as `createdAtMs` (the first name). */
  createdMs: number;
  /** Delivery attempts that did not remove it (failed, or stopped), as counted by `noteAttempt`. */
  attempts: number;
}

export interface OutboxOptions {
  /** Most messages kept (default 1,000,000: > 57 days of 5 s readings). */
  maxCount?: number;
  /** Oldest message kept, by `createdAtMs` (default 30 days). */
  maxAgeMs?: number;
  /** Wall clock in ms, for `createdAtMs` and the age bound. */
  now?: () => number;
  /** Same as `now` (the first name). */
  nowMs?: () => number;
}

export interface OutboxStats {
  waiting: number;
  /** Dropped because the outbox was full or too old, since the database was created. */
  dropped: number;
  /** Delivered but refused by the applet (counted, not retried). */
  rejected: number;
  delivered: number;
  /** The sequence number the next append gets. */
  nextSeq: number;
}

export type DeliveryOutcome = 'delivered' | 'rejected';

export class OutboxOptionError extends RangeError {
  constructor(name: string, value: unknown, allowed: string) {
    super(`outbox option ${name}=${String(value)} is invalid: ${allowed}`);
    this.name = 'OutboxOptionError';
  }
}

export class OutboxLockedError extends Error {
  constructor(readonly file: string) {
    super(`outbox ${file} is in use by another process: another power-meter is already running on this data directory (systemctl status power-meter); stop it first`);
    this.name = 'OutboxLockedError';
  }
}

export class Outbox {
  readonly db: Database.Database;
  private readonly maxCount: number;
  private readonly maxAgeMs: number;
  private readonly nowMs: () => number;
  private readonly stmts;
  private readonly listeners = new Set<() => void>();

  private constructor(
    readonly file: string,
    opts: OutboxOptions,
  ) {
    this.maxCount = opts.maxCount ?? 1_000_000;
    this.maxAgeMs = opts.maxAgeMs ?? 30 * 86_400_000;
    if (!Number.isSafeInteger(this.maxCount) || this.maxCount < 1) throw new OutboxOptionError('maxCount', opts.maxCount, 'a whole number >= 1');
    if (!(this.maxAgeMs > 0)) throw new OutboxOptionError('maxAgeMs', opts.maxAgeMs, 'a duration > 0 ms');
    this.nowMs = opts.now ?? opts.nowMs ?? Date.now;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file, { timeout: 0 });
    try {
      // 1 KiB pages: each reading touches a few pages, and every page is rewritten whole in the
      // WAL, so small pages cut the bytes written to the SD card per reading (design.md, complaint 4).
      // Effective only when the database is created.
      this.db.pragma('page_size = 1024');
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      // Take the exclusive lock now (a write transaction), not at the first append.
      this.db.exec('BEGIN IMMEDIATE; COMMIT;');
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new OutboxLockedError(file);
      throw err;
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO counters VALUES ('next_seq', 1), ('dropped', 0), ('rejected', 0), ('delivered', 0), ('waiting', 0);
    `);
    this.stmts = {
      counter: this.db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
      bump: this.db.prepare<[number, string]>('UPDATE counters SET value = value + ? WHERE name = ?'),
      set: this.db.prepare<[number, string]>('UPDATE counters SET value = ? WHERE name = ?'),
      insert: this.db.prepare<[number, string, number]>('INSERT INTO messages (seq, body, created_ms) VALUES (?, ?, ?)'),
      count: this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM messages'),
      maxSeq: this.db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM messages'),
      dropOldest: this.db.prepare<[number]>('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)'),
      // The age bound walks from the head in sequence order and stops at the first young message,
      // so it costs O(dropped) per append instead of a full scan of a large backlog.
      oldestHead: this.db.prepare<[], { seq: number; created_ms: number }>('SELECT seq, created_ms FROM messages ORDER BY seq LIMIT 1'),
      peek: this.db.prepare<[number, number], { seq: number; body: string; created_ms: number; attempts: number }>('SELECT * FROM messages WHERE seq > ? ORDER BY seq LIMIT ?'),
      remove: this.db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
      attempt: this.db.prepare<[number]>('UPDATE messages SET attempts = attempts + 1 WHERE seq = ?'),
    };
    this.db.transaction(() => {
      // The waiting counter saves a COUNT(*) (a full scan in SQLite) on every append. Recount once
      // at open so that rows removed behind our back (a user pruning the table) cannot skew it.
      this.stmts.set.run(this.stmts.count.get()!.n, 'waiting');
      // Belt and braces: never hand out a number at or below one already stored.
      const max = this.stmts.maxSeq.get()!.m;
      if (max !== null && this.stmts.counter.get('next_seq')!.value <= max) this.stmts.set.run(max + 1, 'next_seq');
    })();
  }

  static open(file: string, opts: OutboxOptions = {}): Outbox {
    return new Outbox(file, opts);
  }

  /**
   * Stores a message under the next sequence number; durable when it returns (unless called
   * inside the caller's own `db.transaction()`, where it is durable when that commits, together
   * with the caller's updates). The second argument is either the creation time in ms (default:
   * now) or a function run inside the same transaction with the new number (the backend updates
   * its energy totals there, so a window is counted exactly when its message is stored).
   * `dropped`: how many of the oldest messages the bounds removed to make room (also counted).
   */
  append(body: string, createdAtMsOrInTransaction?: number | ((seq: number) => void), inTransaction?: (seq: number) => void): { seq: number; dropped: number } {
    const createdAtMs = typeof createdAtMsOrInTransaction === 'number' ? createdAtMsOrInTransaction : this.nowMs();
    const also = typeof createdAtMsOrInTransaction === 'function' ? createdAtMsOrInTransaction : inTransaction;
    if (!Number.isFinite(createdAtMs)) throw new OutboxOptionError('createdAtMs', createdAtMs, 'a time in ms');
    const result = this.db.transaction(() => {
      const seq = this.stmts.counter.get('next_seq')!.value;
      this.stmts.bump.run(1, 'next_seq');
      this.stmts.insert.run(seq, body, Math.round(createdAtMs));
      this.stmts.bump.run(1, 'waiting');
      also?.(seq);
      const dropped = this.enforceBounds();
      return { seq, dropped };
    })();
    for (const l of this.listeners) l();
    return result;
  }

  /** Applies the age and count bounds now: the oldest go first, and every drop is counted. */
  enforceBounds(): number {
    const run = (): number => {
      const cutoff = this.nowMs() - this.maxAgeMs;
      let dropped = 0;
      for (let head = this.stmts.oldestHead.get(); head && head.created_ms < cutoff; head = this.stmts.oldestHead.get()) {
        this.stmts.remove.run(head.seq);
        dropped++;
      }
      const excess = this.stmts.counter.get('waiting')!.value - dropped - this.maxCount;
      if (excess > 0) dropped += this.stmts.dropOldest.run(excess).changes;
      if (dropped > 0) {
        this.stmts.bump.run(dropped, 'dropped');
        this.stmts.bump.run(-dropped, 'waiting');
      }
      return dropped;
    };
    return this.db.inTransaction ? run() : this.db.transaction(run)();
  }

  /** The oldest undelivered messages after `afterSeq`, in order. */
  peek(limit = 1, afterSeq = 0): OutboxMessage[] {
    return this.stmts.peek.all(afterSeq, limit).map((r) => ({ seq: r.seq, body: r.body, createdAtMs: r.created_ms, createdMs: r.created_ms, attempts: r.attempts }));
  }

  /**
   * Counts an attempt that did not deliver the message. The publisher calls it after a failure
   * only, and it commits without waiting for the disk (synchronous=NORMAL): counting every
   * attempt up front with an fsync cost more than the rest of a delivery (a third of the time to
   * drain a day of backlog) and a WAL page per reading on the SD card, for a diagnostic figure.
   */
  noteAttempt(seq: number): void {
    this.relaxed(() => void this.stmts.attempt.run(seq));
  }

  /**
   * Removes a message the node answered: `delivered`, or `rejected` (the node took it but the
   * applet refused this message; retrying cannot help). Returns false if it was not waiting
   * (already removed, or dropped by the bounds meanwhile).
   */
  markDelivered(seq: number, outcome: DeliveryOutcome = 'delivered'): boolean {
    const remove = (): boolean => {
      if (this.stmts.remove.run(seq).changes === 0) return false;
      this.stmts.bump.run(1, outcome);
      this.stmts.bump.run(-1, 'waiting');
      return true;
    };
    return this.relaxed(() => this.db.transaction(remove)());
  }

  /**
   * Runs `fn` with synchronous=NORMAL (commits reach the WAL, not yet the disk): for writes whose
   * loss in a power cut is harmless. synchronous cannot change inside a transaction; inside the
   * caller's, the caller's commit decides.
   */
  private relaxed<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    this.db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Same as `markDelivered(seq, 'delivered')`. */
  ack(seq: number): void {
    this.markDelivered(seq, 'delivered');
  }

  /** Same as `markDelivered(seq, 'rejected')`. */
  reject(seq: number): void {
    this.markDelivered(seq, 'rejected');
  }

  /** Messages stored and not yet delivered. */
  waiting(): number {
    return this.stmts.counter.get('waiting')!.value;
  }

  /** Messages dropped by the bounds since the database was created. */
  droppedTotal(): number {
    return this.stmts.counter.get('dropped')!.value;
  }

  stats(): OutboxStats {
    const c = (name: string): number => this.stmts.counter.get(name)!.value;
    return { waiting: c('waiting'), dropped: c('dropped'), rejected: c('rejected'), delivered: c('delivered'), nextSeq: c('next_seq') };
  }

  /** Called after every append (the publisher wakes up). Returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Closes the database (idempotent). SQLite checkpoints the WAL into the main file on close. */
  close(): void {
    this.listeners.clear();
    if (this.db.open) this.db.close();
  }
}
