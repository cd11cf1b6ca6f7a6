import { EmulatedSt7735, St7735, type GlassOptions, type ModuleVariant, type Rotation, type St7735Options } from '../src/index.js';

export const noSleep = async (): Promise<void> => {};

/** A test image with a distinct colour per pixel position, exactly representable in RGB565. */
export function testFrame(width: number, height: number): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const r5 = x & 31;
      const g6 = (y * 3) & 63;
      const b5 = (x + 2 * y) & 31;
      rgba[i] = (r5 << 3) | (r5 >> 2);
      rgba[i + 1] = (g6 << 2) | (g6 >> 4);
      rgba[i + 2] = (b5 << 3) | (b5 >> 2);
      rgba[i + 3] = 255;
    }
  return rgba;
}

export async function setup(variant: ModuleVariant, rotation: Rotation, extra: St7735Options = {}, glass: GlassOptions = {}) {
  const emu = new EmulatedSt7735({ variant, ...glass });
  const dev = new St7735(emu.spi, emu.dc, emu.reset, { variant, rotation, sleep: noSleep, ...extra });
  await dev.init();
  return { emu, dev };
}
