import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/**
 * The durable outbox (design.md "Never losing a reading"): every signed message gets the next
 * per-device sequence number and is committed to SQLite (WAL, synchronous=FULL) before the first
 * delivery attempt. The sequence counter lives in the same database and advances in the same
 * transaction, so a number is never reused, even after kill -9 or a power cut. The database is
 * held with an exclusive lock: a second process on the same file is refused instead of
 * corrupting it.
 */
export interface OutboxMessage {
  seq: number;
  body: string;
  createdMs: number;
  attempts: number;
}

export interface OutboxOptions {
  maxCount?: number;
  maxAgeMs?: number;
  /** Wall clock, for the age bound. */
  nowMs?: () => number;
}

export interface OutboxStats {
  waiting: number;
  /** Dropped because the outbox was full or too old, since the database was created. */
  dropped: number;
  /** Delivered but refused by the applet (counted, not retried). */
  rejected: number;
  delivered: number;
  nextSeq: number;
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
  private listeners = new Set<() => void>();

  private constructor(
    readonly file: string,
    opts: OutboxOptions,
  ) {
    this.maxCount = opts.maxCount ?? 1_000_000;
    this.maxAgeMs = opts.maxAgeMs ?? 30 * 86_400_000;
    this.nowMs = opts.nowMs ?? Date.now;
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
      INSERT OR IGNORE INTO counters VALUES ('next_seq', 1), ('dropped', 0), ('rejected', 0), ('delivered', 0);
    `);
    this.stmts = {
      counter: this.db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
      bump: this.db.prepare<[number, string]>('UPDATE counters SET value = value + ? WHERE name = ?'),
      insert: this.db.prepare<[number, string, number]>('INSERT INTO messages (seq, body, created_ms) VALUES (?, ?, ?)'),
      count: this.db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM messages'),
      dropOldest: this.db.prepare<[number]>('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)'),
      dropOlderThan: this.db.prepare<[number]>('DELETE FROM messages WHERE created_ms < ?'),
      peek: this.db.prepare<[number, number], { seq: number; body: string; created_ms: number; attempts: number }>('SELECT * FROM messages WHERE seq > ? ORDER BY seq LIMIT ?'),
      remove: this.db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
      attempt: this.db.prepare<[number]>('UPDATE messages SET attempts = attempts + 1 WHERE seq = ?'),
    };
  }

  static open(file: string, opts: OutboxOptions = {}): Outbox {
    return new Outbox(file, opts);
  }

  /**
   * Stores a message under the next sequence number and returns it. `alsoInTransaction` runs in
   * the same transaction (the backend updates its energy totals there, so a window is counted
   * exactly when its message is stored).
   */
  append(body: string, alsoInTransaction?: (seq: number) => void): { seq: number; dropped: number } {
    const result = this.db.transaction(() => {
      const seq = this.stmts.counter.get('next_seq')!.value;
      this.stmts.bump.run(1, 'next_seq');
      this.stmts.insert.run(seq, body, Math.round(this.nowMs()));
      alsoInTransaction?.(seq);
      const dropped = this.enforceBounds();
      return { seq, dropped };
    })();
    for (const l of this.listeners) l();
    return result;
  }

  /** Age and count bounds: the oldest go first, and every drop is counted. */
  enforceBounds(): number {
    const old = this.stmts.dropOlderThan.run(Math.round(this.nowMs() - this.maxAgeMs)).changes;
    const excess = this.stmts.count.get()!.n - this.maxCount;
    const full = excess > 0 ? this.stmts.dropOldest.run(excess).changes : 0;
    const dropped = old + full;
    if (dropped > 0) this.stmts.bump.run(dropped, 'dropped');
    return dropped;
  }

  /** The oldest undelivered messages after `afterSeq`, in order. */
  peek(limit = 1, afterSeq = 0): OutboxMessage[] {
    return this.stmts.peek.all(afterSeq, limit).map((r) => ({ seq: r.seq, body: r.body, createdMs: r.created_ms, attempts: r.attempts }));
  }

  noteAttempt(seq: number): void {
    this.stmts.attempt.run(seq);
  }

  /** The receiver accepted the message. */
  ack(seq: number): void {
    this.remove(seq, 'delivered');
  }

  /** The node received the message but the applet refused it: retrying cannot help. */
  reject(seq: number): void {
    this.remove(seq, 'rejected');
  }

  /**
   * Removal commits without waiting for the disk (synchronous=NORMAL): losing it in a power cut
   * only means one more delivery of the same eventID (at least once), never a lost reading. It
   * halves the cost of draining a backlog. Appends always wait for the disk.
   */
  private remove(seq: number, counter: 'delivered' | 'rejected'): void {
    this.db.pragma('synchronous = NORMAL');
    try {
      this.db.transaction(() => {
        if (this.stmts.remove.run(seq).changes > 0) this.stmts.bump.run(1, counter);
      })();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  stats(): OutboxStats {
    const c = (name: string): number => this.stmts.counter.get(name)!.value;
    return { waiting: this.stmts.count.get()!.n, dropped: c('dropped'), rejected: c('rejected'), delivered: c('delivered'), nextSeq: c('next_seq') };
  }

  /** Called after every append (the publisher wakes up). */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
