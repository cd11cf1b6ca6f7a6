import Database from 'better-sqlite3';
import { readSequenceFloor } from './sequence-floor.js';

/**
 * Reads what can still be read from a damaged outbox file (the part of `power-meter outbox salvage`
 * that knows the outbox's schema). Never writes to it.
 *
 * A range query over a damaged page can end early without an error (the page no longer says where
 * its rows are), so every number from 1 to the highest ever handed out (the counter, the largest
 * stored number, the sequence floor) is looked up on its own: a point lookup costs microseconds,
 * so a year of 5 s readings takes seconds. A lookup that fails is an unreadable number; the
 * waiting counter, when it can be read, says how many readings there were to find.
 */
export interface DamagedOutboxContents {
  messages: Array<{ seq: number; body: string; createdAtMs: number }>;
  /** Undelivered readings the damaged outbox counted (null: the counter is unreadable). */
  expected: number | null;
  /** Numbers whose lookup failed. */
  unreadable: number[];
  /** One row of the user's own tables, or undefined when it cannot be read. */
  tryGet<T>(sql: string): T | undefined;
  close(): void;
}

export function readDamagedOutbox(file: string, opts: { sequenceFloorFile?: string; nowMs?: number } = {}): DamagedOutboxContents {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true, readonly: true });
  } catch {
    // Not even the header can be read.
    return { messages: [], expected: null, unreadable: [], tryGet: () => undefined, close: () => undefined };
  }
  const tryGet = <T>(sql: string): T | undefined => {
    try {
      return db.prepare(sql).get() as T | undefined;
    } catch {
      return undefined;
    }
  };
  let floor = 0;
  try {
    floor = opts.sequenceFloorFile === undefined ? 0 : (readSequenceFloor(opts.sequenceFloorFile)?.nextSeq ?? 0);
  } catch {
    floor = 0; // an unreadable floor only narrows the search
  }
  const hi = Math.max(
    tryGet<{ value: number }>("SELECT value FROM counters WHERE name = 'next_seq'")?.value ?? 0,
    (tryGet<{ m: number | null }>('SELECT MAX(seq) AS m FROM messages')?.m ?? 0) + 1,
    floor,
    1,
  );
  const expected = tryGet<{ value: number }>("SELECT value FROM counters WHERE name = 'waiting'")?.value ?? null;
  const messages: DamagedOutboxContents['messages'] = [];
  const unreadable: number[] = [];
  let lookup: Database.Statement | null = null;
  try {
    lookup = db.prepare('SELECT seq, body, created_ms FROM messages WHERE seq = ?');
  } catch {
    lookup = null; // the schema itself is unreadable
  }
  for (let seq = 1; seq < hi; seq++) {
    try {
      if (lookup === null) throw new Error('no schema');
      const r = lookup.get(seq) as { seq: unknown; body: unknown; created_ms: unknown } | undefined;
      if (r !== undefined && typeof r.body === 'string' && r.seq === seq)
        messages.push({ seq, body: r.body, createdAtMs: typeof r.created_ms === 'number' ? r.created_ms : (opts.nowMs ?? Date.now()) });
    } catch {
      unreadable.push(seq);
    }
  }
  return { messages, expected, unreadable, tryGet, close: () => db.close() };
}
