import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Outbox,
  Publisher,
  PublisherConfigError,
  buildMessage,
  loadOrCreateIdentity,
  startDevReceiver,
  type DeliveredEvent,
  type DevReceiver,
  type Identity,
  type PublishState,
  type PublisherOptions,
} from '../src/index.js';
import { PACKAGE_DIR, onCleanup, sleep, tempDir, until } from './helpers.js';

const TOKEN = 'tok-Secret-4711';

function setup(opts: { maxCount?: number } = {}) {
  const dir = tempDir('pub-');
  const id = loadOrCreateIdentity(join(dir, 'identity'));
  const outbox = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'), opts);
  onCleanup(() => outbox.close());
  const append = (n: number) => {
    for (let i = 0; i < n; i++) outbox.append(buildMessage(id, { powerW: i + 0.5, timestampMs: 1_764_000_000_000 + i * 5000 }).body);
  };
  return { dir, id, outbox, append };
}

async function receiver(): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'p', token: TOKEN });
  onCleanup(() => r.close());
  return r;
}

/** Everything a publisher said: log lines, states, delivered events (for order and secrecy checks). */
function publisher(outbox: Outbox, id: Identity, url: string | undefined, extra: Partial<PublisherOptions> = {}) {
  const logs: string[] = [];
  const states: PublishState[] = [];
  const delivered: DeliveredEvent[] = [];
  const p = new Publisher({
    outbox,
    url,
    token: TOKEN,
    deviceId: id.deviceId,
    timeoutMs: 1000,
    backoff: { baseMs: 10, maxMs: 40, configRetryMs: 40 },
    log: (l) => logs.push(l),
    ...extra,
  });
  p.on('state', (s) => states.push(s));
  p.on('delivered', (e) => delivered.push(e));
  onCleanup(() => p.stop());
  p.start();
  return { p, logs, states, delivered };
}

