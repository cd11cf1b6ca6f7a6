import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { deviceAddress, type Curve } from './keys.js';

/**
 * ECDSA public-key recovery (SEC 1 section 4.1.6) on both curves the meter signs with. A body in
 * the original firmware's form carries only the device address, not the key, so a receiver gets
 * the key back from the signature: each recovery id (0-3) names one candidate point R, each
 * candidate yields a public key for which the signature is valid, and the signer is the candidate
 * whose address (keccak256(X||Y), last 20 bytes: `deviceAddress`) is the claimed one. Pure (no I/O).
 *
 * Recovery ids 2 and 3 (R.x = r + n) are astronomically rare on these curves but tried anyway: a
 * wrong "no signer" would refuse a valid reading.
 */
const NOBLE = { p256, secp256k1 } as const;

/** Recovery ids in the order they are tried. */
export const RECOVERY_IDS = [0, 1, 2, 3] as const;

/**
 * The public key (`04` + X + Y, lowercase hex) that recovery id `recovery` yields for the
 * signature (r, s) over the already-hashed `digest` (SHA-256 of the text for this meter's
 * messages; keccak or anything else for other schemes). `null` when that id names no point.
 */
export function recoverPublicKey(curve: Curve, digest: Uint8Array, r: bigint, s: bigint, recovery: number): string | null {
  const { Signature } = NOBLE[curve];
  try {
    const point = new Signature(r, s).addRecoveryBit(recovery).recoverPublicKey(digest);
    return Buffer.from(point.toBytes(false)).toString('hex');
  } catch {
    return null; // r or s out of range, or no curve point with that x for this id
  }
}

/** Every distinct key the signature can have come from on `curve`, with the id that yields it. */
export function recoverCandidates(
  curve: Curve,
  digest: Uint8Array,
  r: bigint,
  s: bigint,
): Array<{ recovery: number; publicKeyHex: string }> {
  const out: Array<{ recovery: number; publicKeyHex: string }> = [];
  for (const recovery of RECOVERY_IDS) {
    const publicKeyHex = recoverPublicKey(curve, digest, r, s, recovery);
    if (publicKeyHex !== null) out.push({ recovery, publicKeyHex });
  }
  return out;
}

export interface RecoveredSigner {
  curve: Curve;
  /** `04` + X + Y, lowercase hex. */
  publicKeyHex: string;
  /** `0x` + 40 lowercase hex. */
  address: string;
  /** The recovery id that gave the key (Ethereum's `v` is 27 + this for ids 0 and 1). */
  recovery: number;
}

/**
 * The key behind the signature whose address is `address` (`0x` + 40 hex, any case), trying
 * each curve in `curves` and each recovery id; `null` when none matches (a signature by another
 * key, or over another text). A match is proof of the signature: recovery only yields keys the
 * signature verifies against.
 */
export function recoverSignerByAddress(
  digest: Uint8Array,
  r: bigint,
  s: bigint,
  address: string,
  curves: readonly Curve[] = ['p256', 'secp256k1'],
): RecoveredSigner | null {
  const wanted = address.toLowerCase();
  for (const curve of curves) {
    for (const { recovery, publicKeyHex } of recoverCandidates(curve, digest, r, s)) {
      const candidate = deviceAddress(publicKeyHex);
      if (candidate === wanted) return { curve, publicKeyHex, address: candidate, recovery };
    }
  }
  return null;
}
