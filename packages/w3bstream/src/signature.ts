import { sign, type KeyObject } from 'node:crypto';
import { CURVES, type Curve } from './keys.js';

/**
 * ECDSA signatures over SHA-256 (docs/w3bstream.md section 3), pure apart from Node's crypto.
 *
 * - `raw`: lowercase hex of the 64-byte r||s form (32 bytes each, zero-padded). The default: what
 *   the PSA crypto API of the original firmware produced.
 * - `der`: lowercase hex of SEQUENCE { INTEGER r, INTEGER s } (`3045...`), what the JS simulator sent.
 *
 * Both are normalised to low S (s <= n/2): (r, s) and (r, n - s) are both valid, and verifiers
 * that insist on one form (Ethereum-style tooling, some SDKs) accept the low one.
 */
export type SignatureEncoding = 'raw' | 'der';

export class SignatureFormatError extends Error {
  constructor(
    message: string,
    readonly signatureHex: string,
  ) {
    super(message);
    this.name = 'SignatureFormatError';
  }
}

export function curveOrder(curve: Curve): bigint {
  return BigInt(`0x${CURVES[curve].orderHex}`);
}

/** Signs the UTF-8 bytes of `text` with SHA-256 ECDSA, low S, in the chosen encoding. */
export function signWithKey(privateKey: KeyObject, curve: Curve, text: string, encoding: SignatureEncoding = 'raw'): string {
  const p1363 = sign('sha256', Buffer.from(text, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const r = BigInt(`0x${p1363.subarray(0, 32).toString('hex')}`);
  const s = toLowS(BigInt(`0x${p1363.subarray(32).toString('hex')}`), curve);
  return encoding === 'raw' ? rsToRaw(r, s) : rsToDer(r, s);
}

export function toLowS(s: bigint, curve: Curve): bigint {
  const n = curveOrder(curve);
  return s > n / 2n ? n - s : s;
}

export function isLowS(s: bigint, curve: Curve): boolean {
  return s <= curveOrder(curve) / 2n;
}

export function rsToRaw(r: bigint, s: bigint): string {
  return r.toString(16).padStart(64, '0') + s.toString(16).padStart(64, '0');
}

/** DER: SEQUENCE { INTEGER r, INTEGER s }, minimal big-endian two's-complement integers. */
export function rsToDer(r: bigint, s: bigint): string {
  const int = (x: bigint): Buffer => {
    let h = x.toString(16);
    if (h.length % 2) h = `0${h}`;
    let b = Buffer.from(h, 'hex');
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]); // keep it positive
    return Buffer.concat([Buffer.from([0x02, b.length]), b]);
  };
  const body = Buffer.concat([int(r), int(s)]);
  // r and s are at most 33 bytes each, so the length always fits the one-byte short form.
  return Buffer.concat([Buffer.from([0x30, body.length]), body]).toString('hex');
}

/** r and s from either encoding; throws `SignatureFormatError` for anything else. */
export function parseSignature(signatureHex: string): { r: bigint; s: bigint; encoding: SignatureEncoding } {
  if (/^[0-9a-fA-F]{128}$/.test(signatureHex)) {
    return { r: BigInt(`0x${signatureHex.slice(0, 64)}`), s: BigInt(`0x${signatureHex.slice(64)}`), encoding: 'raw' };
  }
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(signatureHex))
    throw new SignatureFormatError('signature is not hex (128 digits for r||s, or DER)', signatureHex);
  const b = Buffer.from(signatureHex, 'hex');
  const bad = (why: string): never => {
    throw new SignatureFormatError(`signature is neither 128 hex digits (r||s) nor valid DER: ${why}`, signatureHex);
  };
  if (b[0] !== 0x30 || b[1] !== b.length - 2) bad('not a SEQUENCE of the right length');
  let at = 2;
  const int = (): bigint => {
    if (b[at] !== 0x02) bad('INTEGER expected');
    const len = b[at + 1]!;
    if (len === 0 || len > 33 || at + 2 + len > b.length) bad('INTEGER length out of range');
    const bytes = b.subarray(at + 2, at + 2 + len);
    if (bytes[0]! & 0x80) bad('negative INTEGER');
    if (len > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) bad('INTEGER not minimally encoded');
    at += 2 + len;
    return BigInt(`0x${bytes.toString('hex')}`);
  };
  const r = int();
  const s = int();
  if (at !== b.length) bad('trailing bytes');
  return { r, s, encoding: 'der' };
}

/** Converts between the two encodings (what a test needs to hand a raw signature to openssl). */
export function rawToDer(rawHex: string): string {
  const { r, s } = parseSignature(rawHex);
  return rsToDer(r, s);
}

export function derToRaw(derHex: string): string {
  const { r, s } = parseSignature(derHex);
  return rsToRaw(r, s);
}
