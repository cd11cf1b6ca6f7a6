import { describe, expect, it } from 'vitest';
import { rgb565ToRgb, rgbaToRgb565be } from '../src/index.js';
import { testFrame } from './helpers.js';

describe('RGBA -> RGB565 big-endian', () => {
  it('packs 5-6-5 with the high byte first', () => {
    const px = new Uint8ClampedArray([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 255]);
    expect([...rgbaToRgb565be(px, 4)]).toEqual([0xf8, 0x00, 0x07, 0xe0, 0x00, 0x1f, 0xff, 0xff]);
    // Truncation (not rounding) of the low bits, as every ST7735 driver does.
    expect([...rgbaToRgb565be(new Uint8Array([0x17, 0x3b, 0x0f, 0]), 1)]).toEqual([0x11, 0xc1]);
  });

  it('matches a straightforward per-pixel reference on every pixel of a varied frame', () => {
    const w = 37;
    const h = 11;
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 97 + 13) & 0xff);
    const got = rgbaToRgb565be(rgba, w);
    for (let p = 0; p < w * h; p++) {
      const [r, g, b] = [rgba[p * 4]!, rgba[p * 4 + 1]!, rgba[p * 4 + 2]!];
      expect(got.readUInt16BE(p * 2)).toBe(((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3));
    }
  });

  it('converts a rectangle only, into a caller-supplied buffer', () => {
    const out = Buffer.alloc(16, 0xaa);
    const rect = rgbaToRgb565be(testFrame(8, 4), 8, { x: 2, y: 1, w: 3, h: 2 }, out);
    expect(rect).toBe(out);
    // Pixel (2,1): r5 = 2, g6 = 3, b5 = 4; pixel (4,2): r5 = 4, g6 = 6, b5 = 8.
    expect(out.readUInt16BE(0)).toBe((2 << 11) | (3 << 5) | 4);
    expect(out.readUInt16BE(10)).toBe((4 << 11) | (6 << 5) | 8);
    expect(out.subarray(12)).toEqual(Buffer.alloc(4, 0xaa)); // nothing past w*h*2 touched
  });

  it("reads canvas 'raw' BGRA (little-endian ARGB32) when asked", () => {
    const bgra = new Uint8Array([0, 0, 255, 255, 255, 0, 0, 255]); // red, blue
    expect([...rgbaToRgb565be(bgra, 2, undefined, undefined, 'bgra')]).toEqual([0xf8, 0x00, 0x00, 0x1f]);
    expect([...rgbaToRgb565be(bgra, 2)]).toEqual([0x00, 0x1f, 0xf8, 0x00]);
  });

  it('rejects rectangles outside the frame and buffers that are too small', () => {
    const f = testFrame(8, 4);
    expect(() => rgbaToRgb565be(f, 8, { x: 6, y: 0, w: 3, h: 1 })).toThrow(/outside the 8x4 frame/);
    expect(() => rgbaToRgb565be(f, 8, undefined, Buffer.alloc(10))).toThrow(/needs 64/);
    expect(() => rgbaToRgb565be(f, 0)).toThrow(/positive integer/);
  });

  it('RGB565 back to 8-bit channels by bit replication', () => {
    expect(rgb565ToRgb(0xffff)).toEqual([255, 255, 255]);
    expect(rgb565ToRgb(0x0000)).toEqual([0, 0, 0]);
    expect(rgb565ToRgb(0x8410)).toEqual([132, 130, 132]);
  });
});
