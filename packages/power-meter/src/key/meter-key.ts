import { join } from 'node:path';
import { loadIdentity, loadOrCreateIdentity, type Curve, type DigestSigner, type Identity, type PublicJwk } from '@power-meter/w3bstream';
import type { BackendSettings } from '../settings.js';
import { TokenKey, rememberedTokenKey, type TokenKeyStatus } from './token-key.js';

/**
 * The device key as the meter uses it, wherever it lives: the key file (`identity/device-key.pem`,
 * always ready) or a PKCS#11 token (`--key-uri`, which can fail and come back). The meter signs
 * through `signer` (the codecs' seam) and asks `ready()` before each reading; everything else
 * (address, DID, JWK) is derived from the public key the same way for both.
 */
export interface KeyStatus {
  source: 'file' | 'pkcs11';
  state: 'ok' | 'fault';
  reason: string | null;
  advice: string | null;
  pinAttempts: number;
  sinceMs: number | null;
}

export interface MeterKey {
  readonly source: 'file' | 'pkcs11';
  readonly curve: Curve;
  readonly deviceId: string;
  readonly publicKeyHex: string;
  readonly did: string;
  readonly publicKeyJwk: PublicJwk;
  /** The key file, or the key's URI: where the key is, for messages. */
  readonly where: string;
  /** The codecs' seam; the key file's identity also keeps its faster synchronous paths (codec.ts). */
  readonly signer: DigestSigner;
  ready(): boolean;
  status(): KeyStatus;
  onStatus(fn: (s: KeyStatus) => void): void;
  close(): Promise<void>;
  /** The token key's details (attributes read back), when the key is in a token. */
  readonly token: TokenKey | null;
}

const FILE_OK: KeyStatus = { source: 'file', state: 'ok', reason: null, advice: null, pinAttempts: 0, sinceMs: null };

export function fileKey(identity: Identity & { created?: boolean }): MeterKey {
  return {
    source: 'file',
    curve: identity.curve,
    deviceId: identity.deviceId,
    publicKeyHex: identity.publicKeyHex,
    did: identity.did,
    publicKeyJwk: identity.publicKeyJwk,
    where: identity.keyFile,
    signer: identity,
    ready: () => true,
    status: () => FILE_OK,
    onStatus: () => {},
    close: async () => {},
    token: null,
  };
}

/** `did:io:` + the address (lower case, as ioID writes it) and the key as a JWK, from `04` + X + Y. */
export function publicViews(curve: Curve, deviceId: string, publicKeyHex: string): { did: string; publicKeyJwk: PublicJwk } {
  const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64url');
  return {
    did: `did:io:${deviceId}`,
    publicKeyJwk: {
      kty: 'EC',
      crv: curve === 'p256' ? 'P-256' : 'secp256k1',
      x: b64(publicKeyHex.slice(2, 66)),
      y: b64(publicKeyHex.slice(66)),
    },
  };
}

export function tokenMeterKey(t: TokenKey): MeterKey {
  const status = (s: TokenKeyStatus): KeyStatus => ({
    source: 'pkcs11',
    state: s.state,
    reason: s.reason,
    advice: s.advice,
    pinAttempts: s.pinAttempts,
    sinceMs: s.sinceMs,
  });
  return {
    source: 'pkcs11',
    curve: t.curve,
    deviceId: t.deviceId,
    publicKeyHex: t.publicKeyHex,
    ...publicViews(t.curve, t.deviceId, t.publicKeyHex),
    where: t.keyUri,
    signer: t,
    ready: () => t.ready(),
    status: () => status(t.status()),
    onStatus: (fn) => t.onStatus((s) => fn(status(s))),
    close: () => t.close(),
    token: t,
  };
}

/** The module to load: the setting, else the URI's own module-path. */
export function moduleFor(s: Pick<BackendSettings, 'pkcs11Module' | 'keyUri'>): string {
  if (s.pkcs11Module !== '') return s.pkcs11Module;
  const m = /[?&]module-path=([^&]*)/.exec(s.keyUri);
  return m ? decodeURIComponent(m[1]!) : '';
}

export interface OpenKeyOptions {
  log: (line: string) => void;
  warn: (line: string) => void;
  /** The PKCS#11 user PIN (POWER_METER_PKCS11_PIN). */
  pin: string;
  /** Curve of a new key (file or token). */
  curve: Curve;
  /** Create the key in the token when missing (the identity command only). */
  createInToken?: boolean;
  retryPin?: boolean;
  retryMs?: { first: number; max: number };
}

/** The key the settings name: the token's (`--key-uri`) or the key file's (created on first use). */
export async function openMeterKey(s: Pick<BackendSettings, 'dataDir' | 'keyUri' | 'pkcs11Module'>, o: OpenKeyOptions): Promise<MeterKey> {
  const identityDir = join(s.dataDir, 'identity');
  if (s.keyUri === '') return fileKey(loadOrCreateIdentity(identityDir, { curve: o.curve }));
  const t = await TokenKey.open({
    module: moduleFor(s),
    keyUri: s.keyUri,
    pin: o.pin,
    identityDir,
    log: o.log,
    warn: o.warn,
    createCurve: o.createInToken ? o.curve : undefined,
    retryPin: o.retryPin,
    retryMs: o.retryMs,
  });
  return tokenMeterKey(t);
}

/**
 * The device's address and DID without signing anything: the key file's (never created here), or
 * the public key remembered for the key in the token (the token is not opened). Throws with what to
 * do when there is none yet.
 */
export function deviceOf(s: Pick<BackendSettings, 'dataDir' | 'keyUri' | 'pkcs11Module'>): { deviceId: string; did: string } {
  const identityDir = join(s.dataDir, 'identity');
  if (s.keyUri === '') {
    const id = loadIdentity(identityDir);
    return { deviceId: id.deviceId, did: id.did };
  }
  const r = rememberedTokenKey(identityDir, moduleFor(s), s.keyUri);
  if (r === null)
    throw new Error(
      `no key in the token is known to this meter yet for ${s.keyUri} (identity/token-key.json): run power-meter identity with the same --key-uri and --pkcs11-module first`,
    );
  return { deviceId: r.deviceId, did: `did:io:${r.deviceId}` };
}
