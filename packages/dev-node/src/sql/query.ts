/**
 * What the node does with an applet's SQL before Postgres sees it, made pure:
 *
 * - `sql_util.ParseQuery` (pkg/types/wasm/sql_util/sql.go): the SDK's JSON
 *   `{"statement":"…","params":[{"int32":1},{"string":"…"},…]}` read with gjson (the first of
 *   duplicate keys wins, numbers keep their text), each parameter's type being the first key
 *   present of int32, int64, float32, float64, string, bool, bytes (base64), time (RFC 3339);
 * - `replaceValueHolder` (pkg/depends/kit/sqlx/driver/postgres/driver.go): every `?` byte of the
 *   statement becomes `$1`, `$2`, … in order, inside quotes and comments too, `$N` left as it is;
 * - database/sql's default converter and lib/pq 1.10.6's `encode` (encode.go): the text each
 *   parameter is sent as (int32 and int64 in decimal, float32 widened to float64 and both in
 *   strconv 'f' form, bool as `true`/`false`, time as `2006-01-02 15:04:05.999999999Z07:00`,
 *   bytes as they are, or `\x`+hex where Postgres expects bytea).
 */
import { goFormatFloat } from './gojson.js';

export class SqlQueryError extends Error {}

/** A parameter after ParseQuery: its Go type and value. */
export type SqlParam =
  | { type: 'int32' | 'int64'; value: bigint }
  | { type: 'float32' | 'float64'; value: number }
  | { type: 'string'; value: string }
  | { type: 'bool'; value: boolean }
  | { type: 'bytes'; value: Uint8Array }
  | { type: 'time'; value: GoTime };

export interface GoTime {
  /** Fields as written (RFC 3339 keeps the writer's offset). */
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** Fraction digits as written, without trailing zeros. */
  fraction: string;
  offsetMinutes: number;
}

export interface ParsedQuery {
  statement: string;
  params: SqlParam[];
}

// A JSON value with its raw text, as gjson keeps it.
type JValue =
  | { kind: 'string'; raw: string; str: string }
  | { kind: 'number'; raw: string; num: number }
  | { kind: 'true' | 'false' | 'null'; raw: string }
  | { kind: 'object'; raw: string; entries: [string, JValue][] }
  | { kind: 'array'; raw: string; items: JValue[] };

class JsonReader {
  i = 0;
  constructor(readonly s: string) {}
  fail(): never {
    throw new SqlQueryError('query is invalid');
  }
  ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i]!)) this.i++;
  }
  value(): JValue {
    this.ws();
    const start = this.i;
    const c = this.s[this.i];
    if (c === '{') {
      this.i++;
      const entries: [string, JValue][] = [];
      this.ws();
      if (this.s[this.i] === '}') this.i++;
      else
        for (;;) {
          this.ws();
          if (this.s[this.i] !== '"') this.fail();
          const key = this.string();
          this.ws();
          if (this.s[this.i++] !== ':') this.fail();
          entries.push([key, this.value()]);
          this.ws();
          const sep = this.s[this.i++];
          if (sep === '}') break;
          if (sep !== ',') this.fail();
        }
      return { kind: 'object', raw: this.s.slice(start, this.i), entries };
    }
    if (c === '[') {
      this.i++;
      const items: JValue[] = [];
      this.ws();
      if (this.s[this.i] === ']') this.i++;
      else
        for (;;) {
          items.push(this.value());
          this.ws();
          const sep = this.s[this.i++];
          if (sep === ']') break;
          if (sep !== ',') this.fail();
        }
      return { kind: 'array', raw: this.s.slice(start, this.i), items };
    }
    if (c === '"') {
      const str = this.string();
      return { kind: 'string', raw: this.s.slice(start, this.i), str };
    }
    for (const word of ['true', 'false', 'null'] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return { kind: word, raw: word };
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.s.slice(this.i));
    if (!m) this.fail();
    this.i += m[0].length;
    return { kind: 'number', raw: m[0], num: Number(m[0]) };
  }
  string(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined || c < ' ') this.fail();
      if (c === '\\') {
        this.i += 2;
        continue;
      }
      this.i++;
      if (c === '"') break;
    }
    try {
      return JSON.parse(this.s.slice(start, this.i)) as string;
    } catch {
      return this.fail();
    }
  }
}

function parseJson(text: string): JValue {
  const r = new JsonReader(text);
  const v = r.value();
  r.ws();
  if (r.i !== text.length) r.fail();
  return v;
}

// gjson's accessors (tidwall/gjson v1.14.3, the node's version).
function get(v: JValue, key: string): JValue | undefined {
  if (v.kind !== 'object') return undefined;
  return v.entries.find(([k]) => k === key)?.[1];
}
function gString(v: JValue): string {
  switch (v.kind) {
    case 'string':
      return v.str;
    case 'number':
      return /^-?\d+$/.test(v.raw) ? v.raw : goFormatFloat(v.num);
    case 'true':
      return 'true';
    case 'false':
      return 'false';
    case 'null':
      return '';
    default:
      return v.raw;
  }
}
const INT64_MIN = -(2n ** 63n);
function parseGoInt(s: string): bigint | null {
  if (!/^-?\d+$/.test(s)) return null;
  // Go's parseInt accumulates in an int64 and wraps on overflow.
  return BigInt.asIntN(64, BigInt(s));
}
function gInt(v: JValue): bigint {
  switch (v.kind) {
    case 'true':
      return 1n;
    case 'string':
      return parseGoInt(v.str) ?? 0n;
    case 'number': {
      if (Math.abs(v.num) <= Number.MAX_SAFE_INTEGER) return BigInt(Math.trunc(v.num));
      return parseGoInt(v.raw) ?? INT64_MIN; // int64(out-of-range float) on amd64
    }
    default:
      return 0n;
  }
}
function gFloat(v: JValue): number {
  switch (v.kind) {
    case 'true':
      return 1;
    case 'string':
      return parseGoFloat(v.str);
    case 'number':
      return v.num;
    default:
      return 0;
  }
}
/** strconv.ParseFloat for the decimal forms (and inf/nan); anything else is 0, as gjson ignores the error. */
function parseGoFloat(s: string): number {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s);
  const special = s.toLowerCase().replace(/^\+/, '');
  if (special === 'inf' || special === 'infinity') return Number.POSITIVE_INFINITY;
  if (special === '-inf' || special === '-infinity') return Number.NEGATIVE_INFINITY;
  if (special === 'nan') return Number.NaN;
  return 0;
}
function gBool(v: JValue): boolean {
  switch (v.kind) {
    case 'true':
      return true;
    case 'string':
      return ['1', 't', 'true'].includes(v.str.toLowerCase());
    case 'number':
      return v.num !== 0;
    default:
      return false;
  }
}
function gArray(v: JValue): JValue[] {
  if (v.kind === 'null') return [];
  if (v.kind !== 'array') return [v];
  return v.items;
}

