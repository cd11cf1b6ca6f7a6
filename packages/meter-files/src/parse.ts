import { STATE_SCHEMA, type MeterState } from './schema.js';

/** Why a `state.json` could not be used. The display shows this as a problem marker. */
export type StateProblem = 'missing' | 'empty' | 'garbage' | 'schema' | 'invalid' | 'not-regular' | 'too-big' | 'unreadable';

export type ParseResult = { ok: true; state: MeterState } | { ok: false; problem: StateProblem; message: string };

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumOrNull = (v: unknown): boolean => v === null || isNum(v);
const isStrOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A non-empty list of {belowW, tokensPerH} with finite numbers and strictly ascending bounds. */
function isTierList(v: unknown): boolean {
  if (!Array.isArray(v) || v.length === 0) return false;
  let last = -Infinity;
  for (const t of v) {
    if (!isObj(t) || !isNum(t.belowW) || !isNum(t.tokensPerH) || t.belowW <= last) return false;
    last = t.belowW;
  }
  return true;
}

/**
 * Parse the text of `state.json` without ever throwing. A reader (the display, a script) gets
 * either a fully valid state or the reason it is not usable, so it can keep its last good view.
 */
export function parseState(text: string): ParseResult {
  if (text.trim() === '') return { ok: false, problem: 'empty', message: 'state.json is empty' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, problem: 'garbage', message: `state.json is not JSON: ${(err as Error).message}` };
  }
  if (!isObj(value)) return { ok: false, problem: 'garbage', message: 'state.json is not a JSON object' };
  if (value.schema !== STATE_SCHEMA) {
    return {
      ok: false,
      problem: 'schema',
      message: `state.json has schema ${JSON.stringify(value.schema)}, this program reads schema ${STATE_SCHEMA}`,
    };
  }
  const bad = findInvalidField(value);
  if (bad) return { ok: false, problem: 'invalid', message: `state.json field ${bad} is missing or has the wrong type` };
  return { ok: true, state: value as unknown as MeterState };
}

