import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppletHost, appletWasmFile, ensureArtifacts, type ProjectConfig } from '../src/index.js';
import { publish, TOKEN, wasmLogs } from './helpers.js';

// The project database through a real applet (sql-probe, built with the SDK), on PGlite: what an
// applet sends reaches Postgres as the node sends it, and the answers are the node's bytes.
let host: AppletHost;

function sqlProject(): ProjectConfig {
  const handlers = ['sql_query_raw', 'sql_exec_raw', 'sql_sdk_types'];
  return {
    name: 'sql_probe',
    publisherToken: TOKEN,
    applets: [
      { appletName: 'sql-probe', wasmFile: appletWasmFile('sql-probe'), strategies: handlers.map((h) => ({ eventType: h, handler: h })) },
    ],
    database: {
      schemas: [
        {
          schema: 'public',
          tables: [
            {
              name: 'devices',
              cols: [
                { name: 'id', constrains: { datatype: 'INT64', autoincrement: true } },
                { name: 'device_id', constrains: { datatype: 'TEXT' } },
                { name: 'is_active', constrains: { datatype: 'TEXT' } },
              ],
              keys: [{ name: 'primary', isUnique: true, columnNames: ['id'] }],
            },
          ],
        },
      ],
    },
  };
}

const q = (statement: string, params: object[] = []) => JSON.stringify({ statement, params });

/** Runs one raw query; returns the handler's log line `code:N rows:…`. */
async function query(statement: string, params: object[] = []): Promise<string> {
  const before = wasmLogs(host, 'sql_query_raw').length;
  const a = await publish(host, 'sql_query_raw', q(statement, params));
  expect(a.body.results?.[0]).toMatchObject({ code: 0 });
  return wasmLogs(host, 'sql_query_raw')[before]!;
}
async function exec(statement: string, params: object[] = []): Promise<string> {
  const before = wasmLogs(host, 'sql_exec_raw').length;
  await publish(host, 'sql_exec_raw', q(statement, params));
  return wasmLogs(host, 'sql_exec_raw')[before]!;
}
const hostErrors = (): string[] => host.logs.filter((l) => l.src === 'host').map((l) => l.message);

beforeAll(async () => {
  ensureArtifacts();
  host = await AppletHost.start(sqlProject());
  // Types the node's schema config cannot declare: an applet may create such tables itself.
  expect(
    await exec(
      'CREATE TABLE kinds (id bigserial PRIMARY KEY, label text, flag boolean, flag_text text, ratio32 real, ratio64 double precision, at timestamptz, at_local timestamp, raw bytea, n32 integer, n64 bigint)',
    ),
  ).toBe('code:0');
}, 300_000);
afterAll(async () => host?.close());

describe('the node’s placeholders', () => {
  it('VALUES (?,?) works: every ? becomes $1, $2 (the smart-grid applet’s insert), and a bool in a TEXT column is stored as true', async () => {
    expect(await exec('INSERT INTO "devices" (device_id, is_active) VALUES (?,?);', [{ string: 'ab12' }, { bool: true }])).toBe('code:0');
    expect(await query("SELECT is_active FROM devices WHERE device_id = 'ab12'")).toBe('code:0 rows:{"is_active":"true"}');
  });

  it('? and $N mixed: the ? are numbered from 1 as if no $N were there', async () => {
    expect(await query('SELECT $1::text AS a, ?::text AS b', [{ string: 'x' }])).toBe('code:0 rows:{"a":"x","b":"x"}');
  });

  it('a ? inside a string literal is rewritten too (no parameters: the simple protocol runs it as it is then)', async () => {
    expect(await query("SELECT 'why?' AS q")).toBe('code:0 rows:{"q":"why$1"}');
  });

  it('too few parameters fail the call with lib/pq’s message', async () => {
    expect(await exec('INSERT INTO devices (device_id, is_active) VALUES (?,?)', [{ string: 'x' }])).toBe('code:-1');
    expect(hostErrors()).toContain('pq: got 1 parameters but the statement requires 2');
  });
});

