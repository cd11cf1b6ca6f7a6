/**
 * The node's answer to ws_get_sql_db, made pure: `sql_util.JsonifyRows`
 * (pkg/types/wasm/sql_util/sql.go) over the rows lib/pq 1.10.6 decoded. Each column is scanned by
 * the type name lib/pq reports (`oid.TypeName`):
 *
 * - VARCHAR, TEXT, CHAR, and every type it does not list (NUMERIC, BYTEA, JSON, UUID,
 *   TIMESTAMPTZ, TIMETZ, …) as a string: the text Postgres sent; BYTEA the decoded bytes (invalid
 *   UTF-8 becomes \ufffd); TIMESTAMPTZ and TIMETZ Go's RFC 3339 form of lib/pq's time;
 * - BOOL as true/false; INT2/INT4/INT8 as integers; FLOAT4/FLOAT8 as Go floats (NaN, Inf fail);
 * - TIMESTAMP, TIME, DATE into sql.NullTime, which JsonifyRows does not unwrap: the value is the
 *   struct `{"Time":"…","Valid":true}` (`{"Time":"0001-01-01T00:00:00Z","Valid":false}` for NULL).
 *
 * One row is an object, several an array, none an empty answer; keys sorted (a Go map).
 */
import { GoJsonError, goJsonFloat, goJsonString, goJsonText, goMapOrder } from './gojson.js';

export interface ResultField {
  name: string;
  dataTypeID: number;
}

export const OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  timetz: 1266,
} as const;

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** The bytes lib/pq's parseBytea decodes from Postgres' hex output (`\x0102ff`). */
function byteaBytes(text: string): Uint8Array {
  if (text.startsWith('\\x')) return new Uint8Array(Buffer.from(text.slice(2), 'hex'));
  // The legacy escape format (bytea_output = escape): \\ and \ooo.
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '\\') {
      out.push(0x5c);
      i++;
    } else if (text[i] === '\\') {
      out.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else out.push(text.charCodeAt(i));
  }
  return Uint8Array.from(out);
}

interface TimeParts {
  year: number;
  date: string;
  clock: string;
  fraction: string;
  offset: string | null;
}

/** Postgres' ISO output (`2025-01-02 03:04:05.5+02`, `… BC`) as the parts Go prints back. */
function parseIsoTimestamp(text: string): TimeParts {
  const m = /^(\d{4,})-(\d{2})-(\d{2})(?: (\d{2}:\d{2}:\d{2})(?:\.(\d+))?)?([+-]\d{2}(?::\d{2}(?::\d{2})?)?)?( BC)?$/.exec(text);
  if (!m) throw new GoJsonError(`sql: Scan error: unsupported Scan of ${JSON.stringify(text)} into time.Time`);
  let year = Number(m[1]);
  if (m[7]) year = 1 - year; // 1 BC is Go's year 0
  return { year, date: `${m[2]}-${m[3]}`, clock: m[4] ?? '00:00:00', fraction: (m[5] ?? '').replace(/0+$/, ''), offset: m[6] ?? null };
}

/** Go's time.Format(RFC3339Nano); MarshalJSON refuses years outside 0..9999. */
function rfc3339Nano(p: TimeParts, forJson: boolean): string {
  if (forJson && (p.year < 0 || p.year > 9999)) throw new GoJsonError('Time.MarshalJSON: year outside of range [0,9999]');
  const year = p.year < 0 ? `-${String(-p.year).padStart(4, '0')}` : String(p.year).padStart(4, '0');
  let zone = 'Z';
  if (p.offset) {
    const [h = '+00', mm = '00'] = p.offset.split(':');
    if (!(Number(h) === 0 && Number(mm) === 0)) zone = `${h}:${mm}`;
  }
  return `${year}-${p.date}T${p.clock}${p.fraction ? `.${p.fraction}` : ''}${zone}`;
}

/** lib/pq's T_time / T_timetz decoding: time.Parse("15:04:05[-07]") on 0000-01-01, 24:00 as the next day. */
function parseClock(text: string): TimeParts {
  const m = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([+-]\d{2}(?::\d{2})?)?$/.exec(text);
  if (!m) throw new GoJsonError(`decode: cannot parse ${JSON.stringify(text)}`);
  const next = m[1] === '24';
  return {
    year: 0,
    date: next ? '01-02' : '01-01',
    clock: next ? '00:00:00' : `${m[1]}:${m[2]}:${m[3]}`,
    fraction: (m[4] ?? '').replace(/0+$/, ''),
    offset: m[5] ?? null,
  };
}

function nullTime(value: string | null, parse: (t: string) => TimeParts): string {
  if (value === null) return '{"Time":"0001-01-01T00:00:00Z","Valid":false}';
  if (value === 'infinity' || value === '-infinity')
    throw new GoJsonError('sql: Scan error: unsupported Scan, storing driver.Value type []uint8 into type *time.Time');
  return `{"Time":"${rfc3339Nano(parse(value), true)}","Valid":true}`;
}

/** One column value as JsonifyRows encodes it. */
export function encodeColumn(oid: number, value: string | null): string {
  switch (oid) {
    case OID.date:
    case OID.timestamp:
      return nullTime(value, parseIsoTimestamp);
    case OID.time:
      return nullTime(value, parseClock);
  }
  if (value === null) return 'null';
  switch (oid) {
    case OID.bool:
      return value[0] === 't' ? 'true' : 'false';
    case OID.int2:
    case OID.int4:
    case OID.int8:
      return value;
    case OID.float4:
    case OID.float8:
      return goJsonFloat(
        Number(value === 'Infinity' ? Number.POSITIVE_INFINITY : value === '-Infinity' ? Number.NEGATIVE_INFINITY : value),
      );
    case OID.bytea:
      return goJsonString(byteaBytes(value));
    case OID.timestamptz:
      if (value === 'infinity' || value === '-infinity') return goJsonString(utf8(value));
      return goJsonString(utf8(rfc3339Nano(parseIsoTimestamp(value), false)));
    case OID.timetz:
      return goJsonString(utf8(rfc3339Nano(parseClock(value), false)));
    default:
      return goJsonText(value);
  }
}

/** JsonifyRows: none = empty, one = an object, several = an array. Throws GoJsonError where Go fails. */
export function jsonifyRows(fields: ResultField[], rows: (string | null)[][]): Uint8Array {
  if (rows.length === 0) return new Uint8Array(0);
  // The key order is the same for every row: worked out once.
  const order = goMapOrder(fields.map((f) => f.name));
  const objects = rows.map(
    (row) => `{${order.map((o) => `${o.json}:${encodeColumn(fields[o.index]!.dataTypeID, row[o.index] ?? null)}`).join(',')}}`,
  );
  return utf8(objects.length === 1 ? objects[0]! : `[${objects.join(',')}]`);
}
