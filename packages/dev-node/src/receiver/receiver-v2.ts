import { randomBytes } from 'node:crypto';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { readingOfData, checkMessageV2, type MessageV2Check } from '@power-meter/w3bstream';
import { answerBetween, type DevAnswerMode, type EventAnswer, type EventRequest, type ReceivedEvent } from './exchange.js';

/**
 * The dev receiver's W3bstream 2 mode: the apinode's `POST /message` (cmd/apinode/api/http.go),
 * pure. The request is checked as the node checks it (`checkMessageV2`: decode, required fields,
 * re-marshal, keccak256, recover the signer); a valid one is answered 200 `{"taskID":"0x…"}`, a
 * refused one 400 `{"error":"…"}`. Other routes get gin's plain-text 404.
 *
 * Misbehaviour modes, where they mean something on this node:
 * - `no-applet`: 200 `{"taskID":""}`, the node's answer while it aggregates messages into a task;
 * - `{ status }`: that status with `{"error":…}`; `{ appletError }`: 400 with that error text
 *   (the node refusing the request);
 * - `html`, `empty`, `oversized`, `drop`: as in v1 (what stands between a meter and a node);
 * - the v1 applet modes (`instance-*`, `wait-timeout`, `traffic-limit`, `malformed-token`) have no
 *   counterpart here: they answer 500 "internal server error; could not save task", the node's
 *   answer when its database fails, i.e. a transient failure.
 */
export const V2_ROUTE = '/message';

/** The modes a command line can pass in W3bstream 2 mode (`wait-timeout`: the node's 500 when it cannot store). */
export const DEV_ANSWER_MODES_V2 = ['normal', 'no-applet', 'wait-timeout', 'html', 'empty', 'oversized', 'drop'] as const;

export function answerMessageV2(
  req: EventRequest,
  mode: DevAnswerMode,
  ctx: { check?: (body: string) => MessageV2Check; seen: (key: string) => boolean; taskId?: () => string },
): EventAnswer {
  const json = (status: number, body: unknown, counted = true): Extract<EventAnswer, { drop: false }> => ({
    drop: false,
    status,
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify(body),
    event: null,
    counted,
  });
  const path = new URL(req.url, 'http://localhost').pathname;
  if (req.method !== 'POST' || path !== V2_ROUTE)
    return { drop: false, status: 404, contentType: 'text/plain', body: '404 page not found', event: null, counted: false };
  const between = answerBetween(mode);
  if (between !== null) return between;
  if (typeof mode === 'object' && 'status' in mode) return json(mode.status, { error: 'dev receiver answering an injected failure' });
  if (typeof mode === 'object') return json(400, { error: mode.appletError });
  if (mode !== 'normal' && mode !== 'no-applet' && mode !== 'oversized')
    return json(500, { error: 'internal server error; could not save task: dev receiver answering an injected failure' });
  const c = (ctx.check ?? checkMessageV2)(req.body);
  const key = c.ok ? c.signature.toLowerCase() : '';
  const taskId = !c.ok ? null : mode === 'no-applet' ? '' : (ctx.taskId ?? randomTaskId)();
  const event: ReceivedEvent = {
    receivedAtMs: req.receivedAtMs,
    project: c.projectId ?? '',
    eventType: '',
    eventId: '',
    seq: null,
    duplicate: key !== '' && ctx.seen(key),
    ...readingOfData(c.data),
    verified: c.ok,
    reason: c.ok ? null : c.error,
    publicKey: c.ok ? c.publicKeyHex : null,
    deviceId: c.ok ? c.deviceId : null,
    // No public_key member on this node: the key is always recovered from the signature.
    publicKeyForm: null,
    curve: c.ok ? 'secp256k1' : null,
    signerMatchesEventId: null,
    handled: c.ok,
    appletError: null,
    body: req.body,
    projectVersion: c.projectVersion,
    data: c.data,
    taskId,
    dedupeKey: key,
  };
  if (!c.ok) return { ...json(400, { error: c.error }), event };
  if (mode === 'oversized') return { ...json(200, { taskID: taskId, padding: 'x'.repeat((1 << 20) + 1024) }), event: null };
  return { ...json(200, { taskID: taskId }), event };
}

/** A task ID like the node's: keccak256 of a random value, `0x` + 64 hex. */
function randomTaskId(): string {
  return `0x${Buffer.from(keccak_256(randomBytes(16))).toString('hex')}`;
}
