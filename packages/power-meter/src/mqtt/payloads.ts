import type { MeterState } from '@power-meter/meter-files';
import type { MeterTopics } from './topics.js';

/**
 * State messages, pure: what to publish for a state.json update, and when. Window figures and
 * totals go out once per window; live power at most every `powerIntervalMs` (a Home Assistant
 * recorder stores every state change: twice a second would bloat its database for nothing);
 * publishing and sensor state, and the on-chain balance, whenever they change. All are retained, so Home Assistant has the
 * latest values as soon as it subscribes (after its own restart too).
 */
export interface OutMessage {
  topic: string;
  payload: string;
}

/** Live figures; null while the sensor is faulty (Home Assistant then shows them unknown). */
export function powerPayload(s: MeterState): string {
  const ok = s.sensor.state === 'ok';
  return JSON.stringify({
    powerW: s.powerW,
    busV: ok ? s.sensor.busV : null,
    currentA: ok ? s.sensor.currentA : null,
    updatedAtMs: s.updatedAtMs,
  });
}

/** ISO 8601 (what a Home Assistant timestamp sensor parses), or null. */
const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/**
 * The energy total is the meter's stored total: it never decreases, across restarts too. In Wh
 * (as before) and kWh (what Home Assistant's energy entity shows).
 */
export function windowPayload(s: MeterState): string {
  const w = s.lastWindow;
  return JSON.stringify({
    energyTotalWh: s.energyTotalWh,
    energyTotalKwh: s.energyTotalWh / 1000,
    avgPowerW: w?.avgPowerW ?? null,
    avgBusV: w?.busV ?? null,
    avgCurrentA: w?.currentA ?? null,
    energyWh: w?.energyWh ?? null,
    minPowerW: w?.minPowerW ?? null,
    maxPowerW: w?.maxPowerW ?? null,
    observedPercent: w ? Number((w.observedFraction * 100).toFixed(2)) : null,
    complete: w?.complete ?? null,
    startMs: w?.startMs ?? null,
    endMs: w?.endMs ?? null,
    /** When the last reading was taken (the end of its window). */
    lastReadingAt: iso(w?.endMs),
    tokensPerH: s.rewards.tokensPerH,
    rewardsTotal: s.rewards.total,
  });
}

/** `startedAtMs`: when this process started (Home Assistant's "Last restart", the uptime). */
export function statusPayload(s: MeterState, startedAtMs: number | null = null): string {
  const p = s.publishing;
  return JSON.stringify({
    startedAt: iso(startedAtMs),
    publishing: p.state,
    reason: p.reason,
    waiting: p.waiting,
    held: p.held,
    dropped: p.dropped,
    lastSuccessMs: p.lastSuccessMs,
    sensor: s.sensor.state,
    sensorReason: s.sensor.reason,
    // Which chip measured and with which calibration (additive; absent in an older state).
    ...(s.sensor.chip === undefined ? {} : { sensorChip: s.sensor.chip }),
    ...(s.sensor.calibrationId === undefined ? {} : { calibrationId: s.sensor.calibrationId }),
  });
}

/** The on-chain reward balance (null when not configured): `tokens` is exact decimal text, null before the first read. */
export function balancePayload(s: MeterState): string | null {
  const b = s.rewardBalance;
  if (b === undefined) return null;
  return JSON.stringify({
    tokens: b.tokens,
    raw: b.raw,
    decimals: b.decimals,
    readAt: iso(b.readAtMs),
    error: b.error,
    token: b.token,
    owner: b.owner,
  });
}

/** Decides which messages a state update produces; remembers what was sent. */
export class StatePlanner {
  private lastWindowKey: string | null = null;
  private lastStatus: string | null = null;
  private lastBalance: string | null = null;
  private lastPowerMs = -Infinity;

  constructor(
    private readonly topics: MeterTopics,
    private readonly powerIntervalMs: number,
    private readonly startedAtMs: number | null = null,
  ) {}

  /** Messages due for this update. */
  next(s: MeterState, nowMs: number): OutMessage[] {
    const out: OutMessage[] = [];
    const windowKey = `${s.lastWindow?.endMs ?? 'none'}`;
    if (windowKey !== this.lastWindowKey) {
      out.push({ topic: this.topics.window, payload: windowPayload(s) });
      this.lastWindowKey = windowKey;
    }
    const status = statusPayload(s, this.startedAtMs);
    if (status !== this.lastStatus) {
      out.push({ topic: this.topics.status, payload: status });
      this.lastStatus = status;
    }
    const balance = balancePayload(s);
    if (balance !== null && balance !== this.lastBalance) {
      out.push({ topic: this.topics.balance, payload: balance });
      this.lastBalance = balance;
    }
    // Updates come on the meter's own ticks (windows, a 5 s heartbeat): 10 % slack keeps a
    // 5 s interval from slipping to 10 s when a tick lands a few ms early.
    if (nowMs - this.lastPowerMs >= this.powerIntervalMs * 0.9) {
      out.push({ topic: this.topics.power, payload: powerPayload(s) });
      this.lastPowerMs = nowMs;
    }
    return out;
  }

  /** Everything, now (after a (re)connect, or when Home Assistant restarts). */
  all(s: MeterState, nowMs: number): OutMessage[] {
    this.lastWindowKey = null;
    this.lastStatus = null;
    this.lastBalance = null;
    this.lastPowerMs = -Infinity;
    return this.next(s, nowMs);
  }
}
