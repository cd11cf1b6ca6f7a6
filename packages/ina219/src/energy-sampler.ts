import { realSleep } from './clock.js';
import type { AccumulatorDriver } from './device.js';
import { EnergyWindowAccumulator } from './energy-window.js';
import { I2cError } from './errors.js';
import type { LatestReading, SamplerOptions, SensorState } from './sampler.js';
import type { WindowResult } from './window.js';

/**
 * The sampler for a chip with an energy accumulator (INA228). The chip adds each conversion
 * cycle's energy to its ENERGY register, so the host reads that register once per window, right
 * after a cycle boundary near the 5 s grid: the difference of two reads is the window's energy,
 * whole cycles only, never one counted twice or missed, however late the read (a late read makes
 * a longer window, the next one shorter). In between it reads each averaged result (every
 * 533.8 ms by default) for the live power, bus voltage and current, checking the configuration
 * each time: a power-on reset restarts the accumulator with the chip's default calibration, and
 * the window it happens in takes its energy from the power readings before the reset instead
 * (and says so: complete = false).
 *
 * About 2 wake-ups a second instead of the INA219's 15, and 5 register reads per result.
 */
export class EnergySampler {
  private running = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private last: LatestReading | null = null;
  private sensor: SensorState = { state: 'ok', reason: null };
  private readonly windowMs: number;
  private readonly resultMs: number;
  private readonly cycleMs: number;
  /** A result boundary (and so a conversion-cycle boundary) on the monotonic clock. */
  private phaseMs = 0;
  private coveredUntilMs = 0;
  /** The last accumulator read and the cycle boundary it stands for; null until one is trusted. */
  private energy: { raw: number; atMs: number } | null = null;
  private acc: EnergyWindowAccumulator | null = null;
  private readonly driver: AccumulatorDriver;
  /** Averaged results read since start. */
  readings = 0;
  /** Accumulator reads since start (one per window). */
  energyReads = 0;
  missedConversions = 0;
  /** Times the 40-bit energy register wrapped. */
  wraps = 0;

  constructor(private readonly opts: SamplerOptions<AccumulatorDriver>) {
    this.driver = opts.driver;
    this.windowMs = opts.windowMs ?? 5000;
    this.resultMs = opts.driver.cycleMs;
    this.cycleMs = opts.driver.accumulator.cycleMs;
  }

  latest(): LatestReading | null {
    return this.last;
  }

  state(): SensorState {
    return this.sensor;
  }

