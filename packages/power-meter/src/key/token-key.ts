import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Pkcs11Key,
  TokenError,
  formatPkcs11Uri,
  parsePkcs11Uri,
  type Curve,
  type DigestSigner,
  type TokenFaultKind,
  type TokenKeyInfo,
} from '@power-meter/w3bstream';
import { clearPinRefusal, recordPinRefusal, refusalFor } from './pin-guard.js';

/**
 * The meter's key in a PKCS#11 token, kept usable over time: a token that goes away or is reset
 * (an unplugged secure element, a TPM reset, a module error) is a fault the meter measures
 * through, like a sensor fault; this object reconnects on its own with a growing delay, and
 * checks that the token still holds the same key before anything is signed again. A refused PIN
 * is never retried on its own (pin-guard.ts).
 *
 * The public key is remembered beside the sequence floor (`identity/token-key.json`: public data
 * only), so a meter whose token is missing at start still knows its device address, keeps
 * measuring and holds the readings until the token is back.
 */
export const TOKEN_KEY_FILE = 'token-key.json';

export interface TokenKeyRecord {
  module: string;
  keyUri: string;
  curve: Curve;
  publicKeyHex: string;
  deviceId: string;
  token: string;
  /** When the key was first seen (or created) by this meter. */
  firstSeenMs: number;
}

export interface TokenKeyStatus {
  state: 'ok' | 'fault';
  kind: TokenFaultKind | 'other-key' | null;
  /** Short, for the screen and state.json: "wrong PIN (not retried)". */
  reason: string | null;
  /** What to do, for the log and doctor. */
  advice: string | null;
  /** Logins with the configured PIN that the token refused (remembered across restarts). */
  pinAttempts: number;
  /** When the current fault began, Unix ms. */
  sinceMs: number | null;
}

export interface TokenKeyOptions {
  module: string;
  keyUri: string;
  pin: string;
  identityDir: string;
  log: (line: string) => void;
  warn: (line: string) => void;
  /** Create the key in the token when it is missing (the `identity` command only, never the daemon). */
  createCurve?: Curve;
  /** Try a PIN the token refused before (the operator's `identity --retry-pin`). */
  retryPin?: boolean;
  /** Reconnect delays, ms (tests shorten them). */
  retryMs?: { first: number; max: number };
  now?: () => number;
}

/** The words for each fault: a short reason (screen) and the advice (log, doctor). */
export function describeTokenFault(kind: TokenFaultKind | 'other-key', detail: string): { reason: string; advice: string } {
  switch (kind) {
    case 'module':
      return {
        reason: 'PKCS#11 module not loadable',
        advice: `${detail}. Check --pkcs11-module (the token's library: libtpm2-pkcs11-1 for a TPM, the vendor's for a secure element) and that npm's pkcs11js built (npm ci)`,
      };
    case 'no-token':
      return {
        reason: 'token not found',
        advice: `${detail}. Is the TPM or secure element connected and enabled (TPM HAT: dtoverlay=tpm-slb9670 in /boot/firmware/config.txt, /dev/tpmrm0, the service user in group tss)? Does the URI's token= match the token label?`,
      };
    case 'pin-incorrect':
      return {
        reason: 'wrong PIN (not retried)',
        advice: `${detail}. The meter does not try this PIN again (a token locks after a few wrong PINs): put the right PIN in POWER_METER_PKCS11_PIN in /etc/power-meter/power-meter.env and restart the meter; to try the same PIN again on purpose, run power-meter identity --retry-pin`,
      };
    case 'pin-locked':
      return {
        reason: 'PIN locked',
        advice: `${detail}. No login is attempted. Unlock or reset the user PIN with the token's security officer PIN (tpm2_ptool changepin / pkcs11-tool --init-pin), then restart the meter`,
      };
    case 'key-missing':
      return {
        reason: 'key not in token',
        advice: `${detail}. power-meter identity --key-uri … creates it, but that is a new device address: if this meter was registered with a key in this token, the token was reset or replaced`,
      };
    case 'curve':
      return { reason: 'key on another curve', advice: detail };
    case 'other-key':
      return {
        reason: 'another key in token',
        advice: `${detail}. The meter signs only with the key its device address belongs to: put the original token back, or start over as a new device (move identity/token-key.json away, run power-meter identity)`,
      };
    case 'timeout':
      return { reason: 'token not answering', advice: `${detail}; readings are kept unsigned and signed when it answers again` };
    default:
      return { reason: 'token gone or failing', advice: `${detail}; reconnecting, readings are kept unsigned and signed when it is back` };
  }
}

