import fetch from 'node-fetch';
import { TASK_STATES, type TaskStateName } from './apinode.js';
import { jsonObject, short } from './classify.js';
import type { Log } from './log.js';

/**
 * The state of the last delivered W3bstream 2 task, asked of the node at a modest rate:
 * `GET <node>/v1/task/<taskID>` (service/apinode/api/http.go `queryTask`) answers
 * `{"projectID","taskID","states":[{"state","time",…}]}`, the states in the order they happened
 * (packed, assigned, settled with `transaction_hash`, or failed with `error`; `error` when the
 * node's own lookup failed). One task is followed at a time, one request per interval at most:
 * the newest delivered task, followed until it is settled or failed (or for `maxFollowMs`), then
 * the newest delivered one after it. Following each new task would only ever see `packed` (a
 * reading is delivered every few seconds, a proof takes longer), and nothing is asked while the
 * followed task is final and nothing new was delivered.
 */
export interface TaskStatus {
  taskId: string;
  /** The latest state the node lists; `unknown`: it lists none (or answered something else). */
  state: TaskStateName | 'unknown';
  /** When the node says the task reached that state (ms), null when unknown. */
  stateAtMs: number | null;
  /** `settled`: the transaction that put the proof on chain. */
  txHash: string | null;
  /** `failed` / `error`: the node's text. */
  error: string | null;
  /** `assigned` and later: the prover's DID. */
  proverId: string | null;
  /** When the meter last asked (ms). */
  checkedAtMs: number;
}

/** The node's answer to `GET /v1/task/<id>`, read (pure). Null when it is not the node's JSON. */
export function parseTaskStatus(taskId: string, status: number, text: string, nowMs: number): TaskStatus | null {
  if (status !== 200) return null;
  const body = jsonObject<{ states: unknown }>(text);
  if (body === null || !Array.isArray(body.states)) return null;
  const states = (body.states as unknown[]).filter(
    (s): s is Record<string, unknown> =>
      typeof s === 'object' && s !== null && TASK_STATES.includes((s as { state?: unknown }).state as TaskStateName),
  );
  const last = states.at(-1);
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  if (last === undefined)
    return { taskId, state: 'unknown', stateAtMs: null, txHash: null, error: null, proverId: null, checkedAtMs: nowMs };
  const at = typeof last.time === 'string' ? Date.parse(last.time) : Number.NaN;
  const settled = states.find((s) => s.state === 'settled');
  const assigned = states.find((s) => s.state === 'assigned');
  return {
    taskId,
    state: last.state as TaskStateName,
    stateAtMs: Number.isFinite(at) ? at : null,
    txHash: str(settled?.transaction_hash),
    error: str(last.error) === null ? null : short(str(last.error)!, 200),
    proverId: str(assigned?.prover_id),
    checkedAtMs: nowMs,
  };
}

/** Settled and failed tasks change no more. */
export function isFinalTaskState(state: TaskStatus['state']): boolean {
  return state === 'settled' || state === 'failed';
}

export interface TaskWatcherOptions {
  /** The publish URL (`…/v1/task`): a task's state is at `<it>/<taskID>`. */
  taskUrl: string;
  /** At most one request per this many ms. */
  intervalMs: number;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  /** A task not settled or failed after this long is left for the newest delivered one (default 1 h). */
  maxFollowMs?: number;
  onUpdate?: (s: TaskStatus, failedCount: number) => void;
  log?: Log;
  now?: () => number;
}

export class TaskWatcher {
  /** The task followed now. */
  private taskId: string | null = null;
  /** The newest delivered task, followed next. */
  private newest: string | null = null;
  private followedSinceMs = 0;
  private status: TaskStatus | null = null;
  private failed = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: AbortController | null = null;
  private lastError: string | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: TaskWatcherOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** A task was delivered: followed next, once the one followed now is settled or failed (an empty ID is ignored). */
  track(taskId: string): void {
    if (taskId === '') return;
    this.newest = taskId.toLowerCase();
    if (this.taskId === null) this.follow();
  }

  private follow(): void {
    this.taskId = this.newest;
    this.newest = null;
    this.followedSinceMs = this.now();
  }

  current(): TaskStatus | null {
    return this.status;
  }

  /** Tasks seen failed since the meter started. */
  failedCount(): number {
    return this.failed;
  }

  start(): void {
    if (this.timer !== null || !(this.opts.intervalMs > 0)) return;
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.inFlight?.abort();
  }

  /** One check, when there is something to ask: the followed task until it is final, then the newest delivered one. */
  async check(): Promise<void> {
    if (this.inFlight !== null) return;
    const done = this.status !== null && this.status.taskId === this.taskId && isFinalTaskState(this.status.state);
    const tooLong = this.now() - this.followedSinceMs > (this.opts.maxFollowMs ?? 3_600_000);
    if ((done || tooLong) && this.newest !== null) this.follow();
    const id = this.taskId;
    if (id === null) return;
    if (this.status !== null && this.status.taskId === id && isFinalTaskState(this.status.state)) return;
    const abort = new AbortController();
    this.inFlight = abort;
    const timer = setTimeout(() => abort.abort(), this.opts.timeoutMs ?? 10_000);
    try {
      // node-fetch (Node's http), not the global fetch: undici needs WebAssembly, which the
      // service's --jitless does not have (the publisher uses node-fetch for the same reason).
      const res = await fetch(`${this.opts.taskUrl.replace(/\/+$/, '')}/${id}`, {
        signal: abort.signal,
        redirect: 'manual',
        size: 1 << 20,
      });
      const text = await res.text();
      const s = parseTaskStatus(id, res.status, text, this.now());
      if (s === null) return this.problem(`HTTP ${res.status}: not the node's task answer`);
      const before = this.status;
      if (s.state === 'failed' && !(before?.taskId === id && before.state === 'failed')) this.failed++;
      this.status = s;
      this.lastError = null;
      if (before?.taskId !== s.taskId || before.state !== s.state)
        this.opts.log?.info(
          `task ${s.taskId} ${s.state}${s.txHash ? ` tx=${s.txHash}` : ''}${s.error ? ` error="${s.error}"` : ''}${s.state === 'failed' ? ` failed_tasks=${this.failed}` : ''}`,
        );
      this.opts.onUpdate?.(s, this.failed);
    } catch (err) {
      if (!abort.signal.aborted || this.timer !== null) this.problem((err as Error).message);
    } finally {
      clearTimeout(timer);
      this.inFlight = null;
    }
  }

  private problem(text: string): void {
    if (text !== this.lastError)
      this.opts.log?.info(`task state not read: ${text}; asked again in ${Math.round(this.opts.intervalMs / 1000)} s`);
    this.lastError = text;
  }
}
