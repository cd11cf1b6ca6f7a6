import type { ConversionDriver } from './device.js';
import { SamplerLoop, type SamplerOptions } from './sampler-loop.js';
import { WindowAccumulator } from './window.js';

export type { LatestReading, SamplerOptions, SensorState } from './sampler-loop.js';

/**
 * Gap-free sampler. The chip converts continuously (shunt then bus); the sampler sleeps until
 * the next conversion should be complete, confirms it with CNVR, and reads it once. Each
 * conversion's power stands for its whole cycle, so consecutive conversions tile the time line
 * and the window's energy integral covers ~99 % of the time instead of the original firmware's
 * ~14 %. Windows are timed on the monotonic clock only.
 */
export class Sampler extends SamplerLoop<ConversionDriver, WindowAccumulator> {
  private readonly cycleMs: number;
  private readonly share: number;
  private readonly windowMs: number;
  private phaseStartMs = 0;
  private coveredUntilMs = 0;
  private sinceCheck = 0;
  /** Conversions read since start (for benchmarks and diagnostics). */
  readings = 0;
  missedConversions = 0;

  constructor(opts: SamplerOptions) {
    super(opts);
    this.cycleMs = opts.driver.cycleMs;
    this.share = opts.driver.observedShare;
    this.windowMs = opts.windowMs ?? 5000;
  }

  protected newAccumulator(nowMs: number): WindowAccumulator {
    return new WindowAccumulator(nowMs, this.windowMs);
  }

  protected async afterInit(): Promise<void> {
    this.restartPhase();
  }

  protected async step(): Promise<void> {
    const { clock, driver } = this.opts;
    const now = clock.nowMs();
    const k = Math.floor((now - this.phaseStartMs) / this.cycleMs + 1e-9) + 1;
    const expectedEnd = this.phaseStartMs + k * this.cycleMs;
    await this.pause(expectedEnd + (this.opts.readMarginMs ?? 2) - now);
    if (!this.running) return;

    if (++this.sinceCheck >= (this.opts.resetCheckEvery ?? 15)) {
      this.sinceCheck = 0;
      if (await driver.checkReset()) {
        this.restartPhase();
        return;
      }
    }
    let r = await driver.read();
    // The chip's oscillator may run a little slow: poll CNVR briefly and re-anchor the phase.
    for (let polls = 0; !r.ready && polls < 20 && this.running; polls++) {
      const notReadyAtMs = clock.nowMs();
      await this.pause(0.5);
      r = await driver.read();
      // The conversion ended between these two reads. Anchor near the first: a poll that woke
      // late on a busy loop would otherwise set the phase that late, and every later read with
      // it, leaving too little slack before the next conversion replaces the one to read.
      if (r.ready) this.phaseStartMs = Math.min(clock.nowMs(), notReadyAtMs + 1) - k * this.cycleMs;
    }
    if (!r.ready) return; // no conversion finished: nothing to account for yet
    const t = clock.nowMs();
    // End of the conversion just read: the latest cycle boundary not after now (the epsilon keeps
    // a phase anchored on this very moment from rounding down to the boundary before).
    let end = this.phaseStartMs + Math.floor((t - this.phaseStartMs) / this.cycleMs + 1e-9) * this.cycleMs;
    if (end <= this.coveredUntilMs + 1e-6) {
      // A fresh conversion where the phase says none has ended since the last one read: the chip
      // is ahead of the phase (a timer that fired early, an anchor taken late on a busy loop).
      // It ended by now, so re-anchor on now. Dropping it instead lost the conversion, and the
      // next read found nothing and polled CNVR for 20 ms.
      this.phaseStartMs -= this.coveredUntilMs + this.cycleMs - t;
      end = t;
    }
    if (r.rangeChanged) {
      this.acc!.markOutOfRange();
      this.restartPhase();
      return;
    }
    if (r.outOfRange) {
      this.acc!.markOutOfRange();
      this.coveredUntilMs = end;
      return;
    }
    const begin = end - this.cycleMs;
    if (begin > this.coveredUntilMs + 1e-6) this.missedConversions += Math.round((begin - this.coveredUntilMs) / this.cycleMs);
    const t0 = Math.max(begin, this.coveredUntilMs);
    this.coveredUntilMs = end;
    this.readings++;
    if (this.sensor.state !== 'ok') this.setState({ state: 'ok', reason: null });
    this.last = { powerW: r.powerW, busV: r.busV, currentA: r.currentA, atMs: end };
    this.opts.onReading?.(this.last);
    if (end > t0)
      this.emit(this.acc!.add({ t0Ms: t0, t1Ms: end, powerW: r.powerW, busV: r.busV, currentA: r.currentA, observedShare: this.share }));
  }

  private restartPhase(): void {
    // Writing the configuration restarts the conversion sequence: the next result is one cycle away.
    const now = this.opts.clock.nowMs();
    this.phaseStartMs = now;
    this.coveredUntilMs = now;
  }
}
