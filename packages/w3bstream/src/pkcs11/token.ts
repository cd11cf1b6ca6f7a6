import { createRequire } from 'node:module';
import type * as P11 from 'pkcs11js';
import { deviceAddress, type Curve } from '../keys.js';
import type { DigestSigner } from '../signer.js';
import type { Pkcs11Uri } from './uri.js';

/**
 * A device key held in a PKCS#11 token (a TPM through tpm2-pkcs11, a secure element through its
 * vendor's module, SoftHSM): found by its URI, created inside the token when asked, used through
 * CKM_ECDSA on a digest. The private key never leaves the token; this object holds handles only.
 *
 * Threading: `signDigest` runs C_Sign on libuv's thread pool (pkcs11js's async variant), so a
 * token that takes 50-200 ms per signature (a TPM on SPI) never holds up the event loop the
 * sampler reads the sensor from. The other calls (initialise, log in, find) are synchronous and
 * run at open. One operation at a time per key: PKCS#11 allows one active operation per session.
 */

/** What went wrong, as a code the program words for its user. */
export type TokenFaultKind =
  /** The module file cannot be loaded, or the binding is not installed. */
  | 'module'
  /** No token matches the URI (not present, not initialised, another label). */
  | 'no-token'
  /** The token refused the PIN (each such refusal counts towards locking it). */
  | 'pin-incorrect'
  /** The PIN is locked, expired, or one more wrong PIN would lock it: no attempt is made. */
  | 'pin-locked'
  /** The token has no such key (and creating one was not asked for). */
  | 'key-missing'
  /** The key is not on a curve the meter signs with, or the token cannot make one on the curve asked for. */
  | 'curve'
  /** The token went away or stopped answering (unplugged, reset, a device error): worth reconnecting. */
  | 'device'
  /** A signature did not come back in time. */
  | 'timeout'
  /** Anything else the token answered. */
  | 'other';

export class TokenError extends Error {
  constructor(
    message: string,
    readonly kind: TokenFaultKind,
    /** The PKCS#11 return value's name (`CKR_PIN_INCORRECT`), when the token gave one. */
    readonly ckr: string | null = null,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

/** What the token says about the key (read back from its attributes, never assumed). */
export interface TokenKeyInfo {
  curve: Curve;
  /** `04` + X + Y. */
  publicKeyHex: string;
  deviceId: string;
  /** CKA_LABEL and CKA_ID (hex) of the private key. */
  label: string;
  idHex: string;
  /** Token label, manufacturer, model, serial (trailing blanks removed). */
  token: { label: string; manufacturer: string; model: string; serial: string };
  /** CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL; null when the token will not say. */
  sensitive: boolean | null;
  extractable: boolean | null;
  alwaysSensitive: boolean | null;
  neverExtractable: boolean | null;
  /** Generated inside the token (not imported). */
  local: boolean | null;
  /** Whether the key was created by this `open` call. */
  created: boolean;
}

export interface OpenTokenOptions {
  /** The PKCS#11 module (shared library) file. */
  modulePath: string;
  uri: Pkcs11Uri;
  /** The user PIN; empty when the token needs no login. */
  pin: string;
  /** Create the key pair in the token when the URI finds none (never replaces one). */
  createCurve?: Curve;
  /** The longest a signature may take before `signDigest` rejects with `timeout` (default 15 s). */
  signTimeoutMs?: number;
}

/** DER of the named-curve OIDs in CKA_EC_PARAMS. */
const EC_PARAMS: Record<Curve, string> = {
  p256: '06082a8648ce3d030107',
  secp256k1: '06052b8104000a',
};

type Pkcs11Module = typeof P11;
let binding: Pkcs11Module | null = null;
/** pkcs11js is loaded only when a token is configured: a meter with a key file never loads the native module. */
function loadBinding(): Pkcs11Module {
  if (binding !== null) return binding;
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Module;
    return binding;
  } catch (err) {
    throw new TokenError(`the PKCS#11 binding (npm package pkcs11js) cannot be loaded: ${(err as Error).message}`, 'module', null);
  }
}

const PIN_INCORRECT = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']);
const PIN_LOCKED = new Set(['CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_USER_PIN_NOT_INITIALIZED']);
const CURVE = new Set(['CKR_CURVE_NOT_SUPPORTED', 'CKR_DOMAIN_PARAMS_INVALID', 'CKR_TEMPLATE_INCONSISTENT', 'CKR_ATTRIBUTE_VALUE_INVALID']);
const GONE = new Set([
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_SLOT_ID_INVALID',
]);

/** A token's failure as a `TokenError`: the CKR name decides the kind. */
export function tokenErrorOf(err: unknown, doing: string): TokenError {
  if (err instanceof TokenError) return err;
  const ckr = /CKR_[A-Z0-9_]+/.exec(err instanceof Error ? err.message : String(err))?.[0] ?? null;
  const kind: TokenFaultKind =
    ckr === null
      ? 'device'
      : PIN_INCORRECT.has(ckr)
        ? 'pin-incorrect'
        : PIN_LOCKED.has(ckr)
          ? 'pin-locked'
          : GONE.has(ckr)
            ? 'device'
            : 'other';
  return new TokenError(`${doing}: ${ckr ?? (err instanceof Error ? err.message : String(err))}`, kind, ckr);
}

const trim = (s: string): string => s.replace(/[\s\0]+$/, '');

export class Pkcs11Key implements DigestSigner {
  readonly curve: Curve;
  readonly publicKeyHex: string;
  readonly deviceId: string;
  readonly info: TokenKeyInfo;
  #lib: P11.PKCS11 | null;
  readonly #session: Buffer;
  readonly #key: Buffer;
  readonly #mech: number;
  readonly #timeoutMs: number;
  #queue: Promise<unknown> = Promise.resolve();
  /** A C_Sign on the thread pool that has not come back: the module must not be finalised under it. */
  #inFlight = 0;

