import { randomBytes, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { pidAlive } from '@power-meter/meter-files';
import { CURVES, deviceAddress, normalizeCurve, publicKeyHex, type Curve, type CurveName } from './keys.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { signRecoverableSecp256k1 } from './recoverable.js';
import type { DigestSigner } from './signer.js';
import { signWithKey, type SignatureEncoding } from './signature.js';

/**
 * The device identity (docs/w3bstream.md section 6): an ECDSA key pair created on first use and never
 * silently replaced, because fleets register the device address on chain. The private key lives
 * in a 0700 directory as a 0600 PKCS#8 PEM file and is never printed or logged: it is held in a
 * private field, and `JSON.stringify` / `console.log` of an identity show only public values.
 */
export interface Identity extends DigestSigner {
  readonly curve: Curve;
  /** Device address: `0x` + 40 hex (last 20 bytes of keccak256(X||Y)). */
  readonly deviceId: string;
  /** `04` + X + Y, lowercase hex, 130 characters. */
  readonly publicKeyHex: string;
  /** The signing key. A KeyObject: printing it shows nothing secret. */
  readonly privateKey: KeyObject;
  /** Where the private key is stored. */
  readonly keyFile: string;
  /** SHA-256 ECDSA over the UTF-8 bytes of `text`, low S; raw r||s hex (default) or DER hex. */
  sign(text: string, encoding?: SignatureEncoding): string;
  /**
   * The ioID DID, `did:io:` + the device address in lower case (ioIDRegistry.documentID writes
   * the address with OpenZeppelin's `Strings.toHexString`, which is lower case).
   */
  readonly did: string;
  /** The public key as a JWK (`kty` EC, `crv` P-256 or secp256k1, `x`, `y` base64url): never the private part. */
  readonly publicKeyJwk: PublicJwk;
  /**
   * A recoverable secp256k1 signature of a 32-byte digest (already hashed: W3bstream 2 signs
   * keccak256 of its JSON): 65 bytes r||s||v, low S, v = recovery id 0 or 1. Throws
   * `IdentityCurveError` on a P-256 identity (the W3bstream 2 node only recovers secp256k1).
   */
  signDigestRecoverable(digest: Uint8Array): Uint8Array;
}

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256' | 'secp256k1';
  x: string;
  y: string;
}

/** An operation needs the other curve (W3bstream 2 needs secp256k1). */
export class IdentityCurveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityCurveError';
  }
}

export type IdentityErrorKind = 'missing' | 'permissions' | 'corrupt' | 'unreadable';

/** Why an identity cannot be used. The message says what to do; it never contains key material. */
export class IdentityError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly kind: IdentityErrorKind = 'unreadable',
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}
export class IdentityMissingError extends IdentityError {
  constructor(file: string) {
    super(`no device identity at ${file}`, file, 'missing');
    this.name = 'IdentityMissingError';
  }
}
export class IdentityPermissionError extends IdentityError {
  constructor(message: string, file: string) {
    super(message, file, 'permissions');
    this.name = 'IdentityPermissionError';
  }
}
export class IdentityCorruptError extends IdentityError {
  constructor(file: string, why: string) {
    super(
      `private key ${file} is corrupt (${why}): restore it from a backup. It is not replaced automatically, because the device address registered on chain depends on it; to start over with a new identity, move the file away`,
      file,
      'corrupt',
    );
    this.name = 'IdentityCorruptError';
  }
}

export const KEY_FILE = 'device-key.pem';
const TEMP_PREFIX = `${KEY_FILE}.tmp-`;

class DeviceIdentity implements Identity {
  readonly #key: KeyObject;
  /** The private scalar for recoverable signing, read from the key only when first needed. */
  #scalar: Uint8Array | null = null;
  readonly deviceId: string;
  readonly publicKeyHex: string;
  readonly did: string;
  readonly publicKeyJwk: PublicJwk;

  constructor(
    key: KeyObject,
    readonly curve: Curve,
    readonly keyFile: string,
    /** True when this call created the key. */
    readonly created: boolean,
  ) {
    this.#key = key;
    this.publicKeyHex = publicKeyHex(createPublicKey(key));
    this.deviceId = deviceAddress(this.publicKeyHex);
    this.did = `did:io:${this.deviceId}`;
    const jwk = createPublicKey(key).export({ format: 'jwk' });
    this.publicKeyJwk = { kty: 'EC', crv: CURVES[curve].jwkCrv as PublicJwk['crv'], x: jwk.x!, y: jwk.y! };
  }

  get privateKey(): KeyObject {
    return this.#key;
  }

