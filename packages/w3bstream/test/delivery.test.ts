import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox, OutboxLockedError, Publisher, buildMessage, classifyAnswer, loadOrCreateIdentity, startDevReceiver, type DevReceiver } from '../src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached in time');
    await sleep(10);
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(maxCount?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
  const id = loadOrCreateIdentity(join(dir, 'identity'));
  const outbox = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'), { maxCount });
  cleanups.push(() => outbox.close());
  const append = (n: number) => {
    for (let i = 0; i < n; i++) outbox.append(buildMessage(id, { powerW: i + 0.5, timestampMs: 1_764_000_000_000 + i * 5000 }).body);
  };
  return { dir, id, outbox, append };
}

async function receiver(): Promise<DevReceiver> {
  const r = await startDevReceiver({ project: 'p', token: 'tok' });
  cleanups.push(() => r.close());
  return r;
}

function publisher(outbox: Outbox, url: string, address: string, extra: Partial<ConstructorParameters<typeof Publisher>[0]> = {}) {
  const p = new Publisher({ outbox, url, token: 'tok', deviceAddress: address, backoffBaseMs: 10, backoffMaxMs: 50, configRetryMs: 50, timeoutMs: 500, ...extra });
  cleanups.push(() => p.stop());
  p.start();
  return p;
}

describe('classification of node answers (w3bstream.md section 4)', () => {
  it('treats 201s with errors and applet results correctly', () => {
    expect(classifyAnswer(201, '{"results":[{"code":0}]}').kind).toBe('delivered');
    expect(classifyAnswer(201, '{"results":[]}').kind).toBe('delivered');
    expect(classifyAnswer(201, '{"error":"InvalidEventChannel","results":[]}')).toMatchObject({ kind: 'config', reason: 'InvalidEventChannel', errorKey: 'InvalidEventChannel' });
    expect(classifyAnswer(201, '{"results":[{"code":-1,"error":"x TrafficLimitExceeded"}]}')).toMatchObject({ kind: 'transient', reason: 'TrafficLimitExceeded' });
    expect(classifyAnswer(201, '{"results":[{"code":-1,"error":"InstanceNotRunning"}]}').kind).toBe('transient');
    expect(classifyAnswer(201, '{"results":[{"code":-1,"error":"abort: zero reading"}]}')).toMatchObject({ kind: 'rejected', reason: 'applet: abort: zero reading' });
    expect(classifyAnswer(401, '{"key":"InvalidToken","code":401999003}')).toMatchObject({ kind: 'config', reason: 'InvalidToken' });
    expect(classifyAnswer(404, '{"key":"AccessKeyNotFound"}').reason).toBe('AccessKeyNotFound');
    expect(classifyAnswer(403, '{"key":"AccessKeyExpired"}').kind).toBe('config');
    expect(classifyAnswer(503, 'busy').kind).toBe('transient');
    expect(classifyAnswer(201, 'not json')).toMatchObject({ kind: 'delivered', note: 'HTTP 201 with an unparseable body' });
    expect(classifyAnswer(202, 'not json').kind).toBe('transient');
  });
});

describe('durable outbox', () => {
  it('numbers messages in order and never reuses a number after reopening', () => {
    const { dir, outbox, append } = setup();
    append(3);
    expect(outbox.peek(10).map((m) => m.seq)).toEqual([1, 2, 3]);
    outbox.ack(1);
    outbox.ack(2);
    outbox.ack(3);
    outbox.close();
    const again = Outbox.open(join(dir, 'outbox', 'outbox.sqlite'));
    cleanups.push(() => again.close());
    expect(again.append('{}').seq).toBe(4);
    expect(again.stats()).toMatchObject({ waiting: 1, delivered: 3, nextSeq: 5 });
  });

  it('drops the oldest when full and counts every drop', () => {
    const { outbox, append } = setup(10);
    append(15);
    expect(outbox.stats()).toMatchObject({ waiting: 10, dropped: 5 });
    expect(outbox.peek(1)[0]!.seq).toBe(6);
  });

  it('drops messages older than the age bound, counted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    let now = 1_000_000;
    const outbox = Outbox.open(join(dir, 'o.sqlite'), { maxAgeMs: 60_000, nowMs: () => now });
    cleanups.push(() => outbox.close());
    outbox.append('a');
    now += 61_000;
    outbox.append('b');
    expect(outbox.stats()).toMatchObject({ waiting: 1, dropped: 1 });
  });

  it('refuses a second process on the same database', () => {
    const { dir } = setup();
    expect(() => Outbox.open(join(dir, 'outbox', 'outbox.sqlite'))).toThrow(OutboxLockedError);
  });

  it('runs the caller\'s update in the same transaction as the append', () => {
    const { outbox } = setup();
    outbox.db.exec('CREATE TABLE totals (n INTEGER)');
    expect(() => outbox.append('x', () => outbox.db.exec('INSERT INTO nope VALUES (1)'))).toThrow();
    expect(outbox.stats().waiting).toBe(0);
    expect(outbox.append('y', (seq) => outbox.db.prepare('INSERT INTO totals VALUES (?)').run(seq)).seq).toBe(1);
  });
});

