import { describe, expect, it } from 'vitest';
import {
  ApiCallServer,
  chainHeightJson,
  cronPayload,
  databaseDdl,
  encodeApiResponse,
  encodeColumn,
  encodeParam,
  everyMs,
  goFormatFloat,
  goJsonFloat,
  goJsonString,
  goLogJson,
  goTransactionJson,
  jsonifyRows,
  OID,
  type ParsedQuery,
  parseQuery,
  ProjectConfigError,
  replaceValueHolder,
  routeEvent,
  strategiesFor,
  validateCron,
  validateProject,
} from '../src/index.js';
import { probeProject } from './helpers.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const param = (q: ParsedQuery, i: number, oid: number = OID.text) => text(encodeParam(q.params[i]!, oid));

describe('the node’s placeholder rewrite (replaceValueHolder)', () => {
  it('turns every ? into $1, $2, … in order, leaves $N alone, and also rewrites ? inside quotes and comments', () => {
    expect(replaceValueHolder('INSERT INTO t (a,b) VALUES (?,?);')).toBe('INSERT INTO t (a,b) VALUES ($1,$2);');
    expect(replaceValueHolder('SELECT $2, ? FROM t WHERE a = $1')).toBe('SELECT $2, $1 FROM t WHERE a = $1');
    expect(replaceValueHolder("SELECT 'why?' -- ok?\n, ?")).toBe("SELECT 'why$1' -- ok$2\n, $3");
    expect(replaceValueHolder('SELECT data ?| array[?]')).toBe('SELECT data $1| array[$2]');
  });
});

describe('the SDK’s query JSON as the node reads it (sql_util.ParseQuery with gjson)', () => {
  it('decodes every parameter type; int64 keeps its digits, int32 wraps, float32 is rounded to a float32', () => {
    const q = parseQuery(
      '{"statement":"X","params":[{"int32":4294967297},{"int64":9007199254740993},{"float32":0.1},{"float64":0.1},{"string":"a"},{"bool":true},{"bytes":"dzNiIQ=="},{"time":"2025-01-02T03:04:05.500+02:00"}]}',
    );
    expect(q.params.map((p) => p.type)).toEqual(['int32', 'int64', 'float32', 'float64', 'string', 'bool', 'bytes', 'time']);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => param(q, i))).toEqual([
      '1',
      '9007199254740993',
      '0.10000000149011612',
      '0.1',
      'a',
      'true',
      'w3b!',
      '2025-01-02 03:04:05.5+02:00',
    ]);
  });

  it('sends bytes and strings as \\x hex where Postgres expects bytea, times in UTC as Z, years <= 0 as BC', () => {
    const q = parseQuery(
      '{"statement":"X","params":[{"bytes":"AQL/"},{"string":"hi"},{"time":"2025-01-02T03:04:05Z"},{"time":"0000-03-01T00:00:00Z"}]}',
    );
    expect(param(q, 0, OID.bytea)).toBe('\\x0102ff');
    expect(param(q, 1, OID.bytea)).toBe('\\x6869');
    expect(param(q, 2)).toBe('2025-01-02 03:04:05Z');
    expect(param(q, 3)).toBe('0001-03-01 00:00:00Z BC');
  });

  it('uses the first of duplicate keys and the first type key present, and converts like gjson', () => {
    const q = parseQuery(
      '{"statement":"A","statement":"B","params":[{"string":5},{"bool":"T"},{"int64":"12"},{"string":{"x":[1, 2]}},{"float64":"1e3"}]}',
    );
    expect(q.statement).toBe('A');
    expect([0, 1, 2, 3, 4].map((i) => param(q, i))).toEqual(['5', 'true', '12', '{"x":[1, 2]}', '1000']);
  });

  it('refuses what the node refuses: no statement or no params, bad JSON, an unknown type, bad base64, a time that is not RFC 3339', () => {
    expect(() => parseQuery('{"statement":"X"}')).toThrow('query is invalid');
    expect(() => parseQuery('not json')).toThrow('query is invalid');
    expect(() => parseQuery('{"statement":"X","params":[{"uuid":"1"}]}')).toThrow('fail to decode the param');
    expect(() => parseQuery('{"statement":"X","params":[{"bytes":"AQL"}]}')).toThrow(/illegal base64/);
    expect(() => parseQuery('{"statement":"X","params":[{"time":"2025-02-30T00:00:00Z"}]}')).toThrow(/parsing time/);
    expect(() => parseQuery('{"statement":"X","params":[{"time":"2025-01-02 03:04:05Z"}]}')).toThrow(/parsing time/);
  });
});

