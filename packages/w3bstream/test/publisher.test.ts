import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Outbox,
  PERSISTING_AFTER_FAILURES,
  Publisher,
  PublisherConfigError,
  buildMessage,
  buildMessageV2,
  loadOrCreateIdentity,
  w3bstreamV2Transport,
  type DeliveredEvent,
  type Identity,
  type PublishState,
  type PublisherOptions,
  type TransportName,
} from '../src/index.js';
import { startDevReceiver, type DevAnswerMode, type DevReceiver, type ReceivedEvent } from '@power-meter/dev-node';
import { until } from '../../../test/support/until.js';
import { PACKAGE_DIR, onCleanup, tempDir } from './helpers.js';

const TOKEN = 'tok-Secret-4711';

/**
 * What differs between the transports in these tests; the delivery guarantees (stored before sent,
 * in order, at least once, backoff, stop) are asserted once, for each transport (describe.each).
 */
interface Kit {
  transport: TransportName;
  curve: 'p256' | 'secp256k1';
  /** The signed body the meter would store for this reading. */
  build(id: Identity, powerW: number, timestampMs: number): string;
  /** The route of the node on a loopback port. */
  path: string;
  /** Publisher options that select the transport. */
  extra: Partial<PublisherOptions>;
  /** The node's reason for an injected 500 (the receiver's `{ status: 500 }` mode). */
  reason500: string;
  /** A 2xx cut off in the middle of its body. */
  cutAnswer: string;
  /** A success answer as the node writes it. */
  ok(res: http.ServerResponse): void;
  /** The node's own transient failures besides 5xx, with the reason each is shown with. */
  nodeTransients: Array<[DevAnswerMode, string]>;
}

const V1: Kit = {
  transport: 'w3bstream-v1',
  curve: 'p256',
  build: (id, powerW, timestampMs) => buildMessage(id, { powerW, timestampMs }).body,
  path: '/srv-applet-mgr/v0/event/p',
  extra: {},
  reason500: 'HTTP 500 InternalServerError',
  ok: (res) => okAnswer(res),
  nodeTransients: [
    ['instance-stopped', 'instance not running'],
    ['wait-timeout', 'wait timeout'],
    ['instance-not-loaded', 'InstanceNotRunning'],
    ['traffic-limit', 'TrafficLimitExceeded'],
    ['traffic-limit', 'TrafficLimitExceeded'],
  ],
  cutAnswer: 'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"channel":"p","res',
};

const V2: Kit = {
  transport: 'w3bstream-v2',
  curve: 'secp256k1',
  build: (id, powerW, timestampMs) => buildMessageV2(id, { powerW, timestampMs }, { projectId: '42', projectVersion: '0.1' }).body,
  path: '/message',
  extra: { transport: w3bstreamV2Transport({ dialect: 'message' }) },
  reason500: 'HTTP 500 dev receiver answering an injected fail…',
  ok: (res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    res.end('{"taskID":"0x5f3e2b0c1d4a69788b9aa0b1c2d3e4f5061728394a5b6c7d8e9f000112233445"}');
  },
  // The node's answer when it cannot store a message (its database): 500 with its error text.
  nodeTransients: [['wait-timeout', 'HTTP 500 internal server error; could not save t…']],
  cutAnswer: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"taskID":"0x12',
};

const KITS = [V1, V2];

/** The same message resent is the same bytes: a duplicate never differs from the first copy. */
function expectResendsIdentical(received: ReceivedEvent[], seqOf: (x: ReceivedEvent) => number): void {
  const bySeq = new Map<number, string>();
  for (const x of received) {
    if (bySeq.has(seqOf(x))) expect(x.body).toBe(bySeq.get(seqOf(x)));
    bySeq.set(seqOf(x), x.body);
  }
}

