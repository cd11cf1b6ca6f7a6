import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { createBodyVerifier } from './codec.js';

/**
 * A local stand-in for a W3bstream event endpoint (design.md "Dev receiver"): the same route
 * (`/srv-applet-mgr/v0/event/<project>`), the same answers (201 + the node's body shape, 401
 * InvalidToken with the node's error body, 201 + InvalidEventChannel for another project),
 * signature verification of every message, an append-only JSON-lines record (one line per event,
 * written before the answer), and switches to misbehave for tests. A test double, not a
 * replacement for W3bstream. Its options are plain data, so a CLI can start it as is.
 */
export interface ReceivedEvent {
  receivedAtMs: number;
  project: string;
  eventType: string;
  /** The eventID query parameter, lower-cased as the node does ('' when absent). */
  eventId: string;
  /** The sequence number at the end of eventID (`<address>-<seq>`), or null. */
  seqFromEventId: number | null;
  /** Same as `seqFromEventId` (the first name). */
  seq: number | null;
  /** True when an event with this eventID arrived before (an at-least-once redelivery). */
  duplicate: boolean;
  sensorReading: number | null;
  timestamp: number | null;
  verified: boolean;
  reason: string | null;
  publicKey: string | null;
  /** Address derived from the public key. */
  deviceId: string | null;
  /** What the emulated applet answered for it (null: accepted). */
  appletError: string | null;
  body: string;
}
/** Same as `ReceivedEvent` (the first name). */
export type ReceivedRecord = ReceivedEvent;

export interface Misbehaviour {
  /** Answer the next N requests with this HTTP status (and a node-style error body). */
  failNext?: { count: number; status: number };
  /** Delay every answer by this long (0: answer at once). */
  delayMs?: number;
  /** Destroy the connection of the next N requests after reading them, without answering. */
  dropNext?: number;
  /** Answer the next N requests with 201 and a body that is not JSON. */
  garbageNext?: number;
  /** Answer the next N with a 201 whose results carry this applet error (e.g. TrafficLimitExceeded). */
  appletErrorNext?: { count: number; error: string };
}

export interface DevReceiverOptions {
  /** Listen address; loopback by default (it is a development tool). */
  host?: string;
  /** 0 = an ephemeral port. */
  port?: number;
  project?: string;
  /** The publisher token to accept (a local test value). */
  token?: string;
  /** Append one JSON line per received event here. */
  recordFile?: string;
  /** Refuse readings of exactly 0 W like the tutorial applet does (results[].code -1). Default false. */
  rejectZeroReadings?: boolean;
  log?: (line: string) => void;
}

export interface DevReceiver {
  /** The full publish URL, including `/srv-applet-mgr/v0/event/<project>`. */
  url: string;
  port: number;
  received: ReceivedEvent[];
  /** Requests seen on the event route, including refused and misbehaved ones. */
  requests(): number;
  failNext(count: number, status?: number): void;
  delayMs(ms: number): void;
  dropNext(count: number): void;
  garbageNext(count: number): void;
  appletErrorNext(count: number, error: string): void;
  /** Several switches at once (the first API). */
  misbehave(m: Misbehaviour): void;
  close(): Promise<void>;
}

const ROUTE = /^\/srv-applet-mgr\/v0\/event\/([^/?]+)$/;

