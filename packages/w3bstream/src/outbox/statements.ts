import type Database from 'better-sqlite3';
import type { OutboxSql } from './schema.js';

type Row = { seq: number; body: string; created_ms: number; attempts: number };

/**
 * The statements of one connection (the RAM copy or the card's file): the outbox's own, prepared
 * once, and any other text prepared on first use and cached. A statement belongs to the connection
 * it was prepared on, so when the outbox moves to the other copy it makes a new `Statements`.
 */
export class Statements {
  readonly named: NamedStatements;
  /** The connection as `OutboxSql` (cached statements). */
  readonly sql: OutboxSql;
  readonly #db: Database.Database;
  readonly #cache = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.named = prepareNamed(db);
    this.sql = sqlOf(db, (text) => this.prepared(text));
  }

  /** `text` prepared on this connection, once. */
  prepared(text: string): Database.Statement {
    let st = this.#cache.get(text);
    if (st === undefined) {
      st = this.#db.prepare(text);
      this.#cache.set(text, st);
    }
    return st;
  }
}

/** `db` as `OutboxSql`, each text prepared by `prepare` (default: every time, for one-off work). */
export function sqlOf(db: Database.Database, prepare: (text: string) => Database.Statement = (text) => db.prepare(text)): OutboxSql {
  return {
    run: (text, ...params) => ({ changes: prepare(text).run(...params).changes }),
    get: <T>(text: string, ...params: unknown[]) => prepare(text).get(...params) as T | undefined,
    all: <T>(text: string, ...params: unknown[]) => prepare(text).all(...params) as T[],
    exec: (text) => void db.exec(text),
  };
}

/** The outbox's own statements, by what they do. */
export interface NamedStatements {
  counter: Database.Statement<[string], { value: number }>;
  bump: Database.Statement<[number, string]>;
  set: Database.Statement<[number, string]>;
  insert: Database.Statement<[number, string, number, number]>;
  count: Database.Statement<[], { n: number }>;
  maxSeq: Database.Statement<[], { m: number | null }>;
  dropOldest: Database.Statement<[number]>;
  oldestHead: Database.Statement<[], { seq: number; created_measured_ms: number }>;
  peek: Database.Statement<[number, number, number], Row>;
  remove: Database.Statement<[number]>;
  attempt: Database.Statement<[number]>;
}

/** The outbox's statements, on whichever connection it works on (the RAM copy or the card's file). */
function prepareNamed(db: Database.Database): NamedStatements {
  return {
    counter: db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
    bump: db.prepare<[number, string]>('UPDATE counters SET value = value + ? WHERE name = ?'),
    set: db.prepare<[number, string]>('UPDATE counters SET value = ? WHERE name = ?'),
    insert: db.prepare<[number, string, number, number]>(
      'INSERT INTO messages (seq, body, created_ms, created_measured_ms) VALUES (?, ?, ?, ?)',
    ),
    count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM messages'),
    maxSeq: db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM messages'),
    dropOldest: db.prepare<[number]>('DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)'),
    // The age bound walks from the head in sequence order and stops at the first young message,
    // so it costs O(dropped) per append instead of a full scan of a large backlog.
    oldestHead: db.prepare<[], { seq: number; created_measured_ms: number }>(
      'SELECT seq, created_measured_ms FROM messages ORDER BY seq LIMIT 1',
    ),
    peek: db.prepare<[number, number, number], Row>(
      'SELECT seq, body, created_ms, attempts FROM messages WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?',
    ),
    remove: db.prepare<[number]>('DELETE FROM messages WHERE seq = ?'),
    attempt: db.prepare<[number]>('UPDATE messages SET attempts = attempts + 1 WHERE seq = ?'),
  };
}
