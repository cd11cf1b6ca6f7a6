/**
 * The event route's answers, as pure functions: which request reaches which project and
 * eventType, and the bodies the node answers with (w3bstream v1 `EventRsp` and its error body).
 * The HTTP server only moves bytes.
 */
import { randomUUID } from 'node:crypto';

export const EVENT_ROUTE = /^\/srv-applet-mgr\/v0\/event\/([^/?]+)$/;

export interface EventRequest {
  method: string;
  /** Path and query, as in the request line. */
  url: string;
  authorization: string | undefined;
}

export interface ProjectIdentity {
  name: string;
  publisherToken: string;
  publisherId: string;
  publisherKey: string;
}

export type Routing =
  | { kind: 'answer'; status: number; body: unknown }
  | { kind: 'dispatch'; channel: string; eventType: string; eventId: string; timestampMs: number };

export interface AppletResult {
  appletName: string;
  instanceID: string;
  handler: string;
  returnValue: null;
  code: number;
  error?: string;
}

/** The node's error body: the HTTP status is the first three digits of `code`. */
export function errorBody(
  key: string,
  code: number,
  desc: string,
): { key: string; code: number; msg: string; desc: string; canBeTalk: boolean } {
  return { key, code, msg: key, desc, canBeTalk: false };
}

/**
 * Routes one request. The token may come as `Authorization: Bearer …` or `?authorization=`
 * (the query wins, and `Bearer ` is optional); the token is checked before the project name, so
 * a valid token with a wrong name gets 201 + InvalidEventChannel, as on the node.
 */
export function routeEvent(req: EventRequest, project: ProjectIdentity, nowMs: number): Routing {
  const url = new URL(req.url, 'http://localhost');
  const route = EVENT_ROUTE.exec(url.pathname);
  if (!route || req.method !== 'POST')
    return { kind: 'answer', status: 404, body: errorBody('NotFound', 404000000, `no route ${req.method} ${url.pathname}`) };
  const raw = url.searchParams.get('authorization') ?? req.authorization ?? '';
  const token = raw.replace(/^Bearer /, '');
  if (token === '' || token !== project.publisherToken)
    return { kind: 'answer', status: 401, body: errorBody('InvalidToken', 401999002, 'invalid token') };
  const eventId = (url.searchParams.get('eventID') || `${randomUUID()}_w3b`).toLowerCase();
  const eventType = url.searchParams.get('eventType') || 'DEFAULT';
  // The node keeps the publisher's timestamp (ms) unless it is more than 1e6 ms off its own clock.
  const ts = Number(url.searchParams.get('timestamp'));
  const timestampMs = Number.isFinite(ts) && ts > 0 && Math.abs(ts - nowMs) <= 1_000_000 ? ts : nowMs;
  const channel = decodeURIComponent(route[1]!);
  if (channel !== project.name) {
    return {
      kind: 'answer',
      status: 201,
      body: { ...answerHead(channel, project, eventId, timestampMs), results: null, error: 'InvalidEventChannel' },
    };
  }
  return { kind: 'dispatch', channel, eventType, eventId, timestampMs };
}

function answerHead(channel: string, project: ProjectIdentity, eventId: string, timestampMs: number) {
  return { channel, publisherID: project.publisherId, publisherKey: project.publisherKey, eventID: eventId, timestamp: timestampMs };
}

/** The 201 body for a dispatched event: `results` is null when no strategy matched. */
export function eventAnswer(
  d: { channel: string; eventId: string; timestampMs: number },
  project: ProjectIdentity,
  results: AppletResult[],
): unknown {
  return { ...answerHead(d.channel, project, d.eventId, d.timestampMs), results: results.length > 0 ? results : null };
}

/** One strategy's outcome as the node reports it (`error` omitted when empty). */
export function appletResult(appletName: string, instanceId: string, handler: string, code: number, error: string | null): AppletResult {
  return { appletName, instanceID: instanceId, handler, returnValue: null, code, ...(error ? { error } : {}) };
}
