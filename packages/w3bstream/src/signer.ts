import { createHash } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { Curve } from './keys.js';
import { rsToDer, rsToRaw, toLowS, type SignatureEncoding } from './signature.js';

/**
 * The seam between the message codecs and wherever the device key lives. A key in a PKCS#11
 * token (a TPM, a secure element, SoftHSM) can do one thing: ECDSA over a digest the caller
 * computed (CKM_ECDSA), answering r||s. Everything else a wire format needs (hashing, low S,
 * DER or raw, the secp256k1 recovery id) is done here, the same for every key, so a body signed
 * in a token is byte-for-byte the shape a body signed with the PEM key is (docs/w3bstream.md
 * section 3, section 9).
 */
export interface DigestSigner {
  readonly curve: Curve;
  /** `04` + X + Y, lowercase hex: the key the signatures verify against. */
  readonly publicKeyHex: string;
  /**
   * ECDSA of a 32-byte digest, signed as is (no second hash): r||s, 32 bytes each, S as the key
   * made it (a token does not normalise it). Rejects when the key cannot sign now (a token that
   * is gone, refuses, or is not logged in); never blocks the event loop for the signature itself.
   */
  signDigest(digest: Uint8Array): Promise<Uint8Array>;
}

/** An operation needs the other curve (W3bstream 2 and ioID permits recover secp256k1 signatures only). */
export class SignerCurveError extends Error {
  constructor(
    message: string,
    readonly curve: Curve,
  ) {
    super(message);
    this.name = 'SignerCurveError';
  }
}

/**
 * The check every secp256k1-only use makes before it starts (the W3bstream 2 transport, an ioID
 * permit): a P-256 key cannot make a signature those verifiers recover. `purpose` names the use
 * in the message; the caller adds what to do.
 */
export function requireSecp256k1(key: { curve: Curve }, purpose: string): void {
  if (key.curve !== 'secp256k1') throw new SignerCurveError(`${purpose} needs a secp256k1 key, and this key is ${key.curve}`, key.curve);
}

/** r and s of a 64-byte r||s, with S moved to the lower half (s and n - s both verify; low S is the canonical one). */
export function lowSOf(rs: Uint8Array, curve: Curve): { r: bigint; s: bigint } {
  if (rs.length !== 64) throw new RangeError(`an ECDSA signature from the key must be 64 bytes (r||s), got ${rs.length}`);
  const hex = Buffer.from(rs).toString('hex');
  return { r: BigInt(`0x${hex.slice(0, 64)}`), s: toLowS(BigInt(`0x${hex.slice(64)}`), curve) };
}

/** SHA-256 ECDSA over the UTF-8 bytes of `text` through the seam: low S, raw r||s hex or DER hex (as `signWithKey`). */
export async function signTextWith(signer: DigestSigner, text: string, encoding: SignatureEncoding = 'raw'): Promise<string> {
  const digest = createHash('sha256').update(text, 'utf8').digest();
  const { r, s } = lowSOf(await signer.signDigest(digest), signer.curve);
  return encoding === 'raw' ? rsToRaw(r, s) : rsToDer(r, s);
}

/**
 * A recoverable secp256k1 signature of a 32-byte digest through the seam: 65 bytes r||s||v, low
 * S, v = recovery id 0 or 1, the layout go-ethereum's `crypto.Sign` writes. A token answers only
 * r||s, so v is found by trial: the public key is recovered with id 0 (then 1) and compared with
 * the signer's own key. Throws when neither gives it back (the token signed with another key).
 */
export async function signRecoverableWith(signer: DigestSigner, digest: Uint8Array): Promise<Uint8Array> {
  requireSecp256k1(signer, 'a recoverable signature');
  if (digest.length !== 32) throw new RangeError(`a recoverable signature signs a 32-byte digest, not ${digest.length} bytes`);
  const { r, s } = lowSOf(await signer.signDigest(digest), 'secp256k1');
  const want = signer.publicKeyHex.toLowerCase();
  for (const v of [0, 1]) {
    let got: string;
    try {
      got = Buffer.from(new secp256k1.Signature(r, s).addRecoveryBit(v).recoverPublicKey(digest).toBytes(false)).toString('hex');
    } catch {
      continue; // this id names no point
    }
    if (got !== want) continue;
    const out = new Uint8Array(65);
    out.set(Buffer.from(rsToRaw(r, s), 'hex'), 0);
    out[64] = v;
    return out;
  }
  throw new Error('the signature does not recover to the signer public key: the key signed with another key than it reported');
}
