/**
 * The node's chain monitors and cron jobs (pkg/modules/blockchain, pkg/modules/cronjob) for one
 * project, run as the node runs them:
 *
 * - every monitor round is 3 s apart (`listInterval`); `poll()` runs one now;
 * - contract logs: the monitors of a chain are grouped; those furthest behind are listed first
 *   (up to the next one's block), at most 4000 blocks past the current block and never past the
 *   chain head or a monitor's blockEnd, with one eth_getLogs for all their addresses and topics;
 *   each log goes to every monitor whose address and topics match. The range is done only when
 *   every handler ran without error: if one fails (a trap, a time-out), the whole range is listed
 *   again next round, the logs already handled included;
 * - chain transactions: delivered once the transaction is mined, then the monitor is finished;
 *   retried each round while the handler fails;
 * - chain height: delivered once the head reaches the height, then finished; retried likewise;
 * - cron: five-field expressions (and @hourly, @every 10s, …) in UTC, each run one event; a
 *   handler's failure is only logged.
 */
import { Cron } from 'croner';
import { rpc } from '../chain/rpc.js';
import {
  type ChainHeightSpec,
  type ChainTxSpec,
  type ContractLogSpec,
  type CronJobSpec,
  EVENT_DEFAULT,
  EVERY,
  MONITOR_DEFAULT,
} from '../project/config.js';
import { chainHeightJson, cronPayload, goLogJson, goTransactionJson, type RpcLog, type RpcTransaction } from './payloads.js';

/** Runs every strategy of an event type; the results' errors decide whether a monitor goes on. */
export type Deliver = (source: MonitorSource, eventType: string, payload: string) => Promise<{ error?: string }[] | null>;
export type MonitorSource = 'contract-log' | 'chain-tx' | 'chain-height' | 'cron';

export interface MonitorOptions {
  endpointFor: (chainID?: number, chainName?: string) => string | undefined;
  deliver: Deliver;
  log?: (message: string) => void;
  /** The node lists at most this many blocks past the current one per round (4000). */
  blockInterval?: number;
}

interface LogState {
  spec: ContractLogSpec;
  current: number;
}

const HASH = (t?: string): string | null => (t ? t.toLowerCase() : null);

export class ChainMonitors {
  private readonly logs: LogState[];
  private readonly txs: { spec: ChainTxSpec; finished: boolean }[];
  private readonly heights: { spec: ChainHeightSpec; finished: boolean }[];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  constructor(
    contractLogs: ContractLogSpec[],
    chainTxs: ChainTxSpec[],
    chainHeights: ChainHeightSpec[],
    private readonly opts: MonitorOptions,
  ) {
    this.logs = contractLogs.map((spec) => ({ spec, current: spec.blockStart ?? 0 }));
    this.txs = chainTxs.map((spec) => ({ spec, finished: false }));
    this.heights = chainHeights.map((spec) => ({ spec, finished: false }));
  }

  /** One round of every monitor, now; rounds never overlap. */
  poll(): Promise<void> {
    this.running = this.running.then(() => this.round());
    return this.running;
  }

