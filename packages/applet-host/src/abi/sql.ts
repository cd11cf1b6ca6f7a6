/**
 * The node's SQL interface, made pure: the query JSON the SDK sends
 * (`{"statement":"…","params":[{"int32":1},{"string":"…"},…]}`), Postgres-style `$N`
 * placeholders, and the answer's shape (one row = an object, several = an array, none = an
 * empty answer; keys in Go's map order, i.e. sorted).
 */
export class SqlQueryError extends Error {}

export type SqlParam = number | bigint | string | Buffer | null;

export interface ParsedQuery {
  statement: string;
  params: SqlParam[];
}

/**
 * Parses the SDK's query JSON like the node's `sql_util.ParseQuery`: both `statement` and
 * `params` must exist; a parameter's type is the first key present of int32, int64, float32,
 * float64, string, bool, bytes (base64), time (RFC 3339).
 */
export function parseQuery(text: string): ParsedQuery {
  // int64 values can exceed 2^53: quote them before JSON.parse turns them into doubles. A quote
  // inside a JSON string is always escaped, so `"int64":` cannot match inside one.
  const exact = text.replace(/(?<!\\)"int64"\s*:\s*(-?\d+)/g, '"int64":"$1"');
  let doc: unknown;
  try {
    doc = JSON.parse(exact);
  } catch {
    throw new SqlQueryError('query is invalid');
  }
  if (typeof doc !== 'object' || doc === null || !('statement' in doc) || !('params' in doc)) throw new SqlQueryError('query is invalid');
  const { statement, params } = doc as { statement: unknown; params: unknown };
  if (typeof statement !== 'string') throw new SqlQueryError('query is invalid');
  const list = Array.isArray(params) ? params : [];
  return { statement, params: list.map(decodeParam) };
}

function decodeParam(p: unknown): SqlParam {
  if (typeof p !== 'object' || p === null) throw new SqlQueryError('fail to decode the param');
  const v = p as Record<string, unknown>;
  if ('int32' in v) return Number(v.int32) | 0;
  if ('int64' in v) return BigInt(String(v.int64));
  if ('float32' in v) return Math.fround(Number(v.float32));
  if ('float64' in v) return Number(v.float64);
  if ('string' in v) return String(v.string);
  // SQLite has no boolean type: 1/0, as SQLite's own TRUE/FALSE.
  if ('bool' in v) return v.bool === true ? 1 : 0;
  if ('bytes' in v) return Buffer.from(String(v.bytes), 'base64');
  if ('time' in v) {
    const t = String(v.time);
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(t))
      throw new SqlQueryError(`parsing time "${t}" as RFC 3339 failed`);
    return new Date(t).toISOString();
  }
  throw new SqlQueryError('fail to decode the param');
}

/**
 * Postgres numbers its placeholders `$1`, `$2` (and may use one twice); SQLite's positional `?`
 * is bound in order of appearance. Rewrites each `$N` outside quoted strings and identifiers to
 * `?` and returns the parameters in the order the statement now needs them.
 */
export function toSqlite(statement: string, params: SqlParam[]): { statement: string; params: SqlParam[] } {
  let out = '';
  const ordered: SqlParam[] = [];
  let quote: string | null = null;
  for (let i = 0; i < statement.length; i++) {
    const c = statement[i]!;
    if (quote) {
      out += c;
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      out += c;
      continue;
    }
    const m = c === '$' ? /^\$(\d+)/.exec(statement.slice(i)) : null;
    if (m) {
      const n = Number(m[1]);
      if (n < 1 || n > params.length) throw new SqlQueryError(`there is no parameter $${n}`);
      ordered.push(params[n - 1]!);
      out += '?';
      i += m[0].length - 1;
      continue;
    }
    out += c;
  }
  return { statement: out, params: ordered };
}

export interface ColumnInfo {
  name: string;
  /** The declared type (`stmt.columns()`), null for expressions. */
  type: string | null;
}

/** Encodes query rows like the node's `JsonifyRows`, as the bytes copied into the applet. */
export function jsonifyRows(columns: ColumnInfo[], rows: unknown[][]): Uint8Array {
  if (rows.length === 0) return new Uint8Array(0);
  const objects = rows.map((row) => encodeRow(columns, row));
  const text = objects.length === 1 ? objects[0]! : `[${objects.join(',')}]`;
  return new TextEncoder().encode(text);
}

function encodeRow(columns: ColumnInfo[], row: unknown[]): string {
  const entries = columns.map((c, i) => [c.name, encodeValue(c.type, row[i])] as const);
  // Go marshals a map with its keys sorted.
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

function encodeValue(declared: string | null, value: unknown): string {
  if (value === null || value === undefined) return 'null';
  const type = (declared ?? '').toUpperCase();
  if ((type === 'BOOL' || type === 'BOOLEAN') && (typeof value === 'number' || typeof value === 'bigint'))
    return Number(value) !== 0 ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : 'null';
  if (Buffer.isBuffer(value)) return JSON.stringify(value.toString('utf8'));
  return JSON.stringify(String(value));
}
