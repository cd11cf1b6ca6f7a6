import { appendFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyBody } from './codec.js';

/**
 * A local stand-in for a W3bstream event endpoint (design.md "Dev receiver"): the same route,
 * the same answers (201 + node body, 401 InvalidToken, 201 + InvalidEventChannel), signature
 * verification of every message, an append-only JSON-lines record, and switches to misbehave
 * for tests. A test double, not a replacement for W3bstream.
 */
export interface ReceivedRecord {
  receivedAtMs: number;
  project: string;
  eventType: string;
  eventId: string;
  /** The sequence number at the end of eventID (`<address>-<seq>`), or null. */
  seq: number | null;
  sensorReading: number | null;
  timestamp: number | null;
  verified: boolean;
  reason: string | null;
  publicKey: string | null;
  body: string;
}

export interface Misbehaviour {
  /** Answer the next N requests with this HTTP status (and a node-style error body). */
  failNext?: { count: number; status: number };
  /** Delay every answer by this long. */
  delayMs?: number;
  /** Destroy the connection of the next N requests without answering. */
  dropNext?: number;
  /** Answer the next N requests with 201 and a body that is not JSON. */
  garbageNext?: number;
  /** Answer the next N with a 201 whose results carry this applet error (e.g. TrafficLimitExceeded). */
  appletErrorNext?: { count: number; error: string };
}

export interface DevReceiverOptions {
  port?: number;
  host?: string;
  project?: string;
  token?: string;
  recordFile?: string;
  log?: (line: string) => void;
}

export interface DevReceiver {
  url: string;
  port: number;
  received: ReceivedRecord[];
  misbehave(m: Misbehaviour): void;
  close(): Promise<void>;
}

const ROUTE = /^\/srv-applet-mgr\/v0\/event\/([^/?]+)$/;

export async function startDevReceiver(opts: DevReceiverOptions = {}): Promise<DevReceiver> {
  const project = opts.project ?? 'demo';
  const token = opts.token ?? 'dev-token';
  const received: ReceivedRecord[] = [];
  let mis: Misbehaviour = {};

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = (status: number, body: unknown): void => {
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        const send = (): void => {
          if (res.destroyed) return;
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(text);
        };
        if (mis.delayMs) setTimeout(send, mis.delayMs);
        else send();
      };
      const url = new URL(req.url ?? '/', 'http://localhost');
      const route = ROUTE.exec(url.pathname);
      if (req.method !== 'POST' || !route) return answer(404, { key: 'NotFound', code: 404000000, msg: 'NotFound', desc: `no route ${req.method} ${url.pathname}` });
      if (mis.dropNext) {
        mis.dropNext--;
        req.socket.destroy();
        return;
      }
      if (mis.failNext && mis.failNext.count > 0) {
        mis.failNext.count--;
        const st = mis.failNext.status;
        return answer(st, { key: st >= 500 ? 'InternalServerError' : 'Failure', code: st * 1_000_000, msg: 'injected failure', desc: 'dev receiver misbehaving on purpose' });
      }
      const auth = req.headers.authorization ?? (url.searchParams.get('authorization') ? `Bearer ${url.searchParams.get('authorization')}` : '');
      if (auth !== `Bearer ${token}`) return answer(401, { key: 'InvalidToken', code: 401999003, msg: 'InvalidToken', desc: 'invalid token', canBeTalk: false });
      const eventId = (url.searchParams.get('eventID') ?? '').toLowerCase();
      const eventType = url.searchParams.get('eventType') ?? 'DEFAULT';
      const base = { channel: route[1], publisherID: '1', publisherKey: 'dev', eventID: eventId, timestamp: Date.now() };
      if (route[1] !== project) return answer(201, { ...base, results: [], error: 'InvalidEventChannel' });
      if (mis.garbageNext) {
        mis.garbageNext--;
        return answer(201, '<html>not json');
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const v = verifyBody(body);
      const seqText = /-(\d+)$/.exec(eventId)?.[1];
      const record: ReceivedRecord = {
        receivedAtMs: Date.now(),
        project: route[1]!,
        eventType,
        eventId,
        seq: seqText === undefined ? null : Number(seqText),
        sensorReading: v.sensorReading,
        timestamp: v.timestamp,
        verified: v.ok,
        reason: v.reason,
        publicKey: v.publicKey,
        body,
      };
      if (mis.appletErrorNext && mis.appletErrorNext.count > 0) {
        mis.appletErrorNext.count--;
        return answer(201, { ...base, results: [{ appletName: 'dev', instanceID: 1, handler: 'start', returnValue: null, code: -1, error: mis.appletErrorNext.error }] });
      }
      received.push(record);
      if (opts.recordFile) appendFileSync(opts.recordFile, `${JSON.stringify(record)}\n`);
      opts.log?.(`received seq=${record.seq ?? '?'} reading=${record.sensorReading ?? '?'} verified=${v.ok}${v.reason ? ` reason="${v.reason}"` : ''}`);
      // Like the tutorial applet: a message that does not verify is refused by the applet (code -1).
      const result = v.ok
        ? { appletName: 'dev', instanceID: 1, handler: 'start', returnValue: null, code: 0 }
        : { appletName: 'dev', instanceID: 1, handler: 'start', returnValue: null, code: -1, error: v.reason };
      return answer(201, { ...base, results: [result] });
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}/srv-applet-mgr/v0/event/${project}`,
    port,
    received,
    misbehave(m) {
      mis = { ...mis, ...m };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
