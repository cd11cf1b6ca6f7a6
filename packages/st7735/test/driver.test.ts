import { describe, expect, it } from 'vitest';
import {
  EmulatedSt7735,
  MODULE_VARIANTS,
  St7735,
  St7735Error,
  rgbaToRgb565be,
  type GpioLine,
  type ModuleVariant,
  type Rotation,
  type SpiPart,
} from '../src/index.js';
import { noSleep, setup, testFrame } from './helpers.js';

const ROTATIONS: Rotation[] = [0, 90, 180, 270];

/** The CASET/RASET of the driver's first full-screen window, as [xs, xe, ys, ye]. */
async function firstWindow(variant: ModuleVariant, rotation: Rotation, extra = {}): Promise<number[]> {
  const r = recorder();
  await new St7735(r.spi, r.dcLine, null, { variant, rotation, sleep: noSleep, ...extra }).init();
  const at = (cmd: number) => {
    const i = r.messages.findIndex((m) => m.dc === 0 && m.bytes[0] === cmd);
    const p = r.messages[i + 1]!.bytes;
    return [(p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!];
  };
  return [...at(0x2a), ...at(0x2b)];
}

describe('driver drawing into the emulated module', () => {
  for (const variant of MODULE_VARIANTS)
    for (const rotation of ROTATIONS)
      it(`reproduces a frame pixel for pixel: ${variant}, rotation ${rotation}`, async () => {
        const { emu, dev } = await setup(variant, rotation);
        const frame = testFrame(dev.width, dev.height);
        await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
        const seen = emu.view(rotation);
        expect([seen.width, seen.height]).toEqual([dev.width, dev.height]);
        expect(Buffer.from(seen.rgba).equals(Buffer.from(frame))).toBe(true);
      });

  // Offsets typed by hand mean what the README says: the glass's first column and row in
  // portrait, as Adafruit's colstart/rowstart. 24/0 must be addressed at 24/0 (swapped in
  // landscape), not mirrored against a 132x162 memory into 28/2.
  for (const rotation of ROTATIONS)
    it(`hand-entered offsets 24/0 on a plain mini address 24/0 and draw the whole glass: rotation ${rotation}`, async () => {
      const window = await firstWindow('mini160x80plugin', rotation, { colOffset: 24, rowOffset: 0, bgr: false, invert: false });
      const landscape = rotation === 90 || rotation === 270;
      expect(window).toEqual(landscape ? [0, 159, 24, 103] : [24, 103, 0, 159]);
      const { emu, dev } = await setup(
        'mini160x80plugin',
        rotation,
        { colOffset: 24, rowOffset: 0, bgr: false, invert: false },
        { variant: 'mini160x80' },
      );
      const frame = testFrame(dev.width, dev.height);
      await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
      expect(Buffer.from(emu.view(rotation).rgba).equals(Buffer.from(frame))).toBe(true);
    });

  it('the variant table: Adafruit INITR_* offsets, colour order and inversion in portrait and landscape', async () => {
    // [xs, xe, ys, ye] of the full window, portrait (rotation 0) then landscape (rotation 90).
    expect(await firstWindow('greentab', 0)).toEqual([2, 129, 1, 160]);
    expect(await firstWindow('greentab', 90)).toEqual([1, 160, 2, 129]);
    expect(await firstWindow('redtab', 0)).toEqual([0, 127, 0, 159]);
    expect(await firstWindow('mini160x80', 0)).toEqual([24, 103, 0, 159]);
    expect(await firstWindow('mini160x80', 90)).toEqual([0, 159, 24, 103]);
    expect(await firstWindow('mini160x80plugin', 0)).toEqual([26, 105, 1, 160]);
    expect(await firstWindow('mini160x80plugin', 270)).toEqual([1, 160, 26, 105]);
  });

  it('a glass that is not centred in its memory (modelled in the emulator) shows the driver cannot guess it', async () => {
    // The emulator follows the datasheet, not the driver: a 24/0 glass in a 132x162 memory is
    // at 24 unmirrored but at 28 from the mirrored end, so rotation 0 (MX|MY) draws it shifted.
    const { emu, dev } = await setup('mini160x80', 0, {}, { memCols: 132, memRows: 162 });
    const frame = testFrame(dev.width, dev.height);
    await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
    expect(Buffer.from(emu.view(0).rgba).equals(Buffer.from(frame))).toBe(false);
    const upright = await setup('mini160x80', 180, {}, { memCols: 132, memRows: 162 });
    await upright.dev.writeRegion(0, 0, 80, 160, rgbaToRgb565be(testFrame(80, 160), 80));
    expect(Buffer.from(upright.emu.view(180).rgba).equals(Buffer.from(testFrame(80, 160)))).toBe(true);
  });

  it('a wrong offset setting shows as a shifted picture (the emulator does not follow the driver)', async () => {
    const { emu, dev } = await setup('greentab', 90, { colOffset: 0 });
    const frame = testFrame(dev.width, dev.height);
    await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
    expect(Buffer.from(emu.view(90).rgba).equals(Buffer.from(frame))).toBe(false);
  });

  it('reproduces partial regions at every rotation, leaving the rest untouched', async () => {
    for (const rotation of ROTATIONS) {
      const { emu, dev } = await setup('greentab', rotation);
      await dev.writeRegion(0, 0, dev.width, dev.height, Buffer.alloc(dev.width * dev.height * 2, 0));
      const white = Buffer.alloc(10 * 5 * 2, 0xff);
      await dev.writeRegion(30, 40, 10, 5, white);
      expect(emu.pixel(30, 40, rotation)).toEqual([255, 255, 255]);
      expect(emu.pixel(39, 44, rotation)).toEqual([255, 255, 255]);
      expect(emu.pixel(40, 44, rotation)).toEqual([0, 0, 0]);
      expect(emu.pixel(30, 45, rotation)).toEqual([0, 0, 0]);
      expect(emu.pixel(29, 40, rotation)).toEqual([0, 0, 0]);
      expect(emu.pixel(30, 39, rotation)).toEqual([0, 0, 0]);
    }
  });

  it('logical size: 160x128 landscape and 128x160 portrait for the 1.8" module, 160x80 for the mini', async () => {
    expect((await setup('greentab', 90)).dev).toMatchObject({ width: 160, height: 128 });
    expect((await setup('greentab', 270)).dev).toMatchObject({ width: 160, height: 128 });
    expect((await setup('greentab', 0)).dev).toMatchObject({ width: 128, height: 160 });
    expect((await setup('mini160x80', 90)).dev).toMatchObject({ width: 160, height: 80 });
    expect((await setup('mini160x80', 180)).dev).toMatchObject({ width: 80, height: 160 });
  });

  it('colour settings act on the glass: BGR mismatch swaps red and blue, inversion inverts, the plug-in mini needs INVON', async () => {
    const red = Buffer.from([0xf8, 0x00]);
    const right = await setup('greentab', 90);
    await right.dev.writeRegion(0, 0, 1, 1, red);
    expect(right.emu.pixel(0, 0)).toEqual([255, 0, 0]);
    const wrongOrder = await setup('greentab', 90, { bgr: false });
    await wrongOrder.dev.writeRegion(0, 0, 1, 1, red);
    expect(wrongOrder.emu.pixel(0, 0)).toEqual([0, 0, 255]);
    const inverted = await setup('greentab', 90, { invert: true });
    await inverted.dev.writeRegion(0, 0, 1, 1, red);
    expect(inverted.emu.pixel(0, 0)).toEqual([0, 255, 255]);
    const mini = await setup('mini160x80plugin', 90);
    await mini.dev.writeRegion(0, 0, 1, 1, red);
    expect(mini.emu.pixel(0, 0)).toEqual([255, 0, 0]);
    const miniNoInv = await setup('mini160x80plugin', 90, { invert: false });
    await miniNoInv.dev.writeRegion(0, 0, 1, 1, red);
    expect(miniNoInv.emu.pixel(0, 0)).toEqual([0, 255, 255]);
    // The plain mini is RGB and not inverted: with the plug-in one's colour settings red shows
    // blue (BGR bit) and then inverted, yellow.
    const plainAsPlugin = await setup('mini160x80', 90, { bgr: true, invert: true });
    await plainAsPlugin.dev.writeRegion(0, 0, 1, 1, red);
    expect(plainAsPlugin.emu.pixel(0, 0)).toEqual([255, 255, 0]);
    const plain = await setup('mini160x80', 90);
    await plain.dev.writeRegion(0, 0, 1, 1, red);
    expect(plain.emu.pixel(0, 0)).toEqual([255, 0, 0]);
    const black = await setup('blacktab', 90);
    await black.dev.writeRegion(0, 0, 1, 1, red);
    expect(black.emu.pixel(0, 0)).toEqual([255, 0, 0]);
  });
});

/** Records what reaches the bus: (D/C level, bytes, speed) per message, and the GPIO/sleep calls. */
function recorder() {
  const events: string[] = [];
  const messages: Array<{ dc: 0 | 1; bytes: number[]; speedHz: number | undefined }> = [];
  let dc: 0 | 1 = 1;
  const spi = {
    transfer: async (m: SpiPart[]) => {
      for (const p of m) messages.push({ dc, bytes: [...p.sendBuffer.subarray(0, p.byteLength)], speedHz: p.speedHz });
    },
  };
  const dcLine: GpioLine = {
    set: (v) => {
      dc = v;
    },
  };
  const reset: GpioLine = { set: (v) => void events.push(`reset=${v}`) };
  const sleep = async (ms: number) => void events.push(`sleep ${ms}`);
  return { spi, dcLine, reset, sleep, events, messages };
}

describe('the command stream', () => {
  it('hardware reset, then the ST7735R init of docs/hardware.md in order with its delays', async () => {
    const r = recorder();
    const dev = new St7735(r.spi, r.dcLine, r.reset, { variant: 'greentab', rotation: 90, sleep: r.sleep });
    await dev.init();
    // RESET low, then >= 120 ms before the first command.
    expect(r.events.slice(0, 5)).toEqual(['reset=1', 'sleep 5', 'reset=0', 'sleep 1', 'reset=1']);
    expect(r.events[5]).toBe('sleep 120');
    // Group the stream into (command, parameters).
    const cmds: Array<[number, number[]]> = [];
    for (const m of r.messages) {
      if (m.dc === 0) for (const b of m.bytes) cmds.push([b, []]);
      else cmds[cmds.length - 1]![1].push(...m.bytes);
    }
    const hex = (c: [number, number[]]) => [c[0], ...c[1]].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    // Written out from docs/hardware.md rather than taken from protocol.ts, so a typo there fails.
    expect(cmds.map(hex)).toEqual([
      '01',
      '11',
      'b1 01 2c 2d',
      'b2 01 2c 2d',
      'b3 01 2c 2d 01 2c 2d',
      'b4 07',
      'c0 a2 02 84',
      'c1 c5',
      'c2 0a 00',
      'c3 8a 2a',
      'c4 8a ee',
      'c5 0e',
      '20',
      '36 a8', // landscape, BGR
      '3a 05',
      '2a 00 01 00 a0', // columns 1..160 (row offset 1 swapped in)
      '2b 00 02 00 81', // rows 2..129
      'e0 02 1c 07 12 37 32 29 2d 29 25 2b 39 00 01 03 10',
      'e1 03 1d 07 06 2e 2c 29 2d 2e 2e 37 3f 00 00 02 10',
      '13',
      '29',
    ]);
    expect(r.events.filter((e) => e.startsWith('sleep')).slice(3)).toEqual(['sleep 150', 'sleep 500', 'sleep 10', 'sleep 100']);
  });

  it('MADCTL per rotation follows docs/hardware.md (0xC8, 0xA8, 0x08, 0x68 for BGR; without 0x08 for RGB)', async () => {
    const madctl = async (variant: ModuleVariant, rotation: Rotation) => {
      const r = recorder();
      await new St7735(r.spi, r.dcLine, null, { variant, rotation, sleep: noSleep }).init();
      const i = r.messages.findIndex((m) => m.dc === 0 && m.bytes[0] === 0x36);
      return r.messages[i + 1]!.bytes[0];
    };
    expect(await Promise.all(ROTATIONS.map((rot) => madctl('greentab', rot)))).toEqual([0xc8, 0xa8, 0x08, 0x68]);
    expect(await Promise.all(ROTATIONS.map((rot) => madctl('blacktab', rot)))).toEqual([0xc0, 0xa0, 0x00, 0x60]);
  });

  it('no RESET line: init goes straight to SWRESET', async () => {
    const r = recorder();
    await new St7735(r.spi, r.dcLine, null, { sleep: r.sleep }).init();
    expect(r.events[0]).toBe('sleep 150');
    expect(r.messages[0]).toMatchObject({ dc: 0, bytes: [0x01] });
  });

  it('pixels go in messages of at most 4096 bytes (or the configured size); commands at <= 10 MHz, pixels at the pixel speed', async () => {
    const { emu, dev } = await setup('greentab', 90, { speedHz: 32_000_000, commandSpeedHz: 20_000_000 });
    const before = emu.stats();
    await dev.writeRegion(0, 0, 160, 128, Buffer.alloc(160 * 128 * 2, 0x12));
    const s = emu.stats();
    expect(s.largestMessage).toBe(4096);
    expect(s.pixelBytes - before.pixelBytes).toBe(40_960);
    // CASET, 4 params, RASET, 4 params, RAMWR = 5 messages, then 10 pixel chunks.
    expect(s.transfers - before.transfers).toBe(15);
    expect(s.maxCommandHz).toBe(10_000_000);
    expect(s.maxPixelHz).toBe(32_000_000);
    expect(dev.bytesSent).toBe(s.bytesSent);

    const small = await setup('greentab', 90, { maxMessageBytes: 1000 });
    await small.dev.writeRegion(0, 0, 160, 128, Buffer.alloc(160 * 128 * 2, 0x12));
    expect(small.emu.stats().largestMessage).toBe(1000);
    expect(Buffer.from(small.emu.view(90).rgba.subarray(0, 4))).toEqual(Buffer.from([0x10, 0x41, 0x94, 255]));
  });

  it('the default pixel speed is 24 MHz', async () => {
    const { emu, dev } = await setup('greentab', 90);
    await dev.writeRegion(0, 0, 2, 2, Buffer.alloc(8));
    expect(emu.stats().maxPixelHz).toBe(24_000_000);
  });

  it('serialises concurrent calls: no transfer starts before the previous one finished, in call order', async () => {
    // The emulator itself throws on an overlapping transfer or a D/C change mid-transfer, and
    // its default wire delay yields to the event loop, so unawaited callers would collide.
    const { emu, dev } = await setup('greentab', 90);
    await Promise.all([
      dev.writeRegion(0, 0, 10, 10, Buffer.alloc(200, 0xff)),
      dev.writeRegion(5, 5, 10, 10, Buffer.alloc(200, 0x00)),
      dev.writeRegion(100, 100, 4, 4, Buffer.alloc(32, 0xff)),
    ]);
    expect(emu.pixel(0, 0)).toEqual([255, 255, 255]);
    expect(emu.pixel(5, 5)).toEqual([0, 0, 0]); // the second write came after the first
    expect(emu.pixel(101, 101)).toEqual([255, 255, 255]);
  });

  it('copies the pixels at call time, so callers may reuse their buffer at once', async () => {
    const { emu, dev } = await setup('greentab', 90);
    const buf = Buffer.alloc(8, 0xff);
    const p = dev.writeRegion(0, 0, 2, 2, buf);
    buf.fill(0);
    await p;
    expect(emu.pixel(1, 1)).toEqual([255, 255, 255]);
  });

  it('a failed write does not block the ones after it', async () => {
    let fail = true;
    const emu = new EmulatedSt7735('greentab');
    const spi = {
      transfer: async (m: SpiPart[]) => {
        if (fail && m[0]!.byteLength > 100) {
          fail = false;
          throw new Error('EIO');
        }
        await emu.spi.transfer(m);
      },
    };
    const dev = new St7735(spi, emu.dc, emu.reset, { sleep: noSleep });
    await dev.init();
    await expect(dev.writeRegion(0, 0, 10, 10, Buffer.alloc(200, 0xff))).rejects.toThrow('EIO');
    await dev.writeRegion(0, 0, 10, 10, Buffer.alloc(200, 0xff));
    expect(emu.pixel(9, 9)).toEqual([255, 255, 255]);
  });

  it('rejects regions outside the screen, short buffers and impossible geometry with clear errors', async () => {
    const { dev } = await setup('greentab', 90);
    await expect(dev.writeRegion(150, 0, 20, 10, Buffer.alloc(400))).rejects.toThrow(/outside the 160x128 screen/);
    await expect(dev.writeRegion(0, 0, 0, 10, Buffer.alloc(0))).rejects.toThrow(St7735Error);
    await expect(dev.writeRegion(0, 0, 10, 10, Buffer.alloc(199))).rejects.toThrow(/needs 200 bytes, got 199/);
    const r = recorder();
    expect(() => new St7735(r.spi, r.dcLine, null, { variant: 'greentab', colOffset: 5 })).toThrow(
      /needs 138x162 frame memory, more than the controller's 132x162/,
    );
    try {
      new St7735(r.spi, r.dcLine, null, { variant: 'mini160x80', rowOffset: 2 });
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ name: 'St7735Error', kind: 'geometry' });
    }
    expect(() => new St7735(r.spi, r.dcLine, null, { rotation: 45 as Rotation })).toThrow(/rotation 45/);
  });
});