describe('publisher against the dev receiver', () => {
  it('delivers in order with eventID = address-seq, and every message verifies', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    append(20);
    const p = publisher(outbox, r.url, id.address);
    await until(() => r.received.length === 20);
    expect(r.received.map((x) => x.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(r.received.every((x) => x.verified && x.eventId === `${id.address}-${x.seq}` && x.eventType === 'DEFAULT')).toBe(true);
    await until(() => p.state().waiting === 0);
    expect(p.state()).toMatchObject({ state: 'ok', waiting: 0, lastAttempt: 'Success' });
  });

  it('survives 500s, hanging answers, reset connections and garbage, losing and reordering nothing', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.misbehave({ failNext: { count: 3, status: 500 }, dropNext: 2, garbageNext: 1, appletErrorNext: { count: 2, error: 'TrafficLimitExceeded' } });
    append(10);
    const states: string[] = [];
    publisher(outbox, r.url, id.address, { onState: (s) => states.push(s.state) });
    await until(() => outbox.stats().waiting === 0);
    // The garbage answer counts as delivered (201) but was not recorded by the receiver.
    const seqs = r.received.map((x) => x.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a! - b!));
    expect(new Set([...seqs, 1]).size).toBe(10);
    expect(states).toContain('retrying');
  });

  it('times out answers that hang and retries the same eventID', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.misbehave({ delayMs: 800 });
    append(1);
    const p = publisher(outbox, r.url, id.address, { timeoutMs: 200 });
    await until(() => p.state().state === 'retrying');
    expect(p.state().reason).toBe('timeout 200 ms');
    r.misbehave({ delayMs: 0 });
    await until(() => outbox.stats().waiting === 0);
    expect(new Set(r.received.map((x) => x.eventId)).size).toBe(1);
  });

  it('reports a bad token and an unknown project as failing with the node error key, keeping the data', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    append(2);
    const bad = publisher(outbox, r.url, id.address, { token: 'wrong' });
    await until(() => bad.state().state === 'failing');
    expect(bad.state()).toMatchObject({ reason: 'InvalidToken', waiting: 2 });
    await bad.stop();
    const wrongProject = publisher(outbox, r.url.replace(/\/p$/, '/other'), id.address);
    await until(() => wrongProject.state().state === 'failing');
    expect(wrongProject.state()).toMatchObject({ reason: 'InvalidEventChannel', waiting: 2 });
  });

  it('counts an applet refusal as delivered-but-rejected and goes on with the next message', async () => {
    const { id, outbox, append } = setup();
    const r = await receiver();
    r.misbehave({ appletErrorNext: { count: 1, error: 'abort: reading is zero' } });
    append(3);
    publisher(outbox, r.url, id.address);
    await until(() => outbox.stats().waiting === 0);
    expect(outbox.stats()).toMatchObject({ rejected: 1, delivered: 2 });
    expect(r.received.map((x) => x.seq)).toEqual([2, 3]);
  });

  it('delivers the backlog in order once a receiver that was down comes back', async () => {
    const { id, outbox, append } = setup();
    // Reserve a port, then close it: connections are refused until the receiver starts there.
    const probe = http.createServer();
    await new Promise<void>((res) => probe.listen(0, '127.0.0.1', () => res()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((res) => probe.close(() => res()));
    append(30);
    const p = publisher(outbox, `http://127.0.0.1:${port}/srv-applet-mgr/v0/event/p`, id.address);
    await until(() => p.state().state === 'retrying');
    expect(p.state().reason).toBe('ECONNREFUSED');
    await sleep(300);
    const r = await startDevReceiver({ port, project: 'p', token: 'tok' });
    cleanups.push(() => r.close());
    await until(() => outbox.stats().waiting === 0);
    expect(r.received.map((x) => x.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('after kill -9 in the middle of a delivery, every stored message arrives (duplicates only with the same eventID)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kill-'));
    const r = await receiver();
    r.misbehave({ delayMs: 150 });
    const worker = join(import.meta.dirname, 'fixtures', 'publish-worker.mjs');
    const first = spawn(process.execPath, [worker, dir, r.url, '20'], { stdio: 'pipe' });
    await until(() => r.received.length >= 3);
    first.kill('SIGKILL');
    await new Promise((res) => first.once('exit', res));
    r.misbehave({ delayMs: 0 });
    const second = spawn(process.execPath, [worker, dir, r.url, '5'], { stdio: 'pipe' });
    let out = '';
    second.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((res) => second.once('exit', res));
    expect(code).toBe(0);
    expect(out).toContain('appended 21');
    const seqs = r.received.map((x) => x.seq!);
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    // Any duplicate is the same event: same eventID and the same body.
    const bySeq = new Map<number, string>();
    for (const x of r.received) {
      if (bySeq.has(x.seq!)) expect(bySeq.get(x.seq!)).toBe(x.body);
      bySeq.set(x.seq!, x.body);
    }
    expect(r.received.every((x) => x.verified)).toBe(true);
  });
});