function setup(opts: { maxCount?: number } = {}, kit: Kit = V1) {
  const dir = tempDir('pub-');
  const id = loadOrCreateIdentity(join(dir, 'identity'), { curve: kit.curve });
  const outbox = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'), opts);
  onCleanup(() => outbox.close());
  /** Body -> the sequence number the outbox gave it: how a received message is identified on either node. */
  const seqOfBody = new Map<string, number>();
  let n = 0;
  const append = (count: number) => {
    for (let i = 0; i < count; i++, n++) {
      const body = kit.build(id, n + 0.5, 1_764_000_000_000 + n * 5000);
      seqOfBody.set(body, outbox.append(body).seq);
    }
  };
  const seqOf = (x: ReceivedEvent): number => seqOfBody.get(x.body) ?? -1;
  return { dir, id, outbox, append, seqOf };
}

async function receiver(kit: Kit = V1, port?: number): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'p', token: TOKEN, transport: kit.transport, dialect: 'message', port });
  onCleanup(() => r.close());
  return r;
}

/** Everything a publisher said: log lines, states, delivered events (for order and secrecy checks). */
function publisher(outbox: Outbox, id: Identity, url: string | undefined, extra: Partial<PublisherOptions> = {}, kit: Kit = V1) {
  const logs: string[] = [];
  /** The same lines with the level the publisher gave each ("warning: publish state=…"). */
  const leveled: string[] = [];
  const at = (level: string) => (m: string) => {
    logs.push(m);
    leveled.push(`${level}: ${m}`);
  };
  const states: PublishState[] = [];
  const delivered: DeliveredEvent[] = [];
  const p = new Publisher({
    outbox,
    url,
    token: TOKEN,
    deviceId: id.deviceId,
    timeoutMs: 1000,
    backoff: { baseMs: 10, maxMs: 40, configRetryMs: 40 },
    log: { error: at('error'), warning: at('warning'), notice: at('notice'), info: at('info'), debug: at('debug') },
    ...kit.extra,
    ...extra,
  });
  p.on('state', (s) => states.push(s));
  p.on('delivered', (e) => delivered.push(e));
  onCleanup(() => p.stop());
  p.start();
  return { p, logs, leveled, states, delivered };
}

/** A loopback HTTP server with a handler per request number (for answers the receiver cannot give). */
async function httpServer(handler: (n: number, req: http.IncomingMessage, body: string, res: http.ServerResponse) => void, kit: Kit = V1) {
  const seen: Array<{ url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ url: req.url!, headers: req.headers, body });
      handler(seen.length, req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  onCleanup(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${kit.path}`, seen };
}

/** A loopback TCP server that misbehaves below HTTP (resets, half answers, garbage). */
async function tcpServer(onData: (n: number, socket: net.Socket) => void, kit: Kit = V1) {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => onData(++n, socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  onCleanup(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${kit.path}`, requests: () => n };
}

const okAnswer = (res: http.ServerResponse): void => {
  res.writeHead(201, { 'content-type': 'application/json' });
  res.end('{"results":[{"code":0}]}');
};

