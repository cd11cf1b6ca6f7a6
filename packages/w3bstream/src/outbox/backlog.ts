import type { OutboxSql } from './schema.js';
import type { Statements } from './statements.js';

/**
 * Operations on the backlog as a whole, for the commands a user runs on it (`power-meter outbox
 * salvage`, `export`, `discard`, `resign`) and the start-up checks of what it holds, never for
 * the daily append and delivery. Apart from the outbox so that those read without the rare
 * paths; each runs in one transaction of the outbox through `BacklogAccess`.
 */

/** What these operations need of the outbox. */
export interface BacklogAccess {
  /** One transaction with the outbox (see Outbox.transaction). */
  transaction<T>(fn: (sql: OutboxSql) => T): T;
  /** The statements of the connection worked on now. */
  statements(): Statements;
  /** Reserves the floor's block from `seq` before a number of it is used. */
  reserve(seq: number): void;
  measuredNowMs(): number;
  /** The next sync copies every message, not only those above the card's highest number. */
  copyAllAtNextSync(): void;
}

/**
 * Puts salvaged messages back under their own sequence numbers (`power-meter outbox salvage`):
 * the next number becomes larger than all of them. A number already stored is skipped.
 */
export function restoreMessages(o: BacklogAccess, messages: ReadonlyArray<{ seq: number; body: string; createdAtMs: number }>): number {
  return o.transaction((sql) => {
    const s = o.statements().named;
    let restored = 0;
    // Numbers below this were counted as skipped when this database was opened behind the floor.
    const nextBefore = s.counter.get('next_seq')!.value;
    let refilled = 0;
    const measured = Math.round(o.measuredNowMs());
    for (const m of messages) {
      if (!Number.isSafeInteger(m.seq) || m.seq < 1) continue;
      const inserted = sql.run(
        'INSERT OR IGNORE INTO messages (seq, body, created_ms, created_measured_ms) VALUES (?, ?, ?, ?)',
        m.seq,
        m.body,
        Math.round(m.createdAtMs),
        measured,
      ).changes;
      restored += inserted;
      if (inserted > 0 && m.seq < nextBefore) refilled++;
      if (m.seq >= s.counter.get('next_seq')!.value) {
        o.reserve(m.seq + 1);
        s.set.run(m.seq + 1, 'next_seq');
      }
    }
    // A salvaged message is stored in this database again: its number is no longer a hole.
    s.bump.run(restored, 'appended');
    s.set.run(Math.max(0, s.counter.get('skipped')!.value - refilled), 'skipped');
    s.set.run(s.count.get()!.n, 'waiting');
    o.copyAllAtNextSync();
    return restored;
  });
}

/** One group of `groupWaiting`: the values and types its bodies share, how many, and the range of numbers. */
export interface WaitingGroup {
  values: unknown[];
  types: Array<string | null>;
  count: number;
  firstSeq: number;
  lastSeq: number;
}

/**
 * The waiting messages grouped by what their JSON bodies say (SQLite's JSON functions, one
 * scan): `extract` paths by value, `type` paths by JSON type (null: absent). A body that is not
 * JSON groups with nulls. Oldest group first. For start-up checks of a backlog (which project,
 * which node it was signed for) without reading every body into the process.
 */
export function groupWaiting(o: BacklogAccess, paths: { extract?: readonly string[]; type?: readonly string[] } = {}): WaitingGroup[] {
  const extract = paths.extract ?? [];
  const types = paths.type ?? [];
  const cols = [
    ...extract.map((_, i) => `CASE WHEN json_valid(body) THEN json_extract(body, ?) END AS e${i}`),
    ...types.map((_, i) => `CASE WHEN json_valid(body) THEN json_type(body, ?) END AS t${i}`),
  ];
  const keys = [...extract.map((_, i) => `e${i}`), ...types.map((_, i) => `t${i}`)];
  const text = `SELECT ${[...cols, 'COUNT(*) AS n', 'MIN(seq) AS first', 'MAX(seq) AS last'].join(', ')} FROM messages${keys.length > 0 ? ` GROUP BY ${keys.join(', ')}` : ''} ORDER BY first`;
  const rows = o
    .statements()
    .prepared(text)
    .all(...extract, ...types) as Array<Record<string, unknown>>;
  return rows
    .filter((r) => (r.n as number) > 0)
    .map((r) => ({
      values: extract.map((_, i) => r[`e${i}`] ?? null),
      types: types.map((_, i) => (r[`t${i}`] as string | null) ?? null),
      count: r.n as number,
      firstSeq: r.first as number,
      lastSeq: r.last as number,
    }));
}

/**
 * Removes waiting messages on the user's word (`power-meter outbox discard`), counted apart from
 * the bounds' drops (counter `discarded`). All of them, or those up to `throughSeq`. Returns how many.
 */
export function discardWaiting(o: BacklogAccess, throughSeq: number): number {
  return o.transaction((sql) => {
    const n = sql.run('DELETE FROM messages WHERE seq <= ?', throughSeq).changes;
    sql.run("INSERT OR IGNORE INTO counters VALUES ('discarded', 0)");
    sql.run("UPDATE counters SET value = value + ? WHERE name = 'discarded'", n);
    o.statements().named.bump.run(-n, 'waiting');
    return n;
  });
}

/** Messages removed by `discard` since the database was created. */
export function discardedTotal(o: BacklogAccess): number {
  return o.transaction((sql) => sql.get<{ value: number }>("SELECT value FROM counters WHERE name = 'discarded'")?.value ?? 0);
}

/**
 * Replaces a waiting message by one built for a new sequence number (`build(newSeq)`), keeping
 * its creation time and place in the order relative to the others replaced after it: the old
 * one is removed and the new one appended, in one transaction (a body that carries its number,
 * a W3bstream 2 task's nonce, is signed again for the new one). Returns the new number, or null
 * when `seq` was not waiting.
 */
export function replaceMessage(o: BacklogAccess, seq: number, build: (newSeq: number) => string): number | null {
  return o.transaction((sql) => {
    const s = o.statements().named;
    const row = sql.get<{ created_ms: number; created_measured_ms: number }>(
      'SELECT created_ms, created_measured_ms FROM messages WHERE seq = ?',
      seq,
    );
    if (row === undefined) return null;
    const next = s.counter.get('next_seq')!.value;
    o.reserve(next);
    s.bump.run(1, 'next_seq');
    sql.run('DELETE FROM messages WHERE seq = ?', seq);
    s.insert.run(next, build(next), row.created_ms, row.created_measured_ms);
    // A new signature under a new number: stored, so not a hole (the old number stays its old body's).
    s.bump.run(1, 'appended');
    return next;
  });
}