describe('Go’s JSON and number formats', () => {
  it('escapes strings as Go 1.19 does: HTML characters, controls as \\u00XX, U+2028, invalid UTF-8 as \\ufffd', () => {
    expect(goJsonString(Buffer.from('<a href="x">&</a>\n\t\b\u2028é⚡'))).toBe(
      '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e\\n\\t\\u0008\\u2028é⚡"',
    );
    expect(goJsonString(Uint8Array.from([0x61, 0xff, 0xc3]))).toBe('"a\\ufffd\\ufffd"');
  });

  it('formats floats like strconv (f, shortest) and encoding/json (exponent below 1e-6 and from 1e21)', () => {
    expect([1e-7, 1.5e21, 0.1, -0, 100].map(goFormatFloat)).toEqual(['0.0000001', '1500000000000000000000', '0.1', '-0', '100']);
    expect([1e-7, 1.5e21, 0.000001, -0, 2].map(goJsonFloat)).toEqual(['1e-7', '1.5e+21', '0.000001', '-0', '2']);
    expect(() => goJsonFloat(Number.NaN)).toThrow('json: unsupported value: NaN');
  });
});

describe('ws_get_sql_db’s answer (JsonifyRows over lib/pq’s decoding)', () => {
  it('none = empty, one row = an object, several = an array, keys sorted byte-wise', () => {
    const fields = [
      { name: 'name', dataTypeID: OID.varchar },
      { name: 'Active', dataTypeID: OID.bool },
      { name: 'big', dataTypeID: OID.int8 },
    ];
    expect(jsonifyRows(fields, []).length).toBe(0);
    expect(text(jsonifyRows(fields, [['a', 't', '9007199254740993']]))).toBe('{"Active":true,"big":9007199254740993,"name":"a"}');
    expect(
      text(
        jsonifyRows(fields, [
          ['a', 'f', null],
          ['b', 't', '2'],
        ]),
      ),
    ).toBe('[{"Active":false,"big":null,"name":"a"},{"Active":true,"big":2,"name":"b"}]');
  });

  it('encodes each type as the node does: timestamp/date/time as a sql.NullTime struct, timestamptz as a string, numeric and bytea as strings', () => {
    expect(encodeColumn(OID.timestamp, '2025-01-02 03:04:05.500')).toBe('{"Time":"2025-01-02T03:04:05.5Z","Valid":true}');
    expect(encodeColumn(OID.timestamp, null)).toBe('{"Time":"0001-01-01T00:00:00Z","Valid":false}');
    expect(encodeColumn(OID.date, '2025-01-02')).toBe('{"Time":"2025-01-02T00:00:00Z","Valid":true}');
    expect(encodeColumn(OID.time, '24:00:00')).toBe('{"Time":"0000-01-02T00:00:00Z","Valid":true}');
    expect(encodeColumn(OID.timestamptz, '2025-01-02 01:04:05+00')).toBe('"2025-01-02T01:04:05Z"');
    expect(encodeColumn(OID.timestamptz, '2025-01-02 03:04:05+05:30')).toBe('"2025-01-02T03:04:05+05:30"');
    expect(encodeColumn(1700, '1.50')).toBe('"1.50"');
    expect(encodeColumn(OID.bytea, '\\x77336221ff')).toBe('"w3b!\\ufffd"');
    expect(encodeColumn(OID.float4, '0.1')).toBe('0.1');
    expect(encodeColumn(OID.float8, '-0')).toBe('-0');
    expect(() => encodeColumn(OID.float8, 'NaN')).toThrow('unsupported value');
    expect(() => encodeColumn(OID.timestamp, 'infinity')).toThrow('Scan');
  });
});

