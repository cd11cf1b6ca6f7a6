/**
 * A W3bstream project as this host runs it: the channel (project name) and publisher token the
 * event route checks, one applet, the strategies that route an eventType to a handler, the
 * applet's environment, its database tables, the chains it may call, and the contract logs it
 * listens to. Plain data, validated once, so a JSON file can carry it.
 */
export interface TableSpec {
  name: string;
  /** Columns besides `id`, which every table gets (auto-increment, as the node's project tables). */
  columns: { name: string; type: string }[];
}

export interface ChainSpec {
  rpcUrl: string;
  /** The account that sends the applet's transactions (eth_sendTransaction; the local chain unlocks it). */
  operator?: string;
}

export interface ContractLogSpec {
  /** Logs are delivered as events of this type (routed by the strategies like HTTP events). */
  eventType: string;
  chainId: number;
  contractAddress: string;
  /** Topic filter (e.g. the event's signature hash); empty = every log of the contract. */
  topic0?: string;
  /** First block to scan (default 0). */
  blockStart?: number;
}

export interface ProjectConfig {
  name: string;
  publisherToken: string;
  /** The applet's name in answers (`results[].appletName`). */
  appletName: string;
  wasmFile: string;
  strategies: { eventType: string; handler: string }[];
  env?: Record<string, string>;
  tables?: TableSpec[];
  chains?: Record<string, ChainSpec>;
  contractLogs?: ContractLogSpec[];
}

export class ProjectConfigError extends Error {}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const COLUMN_TYPES = new Set([
  'TEXT',
  'VARCHAR',
  'INTEGER',
  'INT',
  'BIGINT',
  'REAL',
  'FLOAT',
  'DOUBLE',
  'NUMERIC',
  'BOOLEAN',
  'BOOL',
  'BLOB',
  'TIMESTAMP',
]);
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** Checks a project; throws one ProjectConfigError naming the field, the value and what is allowed. */
export function validateProject(p: ProjectConfig): ProjectConfig {
  const fail = (field: string, value: unknown, allowed: string): never => {
    throw new ProjectConfigError(`project ${field}: ${JSON.stringify(value)} is not allowed (${allowed})`);
  };
  if (!/^[A-Za-z0-9_-]+$/.test(p.name)) fail('name', p.name, 'letters, digits, _ and -');
  if (p.publisherToken.length === 0) fail('publisherToken', '', 'a non-empty token');
  if (p.strategies.length === 0) fail('strategies', p.strategies, 'at least one {eventType, handler}');
  for (const s of p.strategies)
    if (!IDENT.test(s.handler) || s.eventType.length === 0) fail('strategies', s, 'an eventType and an exported handler name');
  for (const t of p.tables ?? []) {
    if (!IDENT.test(t.name)) fail('tables[].name', t.name, 'an SQL identifier');
    for (const c of t.columns) {
      if (!IDENT.test(c.name) || c.name.toLowerCase() === 'id')
        fail(`tables.${t.name}.columns[].name`, c.name, 'an SQL identifier other than id');
      if (!COLUMN_TYPES.has(c.type.toUpperCase())) fail(`tables.${t.name}.${c.name}.type`, c.type, [...COLUMN_TYPES].join(', '));
    }
  }
  for (const [id, c] of Object.entries(p.chains ?? {})) {
    if (!/^\d+$/.test(id)) fail('chains', id, 'chain ids as decimal numbers');
    if (!/^https?:\/\//.test(c.rpcUrl)) fail(`chains.${id}.rpcUrl`, c.rpcUrl, 'an http(s) JSON-RPC URL');
    if (c.operator !== undefined && !ADDRESS.test(c.operator)) fail(`chains.${id}.operator`, c.operator, '0x + 40 hex');
  }
  for (const l of p.contractLogs ?? []) {
    if (!ADDRESS.test(l.contractAddress)) fail('contractLogs[].contractAddress', l.contractAddress, '0x + 40 hex');
    if (!p.chains?.[String(l.chainId)]) fail('contractLogs[].chainId', l.chainId, 'a chain listed in chains');
    if (l.topic0 !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(l.topic0)) fail('contractLogs[].topic0', l.topic0, '0x + 64 hex');
  }
  return p;
}

/** The DDL for the project's tables: each with `id INTEGER PRIMARY KEY AUTOINCREMENT` first. */
export function tableDdl(tables: TableSpec[]): string[] {
  return tables.map(
    (t) =>
      `CREATE TABLE IF NOT EXISTS "${t.name}" (id INTEGER PRIMARY KEY AUTOINCREMENT${t.columns.map((c) => `, "${c.name}" ${c.type.toUpperCase()}`).join('')})`,
  );
}

/**
 * The strategies for an eventType: exactly those of that type. The node's
 * `FilterByProjectAndEvent` builds a list with DEFAULT added but queries the event's own type
 * only, so an event whose type has no strategy is handled by nobody (`results: null`), even when
 * DEFAULT has one. An event without a type is DEFAULT.
 */
export function strategiesFor(p: ProjectConfig, eventType: string): { eventType: string; handler: string }[] {
  return p.strategies.filter((s) => s.eventType === eventType);
}
