import { sign, verify, type KeyObject } from 'node:crypto';
import { CURVES, publicKeyFromHex, type Curve } from './keys.js';
import type { Identity } from './identity.js';

/**
 * The message of w3bstream.md sections 2-3: the `data` text is built once, signed (SHA-256,
 * ECDSA), and the very same text is spliced into the body. Never sign one serialisation and
 * send another.
 */
export type SignatureEncoding = 'raw' | 'der';
export type TimestampUnit = 's' | 'ms';

/** A JSON number that the applet reads as a float: always with a decimal point or exponent. */
export function formatReading(powerW: number): string {
  if (!Number.isFinite(powerW)) throw new RangeError(`sensor reading ${powerW} is not a finite number`);
  if (Object.is(powerW, -0)) return '0.0';
  const text = String(powerW); // shortest round-trip form
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/** `{"sensor_reading":<float>,"timestamp":<int>}`, compact, keys in this order. */
export function dataText(powerW: number, timestampMs: number, unit: TimestampUnit = 's'): string {
  const ts = unit === 's' ? Math.floor(timestampMs / 1000) : Math.floor(timestampMs);
  if (!Number.isSafeInteger(ts) || ts <= 0) throw new RangeError(`timestamp ${ts} is not a positive integer`);
  return `{"sensor_reading":${formatReading(powerW)},"timestamp":${ts}}`;
}

function orderOf(curve: Curve): bigint {
  return BigInt(`0x${CURVES[curve].orderHex}`);
}

/** Signs bytes; the signature is normalised to low S (s <= n/2) in both encodings. */
export function signText(identity: Pick<Identity, 'privateKey' | 'curve'>, text: string, encoding: SignatureEncoding = 'raw'): string {
  const p1363 = sign('sha256', Buffer.from(text, 'utf8'), { key: identity.privateKey, dsaEncoding: 'ieee-p1363' });
  const n = orderOf(identity.curve);
  const r = BigInt(`0x${p1363.subarray(0, 32).toString('hex')}`);
  let s = BigInt(`0x${p1363.subarray(32).toString('hex')}`);
  if (s > n / 2n) s = n - s;
  return encoding === 'raw' ? hex32(r) + hex32(s) : derEncode(r, s);
}

export interface SignedMessage {
  /** The exact HTTP body. */
  body: string;
  dataText: string;
  signature: string;
}

export function buildMessage(
  identity: Pick<Identity, 'privateKey' | 'curve' | 'publicKey'>,
  reading: { powerW: number; timestampMs: number },
  opts: { encoding?: SignatureEncoding; timestampUnit?: TimestampUnit } = {},
): SignedMessage {
  const text = dataText(reading.powerW, reading.timestampMs, opts.timestampUnit ?? 's');
  const signature = signText(identity, text, opts.encoding ?? 'raw');
  return { body: `{"data":${text},"signature":"${signature}","public_key":"${identity.publicKey}"}`, dataText: text, signature };
}

export interface VerifyResult {
  ok: boolean;
  reason: string | null;
  curve: Curve | null;
  publicKey: string | null;
  sensorReading: number | null;
  timestamp: number | null;
}

/**
 * Checks a body as the receiving side would: the applet's shape rules, then the signature over
 * the `data` text exactly as it appears in the body (so added whitespace breaks it).
 */
export function verifyBody(body: string): VerifyResult {
  const fail = (reason: string, extra: Partial<VerifyResult> = {}): VerifyResult => ({ ok: false, reason, curve: null, publicKey: null, sensorReading: null, timestamp: null, ...extra });
  let parsed: { data?: unknown; signature?: unknown; public_key?: unknown };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    return fail('body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) return fail('body is not a JSON object');
  const { signature, public_key: publicKey, data } = parsed;
  if (typeof signature !== 'string' || signature === '') return fail('signature missing');
  if (typeof publicKey !== 'string' || publicKey === '') return fail('public_key missing');
  if (typeof data !== 'object' || data === null) return fail('data is not an object');
  const d = data as { sensor_reading?: unknown; timestamp?: unknown };
  const extra = { publicKey, sensorReading: typeof d.sensor_reading === 'number' ? d.sensor_reading : null, timestamp: typeof d.timestamp === 'number' ? d.timestamp : null };
  // The signed bytes: the data object's text as it appears in the body. It holds no nested
  // object, so it runs from `{` to the first `}` after the "data" key.
  const m = /"data"\s*:\s*(\{[^{}]*\})/.exec(body);
  if (!m) return fail('data object not found in the body text', extra);
  const text = m[1]!;
  const readingText = /"sensor_reading"\s*:\s*(-?[0-9][0-9.eE+-]*)/.exec(text)?.[1];
  if (readingText === undefined || !/[.eE]/.test(readingText)) return fail('sensor_reading is not a float (needs a decimal point)', extra);
  if (typeof d.timestamp !== 'number' || !Number.isInteger(d.timestamp) || d.timestamp <= 0) return fail('timestamp is not a positive integer', extra);
  let sig: Buffer;
  let dsaEncoding: 'der' | 'ieee-p1363';
  if (/^[0-9a-f]{128}$/i.test(signature)) {
    sig = Buffer.from(signature, 'hex');
    dsaEncoding = 'ieee-p1363';
  } else if (/^30[0-9a-f]+$/i.test(signature)) {
    sig = Buffer.from(signature, 'hex');
    dsaEncoding = 'der';
  } else return fail('signature is neither 128 hex digits (r||s) nor DER hex', extra);
  for (const curve of Object.keys(CURVES) as Curve[]) {
    let key: KeyObject;
    try {
      key = publicKeyFromHex(publicKey, curve);
    } catch {
      continue; // not a point on this curve
    }
    try {
      if (verify('sha256', Buffer.from(text, 'utf8'), { key, dsaEncoding }, sig)) return { ok: true, reason: null, curve, ...extra };
    } catch {
      // malformed DER for this key: try the next curve, then report
    }
  }
  return fail('signature does not verify', extra);
}

function hex32(x: bigint): string {
  return x.toString(16).padStart(64, '0');
}

/** DER: SEQUENCE { INTEGER r, INTEGER s }, minimal big-endian integers. */
function derEncode(r: bigint, s: bigint): string {
  const int = (x: bigint): Buffer => {
    let h = x.toString(16);
    if (h.length % 2) h = `0${h}`;
    let b = Buffer.from(h, 'hex');
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return Buffer.concat([Buffer.from([0x02, b.length]), b]);
  };
  const body = Buffer.concat([int(r), int(s)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]).toString('hex');
}

