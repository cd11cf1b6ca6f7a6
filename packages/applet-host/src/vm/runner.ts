import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { HostReply, HostRequest, RunRequest, WorkerInit, WorkerMessage } from './protocol.js';

/** What the VM thread's host calls reach: one method per operation, possibly asynchronous. */
export type HostServiceHandler = (req: HostRequest) => HostReply | Promise<HostReply>;

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
  onLog?: (line: LogLine, handler: string) => void;
}

export const WAIT_TIMEOUT_MS = 5_000;

// Both src/vm/runner.ts (tests) and dist/vm/runner.js (the built tool) are two levels below the
// package root; the worker always runs from dist, because Node 20 cannot run TypeScript.
const WORKER_FILE = fileURLToPath(new URL('../../dist/vm/worker.js', import.meta.url));

/**
 * Runs an applet's handlers one at a time (the node holds a mutex around its runtime) in a
 * worker thread, and answers the node's way: the handler's return code, -1 with the trap's text,
 * or -1 `wait timeout` when no answer came within the limit. A handler still running at the
 * limit is stopped (its thread is terminated and a new one started for the next event); the
 * node cannot stop it and lets it finish after answering, which a development host must not
 * copy (an endless loop would hold the VM for ever).
 */
export class AppletRunner {
  private worker: Worker | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private nextRunId = 1;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(private readonly opts: AppletRunnerOptions) {
    this.timeoutMs = opts.timeoutMs ?? WAIT_TIMEOUT_MS;
    if (!existsSync(WORKER_FILE)) throw new Error(`${WORKER_FILE} is missing: build the package first (npm run build)`);
  }

  /**
   * Starts the VM thread and waits until it has compiled the applet, so the first event's 5 s
   * are not spent compiling (the node compiles an applet when it is deployed).
   */
  async start(): Promise<void> {
    this.worker ??= this.spawn();
    const worker = this.worker;
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: WorkerMessage): void => {
        if (msg.type !== 'ready') return;
        worker.off('message', onMessage);
        worker.off('error', onError);
        resolve();
      };
      const onError = (err: Error): void => {
        worker.off('message', onMessage);
        this.worker = null;
        reject(new Error(`the applet cannot be loaded: ${err.message}`));
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
    });
  }

  /** Runs `handler(rid)` with `data` as the event's resource. Never rejects. */
  run(handler: string, data: Uint8Array): Promise<HandlerResult> {
    return new Promise((resolve) => {
      let answered = false;
      const answer = (r: HandlerResult): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        resolve(r);
      };
      // The node's clock starts when the task is queued, so waiting behind another event counts.
      const timer = setTimeout(() => answer({ code: -1, error: 'wait timeout' }), this.timeoutMs);
      this.queue = this.queue.then(() => this.execute(handler, data)).then(answer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    await this.worker?.terminate();
    this.worker = null;
  }

  private spawn(): Worker {
    const channel = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    const flag = new Int32Array(signal);
    const init: WorkerInit = { wasm: this.opts.wasm, port: channel.port2, signal };
    const worker = new Worker(WORKER_FILE, { workerData: init, transferList: [channel.port2] });
    channel.port1.on('message', (req: HostRequest) => {
      void (async () => {
        let reply: HostReply;
        try {
          reply = await this.opts.services(req);
        } catch (err) {
          reply = { code: -1 };
          this.opts.onLog?.({ level: 2, src: 'host', message: `${req.op}: ${(err as Error).message}` }, '');
        }
        // Reply first, then wake the VM thread, which takes the reply synchronously.
        channel.port1.postMessage(reply);
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
      })();
    });
    worker.once('exit', () => channel.port1.close());
    worker.unref();
    return worker;
  }

  private execute(handler: string, data: Uint8Array): Promise<HandlerResult> {
    if (this.closed) return Promise.resolve({ code: -1, error: 'instance not running' });
    this.worker ??= this.spawn();
    const worker = this.worker;
    const runId = this.nextRunId++;
    return new Promise((resolve) => {
      const finish = (r: HandlerResult): void => {
        clearTimeout(stop);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        resolve(r);
      };
      const onMessage = (msg: WorkerMessage): void => {
        if (msg.type === 'ready' || msg.runId !== runId) return;
        if (msg.type === 'log') this.opts.onLog?.({ level: msg.level, src: msg.src, message: msg.message }, handler);
        else finish({ code: msg.code, error: msg.error });
      };
      const onError = (err: Error): void => {
        this.worker = null;
        finish({ code: -1, error: err.message });
      };
      const onExit = (): void => {
        this.worker = null;
        finish({ code: -1, error: 'the VM thread stopped' });
      };
      const stop = setTimeout(() => {
        worker.off('exit', onExit);
        void worker.terminate();
        // A new VM thread at once, compiling while nothing waits for it.
        this.worker = this.closed ? null : this.spawn();
        finish({ code: -1, error: 'wait timeout' });
      }, this.timeoutMs);
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      const req: RunRequest = { type: 'run', runId, handler, data };
      worker.postMessage(req);
    });
  }
}
