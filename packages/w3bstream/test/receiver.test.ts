import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMessage, loadOrCreateIdentity, startDevReceiver, type DevReceiverOptions, type ReceivedEvent } from '../src/index.js';
import { onCleanup, tempDir } from './helpers.js';

async function start(opts: DevReceiverOptions = {}) {
  const r = await startDevReceiver({ project: 'proj', token: 'tok', ...opts });
  onCleanup(() => r.close());
  return r;
}

function signedBody(powerW = 8, dir = tempDir()) {
  return buildMessage(loadOrCreateIdentity(join(dir, 'id')), { powerW, timestampMs: 1_764_000_000_000 }).body;
}

async function post(url: string, body: string, opts: { token?: string | null; query?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? 'tok'}`;
  const res = await fetch(`${url}${opts.query ?? '?eventID=0xABC-7'}`, { method: 'POST', headers, body });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, text, json };
}

describe('dev receiver', () => {
  it('listens on loopback at the W3bstream event route, answering 201 with the node body shape', async () => {
    const r = await start();
    expect(r.url).toBe(`http://127.0.0.1:${r.port}/srv-applet-mgr/v0/event/proj`);
    const a = await post(r.url, signedBody(), { query: '?eventType=METER&eventID=0xABC-7' });
    expect(a.status).toBe(201);
    expect(a.json).toMatchObject({ channel: 'proj', eventID: '0xabc-7', results: [{ code: 0 }] });
    expect(Object.keys(a.json!).sort()).toEqual(['channel', 'eventID', 'publisherID', 'publisherKey', 'results', 'timestamp']);
    expect(r.received[0]).toMatchObject({ eventId: '0xabc-7', seqFromEventId: 7, eventType: 'METER', verified: true, reason: null, sensorReading: 8, timestamp: 1764000000, duplicate: false });
  });

  it('answers a bad or missing token with 401 InvalidToken as the node does, recording nothing', async () => {
    const r = await start();
    for (const token of ['nope', null]) {
      const a = await post(r.url, signedBody(), { token });
      expect(a.status).toBe(401);
      expect(a.json).toEqual({ key: 'InvalidToken', code: 401999003, msg: 'InvalidToken', desc: 'invalid token', canBeTalk: false });
    }
    expect((await post(r.url, signedBody(), { token: null, query: '?authorization=tok&eventID=x-1' })).status).toBe(201); // the query form works too
    expect(r.received).toHaveLength(1);
  });

  it('answers another project with 201 + InvalidEventChannel, and unknown routes with 404', async () => {
    const r = await start();
    const a = await post(r.url.replace(/proj$/, 'other'), signedBody());
    expect(a.status).toBe(201);
    expect(a.json).toMatchObject({ channel: 'other', error: 'InvalidEventChannel', results: [] });
    expect((await post(r.url.replace('/v0/event/proj', '/v0/nothing'), signedBody())).status).toBe(404);
    expect(r.received).toHaveLength(0);
  });

  it('verifies every message; one that fails is recorded with the reason and refused by the applet (code -1)', async () => {
    const r = await start();
    const forged = signedBody(8).replace('8.0', '9.0');
    const a = await post(r.url, forged);
    expect(a.json).toMatchObject({ results: [{ code: -1, error: 'signature does not verify' }] });
    expect(r.received[0]).toMatchObject({ verified: false, reason: 'signature does not verify', appletError: 'signature does not verify', sensorReading: 9 });
  });

  it('can refuse zero readings like the tutorial applet', async () => {
    const r = await start({ rejectZeroReadings: true });
    const a = await post(r.url, signedBody(0));
    expect(a.json).toMatchObject({ results: [{ code: -1, error: 'sensor_reading must not be 0' }] });
    expect(r.received[0]).toMatchObject({ verified: true, sensorReading: 0 });
  });

  it('appends one JSON line per event to the record file before answering, and flags redeliveries', async () => {
    const dir = tempDir();
    const recordFile = join(dir, 'sub', 'received.jsonl');
    const r = await start({ recordFile });
    const body = signedBody(4, dir);
    await post(r.url, body, { query: '?eventID=0xabc-1' });
    const lines1 = readFileSync(recordFile, 'utf8').split('\n');
    expect(lines1).toHaveLength(2); // readable by another process as soon as the answer came
    await post(r.url, body, { query: '?eventID=0xABC-1' });
    await post(r.url, body, { query: '?eventID=0xabc-2' });
    const lines = readFileSync(recordFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ReceivedEvent);
    expect(lines.map((l) => [l.seq, l.duplicate, l.body === body])).toEqual([[1, false, true], [1, true, true], [2, false, true]]);
    expect(lines).toEqual(r.received);
    await r.close();
    const again = await start({ recordFile });
    await post(again.url, body, { query: '?eventID=0xabc-3' });
    expect(readFileSync(recordFile, 'utf8').trim().split('\n')).toHaveLength(4); // appends, never truncates
  });

  it('misbehaves on request: fail N with a status, garbage, applet errors, dropped connections, delays', async () => {
    const r = await start();
    const body = signedBody();
    r.failNext(2, 503);
    expect((await post(r.url, body)).status).toBe(503);
    expect((await post(r.url, body)).json).toMatchObject({ key: 'InternalServerError', code: 503000000 });
    r.garbageNext(1);
    expect(await post(r.url, body)).toMatchObject({ status: 201, json: null, text: '<html>not json' });
    r.appletErrorNext(1, 'TrafficLimitExceeded');
    expect((await post(r.url, body)).json).toMatchObject({ results: [{ code: -1, error: 'TrafficLimitExceeded' }] });
    r.dropNext(1);
    await expect(post(r.url, body)).rejects.toThrow();
    r.delayMs(150);
    const t0 = Date.now();
    expect((await post(r.url, body)).status).toBe(201);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(r.received).toHaveLength(1); // only the one real acceptance
    expect(r.requests()).toBe(6);
  });
});
