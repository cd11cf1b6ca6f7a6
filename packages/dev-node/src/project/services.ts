import { ResultCode } from '../abi/codes.js';
import type { HostReply } from '../abi/imports.js';
import { hexToBytes, rpc, toQuantity } from '../chain/rpc.js';
import type { ProjectDatabase } from '../sql/database.js';
import type { HostRequest } from '../vm/protocol.js';
import type { RunInfo } from '../vm/runner.js';
import { ApiCallServer, encodeApiResponse } from './api-call.js';
import { chainFor, envMap, type ProjectConfig } from './config.js';

export interface MqttRecord {
  topic: string;
  message: string;
  atMs: number;
}

export interface MetricRecord {
  /** The JSON object the applet submitted (the node writes it to its metrics store). */
  data: string;
  atMs: number;
}

export interface ServicesOptions {
  /** Host log lines (errors of the services), for the host's log. */
  log?: (level: number, message: string) => void;
  /** Delivers an event back to the project (ws_api_call's asynchronous answers). */
  deliver?: (eventType: string, payload: Uint8Array) => void;
  /** ws_api_call's send_tx state check (the node: 10 s). */
  apiStateCheckMs?: number;
}

const ERROR = 2;
const utf8 = new TextEncoder();

/**
 * The project-side state and connections behind the host functions, on the main thread: the
 * project database (Postgres on its own thread), the key/value store (in memory, as the node's
 * memory KV), the environment, the chains (JSON-RPC), the operators, the MQTT messages and
 * metrics the applet published (recorded: this host runs no broker and no metrics store).
 */
export class ProjectServices {
  readonly mqttMessages: MqttRecord[] = [];
  readonly metrics: MetricRecord[] = [];
  private readonly kv = new Map<string, Uint8Array>();
  private readonly env: Map<string, string>;
  private readonly api: ApiCallServer;

  constructor(
    private readonly project: ProjectConfig,
    readonly db: ProjectDatabase,
    private readonly opts: ServicesOptions = {},
  ) {
    this.env = envMap(project);
    this.api = new ApiCallServer(
      {
        hasChain: (name) => chainFor(project, undefined, name) !== undefined,
        readTx: (name, hash) => rpc(this.endpoint(undefined, name), 'eth_getTransactionByHash', [hash]),
        sendTx: (name, operator, tx) => this.transact(this.endpoint(undefined, name), operator, tx),
        txSucceeded: async (name, hash) => {
          const receipt = await rpc<{ status: string } | null>(this.endpoint(undefined, name), 'eth_getTransactionReceipt', [hash]);
          if (!receipt) throw new Error('not mined yet');
          return receipt.status === '0x1';
        },
        deliver: (eventType, payload) => opts.deliver?.(eventType, payload),
        log: (m) => opts.log?.(ERROR, m),
      },
      opts.apiStateCheckMs,
    );
  }

  /** The dispatcher the VM threads' host calls reach. */
  readonly handle = async (req: HostRequest, _run?: RunInfo): Promise<HostReply> => {
    const a = req.args;
    switch (req.op) {
      case 'kvGet':
        return this.kvGet(String(a[0]));
      case 'kvSet':
        return this.kvSet(String(a[0]), a[1] as Uint8Array);
      case 'sqlQuery':
        return this.sql(a[0] as Uint8Array, 'query');
      case 'sqlExec':
        return this.sql(a[0] as Uint8Array, 'exec');
      case 'getEnv':
        return this.getEnv(String(a[0]));
      case 'sendTx':
        return this.sendTx(Number(a[0]), a[1] as Uint8Array, false);
      case 'sendTxWithOperator':
        return this.sendTx(Number(a[0]), a[1] as Uint8Array, true);
      case 'callContract':
        return this.callContract(Number(a[0]), a[1] as Uint8Array);
      case 'sendMqtt':
        return this.sendMqtt(String(a[0]), a[1] as Uint8Array);
      case 'apiCall':
        return { code: ResultCode.OK, data: encodeApiResponse(this.api.call(a[0] as Uint8Array)) };
      case 'submitMetrics':
        return this.submitMetrics(a[0] as Uint8Array);
    }
  };

  kvGet(key: string): HostReply {
    const v = this.kv.get(key);
    if (!v) return { code: ResultCode.ResourceNotFound };
    return { code: ResultCode.OK, data: v };
  }

