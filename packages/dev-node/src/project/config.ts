/**
 * A W3bstream project as this host runs it, in the node's own configuration shapes
 * (machinefi/w3bstream, v1): the project's name and env (`project.CreateReq`, `wasm.Env`:
 * `{"env":[["KEY","value"]]}`), its database (`wasm.Database`, see schema.ts), its applets with
 * their strategies (`applet.Info`: appletName, strategies[{eventType, handler}]), the chains
 * (`types.Chain`: chainID, name, endpoint), the monitors (`models.ContractLogInfo`,
 * `ChainTxInfo`, `ChainHeightInfo`) and cron jobs (`models.CronJobInfo`). What only this host
 * needs: the publisher token, each applet's wasm file, and operators as unlocked accounts of a
 * local chain (the node keeps their private keys). Plain data, validated once.
 */
import { Cron } from 'croner';
import { DATATYPES, type DatabaseSpec, schemasOf } from './schema.js';

export interface StrategySpec {
  eventType: string;
  handler: string;
  autoCollectMetric?: boolean;
}
export interface AppletSpec {
  appletName: string;
  /** The applet's .wasm (a project file names it relative to itself). */
  wasmFile: string;
  strategies: StrategySpec[];
}
export interface ChainSpec {
  chainID: number;
  name?: string;
  /** JSON-RPC URL; in a project file `anvil` starts a local chain with this chain id. */
  endpoint: string;
}
export interface OperatorSpec {
  /** `default` is the operator ws_send_tx uses. */
  name: string;
  /** An account the chain signs for (eth_sendTransaction): the local chain's accounts are unlocked. */
  address: string;
}
export interface ContractLogSpec {
  eventType?: string;
  chainID: number;
  contractAddress: string;
  blockStart?: number;
  blockEnd?: number;
  topic0?: string;
  topic1?: string;
  topic2?: string;
  topic3?: string;
  paused?: boolean;
}
export interface ChainTxSpec {
  eventType?: string;
  chainID: number;
  txAddress: string;
  paused?: boolean;
}
export interface ChainHeightSpec {
  eventType?: string;
  chainID?: number;
  chainName?: string;
  height: number;
  paused?: boolean;
}
export interface CronJobSpec {
  cronExpressions: string;
  eventType?: string;
}

export interface ProjectConfig {
  name: string;
  description?: string;
  publisherToken: string;
  envs?: { env: [string, string][] };
  database?: DatabaseSpec;
  applets: AppletSpec[];
  chains?: ChainSpec[];
  operators?: OperatorSpec[];
  contractLogs?: ContractLogSpec[];
  chainTxs?: ChainTxSpec[];
  chainHeights?: ChainHeightSpec[];
  cronJobs?: CronJobSpec[];
}

export class ProjectConfigError extends Error {}

/** The node's defaults for an event type left empty. */
export const MONITOR_DEFAULT = 'MONITOR_DEFAULT';
export const EVENT_DEFAULT = 'DEFAULT';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HASH = /^0x[0-9a-fA-F]{64}$/;

