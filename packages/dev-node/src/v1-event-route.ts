/**
 * The W3bstream v1 node's event route (the applet manager's `POST /srv-applet-mgr/v0/event/<project>`),
 * written once for the two local stand-ins that answer it: the dev receiver (receiver.ts, which
 * can also misbehave on purpose) and applet-host (which runs a real applet behind it). Pure: a
 * request's method, URL and Authorization header in, the node's answers out. What the node does
 * is in docs/w3bstream.md sections 1 and 4; the token rule is its `jwt.Auth` (the query's
 * `authorization` when it is not empty, else the header; the first `Bearer` removed, then white
 * space trimmed).
 */
import { randomUUID } from 'node:crypto';

export const V1_EVENT_ROUTE = /^\/srv-applet-mgr\/v0\/event\/([^/?]+)$/;

/** What the route reads of a request. */
export interface V1RouteRequest {
  method: string;
  /** Path and query, as in the request line. */
  url: string;
  /** The Authorization header, if any. */
  authorization?: string | undefined;
}

/** The route's path for a project, as the stand-ins print it in their publish URL. */
export function v1EventPath(project: string): string {
  return `/srv-applet-mgr/v0/event/${project}`;
}

/** The node's error body (statusx): the HTTP status is the first three digits of `code`. */
export interface V1ErrorBody {
  key: string;
  code: number;
  msg: string;
  desc: string;
  canBeTalk: boolean;
}

export function v1ErrorBody(key: string, code: number, desc: string): V1ErrorBody {
  return { key, code, msg: key, desc, canBeTalk: false };
}

/** 401 for a missing or wrong publisher token (InvalidToken is 401999002; 401999003 is InvalidClaim). */
export const V1_INVALID_TOKEN: V1ErrorBody = v1ErrorBody('InvalidToken', 401999002, 'InvalidToken');

export type V1RouteMatch = { ok: true; url: URL; channel: string } | { ok: false; status: 404; body: V1ErrorBody };

/** Whether a request is a POST on the event route, and for which project (`channel`, URL-decoded). */
export function matchV1EventRoute(method: string, requestUrl: string): V1RouteMatch {
  const url = new URL(requestUrl, 'http://localhost');
  const route = V1_EVENT_ROUTE.exec(url.pathname);
  if (route === null || method !== 'POST')
    return { ok: false, status: 404, body: v1ErrorBody('NotFound', 404000000, `no route ${method} ${url.pathname}`) };
  return { ok: true, url, channel: decoded(route[1]!) };
}

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Whether the token presented (query first, then the header) is `expected`; an empty one never is. */
export function v1TokenAccepted(url: URL, authorization: string | undefined, expected: string): boolean {
  const raw = url.searchParams.get('authorization') || authorization || '';
  const token = raw.replace('Bearer', ' ').trim();
  return token !== '' && token === expected;
}

export interface V1EventParams {
  /** `eventType`, `DEFAULT` when absent or empty. */
  eventType: string;
  /** `eventID` lower-cased as the node does; null when absent or empty (the node then makes one: newV1EventId). */
  eventId: string | null;
  /** The publisher's `timestamp` (ms) unless it is more than 1e6 ms off `nowMs`, then `nowMs`. */
  timestampMs: number;
}

export function v1EventParams(url: URL, nowMs: number): V1EventParams {
  const eventId = url.searchParams.get('eventID');
  const ts = Number(url.searchParams.get('timestamp'));
  return {
    eventType: url.searchParams.get('eventType') || 'DEFAULT',
    eventId: eventId ? eventId.toLowerCase() : null,
    timestampMs: Number.isFinite(ts) && ts > 0 && Math.abs(ts - nowMs) <= 1_000_000 ? ts : nowMs,
  };
}

/** The eventID the node gives an event sent without one. */
export function newV1EventId(): string {
  return `${randomUUID()}_w3b`;
}

/** One strategy's outcome as the node reports it in `results[]` (`error` omitted when empty). */
export interface V1AppletResult {
  appletName: string;
  instanceID: string;
  handler: string;
  returnValue: null;
  code: number;
  error?: string;
}

export function v1AppletResult(
  appletName: string,
  instanceId: string,
  handler: string,
  code: number,
  error: string | null,
): V1AppletResult {
  return { appletName, instanceID: instanceId, handler, returnValue: null, code, ...(error ? { error } : {}) };
}

/** Who published, as the node names the publisher in its answer (string snowflake ids). */
export interface V1Publisher {
  publisherId: string;
  publisherKey: string;
}

/** The fields every 201 answer (the node's EventRsp) starts with. */
export interface V1AnswerHead {
  channel: string;
  publisherID: string;
  publisherKey: string;
  eventID: string;
  timestamp: number;
}

export function v1AnswerHead(channel: string, publisher: V1Publisher, eventId: string, timestampMs: number): V1AnswerHead {
  return { channel, publisherID: publisher.publisherId, publisherKey: publisher.publisherKey, eventID: eventId, timestamp: timestampMs };
}

/** 201 for a valid token with another project's name: nothing runs. */
export function v1WrongChannelAnswer(head: V1AnswerHead): V1AnswerHead & { results: null; error: 'InvalidEventChannel' } {
  return { ...head, results: null, error: 'InvalidEventChannel' };
}

/** 201 for a dispatched event: `results` is null when no strategy handled it. */
export function v1EventAnswer(
  head: V1AnswerHead,
  results: readonly V1AppletResult[] | null,
): V1AnswerHead & { results: V1AppletResult[] | null } {
  return { ...head, results: results !== null && results.length > 0 ? [...results] : null };
}
