import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { DbLink, HostReply, HostRequest, RunRequest, WorkerInit, WorkerMessage } from './protocol.js';

/** What a host call knows about the event it serves. */
export interface RunInfo {
  handler: string;
  eventType: string;
}

/** What the VM thread's host calls reach: one method per operation, possibly asynchronous. */
export type HostServiceHandler = (req: HostRequest, run: RunInfo) => HostReply | Promise<HostReply>;

export interface HandlerResult {
  /** The handler's return value, or -1 for a trap, a missing handler or a timeout. */
  code: number;
  error: string | null;
}

export interface LogLine {
  level: number;
  src: 'wasm' | 'host';
  message: string;
}

export interface AppletRunnerOptions {
  wasm: Uint8Array;
  services: HostServiceHandler;
  /** The node answers `wait timeout` after 5 s (its Task.Wait). */
  timeoutMs?: number;
  /** VM threads kept warm (default 4). More are started while all are busy, up to `maxThreads`. */
  threads?: number;
  /** Events running at the same time at most (default 32); later ones wait, and may time out waiting. */
  maxThreads?: number;
  onLog?: (line: LogLine, handler: string) => void;
  /** A direct line to the database thread for each VM thread (SQL then skips the main thread). */
  linkDb?: () => DbLink;
}

export const WAIT_TIMEOUT_MS = 5_000;

// Both src/vm/runner.ts (tests) and dist/vm/runner.js (the built tool) are two levels below the
// package root; the worker always runs from dist, because Node 20 cannot run TypeScript.
const WORKER_FILE = fileURLToPath(new URL('../../dist/vm/worker.js', import.meta.url));

interface Job {
  runId: number;
  handler: string;
  eventType: string;
  data: Uint8Array;
  state: 'queued' | 'running' | 'done';
  slot?: Slot;
  timer: NodeJS.Timeout;
  resolve: (r: HandlerResult) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  stopped: boolean;
  /** Int32[0] = the runId the database may serve for this thread (0: none). */
  dbRun: Int32Array | null;
}

/**
 * Runs an applet's handlers in VM threads and answers the node's way: the handler's return code,
 * -1 with the trap's text, or -1 `wait timeout` when no answer came within the limit (counted
 * from when the event arrived, as the node's Task.Wait).
 *
 * Unlike the node (see the README): an event answered `wait timeout` never runs afterwards (a
 * queued one is dropped, a running one has its thread terminated before any further host call
 * is served), and events run side by side on their own threads, so a looping or allocating
 * handler holds only its own thread, for at most the time-out.
 */
export class AppletRunner {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextRunId = 1;
  private readonly timeoutMs: number;
  private readonly warm: number;
  private readonly max: number;
  private closed = false;
  /** Set once the applet compiled: a thread lost before that is not replaced. */
  private started = false;

  constructor(private readonly opts: AppletRunnerOptions) {
    this.timeoutMs = opts.timeoutMs ?? WAIT_TIMEOUT_MS;
    this.warm = Math.max(1, opts.threads ?? 4);
    this.max = Math.max(this.warm, opts.maxThreads ?? 32);
    if (!existsSync(WORKER_FILE)) throw new Error(`${WORKER_FILE} is missing: build the package first (npm run build)`);
  }

