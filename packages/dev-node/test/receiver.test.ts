import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMessage, loadOrCreateIdentity } from '@power-meter/w3bstream';
import {
  matchV1EventRoute,
  startDevReceiver,
  v1EventParams,
  v1TokenAccepted,
  type DevReceiverOptions,
  type ReceivedEvent,
} from '../src/index.js';
import { onCleanup, tempDir } from '../../../test/support/cleanup.js';

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
    expect(r.received[0]).toMatchObject({
      eventId: '0xabc-7',
      seq: 7,
      eventType: 'METER',
      verified: true,
      reason: null,
      sensorReading: 8,
      timestamp: 1764000000,
      duplicate: false,
      handled: true,
      signerMatchesEventId: null,
    });
    // The node's ids are strings (snowflakes), not numbers.
    expect(a.json).toMatchObject({ publisherID: expect.any(String), results: [{ instanceID: expect.any(String) }] });
  });

  it('answers a bad or missing token with 401 InvalidToken (401999002) as the node does, recording nothing', async () => {
    const r = await start();
    for (const token of ['nope', null]) {
      const a = await post(r.url, signedBody(), { token });
      expect(a.status).toBe(401);
      expect(a.json).toEqual({ key: 'InvalidToken', code: 401999002, msg: 'InvalidToken', desc: 'InvalidToken', canBeTalk: false });
    }
    expect((await post(r.url, signedBody(), { token: null, query: '?authorization=tok&eventID=x-1' })).status).toBe(201); // the query form works too
    expect((await post(r.url, signedBody(), { token: null, query: '?authorization=Bearer%20tok&eventID=x-2' })).status).toBe(201); // with or without Bearer
    // The query wins over the header, as in the node: a good header does not save a bad query token.
    expect((await post(r.url, signedBody(), { token: 'tok', query: '?authorization=wrong&eventID=x-3' })).status).toBe(401);
    expect((await post(r.url, signedBody(), { token: 'wrong', query: '?authorization=tok&eventID=x-4' })).status).toBe(201);
    expect(r.received).toHaveLength(3);
  });

  it('recovers the signer of an address-form body on both curves, logs it, and refuses a body whose address is not the signer', async () => {
    const lines: string[] = [];
    const r = await start({ log: (l) => lines.push(l) });
    const dir = tempDir();
    const p256 = loadOrCreateIdentity(join(dir, 'p'), { curve: 'p256' });
    const k1 = loadOrCreateIdentity(join(dir, 'k'), { curve: 'secp256k1' });
    const reading = { powerW: 2, timestampMs: 1_764_000_000_000 };
    for (const [i, id] of [p256, k1].entries()) {
      const a = await post(r.url, buildMessage(id, reading, { publicKeyField: 'address' }).body, {
        query: `?eventID=${id.deviceId}-${i + 1}`,
      });
      expect(a.json).toMatchObject({ results: [{ code: 0 }] });
    }
    const forged = buildMessage(k1, reading, { publicKeyField: 'address' }).body.replace(k1.deviceId, p256.deviceId);
    const refused = await post(r.url, forged, { query: `?eventID=${p256.deviceId}-3` });
    expect(refused.json).toMatchObject({ results: [{ code: -1, error: expect.stringMatching(/not by the device/) }] });
    expect(r.received.map((e) => [e.verified, e.publicKeyForm, e.curve, e.deviceId, e.publicKey, e.signerMatchesEventId])).toEqual([
      [true, 'address', 'p256', p256.deviceId, p256.publicKeyHex, true],
      [true, 'address', 'secp256k1', k1.deviceId, k1.publicKeyHex, true],
      [false, 'address', null, null, null, null],
    ]);
    expect(lines.filter((l) => l.includes(`signer=${k1.deviceId} curve=secp256k1 public_key=address`))).toHaveLength(1);
  });

  it('records a body signed by another device than the eventID names', async () => {
    const r = await start();
    const dir = tempDir();
    const id = loadOrCreateIdentity(join(dir, 'id'));
    const other = loadOrCreateIdentity(join(dir, 'other'));
    await post(r.url, signedBody(8, dir), { query: `?eventID=${id.deviceId}-1` });
    await post(r.url, buildMessage(other, { powerW: 8, timestampMs: 1_764_000_000_000 }).body, { query: `?eventID=${id.deviceId}-2` });
    expect(r.received.map((e) => e.signerMatchesEventId)).toEqual([true, false]);
    expect(r.received[1]!.reason).toBe(`eventID names ${id.deviceId}, the body is signed by ${other.deviceId}`);
  });

  it('switches to each of the node answers and network failures on request', async () => {
    const r = await start();
    const body = signedBody();
    const next = async (mode: Parameters<typeof r.answerNext>[1]) => {
      r.answerNext(1, mode);
      const res = await fetch(`${r.url}?eventType=METER&eventID=0xabc-9`, {
        method: 'POST',
        headers: { authorization: 'Bearer tok' },
        body,
      });
      const text = await res.text();
      return {
        status: res.status,
        type: res.headers.get('content-type'),
        text,
        json: /^\{/.test(text) && text.length < 100_000 ? (JSON.parse(text) as Record<string, unknown>) : null,
      };
    };
    expect((await next('instance-not-loaded')).json).toMatchObject({ results: [{ code: -1, error: 'InstanceNotRunning' }] });
    expect((await next('instance-stopped')).json).toMatchObject({ results: [{ code: -1, error: 'instance not running' }] });
    expect((await next('wait-timeout')).json).toMatchObject({ results: [{ code: -1, error: 'wait timeout' }] });
    expect((await next('traffic-limit')).json).toMatchObject({
      results: [{ code: -1, error: expect.stringMatching(/TrafficLimitExceeded/) }],
    });
    expect(await next('malformed-token')).toMatchObject({ status: 500, json: { key: 'UnknownError', code: 500000000 } });
    expect(await next('html')).toMatchObject({
      status: 200,
      type: expect.stringMatching(/^text\/html/),
      text: expect.stringMatching(/^<!doctype html>/),
    });
    expect(await next('empty')).toMatchObject({ status: 200, text: '' });
    const big = await next('oversized');
    expect(big.status).toBe(201);
    expect(big.text.length).toBeGreaterThan(1 << 20);
    expect(r.received).toHaveLength(0); // none of these reached an applet
    expect(await next('no-applet')).toMatchObject({ status: 201, json: { results: null } });
    expect(r.received[0]).toMatchObject({ handled: false, appletError: null, verified: true });
    // The traffic limit is checked before the project name, as the node does.
    r.answerNext(1, 'traffic-limit');
    const other = await post(r.url.replace(/proj$/, 'other'), body);
    expect(other.json).toMatchObject({ results: [{ code: -1, error: expect.stringMatching(/TrafficLimitExceeded/) }] });
    expect(other.json).not.toHaveProperty('error');
    // A persistent mode, until switched back.
    r.setMode('html');
    expect((await post(r.url, body)).status).toBe(200);
    expect((await post(r.url, body)).status).toBe(200);
    r.setMode('normal');
    expect((await post(r.url, body)).status).toBe(201);
  });

  it('answers another project with 201 + InvalidEventChannel, and unknown routes with 404', async () => {
    const r = await start();
    const a = await post(r.url.replace(/proj$/, 'other'), signedBody());
    expect(a.status).toBe(201);
    expect(a.json).toMatchObject({ channel: 'other', error: 'InvalidEventChannel', results: null });
    expect((await post(r.url.replace('/v0/event/proj', '/v0/nothing'), signedBody())).status).toBe(404);
    expect(r.received).toHaveLength(0);
  });

  it('verifies every message; one that fails is recorded with the reason and refused by the applet (code -1)', async () => {
    const r = await start();
    const forged = signedBody(8).replace('8.0', '9.0');
    const a = await post(r.url, forged);
    expect(a.json).toMatchObject({ results: [{ code: -1, error: 'signature does not verify' }] });
    expect(r.received[0]).toMatchObject({
      verified: false,
      reason: 'signature does not verify',
      appletError: 'signature does not verify',
      sensorReading: 9,
    });
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
    const lines = readFileSync(recordFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ReceivedEvent);
    expect(lines.map((l) => [l.seq, l.duplicate, l.body === body])).toEqual([
      [1, false, true],
      [1, true, true],
      [2, false, true],
    ]);
    expect(lines).toEqual(r.received);
    await r.close();
    const again = await start({ recordFile });
    await post(again.url, body, { query: '?eventID=0xabc-3' });
    expect(readFileSync(recordFile, 'utf8').trim().split('\n')).toHaveLength(4); // appends, never truncates
  });

  it('misbehaves on request, in the order queued: a status, an applet error, dropped connections, delays', async () => {
    const r = await start();
    const body = signedBody();
    r.answerNext(2, { status: 503 });
    r.answerNext(1, 'html');
    r.answerNext(1, { appletError: 'TrafficLimitExceeded' });
    r.answerNext(1, 'drop');
    expect((await post(r.url, body)).status).toBe(503);
    expect((await post(r.url, body)).json).toMatchObject({ key: 'InternalServerError', code: 503000000 });
    expect(await post(r.url, body)).toMatchObject({ status: 200, json: null });
    expect((await post(r.url, body)).json).toMatchObject({ results: [{ code: -1, error: 'TrafficLimitExceeded' }] });
    await expect(post(r.url, body)).rejects.toThrow();
    r.delayMs(150);
    const t0 = Date.now();
    expect((await post(r.url, body)).status).toBe(201);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(r.received).toHaveLength(1); // only the one real acceptance
    expect(r.requests()).toBe(6);
  });
});