  start(intervalMs = 3_000): void {
    this.stop();
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Where each contract-log monitor will list from next (tests, status). */
  get contractLogBlocks(): number[] {
    return this.logs.map((l) => l.current);
  }

  private async round(): Promise<void> {
    const guard = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        this.opts.log?.(`${what}: ${(err as Error).message}`);
      }
    };
    await guard('contract logs', () => this.contractLogRound());
    for (const t of this.txs) if (!t.finished && !t.spec.paused) await guard(`chain tx ${t.spec.txAddress}`, () => this.chainTx(t));
    for (const h of this.heights)
      if (!h.finished && !h.spec.paused) await guard(`chain height ${h.spec.height}`, () => this.chainHeight(h));
  }

  private async contractLogRound(): Promise<void> {
    const active = this.logs.filter((l) => !l.spec.paused && (!l.spec.blockEnd || l.current < l.spec.blockEnd));
    const groups = new Map<number, LogState[]>();
    for (const l of active) groups.set(l.spec.chainID, [...(groups.get(l.spec.chainID) ?? []), l]);
    for (const [chainID, all] of groups) {
      try {
        await this.contractLogGroup(chainID, all);
      } catch (err) {
        this.opts.log?.(`contract logs on chain ${chainID}: ${(err as Error).message}`);
      }
    }
  }

  private async contractLogGroup(chainID: number, all: LogState[]): Promise<void> {
    // pruneListChainGroups: only the monitors furthest behind, up to where the next one starts.
    let cs = [...all].sort((a, b) => a.current - b.current);
    let toBlock = 0;
    const i = cs.findIndex((c, k) => k > 0 && c.current !== cs[k - 1]!.current);
    if (i > 0) {
      toBlock = cs[i]!.current - 1;
      cs = cs.slice(0, i);
    }
    const url = this.opts.endpointFor(chainID);
    if (!url) throw new Error('blockchain not exist');
    const head = Number(BigInt(await rpc<string>(url, 'eth_blockNumber')));
    let to = Math.min(cs[0]!.current + (this.opts.blockInterval ?? 4000), head);
    for (const c of cs) if (c.spec.blockEnd && to > c.spec.blockEnd) to = c.spec.blockEnd;
    if (toBlock === 0 || toBlock > to) toBlock = to;
    const from = cs[0]!.current;
    if (from <= toBlock) {
      const topics: string[][] = [[], [], [], []];
      for (const c of cs)
        (['topic0', 'topic1', 'topic2', 'topic3'] as const).forEach((t, k) => {
          const h = HASH(c.spec[t]);
          if (h) topics[k]!.push(h);
        });
      while (topics.length > 0 && topics[topics.length - 1]!.length === 0) topics.pop();
      const logs = await rpc<RpcLog[]>(url, 'eth_getLogs', [
        {
          fromBlock: `0x${from.toString(16)}`,
          toBlock: `0x${toBlock.toString(16)}`,
          address: cs.map((c) => c.spec.contractAddress.toLowerCase()),
          ...(topics.length > 0 ? { topics: topics.map((t) => (t.length > 0 ? t : null)) } : {}),
        },
      ]);
      for (const log of logs) {
        const matched = cs.filter(
          (c) =>
            c.spec.contractAddress.toLowerCase() === log.address.toLowerCase() &&
            (['topic0', 'topic1', 'topic2', 'topic3'] as const).every(
              (t, k) => !HASH(c.spec[t]) || log.topics[k]?.toLowerCase() === HASH(c.spec[t]),
            ),
        );
        if (matched.length === 0) throw new Error('cannot find expected contract log');
        const payload = goLogJson(log);
        for (const c of matched) await this.deliverOrThrow('contract-log', c.spec.eventType || MONITOR_DEFAULT, payload);
      }
    }
    for (const c of cs) c.current = toBlock + 1;
  }

  private async deliverOrThrow(source: MonitorSource, eventType: string, payload: string): Promise<void> {
    const results = await this.opts.deliver(source, eventType, payload);
    const failed = (results ?? []).find((r) => r.error);
    if (failed) throw new Error(`send event failed: ${failed.error}`);
  }

  private async chainTx(t: { spec: ChainTxSpec; finished: boolean }): Promise<void> {
    const url = this.opts.endpointFor(t.spec.chainID);
    if (!url) throw new Error('blockchain not exist');
    const tx = await rpc<RpcTransaction | null>(url, 'eth_getTransactionByHash', [t.spec.txAddress]);
    if (!tx?.blockNumber) return; // not found, or pending
    await this.deliverOrThrow('chain-tx', t.spec.eventType || MONITOR_DEFAULT, goTransactionJson(tx));
    t.finished = true;
  }

  private async chainHeight(h: { spec: ChainHeightSpec; finished: boolean }): Promise<void> {
    const url = this.opts.endpointFor(h.spec.chainID, h.spec.chainName);
    if (!url) throw new Error('blockchain not exist');
    const head = BigInt(await rpc<string>(url, 'eth_blockNumber'));
    if (head < BigInt(h.spec.height)) return;
    await this.deliverOrThrow('chain-height', h.spec.eventType || MONITOR_DEFAULT, chainHeightJson(head));
    h.finished = true;
  }
}

const DESCRIPTOR_PATTERNS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Go's time.ParseDuration for @every (ns … h, decimals), rounded down to whole seconds, at least 1 s (robfig/cron Every). */
export function everyMs(expr: string): number | null {
  const m = EVERY.exec(expr.trim());
  if (!m) return null;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  for (const part of m[1]!.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(part[1]) * unit[part[2]!]!;
  return Math.max(1000, Math.floor(ms / 1000) * 1000);
}

let nextCronId = BigInt(Date.now()) * 1000n;
const nowNs = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

/** The project's cron jobs: each run delivers the node's payload as an event of the job's type. */
export class CronJobs {
  private readonly crons: Cron[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  readonly ids: string[];

  constructor(
    private readonly jobs: CronJobSpec[],
    private readonly deliver: Deliver,
    private readonly log?: (message: string) => void,
  ) {
    this.ids = jobs.map(() => String(nextCronId++));
  }

  /** Runs job `index` now (tests, and the schedule below). */
  async fire(index: number): Promise<void> {
    const job = this.jobs[index]!;
    const results = await this.deliver('cron', job.eventType || EVENT_DEFAULT, cronPayload(this.ids[index]!, nowNs()));
    for (const r of results ?? []) if (r.error) this.log?.(`cron job ${this.ids[index]}: send event failed: ${r.error}`);
  }

  start(): void {
    this.jobs.forEach((job, i) => {
      const every = everyMs(job.cronExpressions);
      if (every !== null) {
        // robfig's ConstantDelaySchedule: whole seconds from now.
        const tick = (): void => {
          const t = setTimeout(
            () => {
              void this.fire(i);
              tick();
            },
            every - (Date.now() % 1000),
          );
          t.unref();
          this.timers.push(t);
        };
        tick();
        return;
      }
      const pattern = DESCRIPTOR_PATTERNS[job.cronExpressions.trim()] ?? job.cronExpressions.trim();
      this.crons.push(new Cron(pattern, { mode: '5-part', timezone: 'UTC', unref: true }, () => void this.fire(i)));
    });
  }

  stop(): void {
    for (const c of this.crons.splice(0)) c.stop();
    for (const t of this.timers.splice(0)) clearTimeout(t);
  }
}
