import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CURVES, IdentityError, KEY_FILE, buildMessage, dataText, deviceAddress, formatReading, loadOrCreateIdentity, verifyBody, type Curve } from '../src/index.js';

// The verified real example from the tutorial's applet fixtures (w3bstream.md section 3).
const VECTOR = {
  data: '{"sensor_reading":1.6163222834016864,"timestamp":1681943510756}',
  publicKey: '040e2d0a3591eb27ad3b55038603c3813310fdaf0f15346016a576841790fb020756cd31af40e3c6d543fb332062d47dd717490f2cc28d053c63de3ae892ec091b',
  signature: '3045022025891d5d149de8ad612f71687f6e4a9a13335d5cb35c0e6f54237ea8715084c8022100cf2e3bf7304ddf417dc75d52f0403013901a146636203ad138adb8ea3750b85f',
};
const vectorBody = (data: string) => `{"data":${data},"signature":"${VECTOR.signature}","public_key":"${VECTOR.publicKey}"}`;

describe('message codec (w3bstream.md sections 2-3)', () => {
  it('verifies the tutorial test vector, and not with whitespace added to the data text', () => {
    expect(verifyBody(vectorBody(VECTOR.data))).toMatchObject({ ok: true, curve: 'p256', sensorReading: 1.6163222834016864 });
    const spaced = VECTOR.data.replace(':1.6', ': 1.6');
    const r = verifyBody(vectorBody(spaced));
    expect(r.ok).toBe(false);
    expect(r.reason).toBe('signature does not verify');
  });

  it('always writes sensor_reading with a decimal point, timestamp as an integer', () => {
    expect(formatReading(12)).toBe('12.0');
    expect(formatReading(0)).toBe('0.0');
    expect(formatReading(-0)).toBe('0.0');
    expect(formatReading(12.34)).toBe('12.34');
    expect(formatReading(1e21)).toBe('1e+21');
    expect(() => formatReading(NaN)).toThrow(RangeError);
    expect(dataText(8, 1_764_000_123_456)).toBe('{"sensor_reading":8.0,"timestamp":1764000123}');
    expect(dataText(8, 1_764_000_123_456, 'ms')).toBe('{"sensor_reading":8.0,"timestamp":1764000123456}');
  });

  it('refuses bodies the applet would refuse', () => {
    expect(verifyBody('nope').reason).toBe('body is not JSON');
    expect(verifyBody(vectorBody('{"sensor_reading":12,"timestamp":1681943510756}')).reason).toMatch(/not a float/);
    expect(verifyBody(vectorBody('{"sensor_reading":1.5,"timestamp":0}')).reason).toMatch(/timestamp/);
    expect(verifyBody('{"data":{"sensor_reading":1.5,"timestamp":1},"signature":"","public_key":"04"}').reason).toBe('signature missing or not a string');
  });

  for (const curve of ['p256', 'secp256k1'] as Curve[]) {
    for (const encoding of ['raw', 'der'] as const) {
      it(`signs on ${curve} (${encoding}) with low S, verifies, and openssl agrees`, () => {
        const dir = mkdtempSync(join(tmpdir(), 'id-'));
        const id = loadOrCreateIdentity(join(dir, 'identity'), { curve });
        const msg = buildMessage(id, { powerW: 8, timestampMs: 1_764_000_000_000 }, { encoding });
        expect(msg.body).toBe(`{"data":${msg.dataText},"signature":"${msg.signature}","public_key":"${id.publicKey}"}`);
        expect(verifyBody(msg.body)).toMatchObject({ ok: true, curve });
        if (encoding === 'raw') expect(msg.signature).toMatch(/^[0-9a-f]{128}$/);
        const sHex = encoding === 'raw' ? msg.signature.slice(64) : derS(msg.signature);
        expect(BigInt(`0x${sHex}`) <= BigInt(`0x${CURVES[curve].orderHex}`) / 2n).toBe(true);

        // Independent check with the openssl command-line tool (it wants DER signatures).
        const pubDer = Buffer.from(CURVES[curve].spkiPrefixHex + id.publicKey, 'hex');
        writeFileSync(join(dir, 'pub.der'), pubDer);
        writeFileSync(join(dir, 'data.txt'), msg.dataText);
        writeFileSync(join(dir, 'sig.der'), Buffer.from(encoding === 'der' ? msg.signature : rawToDer(msg.signature), 'hex'));
        const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.der'), '-keyform', 'DER', '-signature', join(dir, 'sig.der'), join(dir, 'data.txt')]).toString();
        expect(out.trim()).toBe('Verified OK');
        writeFileSync(join(dir, 'data.txt'), `${msg.dataText} `);
        expect(() => execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.der'), '-keyform', 'DER', '-signature', join(dir, 'sig.der'), join(dir, 'data.txt')], { stdio: 'pipe' })).toThrow();
      });
    }
  }
});

function derS(der: string): string {
  const b = Buffer.from(der, 'hex');
  const rLen = b[3]!;
  const sLen = b[5 + rLen]!;
  return b.subarray(6 + rLen, 6 + rLen + sLen).toString('hex');
}

function rawToDer(raw: string): string {
  const int = (h: string) => {
    let b = Buffer.from(h, 'hex');
    while (b.length > 1 && b[0] === 0 && !(b[1]! & 0x80)) b = b.subarray(1);
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return Buffer.concat([Buffer.from([2, b.length]), b]);
  };
  const body = Buffer.concat([int(raw.slice(0, 64)), int(raw.slice(64))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]).toString('hex');
}

describe('identity', () => {
  it('creates the key 0600 in a 0700 directory, then loads the same identity', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'id-')), 'identity');
    const a = loadOrCreateIdentity(dir);
    expect(a.created).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(a.publicKey).toMatch(/^04[0-9a-f]{128}$/);
    expect(a.address).toMatch(/^0x[0-9a-f]{40}$/);
    const b = loadOrCreateIdentity(dir);
    expect(b.created).toBe(false);
    expect(b.address).toBe(a.address);
    expect(JSON.stringify(b)).not.toContain('PRIVATE');
  });

  it('derives the address as keccak256 of X||Y (known Ethereum vector)', () => {
    // Private key 1 on secp256k1: public point G, address 0x7e5f4552091a69125d5dfcb7b8c2659029395bdf.
    const g = '0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8';
    expect(deviceAddress(g)).toBe('0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');
  });

  it('refuses a key others can read, and a corrupt key, without replacing it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'id-')), 'identity');
    loadOrCreateIdentity(dir);
    const file = join(dir, KEY_FILE);
    chmodSync(file, 0o644);
    expect(() => loadOrCreateIdentity(dir)).toThrow(/chmod 600/);
    chmodSync(file, 0o600);
    writeFileSync(file, 'garbage');
    expect(() => loadOrCreateIdentity(dir)).toThrow(IdentityError);
    expect(() => loadOrCreateIdentity(dir)).toThrow(/corrupt.*not replaced/);
    expect(readFileSync(file, 'utf8')).toBe('garbage');
  });
});