describe('publisher against the dev receiver', () => {
  it('delivers in order with eventID = <device id>-<seq>, Bearer token, JSON content type, eventType', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    append(20);
    const { p, delivered } = publisher(outbox, id, r.url, { eventType: 'METER' });
    await until(() => r.received.length === 20, 10_000, '20 deliveries');
    expect(r.received.map((x) => x.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(r.received.every((x) => x.verified && x.eventId === `${id.deviceId}-${x.seq}` && x.eventType === 'METER' && !x.duplicate)).toBe(
      true,
    );
    await until(() => p.state().waiting === 0, 10_000, 'outbox empty');
    expect(p.state()).toMatchObject({ state: 'ok', reason: null, errorKey: null, waiting: 0, lastDeliveredSeq: 20, lastAttemptOk: true });
    expect(p.state().lastSuccessMs).toBeGreaterThan(Date.now() - 10_000);
    expect(delivered.map((d) => d.seq)).toEqual(r.received.map((x) => x.seq));
    expect(delivered[0]).toEqual({ seq: 1, eventId: `${id.deviceId}-1`, status: 201, rejected: false, reason: null });
    expect(outbox.stats().delivered).toBe(20);
  });

  it('sends the exact stored body and the headers the node expects', async () => {
    const { id, outbox, append } = setup();
    const srv = await httpServer((_n, _req, _body, res) => okAnswer(res));
    append(1);
    const body = outbox.peek(1)[0]!.body;
    publisher(outbox, id, `${srv.url}?keep=1`);
    await until(() => outbox.waiting() === 0, 10_000, 'delivery');
    const [req] = srv.seen;
    expect(req!.body).toBe(body);
    expect(req!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(req!.headers['content-type']).toBe('application/json');
    const u = new URL(req!.url, 'http://x');
    expect(Object.fromEntries(u.searchParams)).toEqual({ keep: '1', eventType: 'DEFAULT', eventID: `${id.deviceId}-1` });
  });

  it('wakes on notify()/append after going idle and keeps one keep-alive connection', async () => {
    const { id, outbox, append } = setup();
    const sockets = new Set<unknown>();
    const srv = await httpServer((_n, req, _b, res) => {
      sockets.add(req.socket);
      okAnswer(res);
    });
    const { p } = publisher(outbox, id, srv.url);
    // start() ran the loop up to its idle wait already (the outbox was empty): from here only a
    // wake-up delivers within the deadline, since on its own it looks again after a minute.
    expect(srv.seen).toHaveLength(0);
    append(3);
    await until(() => srv.seen.length === 3, 10_000, 'woken by append');
    append(2);
    p.notify();
    await until(() => srv.seen.length === 5, 10_000, 'second batch');
    expect(sockets.size).toBe(1);
  });

  it('is disabled without a URL: no requests, state says so, data stays', async () => {
    const { id, outbox, append } = setup();
    append(2);
    const { p } = publisher(outbox, id, undefined);
    // Without a URL start() starts nothing: there is no loop to wait for.
    expect(p.state()).toMatchObject({ state: 'disabled', waiting: 2 });
    expect(p.urlFor.bind(p, 1)).toThrow(/publishing is disabled/);
    expect(new Publisher({ outbox, url: '', deviceId: id.deviceId }).state().state).toBe('disabled');
  });

  it('refuses a URL that is not http(s) or carries credentials, without echoing the query', () => {
    const { id, outbox } = setup();
    expect(() => new Publisher({ outbox, url: 'ftp://x/y', deviceId: id.deviceId })).toThrow(PublisherConfigError);
    expect(() => new Publisher({ outbox, url: 'http://u:pw@x/y', deviceId: id.deviceId })).toThrow(/must not contain a user or password/);
    let msg = '';
    try {
      new Publisher({ outbox, url: 'not a url?authorization=SECRET', deviceId: id.deviceId });
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/is not a URL/);
    expect(msg).not.toContain('SECRET');
    expect(() => new Publisher({ outbox, url: 'http://127.0.0.1/x', deviceId: 'nope' })).toThrow(/0x \+ 40 hex/);
  });

  it('a captive portal answering 200 HTML keeps every reading and becomes failing with advice once it persists', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.setMode('html');
    append(3);
    const { p, states } = publisher(outbox, id, r.url);
    await until(() => p.state().state === 'failing', 10_000, 'failing');
    expect(states[0]).toMatchObject({ state: 'retrying', reason: 'not a W3bstream answer (text/html)' });
    expect(p.state()).toMatchObject({
      state: 'failing',
      reason: 'not a W3bstream answer (text/html)',
      errorKey: 'NotW3bstream',
      waiting: 3,
      advice: expect.stringMatching(/captive portal/),
      lastAttemptOk: false,
    });
    expect(states.filter((s) => s.state === 'retrying').length).toBe(2); // failing from the third answer on
    expect(outbox.stats()).toMatchObject({ waiting: 3, delivered: 0 });
    r.setMode('normal');
    await until(() => outbox.waiting() === 0, 10_000, 'delivered once the portal is gone');
    expect(r.received.map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(p.state()).toMatchObject({ state: 'ok', reason: null });
  });

  it('a persisting 500 UnknownError is shown as failing with the token as the usual cause, keeping the data', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.setMode('malformed-token');
    append(1);
    const { p } = publisher(outbox, id, r.url);
    await until(() => p.state().state === 'failing', 10_000, 'failing');
    expect(p.state()).toMatchObject({
      reason: 'HTTP 500 UnknownError (token?)',
      advice: expect.stringMatching(/malformed publisher token/),
      waiting: 1,
    });
    r.setMode('normal');
    await until(() => outbox.waiting() === 0, 10_000, 'delivered');
  });

  it('results: null is delivered, counted as unhandled and shown while it lasts', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(2, 'no-applet');
    append(3);
    const settingHint = (settings: readonly string[]) => ` (program: ${settings.join(' ')})`;
    const { p, states, delivered } = publisher(outbox, id, r.url, { eventType: 'METER', settingHint });
    await until(() => outbox.waiting() === 0, 10_000, 'all answered');
    expect(outbox.stats()).toMatchObject({ unhandled: 2, delivered: 1 });
    expect(states.find((s) => s.reason !== null)).toMatchObject({ state: 'ok', reason: 'no applet handled eventType METER', unhandled: 1 });
    // The library names the setting; the program's hint gives its own words for it.
    expect(states.find((s) => s.reason !== null)?.advice).toMatch(
      /set the event type to one the project handles.* \(program: eventType\)$/,
    );
    expect(delivered.map((d) => d.reason)).toEqual(['no applet handled eventType METER', 'no applet handled eventType METER', null]);
    expect(p.state()).toMatchObject({ state: 'ok', reason: null, unhandled: 2 });
  });

  it('times out an answer that hangs and retries the same eventID', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.delayMs(800);
    append(1);
    const { p } = publisher(outbox, id, r.url, { timeoutMs: 200 });
    await until(() => p.state().state === 'retrying', 10_000, 'timeout');
    expect(p.state()).toMatchObject({
      reason: 'timeout 200 ms',
      errorKey: 'timeout',
      advice: expect.stringMatching(/no answer within 200 ms/),
    });
    r.delayMs(0);
    await until(() => outbox.waiting() === 0, 10_000, 'delivery after the node speeds up');
    // The receiver may have recorded the slow attempts too: all with the same eventID.
    expect(new Set(r.received.map((x) => x.eventId))).toEqual(new Set([`${id.deviceId}-1`]));
    expect(r.received.filter((x) => !x.duplicate)).toHaveLength(1);
  });

  it('reports a bad token and an unknown project as failing with the node error key, keeping the data', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    append(2);
    const bad = publisher(outbox, id, r.url, { token: 'wrong' });
    await until(() => bad.p.state().state === 'failing', 10_000, 'InvalidToken');
    expect(bad.p.state()).toMatchObject({ reason: 'InvalidToken', errorKey: 'InvalidToken', waiting: 2, lastAttemptOk: false });
    expect(bad.p.state().nextRetryMs).toBeGreaterThan(Date.now() - 1000);
    await bad.p.stop();
    const wrongProject = publisher(outbox, id, r.url.replace(/\/p$/, '/other'));
    await until(() => wrongProject.p.state().state === 'failing', 10_000, 'InvalidEventChannel');
    expect(wrongProject.p.state()).toMatchObject({ reason: 'InvalidEventChannel', waiting: 2 });
    await wrongProject.p.stop();
    expect(r.received).toHaveLength(0);
    const good = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 10_000, 'delivery with the right settings');
    expect(good.p.state().state).toBe('ok');
  });

  it('counts an applet refusal as delivered-but-rejected and goes on with the next message', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(1, { appletError: 'abort: reading is zero' });
    append(3);
    const { delivered } = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 10_000, 'all answered');
    expect(outbox.stats()).toMatchObject({ rejected: 1, delivered: 2 });
    expect(r.received.map((x) => x.seq)).toEqual([2, 3]);
    expect(delivered[0]).toMatchObject({ seq: 1, rejected: true, reason: 'applet: abort: reading is zero' });
  });

  it('follows the backoff schedule: doubling, capped, reset by a success', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(5, { status: 503 });
    append(1);
    const { states } = publisher(outbox, id, r.url, { now: () => 0, random: () => 0, backoff: { baseMs: 40, maxMs: 160 } });
    await until(() => outbox.waiting() === 0, 10_000, 'delivery');
    const waits = states.filter((s) => s.state === 'retrying').map((s) => [s.failures, s.nextRetryMs]);
    expect(waits).toEqual([
      [1, 20],
      [2, 40],
      [3, 80],
      [4, 80],
      [5, 80],
    ]);
    expect(states.at(-1)).toMatchObject({ state: 'ok', failures: 0, nextRetryMs: null });
  });

  it('reports an outbox that fails underneath it as failing, without throwing', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.delayMs(100);
    append(2);
    const { p } = publisher(outbox, id, r.url);
    await until(() => r.received.length === 1, 10_000, 'first request in flight');
    outbox.close(); // the answer arrives after this: markDelivered throws
    await until(() => p.state().state === 'failing', 10_000, 'failing');
    expect(p.state()).toMatchObject({ errorKey: 'OutboxError', advice: expect.stringMatching(/restart the meter/), waiting: 2 });
  });
});

