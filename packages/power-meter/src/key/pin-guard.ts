import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A PIN the token refused is never tried again on its own: tokens count wrong PINs and lock
 * (a TPM's dictionary-attack lockout, a smart card's retry counter), and a meter that retried at
 * every restart would lock its own key. The refusal is remembered beside the key, in
 * `identity/pkcs11-pin-refused.json`, with a salted scrypt hash of the refused PIN, the module and
 * the key URI: a start with the same three makes no attempt; a changed PIN (the configuration
 * changed) is tried once. `power-meter identity --retry-pin` is the operator's way to try the same
 * PIN again (after resetting it on the token, say).
 *
 * Why a hash of the PIN may be on disk: the file is the service user's (0600 in a 0700 directory),
 * and that user can read the running meter's environment (/proc/PID/environ), which holds the
 * right PIN itself; the hash of a refused PIN gives it nothing more. The PIN itself is never written.
 */
export const PIN_REFUSED_FILE = 'pkcs11-pin-refused.json';

export interface PinRefusal {
  /** When the token last refused this PIN, Unix ms. */
  refusedAtMs: number;
  /** Logins with this PIN the token refused (1 unless an operator retried). */
  attempts: number;
  module: string;
  keyUri: string;
  salt: string;
  pinHash: string;
}

const hash = (pin: string, salt: string): string => scryptSync(pin, Buffer.from(salt, 'hex'), 32, { N: 1 << 14 }).toString('hex');

export function readPinRefusal(identityDir: string): PinRefusal | null {
  try {
    const r = JSON.parse(readFileSync(join(identityDir, PIN_REFUSED_FILE), 'utf8')) as PinRefusal;
    return typeof r.pinHash === 'string' && typeof r.salt === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** The refusal that applies to this PIN, module and key, or null (another PIN: the configuration changed). */
export function refusalFor(identityDir: string, c: { pin: string; module: string; keyUri: string }): PinRefusal | null {
  const r = readPinRefusal(identityDir);
  if (r === null || r.module !== c.module || r.keyUri !== c.keyUri) return null;
  return timingSafeEqual(Buffer.from(hash(c.pin, r.salt), 'hex'), Buffer.from(r.pinHash, 'hex')) ? r : null;
}

/** Records a refusal (counting repeats of the same PIN); returns the attempts so far. */
export function recordPinRefusal(identityDir: string, c: { pin: string; module: string; keyUri: string }, nowMs: number): number {
  const same = refusalFor(identityDir, c);
  const salt = same?.salt ?? randomBytes(16).toString('hex');
  const r: PinRefusal = {
    refusedAtMs: nowMs,
    attempts: (same?.attempts ?? 0) + 1,
    module: c.module,
    keyUri: c.keyUri,
    salt,
    pinHash: same?.pinHash ?? hash(c.pin, salt),
  };
  const file = join(identityDir, PIN_REFUSED_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(r)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return r.attempts;
}

/** The token took the PIN: nothing to remember. */
export function clearPinRefusal(identityDir: string): void {
  rmSync(join(identityDir, PIN_REFUSED_FILE), { force: true });
}
