import { createHash } from 'node:crypto';
import { keccak_256 } from '@noble/hashes/sha3.js';
import type { Identity, PublicJwk } from './identity.js';
import { requireSecp256k1, signRecoverableWith, type DigestSigner } from './signer.js';

/**
 * The device's side of an ioID registration (docs/w3bstream.md, "ioID"), pure. Checked against
 * `iotexproject/ioID-contracts` `contracts/ioIDRegistry.sol`:
 *
 * - the owner calls `register(deviceContract, tokenId, device, hash, uri, v, r, s)`; the registry
 *   recomputes an EIP-712 digest and requires `ecrecover(digest, v, r, s) == device`, so the
 *   device's consent is a secp256k1 signature by its own key over that digest;
 * - the digest is keccak256(0x19 0x01 || domainSeparator || structHash), where the domain is
 *   `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)` with
 *   name "ioIDRegistry", version "1", the chain id and the registry's address, and the struct is
 *   `Permit(address owner,uint256 nonce)` with the owner who registers and the device's current
 *   `nonces(device)` (which the registry increments on every use);
 * - the DID the registry writes is "did:io:" + the device address in lower case (OpenZeppelin's
 *   `Strings.toHexString(address)`).
 *
 * The words are ABI-encoded by hand: every value here is one 32-byte word (addresses and integers
 * left-padded, strings hashed), which is all EIP-712 needs for this struct.
 */
export const EIP712_DOMAIN_TYPE = 'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)';
export const IOID_PERMIT_TYPE = 'Permit(address owner,uint256 nonce)';
export const IOID_DOMAIN_NAME = 'ioIDRegistry';
export const IOID_DOMAIN_VERSION = '1';
const UINT256_MAX = (1n << 256n) - 1n;

export interface IoIdPermitRequest {
  /** The wallet that will send `register` (the registry takes `msg.sender` as the owner). */
  owner: string;
  /** The registry's `nonces(device)` at the time `register` runs. */
  nonce: bigint;
  chainId: bigint;
  /** The ioIDRegistry contract (the EIP-712 `verifyingContract`). */
  registry: string;
}

/** What `ioid permit --json` prints: the request, and v, r, s as `register` takes them (hex with 0x). */
export interface IoIdPermit {
  device: string;
  owner: string;
  /** Decimal text: a uint256 does not fit a JSON number. */
  nonce: string;
  chainId: string;
  registry: string;
  /** 27 or 28, as `ecrecover` takes it. */
  v: number;
  r: string;
  s: string;
  /** The EIP-712 digest the signature covers (what the registry recomputes). */
  digest: string;
}

export class IoIdInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IoIdInputError';
  }
}

