/** ST7735 benchmark (`npm run bench`): RGBA -> RGB565 conversion and driver throughput. */
import { performance } from 'node:perf_hooks';
import { rgbaToRgb565be } from './convert.js';
import { St7735 } from './driver.js';
import { EmulatedSt7735 } from './emulator.js';

function bench(name: string, value: number, unit: string, budget: string, pass: boolean | null): void {
  console.log(`BENCH ${JSON.stringify({ name, value: Number(value.toPrecision(4)), unit, budget, pass })}`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const W = 160;
const H = 128;
const rgba = new Uint8ClampedArray(W * H * 4).map((_, i) => (i * 37) & 0xff);
const out = Buffer.alloc(W * H * 2);
const conv: number[] = [];
for (let run = 0; run < 21; run++) {
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) rgbaToRgb565be(rgba, W, undefined, out);
  conv.push(((performance.now() - t0) / 100) * 1000);
}
console.log(`RGBA -> RGB565 (big-endian), full 160x128 frame: median ${median(conv).toFixed(0)} us over 21 runs of 100`);
bench('RGBA to RGB565, full frame', median(conv), 'us', '', null);

const emu = new EmulatedSt7735('greentab');
const dev = new St7735(emu.spi, emu.dc, emu.reset, { sleep: async () => {} });
await dev.init();
const frames: number[] = [];
for (let run = 0; run < 21; run++) {
  const t0 = performance.now();
  await dev.writeRegion(0, 0, W, H, out);
  frames.push(performance.now() - t0);
}
const wireMs = ((W * H * 2 * 8) / 24e6) * 1000;
console.log(`driver -> emulated panel, full frame (10 messages of <= 4096 B): median ${median(frames).toFixed(2)} ms CPU; on the wire at 24 MHz it would take ${wireMs.toFixed(1)} ms`);
bench('driver full-frame write into the emulator', median(frames), 'ms', '', null);