  start(): void {
    this.loop = this.runUntil(Infinity).catch((err) => {
      const reason = `sampler stopped: ${err instanceof Error ? err.message : String(err)}`;
      this.opts.log?.error(reason);
      this.last = null;
      this.setState({ state: 'fault', reason });
      this.opts.onStopped?.(err);
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  async runUntil(untilMs: number): Promise<void> {
    this.running = true;
    const { clock } = this.opts;
    if (this.acc === null) {
      this.acc = new EnergyWindowAccumulator(clock.nowMs(), this.windowMs, this.cycleMs);
      await this.tryInit();
    }
    while (this.running && clock.nowMs() < untilMs) {
      if (this.sensor.state === 'fault') {
        this.emit(this.acc.closeUntil(clock.nowMs()));
        await this.pause(this.opts.faultRetryMs ?? 1000);
        await this.tryInit();
        continue;
      }
      try {
        await this.step();
      } catch (err) {
        this.fault(err);
      }
    }
    this.running = false;
  }

  private margin(): number {
    return this.opts.readMarginMs ?? 2;
  }

  private async step(): Promise<void> {
    const now = this.opts.clock.nowMs();
    const k = Math.floor((now - this.phaseMs) / this.resultMs + 1e-9) + 1;
    const resultAt = this.phaseMs + k * this.resultMs + this.margin();
    const boundary = this.energy === null ? Infinity : this.windowBoundary(this.energy.atMs);
    const windowAt = boundary + Math.min(this.margin(), this.cycleMs / 2);
    if (windowAt <= resultAt) {
      await this.pause(windowAt - now);
      if (this.running) await this.closeWindow();
    } else {
      await this.pause(resultAt - now);
      if (this.running) await this.readResult(k);
    }
  }

  /** The conversion-cycle boundary nearest the window's place on the grid, after the last read. */
  private windowBoundary(afterMs: number): number {
    const j = Math.round((this.acc!.endMs - this.phaseMs) / this.cycleMs);
    const b = this.phaseMs + j * this.cycleMs;
    return b > afterMs + 1e-6 ? b : afterMs + this.cycleMs;
  }

  /**
   * Reads the energy register and names the cycle boundary its count stands for: the last one
   * before the read started. A read during which another cycle ended is ambiguous and repeated.
   */
  private async readEnergyAtBoundary(): Promise<{ raw: number; atMs: number }> {
    const { clock } = this.opts;
    let raw = 0;
    let atMs = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = clock.nowMs();
      raw = await this.driver.readEnergy();
      const after = clock.nowMs();
      this.energyReads++;
      const j = Math.floor((before - this.phaseMs) / this.cycleMs + 1e-9);
      atMs = this.phaseMs + j * this.cycleMs;
      if (after < atMs + this.cycleMs) break;
    }
    return { raw, atMs };
  }

  private async closeWindow(): Promise<void> {
    const prev = this.energy!;
    const r = await this.readEnergyAtBoundary();
    if (!(await this.driver.configIntact())) {
      await this.onReset();
      return;
    }
    if (r.atMs <= prev.atMs) return;
    const { modulus, energyLsbJ, maxPowerW } = this.driver.accumulator;
    const wrapped = r.raw < prev.raw;
    const counts = wrapped ? r.raw + modulus - prev.raw : r.raw - prev.raw;
    const joules = counts * energyLsbJ;
    const impliedW = joules / ((r.atMs - prev.atMs) / 1000);
    if (impliedW > maxPowerW) {
      // The count went back by far more than a wrap explains: something cleared the accumulator
      // (RSTACC written by another program). The power readings stand in for this window.
      this.opts.log?.info(
        `${this.driver.chip.name} energy register went back from ${prev.raw} to ${r.raw} without a reset of its configuration (cleared by another program?): this window's energy comes from the power readings`,
      );
      this.acc!.markFault(`${this.driver.chip.name} energy register cleared outside the meter`);
    } else {
      if (wrapped) {
        this.wraps++;
        this.opts.log?.info(`${this.driver.chip.name} energy register wrapped past 2^40 (counted across the wrap)`);
      }
      this.acc!.addAccumulated(prev.atMs, r.atMs, joules, this.driver.observedShare);
    }
    this.energy = r;
    this.emit([this.acc!.closeAt(r.atMs)]);
  }

  private async readResult(k: number): Promise<void> {
    const { clock, driver } = this.opts;
    let r = await driver.read();
    for (let polls = 0; !r.ready && polls < 20 && this.running; polls++) {
      const notReadyAtMs = clock.nowMs();
      await this.pause(0.5);
      r = await driver.read();
      if (r.ready) this.phaseMs = Math.min(clock.nowMs(), notReadyAtMs + 1) - k * this.resultMs;
    }
    if (!r.ready) return;
    // A result read from a chip that lost its calibration is not used: check before it counts.
    if (!(await driver.configIntact())) {
      await this.onReset();
      return;
    }
    const t = clock.nowMs();
    let end = this.phaseMs + Math.floor((t - this.phaseMs) / this.resultMs + 1e-9) * this.resultMs;
    if (end <= this.coveredUntilMs + 1e-6) {
      this.phaseMs -= this.coveredUntilMs + this.resultMs - t;
      end = t;
    }
    const begin = end - this.resultMs;
    if (begin > this.coveredUntilMs + 1e-6) this.missedConversions += Math.round((begin - this.coveredUntilMs) / this.resultMs);
    const t0 = Math.max(begin, this.coveredUntilMs);
    this.coveredUntilMs = end;
    if (r.outOfRange) {
      this.acc!.markOutOfRange();
      return;
    }
    this.readings++;
    if (this.sensor.state !== 'ok') this.setState({ state: 'ok', reason: null });
    this.last = { powerW: r.powerW, busV: r.busV, currentA: r.currentA, atMs: end };
    this.opts.onReading?.(this.last);
    this.acc!.addResult(t0, end, r, driver.observedShare);
  }

  /** The chip lost its configuration: re-apply, restart the accumulator, and say so in this window. */
  private async onReset(): Promise<void> {
    const name = this.opts.driver.chip.name;
    await this.opts.driver.checkReset();
    this.acc!.markFault(`${name} reset (power-on or brown-out): this window's energy is estimated from its power readings`);
    this.restartPhase();
    this.energy = await this.readEnergyAtBoundary();
  }

  private restartPhase(): void {
    const now = this.opts.clock.nowMs();
    this.phaseMs = now;
    this.coveredUntilMs = now;
  }

  private async tryInit(): Promise<void> {
    try {
      await this.opts.driver.init();
      this.restartPhase();
      this.energy = await this.readEnergyAtBoundary();
      if (this.sensor.state !== 'ok') {
        this.opts.log?.notice(`${this.opts.driver.chip.name} answers again: sensor recovered`);
        this.setState({ state: 'ok', reason: null });
      }
    } catch (err) {
      this.fault(err);
    }
  }

  private fault(err: unknown): void {
    if (!(err instanceof I2cError)) throw err;
    this.last = null;
    this.energy = null;
    this.acc?.markFault(err.message);
    const reason = `${err.message}${this.opts.reasonHint?.(err) ?? ''}`;
    if (this.sensor.reason !== reason) this.opts.log?.warning(`sensor fault: ${reason}${this.opts.faultHint?.(err) ?? ''}`);
    if (this.sensor.state !== 'fault') this.setState({ state: 'fault', reason });
    else this.sensor = { state: 'fault', reason };
  }

  private setState(s: SensorState): void {
    this.sensor = s;
    this.opts.onState?.(s);
  }

  private emit(windows: WindowResult[]): void {
    for (const w of windows) this.opts.onWindow(w);
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0) return;
    if (this.opts.sleep === realSleep) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
    } else {
      await Promise.race([this.opts.sleep(ms), new Promise<void>((r) => (this.wake = r))]);
    }
    this.wake = null;
  }
}
