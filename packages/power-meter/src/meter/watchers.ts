import type { IoIdStatus, MeterState, RewardBalance } from '@power-meter/meter-files';
import type { Log } from '@power-meter/service';
import { TaskWatcher, type Publisher } from '@power-meter/w3bstream';
import { BalanceReader, safeRpcUrl, type ChainBalance } from '../chain/balance.js';
import { IoIdWatcher, ioIdVerdict } from '../chain/ioid.js';
import type { MeterKey } from '../key/meter-key.js';
import type { BackendSettings } from '../settings.js';
import { v2Dialect } from '../transport.js';

export interface WatchersOptions {
  settings: BackendSettings;
  log: (line: string) => void;
  /** What the task watcher logs through (see MeterOptions.logger). */
  libraryLog: Log;
  identity: MeterKey;
  publisher: Publisher;
  /** Something state.json shows changed. */
  changed: () => void;
}

/**
 * What the meter follows besides measuring, for state.json: the owner's reward-token balance, the
 * device's ioID registration, the state of the newest delivered W3bstream 2 task, and the applet's
 * reason when the latest delivered reading was refused. Each is off unless configured. Apart from
 * the meter because none of it touches measuring or the outbox.
 */
export class Watchers {
  /** Reads the owner's reward-token balance; null when not configured. */
  private readonly balance: BalanceReader | null;
  private rewardBalance: ChainBalance | null = null;
  /** Reads the device's ioID registration; null when not configured. */
  private readonly ioid: IoIdWatcher | null;
  private ioidStatus: IoIdStatus | null = null;
  /** The applet's reason when the latest delivered reading was refused (null once one is accepted). */
  private lastRejection: string | null = null;
  /** W3bstream 2 /v1/task: follows the state of the newest delivered task; null when off. */
  private readonly tasks: TaskWatcher | null;

  constructor(private readonly opts: WatchersOptions) {
    const s = opts.settings;
    this.tasks =
      s.transport === 'w3bstream-v2' && v2Dialect(s) === 'task' && s.publishUrl !== '' && s.taskPollIntervalS > 0
        ? new TaskWatcher({
            taskUrl: s.publishUrl,
            intervalMs: s.taskPollIntervalS * 1000,
            log: opts.libraryLog,
            onUpdate: () => this.opts.changed(),
          })
        : null;
    opts.publisher.on('delivered', (e) => {
      if (e.taskId) this.tasks?.track(e.taskId);
      const next = e.rejected ? (e.reason ?? 'refused') : null;
      if (next === this.lastRejection) return;
      this.lastRejection = next;
      this.opts.changed();
    });
    this.balance =
      s.rpcUrl === '' || s.rewardToken === '' || s.walletAddress === ''
        ? null
        : new BalanceReader({
            rpcUrl: s.rpcUrl,
            token: s.rewardToken,
            owner: s.walletAddress,
            intervalMs: s.balanceIntervalS * 1000,
            log: opts.log,
            onUpdate: (b) => {
              this.rewardBalance = b;
              this.opts.changed();
            },
          });
    this.rewardBalance = this.balance?.current() ?? null;
    this.ioid =
      s.rpcUrl === '' || s.ioidRegistry === ''
        ? null
        : new IoIdWatcher({
            rpcUrl: s.rpcUrl,
            registry: s.ioidRegistry,
            device: opts.identity.deviceId,
            did: opts.identity.did,
            intervalMs: s.ioidIntervalS * 1000,
            log: opts.log,
            onUpdate: ({ failures: _inProcessOnly, ...st }) => {
              const before = this.ioidStatus;
              this.ioidStatus = st;
              // First read, or a change: one line in the log saying where the device stands.
              const project = s.transport === 'w3bstream-v2' ? s.projectId : '';
              const changed = before?.readAtMs === null || before?.registered !== st.registered || before?.projectId !== st.projectId;
              if (st.error === null && changed) {
                const verdict = ioIdVerdict(st, project);
                opts.log(`ioID ${verdict.text}`);
                // Just registered for this project: readings refused with 403 need not wait out the slow retry.
                if (verdict.ok && before?.readAtMs !== null && this.opts.publisher.state().state === 'failing')
                  this.opts.publisher.retryNow();
              }
              this.opts.changed();
            },
          });
    if (this.ioid !== null) {
      const { failures: _inProcessOnly, ...st } = this.ioid.current();
      this.ioidStatus = st;
    }
  }

  /** Starts the configured watchers, one line each saying what is read from where. */
  start(): void {
    const { settings: s, log } = this.opts;
    if (this.tasks !== null) {
      log(`task state of the newest delivered task read every ${s.taskPollIntervalS} s from ${s.publishUrl.replace(/\?.*$/, '')}/<taskID>`);
      this.tasks.start();
    }
    if (this.balance !== null) {
      log(`reward balance of ${s.walletAddress} in token ${s.rewardToken} read from ${safeRpcUrl(s.rpcUrl)} every ${s.balanceIntervalS} s`);
      this.balance.start();
    }
    if (this.ioid !== null) {
      log(
        `ioID registration of ${this.opts.identity.did} read from registry ${s.ioidRegistry} at ${safeRpcUrl(s.rpcUrl)} every ${s.ioidIntervalS} s`,
      );
      this.ioid.start();
    }
  }

  stop(): void {
    this.balance?.stop();
    this.ioid?.stop();
    this.tasks?.stop();
  }

  /** What state.json shows of them. */
  state(): {
    lastRejection: string | null;
    task: MeterState['publishing']['task'] | undefined;
    rewardBalance: RewardBalance | undefined;
    ioid: IoIdStatus | undefined;
  } {
    return {
      lastRejection: this.lastRejection,
      task: this.tasks === null ? undefined : this.taskState(),
      rewardBalance: this.rewardBalance === null ? undefined : stateBalance(this.rewardBalance),
      ioid: this.ioidStatus ?? undefined,
    };
  }

  /** The followed task as state.json carries it (null before its state was first read). */
  private taskState(): NonNullable<MeterState['publishing']['task']> | null {
    const t = this.tasks?.current() ?? null;
    if (t === null) return null;
    return {
      id: t.taskId,
      state: t.state,
      stateAtMs: t.stateAtMs,
      txHash: t.txHash,
      error: t.error,
      checkedAtMs: t.checkedAtMs,
      failedCount: this.tasks!.failedCount(),
    };
  }
}

/** The reader's state as state.json carries it (the failure count stays in the process). */
function stateBalance(b: ChainBalance): RewardBalance {
  const { failures: _inProcessOnly, ...balance } = b;
  return balance;
}
