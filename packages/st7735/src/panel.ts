import { St7735, type St7735Options } from './driver.js';
import { EmulatedSt7735 } from './emulator.js';
import { openGpioLine } from './gpio.js';
import type { GpioLine } from './interfaces.js';
import { MAX_COMMAND_HZ, type PanelVariant, type Rotation } from './protocol.js';
import { openSpi } from './spi.js';

export interface PanelOptions {
  kind: 'st7735' | 'emulated';
  variant: PanelVariant;
  rotation: Rotation;
  spiBus?: number;
  spiDevice?: number;
  dcPin?: number;
  resetPin?: number;
  pixelSpeedHz?: number;
  /** Root for /sys (tests). */
  gpioRoot?: string;
}

export interface Panel {
  device: St7735;
  emulator: EmulatedSt7735 | null;
  close(): Promise<void>;
}

/** The real module on SPI + GPIO, or the same driver on the emulated panel. Both are initialised. */
export async function createPanel(opts: PanelOptions): Promise<Panel> {
  const driverOpts: St7735Options = { variant: opts.variant, rotation: opts.rotation, pixelSpeedHz: opts.pixelSpeedHz };
  if (opts.kind === 'emulated') {
    const emulator = new EmulatedSt7735(opts.variant);
    // The emulator has no timing: skip the init delays.
    const device = new St7735(emulator.spi, emulator.dc, emulator.reset, { ...driverOpts, sleep: async () => {} });
    await device.init();
    return { device, emulator, close: () => device.close() };
  }
  const spi = await openSpi(opts.spiBus ?? 0, opts.spiDevice ?? 0, Math.max(opts.pixelSpeedHz ?? 24_000_000, MAX_COMMAND_HZ));
  const lines: GpioLine[] = [];
  try {
    lines.push(await openGpioLine(opts.dcPin ?? 25, { root: opts.gpioRoot }));
    lines.push(await openGpioLine(opts.resetPin ?? 24, { root: opts.gpioRoot }));
  } catch (err) {
    await spi.close();
    throw err;
  }
  const device = new St7735(spi, lines[0]!, lines[1]!, driverOpts);
  await device.init();
  return {
    device,
    emulator: null,
    async close() {
      await device.close();
      for (const l of lines) await l.close?.();
      await spi.close();
    },
  };
}