describe('publisher against misbehaving loopback servers', () => {
  it('an answer that is not HTTP at all is transient', async () => {
    const { id, outbox, append } = setup();
    const tcp = await tcpServer((_n, socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    append(1);
    const { p } = publisher(outbox, id, tcp.url);
    await until(() => p.state().failures >= 1, 10_000, 'a failure');
    expect(p.state()).toMatchObject({ state: 'retrying', waiting: 1 });
  });

  it('a 500 with an HTML body is transient, and does not follow redirects (the token stays home)', async () => {
    const { id, outbox, append } = setup();
    const elsewhere = await httpServer((_n, _r, _b, res) => okAnswer(res));
    const srv = await httpServer((n, _req, _b, res) => {
      if (n === 1) {
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<h1>oops</h1>');
        return;
      }
      res.writeHead(307, { location: elsewhere.url });
      res.end();
    });
    append(1);
    const { p, states } = publisher(outbox, id, srv.url);
    await until(() => p.state().state === 'failing', 10_000, 'redirect refused');
    expect(states[0]).toMatchObject({ state: 'retrying', reason: 'HTTP 500' });
    expect(p.state()).toMatchObject({ errorKey: 'HTTP 307', waiting: 1, advice: expect.stringMatching(/final URL/) });
    expect(elsewhere.seen).toHaveLength(0);
  });

  it('never puts the token in a state, event, reason or log line, whatever goes wrong', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    const tcp = await tcpServer((_n, socket) => socket.resetAndDestroy());
    const redirect = await httpServer((_n, _r, _b, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:9/?t=${TOKEN}` });
      res.end();
    });
    append(3);
    const said: string[] = [];
    for (const [url, token, until_] of [
      [r.url, 'wrong-but-secret', 'failing'],
      [tcp.url, TOKEN, 'retrying'],
      [redirect.url, TOKEN, 'failing'],
      ['http://127.0.0.1:9/srv-applet-mgr/v0/event/p', TOKEN, 'retrying'],
    ] as const) {
      const x = publisher(outbox, id, url, { token });
      await until(() => x.p.state().state === until_, 10_000, until_);
      await x.p.stop();
      said.push(...x.logs, ...x.states.map((s) => JSON.stringify(s)), JSON.stringify(x.p.state()));
    }
    r.answerNext(1, { status: 500 });
    const good = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 10_000, 'delivered');
    said.push(...good.logs, ...good.states.map((s) => JSON.stringify(s)), ...good.delivered.map((d) => JSON.stringify(d)));
    expect(said.length).toBeGreaterThan(8);
    for (const text of said) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('wrong-but-secret');
    }
  });
});

describe.each(KITS)('delivery guarantees over $transport', (kit) => {
  it('delivers in order, each message once, verified, and reports ok', async () => {
    const { id, outbox, append, seqOf } = setup({}, kit);
    const r = await receiver(kit);
    append(20);
    const { p, delivered } = publisher(outbox, id, r.url, {}, kit);
    await until(() => r.received.length === 20, 10_000, '20 deliveries');
    expect(r.received.map(seqOf)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(r.received.every((x) => x.verified && x.deviceId === id.deviceId && !x.duplicate)).toBe(true);
    await until(() => p.state().waiting === 0, 10_000, 'outbox empty');
    expect(p.state()).toMatchObject({ state: 'ok', reason: null, errorKey: null, waiting: 0, lastDeliveredSeq: 20, lastAttemptOk: true });
    expect(p.state().lastSuccessMs).toBeGreaterThan(Date.now() - 10_000);
    expect(delivered.map((d) => d.seq)).toEqual(r.received.map(seqOf));
    expect(outbox.stats().delivered).toBe(20);
    if (kit === V2) {
      // The node's taskID is kept (state.json shows the last one).
      expect(delivered.every((d) => /^0x[0-9a-f]{64}$/.test(d.taskId ?? ''))).toBe(true);
      expect(p.state().lastTaskId).toBe(r.received.at(-1)!.taskId);
    } else expect(p.state().lastTaskId).toBeNull();
  });

  it("adds the program's words for the settings a refusal names (settingHint)", async () => {
    const { id, outbox, append } = setup({}, kit);
    const srv = await httpServer((_n, _req, _body, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(kit === V2 ? '{"error":"invalid request payload: ProjectID"}' : '{"key":"BadRequest"}');
    }, kit);
    append(1);
    const { p } = publisher(outbox, id, srv.url, { settingHint: (settings) => ` [${settings.join(',')}]` }, kit);
    await until(() => p.state().state === 'failing', 10_000, 'failing');
    // W3bstream 2 names the project ID; a v1 400 names no setting, so nothing is added.
    if (kit === V2) expect(p.state().advice).toMatch(/check the project ID .*; readings are kept and retried slowly \[projectId\]$/);
    else expect(p.state().advice).not.toMatch(/\[/);
  });

  it('sends the exact stored body, so a resend is byte-identical', async () => {
    const { id, outbox, append } = setup({}, kit);
    let n = 0;
    const srv = await httpServer((_n, _req, _body, res) => {
      if (++n === 1) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":"busy"}');
      } else kit.ok(res);
    }, kit);
    append(1);
    const body = outbox.peek(1)[0]!.body;
    publisher(outbox, id, srv.url, {}, kit);
    await until(() => outbox.waiting() === 0, 10_000, 'delivery');
    expect(srv.seen.map((x) => x.body)).toEqual([body, body]);
    expect(srv.seen[0]!.headers['content-type']).toBe('application/json');
    if (kit === V2) {
      // No token and no query: the device is the signature's recovered address.
      expect(srv.seen[0]!.headers.authorization).toBeUndefined();
      expect(srv.seen[0]!.url).toBe('/message');
    }
  });

  it('survives 5xx, reset connections, HTML, empty and oversized answers and the node being busy, losing and reordering nothing', async () => {
    const { id, outbox, append, seqOf } = setup({}, kit);
    const r = await receiver(kit);
    r.answerNext(2, 'drop');
    r.answerNext(3, { status: 500 });
    r.answerNext(1, 'html');
    for (const [mode] of kit.nodeTransients) r.answerNext(1, mode);
    r.answerNext(1, 'empty');
    r.answerNext(1, 'oversized');
    append(10);
    const { states } = publisher(outbox, id, r.url, {}, kit);
    await until(() => outbox.waiting() === 0, 10_000, 'all delivered');
    // Message 1 met every failure in turn and was removed only by the node's real acceptance.
    expect(r.received.filter((x) => x.verified).map(seqOf)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(r.received.every((x) => !x.duplicate)).toBe(true);
    expect(outbox.peek(1)).toEqual([]);
    expect(outbox.stats()).toMatchObject({ delivered: 10, rejected: 0, dropped: 0 });
    const keys = states.filter((s) => s.state !== 'ok').map((s) => s.reason);
    expect(keys).toEqual([
      'ECONNRESET',
      'ECONNRESET',
      ...Array(3).fill(kit.reason500),
      'not a W3bstream answer (text/html)',
      ...kit.nodeTransients.map(([, reason]) => reason),
      'not a W3bstream answer (empty)',
      'not a W3bstream answer (over the size limit)',
    ]);
  });

  it('delivers the backlog in order once a receiver that was down comes back', async () => {
    const { id, outbox, append, seqOf } = setup({}, kit);
    // Reserve a port, then close it: connections are refused until the receiver starts there.
    const probe = http.createServer();
    await new Promise<void>((res) => probe.listen(0, '127.0.0.1', () => res()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((res) => probe.close(() => res()));
    append(30);
    const { p, leveled } = publisher(outbox, id, `http://127.0.0.1:${port}${kit.path}`, {}, kit);
    await until(() => p.state().failures >= 3, 10_000, 'a few refused attempts');
    expect(p.state()).toMatchObject({ state: 'retrying', errorKey: 'ECONNREFUSED', waiting: 30 });
    // Trouble is a warning (journald priority 4), the way back to ok a notice.
    expect(leveled[0]).toMatch(/^warning: publish state=retrying reason="ECONNREFUSED" waiting=30 advice="no answer from the publish URL/);
    const r = await receiver(kit, port);
    await until(() => outbox.waiting() === 0, 10_000, 'backlog delivered');
    expect(leveled).toContainEqual(expect.stringMatching(/^notice: publish state=ok waiting=/));
    expect(r.received.map(seqOf)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('counts the attempts that did not deliver a message, on the message', async () => {
    const { id, outbox, append } = setup({}, kit);
    const r = await receiver(kit);
    r.answerNext(3, { status: 500 });
    append(2);
    const { p } = publisher(outbox, id, r.url, { backoff: { baseMs: 10, maxMs: 10 } }, kit);
    // Stopped as the third failure is reported (its attempt is already counted), before a fourth
    // attempt can start: a poll of the state could miss the moment, the fourth one succeeds 10 ms later.
    const failures = new Set<number>();
    await new Promise<void>((resolve) =>
      p.on('state', (s) => {
        failures.add(s.failures);
        if (s.failures === 3) void p.stop().then(resolve);
      }),
    );
    expect([...failures]).toEqual([1, 2, 3]);
    expect(outbox.peek(2).map((m) => [m.seq, m.attempts])).toEqual([
      [1, 3],
      [2, 0],
    ]);
  });

  it('stop() is prompt while a request hangs and while backing off, and keeps the message', async () => {
    const { id, outbox, append } = setup({}, kit);
    const tcp = await tcpServer(() => undefined, kit); // reads the request, never answers
    append(1);
    const hung = publisher(outbox, id, tcp.url, { timeoutMs: 30_000 }, kit);
    await until(() => tcp.requests() === 1, 10_000, 'request sent');
    let t0 = Date.now();
    await hung.p.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(outbox.peek(1)[0]).toMatchObject({ seq: 1, attempts: 1 });
    const refused = publisher(outbox, id, `http://127.0.0.1:9${kit.path}`, { backoff: { baseMs: 60_000, maxMs: 60_000 } }, kit);
    await until(() => refused.p.state().state === 'retrying', 10_000, 'backing off');
    t0 = Date.now();
    await refused.p.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(outbox.waiting()).toBe(1);
  });

  it('a connection reset mid-request is transient and the same message is resent', async () => {
    const { id, outbox, append } = setup({}, kit);
    const ok = await httpServer((_n, _r, _b, res) => kit.ok(res), kit);
    const tcp = await tcpServer((n, socket) => (n <= 2 ? socket.resetAndDestroy() : socket.end()), kit);
    append(1);
    const body = outbox.peek(1)[0]!.body;
    const { p, states } = publisher(outbox, id, tcp.url, {}, kit);
    await until(() => tcp.requests() >= 2 && p.state().failures >= 2, 10_000, 'two resets');
    expect(states[0]).toMatchObject({ state: 'retrying', errorKey: 'ECONNRESET', waiting: 1 });
    await p.stop();
    publisher(outbox, id, ok.url, {}, kit);
    await until(() => outbox.waiting() === 0, 10_000, 'delivered elsewhere');
    expect(ok.seen[0]!.body).toBe(body);
    if (kit === V1) expect(ok.seen[0]!.url).toContain(`eventID=${id.deviceId}-1`);
  });

  it('a success cut off in the middle of its body is not an answer: the reading is kept and sent again', async () => {
    const { id, outbox, append } = setup({}, kit);
    // The head and the start of the body, then the connection ends (FIN) 480 bytes short.
    const tcp = await tcpServer((_n, socket) => socket.end(kit.cutAnswer), kit);
    append(1);
    const { states } = publisher(outbox, id, tcp.url, {}, kit);
    // From the states it reported (a poll could land on either side of the third failure).
    await until(() => states.some((s) => s.failures >= PERSISTING_AFTER_FAILURES), 10_000, 'cut answers in a row');
    const byFailures = (n: number) => states.find((s) => s.failures === n);
    expect(byFailures(1)).toMatchObject({ state: 'retrying', reason: 'not a W3bstream answer (cut short)', waiting: 1 });
    expect(byFailures(2)).toMatchObject({ state: 'retrying', reason: 'not a W3bstream answer (cut short)', waiting: 1 });
    // The same answer again and again is shown as failing (the data stays).
    expect(byFailures(PERSISTING_AFTER_FAILURES)).toMatchObject({
      state: 'failing',
      reason: 'not a W3bstream answer (cut short)',
      waiting: 1,
    });
    expect(outbox.waiting()).toBe(1);
  });

  it('kill -9 in the middle of a delivery and restart: every stored message arrives, in order, a resend is the same body', async () => {
    const dir = tempDir('kill-');
    const r = await receiver(kit);
    r.delayMs(400); // the receiver records a message, then holds its answer: a kill now lands mid-delivery
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'publish-worker.mjs');
    const seqOfBody = new Map<string, number>();
    /** The worker prints `appended <seq> <body as JSON>` for every message it stores. */
    const run = (count: number) => {
      const child = spawn(process.execPath, [worker, dir, r.url, String(count), kit.transport], {
        stdio: 'pipe',
        env: { ...process.env, PUBLISH_TOKEN: TOKEN },
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        for (const m of out.matchAll(/^appended (\d+) (.*)$/gm)) seqOfBody.set(JSON.parse(m[2]!) as string, Number(m[1]));
      });
      return { child, out: () => out };
    };
    const first = run(20);
    await until(() => r.received.length >= 3, 10_000, '3 deliveries');
    first.child.kill('SIGKILL');
    await new Promise((res) => first.child.once('exit', res));
    r.delayMs(0);
    const second = run(5);
    const code = await new Promise((res) => second.child.once('exit', res));
    expect(code).toBe(0);
    expect(second.out()).toMatch(/^appended 21 /m); // numbering continues after the crash
    const seqOf = (x: ReceivedEvent): number => seqOfBody.get(x.body) ?? -1;
    const seqs = r.received.map(seqOf);
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // In order, apart from the resend of what was in flight at the kill.
    expect(r.received.filter((x) => !x.duplicate).map(seqOf)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // The message whose answer was held at the kill arrived again after the restart.
    expect(r.received.filter((x) => x.duplicate).map(seqOf)).toEqual([3]);
    if (kit === V1) expect(r.received.every((x) => x.seq === seqOf(x))).toBe(true); // the eventID names the same message
    expectResendsIdentical(r.received, seqOf);
    expect(r.received.every((x) => x.verified)).toBe(true);
  });
});
