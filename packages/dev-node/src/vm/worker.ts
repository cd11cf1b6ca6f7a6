/**
 * The VM thread. Host functions are synchronous for the applet, while the services behind them
 * (a chain over JSON-RPC, above all) are asynchronous: the worker posts each call to the main
 * thread and sleeps on a shared flag (Atomics.wait) until the answer is there, then takes it
 * with receiveMessageOnPort. The main thread stays free, so it can also stop this thread when a
 * handler runs past the node's 5 s limit.
 *
 * Like the node, every event gets a fresh instance of the compiled module (the node instantiates
 * before and drops the instance after each handler call): no memory survives between events.
 */
import { randomInt } from 'node:crypto';
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { createEnvImports, createStatImports, type HostReply, type RunContext, type SyncHostCalls } from '../abi/imports.js';
import { VmMemory } from '../abi/memory.js';
import type { DbLinkReply, HostOp, RunRequest, WorkerInit, WorkerMessage } from './protocol.js';

const init = workerData as WorkerInit;
const port: MessagePort = init.port;
const flag = new Int32Array(init.signal);
const module = new WebAssembly.Module(init.wasm);

function callHost(op: HostOp, ...args: unknown[]): HostReply {
  Atomics.store(flag, 0, 0);
  port.postMessage({ op, args });
  Atomics.wait(flag, 0, 0);
  const reply = receiveMessageOnPort(port);
  if (!reply) return { code: -1 };
  return reply.message as HostReply;
}

let current: { runId: number; ctx: RunContext } | null = null;
const dbFlag = init.db ? new Int32Array(init.db.signal) : null;

/**
 * SQL goes straight to the database thread, which wakes this thread itself: two thread hops
 * fewer than through the main thread. Its errors and notes are logged as the host's lines.
 */
function callDb(mode: 'query' | 'exec', query: Uint8Array): HostReply {
  if (!init.db || !dbFlag || !current) return callHost(mode === 'query' ? 'sqlQuery' : 'sqlExec', query);
  Atomics.store(dbFlag, 0, 0);
  init.db.port.postMessage({ runId: current.runId, query, mode });
  Atomics.wait(dbFlag, 0, 0);
  const reply = receiveMessageOnPort(init.db.port)?.message as DbLinkReply | undefined;
  if (!reply) return { code: -1 };
  for (const note of reply.notes ?? []) current.ctx.log(3, 'host', note);
  if (reply.error) current.ctx.log(2, 'host', reply.error);
  return { code: reply.code, data: reply.data };
}

const calls: SyncHostCalls = {
  kvGet: (key) => callHost('kvGet', key),
  kvSet: (key, value) => callHost('kvSet', key, value),
  sqlQuery: (query) => callDb('query', query),
  sqlExec: (query) => callDb('exec', query),
  getEnv: (key) => callHost('getEnv', key),
  sendTx: (chainId, tx) => callHost('sendTx', chainId, tx),
  sendTxWithOperator: (chainId, tx) => callHost('sendTxWithOperator', chainId, tx),
  apiCall: (request) => callHost('apiCall', request),
  submitMetrics: (data) => callHost('submitMetrics', data),
  callContract: (chainId, tx) => callHost('callContract', chainId, tx),
  sendMqtt: (topic, message) => callHost('sendMqtt', topic, message),
};

function post(msg: WorkerMessage): void {
  parentPort?.postMessage(msg);
}

function run(req: RunRequest): { code: number; error: string | null } {
  // The node's resource ids are random 31-bit numbers, so applets cannot rely on a fixed one.
  const rid = randomInt(1, 2 ** 31 - 1);
  const ctx: RunContext = {
    resources: new Map([[rid, req.data]]),
    log: (level, src, message) => post({ type: 'log', runId: req.runId, level, src, message }),
  };
  current = { runId: req.runId, ctx };
  let instance: WebAssembly.Instance | undefined;
  const mem = new VmMemory(
    () => instance?.exports.memory as WebAssembly.Memory,
    () => instance?.exports.alloc as ((size: number) => number) | undefined,
  );
  try {
    instance = new WebAssembly.Instance(module, { env: createEnvImports(mem, calls, ctx), stat: createStatImports(mem, calls, ctx) });
  } catch (err) {
    return { code: -1, error: (err as Error).message };
  }
  const handler = instance.exports[req.handler];
  if (typeof handler !== 'function') return { code: -1, error: `runtime: ${req.handler} fn is not imported` };
  try {
    const code = Number((handler as (rid: number) => number)(rid)) | 0;
    return { code, error: null };
  } catch (err) {
    // A trap. AssemblyScript traps right after calling env.abort, so its message says why.
    const trap = `wasm trap: ${(err as Error).message}`;
    return { code: -1, error: ctx.aborted ? `${ctx.aborted} (${trap})` : trap };
  }
}

// Compiled before the first event, as the node compiles an applet when it is deployed.
post({ type: 'ready', runId: 0 });

parentPort?.on('message', (req: RunRequest) => {
  const result = run(req);
  post({ type: 'done', runId: req.runId, ...result });
});