/** robfig/cron's ParseStandard accepts these descriptors besides five fields. */
const DESCRIPTORS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
export const EVERY = /^@every\s+((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/;

export function validateCron(expr: string): string | null {
  const e = expr.trim();
  if (DESCRIPTORS.includes(e) || EVERY.test(e)) return null;
  if (e.split(/\s+/).length !== 5) return `expected exactly 5 fields, found ${e.split(/\s+/).length}: ${expr}`;
  try {
    new Cron(e, { paused: true, mode: '5-part', timezone: 'UTC' });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Checks a project; throws one ProjectConfigError naming the field, the value and what is allowed. */
export function validateProject(p: ProjectConfig): ProjectConfig {
  const fail = (field: string, value: unknown, allowed: string): never => {
    throw new ProjectConfigError(`project ${field}: ${JSON.stringify(value)} is not allowed (${allowed})`);
  };
  // The node's projectName format (pkg/depends/util/strfmt/strfmt.go).
  if (typeof p.name !== 'string' || !/^[a-z0-9_]{1,32}$/.test(p.name))
    fail('name', p.name, '1 to 32 lower-case letters, digits and _, as the node requires');
  if (typeof p.publisherToken !== 'string' || p.publisherToken.length === 0) fail('publisherToken', p.publisherToken, 'a non-empty token');
  for (const pair of p.envs?.env ?? [])
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string')
      fail('envs.env[]', pair, '["KEY", "value"] pairs of strings');
  if (!Array.isArray(p.applets) || p.applets.length === 0) fail('applets', p.applets, 'at least one {appletName, wasmFile, strategies}');
  const names = new Set<string>();
  for (const a of p.applets) {
    if (typeof a.appletName !== 'string' || a.appletName === '' || names.has(a.appletName))
      fail('applets[].appletName', a.appletName, 'a name used once');
    names.add(a.appletName);
    if (typeof a.wasmFile !== 'string' || a.wasmFile === '') fail(`applets.${a.appletName}.wasmFile`, a.wasmFile, 'the path of the .wasm');
    if (!Array.isArray(a.strategies) || a.strategies.length === 0)
      fail(`applets.${a.appletName}.strategies`, a.strategies, 'at least one {eventType, handler}');
    for (const s of a.strategies)
      if (typeof s.handler !== 'string' || !IDENT.test(s.handler) || typeof s.eventType !== 'string' || s.eventType === '')
        fail(`applets.${a.appletName}.strategies`, s, 'an eventType and the name of an exported handler');
  }
  for (const s of schemasOf(p.database)) {
    if (!IDENT.test(s.schema!)) fail('database.schemas[].schema', s.schema, 'an SQL identifier');
    for (const t of s.tables ?? []) {
      if (!IDENT.test(t.name)) fail('database tables[].name', t.name, 'an SQL identifier');
      if (!Array.isArray(t.cols) || t.cols.length === 0) fail(`database table ${t.name}.cols`, t.cols, 'at least one column');
      for (const c of t.cols) {
        if (!IDENT.test(c.name)) fail(`database table ${t.name}.cols[].name`, c.name, 'an SQL identifier');
        if (!DATATYPES.includes(c.constrains?.datatype))
          fail(`database column ${t.name}.${c.name}.constrains.datatype`, c.constrains?.datatype, DATATYPES.join(', '));
      }
      for (const k of t.keys ?? []) {
        const cols = new Set(t.cols.map((c) => c.name));
        if (!Array.isArray(k.columnNames) || (!k.expr && k.columnNames.some((n) => !cols.has(n))))
          fail(`database table ${t.name}.keys[].columnNames`, k.columnNames, 'columns of the table');
      }
    }
  }
  const chainIds = new Set<number>();
  for (const c of p.chains ?? []) {
    if (!Number.isInteger(c.chainID) || c.chainID <= 0) fail('chains[].chainID', c.chainID, 'a positive integer');
    if (typeof c.endpoint !== 'string' || !/^https?:\/\//.test(c.endpoint))
      fail(`chains.${c.chainID}.endpoint`, c.endpoint, 'an http(s) JSON-RPC URL');
    chainIds.add(c.chainID);
  }
  const chainNames = new Set((p.chains ?? []).map((c) => c.name).filter(Boolean));
  for (const o of p.operators ?? []) {
    if (typeof o.name !== 'string' || o.name === '') fail('operators[].name', o.name, 'a name (default is the one ws_send_tx uses)');
    if (!ADDRESS.test(o.address)) fail(`operators.${o.name}.address`, o.address, '0x + 40 hex');
  }
  for (const l of p.contractLogs ?? []) {
    if (!ADDRESS.test(l.contractAddress)) fail('contractLogs[].contractAddress', l.contractAddress, '0x + 40 hex');
    if (!chainIds.has(l.chainID)) fail('contractLogs[].chainID', l.chainID, 'a chainID listed in chains');
    for (const t of ['topic0', 'topic1', 'topic2', 'topic3'] as const)
      if (l[t] !== undefined && l[t] !== '' && !HASH.test(l[t]!)) fail(`contractLogs[].${t}`, l[t], '0x + 64 hex');
  }
  for (const t of p.chainTxs ?? []) {
    if (!HASH.test(t.txAddress)) fail('chainTxs[].txAddress', t.txAddress, 'a transaction hash (0x + 64 hex)');
    if (!chainIds.has(t.chainID)) fail('chainTxs[].chainID', t.chainID, 'a chainID listed in chains');
  }
  for (const h of p.chainHeights ?? []) {
    if (!Number.isInteger(h.height) || h.height < 0) fail('chainHeights[].height', h.height, 'a block number');
    if (!chainIds.has(h.chainID ?? 0) && !chainNames.has(h.chainName))
      fail('chainHeights[].chainID', h.chainID ?? h.chainName, 'a chain listed in chains (chainID or name)');
  }
  for (const c of p.cronJobs ?? []) {
    const why = typeof c.cronExpressions === 'string' ? validateCron(c.cronExpressions) : 'not a string';
    if (why)
      fail('cronJobs[].cronExpressions', c.cronExpressions, `five fields (minute hour day month weekday) or @every <duration>: ${why}`);
  }
  return p;
}

/** The project's env as the node's Env.Get sees it (an empty key is skipped). */
export function envMap(p: ProjectConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of p.envs?.env ?? []) if (k !== '') m.set(k, v);
  return m;
}

export interface RoutedStrategy {
  applet: AppletSpec;
  /** The applet's instance id in answers (1, 2, … in the project's order). */
  instanceId: string;
  handler: string;
  eventType: string;
}

/**
 * The strategies for an eventType: exactly those of that type, across the project's applets. The
 * node's `FilterByProjectAndEvent` builds a list with DEFAULT added but queries the event's own
 * type only, so an event whose type has no strategy is handled by nobody (`results: null`).
 */
export function strategiesFor(p: ProjectConfig, eventType: string): RoutedStrategy[] {
  const out: RoutedStrategy[] = [];
  p.applets.forEach((applet, i) => {
    for (const s of applet.strategies)
      if (s.eventType === eventType) out.push({ applet, instanceId: String(i + 1), handler: s.handler, eventType });
  });
  return out;
}

/** A chain's endpoint by id (ws_send_tx, monitors) or by name (chain height). */
export function chainFor(p: ProjectConfig, chainID?: number, name?: string): ChainSpec | undefined {
  return (p.chains ?? []).find((c) => c.chainID === chainID) ?? (name ? (p.chains ?? []).find((c) => c.name === name) : undefined);
}
