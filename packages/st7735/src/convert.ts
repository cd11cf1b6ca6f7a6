/**
 * RGBA (canvas getImageData order) to RGB565, most significant byte first (the ST7735 wire
 * order). One pass over the pixels of a rectangle with no per-pixel allocation.
 */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function rgbaToRgb565be(rgba: Uint8Array | Uint8ClampedArray, width: number, rect?: Rect, out?: Buffer): Buffer {
  const height = Math.floor(rgba.length / 4 / width);
  const r = rect ?? { x: 0, y: 0, w: width, h: height };
  if (r.x < 0 || r.y < 0 || r.x + r.w > width || r.y + r.h > height) throw new RangeError(`rectangle ${JSON.stringify(r)} is outside the ${width}x${height} frame`);
  const dst = out ?? Buffer.allocUnsafe(r.w * r.h * 2);
  if (dst.length < r.w * r.h * 2) throw new RangeError('output buffer too small');
  let o = 0;
  for (let y = r.y; y < r.y + r.h; y++) {
    let i = (y * width + r.x) * 4;
    for (let x = 0; x < r.w; x++, i += 4) {
      const v = ((rgba[i]! & 0xf8) << 8) | ((rgba[i + 1]! & 0xfc) << 3) | (rgba[i + 2]! >> 3);
      dst[o++] = v >> 8;
      dst[o++] = v & 0xff;
    }
  }
  return dst;
}

/** RGB565 word to 8-bit channels (bit replication, so white stays 255). */
export function rgb565ToRgb(v: number): [number, number, number] {
  const r5 = (v >> 11) & 0x1f;
  const g6 = (v >> 5) & 0x3f;
  const b5 = v & 0x1f;
  return [(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)];
}
