import { openI2cBus, type I2cBus } from './bus.js';
import type { Log } from './log.js';
import { CHIPS, type ChipId, type ChipSpec } from './chips/table.js';
import { realSleep, systemClock, type MonotonicClock, type Sleep } from './clock.js';
import { isAccumulatorDriver, type ConversionDriver } from './device.js';
import { Ina219 } from './driver.js';
import { Ina226 } from './drivers/ina226.js';
import { Ina228 } from './drivers/ina228.js';
import { Ina219Emulator } from './emulator.js';
import { EnergySampler } from './energy-sampler.js';
import { Ina226Emulator } from './emulators/ina226.js';
import { Ina228Emulator } from './emulators/ina228.js';
import { parseSimLoad, type LoadModel } from './loads.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import type { Ina219Settings } from './settings.js';

/** The sensor as the meter's settings name it: a chip on the I2C bus, or `sim` (a chip's emulator). */
export type SensorKind = ChipId | 'sim';

export interface SensorOptions {
  kind: SensorKind;
  /** The chip the simulated sensor emulates (default INA219). */
  simChip?: ChipId;
  /**
   * Test hook: the emulator is this chip while the driver expects `simChip` (a wrong setting,
   * as on a board with another chip than configured).
   */
  simEmulatedChip?: ChipId;
  i2cBus?: number;
  /** Address, shunt and expected current (every chip); the INA219's ADC settings too. */
  settings?: Partial<Ina219Settings>;
  /** Simulated-load spec (parseSimLoad) or a ready load model (sim only). */
  simLoad?: string | LoadModel;
  seed?: number;
  clock?: MonotonicClock;
  sleep?: Sleep;
  log?: Log;
}

export type ChipEmulator = Ina219Emulator | Ina226Emulator | Ina228Emulator;

export interface Sensor {
  chip: ChipSpec;
  simulated: boolean;
  driver: ConversionDriver;
  emulator: ChipEmulator | null;
  close(): Promise<void>;
}

/** The simulated chip only looks at the present: its demo schedule keeps ten minutes (bounded memory). */
const SIM_HISTORY_MS = 10 * 60_000;

/** The driver for a chip on a bus (real or emulated). */
export function driverFor(
  chip: ChipSpec,
  bus: I2cBus,
  settings: Partial<Ina219Settings> = {},
  opts: { sleep?: Sleep; log?: Log; attempts?: number } = {},
): ConversionDriver {
  switch (chip.id) {
    case 'ina219':
      return new Ina219(bus, settings, opts);
    case 'ina226':
    case 'ina260':
      return new Ina226(bus, chip, { address: settings.address, shuntOhms: settings.shuntOhms, maxCurrentA: settings.maxCurrentA }, opts);
    case 'ina228':
      return new Ina228(bus, { address: settings.address, shuntOhms: settings.shuntOhms, maxCurrentA: settings.maxCurrentA }, opts);
  }
}

/** A datasheet emulator of the chip, wired like the README shows, drawing the load model's current. */
export function emulatorFor(
  chip: ChipSpec,
  o: { clock: MonotonicClock; load: LoadModel; address?: number; shuntOhms?: number; seed?: number },
): ChipEmulator {
  switch (chip.id) {
    case 'ina219':
      return new Ina219Emulator({
        clock: o.clock,
        load: o.load,
        address: o.address,
        shuntOhms: o.shuntOhms ?? chip.defaults.shuntOhms,
        seed: o.seed,
      });
    case 'ina226':
    case 'ina260':
      return new Ina226Emulator({ chip, clock: o.clock, load: o.load, address: o.address, shuntOhms: o.shuntOhms, seed: o.seed });
    case 'ina228':
      return new Ina228Emulator({ clock: o.clock, load: o.load, address: o.address, shuntOhms: o.shuntOhms, seed: o.seed });
  }
}

/**
 * One entry point for both worlds: the real i2c-bus device or the emulator, behind the same
 * driver. Simulation runs on the same (real, monotonic) clock as the sampler.
 */
export async function createSensor(opts: SensorOptions): Promise<Sensor> {
  const clock = opts.clock ?? systemClock;
  const sleep = opts.sleep ?? realSleep;
  const simulated = opts.kind === 'sim';
  const chip = CHIPS[opts.kind === 'sim' ? (opts.simChip ?? 'ina219') : opts.kind];
  let bus: I2cBus;
  let emulator: ChipEmulator | null = null;
  let close = async (): Promise<void> => {};
  if (simulated) {
    const load =
      typeof opts.simLoad === 'object'
        ? opts.simLoad
        : parseSimLoad(opts.simLoad ?? 'demo', { seed: opts.seed, startMs: clock.nowMs(), historyMs: SIM_HISTORY_MS });
    emulator = emulatorFor(CHIPS[opts.simEmulatedChip ?? chip.id], {
      clock,
      load,
      address: opts.settings?.address ?? 0x40,
      shuntOhms: opts.settings?.shuntOhms,
      seed: opts.seed,
    });
    bus = emulator;
  } else {
    const real = await openI2cBus(opts.i2cBus ?? 1);
    bus = real;
    close = () => real.close();
  }
  const driver = driverFor(chip, bus, opts.settings, { sleep, log: opts.log });
  return { chip, simulated, driver, emulator, close };
}

/** What the meter runs: the conversion sampler, or the energy sampler for a chip with an accumulator. */
export type MeasuringSampler = Sampler | EnergySampler;

export function createSampler(opts: SamplerOptions): MeasuringSampler {
  const driver = opts.driver;
  return isAccumulatorDriver(driver) ? new EnergySampler({ ...opts, driver }) : new Sampler(opts);
}