export class TokenKeyError extends Error {
  constructor(
    message: string,
    readonly kind: TokenFaultKind | 'other-key',
  ) {
    super(message);
    this.name = 'TokenKeyError';
  }
}

export class TokenKey implements DigestSigner {
  readonly curve: Curve;
  readonly publicKeyHex: string;
  readonly deviceId: string;
  readonly keyUri: string;
  #key: Pkcs11Key | null;
  #status: TokenKeyStatus;
  #timer: NodeJS.Timeout | null = null;
  #retryDelayMs: number;
  #reconnecting = false;
  #closed = false;
  /** The old session's teardown: a reconnect waits for it (finalising is per process, and would end the new session too). */
  #closing: Promise<void> = Promise.resolve();
  #listeners: Array<(s: TokenKeyStatus) => void> = [];
  /** What the token said about the key when it was opened (attributes read back). */
  info: TokenKeyInfo | null;

  private constructor(
    private readonly opts: TokenKeyOptions,
    record: TokenKeyRecord,
    key: Pkcs11Key | null,
    status: TokenKeyStatus,
  ) {
    this.curve = record.curve;
    this.publicKeyHex = record.publicKeyHex;
    this.deviceId = record.deviceId;
    this.keyUri = record.keyUri;
    this.#key = key;
    this.info = key?.info ?? null;
    this.#status = status;
    this.#retryDelayMs = opts.retryMs?.first ?? 2000;
  }

  /**
   * Opens the key. With a remembered public key for this module and URI, a token that cannot be
   * used now gives a key in the fault state (the meter measures on, and this reconnects); without
   * one (first start, or another URI) the failure is thrown: there is no device address yet.
   */
  static async open(opts: TokenKeyOptions): Promise<TokenKey> {
    const keyUri = formatPkcs11Uri(parsePkcs11Uri(opts.keyUri));
    const known = readRecord(opts.identityDir, opts.module, keyUri);
    const now = opts.now ?? Date.now;
    try {
      const key = await openChecked(opts, keyUri, known);
      const record: TokenKeyRecord = known ?? {
        module: opts.module,
        keyUri,
        curve: key.curve,
        publicKeyHex: key.publicKeyHex,
        deviceId: key.deviceId,
        token: key.info.token.label,
        firstSeenMs: now(),
      };
      if (known === null) writeRecord(opts.identityDir, record);
      return new TokenKey(opts, record, key, { state: 'ok', kind: null, reason: null, advice: null, pinAttempts: 0, sinceMs: null });
    } catch (err) {
      if (known === null) throw err;
      const t = new TokenKey(opts, known, null, { state: 'ok', kind: null, reason: null, advice: null, pinAttempts: 0, sinceMs: null });
      t.fault(err);
      return t;
    }
  }

  status(): TokenKeyStatus {
    return this.#status;
  }

  ready(): boolean {
    return this.#key !== null && this.#status.state === 'ok';
  }

  onStatus(fn: (s: TokenKeyStatus) => void): void {
    this.#listeners.push(fn);
  }

