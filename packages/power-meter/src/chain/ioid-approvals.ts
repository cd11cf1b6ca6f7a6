import type { Approval, DeviceApprovals } from '@power-meter/w3bstream';
import { IOID_SELECTORS, addressArg, returnWord } from './ioid.js';
import { JsonRpc, safeRpcUrl } from './rpc.js';

/**
 * The dev apinode's approvals from a chain, decided as the W3bstream node decides them
 * (`iotexproject/w3bstream` `monitor/monitor.go` with `service/apinode/apinode.go` and
 * `service/apinode/db/sqlite.go`, read in the code index; docs/w3bstream.md "ioID"):
 *
 * - it reads the logs of the ioID contract (the node's `IoIDContractAddr`) with topic
 *   `CreateIoID(address,uint256,address,string)`, from a first block to the head in steps of at
 *   most 500 blocks, then keeps following the head every second;
 * - logs are handled in block order, then transaction order; for each, the DID in the event is
 *   stripped of `did:io:` and read as the device address, and the ioID contract's
 *   `deviceProject(address)` (asked at the latest block, as the node does) is the project;
 * - the pair (project, device) is approved from then on: `isApproved` answers from that table
 *   only, so a device is refused (403) until its `CreateIoID` has been seen.
 *
 * One difference, in speed only: the node handles one block per tick once it follows the head;
 * this catches up on every block since the last tick at once (a local chain mines a block per
 * transaction, so one-block ticks would lag behind a test).
 */
export const CREATE_IOID_TOPIC = '0x313a15bccdaa3cc35e31f4e2f6a0c398a1c735a9231dd4684399ea0307373062';
/** The node's `listStepSize`. */
export const LIST_STEP_BLOCKS = 500;

export interface ChainApprovalsOptions {
  rpcUrl: string;
  /** The ioID contract (the registry's `ioID()`), whose `CreateIoID` events are followed. */
  ioIdContract: string;
  /** First block to read (the node's `BeginningBlockNumber`); default 0. */
  fromBlock?: number;
  /** How often the head is followed, ms (the node: 1 s). */
  pollIntervalMs?: number;
  log?: (line: string) => void;
}

export interface ChainApprovals extends DeviceApprovals {
  /** Every approved (device, project) pair seen so far, in the order seen. */
  approved(): Approval[];
  /** The last block whose logs were handled. */
  scannedBlock(): number;
  /** Reads up to the current head now (tests and the demo use it instead of waiting a tick). */
  sync(): Promise<void>;
  /** Stops following the chain (it always runs a watcher, so closing is not optional here). */
  close(): Promise<void>;
}

interface RpcLog {
  data: string;
  topics: string[];
  blockNumber: string;
  transactionIndex: string;
  logIndex: string;
  removed?: boolean;
}

/** The `did` string of a `CreateIoID` log: data = id (uint256), wallet (address), offset, then the string. */
export function didOfCreateIoIdLog(data: string): string {
  const hex = data.startsWith('0x') ? data.slice(2) : data;
  const word = (i: number): bigint => BigInt(`0x${hex.slice(i * 64, i * 64 + 64) || '0'}`);
  const offset = Number(word(2));
  if (offset % 32 !== 0 || hex.length < (offset + 32) * 2) throw new Error('CreateIoID log data too short for its did string');
  const length = Number(word(offset / 32));
  const bytes = hex.slice((offset + 32) * 2, (offset + 32 + length) * 2);
  if (bytes.length !== length * 2) throw new Error('CreateIoID log data too short for its did string');
  return Buffer.from(bytes, 'hex').toString('utf8');
}

/**
 * The address in a DID the way the node reads it (`common.HexToAddress(strings.TrimPrefix(did,
 * "did:io:"))`): case-insensitive hex; anything that is not 0x + 40 hex is no device the meter
 * could be (the node would read a zero or truncated address: nobody can sign for it).
 */
