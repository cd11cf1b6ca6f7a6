import type { MeterState } from '@power-meter/meter-files';
import type { MeterTopics } from './topics.js';

/**
 * State messages, pure: what to publish for a state.json update, and when. Window figures and
 * totals go out once per window; live power at most every `powerIntervalMs` (a Home Assistant
 * recorder stores every state change: twice a second would bloat its database for nothing);
 * publishing and sensor state whenever they change. All are retained, so Home Assistant has the
 * latest values as soon as it subscribes (after its own restart too).
 */
export interface OutMessage {
  topic: string;
  payload: string;
}

export function powerPayload(s: MeterState): string {
  return JSON.stringify({ powerW: s.powerW, updatedAtMs: s.updatedAtMs });
}

/** The energy total is the meter's stored total: it never decreases, across restarts too. */
export function windowPayload(s: MeterState): string {
  const w = s.lastWindow;
  return JSON.stringify({
    energyTotalWh: s.energyTotalWh,
    avgPowerW: w?.avgPowerW ?? null,
    energyWh: w?.energyWh ?? null,
    minPowerW: w?.minPowerW ?? null,
    maxPowerW: w?.maxPowerW ?? null,
    observedPercent: w ? Number((w.observedFraction * 100).toFixed(2)) : null,
    complete: w?.complete ?? null,
    startMs: w?.startMs ?? null,
    endMs: w?.endMs ?? null,
    tokensPerH: s.rewards.tokensPerH,
    rewardsTotal: s.rewards.total,
  });
}

export function statusPayload(s: MeterState): string {
  const p = s.publishing;
  return JSON.stringify({
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

/** Decides which messages a state update produces; remembers what was sent. */
export class StatePlanner {
  private lastWindowKey: string | null = null;
  private lastStatus: string | null = null;
  private lastPowerMs = -Infinity;

  constructor(
    private readonly topics: MeterTopics,
    private readonly powerIntervalMs: number,
  ) {}

  /** Messages due for this update. */
  next(s: MeterState, nowMs: number): OutMessage[] {
    const out: OutMessage[] = [];
    const windowKey = `${s.lastWindow?.endMs ?? 'none'}`;
    if (windowKey !== this.lastWindowKey) {
      out.push({ topic: this.topics.window, payload: windowPayload(s) });
      this.lastWindowKey = windowKey;
    }
    const status = statusPayload(s);
    if (status !== this.lastStatus) {
      out.push({ topic: this.topics.status, payload: status });
      this.lastStatus = status;
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
    this.lastPowerMs = -Infinity;
    return this.next(s, nowMs);
  }
}
