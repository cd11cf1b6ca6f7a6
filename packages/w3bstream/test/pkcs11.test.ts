import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SigningKey, Signature, keccak256, recoverAddress, computeAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CURVES,
  Pkcs11Key,
  TokenError,
  checkMessageV2,
  deviceAddress,
  isLowS,
  parsePkcs11Uri,
  parseSignature,
  signMessage,
  signMessageV2,
  signTextWith,
  verifyBody,
  type Curve,
  type DigestSigner,
} from '../src/index.js';
import { USER_PIN, readKeyProtection, slowModule, softHsm, swTpm, type SoftHsm, type SwTpm } from '../../../test/support/tokens.js';
import { tempDir } from './helpers.js';

/** Runs `fn` with the token's environment set for this process (SoftHSM and tpm2-pkcs11 read it at C_Initialize). */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** openssl, independently of the code under test: does the DER signature verify over `text` with the 04… key? */
function opensslVerifies(curve: Curve, publicKeyHex: string, text: string, derHex: string): boolean {
  const dir = tempDir('p11-ossl-');
  const pem = createPublicKey({
    key: Buffer.from(CURVES[curve].spkiPrefixHex + publicKeyHex, 'hex'),
    format: 'der',
    type: 'spki',
  }).export({ format: 'pem', type: 'spki' });
  writeFileSync(join(dir, 'pub.pem'), pem);
  writeFileSync(join(dir, 'data'), text);
  writeFileSync(join(dir, 'sig'), Buffer.from(derHex, 'hex'));
  try {
    execFileSync('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig'), join(dir, 'data')], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  }
}