describe('parameter types and answers', () => {
  it('every SDK type with ? placeholders, read back with $1: the node’s JSON for each column type', async () => {
    const a = await publish(host, 'sql_sdk_types', 'L1');
    expect(a.body.results?.[0]).toMatchObject({ code: 0 });
    const logs = wasmLogs(host, 'sql_sdk_types');
    // The SDK logs the query JSON it sends; its Bytes encoder is not plain base64, so compare with what it sent.
    const sent = JSON.parse(logs[0]!) as { params: Record<string, unknown>[] };
    expect(sent.params.map((p) => Object.keys(p)[0])).toEqual([
      'string',
      'bool',
      'bool',
      'float32',
      'float64',
      'time',
      'bytes',
      'int32',
      'int64',
    ]);
    const raw = Buffer.from(String(sent.params[6]!.bytes), 'base64');
    const rows = logs.find((l) => l.startsWith('rows:'))!;
    expect(JSON.parse(rows.slice(5))).toEqual({
      at: '2025-01-02T01:04:05.5Z',
      flag: true,
      flag_text: 'false',
      label: 'L1',
      n32: -7,
      n64: expect.any(Number), // exact in the text: checked below
      ratio32: 0.1,
      ratio64: 2.5,
      raw: raw.toString('utf8'),
    });
    expect(rows).toContain('"n64":9007199254740993');
  });

  it('time: RFC 3339 in, the offset kept for timestamptz and dropped by a timestamp column (Postgres), answered as Go prints it', async () => {
    expect(
      await exec('INSERT INTO kinds (label, at, at_local) VALUES ($1, $2, $3)', [
        { string: 'T' },
        { time: '2025-06-30T23:59:59.123456789-04:00' },
        { time: '2025-06-30T23:59:59.123456789-04:00' },
      ]),
    ).toBe('code:0');
    expect(await query("SELECT at, at_local FROM kinds WHERE label = 'T'")).toBe(
      'code:0 rows:{"at":"2025-07-01T03:59:59.123457Z","at_local":{"Time":"2025-06-30T23:59:59.123457Z","Valid":true}}',
    );
  });

  it('bytes: into bytea as \\x hex, answered as a string of the raw bytes (invalid UTF-8 as \\ufffd); into text as they are', async () => {
    expect(await exec('INSERT INTO kinds (label, raw) VALUES ($1, $2)', [{ string: 'B' }, { bytes: 'AQL/' }])).toBe('code:0');
    expect(await query("SELECT raw FROM kinds WHERE label = 'B'")).toBe('code:0 rows:{"raw":"\\u0001\\u0002\\ufffd"}');
    expect(await query('SELECT $1::text AS t', [{ bytes: Buffer.from('<w3b>').toString('base64') }])).toBe(
      'code:0 rows:{"t":"\\u003cw3b\\u003e"}',
    );
  });

  it('floats in strconv’s fixed form where text receives them; int32 wraps; several rows are an array; none is empty', async () => {
    expect(
      await query('SELECT $1::text AS f, $2::text AS g, $3::int AS i', [{ float64: 1e-7 }, { float32: 0.1 }, { int32: 4294967297 }]),
    ).toBe('code:0 rows:{"f":"0.0000001","g":"0.10000000149011612","i":1}');
    expect(await query('SELECT n FROM generate_series(1, 3) AS n ORDER BY n')).toBe('code:0 rows:[{"n":1},{"n":2},{"n":3}]');
    expect(await query("SELECT label FROM kinds WHERE label = 'nobody'")).toBe('code:0 rows:');
  });

  it('an error while rows are read is swallowed (JsonifyRows never checks rows.Err): code 0, the rows before it; one at bind time fails', async () => {
    expect(await query('SELECT 1 / (n - $1::int) AS x FROM generate_series(1, 3) AS n', [{ int32: 2 }])).toBe('code:0 rows:{"x":-1}');
    expect(await query('SELECT 1 / $1::int AS x', [{ int32: 0 }])).toBe('code:-1 rows:');
    expect(hostErrors()).toContain('pq: division by zero');
  });

  it('a value Go cannot marshal fails the call (NaN); a statement Postgres refuses too, with its message', async () => {
    expect(await query("SELECT 'NaN'::float8 AS x")).toBe('code:-1 rows:');
    expect(hostErrors()).toContain('json: unsupported value: NaN');
    expect(await exec('INSERT INTO nowhere (x) VALUES ($1)', [{ int32: 1 }])).toBe('code:-1');
    expect(hostErrors()).toContain('pq: relation "nowhere" does not exist');
  });

  it('several statements without parameters run (the simple protocol); a transaction left open is rolled back, as the node’s pool would lose it', async () => {
    expect(await exec("INSERT INTO kinds (label) VALUES ('M1'); INSERT INTO kinds (label) VALUES ('M2')")).toBe('code:0');
    expect(await query("SELECT count(*) AS n FROM kinds WHERE label LIKE 'M%'")).toBe('code:0 rows:{"n":2}');
    expect(await exec("BEGIN; INSERT INTO kinds (label) VALUES ('open')")).toBe('code:0');
    expect(hostErrors()).toContain('the applet left a transaction open: rolled back (on the node a transaction cannot span two SQL calls)');
    expect(await query("SELECT label FROM kinds WHERE label = 'open'")).toBe('code:0 rows:');
  });
});
