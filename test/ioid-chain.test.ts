import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Address, ensureArtifacts, type LocalChain, LocalIoId, startLocalChain } from '@power-meter/dev-node';
import { readState, type MeterState } from '@power-meter/meter-files';
import { type DevReceiver, startDevReceiver } from '@power-meter/dev-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChainApprovals, startChainApprovals } from '../packages/power-meter/src/chain/ioid-approvals.js';
import { BACKEND, type Proc, start, until } from './support/processes.js';

// The whole W3bstream 2 path on this machine: a real meter process (simulated INA219, secp256k1
// identity) sends /v1/task requests to the dev apinode, which approves devices as the node does
// (CreateIoID events of the ioID contract, then deviceProject) on a local anvil chain running this
// project's own ioID registry (contracts/IoIdRegistryLocal.sol). Not registered, the meter gets 403
// and keeps every reading; the owner registers it through `register` with the permit the meter
// printed; then everything held is delivered, in order. The real ioID contracts were checked by
// hand (docs/w3bstream.md "ioID").
const PROJECT = '42';
const UNREGISTERED_S = 14;

let chain: LocalChain;
let ioid: LocalIoId;
let approvals: ChainApprovals;
let rx: DevReceiver;
const procs: Proc[] = [];

beforeAll(async () => {
  ensureArtifacts();
  chain = await startLocalChain({ chainId: 4690 });
  const [admin, owner] = chain.accounts as [Address, Address];
  ioid = await LocalIoId.deploy(chain.rpcUrl, admin, owner, BigInt(PROJECT));
  approvals = await startChainApprovals({
    rpcUrl: chain.rpcUrl,
    ioIdContract: ioid.addresses.ioId,
    fromBlock: ioid.deployedAtBlock,
    pollIntervalMs: 250,
  });
  rx = await startDevReceiver({
    transport: 'w3bstream-v2',
    port: 0,
    approvals,
    projects: [{ projectId: PROJECT, versions: [], signedKeys: [] }],
    taskStepMs: 200,
  });
}, 300_000);
afterAll(async () => {
  await rx?.close(); // closes the approvals with it
  await chain?.stop();
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

async function cli(args: string[]): Promise<{ code: number | string; out: string }> {
  const p = start(BACKEND, args);
  procs.push(p);
  return { code: await p.exited, out: p.output() };
}

async function state(dir: string): Promise<MeterState | null> {
  const r = await readState(dir);
  return r.ok ? r.state : null;
}

describe('a meter that is not registered through ioID, then is', () => {
  it('gets 403s and keeps everything; once the owner registers it with its permit, every held reading is delivered in order', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'ioid-chain-')), 'data');
    expect((await cli(['identity', '--curve', 'secp256k1', '--data-dir', data])).code).toBe(0);
    const chainFlags = ['--rpc-url', chain.rpcUrl, '--ioid-registry', ioid.addresses.registry];
    const v2 = ['--transport', 'w3bstream-v2', '--project-id', PROJECT, '--project-version', '0.1'];
    const meter = start(
      BACKEND,
      [
        ...['--sensor', 'sim', '--sim-load', '2', '--window', '1', '--data-dir', data, '--publish-url', rx.url],
        ...v2,
        ...chainFlags,
        '--ioid-interval',
        '2',
      ],
      { POWER_METER_RETRY_MAX_MS: '1000' },
    );
    procs.push(meter);

    // Refused for ~14 s: every request a 403, nothing accepted, the readings wait in the outbox.
    await until(() => rx.received.length > 0, 30_000, 'the first request');
    const firstRequestMs = Date.now();
    await until(() => Date.now() - firstRequestMs >= UNREGISTERED_S * 1000, 30_000, `${UNREGISTERED_S} s of refusals`);
    const refused = rx.received.filter((e) => e.reason === 'device does not have permission');
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(rx.received.filter((e) => e.taskId)).toEqual([]);
    const before = await state(data);
    expect(before?.publishing.waiting).toBeGreaterThanOrEqual(UNREGISTERED_S - 2);
    expect(before?.ioid).toMatchObject({ registered: false, registry: ioid.addresses.registry.toLowerCase() });
    const doctorBefore = await cli(['doctor', '--sensor', 'sim', '--data-dir', data, ...v2, ...chainFlags]);
    expect(doctorBefore.out).toMatch(/ioid.*not registered for project 42/);

    // The owner registers the meter with the permit it prints (its key never leaves it).
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
    expect(permit.code, permit.out).toBe(0);
    const p = JSON.parse(permit.out) as { device: string; v: number; r: string; s: string; didDocumentHash: string };
    expect(refused[0]!.candidates).toContain(p.device);
    await ioid.register(p);
    const waitingAtRegistration = (await state(data))?.publishing.waiting ?? 0;

    // Everything held goes through; the meter keeps measuring meanwhile.
    await until(
      async () => {
        const s = await state(data);
        return (
          s !== null &&
          s.publishing.waiting === 0 &&
          s.ioid?.registered === true &&
          rx.received.filter((e) => e.taskId).length > waitingAtRegistration
        );
      },
      60_000,
      'the backlog delivered and the registration seen',
    );
    expect(await meter.stop('SIGTERM')).toBe(0);

    const accepted = rx.received.filter((e) => e.taskId);
    const nonces = accepted.map((e) => Number(e.nonce));
    // In order, no gap, no repeat: every reading from the first refused one on was delivered once.
    const firstRefused = Math.min(...refused.map((e) => Number(e.nonce)));
    expect(nonces[0]).toBe(firstRefused);
    expect(nonces).toEqual(nonces.map((_, i) => firstRefused + i));
    for (const r of refused) expect(nonces).toContain(Number(r.nonce));
    expect(accepted.every((e) => e.deviceId === p.device && e.project === PROJECT && e.verified)).toBe(true);

    const after = await state(data);
    expect(after?.ioid).toMatchObject({ registered: true, projectId: PROJECT, owner: ioid.owner.toLowerCase(), ioId: '1' });
    expect(after?.publishing.waiting).toBe(0);
    const doctorAfter = await cli(['doctor', '--sensor', 'sim', '--data-dir', data, ...v2, ...chainFlags]);
    expect(doctorAfter.out).toMatch(/ioid.*registered: ioID 1, owner 0x[0-9a-f]{40}, project 42/);
  }, 180_000);
});
