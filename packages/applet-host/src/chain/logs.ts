import type { ContractLogSpec } from '../project/config.js';
import { rpc } from './rpc.js';

/** A log as eth_getLogs returns it. */
export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  transactionHash: string;
  transactionIndex: string;
  blockHash: string;
  logIndex: string;
  removed?: boolean;
}

/**
 * The event payload the node's contract monitor delivers for a log: go-ethereum's
 * `types.Log.MarshalJSON` (fields in this order, hex strings lower-case, quantities as 0x…).
 */
export function goLogJson(log: RpcLog): string {
  return JSON.stringify({
    address: log.address.toLowerCase(),
    topics: log.topics.map((t) => t.toLowerCase()),
    data: log.data,
    blockNumber: log.blockNumber,
    transactionHash: log.transactionHash,
    transactionIndex: log.transactionIndex,
    blockHash: log.blockHash,
    logIndex: log.logIndex,
    removed: log.removed ?? false,
  });
}

export interface WatcherOptions {
  rpcUrlFor: (chainId: number) => string;
  deliver: (eventType: string, payload: string) => Promise<void>;
  /** The node lists at most 1000 blocks per round. */
  maxBlocksPerPoll?: number;
  log?: (message: string) => void;
}

/**
 * The node's contract-log monitor: for each subscription, scan the blocks not scanned yet with
 * eth_getLogs and deliver every matching log, in chain order, as an event of the
 * subscription's eventType. (The node re-scans the last block of each range; this scans each
 * block once.) `poll()` runs one round now; `start()` repeats it.
 */
export class ContractLogWatcher {
  private readonly next: number[];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly subs: ContractLogSpec[],
    private readonly opts: WatcherOptions,
  ) {
    this.next = subs.map((s) => s.blockStart ?? 0);
  }

  poll(): Promise<void> {
    // Rounds never overlap: a log is never delivered twice.
    this.running = this.running.then(() => this.round()).catch((err: Error) => this.opts.log?.(`contract logs: ${err.message}`));
    return this.running;
  }

  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async round(): Promise<void> {
    for (let i = 0; i < this.subs.length; i++) {
      const sub = this.subs[i]!;
      const url = this.opts.rpcUrlFor(sub.chainId);
      const head = Number(BigInt(await rpc<string>(url, 'eth_blockNumber')));
      const from = this.next[i]!;
      if (from > head) continue;
      const to = Math.min(head, from + (this.opts.maxBlocksPerPoll ?? 1000) - 1);
      const filter = {
        address: sub.contractAddress,
        fromBlock: `0x${from.toString(16)}`,
        toBlock: `0x${to.toString(16)}`,
        ...(sub.topic0 ? { topics: [sub.topic0] } : {}),
      };
      const logs = await rpc<RpcLog[]>(url, 'eth_getLogs', [filter]);
      for (const log of logs) await this.opts.deliver(sub.eventType, goLogJson(log));
      this.next[i] = to + 1;
    }
  }
}
