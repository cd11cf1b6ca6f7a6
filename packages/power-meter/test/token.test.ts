import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState, type MeterState } from '@power-meter/meter-files';
import { CURVES, parseSignature, rawToDer } from '@power-meter/w3bstream';
import { startDevReceiver, staticApprovals, type DevReceiver } from '@power-meter/dev-node';
import { recoverAddress, Signature } from 'ethers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, outboxContents, start, until, type Proc } from '../../../test/support/processes.js';
import { USER_PIN, readKeyProtection, slowModule, softHsm, swTpm, type SoftHsm, type SwTpm } from '../../../test/support/tokens.js';

/**
 * The device key in real tokens, with real meter processes: SoftHSM2 and a TPM 2.0 (swtpm through
 * tpm2-pkcs11), each on its own state directory. The readings are checked with `power-meter
 * verify` and independently with openssl (P-256) or ethers (secp256k1).
 */
const TOKEN = 'test-token-b71e';
const URI = 'pkcs11:token=meter;object=device-key';
const procs: Proc[] = [];
const receivers: DevReceiver[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  rmSync(CONFIG_DIR, { recursive: true, force: true });
});

/** An empty config file: the machine's /etc/power-meter/config.json never leaks into the one-shot commands. */
const CONFIG_DIR = mkdtempSync(join(tmpdir(), 'pm-token-config-'));
const EMPTY_CONFIG = join(CONFIG_DIR, 'config.json');
writeFileSync(EMPTY_CONFIG, '{}');

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pm-token-'));
  dirs.push(d);
  return join(d, 'data');
}

