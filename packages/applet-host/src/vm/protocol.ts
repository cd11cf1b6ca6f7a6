/** Messages between the runner (main thread) and the VM worker. */
import type { MessagePort } from 'node:worker_threads';
import type { HostReply } from '../abi/imports.js';

export type HostOp =
  | 'kvGet'
  | 'kvSet'
  | 'sqlQuery'
  | 'sqlExec'
  | 'getEnv'
  | 'sendTx'
  | 'sendTxWithOperator'
  | 'apiCall'
  | 'submitMetrics'
  | 'callContract'
  | 'sendMqtt';
export interface HostRequest {
  op: HostOp;
  args: unknown[];
}
export type { HostReply };

export interface RunRequest {
  type: 'run';
  runId: number;
  handler: string;
  data: Uint8Array;
}
export type WorkerMessage =
  | { type: 'ready'; runId: 0 }
  | { type: 'log'; runId: number; level: number; src: 'wasm' | 'host'; message: string }
  | { type: 'done'; runId: number; code: number; error: string | null };

export interface WorkerInit {
  wasm: Uint8Array;
  /** The worker's end of the host-call channel, and the flag it sleeps on while a call runs. */
  port: MessagePort;
  signal: SharedArrayBuffer;
}
