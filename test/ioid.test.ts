import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Address, ensureArtifacts, type LocalChain, LocalIoId, rpc, startLocalChain } from '@power-meter/applet-host';
import { IdentityCurveError, didDocument, ioIdPermitDigest, loadOrCreateIdentity, signIoIdPermit } from '@power-meter/w3bstream';
import { Signature, TypedDataEncoder, Wallet, recoverAddress, verifyTypedData } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREATE_IOID_TOPIC, type ChainApprovals, startChainApprovals } from '../packages/power-meter/src/chain/ioid-approvals.js';
import { IOID_SELECTORS } from '../packages/power-meter/src/chain/ioid.js';
import { BACKEND, start } from './support/processes.js';

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

  const cli = async (args: string[]): Promise<{ code: number | string; out: string }> => {
    const p = start(BACKEND, args);
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
