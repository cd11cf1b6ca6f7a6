import type { RewardBalance } from '@power-meter/meter-files';
import { ChainPoller, nextBalanceDelayMs } from './poller.js';
import { JsonRpc, safeRpcUrl } from './rpc.js';
import { DECIMALS_SELECTOR, balanceOfCall, decodeDecimals, decodeUint256, formatUnits } from './erc20.js';

/** What state.json carries (`rewardBalance`, the data-directory contract) and the failures in a row. */
export type ChainBalance = RewardBalance & { failures: number };

export interface BalanceReaderOptions {
  rpcUrl: string;
  token: string;
  owner: string;
  intervalMs: number;
  /** Per request, ms. */
  timeoutMs?: number;
  /** Longest wait between attempts after failures, ms. */
  maxBackoffMs?: number;
  onUpdate: (b: ChainBalance) => void;
  log?: (line: string) => void;
  now?: () => number;
  random?: () => number;
}

export { nextBalanceDelayMs, safeRpcUrl };

/**
 * Reads the owner's reward-token balance from a chain over JSON-RPC (`eth_call` of `decimals()`
 * and `balanceOf(owner)` at the latest block), every `intervalMs`, with backoff after failures.
 * It runs beside measurement and delivery and shares nothing with them: a dead or slow RPC only
 * makes the balance older (its time is kept with it), never delays a window or a delivery.
 *
 * Two fixed calls over plain JSON-RPC (rpc.ts) do not need an Ethereum library (viem is some
 * 10,000 files that the Pi's install would copy). The schedule is the shared ChainPoller's.
 */
export class BalanceReader {
  private state: ChainBalance;
  private readonly rpc: JsonRpc;
  private readonly poller: ChainPoller;
  private decimals: number | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: BalanceReaderOptions) {
    this.now = opts.now ?? Date.now;
    this.rpc = new JsonRpc(opts.rpcUrl, opts.timeoutMs ?? 10_000);
    this.poller = new ChainPoller(this.rpc, opts, () => this.round());
    this.state = {
      token: opts.token.toLowerCase(),
      owner: opts.owner.toLowerCase(),
      raw: null,
      decimals: null,
      tokens: null,
      readAtMs: null,
      intervalMs: opts.intervalMs,
      error: null,
      failures: 0,
    };
  }

  current(): ChainBalance {
    return { ...this.state };
  }

  start(): void {
    this.poller.start();
  }

  stop(): void {
    this.poller.stop();
  }

  /** One read; public so a caller (a test, a command) can read once without the timer. */
  async readOnce(): Promise<ChainBalance> {
    try {
      // decimals() never changes for a token: read once per process.
      this.decimals ??= decodeDecimals(await this.call(this.opts.token, DECIMALS_SELECTOR));
      const raw = decodeUint256(await this.call(this.opts.token, balanceOfCall(this.opts.owner)), 'balanceOf(owner)');
      this.state = {
        ...this.state,
        raw: raw.toString(),
        decimals: this.decimals,
        tokens: formatUnits(raw, this.decimals),
        readAtMs: this.now(),
        error: null,
        failures: 0,
      };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (error !== this.state.error)
        this.opts.log?.(`reward balance not read from ${safeRpcUrl(this.opts.rpcUrl)}: ${error} (measurement and delivery go on)`);
      this.state = { ...this.state, error, failures: this.state.failures + 1 };
    }
    return this.current();
  }

  private async round(): Promise<number> {
    const before = this.state.error;
    await this.readOnce();
    if (this.poller.stopped) return this.state.failures;
    if (before !== null && this.state.error === null) this.opts.log?.(`reward balance read again: ${this.state.tokens}`);
    this.opts.onUpdate(this.current());
    return this.state.failures;
  }

  private call(to: string, data: string): Promise<unknown> {
    return this.rpc.ethCall(to, data);
  }
}