  private constructor(lib: P11.PKCS11, session: Buffer, key: Buffer, mech: number, info: TokenKeyInfo, timeoutMs: number) {
    this.#lib = lib;
    this.#session = session;
    this.#key = key;
    this.#mech = mech;
    this.info = info;
    this.curve = info.curve;
    this.publicKeyHex = info.publicKeyHex;
    this.deviceId = info.deviceId;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Loads the module, finds the token and logs in, finds (or creates) the key, reads its public
   * key and attributes. Throws `TokenError`; on failure nothing stays loaded.
   */
  static async open(opts: OpenTokenOptions): Promise<Pkcs11Key> {
    const p11 = loadBinding();
    const lib = new p11.PKCS11();
    try {
      lib.load(opts.modulePath);
    } catch (err) {
      throw new TokenError(`cannot load the PKCS#11 module ${opts.modulePath}: ${(err as Error).message}`, 'module');
    }
    let initialised = false;
    try {
      try {
        lib.C_Initialize({ flags: p11.CKF_OS_LOCKING_OK });
        initialised = true;
      } catch (err) {
        if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test((err as Error).message)) throw tokenErrorOf(err, 'the module did not start');
        initialised = true;
      }
      const slot = findSlot(lib, p11, opts.uri);
      const tokenInfo = lib.C_GetTokenInfo(slot);
      const session = lib.C_OpenSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION);
      if (tokenInfo.flags & p11.CKF_LOGIN_REQUIRED) login(lib, p11, session, tokenInfo, opts.pin);
      let created = false;
      let pair = findPair(lib, p11, session, opts.uri);
      if (pair === null) {
        if (opts.createCurve === undefined)
          throw new TokenError(`the token "${trim(tokenInfo.label)}" holds no private EC key that matches the URI`, 'key-missing');
        pair = await generate(lib, p11, session, opts.uri, opts.createCurve);
        created = true;
      }
      const info = readInfo(lib, p11, session, pair, tokenInfo, created);
      return new Pkcs11Key(lib, session, pair.priv, p11.CKM_ECDSA, info, opts.signTimeoutMs ?? 15_000);
    } catch (err) {
      if (initialised) finalize(lib);
      else unload(lib);
      throw tokenErrorOf(err, 'the token refused');
    }
  }

