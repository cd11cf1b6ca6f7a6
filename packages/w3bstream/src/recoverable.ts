import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

/**
 * Recoverable secp256k1 signatures in the Ethereum layout that go-ethereum's `crypto.Sign` writes
 * and `crypto.SigToPub` reads: 65 bytes r||s||v, v = recovery id 0 or 1 (not 27/28), over a
 * 32-byte digest that is signed as is (no second hash, no EIP-191 prefix). `@noble/curves` does
 * the curve arithmetic (RFC 6979 deterministic nonces, low S); Node's crypto cannot return the
 * recovery id.
 */
export function signRecoverableSecp256k1(digest: Uint8Array, privateScalar: Uint8Array): Uint8Array {
  if (digest.length !== 32) throw new RangeError(`a recoverable signature signs a 32-byte digest, not ${digest.length} bytes`);
  // noble's "recovered" form is recid || r || s; the Ethereum form puts the id last.
  const rec = secp256k1.sign(digest, privateScalar, { prehash: false, lowS: true, format: 'recovered' });
  const out = new Uint8Array(65);
  out.set(rec.subarray(1, 65), 0);
  out[64] = rec[0]!;
  return out;
}

/**
 * The uncompressed public key (`04` + X + Y, 65 bytes) that made a 65-byte r||s||v signature of
 * `digest`, the way the W3bstream 2 node's Go build reads it (go-ethereum without cgo: v + 27 must
 * be a compact-signature code 27..34, so v 0..7, where 4..7 only add the "compressed" flag and
 * recover like v - 4). Throws with the reason when no key can be recovered.
 */
export function recoverSecp256k1(digest: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== 65) throw new Error('invalid signature');
  const v = signature[64]!;
  if (v > 7) throw new Error(`invalid signature recovery code ${(v + 27) & 0xff}, not in [27, 34]`);
  const sig = secp256k1.Signature.fromBytes(signature.subarray(0, 64), 'compact').addRecoveryBit(v & 3);
  return sig.recoverPublicKey(digest).toBytes(false);
}

/** The Ethereum address of an uncompressed public key: `0x` + the last 20 bytes of keccak256(X || Y), lower case. */
export function addressOfPublicKey(uncompressed: Uint8Array): string {
  return `0x${Buffer.from(keccak_256(uncompressed.subarray(1)).subarray(12)).toString('hex')}`;
}