describe('the project database’s schema (the node’s connector DDL)', () => {
  it('writes TEXT as varchar(255), NOT NULL unless null, autoincrement as bigserial, defaults cast, keys as primary key and indexes', () => {
    expect(
      databaseDdl({
        schemas: [
          {
            tables: [
              {
                name: 't_demo',
                cols: [
                  { name: 'f_id', constrains: { datatype: 'INT64', autoincrement: true } },
                  { name: 'f_name', constrains: { datatype: 'TEXT', length: 40, default: 'x' } },
                  { name: 'f_note', constrains: { datatype: 'TEXT', length: 30000, null: true, default: '' } },
                  { name: 'f_amount', constrains: { datatype: 'FLOAT64', default: '0' } },
                  { name: 'f_ok', constrains: { datatype: 'BOOL' } },
                ],
                keys: [
                  { name: 'primary', isUnique: true, columnNames: ['f_id'] },
                  { name: 'name', isUnique: true, columnNames: ['f_name'] },
                ],
              },
            ],
          },
        ],
      }),
    ).toEqual([
      'CREATE SCHEMA IF NOT EXISTS public',
      "CREATE TABLE IF NOT EXISTS public.t_demo (\n\tf_id bigserial NOT NULL,\n\tf_name character varying(40) NOT NULL DEFAULT x,\n\tf_note text DEFAULT ''::text,\n\tf_amount double precision NOT NULL DEFAULT '0'::double precision,\n\tf_ok boolean NOT NULL,\n\tPRIMARY KEY (f_id)\n)",
      'CREATE UNIQUE INDEX IF NOT EXISTS t_demo_t_demo_ui_f_name ON public.t_demo (f_name)',
    ]);
  });
});

describe('the event route', () => {
  const project = { name: 'energy_meter', publisherToken: 'tok', publisherId: '1', publisherKey: 'k' };
  const now = 1_764_000_000_000;

  it('prefers ?authorization= over the header, with Bearer optional', () => {
    const r = routeEvent(
      { method: 'POST', url: '/srv-applet-mgr/v0/event/energy_meter?authorization=tok', authorization: 'Bearer wrong' },
      project,
      now,
    );
    expect(r).toMatchObject({ kind: 'dispatch', eventType: 'DEFAULT' });
    const bad = routeEvent(
      { method: 'POST', url: '/srv-applet-mgr/v0/event/energy_meter?authorization=wrong', authorization: 'Bearer tok' },
      project,
      now,
    );
    expect(bad).toMatchObject({ kind: 'answer', status: 401 });
  });

  it('checks the token before the project name', () => {
    expect(routeEvent({ method: 'POST', url: '/srv-applet-mgr/v0/event/other', authorization: 'Bearer nope' }, project, now)).toMatchObject(
      { status: 401 },
    );
    expect(routeEvent({ method: 'POST', url: '/srv-applet-mgr/v0/event/other', authorization: 'Bearer tok' }, project, now)).toMatchObject({
      status: 201,
      body: { error: 'InvalidEventChannel', results: null },
    });
  });

  it('keeps a publisher timestamp within 1e6 ms of its clock, replaces one further off, lower-cases eventID', () => {
    const near = routeEvent(
      { method: 'POST', url: `/srv-applet-mgr/v0/event/energy_meter?timestamp=${now - 999_000}&eventID=AbC`, authorization: 'Bearer tok' },
      project,
      now,
    );
    expect(near).toMatchObject({ timestampMs: now - 999_000, eventId: 'abc' });
    const far = routeEvent(
      { method: 'POST', url: `/srv-applet-mgr/v0/event/energy_meter?timestamp=${now - 1_001_000}`, authorization: 'Bearer tok' },
      project,
      now,
    );
    expect(far).toMatchObject({ timestampMs: now });
    expect((far as { eventId: string }).eventId).toMatch(/^[0-9a-f-]{36}_w3b$/);
  });

  it('answers 404 for another route or method', () => {
    expect(
      routeEvent({ method: 'GET', url: '/srv-applet-mgr/v0/event/energy_meter', authorization: 'Bearer tok' }, project, now),
    ).toMatchObject({ status: 404 });
    expect(routeEvent({ method: 'POST', url: '/other', authorization: 'Bearer tok' }, project, now)).toMatchObject({ status: 404 });
  });
});