/** The one-shot CLI (identity, verify) with the token's environment. */
function cli(args: string[], env: Record<string, string>, input?: string): { status: number; out: string } {
  const r = spawnSync(process.execPath, [BACKEND, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', POWER_METER_CONFIG: EMPTY_CONFIG, ...env },
    encoding: 'utf8',
    input,
  });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function meter(dir: string, url: string, env: Record<string, string>, args: string[] = []): Proc {
  const p = start(
    BACKEND,
    ['--sensor', 'sim', '--sim-load', '4', '--window', '1', '--data-dir', dir, '--publish-url', url, '--key-uri', URI, ...args],
    {
      W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
      POWER_METER_RETRY_MAX_MS: '500',
      POWER_METER_TOKEN_RETRY_MS: '300',
      ...env,
    },
  );
  procs.push(p);
  return p;
}

async function state(dir: string): Promise<MeterState | null> {
  const s = await readState(dir);
  return s.ok ? s.state : null;
}

/** openssl checks a raw r||s signature over the data text with the 04… key (independent of the meter's code). */
function opensslVerifies(publicKeyHex: string, dataText: string, signatureHex: string): boolean {
  const d = mkdtempSync(join(tmpdir(), 'pm-ossl-'));
  try {
    const pem = createPublicKey({ key: Buffer.from(CURVES.p256.spkiPrefixHex + publicKeyHex, 'hex'), format: 'der', type: 'spki' }).export({
      format: 'pem',
      type: 'spki',
    });
    writeFileSync(join(d, 'pub.pem'), pem);
    writeFileSync(join(d, 'data'), dataText);
    writeFileSync(join(d, 'sig'), Buffer.from(rawToDer(signatureHex), 'hex'));
    execFileSync('openssl', ['dgst', '-sha256', '-verify', join(d, 'pub.pem'), '-signature', join(d, 'sig'), join(d, 'data')], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** Everything the receiver got, checked: verify --expect-address over the bodies, and openssl on each. */
function checkReadings(r: DevReceiver, id: { deviceId: string; publicKey: string }): void {
  const bodies = r.received.map((x) => x.body).join('\n');
  const v = cli(['verify', '--expect-address', id.deviceId, '-'], {}, `${bodies}\n`);
  expect(v.out).toContain(`${r.received.length} of ${r.received.length} verified`);
  expect(v.status).toBe(0);
  for (const x of r.received) {
    const body = JSON.parse(x.body) as { signature: string };
    const text = x.body.slice(x.body.indexOf('{', 1), x.body.indexOf('},"signature"') + 1);
    expect(opensslVerifies(id.publicKey, text, body.signature)).toBe(true);
    expect(parseSignature(body.signature).s <= BigInt(`0x${CURVES.p256.orderHex}`) / 2n).toBe(true);
  }
}

describe('SoftHSM2: the identity is made in the token and the meter signs with it', () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = softHsm('meter');
  });
  afterAll(() => hsm.cleanup());

  it('identity creates a non-extractable, sensitive P-256 key in the token and no key file; a real meter signs with it and every reading verifies', async () => {
    const dir = dataDir();
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const idr = cli(['identity', '--json', '--data-dir', dir, '--key-uri', URI, '--pkcs11-module', hsm.module], env);
    expect(idr.status).toBe(0);
    const id = JSON.parse(idr.out.trim().split('\n').pop()!) as {
      deviceId: string;
      publicKey: string;
      curve: string;
      did: string;
      key: Record<string, unknown>;
    };
    expect(id).toMatchObject({
      curve: 'p256',
      did: `did:io:${id.deviceId}`,
      key: { source: 'pkcs11', sensitive: true, extractable: false },
    });
    // Read back by the test from the token itself, not through the meter's code.
    expect(readKeyProtection(hsm.module, hsm.env, 'device-key')).toEqual({
      sensitive: true,
      extractable: false,
      neverExtractable: true,
      alwaysSensitive: true,
      valueReadable: false,
      keys: 1,
    });
    expect(readdirSync(join(dir, 'identity')).filter((f) => f.endsWith('.pem'))).toEqual([]);
    expect(idr.out).not.toContain(USER_PIN);

    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const p = meter(dir, r.url, { ...env }, ['--pkcs11-module', hsm.module]);
    await until(() => r.received.length >= 4, 30_000, '4 readings');
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(r.received.every((x) => x.verified && x.deviceId === id.deviceId)).toBe(true);
    checkReadings(r, id);
    expect(existsSync(join(dir, 'identity', 'device-key.pem'))).toBe(false);
    expect(p.output()).not.toContain(USER_PIN);
  }, 90_000);

  it('a wrong PIN is tried once, never again on the next starts; measuring goes on, readings wait unsigned in order and are signed once the right PIN is set (extended: each with its own number)', async () => {
    const dir = dataDir();
    const good = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const bad = { ...hsm.env, POWER_METER_PKCS11_PIN: 'not-the-pin' };
    expect(
      cli(['identity', '--data-dir', dir, '--key-uri', 'pkcs11:token=meter;object=pin-key', '--pkcs11-module', hsm.module], good).status,
    ).toBe(0);
    const uri = ['--key-uri', 'pkcs11:token=meter;object=pin-key', '--pkcs11-module', hsm.module];
    // The extended reading signs the sequence number: a token signs before storing, so it must
    // sign with the number the outbox then gives the reading (issue 24 with issue 27).
    const extended = ['--signed-fields', 'extended'];
    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const url = r.url;
    const run = (env: Record<string, string>): Proc => {
      const p = start(
        BACKEND,
        ['--sensor', 'sim', '--sim-load', '4', '--window', '1', '--data-dir', dir, '--publish-url', url, ...uri, ...extended],
        {
          W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
          POWER_METER_RETRY_MAX_MS: '500',
          POWER_METER_TOKEN_RETRY_MS: '300',
          ...env,
        },
      );
      procs.push(p);
      return p;
    };
    let p = run(bad);
    await until(async () => ((await state(dir))?.signing?.unsigned ?? 0) >= 3, 30_000, '3 readings kept unsigned');
    const st = (await state(dir))!;
    expect(st.signing).toMatchObject({ key: 'pkcs11', state: 'fault', reason: 'wrong PIN (not retried)', pinAttempts: 1 });
    expect(st.powerW).toBeCloseTo(4, 0); // measuring goes on
    expect(r.received.length).toBe(0);
    expect(p.output()).toContain('CKR_PIN_INCORRECT');
    expect(await p.stop('SIGTERM')).toBe(0);
    // The same wrong PIN again: no login is attempted at all (SoftHSM would say CKR_PIN_INCORRECT again).
    p = run(bad);
    await until(async () => ((await state(dir))?.signing?.unsigned ?? 0) >= st.signing!.unsigned + 2, 30_000, 'more readings kept');
    expect((await state(dir))!.signing).toMatchObject({ state: 'fault', pinAttempts: 1 });
    expect(p.output()).not.toContain('CKR_PIN_INCORRECT');
    expect(p.output()).toContain('refused this PIN at');
    // doctor, while the meter runs: the meter's own view, with what to do.
    const doctorCheck = (): { status: string; detail: string; fix?: string } => {
      const d = cli(['doctor', '--json', '--sensor', 'sim', '--data-dir', dir, ...uri], bad);
      const checks = (
        JSON.parse(d.out.trim().split('\n').pop()!) as { checks: Array<{ name: string; status: string; detail: string; fix?: string }> }
      ).checks;
      return checks.find((c) => c.name === 'signing-key')!;
    };
    const running = doctorCheck();
    expect(running).toMatchObject({ status: 'fail' });
    expect(running.detail).toMatch(/wrong PIN.*kept unsigned.*refused the PIN 1 time/);
    expect(running.fix).toContain('POWER_METER_PKCS11_PIN');
    expect(await p.stop('SIGTERM')).toBe(0);
    // doctor with the meter stopped opens the token itself, through the same guard: no new attempt.
    const stopped = doctorCheck();
    expect(stopped).toMatchObject({ status: 'fail', detail: 'wrong PIN (not retried)' });
    expect(JSON.parse(readFileSync(join(dir, 'identity', 'pkcs11-pin-refused.json'), 'utf8'))).toMatchObject({ attempts: 1 });
    expect(readFileSync(join(dir, 'identity', 'pkcs11-pin-refused.json'), 'utf8')).not.toContain('not-the-pin');
    const kept = (await state(dir))!.signing!.unsigned;
    // The right PIN (the configuration changed): every reading kept is signed, in order, and delivered.
    p = run(good);
    await until(() => r.received.length >= kept + 2, 40_000, 'the kept readings and new ones');
    expect((await state(dir))!.signing).toMatchObject({ state: 'ok', unsigned: 0, pinAttempts: 0 });
    expect(await p.stop('SIGTERM')).toBe(0);
    const seqs = r.received.map((x) => x.seq!);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i)); // contiguous numbers, no gap, in order
    const ts = r.received.map((x) => x.timestamp!);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
    // Kept readings and new ones alike: the signed seq is the eventID's, the energy total never goes back.
    expect(r.received.map((x) => x.signedSeq)).toEqual(seqs);
    expect(r.received.every((x) => x.reason === null)).toBe(true);
    const wh = r.received.map((x) => x.energyWh!);
    expect(wh.every((e, i) => typeof e === 'number' && (i === 0 || e >= wh[i - 1]!))).toBe(true);
    const idj = JSON.parse(
      cli(['identity', '--json', '--data-dir', dir, ...uri], good)
        .out.trim()
        .split('\n')
        .pop()!,
    );
    checkReadings(r, idj);
    expect((await outboxContents(dir)).waiting).toBe(0);
  }, 150_000);

  it('at a first start (key never seen): an unusable data directory is exit 4 before the token is touched; a token without the key is exit 2; nothing left behind', async () => {
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN, W3BSTREAM_PUBLISHER_TOKEN: TOKEN };
    const args = ['--sensor', 'sim', '--key-uri', 'pkcs11:token=meter;object=never-made', '--pkcs11-module', hsm.module];
    // A file where the data directory belongs: the data directory's status (4), not the token's.
    const file = dataDir();
    writeFileSync(file, 'not a directory');
    const onFile = start(BACKEND, [...args, '--data-dir', file], env);
    procs.push(onFile);
    expect(await onFile.exited).toBe(4);
    expect(onFile.output()).toContain(`the data directory ${file} is not a directory`);
    expect(onFile.output()).not.toContain('signing key');
    // The token is there, the key is not (the daemon never creates one): exit 2 saying so, no restart loop.
    const dir = dataDir();
    const runtime = join(dir, '..', 'run');
    const noKey = start(BACKEND, [...args, '--data-dir', dir, '--runtime-dir', runtime], env);
    procs.push(noKey);
    expect(await noKey.exited).toBe(2);
    expect(noKey.output()).toMatch(/signing key: key not in token: .*power-meter identity --key-uri/);
    expect(noKey.output()).not.toContain(USER_PIN);
    // Nothing stored under a device address that does not exist: no outbox, no remembered key, no RAM directory.
    expect(readdirSync(dir).filter((f) => f !== 'identity')).toEqual([]);
    expect(existsSync(join(dir, 'identity', 'token-key.json'))).toBe(false);
    expect(existsSync(runtime)).toBe(false);
  }, 60_000);

  it('moving to a key in the token with readings still waiting: refused with exit 2 (they name the old device), nothing discarded; delivered with the old key first', async () => {
    const dir = dataDir();
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    // The key file meter measures while the node is unreachable: readings wait in the outbox.
    const old = start(
      BACKEND,
      [
        '--sensor',
        'sim',
        '--sim-load',
        '4',
        '--window',
        '1',
        '--data-dir',
        dir,
        '--publish-url',
        'http://127.0.0.1:9/srv-applet-mgr/v0/event/test',
      ],
      {
        W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
      },
    );
    procs.push(old);
    await until(async () => ((await state(dir))?.publishing.waiting ?? 0) >= 2, 30_000, '2 readings waiting');
    expect(await old.stop('SIGTERM')).toBe(0);
    const waiting = (await outboxContents(dir)).waiting;
    const oldId = (await state(dir))!.deviceId;
    const tokenArgs = ['--key-uri', 'pkcs11:token=meter;object=move-key', '--pkcs11-module', hsm.module];
    expect(cli(['identity', '--data-dir', dir, ...tokenArgs], env).status).toBe(0);
    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const refused = start(BACKEND, ['--sensor', 'sim', '--data-dir', dir, '--publish-url', r.url, ...tokenArgs], {
      W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
      ...env,
    });
    procs.push(refused);
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toContain(`signed by the device ${oldId}`);
    expect((await outboxContents(dir)).waiting).toBe(waiting);
    // With the old key (no --key-uri) they go out, signed by the old device.
    const drain = start(BACKEND, ['--sensor', 'sim', '--window', '1', '--data-dir', dir, '--publish-url', r.url], {
      W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
      POWER_METER_RETRY_MAX_MS: '500',
    });
    procs.push(drain);
    await until(() => r.received.length >= waiting, 30_000, 'the backlog delivered');
    expect(r.received.slice(0, waiting).every((x) => x.verified && x.deviceId === oldId)).toBe(true);
  }, 120_000);

  it('ioid permit signs with the secp256k1 key in the token: the permit recovers to the device (ethers), no key file', async () => {
    const dir = dataDir();
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const k1 = ['--key-uri', 'pkcs11:token=meter;object=permit-key', '--pkcs11-module', hsm.module];
    const idr = cli(['identity', '--json', '--curve', 'secp256k1', '--data-dir', dir, ...k1], env);
    expect(idr.status).toBe(0);
    const id = JSON.parse(idr.out.trim().split('\n').pop()!) as { deviceId: string; curve: string };
    expect(id.curve).toBe('secp256k1');
    const owner = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc';
    const registry = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
    const pr = cli(
      [
        'ioid',
        'permit',
        '--json',
        '--data-dir',
        dir,
        ...k1,
        '--owner',
        owner,
        '--registry',
        registry,
        '--chain-id',
        '4690',
        '--nonce',
        '0',
      ],
      env,
    );
    expect(pr.status).toBe(0);
    const permit = JSON.parse(pr.out.trim().split('\n').pop()!) as { device: string; v: number; r: string; s: string; digest: string };
    expect(permit.device).toBe(id.deviceId);
    expect(recoverAddress(permit.digest, Signature.from({ r: permit.r, s: permit.s, v: permit.v })).toLowerCase()).toBe(id.deviceId);
    expect(readdirSync(join(dir, 'identity')).filter((f) => f.endsWith('.pem'))).toEqual([]);
    expect(pr.out).not.toContain(USER_PIN);
  }, 60_000);

  it('W3bstream 2 (/v1/task) with a secp256k1 key in the token: the node recovers and approves the device for every task (checked with ethers); the extended seq is the nonce', async () => {
    const dir = dataDir();
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const v2 = ['--transport', 'w3bstream-v2', '--project-id', '9', '--project-version', '0.1', '--timestamp-unit', 'ms'];
    const k1 = ['--key-uri', 'pkcs11:token=meter;object=k1-key', '--pkcs11-module', hsm.module];
    const idr = cli(['identity', '--json', '--data-dir', dir, ...k1, ...v2], env);
    expect(idr.status).toBe(0);
    const id = JSON.parse(idr.out.trim().split('\n').pop()!) as { deviceId: string; curve: string };
    expect(id.curve).toBe('secp256k1');
    // The node approves the device it recovers (recovery id 0 or 1) only if ioID approved it: this one.
    const r = await startDevReceiver({
      transport: 'w3bstream-v2',
      approvals: staticApprovals({ approve: [{ address: id.deviceId, projectId: '9' }] }),
    });
    receivers.push(r);
    const p = start(
      BACKEND,
      [
        '--sensor',
        'sim',
        '--sim-load',
        '4',
        '--window',
        '1',
        '--data-dir',
        dir,
        '--publish-url',
        r.url,
        ...k1,
        ...v2,
        '--signed-fields',
        'extended',
      ],
      {
        POWER_METER_RETRY_MAX_MS: '500',
        ...env,
      },
    );
    procs.push(p);
    await until(() => r.received.length >= 3, 30_000, '3 messages');
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(r.url).toMatch(/\/v1\/task$/);
    for (const x of r.received) {
      expect(x).toMatchObject({ verified: true, deviceId: id.deviceId });
      // --signed-fields extended: the seq signed into the payload is the task's nonce (the reading's number).
      expect(x.signedSeq).toBe(Number((JSON.parse(x.body) as { nonce: number }).nonce));
      // Independently: the task's r||s over sha256 of the body without its signature recovers (with
      // id 0 or 1, as the node tries) to the token key's address, and S is low.
      const b = JSON.parse(x.body) as { signature: string };
      expect(b.signature).toMatch(/^0x[0-9a-f]{128}$/);
      const signed = x.body.replace(/,"signature":"0x[0-9a-f]+"}$/, '}');
      const digest = createHash('sha256').update(signed, 'utf8').digest();
      const [rr, ss] = [`0x${b.signature.slice(2, 66)}`, `0x${b.signature.slice(66)}`];
      const who = [27, 28].map((v) => recoverAddress(digest, Signature.from({ r: rr, s: ss, v })).toLowerCase());
      expect(who).toContain(id.deviceId);
      expect(BigInt(ss) <= BigInt(`0x${CURVES.secp256k1.orderHex}`) / 2n).toBe(true);
    }
  }, 90_000);
});

