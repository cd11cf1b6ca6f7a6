import { type AnswerContext, classifyAnswer, type Verdict } from './classify.js';
import { MESSAGE_ROUTE, TASK_ROUTE } from './apinode.js';
import { classifyAnswerV2, classifyTaskAnswer } from './classify-v2.js';

/**
 * What differs between the W3bstream node generations, behind one publisher loop: how a stored
 * message becomes an HTTP request, and what the answer means. The outbox, ordering, backoff,
 * states and stop() are the publisher's and the same for both. The stored body is sent as is by
 * both: it is already the signed, final request body, so a resend is byte-identical.
 */
export type TransportName = 'w3bstream-v1' | 'w3bstream-v2';
export const TRANSPORT_NAMES: readonly TransportName[] = ['w3bstream-v1', 'w3bstream-v2'];

export interface Transport {
  readonly name: TransportName;
  /** URL and headers for a stored message (called at every attempt: the same message gives the same request). */
  request(base: URL, seq: number): { url: string; headers: Record<string, string> };
  /** The answer, classified (pure). */
  classify(status: number, bodyText: string, ctx: AnswerContext): Verdict;
  /** How logs and events name a message: the eventID for v1 (`<device>-<seq>`), `seq-<n>` for v2 (the node has no message id). */
  messageId(seq: number): string;
}

/**
 * W3bstream v1 (the applet manager's event route): eventType and the stable eventID in the query,
 * the publisher token as a Bearer header. The token is held here and nowhere else in the loop.
 */
export function w3bstreamV1Transport(opts: { token?: string; deviceId: string; eventType?: string }): Transport {
  const eventType = opts.eventType ?? 'DEFAULT';
  const deviceId = opts.deviceId.toLowerCase();
  const messageId = (seq: number): string => `${deviceId}-${seq}`;
  return {
    name: 'w3bstream-v1',
    messageId,
    request(base, seq) {
      const u = new URL(base);
      u.searchParams.set('eventType', eventType);
      u.searchParams.set('eventID', messageId(seq));
      const headers: Record<string, string> = {};
      if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
      return { url: u.toString(), headers };
    },
    classify: (status, text, ctx) => classifyAnswer(status, text, { ...ctx, eventType }),
  };
}

/**
 * The two W3bstream 2 node APIs: `task` (`POST <node>/v1/task`, the current node, docs/w3bstream.md
 * 9a) and `message` (`POST <node>/message`, nodes older than v0.17, 9b). A stored body is signed
 * for one of them.
 */
export type V2Dialect = 'task' | 'message';
export const V2_DIALECTS: readonly V2Dialect[] = ['task', 'message'];

/** The dialect a publish URL asks for, by how its path ends (`/v1/task` or `/message`); null: neither. */
export function v2DialectOfUrl(url: string | URL): V2Dialect | null {
  const path = (typeof url === 'string' ? new URL(url) : url).pathname.replace(/\/+$/, '');
  if (path.endsWith(TASK_ROUTE)) return 'task';
  if (path.endsWith(MESSAGE_ROUTE)) return 'message';
  return null;
}

/**
 * W3bstream 2 (the apinode): the URL as configured, no token (the node identifies the device by
 * the address it recovers from the signature inside the body). Default dialect: `task`.
 */
export function w3bstreamV2Transport(opts: { dialect?: V2Dialect } = {}): Transport {
  const dialect = opts.dialect ?? 'task';
  return {
    name: 'w3bstream-v2',
    messageId: (seq) => `seq-${seq}`,
    request: (base) => ({ url: base.toString(), headers: {} }),
    classify: dialect === 'task' ? classifyTaskAnswer : classifyAnswerV2,
  };
}

/**
 * Which transport a stored body was signed for (null: neither form), from its first bytes: both
 * codecs write their bodies in a fixed field order (`{"data":` for v1, `{"nonce":` or `{"projectID":` for v2).
 * A backlog signed for one node cannot be sent to the other: its signature covers other bytes.
 */
export function transportOfBody(body: string): TransportName | null {
  if (body.startsWith('{"projectID":') || body.startsWith('{"nonce":')) return 'w3bstream-v2';
  if (body.startsWith('{"data":')) return 'w3bstream-v1';
  return null;
}

/** Which W3bstream 2 dialect a stored body was signed for (`{"nonce":` task, `{"projectID":` message); null for others. */
export function v2DialectOfBody(body: string): V2Dialect | null {
  if (body.startsWith('{"nonce":')) return 'task';
  if (body.startsWith('{"projectID":')) return 'message';
  return null;
}
