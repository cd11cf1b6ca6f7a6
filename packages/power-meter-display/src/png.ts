import { basename, dirname } from 'node:path';
import { writeFileAtomic } from '@power-meter/meter-files';
import { createCanvas, type Canvas, type ImageData } from 'canvas';

/** An RGBA picture, as the emulated module's `view()` returns it. */
export interface RgbaView {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
}

/** One canvas for every frame: a canvas per frame holds native memory until V8 collects it. */
let scratch: { canvas: Canvas; img: ImageData } | null = null;

/** PNG bytes of an RGBA picture (canvas's encoder: the display already draws with canvas). */
export function encodePng(view: RgbaView): Buffer {
  if (scratch === null || scratch.canvas.width !== view.width || scratch.canvas.height !== view.height) {
    const canvas = createCanvas(view.width, view.height);
    scratch = { canvas, img: canvas.getContext('2d').createImageData(view.width, view.height) };
  }
  const { canvas, img } = scratch;
  img.data.set(view.rgba);
  canvas.getContext('2d').putImageData(img, 0, 0);
  return canvas.toBuffer('image/png');
}

/**
 * Saves what the emulated glass shows as a PNG, replaced atomically (the data directory's
 * writer from meter-files), so a viewer or the demo's preview never reads half a file.
 */
export async function savePng(file: string, view: RgbaView): Promise<void> {
  await writeFileAtomic(dirname(file), basename(file), encodePng(view));
}
