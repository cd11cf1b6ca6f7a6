import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Address,
  AppletHost,
  ensureArtifacts,
  type HandledEvent,
  type LocalChain,
  type ProjectConfig,
  RewardSystem,
  readProjectFile,
  resolveProject,
  rpc,
  startLocalChain,
} from '../src/index.js';
import { MONITORS_PROJECT, TOKEN, wasmLogs } from './helpers.js';

// A project file with every kind of monitor and a cron job (test/fixtures/monitors.project.json),
// on a local chain with this package's contracts: the events arrive with the node's payloads.
let chain: LocalChain;
let rewards: RewardSystem;
let host: AppletHost;
let project: ProjectConfig;
let registerTx: string;
const events: HandledEvent[] = [];
const device = '0x00000000000000000000000000000000000000d1' as Address;
const owner = '0x00000000000000000000000000000000000000e2' as Address;

const payloads = (eventType: string) => events.filter((e) => e.eventType === eventType).map((e) => e);
const eventLogs = (): string[] => wasmLogs(host, 'on_event').map((l) => l.replace(/^event:/, ''));

beforeAll(async () => {
  ensureArtifacts();
  chain = await startLocalChain();
  const [admin, operator] = chain.accounts as [Address, Address];
  rewards = await RewardSystem.deploy(chain.rpcUrl, chain.chainId, admin, operator);
  registerTx = await rewards.registerDevice(device);
  const file = readProjectFile(MONITORS_PROJECT);
  project = resolveProject(
    { ...file, chainTxs: [{ eventType: 'TX_MINED', chainID: 31337, txAddress: registerTx }] },
    { publisherToken: TOKEN, localEndpoints: new Map([[chain.chainId, chain.rpcUrl]]) },
  );
  host = await AppletHost.start(project, { onEvent: (e) => events.push(e) });
}, 300_000);

afterAll(async () => {
  await host?.close();
  await chain?.stop();
});

describe('a project file’s monitors, run as the node runs them', () => {
  it('the fixture names the contracts a fresh chain gets', () => {
    expect(rewards.contracts.registry.toLowerCase()).toBe(project.contractLogs![0]!.contractAddress);
    expect(rewards.contracts.binding.toLowerCase()).toBe(project.contractLogs![1]!.contractAddress);
  });

  it('contract logs, chain transaction and chain height: one event each, with go-ethereum’s JSON, then no more', async () => {
    await rewards.bindDevice(device, owner);
    await host.syncChain();
    const receipt = await rpc<{ blockHash: string; logs: { blockHash: string; transactionHash: string }[] }>(
      chain.rpcUrl,
      'eth_getTransactionReceipt',
      [registerTx],
    );
    const pad = (a: string) => `0x${a.slice(2).toLowerCase().padStart(64, '0')}`;
    expect(payloads('REGISTERED').map((e) => e.source)).toEqual(['contract-log']);
    expect(eventLogs()[0]).toBe(
      `{"address":"0x5fbdb2315678afecb367f032d93f642f64180aa3","topics":["0x05d7f0c690676ba31675b45bcdb9ff4c34bb10744ec89d329eacd93c79ecc029","${pad(device)}"],"data":"0x","blockNumber":"0x5","transactionHash":"${registerTx}","transactionIndex":"0x0","blockHash":"${receipt.blockHash}","logIndex":"0x0","removed":false}`,
    );
    // The binding monitor has no eventType: MONITOR_DEFAULT. (Its topic0 is needed: the node lists a
    // chain's monitors with one filter, so a monitor without topics next to one with a topic0 gets
    // only logs with that topic0.)
    const bound = JSON.parse(eventLogs()[1]!) as { address: string; topics: string[]; blockNumber: string };
    expect(bound).toMatchObject({ address: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512', blockNumber: '0x6' });
    expect(bound.topics.slice(1)).toEqual([pad(device), pad(owner)]);
    // The transaction, as go-ethereum v1.12 marshals a dynamic-fee transaction.
    const tx = await rpc<Record<string, string>>(chain.rpcUrl, 'eth_getTransactionByHash', [registerTx]);
    expect(tx.type).toBe('0x2');
    const q = (v: string) => `0x${BigInt(v).toString(16)}`;
    expect(eventLogs()[2]).toBe(
      `{"type":"0x2","chainId":"0x7a69","nonce":"${q(tx.nonce!)}","to":"0x5fbdb2315678afecb367f032d93f642f64180aa3","gas":"${q(tx.gas!)}","gasPrice":null,"maxPriorityFeePerGas":"${q(tx.maxPriorityFeePerGas!)}","maxFeePerGas":"${q(tx.maxFeePerGas!)}","value":"0x0","input":"${tx.input}","accessList":[],"v":"${q(tx.v!)}","r":"${q(tx.r!)}","s":"${q(tx.s!)}","hash":"${registerTx}"}`,
    );
    expect(eventLogs()[3]).toBe('{"HeaderNumber":6}');
    expect(events.map((e) => [e.source, e.eventType])).toEqual([
      ['contract-log', 'REGISTERED'],
      ['contract-log', 'MONITOR_DEFAULT'],
      ['chain-tx', 'TX_MINED'],
      ['chain-height', 'HEIGHT'],
    ]);
    await host.syncChain();
    expect(events).toHaveLength(4);
  });

  it('a contract log whose handler fails is listed again next round, with the rest of its range (the node’s monitor)', async () => {
    const failing: ProjectConfig = {
      ...project,
      name: 'failing_monitor',
      envs: { env: [['FAIL_EVENTS', 'yes']] },
      applets: [{ ...project.applets[0]!, strategies: [{ eventType: 'FAILING', handler: 'on_event_failing' }] }],
      contractLogs: [{ eventType: 'FAILING', chainID: 31337, contractAddress: rewards.contracts.registry, blockStart: 0 }],
      chainTxs: [],
      chainHeights: [],
      cronJobs: [],
    };
    const second = await AppletHost.start(failing);
    try {
      await second.syncChain();
      await second.syncChain();
      const seen = wasmLogs(second, 'on_event_failing');
      expect(seen).toHaveLength(2);
      expect(seen[1]).toBe(seen[0]);
      expect(second.monitors.contractLogBlocks).toEqual([0]);
    } finally {
      await second.close();
    }
  }, 60_000);
});

describe('cron jobs', () => {
  it('deliver the node’s payload {"ID","Timestamp"} as an event of the job’s type', async () => {
    await host.fireCron(1);
    const last = eventLogs().at(-1)!;
    expect(last).toMatch(
      new RegExp(`^\\{"ID":"${host.cron.ids[1]}","Timestamp":"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?Z"\\}$`),
    );
    expect(Math.abs(Date.parse(JSON.parse(last).Timestamp) - Date.now())).toBeLessThan(60_000);
    expect(events.at(-1)).toMatchObject({ source: 'cron', eventType: 'HOURLY' });
  });

  it('run on their schedule once started (@every 1s)', async () => {
    const before = events.filter((e) => e.eventType === 'TICK').length;
    host.cron.start();
    try {
      const until = Date.now() + 30_000;
      while (events.filter((e) => e.eventType === 'TICK').length < before + 2) {
        if (Date.now() > until) throw new Error('no two TICK events within 30 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      host.cron.stop();
    }
    const ticks = events.filter((e) => e.eventType === 'TICK');
    expect(ticks.every((e) => e.source === 'cron' && e.results?.[0]?.code === 0)).toBe(true);
  }, 60_000);
});