describe('PKCS#11 key in SoftHSM2 (a real software token on its own directory)', () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = softHsm('meter');
  });
  afterAll(() => hsm.cleanup());

  const open = (uri: string, opts: { pin?: string; createCurve?: Curve } = {}) =>
    withEnv(hsm.env, () =>
      Pkcs11Key.open({ modulePath: hsm.module, uri: parsePkcs11Uri(uri), pin: opts.pin ?? USER_PIN, createCurve: opts.createCurve }),
    );

  it('creates a P-256 key inside the token, non-extractable and sensitive (read back from the token), and finds the same key again', async () => {
    await expect(open('pkcs11:token=meter;object=p256-key')).rejects.toMatchObject({ kind: 'key-missing' });
    const key = await open('pkcs11:token=meter;object=p256-key', { createCurve: 'p256' });
    expect(key.info).toMatchObject({
      curve: 'p256',
      created: true,
      sensitive: true,
      extractable: false,
      neverExtractable: true,
      alwaysSensitive: true,
      local: true,
    });
    expect(key.deviceId).toBe(deviceAddress(key.publicKeyHex));
    await key.close();
    // The test reads the attributes itself, not through the code under test.
    expect(readKeyProtection(hsm.module, hsm.env, 'p256-key')).toEqual({
      sensitive: true,
      extractable: false,
      neverExtractable: true,
      alwaysSensitive: true,
      valueReadable: false,
      keys: 1,
    });
    const again = await open('pkcs11:token=meter;object=p256-key', { createCurve: 'p256' });
    expect(again.info.created).toBe(false);
    expect(again.publicKeyHex).toBe(key.publicKeyHex);
    await again.close();
  });

  it('signs v1 bodies the verifiers accept: raw and DER, always low S, checked by openssl too', async () => {
    const key = await open('pkcs11:token=meter;object=p256-key');
    try {
      let highSeen = 0;
      for (let i = 0; i < 24; i++) {
        // The token's own S (before normalisation) is high about half the time: normalisation is really exercised.
        const digest = createHash('sha256').update(`x${i}`).digest();
        const rs = Buffer.from(await key.signDigest(digest));
        if (!isLowS(BigInt(`0x${rs.subarray(32).toString('hex')}`), 'p256')) highSeen++;
        const encoding = i % 2 === 0 ? 'raw' : 'der';
        const m = await signMessage(
          key,
          { powerW: 3.5 + i, timestampMs: 1_764_000_000_000 + i * 5000 },
          { signatureEncoding: encoding, publicKeyField: i % 3 === 0 ? 'key' : 'address' },
        );
        const v = verifyBody(m.body, { requireLowS: 'all' });
        expect(v).toMatchObject({ ok: true, deviceId: key.deviceId, curve: 'p256', encoding, lowS: true });
        const { r, s } = parseSignature(m.signature);
        expect(isLowS(s, 'p256')).toBe(true);
        const der = encoding === 'der' ? m.signature : (await import('../src/index.js')).rawToDer(m.signature);
        expect(opensslVerifies('p256', key.publicKeyHex, m.dataText, der)).toBe(true);
        expect(r > 0n).toBe(true);
      }
      expect(highSeen).toBeGreaterThan(0);
    } finally {
      await key.close();
    }
  });

  it('makes secp256k1 keys where the token offers them: v1 bodies verify, W3bstream 2 bodies recover to the key (checked with ethers)', async () => {
    const key = await open('pkcs11:token=meter;object=k1-key', { createCurve: 'secp256k1' });
    try {
      expect(key.curve).toBe('secp256k1');
      expect(key.deviceId).toBe(computeAddress(`0x${key.publicKeyHex}`).toLowerCase());
      const v1 = await signMessage(key, { powerW: 2, timestampMs: 1_764_000_000_000 }, { publicKeyField: 'address' });
      expect(verifyBody(v1.body, { requireLowS: 'all' })).toMatchObject({ ok: true, deviceId: key.deviceId, curve: 'secp256k1' });
      const vs = new Set<number>();
      for (let i = 0; i < 12; i++) {
        const m = await signMessageV2(
          key,
          { powerW: i / 3, timestampMs: 1_764_000_000_000 + i },
          { projectId: '42', projectVersion: '0.1', timestampUnit: 'ms' },
        );
        const check = checkMessageV2(m.body);
        expect(check).toMatchObject({ ok: true, deviceId: key.deviceId });
        const sig = Signature.from(m.signature);
        expect(recoverAddress(keccak256(Buffer.from(m.signedJson, 'utf8')), sig).toLowerCase()).toBe(key.deviceId);
        vs.add(Buffer.from(m.signature.slice(2), 'hex')[64]!);
        expect(isLowS(BigInt(sig.s), 'secp256k1')).toBe(true);
      }
      // Both recovery ids occur: the trial recovery is really choosing.
      expect([...vs].sort()).toEqual([0, 1]);
    } finally {
      await key.close();
    }
  });

  it('gives the same wire bytes as the PEM path for the same signature shape (seam parity): a DigestSigner stand-in with a known key', async () => {
    const sk = new SigningKey(`0x${'11'.repeat(32)}`);
    const pub = sk.publicKey.slice(2);
    const standIn: DigestSigner = {
      curve: 'secp256k1',
      publicKeyHex: pub,
      signDigest: async (d) => {
        const s = sk.sign(d);
        // Hand back the high-S twin: the seam must normalise it exactly as the PEM path's low S.
        const n = BigInt(`0x${CURVES.secp256k1.orderHex}`);
        const high = n - BigInt(s.s);
        return Buffer.from(s.r.slice(2) + high.toString(16).padStart(64, '0'), 'hex');
      },
    };
    const raw = await signTextWith(standIn, 'hello', 'raw');
    const want = sk.sign(createHash('sha256').update('hello').digest());
    expect(raw).toBe(want.r.slice(2) + want.s.slice(2));
    const m = await signMessageV2(standIn, { powerW: 1, timestampMs: 1_764_000_000_000 }, { projectId: '1', projectVersion: 'v' });
    const e = sk.sign(keccak256(Buffer.from(m.signedJson, 'utf8')));
    expect(m.signature).toBe(`${e.r}${e.s.slice(2)}${(e.v - 27).toString(16).padStart(2, '0')}`);
  });

  it('a wrong PIN is CKR_PIN_INCORRECT (kind pin-incorrect), a missing token no-token, a bad module module', async () => {
    await expect(open('pkcs11:token=meter;object=p256-key', { pin: 'wrong-pin' })).rejects.toMatchObject({
      kind: 'pin-incorrect',
      ckr: 'CKR_PIN_INCORRECT',
    });
    await expect(open('pkcs11:token=other;object=p256-key')).rejects.toMatchObject({ kind: 'no-token' });
    await expect(
      withEnv(hsm.env, () =>
        Pkcs11Key.open({ modulePath: join(hsm.dir, 'nope.so'), uri: parsePkcs11Uri('pkcs11:object=x'), pin: USER_PIN }),
      ),
    ).rejects.toMatchObject({ kind: 'module' });
    // After all that, the right PIN still works: SoftHSM does not lock, and nothing was left loaded.
    const key = await open('pkcs11:token=meter;object=p256-key');
    expect(key.curve).toBe('p256');
    await key.close();
  });

  it('signatures run off the event loop: timers keep firing while a slow token (300 ms per C_Sign) signs', async () => {
    const slow = slowModule(tempDir('p11-slow-'), hsm.module, 300);
    const key = await withEnv(hsm.env, () =>
      Pkcs11Key.open({ modulePath: slow, uri: parsePkcs11Uri('pkcs11:token=meter;object=slow-key'), pin: USER_PIN, createCurve: 'p256' }),
    );
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 20);
      const digest = createHash('sha256').update('loop').digest();
      const t0 = Date.now();
      for (let i = 0; i < 3; i++) expect((await key.signDigest(digest)).length).toBe(64);
      clearInterval(timer);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900); // the module really took its time
      // A C_Sign on the event loop would leave at most one tick between signatures (3); here the loop ran throughout.
      expect(ticks).toBeGreaterThan(10);
    } finally {
      await key.close();
    }
  });
});

