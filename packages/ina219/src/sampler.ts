import { realSleep, type MonotonicClock, type Sleep } from './clock.js';
import type { ConversionDriver } from './device.js';
import type { Log } from './log.js';
import { I2cError } from './errors.js';
import { WindowAccumulator, type WindowResult } from './window.js';

export interface LatestReading {
  powerW: number;
  busV: number;
  currentA: number;
  /** Monotonic ms of the conversion's end. */
  atMs: number;
}

export interface SensorState {
  state: 'ok' | 'fault';
  reason: string | null;
}

export interface SamplerOptions<D extends ConversionDriver = ConversionDriver> {
  driver: D;
  clock: MonotonicClock;
  sleep: Sleep;
  windowMs?: number;
  onWindow: (w: WindowResult) => void;
  onReading?: (r: LatestReading) => void;
  onState?: (s: SensorState) => void;
  /**
   * The loop ended for good on an error it cannot classify (not a bus error: a bug, a failing
   * callback). Nothing is measured after this; the program should exit so its supervisor restarts it.
   */
  onStopped?: (err: unknown) => void;
  /** Where the sampler and its driver say what happened, each line at its level. */
  log?: Log;
  /**
   * Appended to a fault's reason, in the state (state.json, the screen) and the log: the
   * application's words for the fix (this library names no command).
   */
  reasonHint?: (err: I2cError) => string;
  /** Appended to the logged fault only: the application's hint (which of its settings helps). */
  faultHint?: (err: I2cError) => string;
  /** Read the configuration back every N conversions to detect a chip reset (default 15: ~1 s on the INA219). */
  resetCheckEvery?: number;
  /**
   * How long after the expected end of a conversion to read it (default 2 ms: Node's timers fire
   * up to ~1.25 ms early, measured on Node 20, and an early read finds no conversion and polls).
   */
  readMarginMs?: number;
  /** Pause between recovery attempts while the sensor is silent. */
  faultRetryMs?: number;
}

/**
 * Gap-free sampler. The chip converts continuously (shunt then bus); the sampler sleeps until
 * the next conversion should be complete, confirms it with CNVR, and reads it once. Each
 * conversion's power stands for its whole cycle, so consecutive conversions tile the time line
 * and the window's energy integral covers ~99 % of the time instead of the original firmware's
 * ~14 %. Windows are timed on the monotonic clock only.
 */
export class Sampler {
  private running = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private last: LatestReading | null = null;
  private sensor: SensorState = { state: 'ok', reason: null };
  private readonly cycleMs: number;
  private readonly share: number;
  private readonly windowMs: number;
  private phaseStartMs = 0;
  private coveredUntilMs = 0;
  private acc: WindowAccumulator | null = null;
  private sinceCheck = 0;
  /** Conversions read since start (for benchmarks and diagnostics). */
  readings = 0;
  missedConversions = 0;

  constructor(private readonly opts: SamplerOptions) {
    this.cycleMs = opts.driver.cycleMs;
    this.share = opts.driver.observedShare;
    this.windowMs = opts.windowMs ?? 5000;
  }

  latest(): LatestReading | null {
    return this.last;
  }

  state(): SensorState {
    return this.sensor;
  }

  /** Runs in the background until stop(). */
  start(): void {
    this.loop = this.runUntil(Infinity).catch((err) => {
      // Never stop silently: the state says so, and the screen with it.
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

  /** Runs until the clock reaches `untilMs` (virtual-time tests) or stop() is called. */
  async runUntil(untilMs: number): Promise<void> {
    this.running = true;
    const { clock } = this.opts;
    if (this.acc === null) {
      this.acc = new WindowAccumulator(clock.nowMs(), this.windowMs);
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

  private async step(): Promise<void> {
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

  private async tryInit(): Promise<void> {
    try {
      await this.opts.driver.init();
      this.restartPhase();
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
      // One timer and one promise per cycle; stop() cuts it short.
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
