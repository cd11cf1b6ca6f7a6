import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Address, ensureArtifacts, type LocalChain, LocalIoId, rpc, startLocalChain } from '@power-meter/dev-node';
import { IdentityCurveError, didDocument, ioIdPermitDigest, loadOrCreateIdentity, signIoIdPermit } from '@power-meter/w3bstream';
import { Signature, TypedDataEncoder, Wallet, recoverAddress, verifyTypedData } from 'ethers';
import { readState } from '@power-meter/meter-files';
import { AbiCoder } from 'ethers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATE_IOID_TOPIC,
  type ChainApprovals,
  addressOfDid,
  didOfCreateIoIdLog,
  startChainApprovals,
} from '../packages/power-meter/src/chain/ioid-approvals.js';
import { IOID_SELECTORS, ioIdVerdict } from '../packages/power-meter/src/chain/ioid.js';
import { BACKEND, type Proc, ROOT, start, until } from './support/processes.js';

// The device's consent to an ioID registration (docs/w3bstream.md "ioID"): the permit the meter
// signs is checked with ethers (an independent EIP-712 implementation), then taken by this
// project's own registry (contracts/IoIdRegistryLocal.sol, the ioID interface written
// independently) on anvil, through the real CLI. The real iotexproject/ioID-contracts were checked
// by hand the same way (the README says how to repeat it).
const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
};
const domain = (chainId: bigint | string, registry: string) => ({
  name: 'ioIDRegistry',
  version: '1',
  chainId,
  verifyingContract: registry,
});

describe('the permit, checked by ethers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioid-permit-'));
  const id = loadOrCreateIdentity(join(dir, 'k1'), { curve: 'secp256k1' });

  it('the digest is the EIP-712 hash of Permit(owner, nonce) under the registry domain', () => {
    for (const [owner, nonce, chainId, registry] of [
      [Wallet.createRandom().address, 0n, 4690n, Wallet.createRandom().address],
      [Wallet.createRandom().address, 7n, 4689n, Wallet.createRandom().address],
      [Wallet.createRandom().address, 2n ** 255n, 31337n, Wallet.createRandom().address],
    ] as const) {
      const ours = Buffer.from(ioIdPermitDigest({ owner, nonce, chainId, registry })).toString('hex');
      expect(`0x${ours}`).toBe(TypedDataEncoder.hash(domain(chainId, registry), PERMIT_TYPES, { owner, nonce }));
    }
  });

  it('signatures recover to the device address, and to someone else for any other owner, nonce, chain or registry', () => {
    const owner = Wallet.createRandom().address;
    const registry = Wallet.createRandom().address;
    const p = signIoIdPermit(id, { owner, nonce: 3n, chainId: 4690n, registry });
    expect(p.v === 27 || p.v === 28).toBe(true);
    const sig = Signature.from({ r: p.r, s: p.s, v: p.v });
    expect(verifyTypedData(domain(4690n, registry), PERMIT_TYPES, { owner, nonce: 3n }, sig).toLowerCase()).toBe(id.deviceId);
    // Low S, as every Ethereum signer writes it.
    expect(BigInt(p.s) <= 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n).toBe(true);
    const others = [
      verifyTypedData(domain(4690n, registry), PERMIT_TYPES, { owner: Wallet.createRandom().address, nonce: 3n }, sig),
      verifyTypedData(domain(4690n, registry), PERMIT_TYPES, { owner, nonce: 4n }, sig),
      verifyTypedData(domain(4689n, registry), PERMIT_TYPES, { owner, nonce: 3n }, sig),
      verifyTypedData(domain(4690n, Wallet.createRandom().address), PERMIT_TYPES, { owner, nonce: 3n }, sig),
    ];
    for (const a of others) expect(a.toLowerCase()).not.toBe(id.deviceId);
    expect(recoverAddress(p.digest, sig).toLowerCase()).toBe(id.deviceId);
  });

  it('a P-256 identity cannot sign a permit', () => {
    const p256 = loadOrCreateIdentity(join(dir, 'p256'), { curve: 'p256' });
    expect(() => signIoIdPermit(p256, { owner: id.deviceId, nonce: 0n, chainId: 1n, registry: id.deviceId })).toThrow(IdentityCurveError);
  });

  it('the DID document names the device key as a JWK, in the form ioConnect writes', () => {
    const doc = didDocument(id);
    expect(doc.id).toBe(`did:io:${id.deviceId}`);
    expect(doc.authentication).toEqual([`${doc.id}#Key-secp256k1-1`]);
    expect(doc.verificationMethod).toEqual([
      {
        id: `${doc.id}#Key-secp256k1-1`,
        type: 'JsonWebKey2020',
        controller: doc.id,
        publicKeyJwk: { crv: 'secp256k1', x: id.publicKeyJwk.x, y: id.publicKeyJwk.y, kty: 'EC', kid: 'Key-secp256k1-1' },
      },
    ]);
    // The JWK's point is the key whose address is the device address.
    const xy = Buffer.concat([Buffer.from(id.publicKeyJwk.x, 'base64url'), Buffer.from(id.publicKeyJwk.y, 'base64url')]);
    expect(`04${xy.toString('hex')}`).toBe(id.publicKeyHex);
  });
});

