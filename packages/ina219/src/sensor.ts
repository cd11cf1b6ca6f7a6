import { openI2cBus, type I2cBus } from './bus.js';
import { realSleep, systemClock, type MonotonicClock, type Sleep } from './clock.js';
import { Ina219 } from './driver.js';
import { Ina219Emulator } from './emulator.js';
import { parseSimLoad, type LoadModel } from './loads.js';
import type { Ina219Settings } from './settings.js';

export interface SensorOptions {
  kind: 'ina219' | 'sim';
  i2cBus?: number;
  settings?: Partial<Ina219Settings>;
  /** Simulated-load spec (parseSimLoad) or a ready load model (sim only). */
  simLoad?: string | LoadModel;
  seed?: number;
  clock?: MonotonicClock;
  sleep?: Sleep;
  log?: (line: string) => void;
}

export interface Sensor {
  driver: Ina219;
  emulator: Ina219Emulator | null;
  close(): Promise<void>;
}

/**
 * One entry point for both worlds: the real i2c-bus device or the emulator, behind the same
 * driver. Simulation runs on the same (real, monotonic) clock as the sampler.
 */
/** The simulated chip only looks at the present: its demo schedule keeps ten minutes (bounded memory). */
const SIM_HISTORY_MS = 10 * 60_000;

export async function createSensor(opts: SensorOptions): Promise<Sensor> {
  const clock = opts.clock ?? systemClock;
  const sleep = opts.sleep ?? realSleep;
  let bus: I2cBus;
  let emulator: Ina219Emulator | null = null;
  let close = async (): Promise<void> => {};
  if (opts.kind === 'sim') {
    const load =
      typeof opts.simLoad === 'object'
        ? opts.simLoad
        : parseSimLoad(opts.simLoad ?? 'demo', { seed: opts.seed, startMs: clock.nowMs(), historyMs: SIM_HISTORY_MS });
    emulator = new Ina219Emulator({
      clock,
      load,
      address: opts.settings?.address ?? 0x40,
      shuntOhms: opts.settings?.shuntOhms ?? 0.1,
      seed: opts.seed,
    });
    bus = emulator;
  } else {
    const real = await openI2cBus(opts.i2cBus ?? 1);
    bus = real;
    close = () => real.close();
  }
  const driver = new Ina219(bus, opts.settings, { sleep, log: opts.log });
  return { driver, emulator, close };
}