const enc = new TextEncoder();
const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString('hex')}`;

/** One ABI word for an address; throws `IoIdInputError` naming `what` when it is not 0x + 40 hex. */
function addressWord(address: string, what: string): Uint8Array {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new IoIdInputError(`${what} ${JSON.stringify(address)} is not 0x + 40 hex digits`);
  const w = new Uint8Array(32);
  w.set(Buffer.from(address.slice(2), 'hex'), 12);
  return w;
}

function uintWord(value: bigint, what: string): Uint8Array {
  if (value < 0n || value > UINT256_MAX) throw new IoIdInputError(`${what} ${value} is not a uint256`);
  return Uint8Array.from(Buffer.from(value.toString(16).padStart(64, '0'), 'hex'));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const typeHash = (type: string): Uint8Array => keccak_256(enc.encode(type));

/** The registry's `DOMAIN_SEPARATOR` (it computes it once, in `initialize`, from `block.chainid` and its own address). */
export function ioIdDomainSeparator(chainId: bigint, registry: string): Uint8Array {
  return keccak_256(
    concat(
      typeHash(EIP712_DOMAIN_TYPE),
      keccak_256(enc.encode(IOID_DOMAIN_NAME)),
      keccak_256(enc.encode(IOID_DOMAIN_VERSION)),
      uintWord(chainId, 'chain id'),
      addressWord(registry, 'registry'),
    ),
  );
}

/** The struct hash, what the registry's view `permitHash(owner, device)` returns for the current nonce. */
export function ioIdPermitStructHash(owner: string, nonce: bigint): Uint8Array {
  return keccak_256(concat(typeHash(IOID_PERMIT_TYPE), addressWord(owner, 'owner'), uintWord(nonce, 'nonce')));
}

/** The 32-byte digest `register` recovers the device from. */
export function ioIdPermitDigest(p: IoIdPermitRequest): Uint8Array {
  return keccak_256(concat(Uint8Array.of(0x19, 0x01), ioIdDomainSeparator(p.chainId, p.registry), ioIdPermitStructHash(p.owner, p.nonce)));
}

/**
 * The permit signed by the device key (the key never leaves the identity). Throws
 * `IdentityCurveError` for a P-256 identity: the registry recovers with `ecrecover`, secp256k1 only.
 */
export function signIoIdPermit(identity: Identity, p: IoIdPermitRequest): IoIdPermit {
  const digest = ioIdPermitDigest(p);
  return permitOf(identity.deviceId, p, digest, identity.signDigestRecoverable(digest));
}

/**
 * `signIoIdPermit` for any key, through the signing seam (`signer.ts`): a key in a PKCS#11 token
 * signs the digest (r||s) and the recovery id is found by trial recovery; the key file as above.
 * Throws `SignerCurveError` for a P-256 key (the registry recovers with `ecrecover`).
 */
export async function signIoIdPermitWith(signer: DigestSigner | Identity, device: string, p: IoIdPermitRequest): Promise<IoIdPermit> {
  const digest = ioIdPermitDigest(p);
  if ('signDigestRecoverable' in signer) return permitOf(device, p, digest, signer.signDigestRecoverable(digest));
  requireSecp256k1(signer, 'an ioID permit');
  return permitOf(device, p, digest, await signRecoverableWith(signer, digest));
}

function permitOf(device: string, p: IoIdPermitRequest, digest: Uint8Array, sig: Uint8Array): IoIdPermit {
  return {
    device,
    owner: p.owner.toLowerCase(),
    nonce: p.nonce.toString(),
    chainId: p.chainId.toString(),
    registry: p.registry.toLowerCase(),
    // Solidity's ecrecover takes v as 27 + the recovery id.
    v: 27 + sig[64]!,
    r: hex(sig.subarray(0, 32)),
    s: hex(sig.subarray(32, 64)),
    digest: hex(digest),
  };
}

/**
 * The DID document in the form ioConnect's SDK writes for a device key (its `DeviceRegister`
 * example, `core/src/dids/` and `core/src/jose/jwk.c`): `@context`, `id` = the DID,
 * `authentication` naming the key, and one `JsonWebKey2020` verification method whose key id is
 * `Key-<crv>-<n>`. ioConnect adds a second, P-256 key-agreement key for its encrypted channel; the
 * meter has no such key, so the document has the signing key only.
 */
export interface DidDocument {
  '@context': string[];
  id: string;
  authentication: string[];
  verificationMethod: Array<{
    id: string;
    type: 'JsonWebKey2020';
    controller: string;
    publicKeyJwk: PublicJwk & { kid: string };
  }>;
}

/** `Key-secp256k1-1` (ioConnect: `Key-p256-<n>` for P-256, `Key-<crv>-<n>` otherwise; the meter has one key, number 1). */
export function didKeyId(jwk: PublicJwk): string {
  return jwk.crv === 'P-256' ? 'Key-p256-1' : `Key-${jwk.crv}-1`;
}

export function didDocument(identity: Pick<Identity, 'did' | 'publicKeyJwk'>): DidDocument {
  const kid = didKeyId(identity.publicKeyJwk);
  const keyUrl = `${identity.did}#${kid}`;
  return {
    '@context': ['https://www.w3.org/ns/did/v1'],
    id: identity.did,
    authentication: [keyUrl],
    verificationMethod: [
      {
        id: keyUrl,
        type: 'JsonWebKey2020',
        controller: identity.did,
        publicKeyJwk: {
          crv: identity.publicKeyJwk.crv,
          x: identity.publicKeyJwk.x,
          y: identity.publicKeyJwk.y,
          kty: 'EC',
          kid,
        },
      },
    ],
  };
}

/**
 * The document's exact bytes (compact JSON, UTF-8) and the hash `register` takes: sha256 of those
 * bytes, `0x` + 64 hex. The registry stores any non-zero 32-byte value and never reads the
 * document; IoTeX's own `ioctl did generate` prints the SHA-256 of the document, so the meter
 * does the same. Whoever stores the document at the `uri` must store these bytes unchanged, or the
 * hash no longer matches it.
 */
export function didDocumentText(doc: DidDocument): string {
  return JSON.stringify(doc);
}

export function didDocumentHash(text: string): string {
  return `0x${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}
