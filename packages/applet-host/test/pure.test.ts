import { describe, expect, it } from 'vitest';
import {
  goLogJson,
  jsonifyRows,
  parseQuery,
  ProjectConfigError,
  routeEvent,
  strategiesFor,
  tableDdl,
  toSqlite,
  validateProject,
} from '../src/index.js';
import { probeProject } from './helpers.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('SQL query JSON (the SDK’s format)', () => {
  it('decodes every parameter type, int64 without losing digits', () => {
    const q = parseQuery(
      '{"statement":"X","params":[{"int32":7},{"int64":9007199254740993},{"float32":0.1},{"float64":0.1},{"string":"a\\"int64\\":5"},{"bool":true},{"bytes":"AQL/"},{"time":"2025-01-02T03:04:05Z"}]}',
    );
    expect(q.params).toEqual([
      7,
      9007199254740993n,
      Math.fround(0.1),
      0.1,
      'a"int64":5',
      1,
      Buffer.from([1, 2, 255]),
      '2025-01-02T03:04:05.000Z',
    ]);
  });

  it('refuses what the node refuses: no statement or no params, an unknown type', () => {
    expect(() => parseQuery('{"statement":"X"}')).toThrow('query is invalid');
    expect(() => parseQuery('not json')).toThrow('query is invalid');
    expect(() => parseQuery('{"statement":"X","params":[{"uuid":"1"}]}')).toThrow('fail to decode the param');
  });

  it('rewrites $N to positional ?, in order, repeated, and never inside quotes', () => {
    expect(toSqlite("SELECT * FROM t WHERE a = $2 AND b = '$1' AND c = $1 OR d = $2", ['one', 'two'])).toEqual({
      statement: "SELECT * FROM t WHERE a = ? AND b = '$1' AND c = ? OR d = ?",
      params: ['two', 'one', 'two'],
    });
    expect(() => toSqlite('SELECT $3', ['a'])).toThrow('there is no parameter $3');
  });

  it('answers rows as the node does: empty, an object, an array; keys sorted', () => {
    const cols = [
      { name: 'name', type: 'TEXT' },
      { name: 'active', type: 'BOOLEAN' },
      { name: 'big', type: 'BIGINT' },
    ];
    expect(jsonifyRows(cols, []).length).toBe(0);
    expect(text(jsonifyRows(cols, [['a', 1n, 9007199254740993n]]))).toBe('{"active":true,"big":9007199254740993,"name":"a"}');
    expect(
      text(
        jsonifyRows(cols, [
          ['a', 0n, null],
          ['b', 1n, 2n],
        ]),
      ),
    ).toBe('[{"active":false,"big":null,"name":"a"},{"active":true,"big":2,"name":"b"}]');
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

describe('contract logs and projects', () => {
  it('delivers a log as go-ethereum marshals it: its field order, lower-case hex', () => {
    const json = goLogJson({
      blockHash: '0xBB',
      address: '0xABCDEF0000000000000000000000000000000001',
      logIndex: '0x0',
      data: '0x',
      removed: false,
      topics: ['0xAA'],
      blockNumber: '0x5',
      transactionIndex: '0x0',
      transactionHash: '0xcc',
    });
    expect(json).toBe(
      '{"address":"0xabcdef0000000000000000000000000000000001","topics":["0xaa"],"data":"0x","blockNumber":"0x5","transactionHash":"0xcc","transactionIndex":"0x0","blockHash":"0xBB","logIndex":"0x0","removed":false}',
    );
  });

  it('routes an eventType to its own strategies only (the node does not fall back to DEFAULT)', () => {
    const p = probeProject({
      strategies: [
        { eventType: 'DEFAULT', handler: 'probe_log' },
        { eventType: 'A', handler: 'probe_return' },
      ],
    });
    expect(strategiesFor(p, 'A').map((s) => s.handler)).toEqual(['probe_return']);
    expect(strategiesFor(p, 'B')).toEqual([]);
  });

  it('gives every table an auto-increment id first', () => {
    expect(tableDdl([{ name: 'readings', columns: [{ name: 'device_id', type: 'text' }] }])).toEqual([
      'CREATE TABLE IF NOT EXISTS "readings" (id INTEGER PRIMARY KEY AUTOINCREMENT, "device_id" TEXT)',
    ]);
  });

  it('refuses a bad project with the field, the value and what is allowed', () => {
    expect(() => validateProject(probeProject({ tables: [{ name: 't', columns: [{ name: 'x', type: 'JSONB' }] }] }))).toThrow(
      ProjectConfigError,
    );
    expect(() => validateProject(probeProject({ tables: [{ name: 't', columns: [{ name: 'x', type: 'JSONB' }] }] }))).toThrow(
      /project tables\.t\.x\.type: "JSONB" is not allowed \(TEXT, /,
    );
    expect(() => validateProject(probeProject({ contractLogs: [{ eventType: 'E', chainId: 1, contractAddress: '0x1' }] }))).toThrow(
      /contractAddress: "0x1" is not allowed \(0x \+ 40 hex\)/,
    );
  });
});
