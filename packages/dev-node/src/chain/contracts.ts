import { keccak_256 } from '@noble/hashes/sha3.js';
import { createContract, deployContract } from 'micro-eth-signer/abi.js';
import { type ContractName, loadContract } from '../artifacts.js';
import { rpc } from './rpc.js';

/** `0x` + 40 hex. */
export type Address = `0x${string}`;
export type Hex = `0x${string}`;

/**
 * This project's contracts on a chain whose accounts are unlocked (the local chain): deployed
 * and driven with eth_sendTransaction from those accounts, so no private key is ever handled
 * here. ABI encoding by micro-eth-signer.
 */
export interface RewardContracts {
  registry: Address;
  binding: Address;
  token: Address;
  verifier: Address;
}

/** An event's topic 0: keccak-256 of its signature. */
export function eventTopic(signature: string): Hex {
  return `0x${Buffer.from(keccak_256(new TextEncoder().encode(signature))).toString('hex')}`;
}

export const DEVICE_REGISTERED_TOPIC = eventTopic('DeviceRegistered(address)');
export const DEVICE_BOUND_TOPIC = eventTopic('DeviceBound(address,address)');

const toHex = (bytes: Uint8Array): Hex => `0x${Buffer.from(bytes).toString('hex')}`;

// micro-eth-signer's methods are typed from `as const` ABIs; ours are read from JSON at run time.
type Method = { encodeInput(v?: unknown): Uint8Array; decodeOutput(b: Uint8Array): unknown };

/** Calldata for `name(args)` of a compiled contract (args: one value, or an object by input name). */
export function encodeCall(contract: ContractName, name: string, args?: unknown): Hex {
  const methods = createContract(loadContract(contract).abi as never) as unknown as Record<string, Method>;
  const m = methods[name];
  if (!m) throw new Error(`${contract} has no function ${name}`);
  return toHex(args === undefined ? m.encodeInput() : m.encodeInput(args));
}

interface Receipt {
  status: string;
  contractAddress: string | null;
}

/** Sends a transaction from an unlocked account and waits (polling) for its receipt. */
export async function transact(
  rpcUrl: string,
  tx: { from: Address; to?: Address; data: Hex; value?: Hex },
  what: string,
  timeoutMs = 60_000,
): Promise<Receipt & { hash: Hex }> {
  const hash = await rpc<Hex>(rpcUrl, 'eth_sendTransaction', [tx]);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const receipt = await rpc<Receipt | null>(rpcUrl, 'eth_getTransactionReceipt', [hash]);
    if (receipt) {
      if (receipt.status !== '0x1') throw new Error(`${what} reverted (${hash})`);
      return { ...receipt, hash };
    }
    if (Date.now() > until) throw new Error(`${what}: no receipt for ${hash} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class RewardSystem {
  constructor(
    readonly rpcUrl: string,
    readonly chainId: number,
    /** Deploys the contracts and administers the registry. */
    readonly admin: Address,
    readonly contracts: RewardContracts,
  ) {}

  /** Deploys the registry, the binding, the verifier and the token, whose minter is `operator`. */
  static async deploy(rpcUrl: string, chainId: number, admin: Address, operator: Address): Promise<RewardSystem> {
    const deploy = async (name: ContractName, args?: unknown): Promise<Address> => {
      const a = loadContract(name);
      // Without constructor arguments the creation code is the bytecode itself.
      const data = (args === undefined ? a.bytecode : deployContract(a.abi as never, a.bytecode, args)) as Hex;
      const receipt = await transact(
        rpcUrl,
        { from: admin, data: data.startsWith('0x') ? data : (`0x${data}` as Hex) },
        `deploying ${name}`,
      );
      if (!receipt.contractAddress) throw new Error(`deploying ${name}: no contract address (${receipt.hash})`);
      return receipt.contractAddress as Address;
    };
    const registry = await deploy('DeviceRegistry');
    const binding = await deploy('DeviceBinding', registry);
    const verifier = await deploy('ReadingVerifier');
    const token = await deploy('RewardToken', { name_: 'Eco Reward', symbol_: 'ECO', minter_: operator });
    return new RewardSystem(rpcUrl, chainId, admin, { registry, binding, token, verifier });
  }

  async registerDevice(device: Address): Promise<Hex> {
    return (
      await transact(
        this.rpcUrl,
        { from: this.admin, to: this.contracts.registry, data: encodeCall('DeviceRegistry', 'registerDevice', device) },
        'registerDevice',
      )
    ).hash;
  }

  async bindDevice(device: Address, owner: Address): Promise<Hex> {
    return (
      await transact(
        this.rpcUrl,
        { from: this.admin, to: this.contracts.binding, data: encodeCall('DeviceBinding', 'bindDevice', { device, owner }) },
        'bindDevice',
      )
    ).hash;
  }

  /** The owner's reward-token balance in base units (18 decimals). */
  async balanceOf(owner: Address): Promise<bigint> {
    const result = await rpc<Hex>(this.rpcUrl, 'eth_call', [
      { to: this.contracts.token, data: encodeCall('RewardToken', 'balanceOf', owner) },
      'latest',
    ]);
    return BigInt(result);
  }
}