describe('the CLI refuses what cannot make a valid permit (exit 2, nothing signed)', () => {
  const run = async (args: string[]) => {
    const p = start(BACKEND, args);
    return { code: await p.exited, out: p.output() };
  };
  const registry = `0x${'22'.repeat(20)}`;
  const owner = `0x${'11'.repeat(20)}`;

  it('a P-256 identity, with the command that creates a secp256k1 one; a missing identity; bad or missing values', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'ioid-refuse-')), 'data');
    const base = ['ioid', 'permit', '--data-dir', data, '--registry', registry, '--chain-id', '4690', '--nonce', '0'];
    const missing = await run([...base, '--owner', owner]);
    expect(missing.code).toBe(1);
    expect(missing.out).toContain(`power-meter identity --curve secp256k1 --data-dir ${data}`);
    expect((await run(['identity', '--data-dir', data])).code).toBe(0); // P-256, the v1 default
    const p256 = await run([...base, '--owner', owner]);
    expect(p256.code).toBe(2);
    expect(p256.out).toMatch(/is a P-256 key.*move .*identity away.*power-meter identity --curve secp256k1 --data-dir/);
    expect(p256.out).not.toMatch(/"r"/);
    for (const [args, message] of [
      [[...base, '--owner', '0x12'], /invalid setting --owner = "0x12"/],
      [
        ['ioid', 'permit', '--data-dir', data, '--registry', registry, '--owner', owner],
        /invalid setting --rpc-url = "".*--chain-id and --nonce/,
      ],
      [[...base, '--owner', owner, '--nonce', '-1'], /invalid setting --nonce = "-1"/],
      [['ioid', 'status', '--data-dir', data, '--registry', registry], /invalid setting --rpc-url = ""/],
      [['run', '--data-dir', data, '--ioid-registry', registry], /invalid setting --rpc-url = "".*when --ioid-registry is set/],
    ] as Array<[string[], RegExp]>) {
      const r = await run(args);
      expect(r.code, r.out).toBe(2);
      expect(r.out).toMatch(message);
    }
  });
});

describe('reading the chain (pure parts)', () => {
  it('the DID of a CreateIoID log, and the address in it as the node reads it', () => {
    const did = 'did:io:0x958d4535b824eacd6cb4bfa448815e6442af2d9f';
    const data = AbiCoder.defaultAbiCoder().encode(['uint256', 'address', 'string'], [7n, `0x${'ab'.repeat(20)}`, did]);
    expect(didOfCreateIoIdLog(data)).toBe(did);
    expect(addressOfDid(did)).toBe('0x958d4535b824eacd6cb4bfa448815e6442af2d9f');
    expect(addressOfDid('did:io:0x958D4535B824EACD6CB4BFA448815E6442AF2D9F')).toBe('0x958d4535b824eacd6cb4bfa448815e6442af2d9f');
    expect(addressOfDid('did:io:5RJ1UfUCLX68KeFMmuvaVsm6m5Y7yH1bkF5CC4WpHXxa')).toBeNull();
    expect(() => didOfCreateIoIdLog(data.slice(0, 200))).toThrow(/too short/);
  });

  it('the verdict doctor and the log give', () => {
    const reg = { registered: true, projectId: '42', ioId: '3', owner: '0xaa', error: null };
    expect(ioIdVerdict(reg, '42')).toEqual({ ok: true, text: 'registered: ioID 3, owner 0xaa, project 42' });
    expect(ioIdVerdict(reg, '43')).toEqual({ ok: false, text: 'registered: ioID 3, owner 0xaa, project 42, not project 43' });
    expect(ioIdVerdict({ ...reg, registered: false }, '42')).toEqual({ ok: false, text: 'not registered for project 42' });
    expect(ioIdVerdict({ ...reg, registered: null, error: 'RPC unreachable' }, '')).toEqual({
      ok: false,
      text: 'not read: RPC unreachable',
    });
  });
});

