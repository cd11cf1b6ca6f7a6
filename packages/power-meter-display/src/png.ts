import { basename, dirname } from 'node:path';
import { writeFileAtomic } from '@power-meter/meter-files';
import { createCanvas } from 'canvas';

/** An RGBA picture, as the emulated panel's `view()` returns it. */
export interface RgbaView {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
}

/** PNG bytes of an RGBA picture (canvas's encoder: the display already draws with canvas). */
export function encodePng(view: RgbaView): Buffer {
  const canvas = createCanvas(view.width, view.height);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(view.width, view.height);
  img.data.set(view.rgba);
  ctx.putImageData(img, 0, 0);
  return canvas.toBuffer('image/png');
}

/**
 * Saves what the emulated glass shows as a PNG, replaced atomically (the data directory's
 * writer from meter-files), so a viewer or the demo's preview never reads half a file.
 */
export async function savePng(file: string, view: RgbaView): Promise<void> {
  await writeFileAtomic(dirname(file), basename(file), encodePng(view));
}
