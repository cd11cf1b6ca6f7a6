import type { JsonRpc } from './rpc.js';

/** The delay before attempt `failures + 1`: the interval when healthy; 5 s doubling, capped, with jitter after failures. */
export function nextBalanceDelayMs(failures: number, intervalMs: number, maxBackoffMs: number, random: () => number): number {
  if (failures === 0) return intervalMs;
  const base = Math.min(5000 * 2 ** Math.min(failures - 1, 20), Math.max(maxBackoffMs, 5000));
  return Math.round(base / 2 + (random() * base) / 2);
}

export interface ChainPollerOptions {
  intervalMs: number;
  /** Longest wait between attempts after failures, ms (default 10 minutes). */
  maxBackoffMs?: number;
  random?: () => number;
}

/**
 * The schedule the chain readers (reward balance, ioID status) share: one round at once, then
 * every `intervalMs`, with backoff after failures. Its timers are unref'd (a read never keeps the
 * process alive) and `stop()` aborts the request in flight, so a slow RPC cannot hold up a stop.
 * A round reads, reports, and returns the failures in a row that decide the next delay.
 */
export class ChainPoller {
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(
    private readonly rpc: JsonRpc,
    private readonly opts: ChainPollerOptions,
    private readonly round: () => Promise<number>,
  ) {}

  get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.rpc.abort();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#run(), ms);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const failures = await this.round();
    this.#schedule(nextBalanceDelayMs(failures, this.opts.intervalMs, this.opts.maxBackoffMs ?? 600_000, this.opts.random ?? Math.random));
  }
}
