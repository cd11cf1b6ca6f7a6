import type { WindowResult } from './window.js';

/**
 * Pure window arithmetic for a chip that integrates energy itself (INA228). A window's energy is
 * the difference of two accumulator reads taken on conversion-cycle boundaries: every cycle's
 * energy lands in exactly one window, however late the host reads, so the windows are gap-free
 * by construction. The averaged results read in between (each a block of cycles with its mean
 * power) give the live power, min/max, bus voltage and current, and stand in for the accumulator
 * where it cannot be trusted (after a chip reset or a sensor fault): the accumulator's span
 * supersedes the result spans that cover the same time. Parts of a window that neither covers
 * count at the window's average, as in window.ts.
 */
export interface EnergySpan {
  t0Ms: number;
  t1Ms: number;
  energyJ: number;
  /** Share of the span the shunt ADC integrated (t_shunt / cycle). */
  share: number;
  kind: 'accumulator' | 'result';
}

function clip(s: EnergySpan, a: number, b: number): EnergySpan | null {
  const t0 = Math.max(s.t0Ms, a);
  const t1 = Math.min(s.t1Ms, b);
  if (t1 <= t0) return null;
  const whole = s.t1Ms - s.t0Ms;
  return { ...s, t0Ms: t0, t1Ms: t1, energyJ: whole > 0 ? (s.energyJ * (t1 - t0)) / whole : 0 };
}

export class EnergyWindowAccumulator {
  private startMs: number;
  private nominalEndMs: number;
  private spans: EnergySpan[] = [];
  private min = Infinity;
  private max = -Infinity;
  private sumVms = 0;
  private sumAms = 0;
  private sumResultMs = 0;
  private outOfRange = 0;
  private faultReason: string | null = null;

  constructor(
    startMs: number,
    readonly windowMs: number,
    /** One conversion cycle, ms: a window's `readings` counts the cycles behind its energy. */
    private readonly cycleMs: number,
  ) {
    this.startMs = startMs;
    this.nominalEndMs = startMs + windowMs;
  }

  /** Where the current window should end on the fixed grid. */
  get endMs(): number {
    return this.nominalEndMs;
  }

  get windowStartMs(): number {
    return this.startMs;
  }

  markOutOfRange(): void {
    this.outOfRange++;
  }

  markFault(reason: string): void {
    this.faultReason = reason;
  }

  /** An averaged result: its block's mean power over [t0, t1], with the bus voltage and current. */
  addResult(t0Ms: number, t1Ms: number, r: { powerW: number; busV: number; currentA: number }, share: number): void {
    const dt = t1Ms - t0Ms;
    if (dt <= 0) return;
    this.spans.push({ t0Ms, t1Ms, energyJ: (r.powerW * dt) / 1000, share, kind: 'result' });
    this.min = Math.min(this.min, r.powerW);
    this.max = Math.max(this.max, r.powerW);
    this.sumVms += r.busV * dt;
    this.sumAms += r.currentA * dt;
    this.sumResultMs += dt;
  }

  /** The accumulator's count for [t0, t1]: exact, so it replaces whatever results estimated there. */
  addAccumulated(t0Ms: number, t1Ms: number, energyJ: number, share: number): void {
    if (t1Ms <= t0Ms) return;
    const kept: EnergySpan[] = [];
    for (const s of this.spans) {
      if (s.kind === 'accumulator' || s.t1Ms <= t0Ms || s.t0Ms >= t1Ms) {
        kept.push(s);
        continue;
      }
      const before = clip(s, -Infinity, t0Ms);
      const after = clip(s, t1Ms, Infinity);
      if (before) kept.push(before);
      if (after) kept.push(after);
    }
    kept.push({ t0Ms, t1Ms, energyJ, share, kind: 'accumulator' });
    this.spans = kept;
  }

  /** Closes the current window at `endMs` (a cycle boundary near the grid); the next starts there. */
  closeAt(endMs: number): WindowResult {
    const inside: EnergySpan[] = [];
    const carry: EnergySpan[] = [];
    for (const s of this.spans) {
      const a = clip(s, this.startMs, endMs);
      const b = clip(s, endMs, Infinity);
      if (a) inside.push(a);
      if (b) carry.push(b);
    }
    let coveredMs = 0;
    let energyJ = 0;
    let observedMs = 0;
    for (const s of inside) {
      const dt = s.t1Ms - s.t0Ms;
      coveredMs += dt;
      energyJ += s.energyJ;
      observedMs += dt * s.share;
    }
    const lengthMs = endMs - this.startMs;
    const has = coveredMs > 0;
    const avg = has ? energyJ / (coveredMs / 1000) : null;
    const hasResults = this.sumResultMs > 0;
    const result: WindowResult = {
      startMs: this.startMs,
      endMs,
      avgPowerW: avg,
      // Fully covered: exactly the accumulated joules; otherwise the uncovered part at the average.
      energyWh: avg === null ? 0 : coveredMs >= lengthMs ? energyJ / 3600 : (avg * lengthMs) / 3_600_000,
      minPowerW: hasResults ? this.min : avg,
      maxPowerW: hasResults ? this.max : avg,
      readings: Math.round(coveredMs / this.cycleMs),
      observedFraction: lengthMs > 0 ? Math.min(1, observedMs / lengthMs) : 0,
      outOfRange: this.outOfRange,
      complete: this.faultReason === null && has,
      faultReason: this.faultReason,
      busV: hasResults ? this.sumVms / this.sumResultMs : null,
      currentA: hasResults ? this.sumAms / this.sumResultMs : null,
    };
    this.startMs = endMs;
    // The grid never drifts: the next nominal end is the first one at least half a window away
    // (a read that came more than half a window late makes one longer window, never a sliver).
    do this.nominalEndMs += this.windowMs;
    while (this.nominalEndMs - endMs < this.windowMs / 2);
    this.spans = carry;
    this.min = Infinity;
    this.max = -Infinity;
    this.sumVms = this.sumAms = this.sumResultMs = 0;
    this.outOfRange = 0;
    this.faultReason = null;
    return result;
  }

  /** Closes every window whose nominal end has passed (while the sensor is silent). */
  closeUntil(nowMs: number): WindowResult[] {
    const done: WindowResult[] = [];
    while (nowMs >= this.nominalEndMs) done.push(this.closeAt(this.nominalEndMs));
    return done;
  }
}
