import { deployContract } from 'micro-eth-signer/abi.js';
import { loadContract } from '../artifacts.js';
import { type Address, type Hex, encodeCall, transact } from './contracts.js';
import { hexToBytes, rpc } from './rpc.js';

/**
 * The local ioID registration system (contracts/IoIdRegistryLocal.sol: this project's own
 * implementation of the ioID registry's interface, docs/w3bstream.md "ioID") on a chain whose
 * accounts are unlocked: deployed by an admin, with one project whose device NFTs belong to an
 * owner, who registers devices with their permits exactly as on IoTeX (`register(deviceContract,
 * tokenId, device, hash, uri, v, r, s)` sent from the owner's wallet).
 */
export interface IoIdAddresses {
  registry: Address;
  /** The ioID NFT contract (`registry.ioID()`): the W3bstream node follows its CreateIoID events. */
  ioId: Address;
  deviceNft: Address;
}

/** The part of `power-meter ioid permit --json` that `register` takes. */
export interface PermitForRegister {
  device: string;
  v: number;
  r: string;
  s: string;
  didDocumentHash: string;
}

export class LocalIoId {
  constructor(
    readonly rpcUrl: string,
    readonly admin: Address,
    readonly owner: Address,
    readonly projectId: bigint,
    readonly addresses: IoIdAddresses,
    /** The block the registry was deployed in (where a watcher of its events may start). */
    readonly deployedAtBlock: number,
  ) {}

  /** Deploys the registry (which creates the ioID NFT) and the project's device NFT, owned by `owner`. */
  static async deploy(rpcUrl: string, admin: Address, owner: Address, projectId: bigint): Promise<LocalIoId> {
    const r = await transact(rpcUrl, { from: admin, data: loadContract('IoIdRegistryLocal').bytecode }, 'deploying IoIdRegistryLocal');
    if (!r.contractAddress) throw new Error(`deploying IoIdRegistryLocal: no contract address (${r.hash})`);
    const registry = r.contractAddress as Address;
    const deployedAtBlock = Number(BigInt((await rpc<{ blockNumber: Hex }>(rpcUrl, 'eth_getTransactionReceipt', [r.hash])).blockNumber));
    const ioId =
      `0x${(await rpc<Hex>(rpcUrl, 'eth_call', [{ to: registry, data: encodeCall('IoIdRegistryLocal', 'ioID') }, 'latest'])).slice(-40)}` as Address;
    const nftArtifact = loadContract('IoIdDeviceNFT');
    const nft = await transact(
      rpcUrl,
      { from: admin, data: deployContract(nftArtifact.abi as never, nftArtifact.bytecode, owner) as Hex },
      'deploying IoIdDeviceNFT',
    );
    if (!nft.contractAddress) throw new Error(`deploying IoIdDeviceNFT: no contract address (${nft.hash})`);
    const deviceNft = nft.contractAddress as Address;
    await transact(
      rpcUrl,
      { from: admin, to: registry, data: encodeCall('IoIdRegistryLocal', 'setDeviceContract', { projectId, deviceContract: deviceNft }) },
      'setDeviceContract',
    );
    // The registry moves each device NFT into the ioID's wallet: the owner lets it, once.
    await transact(
      rpcUrl,
      { from: owner, to: deviceNft, data: encodeCall('IoIdDeviceNFT', 'setApprovalForAll', { operator: registry, approved: true }) },
      'setApprovalForAll',
    );
    return new LocalIoId(rpcUrl, admin, owner, projectId, { registry, ioId, deviceNft }, deployedAtBlock);
  }

  private async call(to: Address, data: Hex): Promise<bigint> {
    return BigInt(await rpc<Hex>(this.rpcUrl, 'eth_call', [{ to, data }, 'latest']));
  }

  nonceOf(device: string): Promise<bigint> {
    return this.call(this.addresses.registry, encodeCall('IoIdRegistryLocal', 'nonces', device));
  }

  projectOf(device: string): Promise<bigint> {
    return this.call(this.addresses.ioId, encodeCall('IoIdLocal', 'deviceProject', device));
  }

  /**
   * The owner mints a device NFT of the project and sends `register` with the device's permit
   * (`from` defaults to the owner; another sender shows that a permit for one owner is refused
   * for anyone else). Throws when the transaction reverts.
   */
  async register(permit: PermitForRegister, opts: { uri?: string; from?: Address } = {}): Promise<{ hash: Hex; tokenId: bigint }> {
    const from = opts.from ?? this.owner;
    await transact(
      this.rpcUrl,
      { from: this.owner, to: this.addresses.deviceNft, data: encodeCall('IoIdDeviceNFT', 'mint', from) },
      'mint',
    );
    const tokenId = await this.call(this.addresses.deviceNft, encodeCall('IoIdDeviceNFT', 'total'));
    if (from !== this.owner)
      await transact(
        this.rpcUrl,
        {
          from,
          to: this.addresses.deviceNft,
          data: encodeCall('IoIdDeviceNFT', 'setApprovalForAll', { operator: this.addresses.registry, approved: true }),
        },
        'setApprovalForAll',
      );
    const data = encodeCall('IoIdRegistryLocal', 'register', {
      deviceContract: this.addresses.deviceNft,
      tokenId,
      device: permit.device,
      hash: hexToBytes(permit.didDocumentHash),
      uri: opts.uri ?? 'file:///did-document.json',
      v: BigInt(permit.v),
      r: hexToBytes(permit.r),
      s: hexToBytes(permit.s),
    });
    const { hash } = await transact(this.rpcUrl, { from, to: this.addresses.registry, data }, 'register');
    return { hash, tokenId };
  }
}