  /**
   * Starts the warm VM threads and waits until the first has compiled the applet, so the first
   * event's time is not spent compiling (the node compiles an applet when it is deployed) and a
   * file that is not WebAssembly is refused at start.
   */
  async start(): Promise<void> {
    const first = this.spawn();
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: WorkerMessage): void => {
        if (msg.type !== 'ready') return;
        first.worker.off('message', onMessage);
        first.worker.off('error', onError);
        this.started = true;
        resolve();
      };
      const onError = (err: Error): void => {
        first.worker.off('message', onMessage);
        this.drop(first);
        reject(new Error(`the applet cannot be loaded: ${err.message}`));
      };
      first.worker.on('message', onMessage);
      first.worker.once('error', onError);
    });
    while (this.slots.length < this.warm) this.spawn();
  }

  /** Runs `handler(rid)` with `data` as the event's resource. Never rejects. `timeoutMs` overrides the limit for this event. */
  run(handler: string, data: Uint8Array, eventType = '', timeoutMs = this.timeoutMs): Promise<HandlerResult> {
    return new Promise((resolve) => {
      const job: Job = {
        runId: this.nextRunId++,
        handler,
        eventType,
        data,
        state: 'queued',
        resolve,
        timer: setTimeout(() => this.expire(job), timeoutMs),
      };
      if (this.closed) return this.finish(job, { code: -1, error: 'instance not running' });
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Events waiting for a thread, and events running (for tests and the CLI's status). */
  get load(): { queued: number; running: number; threads: number } {
    return { queued: this.queue.length, running: this.slots.filter((s) => s.job).length, threads: this.slots.length };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) this.finish(job, { code: -1, error: 'instance not running' });
    for (const s of [...this.slots]) if (s.job) this.finish(s.job, { code: -1, error: 'instance not running' });
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  private finish(job: Job, r: HandlerResult): void {
    if (job.state === 'done') return;
    job.state = 'done';
    clearTimeout(job.timer);
    job.resolve(r);
  }

  /** The deadline: a queued event is dropped, a running one stopped with its thread. */
  private expire(job: Job): void {
    if (job.state === 'queued') {
      this.queue.splice(this.queue.indexOf(job), 1);
    } else if (job.state === 'running' && job.slot) {
      const slot = job.slot;
      slot.job = null; // host calls still in flight from this thread are refused from now on
      if (slot.dbRun) Atomics.store(slot.dbRun, 0, 0); // and so are its SQL calls
      this.drop(slot);
      void slot.worker.terminate();
    }
    this.finish(job, { code: -1, error: 'wait timeout' });
    this.dispatch();
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => !s.job && !s.stopped);
      if (!slot && this.slots.length < this.max) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      job.state = 'running';
      job.slot = slot;
      slot.job = job;
      if (slot.dbRun) Atomics.store(slot.dbRun, 0, job.runId);
      const req: RunRequest = { type: 'run', runId: job.runId, handler: job.handler, data: job.data };
      slot.worker.postMessage(req);
    }
    // Threads started for a burst go once they are idle again; the warm ones stay.
    for (const s of this.slots.filter((x) => !x.job))
      if (this.slots.length > this.warm) {
        this.drop(s);
        void s.worker.terminate();
      }
  }

  private drop(slot: Slot): void {
    slot.stopped = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (this.started && !this.closed && this.slots.length < this.warm) this.spawn();
  }

  private spawn(): Slot {
    const channel = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    const flag = new Int32Array(signal);
    const db = this.opts.linkDb?.();
    const init: WorkerInit = { wasm: this.opts.wasm, port: channel.port2, signal, db };
    const worker = new Worker(WORKER_FILE, { workerData: init, transferList: db ? [channel.port2, db.port] : [channel.port2] });
    const slot: Slot = { worker, job: null, stopped: false, dbRun: db ? new Int32Array(db.run) : null };
    this.slots.push(slot);
    channel.port1.on('message', (req: HostRequest) => {
      const job = slot.job;
      void (async () => {
        let reply: HostReply;
        if (job?.state !== 'running') reply = { code: -1 };
        else
          try {
            reply = await this.opts.services(req, { handler: job.handler, eventType: job.eventType });
          } catch (err) {
            reply = { code: -1 };
            this.opts.onLog?.({ level: 2, src: 'host', message: `${req.op}: ${(err as Error).message}` }, job.handler);
          }
        if (slot.stopped && slot.job !== job) return; // terminated meanwhile: nobody waits
        // Reply first, then wake the VM thread, which takes the reply synchronously.
        channel.port1.postMessage(reply);
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
      })();
    });
    worker.on('message', (msg: WorkerMessage) => {
      const job = slot.job;
      if (msg.type === 'ready' || !job || msg.runId !== job.runId) return;
      if (msg.type === 'log') this.opts.onLog?.({ level: msg.level, src: msg.src, message: msg.message }, job.handler);
      else {
        slot.job = null;
        if (slot.dbRun) Atomics.store(slot.dbRun, 0, 0);
        this.finish(job, { code: msg.code, error: msg.error });
        this.dispatch();
      }
    });
    const lost = (why: string): void => {
      const job = slot.job;
      slot.job = null;
      if (!slot.stopped) this.drop(slot);
      if (job) this.finish(job, { code: -1, error: why });
      this.dispatch();
    };
    worker.on('error', (err) => lost(err.message));
    worker.once('exit', () => {
      channel.port1.close();
      if (!slot.stopped) lost('the VM thread stopped');
    });
    worker.unref();
    return slot;
  }
}