/** A loopback HTTP server with a handler per request number (for answers the receiver cannot give). */
async function httpServer(handler: (n: number, req: http.IncomingMessage, body: string, res: http.ServerResponse) => void) {
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/srv-applet-mgr/v0/event/p`, seen };
}

/** A loopback TCP server that misbehaves below HTTP (resets, half answers, garbage). */
async function tcpServer(onData: (n: number, socket: net.Socket) => void) {
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/srv-applet-mgr/v0/event/p`, requests: () => n };
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
    await until(() => r.received.length === 20, '20 deliveries');
    expect(r.received.map((x) => x.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(r.received.every((x) => x.verified && x.eventId === `${id.deviceId}-${x.seq}` && x.eventType === 'METER' && !x.duplicate)).toBe(
      true,
    );
    await until(() => p.state().waiting === 0, 'outbox empty');
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
    await until(() => outbox.waiting() === 0, 'delivery');
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
    await sleep(50); // idle: it polls only once a minute on its own
    append(3);
    await until(() => srv.seen.length === 3, 'woken by append');
    append(2);
    p.notify();
    await until(() => srv.seen.length === 5, 'second batch');
    expect(sockets.size).toBe(1);
  });

  it('is disabled without a URL: no requests, state says so, data stays', async () => {
    const { id, outbox, append } = setup();
    append(2);
    const { p } = publisher(outbox, id, undefined);
    await sleep(50);
    expect(p.state()).toMatchObject({ state: 'disabled', waiting: 2 });
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

  it('survives 500s, reset connections, HTML, stopped or busy applets and traffic limits, losing and reordering nothing', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(2, 'drop');
    r.answerNext(3, { status: 500 });
    r.answerNext(1, 'html');
    r.answerNext(1, 'instance-stopped');
    r.answerNext(1, 'wait-timeout');
    r.answerNext(1, 'instance-not-loaded');
    r.answerNext(2, 'traffic-limit');
    r.answerNext(1, 'empty');
    r.answerNext(1, 'oversized');
    append(10);
    const { states } = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 'all delivered');
    // Message 1 met every failure in turn and was removed only by the node's real acceptance.
    expect(r.received.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(r.received.every((x) => !x.duplicate)).toBe(true);
    expect(outbox.peek(1)).toEqual([]);
    expect(outbox.stats()).toMatchObject({ delivered: 10, rejected: 0, dropped: 0 });
    const keys = states.filter((s) => s.state !== 'ok').map((s) => s.reason);
    expect(keys).toEqual([
      'ECONNRESET',
      'ECONNRESET',
      ...Array(3).fill('HTTP 500 InternalServerError'),
      'not a W3bstream answer (text/html)',
      'instance not running',
      'wait timeout',
      'InstanceNotRunning',
      'TrafficLimitExceeded',
      'TrafficLimitExceeded',
      'not a W3bstream answer (empty)',
      'not a W3bstream answer (over the size limit)',
    ]);
  });

  it('a captive portal answering 200 HTML keeps every reading and becomes failing with advice once it persists', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.setMode('html');
    append(3);
    const { p, states } = publisher(outbox, id, r.url);
    await until(() => p.state().state === 'failing', 'failing');
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
    await until(() => outbox.waiting() === 0, 'delivered once the portal is gone');
    expect(r.received.map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(p.state()).toMatchObject({ state: 'ok', reason: null });
  });

  it('a persisting 500 UnknownError is shown as failing with the token as the usual cause, keeping the data', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.setMode('malformed-token');
    append(1);
    const { p } = publisher(outbox, id, r.url);
    await until(() => p.state().state === 'failing', 'failing');
    expect(p.state()).toMatchObject({
      reason: 'HTTP 500 UnknownError (token?)',
      advice: expect.stringMatching(/malformed publisher token/),
      waiting: 1,
    });
    r.setMode('normal');
    await until(() => outbox.waiting() === 0, 'delivered');
  });

  it('results: null is delivered, counted as unhandled and shown while it lasts', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(2, 'no-applet');
    append(3);
    const { p, states, delivered } = publisher(outbox, id, r.url, { eventType: 'METER' });
    await until(() => outbox.waiting() === 0, 'all answered');
    expect(outbox.stats()).toMatchObject({ unhandled: 2, delivered: 1 });
    expect(states.find((s) => s.reason !== null)).toMatchObject({ state: 'ok', reason: 'no applet handled eventType METER', unhandled: 1 });
    expect(delivered.map((d) => d.reason)).toEqual(['no applet handled eventType METER', 'no applet handled eventType METER', null]);
    expect(p.state()).toMatchObject({ state: 'ok', reason: null, unhandled: 2 });
  });

  it('times out an answer that hangs and retries the same eventID', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.delayMs(800);
    append(1);
    const { p } = publisher(outbox, id, r.url, { timeoutMs: 200 });
    await until(() => p.state().state === 'retrying', 'timeout');
    expect(p.state()).toMatchObject({
      reason: 'timeout 200 ms',
      errorKey: 'timeout',
      advice: expect.stringMatching(/no answer within 200 ms/),
    });
    r.delayMs(0);
    await until(() => outbox.waiting() === 0, 'delivery after the node speeds up');
    // The receiver may have recorded the slow attempts too: all with the same eventID.
    expect(new Set(r.received.map((x) => x.eventId))).toEqual(new Set([`${id.deviceId}-1`]));
    expect(r.received.filter((x) => !x.duplicate)).toHaveLength(1);
  });

  it('reports a bad token and an unknown project as failing with the node error key, keeping the data', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    append(2);
    const bad = publisher(outbox, id, r.url, { token: 'wrong' });
    await until(() => bad.p.state().state === 'failing', 'InvalidToken');
    expect(bad.p.state()).toMatchObject({ reason: 'InvalidToken', errorKey: 'InvalidToken', waiting: 2, lastAttemptOk: false });
    expect(bad.p.state().nextRetryMs).toBeGreaterThan(Date.now() - 1000);
    await bad.p.stop();
    const wrongProject = publisher(outbox, id, r.url.replace(/\/p$/, '/other'));
    await until(() => wrongProject.p.state().state === 'failing', 'InvalidEventChannel');
    expect(wrongProject.p.state()).toMatchObject({ reason: 'InvalidEventChannel', waiting: 2 });
    await wrongProject.p.stop();
    expect(r.received).toHaveLength(0);
    const good = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 'delivery with the right settings');
    expect(good.p.state().state).toBe('ok');
  });

  it('counts an applet refusal as delivered-but-rejected and goes on with the next message', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(1, { appletError: 'abort: reading is zero' });
    append(3);
    const { delivered } = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 'all answered');
    expect(outbox.stats()).toMatchObject({ rejected: 1, delivered: 2 });
    expect(r.received.map((x) => x.seq)).toEqual([2, 3]);
    expect(delivered[0]).toMatchObject({ seq: 1, rejected: true, reason: 'applet: abort: reading is zero' });
  });

  it('delivers the backlog in order once a receiver that was down comes back', async () => {
    const { id, outbox, append } = setup();
    // Reserve a port, then close it: connections are refused until the receiver starts there.
    const probe = http.createServer();
    await new Promise<void>((res) => probe.listen(0, '127.0.0.1', () => res()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((res) => probe.close(() => res()));
    append(30);
    const { p, logs } = publisher(outbox, id, `http://127.0.0.1:${port}/srv-applet-mgr/v0/event/p`);
    await until(() => p.state().failures >= 3, 'a few refused attempts');
    expect(p.state()).toMatchObject({ state: 'retrying', errorKey: 'ECONNREFUSED', waiting: 30 });
    expect(logs[0]).toMatch(/^publish state=retrying reason="ECONNREFUSED" waiting=30 advice="no answer from the publish URL/);
    const r = await startDevReceiver({ port, project: 'p', token: TOKEN });
    onCleanup(() => r.close());
    await until(() => outbox.waiting() === 0, 'backlog delivered');
    expect(r.received.map((x) => x.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('follows the backoff schedule: doubling, capped, reset by a success', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(5, { status: 503 });
    append(1);
    const { states } = publisher(outbox, id, r.url, { now: () => 0, random: () => 0, backoff: { baseMs: 40, maxMs: 160 } });
    await until(() => outbox.waiting() === 0, 'delivery');
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
    await until(() => r.received.length === 1, 'first request in flight');
    outbox.close(); // the answer arrives after this: markDelivered throws
    await until(() => p.state().state === 'failing', 'failing');
    expect(p.state()).toMatchObject({ errorKey: 'OutboxError', advice: expect.stringMatching(/restart the meter/), waiting: 2 });
  });

  it('counts the attempts that did not deliver a message, on the message', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.answerNext(3, { status: 500 });
    append(2);
    const { p } = publisher(outbox, id, r.url, { backoff: { baseMs: 10, maxMs: 10 } });
    await until(() => p.state().failures === 3, 'three failures');
    await p.stop();
    expect(outbox.peek(2).map((m) => [m.seq, m.attempts])).toEqual([
      [1, 3],
      [2, 0],
    ]);
  });
});

describe('publisher against misbehaving loopback servers', () => {
  it('a connection reset mid-request is transient and the message is resent', async () => {
    const { id, outbox, append } = setup();
    const ok = await httpServer((_n, _r, _b, res) => okAnswer(res));
    const tcp = await tcpServer((n, socket) => (n <= 2 ? socket.resetAndDestroy() : socket.end()));
    append(1);
    const { p, states } = publisher(outbox, id, tcp.url);
    await until(() => tcp.requests() >= 2 && p.state().failures >= 2, 'two resets');
    expect(states[0]).toMatchObject({ state: 'retrying', errorKey: 'ECONNRESET', waiting: 1 });
    await p.stop();
    publisher(outbox, id, ok.url);
    await until(() => outbox.waiting() === 0, 'delivered elsewhere');
    expect(ok.seen[0]!.url).toContain(`eventID=${id.deviceId}-1`);
  });

  it('an answer that is not HTTP at all is transient', async () => {
    const { id, outbox, append } = setup();
    const tcp = await tcpServer((_n, socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    append(1);
    const { p } = publisher(outbox, id, tcp.url);
    await until(() => p.state().failures >= 1, 'a failure');
    expect(p.state()).toMatchObject({ state: 'retrying', waiting: 1 });
  });

  it('a 201 cut off in the middle of its body is not an answer: the reading is kept and sent again', async () => {
    const { id, outbox, append } = setup();
    const tcp = await tcpServer((_n, socket) => {
      socket.write('HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"channel":"p","res');
      setTimeout(() => socket.destroy(), 20);
    });
    append(1);
    const { p } = publisher(outbox, id, tcp.url);
    await until(() => p.state().failures >= 2, 'two cut answers');
    expect(p.state()).toMatchObject({ state: 'retrying', reason: 'not a W3bstream answer (cut short)', waiting: 1 });
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
    await until(() => p.state().state === 'failing', 'redirect refused');
    expect(states[0]).toMatchObject({ state: 'retrying', reason: 'HTTP 500' });
    expect(p.state()).toMatchObject({ errorKey: 'HTTP 307', waiting: 1, advice: expect.stringMatching(/final URL/) });
    expect(elsewhere.seen).toHaveLength(0);
  });

  it('stop() is prompt while a request hangs and while backing off, and keeps the message', async () => {
    const { id, outbox, append } = setup();
    const tcp = await tcpServer(() => undefined); // reads the request, never answers
    append(1);
    const hung = publisher(outbox, id, tcp.url, { timeoutMs: 30_000 });
    await until(() => tcp.requests() === 1, 'request sent');
    let t0 = Date.now();
    await hung.p.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(outbox.peek(1)[0]).toMatchObject({ seq: 1, attempts: 1 });
    const refused = publisher(outbox, id, 'http://127.0.0.1:9/srv-applet-mgr/v0/event/p', { backoff: { baseMs: 60_000, maxMs: 60_000 } });
    await until(() => refused.p.state().state === 'retrying', 'backing off');
    t0 = Date.now();
    await refused.p.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(outbox.waiting()).toBe(1);
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
      await until(() => x.p.state().state === until_, until_);
      await x.p.stop();
      said.push(...x.logs, ...x.states.map((s) => JSON.stringify(s)), JSON.stringify(x.p.state()));
    }
    r.answerNext(1, { status: 500 });
    const good = publisher(outbox, id, r.url);
    await until(() => outbox.waiting() === 0, 'delivered');
    said.push(...good.logs, ...good.states.map((s) => JSON.stringify(s)), ...good.delivered.map((d) => JSON.stringify(d)));
    expect(said.length).toBeGreaterThan(8);
    for (const text of said) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('wrong-but-secret');
    }
  });
});

describe('kill -9', () => {
  it('killed in the middle of a delivery and restarted: every stored message arrives, duplicates only with the same eventID', async () => {
    const dir = tempDir('kill-');
    const r = await startDevReceiver({ project: 'p', token: 'tok' });
    onCleanup(() => r.close());
    r.delayMs(400); // the receiver records a message, then holds its answer: a kill now lands mid-delivery
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'publish-worker.mjs');
    const first = spawn(process.execPath, [worker, dir, r.url, '20'], { stdio: 'pipe' });
    await until(() => r.received.length >= 3, '3 deliveries');
    first.kill('SIGKILL');
    await new Promise((res) => first.once('exit', res));
    r.delayMs(0);
    const second = spawn(process.execPath, [worker, dir, r.url, '5'], { stdio: 'pipe' });
    let out = '';
    second.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((res) => second.once('exit', res));
    expect(code).toBe(0);
    expect(out).toContain('appended 21'); // numbering continues after the crash
    const seqs = r.received.map((x) => x.seq!);
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // In order, apart from the resend of what was in flight at the kill.
    expect(r.received.filter((x) => !x.duplicate).map((x) => x.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // The message whose answer was held at the kill arrived again after the restart.
    expect(r.received.filter((x) => x.duplicate).map((x) => x.seq)).toEqual([3]);
    // Any duplicate is the same event: same eventID, same body.
    const bySeq = new Map<number, string>();
    for (const x of r.received) {
      if (bySeq.has(x.seq!)) expect(x.body).toBe(bySeq.get(x.seq!));
      bySeq.set(x.seq!, x.body);
    }
    expect(r.received.every((x) => x.verified)).toBe(true);
  });
});
