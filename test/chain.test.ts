import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Address, type HandledEvent, type LocalDepin, startLocalDepin } from '@power-meter/dev-node';
import { readState, type MeterState } from '@power-meter/meter-files';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND, ROOT, start, until, type Proc } from './support/processes.js';
import { freePort } from './support/free-port.js';

// The tutorial's whole loop on this machine: the meter (a real process, simulated INA219) signs
// readings with a secp256k1 identity and sends public_key as its address; the applet host runs this
// project's applet against a local anvil chain with the signature check on; the meter reads the
// owner's balance back from the chain into state.json.
const TOKEN = 'chain-e2e-token-31b7';
const WEI = 10n ** 18n;

let depin: LocalDepin;
const events: HandledEvent[] = [];
const procs: Proc[] = [];

beforeAll(async () => {
  depin = await startLocalDepin({ publisherToken: TOKEN, port: 0, watchChain: false, onEvent: (e) => events.push(e) });
}, 300_000);
afterAll(async () => {
  await depin?.close();
});
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

/** The device address of a data directory's identity (created by this first call). */
async function identity(dataDir: string): Promise<Address> {
  const p = start(BACKEND, ['identity', '--json', '--curve', 'secp256k1', '--data-dir', dataDir]);
  expect(await p.exited).toBe(0);
  return (JSON.parse(p.output()) as { deviceId: Address }).deviceId;
}

function meter(dataDir: string, load: string): Proc {
  const p = start(
    BACKEND,
    [
      ...['--sensor', 'sim', '--sim-load', load, '--window', '1', '--curve', 'secp256k1', '--data-dir', dataDir],
      ...['--publish-url', depin.host.url, '--rpc-url', depin.chain.rpcUrl, '--reward-token', depin.rewards.contracts.token],
      ...['--wallet-address', depin.owner, '--balance-interval', '2'],
    ],
    { W3BSTREAM_PUBLISHER_TOKEN: TOKEN, POWER_METER_RETRY_MAX_MS: '1000' },
  );
  procs.push(p);
  return p;
}

/** The applet's answers to one device's readings, in order (eventID `<address>-<seq>`). */
function resultsFor(device: Address) {
  return events
    .filter((e) => e.source === 'http' && e.eventId?.startsWith(`${device.toLowerCase()}-`))
    .map((e) => ({ seq: Number(e.eventId!.split('-')[1]), code: e.results?.[0]?.code, error: e.results?.[0]?.error }));
}

async function state(dataDir: string): Promise<MeterState | null> {
  const r = await readState(dataDir);
  return r.ok ? r.state : null;
}

describe('the meter against the local W3bstream project and chain', () => {
  it('2 W readings mint, 12 W readings do not; state.json carries the balance balanceOf returns', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'chain-e2e-')), 'data');
    const device = await identity(data);
    await depin.registerAndBind(device);
    const start0 = await depin.rewards.balanceOf(depin.owner);

    const low = meter(data, '2');
    await until(() => resultsFor(device).filter((r) => r.code === 0).length >= 3, 60_000, 'three accepted 2 W readings');
    expect(await low.stop('SIGTERM')).toBe(0);
    const lowResults = resultsFor(device);
    expect(lowResults.every((r) => r.code === 0 && r.error === undefined)).toBe(true);
    // The applet's first tier: 10 whole tokens per reading below 3 W, to the bound owner.
    const afterLow = await depin.rewards.balanceOf(depin.owner);
    expect(afterLow - start0).toBe(BigInt(lowResults.length) * 10n * WEI);

    const high = meter(data, '12');
    await until(() => resultsFor(device).length >= lowResults.length + 3, 60_000, 'three 12 W readings');
    const highResults = resultsFor(device).slice(lowResults.length);
    expect(highResults.every((r) => r.code === 0)).toBe(true); // accepted and stored, not rewarded
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(afterLow);
    // Nothing mints now, so the meter's next read must equal the chain's figure.
    await until(async () => (await state(data))?.rewardBalance?.raw === afterLow.toString(), 30_000, 'state.json balance = balanceOf');
    const st = (await state(data))!;
    expect(st.rewardBalance).toMatchObject({
      token: depin.rewards.contracts.token.toLowerCase(),
      owner: depin.owner.toLowerCase(),
      decimals: 18,
      tokens: (afterLow / WEI).toString(),
      error: null,
      intervalMs: 2000,
    });
    expect(Math.abs(st.rewardBalance!.readAtMs! - Date.now())).toBeLessThan(30_000);
    expect(st.publishing).toMatchObject({ rejected: 0, lastRejection: null });
    expect(await high.stop('SIGTERM')).toBe(0);
    expect(high.output()).not.toContain(TOKEN);
  });

  it("an unregistered device's readings are refused by the applet; the meter counts and shows it and keeps measuring", async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'chain-e2e-')), 'data');
    const stranger = await identity(data);
    const before = await depin.rewards.balanceOf(depin.owner);
    const p = meter(data, '2');
    await until(async () => ((await state(data))?.publishing.rejected ?? 0) >= 2, 60_000, 'two refusals in state.json');
    const refused = resultsFor(stranger);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    for (const r of refused) {
      expect(r.code).toBe(-1);
      expect(r.error).toContain(`device ${stranger} is not registered`);
    }
    const st = (await state(data))!;
    expect(st.publishing.lastRejection).toContain(`device ${stranger} is not registered`);
    expect(st.publishing.state).toBe('ok'); // refused readings are delivered, not retried: the queue does not block
    expect(st.publishing.waiting).toBeLessThanOrEqual(1);
    expect(await depin.rewards.balanceOf(depin.owner)).toBe(before);
    expect(await p.stop('SIGTERM')).toBe(0);
  });

  it('a dead RPC never touches measurement or delivery: readings still arrive, the balance says why it is missing', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'chain-e2e-')), 'data');
    const device = await identity(data);
    await depin.registerAndBind(device);
    // A loopback port nothing listens on (taken and released).
    const deadRpc = `http://127.0.0.1:${await freePort()}/rpc`;
    const p = start(
      BACKEND,
      [
        ...['--sensor', 'sim', '--sim-load', '2', '--window', '1', '--curve', 'secp256k1', '--data-dir', data],
        ...['--publish-url', depin.host.url, '--rpc-url', deadRpc, '--reward-token', depin.rewards.contracts.token],
        ...['--wallet-address', depin.owner, '--balance-interval', '2'],
      ],
      { W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
    );
    procs.push(p);
    await until(() => resultsFor(device).filter((r) => r.code === 0).length >= 3, 60_000, 'three accepted readings');
    await until(async () => (await state(data))?.rewardBalance?.error != null, 30_000, 'the balance error in state.json');
    const st = (await state(data))!;
    expect(st.rewardBalance).toMatchObject({ raw: null, tokens: null, readAtMs: null });
    expect(st.rewardBalance!.error).toMatch(/unreachable \(ECONNREFUSED\)/);
    expect(st.publishing.state).toBe('ok');
    expect(st.lastWindow!.avgPowerW).toBeCloseTo(2, 1);
    expect(await p.stop('SIGTERM')).toBe(0);
  });
});

