import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PIN_REFUSED_FILE, clearPinRefusal, recordPinRefusal, refusalFor } from '../src/key/pin-guard.js';
import { describeTokenFault } from '../src/key/token-key.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const dir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'pm-pin-'));
  dirs.push(d);
  return d;
};
const who = { pin: '2468-wrong', module: '/usr/lib/softhsm/libsofthsm2.so', keyUri: 'pkcs11:token=meter;object=device-key' };

describe('the PIN guard: a PIN the token refused is not tried again', () => {
  it('remembers a refusal for exactly this PIN, module and key; another PIN (the configuration changed) is free to try', () => {
    const d = dir();
    expect(refusalFor(d, who)).toBeNull();
    expect(recordPinRefusal(d, who, 1000)).toBe(1);
    expect(refusalFor(d, who)).toMatchObject({ attempts: 1, refusedAtMs: 1000 });
    expect(refusalFor(d, { ...who, pin: '2468-right' })).toBeNull();
    expect(refusalFor(d, { ...who, module: '/other.so' })).toBeNull();
    expect(refusalFor(d, { ...who, keyUri: 'pkcs11:token=meter;object=other' })).toBeNull();
    // An operator's retry of the same PIN counts on.
    expect(recordPinRefusal(d, who, 2000)).toBe(2);
    // A different refused PIN starts its own count.
    expect(recordPinRefusal(d, { ...who, pin: 'another' }, 3000)).toBe(1);
    expect(refusalFor(d, who)).toBeNull();
  });

  it('never writes the PIN: a salted hash only, in a file only its owner can read; cleared when the token takes the PIN', () => {
    const d = dir();
    recordPinRefusal(d, who, 1000);
    const file = join(d, PIN_REFUSED_FILE);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(who.pin);
    const rec = JSON.parse(text) as { salt: string; pinHash: string };
    expect(rec.pinHash).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o077).toBe(0);
    // The same PIN under another salt gives another hash (no lookup table across meters).
    const d2 = dir();
    recordPinRefusal(d2, who, 1000);
    expect(JSON.parse(readFileSync(join(d2, PIN_REFUSED_FILE), 'utf8')).pinHash).not.toBe(rec.pinHash);
    clearPinRefusal(d);
    expect(refusalFor(d, who)).toBeNull();
  });

  it('words each fault for the screen (short) and for the log and doctor (what to do)', () => {
    expect(describeTokenFault('pin-incorrect', 'CKR_PIN_INCORRECT')).toMatchObject({ reason: 'wrong PIN (not retried)' });
    expect(describeTokenFault('pin-incorrect', 'x').advice).toMatch(/POWER_METER_PKCS11_PIN.*--retry-pin/);
    expect(describeTokenFault('no-token', 'x').advice).toMatch(/dtoverlay=tpm-slb9670.*tss/);
    expect(describeTokenFault('device', 'x').reason).toBe('token gone or failing');
    for (const k of [
      'module',
      'no-token',
      'pin-incorrect',
      'pin-locked',
      'key-missing',
      'curve',
      'other-key',
      'timeout',
      'device',
      'other',
    ] as const)
      expect(describeTokenFault(k, 'detail').reason.length).toBeLessThanOrEqual(28);
  });
});
