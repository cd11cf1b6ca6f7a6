import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recoverCandidates, recoverPublicKey, recoverSignerByAddress } from '../src/recover.js';
import { CURVES, loadOrCreateIdentity, parseSignature, type Curve } from '../src/index.js';
import { tempDir } from './helpers.js';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();
const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();

describe('public-key recovery', () => {
  for (const curve of ['p256', 'secp256k1'] as Curve[]) {
    it(`${curve}: one recovery id gives the signer's key, and openssl verifies the signature with that key`, () => {
      const dir = tempDir();
      const id = loadOrCreateIdentity(join(dir, 'identity'), { curve });
      const text = '{"sensor_reading":2.5,"timestamp":1764000000}';
      const { r, s } = parseSignature(id.sign(text, 'raw'));
      const signer = recoverSignerByAddress(sha256(text), r, s, id.deviceId.toUpperCase().replace('0X', '0x'));
      expect(signer).toMatchObject({ curve, publicKeyHex: id.publicKeyHex, address: id.deviceId });
      expect([0, 1]).toContain(signer!.recovery);
      // Independent check: openssl, given only the recovered key, verifies the signature.
      writeFileSync(join(dir, 'pub.der'), Buffer.from(CURVES[curve].spkiPrefixHex + signer!.publicKeyHex, 'hex'));
      writeFileSync(join(dir, 'data.txt'), text);
      writeFileSync(join(dir, 'sig.der'), Buffer.from(id.sign(text, 'der'), 'hex'));
      // (a second signature by the same key: ECDSA is randomised, the key is the same)
      const args = ['dgst', '-sha256', '-verify', join(dir, 'pub.der'), '-keyform', 'DER', '-signature', join(dir, 'sig.der')];
      expect(openssl([...args, join(dir, 'data.txt')]).trim()).toBe('Verified OK');
    });

    it(`${curve}: another text or another address finds no signer; every candidate is a different key`, () => {
      const id = loadOrCreateIdentity(join(tempDir(), 'identity'), { curve });
      const text = '{"sensor_reading":12.0,"timestamp":1764000005}';
      const { r, s } = parseSignature(id.sign(text, 'raw'));
      expect(recoverSignerByAddress(sha256(text.replace('12.0', '12.5')), r, s, id.deviceId)).toBeNull();
      expect(recoverSignerByAddress(sha256(text), r, s, `0x${'11'.repeat(20)}`)).toBeNull();
      const candidates = recoverCandidates(curve, sha256(text), r, s);
      expect(candidates.length).toBeGreaterThanOrEqual(2); // ids 0 and 1 always name a point
      expect(new Set(candidates.map((c) => c.publicKeyHex)).size).toBe(candidates.length);
      expect(candidates.filter((c) => c.publicKeyHex === id.publicKeyHex)).toHaveLength(1);
    });
  }

  it('a P-256 signer is not found when only secp256k1 is tried (the curve list is honoured)', () => {
    const id = loadOrCreateIdentity(join(tempDir(), 'identity'), { curve: 'p256' });
    const text = '{"sensor_reading":1.0,"timestamp":1764000010}';
    const { r, s } = parseSignature(id.sign(text, 'raw'));
    expect(recoverSignerByAddress(sha256(text), r, s, id.deviceId, ['secp256k1'])).toBeNull();
    expect(recoverSignerByAddress(sha256(text), r, s, id.deviceId, ['p256'])?.curve).toBe('p256');
  });

  it('secp256k1 with the well-known private key 1: the recovered address is Ethereum\u2019s 0x7E5F\u2026Bdf', () => {
    // Private key 1's public key is the generator G; its Ethereum address is a widely published value,
    // so this checks recovery and the address derivation against Ethereum itself, not our own code.
    const d = Buffer.alloc(32);
    d[31] = 1;
    const G = {
      x: '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
      y: '483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8',
    };
    const key = createPrivateKey({
      key: {
        kty: 'EC',
        crv: 'secp256k1',
        d: d.toString('base64url'),
        x: Buffer.from(G.x, 'hex').toString('base64url'),
        y: Buffer.from(G.y, 'hex').toString('base64url'),
      },
      format: 'jwk',
    });
    const text = 'any text';
    const sig = sign('sha256', Buffer.from(text), { key, dsaEncoding: 'ieee-p1363' });
    const r = BigInt(`0x${sig.subarray(0, 32).toString('hex')}`);
    const s = BigInt(`0x${sig.subarray(32).toString('hex')}`);
    const signer = recoverSignerByAddress(sha256(text), r, s, '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
    expect(signer).toMatchObject({ curve: 'secp256k1', publicKeyHex: `04${G.x}${G.y}` });
  });

  it('out-of-range r or s recovers nothing instead of throwing', () => {
    const n = BigInt(`0x${CURVES.p256.orderHex}`);
    expect(recoverPublicKey('p256', sha256('x'), 0n, 1n, 0)).toBeNull();
    expect(recoverPublicKey('p256', sha256('x'), 1n, n, 0)).toBeNull();
    expect(recoverSignerByAddress(sha256('x'), n + 5n, 1n, `0x${'00'.repeat(20)}`)).toBeNull();
  });
});