describe('power-meter doctor with a chain', () => {
  it('reads the owner balance once, or fails with the reason and what to check', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'chain-doctor-')), 'data');
    const doctor = async (rpcUrl: string) => {
      const args = ['doctor', '--json', '--sensor', 'sim', '--data-dir', data, '--rpc-url', rpcUrl];
      const p = start(BACKEND, [...args, '--reward-token', depin.rewards.contracts.token, '--wallet-address', depin.owner]);
      await p.exited;
      const report = JSON.parse(p.output().slice(p.output().indexOf('{'))) as {
        checks: Array<{ name: string; status: string; detail: string }>;
      };
      return report.checks.find((c) => c.name === 'reward-balance');
    };
    const balance = await depin.rewards.balanceOf(depin.owner);
    expect(await doctor(depin.chain.rpcUrl)).toEqual({
      name: 'reward-balance',
      status: 'ok',
      detail: `${depin.owner.toLowerCase()} holds ${balance / WEI} (token ${depin.rewards.contracts.token.toLowerCase()} on ${depin.chain.rpcUrl})`,
    });
    const dead = await doctor(`http://127.0.0.1:${await freePort()}/key-in-path`);
    expect(dead).toMatchObject({ status: 'fail', detail: expect.stringMatching(/unreachable \(ECONNREFUSED\)$/) });
    expect(dead!.detail).not.toContain('key-in-path');
  });
});

describe('npm run demo -- --chain', () => {
  /** The demo's reading lines: `time  power  seq  applet ok|REFUSED (…)  owner balance N ECO  +N|(no reward)`. */
  async function demo(load: string) {
    const dir = mkdtempSync(join(tmpdir(), 'chain-demo-'));
    const p = start(join(ROOT, 'scripts/demo.mjs'), [
      '--chain',
      '--load',
      load,
      '--window',
      '1',
      '--duration',
      '12',
      '--no-preview',
      '--dir',
      dir,
    ]);
    procs.push(p);
    expect(await p.exited).toBe(0);
    const lines = p
      .output()
      .split('\n')
      .filter((l) => /^\d\d:\d\d:\d\d\s/.test(l));
    return { lines, dir, output: p.output() };
  }

  it('prints each reading with its applet result and the owner balance: rising at 2 W, not at 12 W', async () => {
    const low = await demo('2');
    expect(low.lines.length).toBeGreaterThanOrEqual(3);
    for (const l of low.lines) expect(l).toMatch(/^\S+\s+2\.\d{3}\s+\d+\s+applet ok\s+owner balance \d+ ECO {2}\+10$/);
    const balances = low.lines.map((l) => Number(/balance (\d+) ECO/.exec(l)![1]));
    expect(balances).toEqual(balances.map((_, i) => 10 * (i + 1)));
    expect(existsSync(join(low.dir, 'screen.png'))).toBe(true);
    const high = await demo('12');
    expect(high.lines.length).toBeGreaterThanOrEqual(3);
    for (const l of high.lines) expect(l).toMatch(/applet ok\s+owner balance 0 ECO {2}\(no reward\)$/);
    expect(high.output).toContain('registered and bound to the owner');
  }, 120_000);
});
