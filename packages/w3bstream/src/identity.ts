import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync, chmodSync } from 'node:fs';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { CURVES, deviceAddress, publicKeyHex, type Curve } from './keys.js';

/**
 * The device identity: an ECDSA key pair created on first use and never silently replaced,
 * because fleets register the address on chain. The private key lives in a 0700 directory
 * as a 0600 PKCS#8 PEM file and is never printed or logged.
 */
export interface Identity {
  curve: Curve;
  /** `04` + X + Y hex. */
  publicKey: string;
  /** `0x` + 40 hex. */
  address: string;
  /** Private key handle for signing (not serialisable by accident: a KeyObject prints nothing secret). */
  readonly privateKey: KeyObject;
}

export class IdentityError extends Error {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}

export const KEY_FILE = 'device-key.pem';

export function loadOrCreateIdentity(dir: string, opts: { curve?: Curve } = {}): Identity & { created: boolean } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dirMode = statSync(dir).mode & 0o777;
  if (dirMode & 0o077) chmodSync(dir, 0o700); // our own directory: tighten it rather than refuse
  const file = join(dir, KEY_FILE);
  let pem: string;
  try {
    const st = statSync(file);
    if (st.mode & 0o077)
      throw new IdentityError(
        `private key ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${file} (and check who may have copied it)`,
        file,
      );
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new IdentityError(`cannot read private key ${file} (${code}): check its owner and permissions`, file);
    return { ...create(file, opts.curve ?? 'p256'), created: true };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new IdentityError(
      `private key ${file} is corrupt: restore it from a backup. It is not replaced automatically, because the device address registered on chain depends on it; to start over with a new identity, move the file away`,
      file,
    );
  }
  const details = key.asymmetricKeyDetails;
  const curve = (Object.keys(CURVES) as Curve[]).find((c) => CURVES[c].nodeName === details?.namedCurve);
  if (key.asymmetricKeyType !== 'ec' || curve === undefined)
    throw new IdentityError(`private key ${file} is not a P-256 or secp256k1 EC key (${details?.namedCurve ?? key.asymmetricKeyType})`, file);
  const publicKey = publicKeyHex(createPublicKey(key));
  return { curve, publicKey, address: deviceAddress(publicKey), privateKey: key, created: false };
}

function create(file: string, curve: Curve): Identity {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: CURVES[curve].nodeName });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  // O_EXCL: two processes racing on first start can never overwrite each other's key.
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const publicKey = publicKeyHex(createPublicKey(privateKey));
  return { curve, publicKey, address: deviceAddress(publicKey), privateKey };
}
