/**
 * ST7735 benchmark (`npm run bench`): RGBA -> RGB565 conversion per full 160x128 frame, and the
 * driver's throughput into the emulated module and into a bus that does nothing (driver cost
 * alone). Medians over repeated runs; no budget in docs/design.md applies directly (the display's
 * benchmark measures state change -> frame pushed), so pass is null.
 */
import { performance } from 'node:perf_hooks';
import { rgbaToRgb565be, St7735, EmulatedSt7735, type SpiPart } from '@power-meter/st7735';
import { median, reportFigure } from '../../../scripts/bench-figure.mjs';

/** Median per-iteration time in microseconds over `runs` runs of `inner` iterations. */
async function time(runs: number, inner: number, fn: () => unknown): Promise<number> {
  const per: number[] = [];
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) await fn();
    per.push(((performance.now() - t0) / inner) * 1000);
  }
  return median(per);
}

const W = 160;
const H = 128;
const FRAME_BYTES = W * H * 2;
const rgba = new Uint8ClampedArray(W * H * 4).map((_, i) => (i * 37) & 0xff);
const out = Buffer.alloc(FRAME_BYTES);

// Warm up the JIT before timing.
for (let i = 0; i < 200; i++) rgbaToRgb565be(rgba, W, undefined, out);
const convUs = await time(21, 100, () => rgbaToRgb565be(rgba, W, undefined, out));
const convBgraUs = await time(21, 100, () => rgbaToRgb565be(rgba, W, undefined, out, 'bgra'));
const smallUs = await time(21, 1000, () => rgbaToRgb565be(rgba, W, { x: 40, y: 50, w: 60, h: 16 }, out));
console.log(
  `RGBA -> RGB565 (big-endian), full ${W}x${H} frame: median ${convUs.toFixed(1)} us (${((W * H) / convUs).toFixed(0)} Mpixel/s)`,
);
console.log(`BGRA (canvas raw) -> RGB565, full frame: median ${convBgraUs.toFixed(1)} us; a 60x16 text field: ${smallUs.toFixed(2)} us`);
reportFigure('RGBA to RGB565, full frame', convUs, 'us');
reportFigure('BGRA to RGB565, full frame', convBgraUs, 'us');

// Driver into the emulator (decodes every byte into controller memory; yields per message).
const emu = new EmulatedSt7735('greentab');
const dev = new St7735(emu.spi, emu.dc, emu.reset, { sleep: async () => {} });
await dev.init();
for (let i = 0; i < 5; i++) await dev.writeRegion(0, 0, W, H, out);
const before = emu.stats();
const emuUs = await time(21, 5, () => dev.writeRegion(0, 0, W, H, out));
const after = emu.stats();
const frames = 21 * 5;
const msgsPerFrame = (after.transfers - before.transfers) / frames;
const bytesPerFrame = (after.bytesSent - before.bytesSent) / frames;
console.log(
  `driver -> emulated panel, full frame: median ${(emuUs / 1000).toFixed(2)} ms, ${msgsPerFrame} messages (largest ${after.largestMessage} B), ${bytesPerFrame} bytes (${FRAME_BYTES} of pixels)`,
);
reportFigure('driver full-frame write into the emulator', emuUs / 1000, 'ms');
reportFigure('messages per full frame', msgsPerFrame, 'count');

// Driver alone: a bus that returns at once, and D/C writes that cost nothing.
const nullSpi = { transfer: async (_m: SpiPart[]) => {} };
const bare = new St7735(nullSpi, { set: () => {} }, null, { sleep: async () => {} });
await bare.init();
const bareUs = await time(21, 50, () => bare.writeRegion(0, 0, W, H, out));
const wireMs = ((bytesPerFrame * 8) / 24e6) * 1000;
console.log(
  `driver alone (null bus), full frame: median ${bareUs.toFixed(0)} us = ${(FRAME_BYTES / bareUs).toFixed(0)} MB/s; the wire at 24 MHz needs ${wireMs.toFixed(1)} ms`,
);
reportFigure('driver CPU per full frame (null bus)', bareUs, 'us');
reportFigure('full-frame wire time at 24 MHz', wireMs, 'ms');