/** Returns the first field that does not match the schema, or null when all do. */
function findInvalidField(v: Record<string, unknown>): string | null {
  if (!isNum(v.updatedAtMs)) return 'updatedAtMs';
  if (typeof v.updatedAt !== 'string') return 'updatedAt';
  if (typeof v.deviceId !== 'string') return 'deviceId';
  if (typeof v.walletAddress !== 'string') return 'walletAddress';
  if (!isNumOrNull(v.powerW)) return 'powerW';
  if (!isNum(v.windowS)) return 'windowS';
  if (!isNum(v.energyTotalWh)) return 'energyTotalWh';
  if (!Array.isArray(v.recentAvgPowerW) || !v.recentAvgPowerW.every(isNum)) return 'recentAvgPowerW';
  if (v.lastWindow !== null) {
    const w = v.lastWindow;
    if (!isObj(w)) return 'lastWindow';
    for (const k of ['avgPowerW', 'energyWh', 'minPowerW', 'maxPowerW', 'startMs', 'endMs', 'samples', 'observedFraction']) {
      if (!isNum(w[k])) return `lastWindow.${k}`;
    }
    if (typeof w.complete !== 'boolean') return 'lastWindow.complete';
    for (const k of ['busV', 'currentA']) if (w[k] !== undefined && !isNumOrNull(w[k])) return `lastWindow.${k}`;
  }
  const r = v.rewards;
  if (!isObj(r)) return 'rewards';
  if (!isNum(r.tokensPerH)) return 'rewards.tokensPerH';
  if (!isNum(r.total)) return 'rewards.total';
  if (r.tiers !== undefined && !isTierList(r.tiers)) return 'rewards.tiers';
  const p = v.publishing;
  if (!isObj(p)) return 'publishing';
  if (!['disabled', 'ok', 'retrying', 'failing'].includes(p.state as string)) return 'publishing.state';
  if (!isStrOrNull(p.reason)) return 'publishing.reason';
  if (!isNum(p.waiting)) return 'publishing.waiting';
  if (!isNum(p.dropped)) return 'publishing.dropped';
  if (!isNumOrNull(p.lastSuccessMs)) return 'publishing.lastSuccessMs';
  if (!isNum(p.held)) return 'publishing.held';
  if (p.rejected !== undefined && !isNum(p.rejected)) return 'publishing.rejected';
  if (p.skipped !== undefined && !isNum(p.skipped)) return 'publishing.skipped';
  if (p.lastRejection !== undefined && !isStrOrNull(p.lastRejection)) return 'publishing.lastRejection';
  if (v.rewardBalance !== undefined) {
    const b = v.rewardBalance;
    if (!isObj(b)) return 'rewardBalance';
    if (typeof b.token !== 'string') return 'rewardBalance.token';
    if (typeof b.owner !== 'string') return 'rewardBalance.owner';
    if (!isStrOrNull(b.raw) || (typeof b.raw === 'string' && !/^\d+$/.test(b.raw))) return 'rewardBalance.raw';
    if (!isNumOrNull(b.decimals)) return 'rewardBalance.decimals';
    if (!isStrOrNull(b.tokens)) return 'rewardBalance.tokens';
    if (!isNumOrNull(b.readAtMs)) return 'rewardBalance.readAtMs';
    if (!isNum(b.intervalMs)) return 'rewardBalance.intervalMs';
    if (!isStrOrNull(b.error)) return 'rewardBalance.error';
  }
  if (v.ioid !== undefined) {
    const i = v.ioid;
    if (!isObj(i)) return 'ioid';
    for (const k of ['registry', 'device', 'did']) if (typeof i[k] !== 'string') return `ioid.${k}`;
    for (const k of ['ioIdContract', 'ioId', 'owner', 'projectId', 'error']) if (!isStrOrNull(i[k])) return `ioid.${k}`;
    if (i.registered !== null && typeof i.registered !== 'boolean') return 'ioid.registered';
    if (!isNumOrNull(i.readAtMs)) return 'ioid.readAtMs';
    if (!isNum(i.intervalMs)) return 'ioid.intervalMs';
  }
  if (p.lastTaskId !== undefined && !isStrOrNull(p.lastTaskId)) return 'publishing.lastTaskId';
  if (v.signing !== undefined) {
    const g = v.signing;
    if (!isObj(g)) return 'signing';
    if (g.key !== 'pkcs11') return 'signing.key';
    if (!['ok', 'fault'].includes(g.state as string)) return 'signing.state';
    if (!isStrOrNull(g.reason)) return 'signing.reason';
    if (!isNum(g.unsigned)) return 'signing.unsigned';
    if (!isNum(g.pinAttempts)) return 'signing.pinAttempts';
    if (!isNumOrNull(g.sinceMs)) return 'signing.sinceMs';
  }
  if (p.task !== undefined && p.task !== null) {
    const t = p.task;
    if (!isObj(t)) return 'publishing.task';
    if (typeof t.id !== 'string') return 'publishing.task.id';
    if (typeof t.state !== 'string') return 'publishing.task.state';
    if (!isNumOrNull(t.stateAtMs)) return 'publishing.task.stateAtMs';
    if (!isStrOrNull(t.txHash)) return 'publishing.task.txHash';
    if (!isStrOrNull(t.error)) return 'publishing.task.error';
    if (!isNum(t.checkedAtMs)) return 'publishing.task.checkedAtMs';
    if (!isNum(t.failedCount)) return 'publishing.task.failedCount';
  }
  const s = v.sensor;
  if (!isObj(s)) return 'sensor';
  if (!['ok', 'fault'].includes(s.state as string)) return 'sensor.state';
  if (!isStrOrNull(s.reason)) return 'sensor.reason';
  if (!isNumOrNull(s.busV)) return 'sensor.busV';
  if (!isNumOrNull(s.currentA)) return 'sensor.currentA';
  if (s.chip !== undefined && typeof s.chip !== 'string') return 'sensor.chip';
  if (s.simulated !== undefined && typeof s.simulated !== 'boolean') return 'sensor.simulated';
  if (s.calibrationId !== undefined && !isStrOrNull(s.calibrationId)) return 'sensor.calibrationId';
  return null;
}