  sign(text: string, encoding: SignatureEncoding = 'raw'): string {
    return signWithKey(this.#key, this.curve, text, encoding);
  }

  /** The signing seam (`signer.ts`): ECDSA of a digest, r||s. The codecs use the faster paths above for a PEM key. */
  async signDigest(digest: Uint8Array): Promise<Uint8Array> {
    if (digest.length !== 32) throw new RangeError(`signDigest signs a 32-byte digest, not ${digest.length} bytes`);
    return (this.curve === 'p256' ? p256 : secp256k1).sign(digest, this.scalar(), { prehash: false, lowS: false, format: 'compact' });
  }

  private scalar(): Uint8Array {
    if (this.#scalar === null) this.#scalar = Buffer.from(this.#key.export({ format: 'jwk' }).d!, 'base64url');
    return this.#scalar;
  }

  signDigestRecoverable(digest: Uint8Array): Uint8Array {
    if (this.curve !== 'secp256k1')
      throw new IdentityCurveError(
        `the identity ${this.keyFile} is a ${this.curve} key: recoverable signatures (W3bstream 2) need a secp256k1 identity`,
      );
    return signRecoverableSecp256k1(digest, this.scalar());
  }

  toJSON(): { deviceId: string; publicKeyHex: string; curve: Curve } {
    return { deviceId: this.deviceId, publicKeyHex: this.publicKeyHex, curve: this.curve };
  }

  [inspect.custom](): string {
    return `Identity ${inspect(this.toJSON())}`;
  }
}

/**
 * Loads the identity in `dir`, creating the directory (0700) and a new key (0600) when there is
 * none. `curve` matters only when the key is created: an existing key keeps its own curve.
 * Throws `IdentityPermissionError` for a key others can read, `IdentityCorruptError` for one that
 * does not parse (never replaced), `IdentityError` when it cannot be read at all.
 */
export function loadOrCreateIdentity(dir: string, opts: { curve?: CurveName } = {}): Identity & { readonly created: boolean } {
  const curve = normalizeCurve(opts.curve ?? 'p256'); // validate before touching the disk
  ensurePrivateDir(dir);
  const file = join(dir, KEY_FILE);
  removeLeftoverTemps(dir);
  const existing = readKeyFile(file);
  if (existing !== null) return parseKey(existing, file, false);
  return create(dir, file, curve);
}

/** Loads the identity in `dir` and never creates one: `IdentityMissingError` when there is none. */
export function loadIdentity(dir: string): Identity {
  const file = join(dir, KEY_FILE);
  const pem = readKeyFile(file);
  if (pem === null) throw new IdentityMissingError(file);
  return parseKey(pem, file, false);
}

function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The directory is ours by contract (docs/design.md): tighten it rather than refuse, since nothing
    // secret has been written into a loose directory by this code.
    if (statSync(dir).mode & 0o077) chmodSync(dir, 0o700);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new IdentityPermissionError(
      `cannot create or secure the identity directory ${dir} (${code}): it must be a directory owned by the user running the meter`,
      dir,
    );
  }
}

/** The PEM text, or null when there is no key file. */
function readKeyFile(file: string): string | null {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new IdentityError(`cannot read private key ${file} (${code}): check the owner and permissions of its directory`, file);
  }
  if (!st.isFile()) throw new IdentityCorruptError(file, 'not a regular file');
  if (st.mode & 0o077)
    throw new IdentityPermissionError(
      `private key ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${file} (and consider whether it was copied)`,
      file,
    );
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new IdentityError(`cannot read private key ${file} (${code}): it must be owned by the user running the meter`, file);
  }
}

function parseKey(pem: string, file: string, created: boolean): DeviceIdentity {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new IdentityCorruptError(file, pem.trim() === '' ? 'the file is empty' : 'not a PEM private key');
  }
  const named = key.asymmetricKeyDetails?.namedCurve;
  const curve = (Object.keys(CURVES) as Curve[]).find((c) => CURVES[c].nodeName === named);
  if (key.asymmetricKeyType !== 'ec' || curve === undefined)
    throw new IdentityCorruptError(file, `a ${named ?? key.asymmetricKeyType} key, not P-256 or secp256k1`);
  return new DeviceIdentity(key, curve, file, created);
}

/**
 * Writes the key to a private temporary file, fsyncs it, then hard-links it to the final name.
 * link() fails if the name exists, so two processes starting at once can never overwrite each
 * other's key, and a crash mid-write leaves only a temporary file (removed at the next start),
 * never a half-written key that would stop the meter as "corrupt".
 */
function create(dir: string, file: string, curve: Curve): DeviceIdentity {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: CURVES[curve].nodeName });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, file);
  } catch (err) {
    unlinkSync(temp);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parseKey(readKeyFile(file) ?? '', file, false); // another process won
    throw new IdentityError(`cannot store the new private key at ${file} (${(err as NodeJS.ErrnoException).code})`, file);
  }
  unlinkSync(temp);
  fsyncDir(dir);
  return parseKey(pem, file, true);
}

/** Temporary key files of writers that died before linking (their pid no longer runs). */
function removeLeftoverTemps(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const pid = Number(name.slice(TEMP_PREFIX.length).split('-')[0]);
    if (pid !== process.pid && pidAlive(pid)) continue; // another process is creating its key right now
    try {
      unlinkSync(join(dir, name));
    } catch {
      // already gone
    }
  }
}

function fsyncDir(dir: string): void {
  // The new directory entry must survive a power cut, or a second key would be created.
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
