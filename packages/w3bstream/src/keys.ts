import { createPublicKey, type KeyObject } from 'node:crypto';
import { keccak_256 } from '@noble/hashes/sha3.js';

/**
 * Curves the meter can sign with (docs/w3bstream.md section 3). `p256` is secp256r1 / prime256v1 /
 * NIST P-256, the default; `secp256k1` is the Ethereum curve the original C++ firmware used.
 * The value `p256` is what the backend's `--curve` setting, `identity --json` and the README
 * already use, so it stays the canonical spelling; `normalizeCurve` accepts the other names.
 */
export type Curve = 'p256' | 'secp256k1';
/** Every spelling accepted on input: `P-256` (JWK/NIST), `secp256r1` (SEC), `prime256v1` (OpenSSL). */
export type CurveName = Curve | 'P-256' | 'secp256r1' | 'prime256v1';

export class UnknownCurveError extends Error {
  constructor(readonly value: unknown) {
    super(`unknown curve ${JSON.stringify(value)}: use p256 (also written P-256, secp256r1, prime256v1) or secp256k1`);
    this.name = 'UnknownCurveError';
  }
}

/** The canonical `Curve` for any accepted spelling (case-insensitive); throws `UnknownCurveError`. */
export function normalizeCurve(name: string): Curve {
  const n = name.trim().toLowerCase();
  if (n === 'p256' || n === 'p-256' || n === 'secp256r1' || n === 'prime256v1') return 'p256';
  if (n === 'secp256k1') return 'secp256k1';
  throw new UnknownCurveError(name);
}

export const CURVES: Record<Curve, { nodeName: string; jwkCrv: string; orderHex: string; spkiPrefixHex: string }> = {
  p256: {
    nodeName: 'prime256v1',
    jwkCrv: 'P-256',
    orderHex: 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 04 X Y } }
    spkiPrefixHex: '3059301306072a8648ce3d020106082a8648ce3d030107034200',
  },
  secp256k1: {
    nodeName: 'secp256k1',
    jwkCrv: 'secp256k1',
    orderHex: 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141',
    spkiPrefixHex: '3056301006072a8648ce3d020106052b8104000a034200',
  },
};

/** `04` + X + Y, lowercase hex (130 characters). */
export function publicKeyHex(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  return `04${x.toString('hex').padStart(64, '0')}${y.toString('hex').padStart(64, '0')}`;
}

let lastAddress: { pubHex: string; address: string } | null = null;

/** The device address: `0x` + last 20 bytes of keccak256(X || Y) (Ethereum style). */
export function deviceAddress(pubHex: string): string {
  // Every message names the same device: remember the last one (keccak in pure JS is the
  // largest part of building a message on the backend's interpreter-only Node).
  if (lastAddress?.pubHex === pubHex) return lastAddress.address;
  const xy = Buffer.from(pubHex.slice(2), 'hex');
  const hash = keccak_256(xy);
  const address = `0x${Buffer.from(hash.slice(-20)).toString('hex')}`;
  lastAddress = { pubHex, address };
  return address;
}

/** A public key object from the 130-hex form on the given curve (throws if not on it). */
export function publicKeyFromHex(pubHex: string, curve: Curve): KeyObject {
  if (!/^04[0-9a-fA-F]{128}$/.test(pubHex)) throw new Error('public_key must be 04 followed by 128 hex digits');
  const der = Buffer.from(CURVES[curve].spkiPrefixHex + pubHex.toLowerCase(), 'hex');
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}