/** encoding/base64.StdEncoding.DecodeString: padded, \r and \n ignored, nothing else. */
function decodeStdBase64(text: string): Uint8Array {
  const s = text.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(={0,2})$/.test(s) || /=[^=]/.test(s))
    throw new SqlQueryError(`illegal base64 data at input byte ${Math.max(0, s.search(/[^A-Za-z0-9+/=]/))}`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** time.Parse(time.RFC3339, s). */
export function parseRfc3339(s: string): GoTime {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/.exec(s);
  const fail = (): never => {
    throw new SqlQueryError(`parsing time ${JSON.stringify(s)} as "2006-01-02T15:04:05Z07:00": cannot parse`);
  };
  if (!m) return fail();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month < 1 || month > 12) fail();
  if (day < 1 || day > (month === 2 && leap ? 29 : DAYS[month - 1]!)) fail();
  if (hour > 23 || minute > 59 || second > 59) fail();
  const offsetMinutes = m[8] === 'Z' ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  if (m[8] !== 'Z' && (Number(m[10]) > 23 || Number(m[11]) > 59)) fail();
  // Go keeps nanoseconds: digits past the ninth are dropped.
  const fraction = (m[7] ?? '').slice(0, 9).replace(/0+$/, '');
  return { year, month, day, hour, minute, second, fraction, offsetMinutes };
}

function decodeParam(p: JValue): SqlParam {
  // The first type key present wins, in the node's order.
  const decoders: [string, (v: JValue) => SqlParam][] = [
    ['int32', (v) => ({ type: 'int32', value: BigInt.asIntN(32, gInt(v)) })],
    ['int64', (v) => ({ type: 'int64', value: gInt(v) })],
    ['float32', (v) => ({ type: 'float32', value: Math.fround(gFloat(v)) })],
    ['float64', (v) => ({ type: 'float64', value: gFloat(v) })],
    ['string', (v) => ({ type: 'string', value: gString(v) })],
    ['bool', (v) => ({ type: 'bool', value: gBool(v) })],
    ['bytes', (v) => ({ type: 'bytes', value: decodeStdBase64(gString(v)) })],
    ['time', (v) => ({ type: 'time', value: parseRfc3339(gString(v)) })],
  ];
  for (const [key, decode] of decoders) {
    const v = get(p, key);
    if (v) return decode(v);
  }
  throw new SqlQueryError('fail to decode the param');
}

/** sql_util.ParseQuery: `query is invalid` without both keys or for bad JSON. */
export function parseQuery(text: string): ParsedQuery {
  const doc = parseJson(text);
  const statement = get(doc, 'statement');
  const params = get(doc, 'params');
  if (!statement || !params) throw new SqlQueryError('query is invalid');
  return { statement: gString(statement), params: gArray(params).map(decodeParam) };
}

/** replaceValueHolder, byte for byte: `?` is ASCII, so it is never part of a multi-byte character. */
export function replaceValueHolder(query: string): string {
  let n = 0;
  return query.replace(/\?/g, () => `$${++n}`);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** lib/pq FormatTimestamp: `2006-01-02 15:04:05.999999999Z07:00`, years <= 0 as `… BC`. */
export function formatPqTimestamp(t: GoTime): string {
  const bc = t.year <= 0;
  const year = bc ? 1 - t.year : t.year;
  const off = t.offsetMinutes;
  const zone = off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  const frac = t.fraction ? `.${t.fraction}` : '';
  return `${pad(year, 4)}-${pad(t.month)}-${pad(t.day)} ${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}${frac}${zone}${bc ? ' BC' : ''}`;
}

export const BYTEA_OID = 17;

/**
 * The bytes lib/pq sends for a parameter whose type Postgres inferred as `typeOid`: text format,
 * as `encode()` writes it after database/sql widened int32 to int64 and float32 to float64.
 */
export function encodeParam(p: SqlParam, typeOid: number): Uint8Array {
  const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
  switch (p.type) {
    case 'int32':
    case 'int64':
      return utf8(p.value.toString());
    case 'float32':
    case 'float64':
      return utf8(goFormatFloat(p.value));
    case 'bool':
      return utf8(p.value ? 'true' : 'false');
    case 'time':
      return utf8(formatPqTimestamp(p.value));
    case 'string':
      return typeOid === BYTEA_OID ? utf8(`\\x${Buffer.from(p.value, 'utf8').toString('hex')}`) : utf8(p.value);
    case 'bytes':
      return typeOid === BYTEA_OID ? utf8(`\\x${Buffer.from(p.value).toString('hex')}`) : p.value;
  }
}
