import {
  ChipMismatchError,
  NO_CALIBRATION,
  calibrateReading,
  createSampler,
  createSensor,
  realSleep,
  systemClock,
  type Calibration,
  type LatestReading,
  type MeasuringSampler,
  type SamplerOptions,
  type Sensor,
  type SensorOptions,
  type SensorState,
  type WindowResult,
} from '@power-meter/ina219';
import type { Log } from '@power-meter/service';
import { sensorSettingHint, sensorSystemFix } from '../hints.js';
import type { BackendSettings } from '../settings.js';

/** Makes the sensor (MeterOptions.createSensor; default the library's `createSensor`). */
export type SensorFactory = (opts: SensorOptions) => Promise<Sensor>;
/** Makes the sampler (MeterOptions.createSampler; default the library's `createSampler`). */
export type SamplerFactory = (opts: SamplerOptions) => MeasuringSampler;

export interface SensorRunnerOptions {
  settings: BackendSettings;
  log: (line: string) => void;
  /** What the sensor library (driver and sampler) logs through (see MeterOptions.logger). */
  libraryLog: Log;
  warn: (line: string) => void;
  /** Applied to every reading shown (windows are calibrated where they are signed). */
  calibration: Calibration;
  createSensor?: SensorFactory;
  createSampler?: SamplerFactory;
  /** A measured window (see Meter.onWindow: it must never throw for a fault of its own). */
  onWindow: (w: WindowResult) => void;
  /** A reading came at least `--power-interval` after the last check: live power may have changed. */
  onPowerCheck: () => void;
  /** The sensor's state changed (state.json shows it). */
  changed: () => void;
  /** The sampler's loop ended for good (a chip that is not the configured one is `onWrongChip`'s). */
  onStopped: (reason: string) => void;
  /** See MeterOptions.onWrongChip; without it a wrong chip is `onStopped`. */
  onWrongChip?: (err: ChipMismatchError) => void;
  /** The meter is stopping: no retry is started. */
  stopped: () => boolean;
}

/**
 * The sensor and its sampler: opening the sensor (a missing bus or a permission problem is a
 * fault shown on the screen and retried every 10 s, never an exit), the sampler's loop, the
 * sensor's state, and the latest reading with the calibration applied. Apart from the meter
 * because it is the hardware side: the rest of the meter only sees windows and a state.
 */
export class SensorRunner {
  private sensor: Sensor | null = null;
  private sampler: MeasuringSampler | null = null;
  private sensorState: SensorState = { state: 'ok', reason: null };
  /** Monotonic ms (the sampler's clock) of the last live-power check. */
  private lastPowerCheckMs = -Infinity;
  private retry: NodeJS.Timeout | null = null;
  private readonly warn: (line: string) => void;

  constructor(private readonly opts: SensorRunnerOptions) {
    this.warn = opts.warn;
  }

  /** The sensor's state (a fault while it cannot be opened, else the sampler's). */
  get state(): SensorState {
    return this.sensorState;
  }

  /** Opens the sensor and starts sampling; on failure shows the fault and tries again in 10 s. */
  async open(): Promise<void> {
    const { settings: s, log } = this.opts;
    try {
      this.sensor = await (this.opts.createSensor ?? createSensor)({
        kind: s.sensor,
        simChip: s.simChip,
        i2cBus: s.i2cBus,
        settings: { address: s.i2cAddress, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA },
        simLoad: s.simLoad,
        log: this.opts.libraryLog,
      });
    } catch (err) {
      // A missing bus or permission problem: show it (state.json -> the screen) and retry.
      const reason = `${err instanceof Error ? err.message : String(err)}${sensorSystemFix(err)}`;
      if (this.sensorState.reason !== reason) this.warn(`sensor fault: ${reason}${sensorSettingHint(err)}`);
      this.sensorState = { state: 'fault', reason };
      this.opts.changed();
      if (!this.opts.stopped()) this.retry = setTimeout(() => void this.open(), 10_000);
      return;
    }
    this.sampler = (this.opts.createSampler ?? createSampler)({
      driver: this.sensor.driver,
      clock: systemClock,
      sleep: realSleep,
      windowMs: s.window * 1000,
      onWindow: (w) => this.opts.onWindow(w),
      onReading: (r) => {
        // The reading's own monotonic time: no extra clock call per conversion.
        if (r.atMs - this.lastPowerCheckMs < s.powerIntervalMs) return;
        this.lastPowerCheckMs = r.atMs;
        this.opts.onPowerCheck();
      },
      onState: (st) => {
        this.sensorState = st;
        this.opts.changed();
      },
      onStopped: (err) => {
        if (err instanceof ChipMismatchError && this.opts.onWrongChip && !this.opts.stopped()) return this.opts.onWrongChip(err);
        this.opts.onStopped(`sampler stopped: ${err instanceof Error ? err.message : String(err)}`);
      },
      log: this.opts.libraryLog,
      reasonHint: sensorSystemFix,
      faultHint: sensorSettingHint,
    });
    this.sensorState = { state: 'ok', reason: null };
    this.sampler.start();
    const chip = this.sensor.chip;
    log(
      `sensor ${s.sensor}${s.sensor === 'sim' ? ` chip=${s.simChip} load=${s.simLoad}` : ` bus=/dev/i2c-${s.i2cBus} address=0x${s.i2cAddress.toString(16)}`} ${chip.name} shunt_ohms=${this.sensor.driver.chip.internalShuntOhms ?? s.shuntOhms} max_current_a=${s.maxCurrentA} ${chip.energyAccumulator ? "energy from the chip's accumulator" : `a result every ${this.sensor.driver.cycleMs.toFixed(1)} ms`} window_s=${s.window}`,
    );
  }

  /** The sampler's latest reading with the calibration applied. */
  latestReading(): LatestReading | null {
    const latest = this.sampler?.latest() ?? null;
    return latest === null || this.opts.calibration === NO_CALIBRATION ? latest : calibrateReading(latest, this.opts.calibration);
  }

  /** Stops the retries and the sampler (its last window is delivered first). */
  async stopSampling(): Promise<void> {
    if (this.retry !== null) clearTimeout(this.retry);
    await this.sampler?.stop();
  }

  /** Releases the sensor (the bus, or the simulation). */
  async close(): Promise<void> {
    await this.sensor?.close();
  }
}
