/**
 * The project database's applet path on PGlite (Postgres compiled to WebAssembly), speaking the
 * Postgres wire protocol the way lib/pq 1.10.6 does for the node (conn.go):
 *
 * - no parameters: the simple protocol (`Q`), several statements allowed; a query's answer is
 *   the first result set that has rows (lib/pq's simpleQuery returns at the first DataRow);
 * - parameters: an unnamed statement (`Parse`, `Describe`, `Sync`) so Postgres infers each
 *   parameter's type, then `Bind` (all text) / `Execute` / `Sync`; a count mismatch is lib/pq's
 *   `got N parameters but the statement requires M`;
 * - before each call `SET SEARCH_PATH TO public` (the node's `WithDefaultSchema`);
 * - an error while rows are read (after BindComplete) ends the rows without failing the call:
 *   JsonifyRows never looks at rows.Err(), so the applet gets the rows before it.
 *
 * Pure over an `exec` function (a wire-protocol round trip), so it runs where PGlite runs.
 */
import { encodeParam, parseQuery, replaceValueHolder, SqlQueryError } from './query.js';
import { jsonifyRows, type ResultField } from './rows.js';
import { GoJsonError } from './gojson.js';

/** Backend messages as PGlite's protocol parser returns them (the fields this file reads). */
export interface BackendMessage {
  name: string;
  message?: string;
  dataTypeIDs?: number[];
  fields?: unknown[];
  status?: string;
}

export interface WireSerializer {
  query(text: string): Uint8Array;
  parse(opts: { text: string }): Uint8Array;
  describe(opts: { type: 'S' | 'P' }): Uint8Array;
  execute(opts: object): Uint8Array;
  sync(): Uint8Array;
}

export type WireExec = (message: Uint8Array) => Promise<BackendMessage[]>;

export interface AppletSqlResult {
  ok: boolean;
  /** The answer copied into the applet (queries only). */
  data?: Uint8Array;
  /** Why the call failed, as the node logs it (`pq: …`, `query is invalid`, …). */
  error?: string;
  /** Host log lines (e.g. an open transaction rolled back). */
  notes: string[];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A Bind message with every parameter and every result column in text format. */
export function bindMessage(values: Uint8Array[]): Uint8Array {
  const len = 4 + 1 + 1 + 2 + 2 + values.reduce((n, v) => n + 4 + v.length, 0) + 2;
  const buf = Buffer.alloc(1 + len);
  let at = buf.write('B', 0, 'latin1');
  at = buf.writeInt32BE(len, at);
  at = buf.writeUInt8(0, at); // unnamed portal
  at = buf.writeUInt8(0, at); // unnamed statement
  at = buf.writeInt16BE(0, at); // parameter formats: all text
  at = buf.writeInt16BE(values.length, at);
  for (const v of values) {
    at = buf.writeInt32BE(v.length, at);
    buf.set(v, at);
    at += v.length;
  }
  buf.writeInt16BE(0, at); // result formats: all text
  return new Uint8Array(buf);
}

const pqError = (m: BackendMessage): string => `pq: ${m.message ?? 'unknown error'}`;

export class AppletSql {
  /** The transaction status of the last ReadyForQuery: I idle, T in a transaction, E failed one. */
  private lastStatus = 'I';

  constructor(
    private readonly rawExec: WireExec,
    private readonly wire: WireSerializer,
    /** The schemas the project declared: the node's WithDefaultSchema needs `public` among them. */
    private readonly schemas: string[],
    private readonly databaseName: string,
  ) {}

  private async exec(message: Uint8Array): Promise<BackendMessage[]> {
    const messages = await this.rawExec(message);
    const ready = [...messages].reverse().find((m) => m.name === 'readyForQuery');
    if (ready?.status) this.lastStatus = ready.status;
    return messages;
  }

  async run(queryJson: Uint8Array, mode: 'query' | 'exec'): Promise<AppletSqlResult> {
    const notes: string[] = [];
    let parsed: ReturnType<typeof parseQuery>;
    try {
      parsed = parseQuery(Buffer.from(queryJson).toString('utf8'));
    } catch (err) {
      return { ok: false, error: (err as Error).message, notes };
    }
    if (!this.schemas.includes('public')) return { ok: false, error: `schema public not found in database ${this.databaseName}`, notes };
    const statement = replaceValueHolder(parsed.statement);
    let result: AppletSqlResult;
    try {
      result = parsed.params.length === 0 ? await this.simple(statement, mode, notes) : await this.extended(statement, parsed, mode, notes);
    } catch (err) {
      if (!(err instanceof SqlQueryError || err instanceof GoJsonError)) throw err;
      result = { ok: false, error: err.message, notes };
    }
    await this.closeTransaction(notes);
    return result;
  }