export function addressOfDid(did: string): string | null {
  const rest = did.startsWith('did:io:') ? did.slice('did:io:'.length) : did;
  return /^0x[0-9a-fA-F]{40}$/.test(rest) ? rest.toLowerCase() : null;
}

export async function startChainApprovals(opts: ChainApprovalsOptions): Promise<ChainApprovals> {
  const rpc = new JsonRpc(opts.rpcUrl);
  const log = opts.log ?? (() => {});
  const table = new Map<string, Approval>();
  let scanned = (opts.fromBlock ?? 0) - 1;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  let running: Promise<void> | null = null;
  let lastError: string | null = null;

  const handle = async (logs: RpcLog[]): Promise<void> => {
    const ordered = logs
      .filter((l) => !l.removed && l.topics[0]?.toLowerCase() === CREATE_IOID_TOPIC)
      .sort(
        (a, b) =>
          Number(BigInt(a.blockNumber) - BigInt(b.blockNumber)) ||
          Number(BigInt(a.transactionIndex) - BigInt(b.transactionIndex)) ||
          Number(BigInt(a.logIndex) - BigInt(b.logIndex)),
      );
    for (const l of ordered) {
      const did = didOfCreateIoIdLog(l.data);
      const address = addressOfDid(did);
      if (address === null) {
        log(`ioID ${did}: not a did:io:0x<address> DID, no device to approve`);
        continue;
      }
      const project = returnWord(
        await rpc.ethCall(opts.ioIdContract, `${IOID_SELECTORS.deviceProject}${addressArg(address)}`),
        'deviceProject(device)',
        opts.ioIdContract,
      ).toString();
      const k = `${address}:${project}`;
      if (table.has(k)) continue;
      table.set(k, { address, projectId: project });
      log(`ioID approval: ${address} for project ${project} (CreateIoID in block ${BigInt(l.blockNumber)})`);
    }
  };

  /** Everything from the last scanned block to the head, in steps; `scanned` advances only after a step is handled. */
  const catchUp = async (): Promise<void> => {
    const head = Number(BigInt(await rpc.request<string>('eth_blockNumber', [])));
    while (scanned < head && !closed) {
      const from = scanned + 1;
      const to = Math.min(from + LIST_STEP_BLOCKS, head);
      const logs = await rpc.request<RpcLog[]>('eth_getLogs', [
        { address: opts.ioIdContract, topics: [[CREATE_IOID_TOPIC]], fromBlock: `0x${from.toString(16)}`, toBlock: `0x${to.toString(16)}` },
      ]);
      await handle(logs);
      scanned = to;
    }
  };

  const sync = (): Promise<void> => {
    running ??= catchUp().finally(() => {
      running = null;
    });
    return running;
  };

  const tick = (): void => {
    if (closed) return;
    void sync()
      .then(() => {
        if (lastError !== null) log(`ioID events read again from ${safeRpcUrl(opts.rpcUrl)}`);
        lastError = null;
      })
      .catch((err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        // The table keeps what it had; the next tick tries again (the node logs and goes on).
        if (msg !== lastError) log(`ioID events not read from ${safeRpcUrl(opts.rpcUrl)}: ${msg}`);
        lastError = msg;
      })
      .finally(() => {
        if (!closed) {
          timer = setTimeout(tick, opts.pollIntervalMs ?? 1000);
          timer.unref();
        }
      });
  };

  // The node does not start when the first listing fails: neither does this.
  await sync();
  log(
    `ioID approvals follow CreateIoID of ${opts.ioIdContract.toLowerCase()} at ${safeRpcUrl(opts.rpcUrl)} from block ${opts.fromBlock ?? 0} (${table.size} approved so far)`,
  );
  tick();

  return {
    isApproved(address, projectId) {
      return table.has(`${address.toLowerCase()}:${projectId}`);
    },
    approved: () => [...table.values()],
    scannedBlock: () => scanned,
    sync,
    async close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      rpc.abort();
      await running?.catch(() => {});
    },
  };
}
