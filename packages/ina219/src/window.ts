/**
 * Pure window arithmetic: pieces of observed power (each a conversion's average power over its
 * time span) are accumulated into windows on the monotonic clock. Window boundaries snap to the
 * nearest conversion boundary (at most half a cycle, 34 ms, from the nominal 5 s grid, with no
 * drift): a conversion is never split, because its average says nothing about *when* inside it
 * the load switched. Energy is therefore exact per conversion, and nothing is counted twice.
 */
export interface WindowResult {
  /** Monotonic ms. */
  startMs: number;
  endMs: number;
  /** Time-weighted mean power over the observed parts of the window; null when nothing was read. */
  avgPowerW: number | null;
  /** avgPowerW x window length. */
  energyWh: number;
  minPowerW: number | null;
  maxPowerW: number | null;
  /** Conversions that contributed. */
  readings: number;
  /** Fraction of the window covered by shunt conversions (0..1). */
  observedFraction: number;
  /** Readings discarded because the shunt clipped or the range changed. */
  outOfRange: number;
  /** False when the sensor was faulty during part of the window. */
  complete: boolean;
  faultReason: string | null;
  /** Mean bus voltage and current over the observed parts. */
  busV: number | null;
  currentA: number | null;
}

export interface Piece {
  t0Ms: number;
  t1Ms: number;
  powerW: number;
  busV: number;
  currentA: number;
  /** Share of the piece actually observed by the ADC (t_shunt / cycle). */
  observedShare: number;
}

export class WindowAccumulator {
  private startMs: number;
  /** Where the current window should end on the fixed grid. */
  private nominalEndMs: number;
  private sumWms = 0;
  private sumMs = 0;
  private sumVms = 0;
  private sumAms = 0;
  private observedMs = 0;
  private min = Infinity;
  private max = -Infinity;
  private readings = 0;
  private outOfRange = 0;
  private faultReason: string | null = null;

  constructor(
    startMs: number,
    readonly windowMs: number,
  ) {
    this.startMs = startMs;
    this.nominalEndMs = startMs + windowMs;
  }

  get endMs(): number {
    return this.nominalEndMs;
  }

  markOutOfRange(): void {
    this.outOfRange++;
  }

  markFault(reason: string): void {
    this.faultReason = reason;
  }

  /** Adds a piece; returns the windows it completed (usually none, sometimes one). */
  add(piece: Piece): WindowResult[] {
    const done: WindowResult[] = [];
    // Close every window whose nominal end lies before the middle of this piece.
    while ((piece.t0Ms + piece.t1Ms) / 2 > this.nominalEndMs)
      done.push(this.close(Math.max(this.startMs, Math.min(piece.t0Ms, this.nominalEndMs + this.windowMs))));
    this.accumulate(piece);
    if (piece.t1Ms >= this.nominalEndMs) done.push(this.close(piece.t1Ms));
    return done;
  }

  /** Closes every window that ended before `nowMs` (used while the sensor is silent). */
  closeUntil(nowMs: number): WindowResult[] {
    const done: WindowResult[] = [];
    while (nowMs >= this.nominalEndMs) done.push(this.close(this.nominalEndMs));
    return done;
  }

  private accumulate(p: Piece): void {
    const dt = p.t1Ms - p.t0Ms;
    this.sumWms += p.powerW * dt;
    this.sumVms += p.busV * dt;
    this.sumAms += p.currentA * dt;
    this.sumMs += dt;
    this.observedMs += dt * p.observedShare;
    this.min = Math.min(this.min, p.powerW);
    this.max = Math.max(this.max, p.powerW);
    this.readings++;
  }

  private close(endMs: number): WindowResult {
    const has = this.sumMs > 0;
    const avg = has ? this.sumWms / this.sumMs : null;
    const lengthMs = endMs - this.startMs;
    const result: WindowResult = {
      startMs: this.startMs,
      endMs,
      avgPowerW: avg,
      // Parts of the window no conversion covered (a fault, a missed read) count at the average.
      energyWh: avg === null ? 0 : (avg * lengthMs) / 3_600_000,
      minPowerW: has ? this.min : null,
      maxPowerW: has ? this.max : null,
      readings: this.readings,
      observedFraction: lengthMs > 0 ? Math.min(1, this.observedMs / lengthMs) : 0,
      outOfRange: this.outOfRange,
      complete: this.faultReason === null && has,
      faultReason: this.faultReason,
      busV: has ? this.sumVms / this.sumMs : null,
      currentA: has ? this.sumAms / this.sumMs : null,
    };
    this.startMs = endMs;
    this.nominalEndMs += this.windowMs;
    this.sumWms = this.sumMs = this.sumVms = this.sumAms = this.observedMs = 0;
    this.min = Infinity;
    this.max = -Infinity;
    this.readings = this.outOfRange = 0;
    this.faultReason = null;
    return result;
  }
}
