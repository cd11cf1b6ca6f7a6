import { ResultCode } from './codes.js';
import type { VmMemory } from './memory.js';

/**
 * The services behind the host functions, called synchronously (the applet is blocked in the
 * import while they run). Each answers the node's result code and, for the functions that copy
 * data into the VM, the bytes to copy.
 */
export interface HostReply {
  code: number;
  data?: Uint8Array;
}
export interface SyncHostCalls {
  kvGet(key: string): HostReply;
  kvSet(key: string, value: Uint8Array): HostReply;
  sqlQuery(query: Uint8Array): HostReply;
  sqlExec(query: Uint8Array): HostReply;
  getEnv(key: string): HostReply;
  sendTx(chainId: number, tx: Uint8Array): HostReply;
  /** ws_send_tx_with_operator: the same JSON plus `operatorName`. */
  sendTxWithOperator(chainId: number, tx: Uint8Array): HostReply;
  /** ws_api_call: the node's HttpRequest JSON in, its HttpResponse JSON out (always code 0 when copied). */
  apiCall(request: Uint8Array): HostReply;
  /** stat.ws_submit_metrics: a JSON object (not an array). */
  submitMetrics(data: Uint8Array): HostReply;
  callContract(chainId: number, tx: Uint8Array): HostReply;
  sendMqtt(topic: string, message: Uint8Array): HostReply;
}

export interface RunContext {
  /** Event payloads by resource id (the node's `res` map): ws_get_data reads, ws_set_data replaces. */
  resources: Map<number, Uint8Array>;
  /** Logs go to the host asynchronously: `src` is "wasm" for ws_log, "host" for the host's own lines. */
  log(level: number, src: 'wasm' | 'host', message: string): void;
  /** Set by `abort`, so the failure the handler then traps with can name the applet's reason. */
  aborted?: string;
}

const ERROR = 2;
const INFO = 4;

/** The `stat` module: the node links ws_submit_metrics there (instance_exports.go, LinkABI). */
export function createStatImports(mem: VmMemory, calls: SyncHostCalls, ctx: RunContext): Record<string, (...args: number[]) => number> {
  return {
    ws_submit_metrics: (ptr: number, size: number) => {
      try {
        return calls.submitMetrics(mem.read(ptr, size)).code;
      } catch (err) {
        ctx.log(ERROR, 'host', (err as Error).message);
        return ResultCode.Failed;
      }
    },
  };
}

/**
 * The `env` module of a W3bstream v1 applet: every function the node links (its
 * `instance_exports.go`), with the node's argument conventions and return codes. An exception
 * inside a host function is reported as the node does (a host log line, a failure code), never
 * thrown into the VM.
 */
export function createEnvImports(
  mem: VmMemory,
  calls: SyncHostCalls,
  ctx: RunContext,
): Record<string, (...args: number[]) => number | undefined> {
  const guard = (failCode: number, fn: () => number): number => {
    try {
      return fn();
    } catch (err) {
      ctx.log(ERROR, 'host', (err as Error).message);
      return failCode;
    }
  };
  const copyReply = (reply: HostReply, addrPtr: number, sizePtr: number, copyFailCode: number = ResultCode.TransDataToVMFailed): number => {
    if (reply.code !== ResultCode.OK) return reply.code;
    try {
      mem.copyIn(reply.data ?? new Uint8Array(0), addrPtr, sizePtr);
    } catch (err) {
      ctx.log(ERROR, 'host', (err as Error).message);
      return copyFailCode;
    }
    return ResultCode.OK;
  };
  return {
    abort(msgPtr: number, filePtr: number, line: number, col: number): undefined {
      // The node only logs here; AssemblyScript executes `unreachable` right after, which traps.
      try {
        const text = `abort: ${mem.readAsString(msgPtr)} at ${mem.readAsString(filePtr)}:${line}:${col}`;
        ctx.aborted = text;
        ctx.log(ERROR, 'host', text);
      } catch (err) {
        ctx.log(ERROR, 'host', `fail to decode arguments in env.abort: ${(err as Error).message}`);
      }
    },
    trace(msgPtr: number, n: number, ...values: number[]): undefined {
      try {
        const shown = values.slice(0, Math.max(0, n));
        ctx.log(INFO, 'host', `trace: ${mem.readAsString(msgPtr)}${shown.length ? ` ${shown.join(', ')}` : ''}`);
      } catch (err) {
        ctx.log(ERROR, 'host', (err as Error).message);
      }
    },
    seed: () => Math.random() * Date.now(),
    ws_log: (level: number, ptr: number, size: number) =>
      guard(ResultCode.Failed, () => {
        ctx.log(level, 'wasm', mem.readText(ptr, size));
        return ResultCode.OK;
      }),
    ws_get_data: (rid: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.TransDataToVMFailed, () => {
        const data = ctx.resources.get(rid >>> 0);
        if (!data) return ResultCode.ResourceNotFound;
        return copyReply({ code: ResultCode.OK, data }, addrPtr, sizePtr);
      }),
    ws_set_data: (rid: number, ptr: number, size: number) =>
      guard(ResultCode.TransDataToVMFailed, () => {
        ctx.resources.set(rid >>> 0, mem.read(ptr, size));
        return ResultCode.OK;
      }),
    ws_get_db: (kPtr: number, kSize: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.ResourceNotFound, () => copyReply(calls.kvGet(mem.readText(kPtr, kSize)), addrPtr, sizePtr)),
    ws_set_db: (kPtr: number, kSize: number, vPtr: number, vSize: number) =>
      guard(ResultCode.ResourceNotFound, () => calls.kvSet(mem.readText(kPtr, kSize), mem.read(vPtr, vSize)).code),
    ws_get_sql_db: (ptr: number, size: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.ResourceNotFound, () => copyReply(calls.sqlQuery(mem.read(ptr, size)), addrPtr, sizePtr)),
    ws_set_sql_db: (ptr: number, size: number) => guard(ResultCode.ResourceNotFound, () => calls.sqlExec(mem.read(ptr, size)).code),
    ws_get_env: (kPtr: number, kSize: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.TransDataToVMFailed, () => copyReply(calls.getEnv(mem.readText(kPtr, kSize)), addrPtr, sizePtr)),
    ws_send_tx: (chainId: number, ptr: number, size: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.Failed, () => copyReply(calls.sendTx(chainId, mem.read(ptr, size)), addrPtr, sizePtr, ResultCode.Failed)),
    ws_send_tx_with_operator: (chainId: number, ptr: number, size: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.Failed, () =>
        copyReply(calls.sendTxWithOperator(chainId, mem.read(ptr, size)), addrPtr, sizePtr, ResultCode.Failed),
      ),
    ws_api_call: (ptr: number, size: number, addrPtr: number, sizePtr: number) => {
      let request: Uint8Array;
      try {
        request = mem.read(ptr, size);
      } catch (err) {
        ctx.log(ERROR, 'host', (err as Error).message);
        return ResultCode.TransDataFromVMFailed;
      }
      return guard(ResultCode.HostInternal, () => copyReply(calls.apiCall(request), addrPtr, sizePtr));
    },
    ws_call_contract: (chainId: number, ptr: number, size: number, addrPtr: number, sizePtr: number) =>
      guard(ResultCode.Failed, () => copyReply(calls.callContract(chainId, mem.read(ptr, size)), addrPtr, sizePtr, ResultCode.Failed)),
    ws_send_mqtt_msg: (tPtr: number, tSize: number, mPtr: number, mSize: number) =>
      guard(ResultCode.Failed, () => calls.sendMqtt(mem.readText(tPtr, tSize), mem.read(mPtr, mSize)).code),
  };
}