describe('TPM 2.0 (swtpm + tpm2-pkcs11): the key in the TPM, a TPM reset while measuring', () => {
  let tpm: SwTpm;
  beforeAll(async () => {
    tpm = await swTpm('meter');
  }, 60_000);
  afterAll(async () => tpm.cleanup());

  it('identity makes a P-256 key in the TPM; W3bstream 2 is refused (no secp256k1 in a TPM) with exit 2 saying why', async () => {
    const dir = dataDir();
    const env = { ...tpm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const mod = ['--key-uri', URI, '--pkcs11-module', tpm.module];
    const v2 = ['--transport', 'w3bstream-v2', '--project-id', '9', '--project-version', '0.1'];
    const refused = cli(['identity', '--data-dir', join(dir, 'k1'), ...mod, ...v2], env);
    expect(refused.status).toBe(2);
    expect(refused.out).toMatch(/cannot create a secp256k1 key.*W3bstream 2 needs a secp256k1 key; a TPM 2\.0/s);
    const idr = cli(['identity', '--json', '--data-dir', dir, ...mod], env);
    expect(idr.status).toBe(0);
    const id = JSON.parse(idr.out.trim().split('\n').pop()!);
    expect(id).toMatchObject({ curve: 'p256', key: { source: 'pkcs11', sensitive: true, extractable: false } });
    expect(readKeyProtection(tpm.module, tpm.env, 'device-key')).toMatchObject({
      sensitive: true,
      extractable: false,
      valueReadable: false,
      keys: 1,
    });
    // The daemon on W3bstream 2 with this key: refused at start, before measuring, saying why.
    const p = start(BACKEND, ['--sensor', 'sim', '--data-dir', dir, ...mod, ...v2, '--publish-url', 'http://127.0.0.1:9/message'], env);
    procs.push(p);
    expect(await p.exited).toBe(2);
    expect(p.output()).toMatch(/P-256 key.*secp256k1.*A TPM 2\.0 offers NIST curves only/s);
    // ioID recovers the device with ecrecover (secp256k1): the same check refuses the permit.
    const permit = cli(
      [
        'ioid',
        'permit',
        '--data-dir',
        dir,
        ...mod,
        '--owner',
        `0x${'11'.repeat(20)}`,
        '--registry',
        `0x${'22'.repeat(20)}`,
        '--chain-id',
        '4690',
        '--nonce',
        '0',
      ],
      env,
    );
    expect(permit.status).toBe(2);
    expect(permit.out).toMatch(/P-256 key.*ioID.*A TPM 2\.0 offers NIST curves only/s);
  }, 90_000);

  it('signs with the TPM key, measures through a TPM reset (swtpm stopped and started), and signs the readings kept meanwhile, in order', async () => {
    const dir = dataDir();
    const env = { ...tpm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    const idr = cli(['identity', '--json', '--data-dir', dir, '--key-uri', URI, '--pkcs11-module', tpm.module], env);
    expect(idr.status).toBe(0);
    const id = JSON.parse(idr.out.trim().split('\n').pop()!) as { deviceId: string; publicKey: string };
    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const p = meter(dir, r.url, env, ['--pkcs11-module', tpm.module]);
    await until(() => r.received.length >= 2, 30_000, '2 readings');
    await tpm.stop();
    await until(async () => (await state(dir))?.signing?.state === 'fault', 30_000, 'the fault in state.json');
    await until(async () => ((await state(dir))?.signing?.unsigned ?? 0) >= 3, 30_000, '3 readings kept unsigned');
    const during = (await state(dir))!;
    expect(during.signing!.reason).toMatch(/token/);
    expect(during.powerW).toBeCloseTo(4, 0);
    const kept = during.signing!.unsigned;
    const before = r.received.length;
    await tpm.start();
    await until(async () => (await state(dir))?.signing?.state === 'ok', 30_000, 'the key back');
    await until(() => r.received.length >= before + kept + 1, 30_000, 'the kept readings delivered');
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(p.output()).toMatch(/signing key fault: token gone or failing/);
    expect(p.output()).toMatch(/signing key back/);
    const seqs = r.received.map((x) => x.seq!);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const ts = r.received.map((x) => x.timestamp!);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
    expect(r.received.every((x) => x.verified && x.deviceId === id.deviceId)).toBe(true);
    checkReadings(r, id);
  }, 150_000);
});

describe('a slow token (200 ms per signature, a TPM on SPI) does not cost the sampler a conversion', () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = softHsm('meter');
  });
  afterAll(() => hsm.cleanup());

  it('every window stays gap-free (observed fraction of a gap-free window) while each reading is signed in 200 ms', async () => {
    const dir = dataDir();
    const slowDir = mkdtempSync(join(tmpdir(), 'pm-slow-'));
    dirs.push(slowDir);
    const slow = slowModule(slowDir, hsm.module, 200);
    const env = { ...hsm.env, POWER_METER_PKCS11_PIN: USER_PIN };
    expect(cli(['identity', '--data-dir', dir, '--key-uri', URI, '--pkcs11-module', slow], env).status).toBe(0);
    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const p = meter(dir, r.url, env, ['--pkcs11-module', slow]);
    const seen = new Map<number, number>();
    await until(
      async () => {
        const s = await state(dir);
        if (s?.lastWindow) seen.set(s.lastWindow.endMs, s.lastWindow.observedFraction);
        return seen.size >= 8;
      },
      60_000,
      '8 windows',
    );
    expect(await p.stop('SIGTERM')).toBe(0);
    // The first window starts mid-conversion. A C_Sign on the event loop would cost every 1 s window
    // the conversions of 200 ms (3 of 14.6: observed about 0.79); signed off the loop they stay at
    // the 99.2 % of a gap-free window. The mean tolerates a conversion lost now and then to this
    // shared machine's load (the file key loses those too); the sampler's accounting is the judge.
    const fractions = [...seen.values()].slice(1);
    const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
    expect(mean).toBeGreaterThanOrEqual(0.95);
    expect(r.received.length).toBeGreaterThanOrEqual(6);
    expect(r.received.every((x) => x.verified)).toBe(true);
  }, 120_000);
});
