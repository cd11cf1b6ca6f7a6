import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  IdentityCorruptError,
  IdentityError,
  IdentityMissingError,
  IdentityPermissionError,
  KEY_FILE,
  UnknownCurveError,
  deviceAddress,
  loadIdentity,
  loadOrCreateIdentity,
  normalizeCurve,
} from '../src/index.js';
import { PACKAGE_DIR, tempDir } from './helpers.js';

const run = promisify(execFile);

describe('identity', () => {
  it('creates the key 0600 in a 0700 directory on first use, then loads the same identity', () => {
    const dir = join(tempDir(), 'identity');
    const a = loadOrCreateIdentity(dir);
    expect(a.created).toBe(true);
    expect(a.curve).toBe('p256');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(a.publicKeyHex).toMatch(/^04[0-9a-f]{128}$/);
    expect(a.deviceId).toMatch(/^0x[0-9a-f]{40}$/);
    expect(a.deviceId).toBe(deviceAddress(a.publicKeyHex));
    const b = loadOrCreateIdentity(dir);
    expect(b.created).toBe(false);
    expect([b.deviceId, b.publicKeyHex]).toEqual([a.deviceId, a.publicKeyHex]);
    expect(loadIdentity(dir).deviceId).toBe(a.deviceId);
    expect(readdirSync(dir)).toEqual([KEY_FILE]); // no temporary file left behind
  });

  it('tightens a pre-existing loose directory to 0700', () => {
    const dir = join(tempDir(), 'identity');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    loadOrCreateIdentity(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('creates secp256k1 when asked, accepts the P-256 spellings, and an existing key keeps its curve', () => {
    const root = tempDir();
    expect(loadOrCreateIdentity(join(root, 'k1'), { curve: 'secp256k1' }).curve).toBe('secp256k1');
    expect(loadOrCreateIdentity(join(root, 'k1'), { curve: 'P-256' }).curve).toBe('secp256k1');
    expect(loadOrCreateIdentity(join(root, 'r1'), { curve: 'P-256' }).curve).toBe('p256');
    expect(['P-256', 'secp256r1', 'prime256v1', 'p256'].map(normalizeCurve)).toEqual(['p256', 'p256', 'p256', 'p256']);
    expect(() => loadOrCreateIdentity(join(root, 'bad'), { curve: 'ed25519' as never })).toThrow(UnknownCurveError);
    expect(existsSync(join(root, 'bad'))).toBe(false); // refused before touching the disk
  });

  it('loadIdentity never creates: a missing key is a typed error and nothing is written', () => {
    const dir = join(tempDir(), 'identity');
    expect(() => loadIdentity(dir)).toThrow(IdentityMissingError);
    expect(() => loadIdentity(dir)).toThrow(
      expect.objectContaining({ kind: 'missing', message: expect.stringMatching(/^no device identity at /) }),
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses a key others can read, says how to fix it, and leaves the file alone', () => {
    const dir = join(tempDir(), 'identity');
    const a = loadOrCreateIdentity(dir);
    const file = join(dir, KEY_FILE);
    const pem = readFileSync(file, 'utf8');
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(file, mode);
      expect(() => loadOrCreateIdentity(dir)).toThrow(IdentityPermissionError);
      expect(() => loadIdentity(dir)).toThrow(new RegExp(`mode ${mode.toString(8)}\\): run chmod 600 ${file}`));
      expect(statSync(file).mode & 0o777).toBe(mode); // not silently "fixed"
    }
    chmodSync(file, 0o600);
    expect(loadIdentity(dir).deviceId).toBe(a.deviceId);
    expect(readFileSync(file, 'utf8')).toBe(pem);
  });

  it('stops on a corrupt, empty or foreign key and never replaces it', () => {
    const dir = join(tempDir(), 'identity');
    loadOrCreateIdentity(dir);
    const file = join(dir, KEY_FILE);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    for (const [content, why] of [
      ['garbage', /not a PEM private key/],
      ['', /empty/],
      [rsa, /rsa key, not P-256 or secp256k1/],
    ] as const) {
      writeFileSync(file, content, { mode: 0o600 });
      let err: unknown;
      try {
        loadOrCreateIdentity(dir);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(IdentityCorruptError);
      expect(err).toBeInstanceOf(IdentityError); // what the backend catches
      expect((err as IdentityCorruptError).kind).toBe('corrupt');
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).toMatch(/not replaced automatically/);
      expect(readFileSync(file, 'utf8')).toBe(content);
    }
  });

  it('a directory in place of the key file is refused, not overwritten', () => {
    const dir = join(tempDir(), 'identity');
    mkdirSync(join(dir, KEY_FILE), { recursive: true });
    expect(() => loadOrCreateIdentity(dir)).toThrow(/not a regular file/);
  });

  it('never shows the private key: JSON, inspect and string forms hold public values only', () => {
    const dir = join(tempDir(), 'identity');
    const id = loadOrCreateIdentity(dir);
    const pemBody = readFileSync(join(dir, KEY_FILE), 'utf8').split('\n').slice(1, -2).join('');
    const d = id.privateKey.export({ format: 'jwk' }).d!;
    const shown = [JSON.stringify(id), inspect(id, { showHidden: true, depth: 5 }), String(id), `${JSON.stringify({ id })}`];
    for (const text of shown) {
      expect(text).not.toContain(pemBody.slice(0, 40));
      expect(text).not.toContain(d);
      expect(text).not.toContain(Buffer.from(d, 'base64url').toString('hex'));
    }
    expect(JSON.parse(JSON.stringify(id))).toEqual({ deviceId: id.deviceId, publicKeyHex: id.publicKeyHex, curve: 'p256' });
  });

  it('removes the temporary file a crashed creation left behind (dead pid), keeps a live one', () => {
    const dir = join(tempDir(), 'identity');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, `${KEY_FILE}.tmp-999999999-abcd`), 'half a key', { mode: 0o600 });
    writeFileSync(join(dir, `${KEY_FILE}.tmp-${process.ppid}-abcd`), 'being written', { mode: 0o600 });
    loadOrCreateIdentity(dir);
    expect(readdirSync(dir).sort()).toEqual([KEY_FILE, `${KEY_FILE}.tmp-${process.ppid}-abcd`]);
  });

  it('processes racing on first start end up with one identity, created exactly once', async () => {
    const dir = join(tempDir(), 'identity');
    const worker = join(PACKAGE_DIR, 'test', 'fixtures', 'identity-worker.mjs');
    const outs = await Promise.all(Array.from({ length: 6 }, () => run(process.execPath, [worker, dir])));
    const ids = outs.map((o) => JSON.parse(o.stdout) as { deviceId: string; created: boolean });
    expect(new Set(ids.map((i) => i.deviceId)).size).toBe(1);
    expect(ids.filter((i) => i.created)).toHaveLength(1);
    expect(loadIdentity(dir).deviceId).toBe(ids[0]!.deviceId);
  });

  it('derives the address as keccak256 of X||Y (known Ethereum vector)', () => {
    // Private key 1 on secp256k1: public point G, address 0x7e5f4552091a69125d5dfcb7b8c2659029395bdf.
    const g =
      '0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8';
    expect(deviceAddress(g)).toBe('0x7e5f4552091a69125d5dfcb7b8c2659029395bdf');
  });
});