  kvSet(key: string, value: Uint8Array): HostReply {
    this.kv.set(key, value);
    return { code: ResultCode.OK };
  }

  /** ws_get_sql_db (rows copied in) and ws_set_sql_db, with the node's Postgres semantics. */
  async sql(query: Uint8Array, mode: 'query' | 'exec'): Promise<HostReply> {
    const r = await this.db.appletSql(query, mode);
    for (const note of r.notes ?? []) this.opts.log?.(3, note);
    if (!r.ok) {
      this.opts.log?.(ERROR, r.error ?? 'the SQL call failed');
      return { code: ResultCode.Failed };
    }
    return mode === 'query' ? { code: ResultCode.OK, data: r.data ?? new Uint8Array(0) } : { code: ResultCode.OK };
  }

  getEnv(key: string): HostReply {
    const v = this.env.get(key);
    if (v === undefined) return { code: ResultCode.EnvKeyNotFound };
    return { code: ResultCode.OK, data: utf8.encode(v) };
  }

  /**
   * ws_send_tx: `{"to","value","data"}` (data hex without 0x, value decimal wei) sent by the
   * project's `default` operator; ws_send_tx_with_operator: the same with `operatorName`. The
   * transaction hash is copied in.
   */
  async sendTx(chainId: number, txBytes: Uint8Array, withOperator: boolean): Promise<HostReply> {
    try {
      const tx = JSON.parse(Buffer.from(txBytes).toString('utf8')) as { to?: string; value?: string; data?: string; operatorName?: string };
      const operator = withOperator ? String(tx.operatorName ?? '') : 'default';
      const hash = await this.transact(this.endpoint(chainId), operator, {
        to: String(tx.to ?? ''),
        value: String(tx.value ?? ''),
        data: String(tx.data ?? ''),
      });
      return { code: ResultCode.OK, data: utf8.encode(hash) };
    } catch (err) {
      this.opts.log?.(ERROR, `send tx: ${(err as Error).message}`);
      return { code: ResultCode.Failed };
    }
  }

  /** ws_call_contract: eth_call `{"to","data"}`; the returned bytes (not hex) are copied in. */
  async callContract(chainId: number, txBytes: Uint8Array): Promise<HostReply> {
    try {
      const tx = JSON.parse(Buffer.from(txBytes).toString('utf8')) as { to?: string; data?: string };
      const result = await rpc<string>(this.endpoint(chainId), 'eth_call', [
        { to: tx.to, data: `0x${String(tx.data ?? '').replace(/^0x/, '')}` },
        'latest',
      ]);
      return { code: ResultCode.OK, data: hexToBytes(result) };
    } catch (err) {
      this.opts.log?.(ERROR, `call contract: ${(err as Error).message}`);
      return { code: ResultCode.Failed };
    }
  }

  sendMqtt(topic: string, message: Uint8Array): HostReply {
    this.mqttMessages.push({ topic, message: Buffer.from(message).toString('utf8'), atMs: Date.now() });
    return { code: ResultCode.OK };
  }

  /** stat.ws_submit_metrics: valid JSON that is not an array (the node's StatSubmit), else -1. */
  submitMetrics(data: Uint8Array): HostReply {
    const text = Buffer.from(data).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.opts.log?.(ERROR, 'invalid json');
      return { code: ResultCode.Failed };
    }
    if (Array.isArray(parsed)) {
      this.opts.log?.(ERROR, 'json object should not be an array');
      return { code: ResultCode.Failed };
    }
    this.metrics.push({ data: text, atMs: Date.now() });
    return { code: ResultCode.OK };
  }

  private endpoint(chainId?: number, name?: string): string {
    const chain = chainFor(this.project, chainId, name);
    if (!chain) throw new Error(`the chain ${chainId ?? ''} ${name ?? ''} is not supported`);
    return chain.endpoint;
  }

  /** eth_sendTransaction from the operator's account (the local chain's accounts are unlocked). */
  private async transact(url: string, operatorName: string, tx: { to: string; value: string; data: string }): Promise<string> {
    const op = (this.project.operators ?? []).find((o) => o.name === operatorName);
    if (!op) throw new Error(`operator ${JSON.stringify(operatorName)} not found in the project's operators`);
    return rpc<string>(url, 'eth_sendTransaction', [
      { from: op.address, to: tx.to, value: toQuantity(tx.value), data: `0x${tx.data.replace(/^0x/, '')}` },
    ]);
  }
}