describe('monitor and cron payloads (go-ethereum v1.12 and encoding/json)', () => {
  it('a log as go-ethereum marshals it: its field order, lower-case hex, quantities without leading zeros', () => {
    const json = goLogJson({
      blockHash: '0xBB',
      address: '0xABCDEF0000000000000000000000000000000001',
      logIndex: '0x00',
      data: '0x',
      removed: false,
      topics: ['0xAA'],
      blockNumber: '0x5',
      transactionIndex: '0x0',
      transactionHash: '0xCC',
    });
    expect(json).toBe(
      '{"address":"0xabcdef0000000000000000000000000000000001","topics":["0xaa"],"data":"0x","blockNumber":"0x5","transactionHash":"0xcc","transactionIndex":"0x0","blockHash":"0xbb","logIndex":"0x0","removed":false}',
    );
  });

  it('a transaction by its type: dynamic-fee with chainId and null gasPrice; legacy without chainId or accessList', () => {
    const base = {
      nonce: '0x1',
      to: '0xAB00000000000000000000000000000000000001',
      gas: '0x5208',
      value: '0x0',
      input: '0x',
      v: '0x1',
      r: '0x0a',
      s: '0x0b',
      hash: '0xFF',
    };
    expect(
      goTransactionJson({
        ...base,
        type: '0x2',
        chainId: '0x7a69',
        maxFeePerGas: '0x10',
        maxPriorityFeePerGas: '0x1',
        gasPrice: '0x10',
        accessList: [],
      }),
    ).toBe(
      '{"type":"0x2","chainId":"0x7a69","nonce":"0x1","to":"0xab00000000000000000000000000000000000001","gas":"0x5208","gasPrice":null,"maxPriorityFeePerGas":"0x1","maxFeePerGas":"0x10","value":"0x0","input":"0x","accessList":[],"v":"0x1","r":"0xa","s":"0xb","hash":"0xff"}',
    );
    expect(goTransactionJson({ ...base, type: '0x0', chainId: '0x7a69', gasPrice: '0x10', to: null })).toBe(
      '{"type":"0x0","nonce":"0x1","to":null,"gas":"0x5208","gasPrice":"0x10","maxPriorityFeePerGas":null,"maxFeePerGas":null,"value":"0x0","input":"0x","v":"0x1","r":"0xa","s":"0xb","hash":"0xff"}',
    );
    expect(() => goTransactionJson({ ...base, type: '0x4' })).toThrow('transaction type not supported');
  });

  it('chain height and cron: {"HeaderNumber":N}; {"ID":"…","Timestamp":"…"} with nanoseconds, trailing zeros dropped', () => {
    expect(chainHeightJson(12n)).toBe('{"HeaderNumber":12}');
    expect(cronPayload('42', 1_764_000_000_123_450_000n)).toBe('{"ID":"42","Timestamp":"2025-11-24T16:00:00.12345Z"}');
    expect(cronPayload('42', 1_764_000_000_000_000_000n)).toBe('{"ID":"42","Timestamp":"2025-11-24T16:00:00Z"}');
  });

  it('cron expressions as robfig/cron’s ParseStandard: five fields, descriptors, @every in whole seconds (at least 1 s)', () => {
    expect(validateCron('*/5 * * * *')).toBeNull();
    expect(validateCron('@hourly')).toBeNull();
    expect(validateCron('* * * * * *')).toMatch(/expected exactly 5 fields/);
    expect(validateCron('61 * * * *')).not.toBeNull();
    expect(everyMs('@every 1m30s')).toBe(90_000);
    expect(everyMs('@every 1500ms')).toBe(1000);
    expect(everyMs('@every 10ms')).toBe(1000);
  });
});

