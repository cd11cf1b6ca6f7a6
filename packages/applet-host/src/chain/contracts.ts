import { type Address, type Hex, createPublicClient, createWalletClient, defineChain, http, toEventSelector } from 'viem';
import { type ContractName, loadContract } from '../artifacts.js';

/**
 * This project's contracts on a chain whose accounts are unlocked (the local chain): deployed,
 * and driven through viem with JSON-RPC accounts (eth_sendTransaction), so no private key is
 * ever handled here.
 */
export interface RewardContracts {
  registry: Address;
  binding: Address;
  token: Address;
  verifier: Address;
}

export const DEVICE_REGISTERED_TOPIC = toEventSelector('DeviceRegistered(address)');
export const DEVICE_BOUND_TOPIC = toEventSelector('DeviceBound(address,address)');

function clients(rpcUrl: string, chainId: number) {
  const chain = defineChain({ id: chainId, name: `chain ${chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } });
  return {
    publicClient: createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: 50 }),
    walletClient: createWalletClient({ chain, transport: http(rpcUrl) }),
  };
}

export class RewardSystem {
  private readonly c: ReturnType<typeof clients>;

  constructor(
    readonly rpcUrl: string,
    readonly chainId: number,
    /** Deploys the contracts and administers the registry. */
    readonly admin: Address,
    readonly contracts: RewardContracts,
  ) {
    this.c = clients(rpcUrl, chainId);
  }

  /** Deploys the registry, the binding, the verifier and the token, whose minter is `operator`. */
  static async deploy(rpcUrl: string, chainId: number, admin: Address, operator: Address): Promise<RewardSystem> {
    const c = clients(rpcUrl, chainId);
    const deploy = async (name: ContractName, args: unknown[]): Promise<Address> => {
      const a = loadContract(name);
      const hash = await c.walletClient.deployContract({ abi: a.abi, bytecode: a.bytecode, args, account: admin, chain: c.walletClient.chain });
      const receipt = await c.publicClient.waitForTransactionReceipt({ hash });
      if (!receipt.contractAddress || receipt.status !== 'success') throw new Error(`deploying ${name} failed (${hash})`);
      return receipt.contractAddress;
    };
    const registry = await deploy('DeviceRegistry', []);
    const binding = await deploy('DeviceBinding', [registry]);
    const verifier = await deploy('ReadingVerifier', []);
    const token = await deploy('RewardToken', ['Eco Reward', 'ECO', operator]);
    return new RewardSystem(rpcUrl, chainId, admin, { registry, binding, token, verifier });
  }

  registerDevice(device: Address): Promise<Hex> {
    return this.send('DeviceRegistry', this.contracts.registry, 'registerDevice', [device]);
  }

  bindDevice(device: Address, owner: Address): Promise<Hex> {
    return this.send('DeviceBinding', this.contracts.binding, 'bindDevice', [device, owner]);
  }

  async balanceOf(owner: Address): Promise<bigint> {
    return (await this.c.publicClient.readContract({ address: this.contracts.token, abi: loadContract('RewardToken').abi, functionName: 'balanceOf', args: [owner] })) as bigint;
  }

  async blockNumber(): Promise<bigint> {
    return this.c.publicClient.getBlockNumber();
  }

  private async send(name: ContractName, address: Address, functionName: string, args: unknown[]): Promise<Hex> {
    const hash = await this.c.walletClient.writeContract({ address, abi: loadContract(name).abi, functionName, args, account: this.admin, chain: this.c.walletClient.chain });
    const receipt = await this.c.publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error(`${name}.${functionName} reverted (${hash})`);
    return hash;
  }
}
