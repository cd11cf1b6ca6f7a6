import type { V1RouteRequest } from '../v1-event-route.js';

/**
 * What the three dev receivers (the v1 event route, the v2 message route, the v2 task route:
 * receiver.ts, receiver-v2.ts, receiver-task.ts) share: the request that came in, the modes they
 * can answer in, the answer, and the record of what was received.
 */

/** One received request, as recorded (`--record`, `DevReceiver.received`). */
export interface ReceivedEvent {
  receivedAtMs: number;
  project: string;
  eventType: string;
  /** The eventID query parameter, lower-cased as the node does ('' when absent). */
  eventId: string;
  /** The sequence number at the end of eventID (`<address>-<seq>`), or null. */
  seq: number | null;
  /** True when an event with this eventID arrived before (an at-least-once redelivery). */
  duplicate: boolean;
  sensorReading: number | null;
  timestamp: number | null;
  /** The extended reading's signed `seq` and `energy_wh` (null: basic reading). */
  signedSeq?: number | null;
  energyWh?: number | null;
  verified: boolean;
  reason: string | null;
  /** The `04…` key: as sent, or recovered from the signature when `public_key` is an address. */
  publicKey: string | null;
  /** The signer's address: derived from the key sent, or the address sent once recovery proved it. */
  deviceId: string | null;
  /** What `public_key` carried: `address` (the original firmware's form) or `key` (null: neither). */
  publicKeyForm: 'address' | 'key' | null;
  /** The signer's curve (null: not verified). */
  curve: 'p256' | 'secp256k1' | null;
  /** Whether the address in the eventID is the signer's (null: no address in the eventID, or no signer). */
  signerMatchesEventId: boolean | null;
  /** False when no applet handled the event (`no-applet` mode: `results: null`). */
  handled: boolean;
  /** What the emulated applet answered for it (null: accepted). */
  appletError: string | null;
  body: string;
  /** W3bstream 2 mode: the project version, the `data` string and the taskID answered (`''` while aggregating, null when refused). */
  projectVersion?: string | null;
  data?: string | null;
  taskId?: string | null;
  /** W3bstream 2 mode: what identifies a resend (the signature: the same message signs the same), '' when refused. */
  dedupeKey?: string;
  /** W3bstream 2 `/v1/task`: the task's nonce as sent (decimal), null when it had none. */
  nonce?: string | null;
  /** W3bstream 2 `/v1/task`: the addresses recovered with recovery id 0 and 1 (the node approves the first approved one). */
  candidates?: [string, string];
}

/**
 * How to answer an event request. `normal` is the node with a running applet; the others are the
 * node's failure answers and what stands between a meter and the node:
 * - `instance-not-loaded` / `instance-stopped` / `wait-timeout` / `traffic-limit`: 201 with
 *   results[].code -1 and the node's strings (`InstanceNotRunning`, `instance not running`,
 *   `wait timeout`, `TrafficLimitExceeded`);
 * - `no-applet`: 201 with `results: null` (no strategy for the eventType);
 * - `malformed-token`: 500 `UnknownError`, the node's answer to a malformed `w3b_…` token;
 * - `html`: 200 text/html (a captive portal's login page); `empty`: 200 with no body;
 *   `oversized`: a 201 JSON answer larger than 1 MiB;
 * - `drop`: the connection is closed without an answer;
 * - `{ status }`: that status with a node-style error body; `{ appletError }`: that applet error.
 */
export type DevAnswerMode =
  | 'normal'
  | 'instance-not-loaded'
  | 'instance-stopped'
  | 'wait-timeout'
  | 'traffic-limit'
  | 'no-applet'
  | 'malformed-token'
  | 'html'
  | 'empty'
  | 'oversized'
  | 'drop'
  | 'not-from-node'
  | { status: number }
  | { appletError: string };

/** A request to a dev receiver: what the route reads (V1RouteRequest), the body, when it came. */
export interface EventRequest extends V1RouteRequest {
  body: string;
  receivedAtMs: number;
}

export type EventAnswer =
  | { drop: true; event: null; counted: boolean }
  | { drop: false; status: number; contentType: string; body: string; event: ReceivedEvent | null; counted: boolean };

/**
 * What stands between a meter and any node, the same for both generations: a dropped connection,
 * a captive portal's login page, an empty 200. Null for the modes the node itself answers.
 */
export function answerBetween(mode: DevAnswerMode): EventAnswer | null {
  if (mode === 'drop') return { drop: true, event: null, counted: true };
  if (mode === 'html')
    return {
      drop: false,
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body: '<!doctype html><html><body><form action="/login">Wi-Fi login</form></body></html>',
      event: null,
      counted: true,
    };
  if (mode === 'empty') return { drop: false, status: 200, contentType: 'text/plain', body: '', event: null, counted: true };
  return null;
}