describe('ioid permit and status (real CLI) against the local registry on anvil', () => {
  let chain: LocalChain;
  let ioid: LocalIoId;
  let approvals: ChainApprovals;
  const seen: string[] = [];

  beforeAll(async () => {
    ensureArtifacts();
    chain = await startLocalChain({ chainId: 4690 });
    const [admin, owner] = chain.accounts as [Address, Address];
    ioid = await LocalIoId.deploy(chain.rpcUrl, admin, owner, 42n);
    approvals = await startChainApprovals({
      rpcUrl: chain.rpcUrl,
      ioIdContract: ioid.addresses.ioId,
      fromBlock: ioid.deployedAtBlock,
      pollIntervalMs: 200,
      log: (l) => seen.push(l),
    });
  }, 300_000);
  afterAll(async () => {
    await approvals?.close();
    await chain?.stop();
  });

  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  });
  const cli = async (args: string[]): Promise<{ code: number | string; out: string }> => {
    const p = start(BACKEND, args);
    procs.push(p);
    const code = await p.exited;
    return { code, out: p.output() };
  };

  it('register takes the permit the meter printed, and refuses it for another owner or nonce', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'ioid-cli-')), 'data');
    expect((await cli(['identity', '--curve', 'secp256k1', '--data-dir', data])).code).toBe(0);
    const base = ['--data-dir', data, '--registry', ioid.addresses.registry, '--rpc-url', chain.rpcUrl];
    const before = await cli(['ioid', 'status', ...base, '--json']);
    expect(before.code).toBe(0);
    const device = (JSON.parse(before.out) as { device: string }).device;
    expect(JSON.parse(before.out)).toMatchObject({ registered: false, ioIdContract: ioid.addresses.ioId.toLowerCase(), approved: false });
    expect(
      (await cli(['ioid', 'status', ...base, '--project-id', '42', '--project-version', '0.1', '--transport', 'w3bstream-v2'])).out,
    ).toMatch(/status +not registered for project 42/);

    const permitFor = async (extra: string[]) => {
      const r = await cli(['ioid', 'permit', ...base, '--owner', ioid.owner, '--json', ...extra]);
      expect(r.code, r.out).toBe(0);
      return JSON.parse(r.out) as {
        device: string;
        owner: string;
        nonce: string;
        chainId: string;
        v: number;
        r: string;
        s: string;
        didDocumentHash: string;
        didDocumentText: string;
      };
    };
    const good = await permitFor([]);
    expect(good).toMatchObject({
      device,
      owner: ioid.owner.toLowerCase(),
      nonce: '0',
      chainId: '4690',
      registry: ioid.addresses.registry.toLowerCase(),
    });
    expect(good.didDocumentHash).toBe(`0x${createHash('sha256').update(good.didDocumentText).digest('hex')}`);
    // Checked independently: ethers recovers the device from the printed v, r, s under the registry's domain.
    expect(
      verifyTypedData(
        domain(4690n, ioid.addresses.registry),
        PERMIT_TYPES,
        { owner: ioid.owner, nonce: 0n },
        Signature.from(good),
      ).toLowerCase(),
    ).toBe(device);

    // The same permit sent by another wallet (the registry takes msg.sender as the owner): refused.
    const stranger = chain.accounts[2] as Address;
    await expect(ioid.register(good, { from: stranger })).rejects.toThrow(/register reverted/);
    // A permit for the next nonce: refused (the registry's nonce is still 0).
    await expect(ioid.register(await permitFor(['--nonce', '1']))).rejects.toThrow(/register reverted/);
    expect(await ioid.nonceOf(device)).toBe(0n);
    expect(approvals.isApproved(device, '42')).toBe(false);

    const { hash } = await ioid.register(good);
    const receipt = await rpc<{ logs: Array<{ address: string; topics: string[] }> }>(chain.rpcUrl, 'eth_getTransactionReceipt', [hash]);
    expect(receipt.logs.some((l) => l.address === ioid.addresses.ioId.toLowerCase() && l.topics[0] === CREATE_IOID_TOPIC)).toBe(true);
    expect(await ioid.projectOf(device)).toBe(42n);
    expect(await ioid.nonceOf(device)).toBe(1n);

    const after = await cli(['ioid', 'status', ...base, '--json']);
    expect(JSON.parse(after.out)).toMatchObject({
      registered: true,
      ioId: '1',
      owner: ioid.owner.toLowerCase(),
      projectId: '42',
      approved: true,
    });
    // The next permit carries the registry's new nonce; the used one cannot be replayed.
    expect((await permitFor([])).nonce).toBe('1');
    await expect(ioid.register(good)).rejects.toThrow(/register reverted/);

    // The node's approval: CreateIoID seen, deviceProject asked, the pair approved (for 42 only).
    await approvals.sync();
    expect(approvals.isApproved(device, '42')).toBe(true);
    expect(approvals.isApproved(device, '43')).toBe(false);
    expect(approvals.approved()).toEqual([{ address: device, projectId: '42' }]);
  }, 120_000);

  it('a running meter shows its ioID registration in state.json, read from the chain', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'ioid-state-')), 'data');
    expect((await cli(['identity', '--curve', 'secp256k1', '--data-dir', data])).code).toBe(0);
    // With the service's Node flags: --jitless takes away the WebAssembly that Node's own fetch needs.
    const unit = readFileSync(join(ROOT, 'systemd/power-meter.service'), 'utf8');
    const nodeFlags = /^ExecStart=@NODE@ ((?:--\S+ )+)/m.exec(unit)![1]!.trim();
    expect(nodeFlags).toContain('--jitless');
    const meter = start(
      BACKEND,
      [
        ...['--sensor', 'sim', '--sim-load', '2', '--window', '1', '--data-dir', data],
        ...['--rpc-url', chain.rpcUrl, '--ioid-registry', ioid.addresses.registry, '--ioid-interval', '2'],
      ],
      { NODE_OPTIONS: nodeFlags },
    );
    procs.push(meter);
    const ioidState = async () => {
      const r = await readState(data);
      return r.ok ? r.state.ioid : undefined;
    };
    await until(async () => (await ioidState())?.registered === false, 30_000, 'state.json ioid: not registered');
    expect(await ioidState()).toMatchObject({
      registry: ioid.addresses.registry.toLowerCase(),
      ioIdContract: ioid.addresses.ioId.toLowerCase(),
      error: null,
    });
    const permit = await cli([
      'ioid',
      'permit',
      '--data-dir',
      data,
      '--owner',
      ioid.owner,
      '--registry',
      ioid.addresses.registry,
      '--rpc-url',
      chain.rpcUrl,
      '--json',
    ]);
    await ioid.register(JSON.parse(permit.out));
    await until(async () => (await ioidState())?.registered === true, 30_000, 'state.json ioid: registered');
    expect(await ioidState()).toMatchObject({ projectId: '42', owner: ioid.owner.toLowerCase() });
    expect(meter.output()).toMatch(/ioID registered: ioID \d+, owner 0x[0-9a-f]{40}, project 42/);
    expect(await meter.stop('SIGTERM')).toBe(0);
  }, 90_000);

  it('the selectors and the event topic are keccak256 of the signatures', async () => {
    const { id } = await import('ethers');
    expect(CREATE_IOID_TOPIC).toBe(id('CreateIoID(address,uint256,address,string)'));
    for (const [name, sig] of [
      ['nonces', 'nonces(address)'],
      ['exists', 'exists(address)'],
      ['deviceTokenId', 'deviceTokenId(address)'],
      ['ioID', 'ioID()'],
      ['deviceProject', 'deviceProject(address)'],
      ['ownerOf', 'ownerOf(uint256)'],
    ] as const)
      expect(IOID_SELECTORS[name]).toBe(id(sig).slice(0, 10));
  });
});
