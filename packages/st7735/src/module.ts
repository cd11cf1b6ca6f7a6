import { St7735, type St7735Options } from './driver.js';
import { EmulatedSt7735 } from './emulator.js';
import { openGpioLine, type GpioBackend } from './gpio.js';
import type { GpioLine } from './interfaces.js';
import { MAX_COMMAND_HZ, type ModuleVariant, type Rotation } from './protocol.js';
import { openSpi } from './spi.js';

/**
 * The real module needs the name it holds its GPIO lines under (`gpioConsumer`, what gpioinfo
 * shows: the program's name); the emulated one has no lines.
 */
export type ModuleOptions = ModuleSettings & ({ kind: 'emulated' } | { kind: 'st7735'; gpioConsumer: string });

export interface ModuleSettings {
  variant: ModuleVariant;
  rotation: Rotation;
  spiBus?: number;
  spiDevice?: number;
  /** BCM numbers (docs/hardware.md defaults: D/C 25, RESET 24). */
  dcPin?: number;
  resetPin?: number;
  /** SPI clock for pixel data (St7735Options.speedHz); the bus is opened at this speed. */
  speedHz?: number;
  commandSpeedHz?: number;
  /** Module geometry/colour overrides; the emulated glass gets the same ones. */
  colOffset?: number;
  rowOffset?: number;
  bgr?: boolean;
  invert?: boolean;
  /** GPIO backend for D/C and RESET (default auto: sysfs, else gpioset). */
  gpio?: GpioBackend;
  /** Root for /sys (tests). */
  gpioRoot?: string;
}

export interface St7735Module {
  device: St7735;
  emulator: EmulatedSt7735 | null;
  close(): Promise<void>;
}

/** The real module on SPI + GPIO, or the same driver on the emulated module. Both are initialised. */
export async function openModule(opts: ModuleOptions): Promise<St7735Module> {
  const driverOpts: St7735Options = {
    variant: opts.variant,
    rotation: opts.rotation,
    speedHz: opts.speedHz,
    commandSpeedHz: opts.commandSpeedHz,
    colOffset: opts.colOffset,
    rowOffset: opts.rowOffset,
    bgr: opts.bgr,
    invert: opts.invert,
  };
  if (opts.kind === 'emulated') {
    // The glass is the module as it is (the variant); the overrides describe that module, so
    // the emulated glass takes them too, otherwise "png" would show a module nobody has.
    const emulator = new EmulatedSt7735({
      variant: opts.variant,
      colOffset: opts.colOffset,
      rowOffset: opts.rowOffset,
      bgr: opts.bgr,
      invert: opts.invert,
    });
    // The emulator has no timing: skip the init delays.
    const device = new St7735(emulator.spi, emulator.dc, emulator.reset, { ...driverOpts, sleep: async () => {} });
    await device.init();
    return { device, emulator, close: () => device.close() };
  }
  const spi = await openSpi(opts.spiBus ?? 0, opts.spiDevice ?? 0, Math.max(opts.speedHz ?? 24_000_000, MAX_COMMAND_HZ));
  const lines: GpioLine[] = [];
  try {
    lines.push(await openGpioLine(opts.dcPin ?? 25, { root: opts.gpioRoot, backend: opts.gpio, initial: 0, consumer: opts.gpioConsumer }));
    lines.push(
      await openGpioLine(opts.resetPin ?? 24, { root: opts.gpioRoot, backend: opts.gpio, initial: 1, consumer: opts.gpioConsumer }),
    );
  } catch (err) {
    for (const l of lines) await l.close?.();
    await spi.close();
    throw err;
  }
  const device = new St7735(spi, lines[0]!, lines[1]!, driverOpts);
  const close = async (): Promise<void> => {
    await device.close();
    for (const l of lines) await l.close?.();
    await spi.close();
  };
  try {
    await device.init();
  } catch (err) {
    await close();
    throw err;
  }
  return { device, emulator: null, close };
}