  async signDigest(digest: Uint8Array): Promise<Uint8Array> {
    const key = this.#key;
    if (key === null || this.#status.state !== 'ok')
      throw new TokenKeyError(
        `the key cannot sign now: ${this.#status.reason ?? 'not open'}`,
        (this.#status.kind ?? 'device') as TokenFaultKind,
      );
    try {
      return await key.signDigest(digest);
    } catch (err) {
      this.fault(err);
      throw err;
    }
  }

  /** Records a fault, says it once, and schedules a reconnect unless only a person can fix it. */
  private fault(err: unknown): void {
    const kind: TokenFaultKind | 'other-key' = err instanceof TokenError || err instanceof TokenKeyError ? err.kind : 'device';
    const detail = err instanceof Error ? err.message : String(err);
    const words = describeTokenFault(kind, detail);
    const refusal = refusalFor(this.opts.identityDir, { pin: this.opts.pin, module: this.opts.module, keyUri: this.keyUri });
    const before = this.#status;
    this.#status = {
      state: 'fault',
      kind,
      reason: words.reason,
      advice: words.advice,
      pinAttempts: refusal?.attempts ?? 0,
      sinceMs: before.state === 'fault' ? before.sinceMs : (this.opts.now ?? Date.now)(),
    };
    if (before.reason !== words.reason) this.opts.warn(`signing key fault: ${words.reason}: ${words.advice}`);
    const key = this.#key;
    this.#key = null;
    // Nothing of the old session is usable after a reset or an unplug: finalise, and load afresh.
    if (key !== null) this.#closing = key.close(30_000);
    for (const l of this.#listeners) l(this.#status);
    if (kind === 'pin-incorrect' || kind === 'pin-locked') return; // a person must act (pin-guard.ts)
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.#closed || this.#timer !== null) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, this.opts.retryMs?.max ?? 60_000);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    if (this.#closed || this.#reconnecting) return;
    this.#reconnecting = true;
    try {
      await this.#closing;
      const record = readRecord(this.opts.identityDir, this.opts.module, this.keyUri);
      const key = await openChecked(this.opts, this.keyUri, record);
      if (this.#closed) {
        await key.close();
        return;
      }
      this.#key = key;
      this.info = key.info;
      this.#retryDelayMs = this.opts.retryMs?.first ?? 2000;
      const was = this.#status;
      this.#status = { state: 'ok', kind: null, reason: null, advice: null, pinAttempts: 0, sinceMs: null };
      this.opts.log(
        `signing key back: token "${key.info.token.label}" answers with this meter's key (device ${this.deviceId}) after ${was.reason ?? 'a fault'}`,
      );
      for (const l of this.#listeners) l(this.#status);
    } catch (err) {
      this.fault(err);
    } finally {
      this.#reconnecting = false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const key = this.#key;
    this.#key = null;
    await key?.close();
  }
}

/**
 * Opens the key in the token with the PIN guard around the login, and checks that it is the key
 * this meter knows (a reset token with a new key of the same label is not this device).
 */
async function openChecked(opts: TokenKeyOptions, keyUri: string, known: TokenKeyRecord | null): Promise<Pkcs11Key> {
  const who = { pin: opts.pin, module: opts.module, keyUri };
  const refused = refusalFor(opts.identityDir, who);
  if (refused !== null && !opts.retryPin)
    throw new TokenError(
      `the token refused this PIN at ${new Date(refused.refusedAtMs).toISOString()} (${refused.attempts} time(s))`,
      'pin-incorrect',
      'CKR_PIN_INCORRECT',
    );
  let key: Pkcs11Key;
  try {
    key = await Pkcs11Key.open({
      modulePath: opts.module,
      uri: parsePkcs11Uri(keyUri),
      pin: opts.pin,
      createCurve: known === null ? opts.createCurve : undefined,
    });
  } catch (err) {
    if (err instanceof TokenError && err.kind === 'pin-incorrect' && err.ckr !== null) {
      mkdirSync(opts.identityDir, { recursive: true, mode: 0o700 });
      recordPinRefusal(opts.identityDir, who, (opts.now ?? Date.now)());
    }
    throw err;
  }
  clearPinRefusal(opts.identityDir);
  if (known !== null && key.publicKeyHex !== known.publicKeyHex) {
    await key.close();
    throw new TokenKeyError(
      `the token holds another key under ${keyUri} (device ${key.deviceId}) than this meter's (device ${known.deviceId})`,
      'other-key',
    );
  }
  return key;
}

/**
 * The public key this meter remembers for a key in a token (`identity/token-key.json`), without
 * opening the token: for what needs only the device's address (ioID status, doctor's ioID check).
 */
export function rememberedTokenKey(identityDir: string, module: string, keyUri: string): TokenKeyRecord | null {
  try {
    return readRecord(identityDir, module, formatPkcs11Uri(parsePkcs11Uri(keyUri)));
  } catch {
    return null;
  }
}

function readRecord(identityDir: string, module: string, keyUri: string): TokenKeyRecord | null {
  try {
    const r = JSON.parse(readFileSync(join(identityDir, TOKEN_KEY_FILE), 'utf8')) as TokenKeyRecord;
    return r.module === module && r.keyUri === keyUri && /^04[0-9a-f]{128}$/.test(r.publicKeyHex) ? r : null;
  } catch {
    return null;
  }
}

/** The remembered public key (atomic replace; public data only). */
export function writeRecord(identityDir: string, r: TokenKeyRecord): void {
  mkdirSync(identityDir, { recursive: true, mode: 0o700 });
  const file = join(identityDir, TOKEN_KEY_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
