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
  /** A direct channel to the project database's thread (SQL calls skip the main thread). */
  db?: DbLink;
}

/** One VM thread's own line to the database thread: a port, the flag it sleeps on, the run it serves. */
export interface DbLink {
  port: MessagePort;
  signal: SharedArrayBuffer;
  /** Int32[0]: the runId the VM thread is running now (0: none). The database thread refuses a
   * request of any other run, so an event stopped at its time-out changes nothing afterwards. */
  run: SharedArrayBuffer;
}

/** A SQL call on a DbLink, and its answer. */
export interface DbLinkRequest {
  runId: number;
  query: Uint8Array;
  mode: 'query' | 'exec';
}
export interface DbLinkReply {
  code: number;
  data?: Uint8Array;
  /** Why it failed, and notes, for the host log. */
  error?: string;
  notes?: string[];
}