export async function startDevReceiver(opts: DevReceiverOptions = {}): Promise<DevReceiver> {
  const project = opts.project ?? 'demo';
  const token = opts.token ?? 'dev-token';
  const host = opts.host ?? '127.0.0.1';
  const received: ReceivedEvent[] = [];
  const verifyBody = createBodyVerifier();
  const seen = new Set<string>();
  let requests = 0;
  let delay = 0;
  let fail = { count: 0, status: 500 };
  let drop = 0;
  let garbage = 0;
  let appletError = { count: 0, error: '' };
  let recordFd: number | null = null;
  if (opts.recordFile) {
    mkdirSync(dirname(opts.recordFile), { recursive: true });
    recordFd = openSync(opts.recordFile, 'a');
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined); // a client that hangs up mid-request is not our problem
    req.on('end', () => {
      const answer = (status: number, body: unknown): void => {
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        const send = (): void => {
          if (res.destroyed) return;
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(text);
        };
        if (delay > 0) setTimeout(send, delay);
        else send();
      };
      const url = new URL(req.url ?? '/', 'http://localhost');
      const route = ROUTE.exec(url.pathname);
      if (req.method !== 'POST' || !route) return answer(404, { key: 'NotFound', code: 404000000, msg: 'NotFound', desc: `no route ${req.method} ${url.pathname}` });
      requests++;
      if (drop > 0) {
        drop--;
        req.socket.destroy();
        return;
      }
      if (fail.count > 0) {
        fail.count--;
        const st = fail.status;
        return answer(st, { key: st >= 500 ? 'InternalServerError' : 'Failure', code: st * 1_000_000, msg: 'injected failure', desc: 'dev receiver misbehaving on purpose' });
      }
      // The node takes the token from the header, or from ?authorization= (w3bstream.md section 1).
      const q = url.searchParams.get('authorization');
      const auth = req.headers.authorization ?? (q ? `Bearer ${q}` : '');
      if (auth !== `Bearer ${token}`) return answer(401, { key: 'InvalidToken', code: 401999003, msg: 'InvalidToken', desc: 'invalid token', canBeTalk: false });
      const eventId = (url.searchParams.get('eventID') ?? '').toLowerCase();
      const eventType = url.searchParams.get('eventType') ?? 'DEFAULT';
      const base = { channel: route[1], publisherID: '1', publisherKey: 'dev', eventID: eventId, timestamp: Date.now() };
      if (route[1] !== project) return answer(201, { ...base, results: [], error: 'InvalidEventChannel' });
      if (garbage > 0) {
        garbage--;
        return answer(201, '<html>not json');
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const v = verifyBody(body);
      const seqText = /-(\d+)$/.exec(eventId)?.[1];
      const seq = seqText === undefined ? null : Number(seqText);
      const result = (code: number, error?: string | null) => ({ appletName: 'dev', instanceID: 1, handler: 'start', returnValue: null, code, ...(error ? { error } : {}) });
      if (appletError.count > 0) {
        appletError.count--;
        return answer(201, { ...base, results: [result(-1, appletError.error)] });
      }
      // Like the tutorial applet: a message that does not verify is refused by the applet.
      const refusal = !v.ok ? v.reason : opts.rejectZeroReadings && v.sensorReading === 0 ? 'sensor_reading must not be 0' : null;
      const record: ReceivedEvent = {
        receivedAtMs: Date.now(),
        project: route[1]!,
        eventType,
        eventId,
        seqFromEventId: seq,
        seq,
        duplicate: eventId !== '' && seen.has(eventId),
        sensorReading: v.sensorReading,
        timestamp: v.timestamp,
        verified: v.ok,
        reason: v.reason,
        publicKey: v.publicKeyHex,
        deviceId: v.deviceId,
        appletError: refusal,
        body,
      };
      if (eventId !== '') seen.add(eventId);
      received.push(record);
      // Written (to the OS) before answering, so whoever tails the file sees every acknowledged event.
      if (recordFd !== null) writeSync(recordFd, `${JSON.stringify(record)}\n`);
      opts.log?.(`received seq=${seq ?? '?'} event_id=${eventId || '-'} reading=${v.sensorReading ?? '?'} verified=${v.ok}${record.duplicate ? ' duplicate' : ''}${v.reason ? ` reason="${v.reason}"` : ''}`);
      return answer(201, { ...base, results: [result(refusal ? -1 : 0, refusal)] });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const self: DevReceiver = {
    url: `http://${urlHost}:${port}/srv-applet-mgr/v0/event/${project}`,
    port,
    received,
    requests: () => requests,
    failNext: (count, status = 500) => void (fail = { count, status }),
    delayMs: (ms) => void (delay = ms),
    dropNext: (count) => void (drop = count),
    garbageNext: (count) => void (garbage = count),
    appletErrorNext: (count, error) => void (appletError = { count, error }),
    misbehave(m) {
      if (m.failNext) self.failNext(m.failNext.count, m.failNext.status);
      if (m.delayMs !== undefined) self.delayMs(m.delayMs);
      if (m.dropNext !== undefined) self.dropNext(m.dropNext);
      if (m.garbageNext !== undefined) self.garbageNext(m.garbageNext);
      if (m.appletErrorNext) self.appletErrorNext(m.appletErrorNext.count, m.appletErrorNext.error);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          if (recordFd !== null) closeSync(recordFd);
          recordFd = null;
          resolve();
        });
      }),
  };
  return self;
}
