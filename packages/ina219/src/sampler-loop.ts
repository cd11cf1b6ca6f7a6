import { realSleep, type MonotonicClock, type Sleep } from './clock.js';
import type { ConversionDriver } from './device.js';
import type { Log } from './log.js';
import { I2cError } from './errors.js';
import type { WindowResult } from './window.js';

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

/** What both samplers' window accumulators do for the loop they share. */
export interface LoopAccumulator {
  closeUntil(nowMs: number): WindowResult[];
  markFault(reason: string): void;
}

/**
 * What the two samplers (conversion polling, sampler.ts; energy accumulator, energy-sampler.ts)
 * share: the loop with its fault state (a bus error is a fault that closes the windows it spans
 * and is retried every `faultRetryMs`; anything else stops the loop for good, said at error level),
 * the recovery, and the pause that stop() cuts short. A subclass measures: `step()` reads the
 * chip, `afterInit()` re-anchors after the chip was (re)configured.
 */
export abstract class SamplerLoop<D extends ConversionDriver, A extends LoopAccumulator> {
  protected running = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  protected last: LatestReading | null = null;
  protected sensor: SensorState = { state: 'ok', reason: null };
  protected acc: A | null = null;

  constructor(protected readonly opts: SamplerOptions<D>) {}

  /** The accumulator for windows starting at `nowMs`. */
  protected abstract newAccumulator(nowMs: number): A;
  /** One measuring step; a bus error it throws is a fault. */
  protected abstract step(): Promise<void>;
  /** After the chip was configured (start, recovery): re-anchor the phase. */
  protected abstract afterInit(): Promise<void>;
  /** A fault: forget what no longer holds (beyond the latest reading). */
  protected onFault(): void {}

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
      this.acc = this.newAccumulator(clock.nowMs());
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

  private async tryInit(): Promise<void> {
    try {
      await this.opts.driver.init();
      await this.afterInit();
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
    this.onFault();
    this.acc?.markFault(err.message);
    const reason = `${err.message}${this.opts.reasonHint?.(err) ?? ''}`;
    if (this.sensor.reason !== reason) this.opts.log?.warning(`sensor fault: ${reason}${this.opts.faultHint?.(err) ?? ''}`);
    if (this.sensor.state !== 'fault') this.setState({ state: 'fault', reason });
    else this.sensor = { state: 'fault', reason };
  }

  protected setState(s: SensorState): void {
    this.sensor = s;
    this.opts.onState?.(s);
  }

  protected emit(windows: WindowResult[]): void {
    for (const w of windows) this.opts.onWindow(w);
  }

  protected async pause(ms: number): Promise<void> {
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
