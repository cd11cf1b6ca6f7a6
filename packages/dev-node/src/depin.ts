import { join } from 'node:path';
import { ensureArtifacts, PACKAGE_ROOT } from './artifacts.js';
import { type LocalChain, startLocalChain } from './chain/anvil.js';
import { type Address, DEVICE_BOUND_TOPIC, DEVICE_REGISTERED_TOPIC, type RewardContracts, RewardSystem } from './chain/contracts.js';
import { AppletHost, type AppletHostOptions } from './host.js';
import type { ProjectConfig } from './project/config.js';
import { readProjectFile, resolveProject } from './project/file.js';

/**
 * One row of the applet's reward table: what the applet mints per reading on chain. Not the
 * meter's HourlyRewardTier (meter-files), which is a rate in tokens per hour for the screen's
 * local estimate; the two tables share their bounds, not their unit.
 */
export interface PerReadingRewardTier {
  /** Readings below this many watts earn `tokens` (the first matching tier wins). */
  belowW: number;
  /** Whole tokens minted per reading. */
  tokens: number;
}

/** The bounds of the meter's default table (docs/w3bstream.md decision): < 3 W, < 5 W, in whole tokens per reading. */
export const DEFAULT_PER_READING_REWARD_TIERS: PerReadingRewardTier[] = [
  { belowW: 3, tokens: 10 },
  { belowW: 5, tokens: 4 },
];

export interface EnergyMeterProjectOptions {
  publisherToken: string;
  chainId: number;
  rpcUrl: string;
  operator: Address;
  contracts: RewardContracts;
  tiers?: PerReadingRewardTier[];
  /** "secp256k1": the applet checks each signature against the registered address (on chain). */
  signatureCheck?: 'secp256k1' | 'off';
}

/** This project's W3bstream project file: the energy-meter applet, its tables, env, chain and monitors. */
export const ENERGY_METER_PROJECT_FILE = join(PACKAGE_ROOT, 'projects', 'energy-meter.json');

/**
 * This project's W3bstream project, read from its project file (projects/energy-meter.json, the
 * file `applet-host up --project` reads too), with the chain, the operator and the contracts of
 * this deployment filled in (the file names those of a fresh local chain) and the tiers and
 * signature check of the command line.
 */
export function energyMeterProject(o: EnergyMeterProjectOptions): ProjectConfig {
  const file = readProjectFile(ENERGY_METER_PROJECT_FILE);
  const byTopic: Record<string, Address> = { [DEVICE_REGISTERED_TOPIC]: o.contracts.registry, [DEVICE_BOUND_TOPIC]: o.contracts.binding };
  const chains = (file.chains ?? []).map((c) => ({ ...c, chainID: o.chainId }));
  return resolveProject(
    {
      ...file,
      chains,
      operators: [{ name: 'default', address: o.operator }],
      contractLogs: (file.contractLogs ?? []).map((l) => ({
        ...l,
        chainID: o.chainId,
        contractAddress: byTopic[l.topic0 ?? ''] ?? l.contractAddress,
      })),
    },
    {
      publisherToken: o.publisherToken,
      localEndpoints: new Map([[o.chainId, o.rpcUrl]]),
      env: {
        CHAIN_ID: String(o.chainId),
        TOKEN_ADDRESS: o.contracts.token,
        VERIFIER_ADDRESS: o.contracts.verifier,
        REWARD_TIERS: JSON.stringify(o.tiers ?? DEFAULT_PER_READING_REWARD_TIERS),
        SIGNATURE_CHECK: o.signatureCheck ?? 'secp256k1',
      },
    },
  );
}

export interface LocalDepin {
  chain: LocalChain;
  rewards: RewardSystem;
  host: AppletHost;
  /** Deploys and administers the contracts. */
  admin: Address;
  /** The project's operator: sends the applet's transactions, the token's minter. */
  operator: Address;
  /** A demo owner wallet. */
  owner: Address;
  /** Registers a device, binds it to an owner, and lets the applet see both events. */
  registerAndBind(device: Address, owner?: Address): Promise<void>;
  close(): Promise<void>;
}

export interface LocalDepinOptions extends Omit<AppletHostOptions, 'watchChain'> {
  publisherToken: string;
  tiers?: PerReadingRewardTier[];
  signatureCheck?: 'secp256k1' | 'off';
  /** Run the monitors in the background (default true); tests call host.syncChain() instead. */
  watchChain?: boolean;
}

/**
 * The whole DePIN side on this machine: a local chain, the contracts deployed, and the applet
 * host running this project's applet against them. The meter publishes to `host.url`.
 */
export async function startLocalDepin(opts: LocalDepinOptions): Promise<LocalDepin> {
  ensureArtifacts();
  const chain = await startLocalChain({ log: opts.log });
  try {
    const [admin, operator, owner] = chain.accounts as [Address, Address, Address];
    const rewards = await RewardSystem.deploy(chain.rpcUrl, chain.chainId, admin, operator);
    const project = energyMeterProject({
      publisherToken: opts.publisherToken,
      chainId: chain.chainId,
      rpcUrl: chain.rpcUrl,
      operator,
      contracts: rewards.contracts,
      tiers: opts.tiers,
      signatureCheck: opts.signatureCheck,
    });
    const host = await AppletHost.start(project, { ...opts, watchChain: opts.watchChain ?? true });
    return {
      chain,
      rewards,
      host,
      admin,
      operator,
      owner,
      async registerAndBind(device, to = owner) {
        await rewards.registerDevice(device);
        await rewards.bindDevice(device, to);
        await host.syncChain();
      },
      async close() {
        await host.close();
        await chain.stop();
      },
    };
  } catch (err) {
    await chain.stop();
    throw err;
  }
}