  /** ECDSA of the digest in the token (CKM_ECDSA): r||s, S as the token made it. */
  signDigest(digest: Uint8Array): Promise<Uint8Array> {
    const run = async (): Promise<Uint8Array> => {
      const lib = this.#lib;
      if (lib === null) throw new TokenError('the token session is closed', 'device');
      try {
        lib.C_SignInit(this.#session, { mechanism: this.#mech }, this.#key);
      } catch (err) {
        throw tokenErrorOf(err, 'the token refused to start a signature');
      }
      this.#inFlight++;
      const op = lib.C_SignAsync(this.#session, Buffer.from(digest), Buffer.alloc(132)).finally(() => this.#inFlight--);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new TokenError(`the token did not return a signature within ${this.#timeoutMs} ms`, 'timeout')),
          this.#timeoutMs,
        );
      });
      try {
        const sig = await Promise.race([op, timeout]);
        if (sig.length !== 64) throw new TokenError(`the token returned a ${sig.length}-byte signature, not r||s (64 bytes)`, 'other');
        return new Uint8Array(sig);
      } catch (err) {
        op.catch(() => {}); // a late failure after a timeout is already reported
        throw tokenErrorOf(err, 'the token refused to sign');
      } finally {
        clearTimeout(timer);
      }
    };
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** True while a signature is still running in the token (after a timeout, too). */
  get busy(): boolean {
    return this.#inFlight > 0;
  }

