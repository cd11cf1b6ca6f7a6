import Database from 'better-sqlite3';
import { ResultCode } from '../abi/codes.js';
import type { HostReply } from '../abi/imports.js';
import { jsonifyRows, parseQuery, toSqlite } from '../abi/sql.js';
import { hexToBytes, rpc, toQuantity } from '../chain/rpc.js';
import type { HostRequest } from '../vm/protocol.js';
import { type ProjectConfig, tableDdl } from './config.js';

export interface MqttRecord {
  topic: string;
  message: string;
  atMs: number;
}

export interface ServicesOptions {
  /** SQLite file for the project database and the key/value store; ':memory:' (default) keeps nothing. */
  databaseFile?: string;
  /** Host log lines (errors of the services), for the host's log. */
  log?: (level: number, message: string) => void;
}

const ERROR = 2;
const utf8 = new TextEncoder();

/**
 * The project-side state and connections behind the host functions, on the main thread: the
 * project database (SQLite standing in for the node's Postgres, with the applet's tables), the
 * key/value store, the environment, the chains (JSON-RPC), and the MQTT messages the applet
 * published (recorded: this host runs no broker).
 */
export class ProjectServices {
  readonly db: Database.Database;
  readonly mqttMessages: MqttRecord[] = [];
  private readonly kvGetStmt: Database.Statement;
  private readonly kvSetStmt: Database.Statement;

  constructor(
    private readonly project: ProjectConfig,
    private readonly opts: ServicesOptions = {},
  ) {
    this.db = new Database(opts.databaseFile ?? ':memory:');
    this.db.pragma('journal_mode = WAL');
    for (const ddl of tableDdl(project.tables ?? [])) this.db.exec(ddl);
    // The node keeps the key/value store apart from the project's SQL schema (redis or memory);
    // a table the applet's SQL cannot name by accident stands in for it.
    this.db.exec('CREATE TABLE IF NOT EXISTS "__w3b_kv" (k TEXT PRIMARY KEY, v BLOB NOT NULL)');
    this.kvGetStmt = this.db.prepare('SELECT v FROM "__w3b_kv" WHERE k = ?');
    this.kvSetStmt = this.db.prepare('INSERT INTO "__w3b_kv" (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v');
  }

  /** The dispatcher the VM thread's host calls reach. */
  readonly handle = async (req: HostRequest): Promise<HostReply> => {
    const a = req.args;
    switch (req.op) {
      case 'kvGet':
        return this.kvGet(String(a[0]));
      case 'kvSet':
        return this.kvSet(String(a[0]), a[1] as Uint8Array);
      case 'sqlQuery':
        return this.sql(a[0] as Uint8Array, true);
      case 'sqlExec':
        return this.sql(a[0] as Uint8Array, false);
      case 'getEnv':
        return this.getEnv(String(a[0]));
      case 'sendTx':
        return this.sendTx(Number(a[0]), a[1] as Uint8Array);
      case 'callContract':
        return this.callContract(Number(a[0]), a[1] as Uint8Array);
      case 'sendMqtt':
        return this.sendMqtt(String(a[0]), a[1] as Uint8Array);
    }
  };

  close(): void {
    this.db.close();
  }

  kvGet(key: string): HostReply {
    const row = this.kvGetStmt.get(key) as { v: Buffer } | undefined;
    if (!row) return { code: ResultCode.ResourceNotFound };
    return { code: ResultCode.OK, data: new Uint8Array(row.v) };
  }

  kvSet(key: string, value: Uint8Array): HostReply {
    this.kvSetStmt.run(key, Buffer.from(value));
    return { code: ResultCode.OK };
  }

  /** ws_get_sql_db (query: rows copied in) and ws_set_sql_db (exec). */
  sql(queryBytes: Uint8Array, query: boolean): HostReply {
    try {
      const parsed = parseQuery(Buffer.from(queryBytes).toString('utf8'));
      const { statement, params } = toSqlite(parsed.statement, parsed.params);
      const stmt = this.db.prepare(statement);
      if (query && stmt.reader) {
        stmt.safeIntegers(true).raw(true);
        const rows = stmt.all(...params) as unknown[][];
        return { code: ResultCode.OK, data: jsonifyRows(stmt.columns(), rows) };
      }
      stmt.run(...params);
      return query ? { code: ResultCode.OK, data: new Uint8Array(0) } : { code: ResultCode.OK };
    } catch (err) {
      this.opts.log?.(ERROR, (err as Error).message);
      return { code: ResultCode.Failed };
    }
  }

  getEnv(key: string): HostReply {
    const env = this.project.env ?? {};
    if (!Object.hasOwn(env, key)) return { code: ResultCode.EnvKeyNotFound };
    return { code: ResultCode.OK, data: utf8.encode(env[key]!) };
  }

  /** ws_send_tx: `{"to","value","data"}` (data hex without 0x, value decimal wei); the tx hash is copied in. */
  async sendTx(chainId: number, txBytes: Uint8Array): Promise<HostReply> {
    try {
      const chain = this.chain(chainId);
      const tx = JSON.parse(Buffer.from(txBytes).toString('utf8')) as { to?: string; value?: string; data?: string };
      const from = chain.operator ?? (await rpc<string[]>(chain.rpcUrl, 'eth_accounts'))[0];
      if (!from) throw new Error(`chain ${chainId} has no operator account`);
      const hash = await rpc<string>(chain.rpcUrl, 'eth_sendTransaction', [
        { from, to: tx.to, value: toQuantity(String(tx.value ?? '0')), data: `0x${String(tx.data ?? '').replace(/^0x/, '')}` },
      ]);
      return { code: ResultCode.OK, data: utf8.encode(hash) };
    } catch (err) {
      this.opts.log?.(ERROR, `send tx: ${(err as Error).message}`);
      return { code: ResultCode.Failed };
    }
  }

  /** ws_call_contract: eth_call `{"to","data"}`; the returned bytes (not hex) are copied in. */
  async callContract(chainId: number, txBytes: Uint8Array): Promise<HostReply> {
    try {
      const chain = this.chain(chainId);
      const tx = JSON.parse(Buffer.from(txBytes).toString('utf8')) as { to?: string; data?: string };
      const result = await rpc<string>(chain.rpcUrl, 'eth_call', [
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

  private chain(chainId: number): { rpcUrl: string; operator?: string } {
    const chain = this.project.chains?.[String(chainId)];
    if (!chain) throw new Error(`eth client doesn't exist for chain ${chainId}`);
    return chain;
  }
}
