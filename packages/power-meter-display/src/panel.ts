import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { openModule } from '@power-meter/st7735';
import type { FramePanel } from './controller.js';
import { savePng } from './png.js';
import type { DisplaySettings } from './settings.js';

/** The name gpioinfo shows as the holder of the D/C and RESET lines. */
const PROGRAM = 'power-meter-display';

/**
 * The panel the display draws on (`--panel`): the ST7735 module on SPI + GPIO, or (`--panel png`)
 * the very same driver talking to the emulated module, whose glass is saved as a PNG after every
 * update, so the png path exercises the whole stack. `--panel emulated` saves nothing: the default path
 * (driver, frame diffing, SPI traffic) without the SPI hardware, for the memory benchmark.
 */
export async function openPanel(s: DisplaySettings): Promise<FramePanel & { pngFile: string | null }> {
  const st7735 = await openModule({
    ...(s.panel === 'st7735' ? { kind: 'st7735', gpioConsumer: PROGRAM } : { kind: 'emulated' }),
    variant: s.variant,
    rotation: s.rotation,
    spiBus: s.spiBus,
    spiDevice: s.spiDevice,
    dcPin: s.dcPin,
    resetPin: s.resetPin,
    speedHz: s.speedHz,
    gpio: s.gpio,
    colOffset: s.colOffset ?? undefined,
    rowOffset: s.rowOffset ?? undefined,
    bgr: s.bgr ?? undefined,
    invert: s.invert ?? undefined,
  });
  const { device, emulator } = st7735;
  const png = s.panel === 'png' && emulator ? emulator : null;
  if (png) mkdirSync(dirname(s.png), { recursive: true });
  return {
    width: device.width,
    height: device.height,
    pngFile: png ? s.png : null,
    writeRegion: (x, y, w, h, px) => device.writeRegion(x, y, w, h, px),
    afterUpdate: png ? () => savePng(s.png, png.view(s.rotation)) : undefined,
    close: () => st7735.close(),
  };
}