describe('PKCS#11 key in a TPM 2.0 (swtpm through tpm2-pkcs11, own state directory)', () => {
  let tpm: SwTpm;
  beforeAll(async () => {
    tpm = await swTpm('meter');
  }, 60_000);
  afterAll(async () => tpm.cleanup());

  const open = (uri: string, opts: { pin?: string; createCurve?: Curve } = {}) =>
    withEnv(tpm.env, () =>
      Pkcs11Key.open({ modulePath: tpm.module, uri: parsePkcs11Uri(uri), pin: opts.pin ?? USER_PIN, createCurve: opts.createCurve }),
    );

  it('refuses to make a secp256k1 key (a TPM has NIST and BN curves only) with kind curve, and makes a P-256 one that signs verifiable bodies', async () => {
    await expect(open('pkcs11:token=meter;object=k1', { createCurve: 'secp256k1' })).rejects.toMatchObject({ kind: 'curve' });
    const key = await open('pkcs11:token=meter;object=device-key', { createCurve: 'p256' });
    try {
      expect(key.info).toMatchObject({ curve: 'p256', created: true, sensitive: true, extractable: false });
      for (const encoding of ['raw', 'der'] as const) {
        const m = await signMessage(
          key,
          { powerW: 4.25, timestampMs: 1_764_000_000_000 },
          { signatureEncoding: encoding, publicKeyField: 'address' },
        );
        expect(verifyBody(m.body, { requireLowS: 'all' })).toMatchObject({ ok: true, deviceId: key.deviceId, curve: 'p256' });
        const der = encoding === 'der' ? m.signature : (await import('../src/index.js')).rawToDer(m.signature);
        expect(opensslVerifies('p256', key.publicKeyHex, m.dataText, der)).toBe(true);
      }
    } finally {
      await key.close();
    }
    const prot = readKeyProtection(tpm.module, tpm.env, 'device-key');
    expect(prot).toMatchObject({ sensitive: true, extractable: false, valueReadable: false, keys: 1 });
  });

  it('a TPM reset (swtpm restarted) fails the open session with kind device; a fresh open signs again with the same key', async () => {
    const key = await open('pkcs11:token=meter;object=device-key');
    const before = key.publicKeyHex;
    const digest = createHash('sha256').update('reset').digest();
    expect((await key.signDigest(digest)).length).toBe(64);
    await tpm.stop();
    await tpm.start();
    const err = await key.signDigest(digest).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).kind).toBe('device');
    await key.close();
    const again = await open('pkcs11:token=meter;object=device-key');
    expect(again.publicKeyHex).toBe(before);
    expect((await again.signDigest(digest)).length).toBe(64);
    await again.close();
  }, 60_000);
});