describe('the v1 event route both stand-ins answer (v1-event-route.ts)', () => {
  const url = (query: string) => new URL(`http://localhost/srv-applet-mgr/v0/event/p${query}`);

  it('takes the token from a non-empty ?authorization= first, else the header; Bearer optional; empty never', () => {
    expect(v1TokenAccepted(url('?authorization=tok'), 'Bearer wrong', 'tok')).toBe(true);
    expect(v1TokenAccepted(url('?authorization=wrong'), 'Bearer tok', 'tok')).toBe(false);
    expect(v1TokenAccepted(url('?authorization='), 'Bearer tok', 'tok')).toBe(true);
    expect(v1TokenAccepted(url('?authorization=Bearer%20tok'), undefined, 'tok')).toBe(true);
    expect(v1TokenAccepted(url(''), 'tok', 'tok')).toBe(true);
    expect(v1TokenAccepted(url(''), undefined, '')).toBe(false);
  });

  it('matches POST on the route only, decoding the project name', () => {
    expect(matchV1EventRoute('POST', '/srv-applet-mgr/v0/event/my%20project?x=1')).toMatchObject({ ok: true, channel: 'my project' });
    expect(matchV1EventRoute('GET', '/srv-applet-mgr/v0/event/p')).toMatchObject({ ok: false, status: 404, body: { key: 'NotFound' } });
    expect(matchV1EventRoute('POST', '/srv-applet-mgr/v0/event/p/x')).toMatchObject({ ok: false, status: 404 });
  });

  it('reads eventType (DEFAULT), eventID (lower case, null when absent) and the node timestamp rule', () => {
    const now = 1_764_000_000_000;
    expect(v1EventParams(url(`?eventID=AbC-1&timestamp=${now - 999_000}`), now)).toEqual({
      eventType: 'DEFAULT',
      eventId: 'abc-1',
      timestampMs: now - 999_000,
    });
    expect(v1EventParams(url(`?eventType=METER&eventID=&timestamp=${now - 1_001_000}`), now)).toEqual({
      eventType: 'METER',
      eventId: null,
      timestampMs: now,
    });
  });
});