  private async simple(statement: string, mode: 'query' | 'exec', notes: string[]): Promise<AppletSqlResult> {
    const messages = await this.exec(concat([this.wire.query('SET SEARCH_PATH TO public'), this.wire.query(statement)]));
    // Skip the SET's own answer (up to its ReadyForQuery).
    const own = messages.slice(messages.findIndex((m) => m.name === 'readyForQuery') + 1);
    if (mode === 'exec') {
      const error = own.find((m) => m.name === 'error');
      return error ? { ok: false, error: pqError(error), notes } : { ok: true, notes };
    }
    // lib/pq simpleQuery: the last RowDescription before the first DataRow names the rows; an
    // error before any row fails the call; rows then run to their CommandComplete.
    let fields: ResultField[] | null = null;
    let error: BackendMessage | null = null;
    for (let i = 0; i < own.length; i++) {
      const m = own[i]!;
      if (m.name === 'rowDescription') {
        fields = m.fields as ResultField[];
        error = null;
      } else if (m.name === 'error') {
        fields = null;
        error = m;
      } else if (m.name === 'dataRow' && fields) {
        const rows: (string | null)[][] = [];
        for (let j = i; j < own.length && own[j]!.name === 'dataRow'; j++) rows.push(own[j]!.fields as (string | null)[]);
        return { ok: true, data: jsonifyRows(fields, rows), notes };
      }
    }
    if (error) return { ok: false, error: pqError(error), notes };
    return { ok: true, data: new Uint8Array(0), notes };
  }

  private async extended(
    statement: string,
    parsed: ReturnType<typeof parseQuery>,
    mode: 'query' | 'exec',
    notes: string[],
  ): Promise<AppletSqlResult> {
    const prepared = await this.exec(
      concat([
        this.wire.query('SET SEARCH_PATH TO public'),
        this.wire.parse({ text: statement }),
        this.wire.describe({ type: 'S' }),
        this.wire.sync(),
      ]),
    );
    const own = prepared.slice(prepared.findIndex((m) => m.name === 'readyForQuery') + 1);
    const failed = own.find((m) => m.name === 'error');
    if (failed) return { ok: false, error: pqError(failed), notes };
    const types = own.find((m) => m.name === 'parameterDescription')?.dataTypeIDs ?? [];
    const fields = (own.find((m) => m.name === 'rowDescription')?.fields as ResultField[] | undefined) ?? [];
    if (types.length !== parsed.params.length)
      return { ok: false, error: `pq: got ${parsed.params.length} parameters but the statement requires ${types.length}`, notes };
    const values = parsed.params.map((p, i) => encodeParam(p, types[i]!));
    const executed = await this.exec(concat([bindMessage(values), this.wire.execute({}), this.wire.sync()]));
    const bound = executed.findIndex((m) => m.name === 'bindComplete');
    if (bound < 0) {
      const error = executed.find((m) => m.name === 'error');
      return { ok: false, error: error ? pqError(error) : 'pq: no BindComplete', notes };
    }
    const after = executed.slice(bound + 1);
    if (mode === 'exec') {
      const error = after.find((m) => m.name === 'error');
      return error ? { ok: false, error: pqError(error), notes } : { ok: true, notes };
    }
    const rows: (string | null)[][] = [];
    for (const m of after) {
      if (m.name !== 'dataRow') break;
      rows.push(m.fields as (string | null)[]);
    }
    return { ok: true, data: fields.length > 0 ? jsonifyRows(fields, rows) : new Uint8Array(0), notes };
  }

  /**
   * Each of the node's calls takes a pooled connection and gives it back: a transaction cannot
   * span two calls there. One left open here (a lone BEGIN) is rolled back, and the log says so.
   */
  private async closeTransaction(notes: string[]): Promise<void> {
    if (this.lastStatus !== 'I') {
      await this.exec(this.wire.query('ROLLBACK'));
      notes.push('the applet left a transaction open: rolled back (on the node a transaction cannot span two SQL calls)');
    }
  }
}