describe('ws_api_call (the node’s wasmapi router)', () => {
  const delivered: { eventType: string; payload: string }[] = [];
  const server = new ApiCallServer(
    {
      hasChain: (n) => n === 'local',
      readTx: async () => ({ hash: '0x1' }),
      sendTx: async () => '0x2',
      txSucceeded: async () => true,
      deliver: (eventType, payload) => delivered.push({ eventType, payload: text(payload) }),
      log: () => undefined,
    },
    1,
  );
  const req = (o: object) => Buffer.from(JSON.stringify(o));

  it('answers /system/hello at once and later as an event of the request’s Eventtype; Go’s HttpResponse JSON', async () => {
    const r = server.call(
      req({ Method: 'GET', Url: 'w3bstream://w3bstream.com/system/hello', Header: { Eventtype: ['result'], Name: ['meter'] } }),
    );
    expect(text(encodeApiResponse(r))).toBe(
      `{"Status":"200 OK","StatusCode":200,"Proto":"HTTP/1.1","Header":{"Content-Type":["application/json; charset=utf-8"],"Eventtype":["result"],"Name":["meter"]},"Body":"${Buffer.from('"{\\"message\\": \\"hello meter\\"}"').toString('base64')}"}`,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.eventType).toBe('result');
    const body = JSON.parse(delivered[0]!.payload) as { Body: string };
    expect(Buffer.from(body.Body, 'base64').toString()).toBe('"{\\"async message\\": \\"hello meter\\"}"');
  });

  it('answers 400 with an empty response for JSON it cannot read, 404 for other routes, an empty 200 without Eventtype', () => {
    expect(text(encodeApiResponse(server.call(Buffer.from('{"Body":"%%%"}'))))).toBe(
      '{"Status":"","StatusCode":400,"Proto":"","Header":null,"Body":null}',
    );
    expect(server.call(req({ Method: 'POST', Url: '/system/gen_zk_proof', Header: { Eventtype: ['x'] } }))).toMatchObject({
      StatusCode: 404,
    });
    expect(server.call(req({ Method: 'GET', Url: '/system/hello', Header: { eventType: ['x'] } }))).toMatchObject({
      StatusCode: 200,
      Body: new Uint8Array(0),
    });
  });

  it('send_tx answers a transaction id, and the state arrives later as an event', async () => {
    delivered.length = 0;
    const body = Buffer.from(JSON.stringify({ chainName: 'local', to: '0x1', value: '0', data: '0x00' })).toString('base64');
    const r = server.call(req({ Method: 'POST', Url: '/system/send_tx', Header: { Eventtype: ['tx'] }, Body: body }));
    const id = (JSON.parse(Buffer.from(r.Body!).toString()) as { transactionID: string }).transactionID;
    expect(id).toMatch(/^\d+$/);
    await new Promise((r) => setTimeout(r, 50));
    const state = JSON.parse(Buffer.from((JSON.parse(delivered[0]!.payload) as { Body: string }).Body, 'base64').toString()) as object;
    expect(state).toEqual({ transactionID: id, state: 'CONFIRMED' });
  });
});

describe('projects', () => {
  it('routes an eventType to its own strategies only, across applets (the node does not fall back to DEFAULT)', () => {
    const p = probeProject();
    p.applets = [
      {
        appletName: 'one',
        wasmFile: 'x',
        strategies: [
          { eventType: 'DEFAULT', handler: 'probe_log' },
          { eventType: 'A', handler: 'probe_return' },
        ],
      },
      { appletName: 'two', wasmFile: 'y', strategies: [{ eventType: 'A', handler: 'other' }] },
    ];
    expect(strategiesFor(p, 'A').map((s) => [s.applet.appletName, s.instanceId, s.handler])).toEqual([
      ['one', '1', 'probe_return'],
      ['two', '2', 'other'],
    ]);
    expect(strategiesFor(p, 'B')).toEqual([]);
  });

  it('refuses a bad project with the field, the value and what is allowed', () => {
    const bad = (extra: object) => () => validateProject({ ...probeProject(), ...extra });
    expect(bad({ name: 'Energy-Meter' })).toThrow(ProjectConfigError);
    expect(bad({ database: { schemas: [{ tables: [{ name: 't', cols: [{ name: 'x', constrains: { datatype: 'JSONB' } }] }] }] } })).toThrow(
      /project database column t\.x\.constrains\.datatype: "JSONB" is not allowed \(INT, /,
    );
    expect(bad({ chains: [{ chainID: 1, endpoint: 'http://x' }], contractLogs: [{ chainID: 1, contractAddress: '0x1' }] })).toThrow(
      /contractAddress: "0x1" is not allowed \(0x \+ 40 hex\)/,
    );
    expect(bad({ contractLogs: [{ chainID: 7, contractAddress: `0x${'1'.repeat(40)}` }] })).toThrow(/chainID: 7 is not allowed/);
    expect(bad({ cronJobs: [{ cronExpressions: '* * *' }] })).toThrow(/cronJobs\[\]\.cronExpressions/);
  });
});
