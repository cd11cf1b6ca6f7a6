import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { createPanel } from '@power-meter/st7735';
import type { FramePanel } from './controller.js';
import { savePng } from './png.js';
import type { DisplaySettings } from './settings.js';

/**
 * The panel behind the display: the ST7735 on SPI + GPIO, or (`--panel png`) the very same
 * driver talking to the emulated panel, whose glass is saved as a PNG after every update, so the
 * png path exercises the whole stack.
 */
export async function openPanel(s: DisplaySettings): Promise<FramePanel & { pngFile: string | null }> {
  const panel = await createPanel({
    kind: s.panel === 'png' ? 'emulated' : 'st7735',
    variant: s.variant,
    rotation: s.rotation,
    spiBus: s.spiBus,
    spiDevice: s.spiDevice,
    dcPin: s.dcPin,
    resetPin: s.resetPin,
    pixelSpeedHz: s.speedHz,
    gpio: s.gpio,
    colOffset: s.colOffset ?? undefined,
    rowOffset: s.rowOffset ?? undefined,
    bgr: s.bgr ?? undefined,
    invert: s.invert ?? undefined,
  });
  const { device, emulator } = panel;
  if (emulator) mkdirSync(dirname(s.png), { recursive: true });
  return {
    width: device.width,
    height: device.height,
    pngFile: emulator ? s.png : null,
    writeRegion: (x, y, w, h, px) => device.writeRegion(x, y, w, h, px),
    afterUpdate: emulator ? () => savePng(s.png, emulator.view(s.rotation)) : undefined,
    close: () => panel.close(),
  };
}
