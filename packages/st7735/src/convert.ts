/**
 * RGBA (canvas getImageData order) or BGRA (canvas `toBuffer('raw')` on little-endian machines,
 * i.e. Cairo's ARGB32 read as bytes) to RGB565, most significant byte first (the ST7735 wire
 * order). One pass over the pixels of a rectangle with no per-pixel allocation.
 */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Byte order of the 4-byte source pixels. */
export type PixelOrder = 'rgba' | 'bgra';

export function rgbaToRgb565be(
  pixels: Uint8Array | Uint8ClampedArray,
  width: number,
  rect?: Rect,
  out?: Buffer,
  order: PixelOrder = 'rgba',
): Buffer {
  if (!Number.isInteger(width) || width <= 0) throw new RangeError(`frame width must be a positive integer, got ${width}`);
  const height = Math.floor(pixels.length / 4 / width);
  const r = rect ?? { x: 0, y: 0, w: width, h: height };
  if (r.x < 0 || r.y < 0 || r.w < 0 || r.h < 0 || r.x + r.w > width || r.y + r.h > height)
    throw new RangeError(`rectangle ${JSON.stringify(r)} is outside the ${width}x${height} frame`);
  const bytes = r.w * r.h * 2;
  const dst = out ?? Buffer.allocUnsafe(bytes);
  if (dst.length < bytes) throw new RangeError(`output buffer has ${dst.length} bytes, the ${r.w}x${r.h} rectangle needs ${bytes}`);
  // Red and blue swap places between the two orders; green is always byte 1.
  const ri = order === 'bgra' ? 2 : 0;
  const bi = 2 - ri;
  let o = 0;
  for (let y = r.y; y < r.y + r.h; y++) {
    let i = (y * width + r.x) * 4;
    const end = i + r.w * 4;
    for (; i < end; i += 4) {
      const red = pixels[i + ri]!;
      const green = pixels[i + 1]!;
      const blue = pixels[i + bi]!;
      dst[o++] = (red & 0xf8) | (green >> 5);
      dst[o++] = ((green & 0x1c) << 3) | (blue >> 3);
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