  /**
   * Logs out, closes the session and finalises the module (it is loaded afresh by the next
   * `open`: after a TPM reset or an unplugged token nothing of the old state is usable). Waits
   * for a signature still running in the token, up to `waitMs`; the module stays loaded if one
   * does not come back (finalising under it could crash the process).
   */
  async close(waitMs = 2000): Promise<void> {
    const lib = this.#lib;
    if (lib === null) return;
    const t0 = Date.now();
    while (this.#inFlight > 0 && Date.now() - t0 < waitMs) await new Promise((r) => setTimeout(r, 10));
    if (this.#inFlight > 0) return;
    this.#lib = null;
    finalize(lib);
  }
}

function finalize(lib: P11.PKCS11): void {
  try {
    lib.C_Finalize();
  } catch {
    // already gone
  }
  unload(lib);
}

function unload(lib: P11.PKCS11): void {
  try {
    lib.close();
  } catch {
    // not loaded
  }
}

function matches(value: string | undefined, actual: string): boolean {
  return value === undefined || value === trim(actual);
}

function findSlot(lib: P11.PKCS11, p11: Pkcs11Module, uri: Pkcs11Uri): Buffer {
  let slots: Buffer[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw tokenErrorOf(err, 'cannot list the slots');
  }
  const info = lib.C_GetInfo();
  if (!matches(uri.libraryManufacturer, info.manufacturerID) || !matches(uri.libraryDescription, info.libraryDescription))
    throw new TokenError('the module is not the library the URI names (library-manufacturer / library-description)', 'no-token');
  if (
    uri.libraryVersion &&
    (uri.libraryVersion.major !== info.libraryVersion.major || uri.libraryVersion.minor !== info.libraryVersion.minor)
  )
    throw new TokenError('the module is not the library version the URI names', 'no-token');
  const found = slots.filter((slot) => {
    const s = lib.C_GetSlotInfo(slot);
    if (uri.slotId !== undefined && slot.readUIntLE(0, Math.min(6, slot.length)) !== uri.slotId) return false;
    if (!matches(uri.slotDescription, s.slotDescription) || !matches(uri.slotManufacturer, s.manufacturerID)) return false;
    const t = lib.C_GetTokenInfo(slot);
    if (!(t.flags & p11.CKF_TOKEN_INITIALIZED)) return false;
    return (
      matches(uri.token, t.label) &&
      matches(uri.manufacturer, t.manufacturerID) &&
      matches(uri.model, t.model) &&
      matches(uri.serial, t.serialNumber)
    );
  });
  if (found.length === 0)
    throw new TokenError(
      `no initialised token matches the URI${uri.token === undefined ? '' : ` (token="${uri.token}")`}: ${slots.length} token(s) present`,
      'no-token',
    );
  if (found.length > 1)
    throw new TokenError(
      `${found.length} tokens match the URI: add token=, serial= or slot-id= so that exactly one key is meant`,
      'no-token',
    );
  return found[0]!;
}

function login(lib: P11.PKCS11, p11: Pkcs11Module, session: Buffer, t: P11.TokenInfo, pin: string): void {
  // The token says when a PIN is locked or one more wrong one would lock it: then no attempt is made.
  if (t.flags & p11.CKF_USER_PIN_LOCKED) throw new TokenError('the token reports the user PIN locked', 'pin-locked', 'CKR_PIN_LOCKED');
  if (t.flags & p11.CKF_USER_PIN_FINAL_TRY)
    throw new TokenError('the token reports that one more wrong PIN locks it: no attempt is made', 'pin-locked', null);
  if (!(t.flags & p11.CKF_USER_PIN_INITIALIZED))
    throw new TokenError('the token has no user PIN set (initialise it first)', 'pin-locked', 'CKR_USER_PIN_NOT_INITIALIZED');
  if (pin === '') throw new TokenError('the token needs a PIN and none is set', 'pin-incorrect', null);
  try {
    lib.C_Login(session, p11.CKU_USER, pin);
  } catch (err) {
    if (/CKR_USER_ALREADY_LOGGED_IN/.test((err as Error).message)) return;
    throw tokenErrorOf(err, 'the token refused the login');
  }
}

interface Pair {
  priv: Buffer;
  pub: Buffer | null;
}

function keyTemplate(p11: Pkcs11Module, cls: number, uri: Pkcs11Uri): P11.Template {
  const t: P11.Template = [
    { type: p11.CKA_CLASS, value: cls },
    { type: p11.CKA_KEY_TYPE, value: p11.CKK_EC },
  ];
  if (uri.object !== undefined) t.push({ type: p11.CKA_LABEL, value: uri.object });
  if (uri.id !== undefined) t.push({ type: p11.CKA_ID, value: uri.id });
  return t;
}

function find(lib: P11.PKCS11, session: Buffer, template: P11.Template): Buffer[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, 4);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

function findPair(lib: P11.PKCS11, p11: Pkcs11Module, session: Buffer, uri: Pkcs11Uri): Pair | null {
  const privs = find(lib, session, keyTemplate(p11, p11.CKO_PRIVATE_KEY, uri));
  if (privs.length === 0) return null;
  if (privs.length > 1) throw new TokenError(`${privs.length} private EC keys match the URI: name one with object= and id=`, 'key-missing');
  // The public half has the same CKA_ID (PKCS#11 pairs keys by it); fall back to the URI's own terms.
  const [idAttr] = lib.C_GetAttributeValue(session, privs[0]!, [{ type: p11.CKA_ID }]);
  const byId =
    idAttr?.value && idAttr.value.length > 0
      ? find(lib, session, [
          { type: p11.CKA_CLASS, value: p11.CKO_PUBLIC_KEY },
          { type: p11.CKA_ID, value: idAttr.value },
        ])
      : [];
  const pubs = byId.length > 0 ? byId : find(lib, session, keyTemplate(p11, p11.CKO_PUBLIC_KEY, uri));
  return { priv: privs[0]!, pub: pubs[0] ?? null };
}

async function generate(lib: P11.PKCS11, p11: Pkcs11Module, session: Buffer, uri: Pkcs11Uri, curve: Curve): Promise<Pair> {
  const id = uri.id ?? Buffer.from(uri.object ?? 'device-key', 'utf8');
  const label = uri.object ?? 'device-key';
  const common = [
    { type: p11.CKA_TOKEN, value: true },
    { type: p11.CKA_ID, value: id },
    { type: p11.CKA_LABEL, value: label },
  ];
  try {
    const kp = await lib.C_GenerateKeyPairAsync(
      session,
      { mechanism: p11.CKM_EC_KEY_PAIR_GEN },
      [...common, { type: p11.CKA_EC_PARAMS, value: Buffer.from(EC_PARAMS[curve], 'hex') }, { type: p11.CKA_VERIFY, value: true }],
      [
        ...common,
        { type: p11.CKA_PRIVATE, value: true },
        { type: p11.CKA_SIGN, value: true },
        // Never leaves the token, in any form: not in clear (sensitive), not wrapped (extractable false).
        { type: p11.CKA_SENSITIVE, value: true },
        { type: p11.CKA_EXTRACTABLE, value: false },
      ],
    );
    return { priv: kp.privateKey, pub: kp.publicKey };
  } catch (err) {
    const e = tokenErrorOf(err, `the token could not create a ${curve} key`);
    // A token that has no such curve says so in many ways (tpm2-pkcs11 answers CKR_VENDOR_DEFINED for secp256k1).
    if (e.kind === 'other' || CURVE.has(e.ckr ?? ''))
      throw new TokenError(`the token cannot create a ${curve} key (${e.ckr ?? e.message})`, 'curve', e.ckr);
    throw e;
  }
}

function readInfo(lib: P11.PKCS11, p11: Pkcs11Module, session: Buffer, pair: Pair, t: P11.TokenInfo, created: boolean): TokenKeyInfo {
  const [label, id, params] = lib.C_GetAttributeValue(session, pair.priv, [
    { type: p11.CKA_LABEL },
    { type: p11.CKA_ID },
    { type: p11.CKA_EC_PARAMS },
  ]);
  const paramsHex = params!.value.toString('hex');
  const curve = (Object.keys(EC_PARAMS) as Curve[]).find((c) => EC_PARAMS[c] === paramsHex);
  if (curve === undefined) throw new TokenError(`the key is on a curve the meter does not sign with (EC params ${paramsHex})`, 'curve');
  if (pair.pub === null) throw new TokenError('the token holds no public key object beside the private key (same CKA_ID)', 'key-missing');
  const [point] = lib.C_GetAttributeValue(session, pair.pub, [{ type: p11.CKA_EC_POINT }]);
  const publicKeyHex = ecPointHex(point!.value);
  const bool = (type: number): boolean | null => {
    try {
      const [a] = lib.C_GetAttributeValue(session, pair.priv, [{ type }]);
      return a?.value && a.value.length > 0 ? a.value[0] !== 0 : null;
    } catch {
      return null; // the token will not say
    }
  };
  return {
    curve,
    publicKeyHex,
    deviceId: deviceAddress(publicKeyHex),
    label: label!.value.toString('utf8'),
    idHex: id!.value.toString('hex'),
    token: { label: trim(t.label), manufacturer: trim(t.manufacturerID), model: trim(t.model), serial: trim(t.serialNumber) },
    sensitive: bool(p11.CKA_SENSITIVE),
    extractable: bool(p11.CKA_EXTRACTABLE),
    alwaysSensitive: bool(p11.CKA_ALWAYS_SENSITIVE),
    neverExtractable: bool(p11.CKA_NEVER_EXTRACTABLE),
    local: bool(p11.CKA_LOCAL),
    created,
  };
}

/**
 * CKA_EC_POINT is the DER OCTET STRING around the uncompressed point (PKCS#11 2.40); some older
 * modules return the bare point. Either way: `04` + X + Y.
 */
export function ecPointHex(value: Buffer): string {
  let b = value;
  if (b[0] === 0x04 && b.length === 67 && b[1] === 65) b = b.subarray(2); // OCTET STRING, short length form
  if (b.length !== 65 || b[0] !== 0x04)
    throw new TokenError(`the token's public key is not an uncompressed P-256/secp256k1 point (${value.length} bytes)`, 'curve');
  return b.toString('hex');
}
