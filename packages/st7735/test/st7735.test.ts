import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CMD,
  EmulatedSt7735,
  ProtocolError,
  St7735,
  createPanel,
  headerChip,
  listGpioChips,
  openGpioLine,
  rgb565ToRgb,
  rgbaToRgb565be,
  type PanelVariant,
  type Rotation,
} from '../src/index.js';

const noSleep = async () => {};

/** A test image with a distinct colour per pixel position (quantised to RGB565). */
function testFrame(width: number, height: number): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      // Values that survive RGB565 exactly (5/6 bits, expanded by bit replication).
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

async function setup(variant: PanelVariant, rotation: Rotation, extra = {}) {
  const emu = new EmulatedSt7735(variant);
  const dev = new St7735(emu.spi, emu.dc, emu.reset, { variant, rotation, sleep: noSleep, ...extra });
  await dev.init();
  return { emu, dev };
}

describe('driver + emulated panel', () => {
  for (const variant of ['greentab', 'redtab', 'blacktab', 'mini160x80'] as PanelVariant[]) {
    for (const rotation of [0, 90, 180, 270] as Rotation[]) {
      it(`reproduces a frame pixel for pixel: ${variant}, rotation ${rotation}`, async () => {
        const { emu, dev } = await setup(variant, rotation);
        const frame = testFrame(dev.width, dev.height);
        await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
        const seen = emu.view(rotation);
        expect([seen.width, seen.height]).toEqual([dev.width, dev.height]);
        expect(Buffer.from(seen.rgba).equals(Buffer.from(frame))).toBe(true);
      });
    }
  }

  it('the 1.8" module is 160x128 in landscape and 128x160 in portrait', async () => {
    expect((await setup('greentab', 90)).dev).toMatchObject({ width: 160, height: 128 });
    expect((await setup('greentab', 0)).dev).toMatchObject({ width: 128, height: 160 });
    expect((await setup('mini160x80', 90)).dev).toMatchObject({ width: 160, height: 80 });
  });

  it('writes a partial region only there, leaving the rest of the glass untouched', async () => {
    const { emu, dev } = await setup('greentab', 90);
    await dev.writeRegion(0, 0, 160, 128, Buffer.alloc(160 * 128 * 2, 0));
    const white = Buffer.alloc(10 * 5 * 2, 0xff);
    await dev.writeRegion(30, 40, 10, 5, white);
    const v = emu.view(90);
    const at = (x: number, y: number) => v.rgba[(y * 160 + x) * 4]!;
    expect(at(30, 40)).toBe(255);
    expect(at(39, 44)).toBe(255);
    expect(at(40, 44)).toBe(0);
    expect(at(30, 45)).toBe(0);
    expect(at(29, 40)).toBe(0);
  });

  it('wrong colour settings show on the glass: BGR mismatch swaps red and blue, inversion inverts', async () => {
    const red = Buffer.from([0xf8, 0x00]);
    const wrong = await setup('greentab', 90, { bgr: false });
    await wrong.dev.writeRegion(0, 0, 1, 1, red);
    expect(wrong.emu.view(90).rgba.slice(0, 3)).toEqual(new Uint8ClampedArray([0, 0, 255]));
    const inverted = await setup('greentab', 90, { invert: true });
    await inverted.dev.writeRegion(0, 0, 1, 1, red);
    expect(inverted.emu.view(90).rgba.slice(0, 3)).toEqual(new Uint8ClampedArray([0, 255, 255]));
    // The mini's glass is inverted: the driver sends INVON and the colours come out right.
    const mini = await setup('mini160x80', 90);
    await mini.dev.writeRegion(0, 0, 1, 1, red);
    expect(mini.emu.view(90).rgba.slice(0, 3)).toEqual(new Uint8ClampedArray([255, 0, 0]));
  });

  it('never sends a message over 4096 bytes; commands at <= 10 MHz, pixels at the configured speed', async () => {
    const { emu, dev } = await setup('greentab', 90, { pixelSpeedHz: 32_000_000, commandSpeedHz: 20_000_000 });
    await dev.writeRegion(0, 0, 160, 128, Buffer.alloc(160 * 128 * 2, 0x12));
    expect(emu.stats.largestMessage).toBe(4096);
    expect(emu.stats.pixelBytes).toBe(160 * 128 * 2);
    expect(emu.stats.maxCommandHz).toBe(10_000_000);
    expect(emu.stats.maxPixelHz).toBe(32_000_000);
  });

  it('serialises concurrent writes: no transfer starts before the previous one finished', async () => {
    const emu = new EmulatedSt7735('greentab');
    let inFlight = 0;
    let maxInFlight = 0;
    const spi = {
      transfer: async (m: Parameters<typeof emu.spi.transfer>[0]) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        await emu.spi.transfer(m);
        inFlight--;
      },
    };
    const dev = new St7735(spi, emu.dc, emu.reset, { sleep: noSleep });
    await dev.init();
    await Promise.all([dev.writeRegion(0, 0, 10, 10, Buffer.alloc(200, 0xff)), dev.writeRegion(50, 50, 10, 10, Buffer.alloc(200, 0x00))]);
    expect(maxInFlight).toBe(1);
    expect(emu.view(90).rgba[0]).toBe(255);
  });

  it('rejects regions outside the screen with a clear error', async () => {
    const { dev } = await setup('greentab', 90);
    await expect(dev.writeRegion(150, 0, 20, 10, Buffer.alloc(400))).rejects.toThrow(/outside the 160x128 screen/);
  });
});

describe('emulator protocol checks', () => {
  const send = (emu: EmulatedSt7735, dc: 0 | 1, bytes: number[]) => {
    emu.dc.set(dc);
    return emu.spi.transfer([{ sendBuffer: Buffer.from(bytes), byteLength: bytes.length }]);
  };

  it('fails on pixel data before RAMWR', async () => {
    const emu = new EmulatedSt7735();
    await expect(send(emu, 1, [0xff, 0xff])).rejects.toThrow(/before any command/);
    await send(emu, 0, [CMD.DISPON]);
    await expect(send(emu, 1, [0xff])).rejects.toThrow(ProtocolError);
  });

  it('fails on a window outside memory and on a wrong pixel format', async () => {
    const emu = new EmulatedSt7735();
    await send(emu, 0, [CMD.CASET]);
    await expect(send(emu, 1, [0, 0, 0, 132])).rejects.toThrow(/outside controller memory/);
    const emu2 = new EmulatedSt7735();
    await send(emu2, 0, [CMD.RAMWR]);
    await expect(send(emu2, 1, [0xff, 0xff])).rejects.toThrow(/COLMOD/);
  });

  it('fails on a message larger than 4096 bytes', async () => {
    const emu = new EmulatedSt7735();
    await expect(emu.spi.transfer([{ sendBuffer: Buffer.alloc(4097), byteLength: 4097 }])).rejects.toThrow(/EMSGSIZE/);
  });

  it('saves the glass as a PNG file atomically', async () => {
    const { emu, dev } = await setup('greentab', 90);
    await dev.writeRegion(0, 0, 160, 128, rgbaToRgb565be(testFrame(160, 128), 160));
    const file = join(mkdtempSync(join(tmpdir(), 'png-')), 'screen.png');
    await emu.savePng(file, 90);
    const png = readFileSync(file);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(160);
    expect(png.readUInt32BE(20)).toBe(128);
  });
});

describe('RGB565 conversion', () => {
  it('packs big-endian 5-6-5 and round-trips the representable colours', () => {
    const px = new Uint8ClampedArray([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 255]);
    expect([...rgbaToRgb565be(px, 4)]).toEqual([0xf8, 0x00, 0x07, 0xe0, 0x00, 0x1f, 0xff, 0xff]);
    expect(rgb565ToRgb(0xffff)).toEqual([255, 255, 255]);
    const rect = rgbaToRgb565be(testFrame(8, 4), 8, { x: 2, y: 1, w: 3, h: 2 });
    expect(rect.length).toBe(12);
    // Pixel (2,1): r5 = 2, g6 = 3, b5 = 4.
    expect(rect.readUInt16BE(0)).toBe((2 << 11) | (3 << 5) | 4);
  });
});

describe('GPIO numbering (fake sysfs trees)', () => {
  function tree(chips: Array<{ name: string; label: string; base: number; ngpio: number }>): string {
    const root = mkdtempSync(join(tmpdir(), 'sysfs-'));
    const gpio = join(root, 'sys/class/gpio');
    mkdirSync(gpio, { recursive: true });
    writeFileSync(join(gpio, 'export'), '');
    for (const c of chips) {
      mkdirSync(join(gpio, c.name));
      writeFileSync(join(gpio, c.name, 'label'), `${c.label}\n`);
      writeFileSync(join(gpio, c.name, 'base'), `${c.base}\n`);
      writeFileSync(join(gpio, c.name, 'ngpio'), `${c.ngpio}\n`);
    }
    return root;
  }

  it('finds the header chip by label: Pi 5 (rp1, base 571), Pi 4 (base 512), old kernels (base 0)', () => {
    const pi5 = tree([{ name: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 }, { name: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 }]);
    expect(headerChip(listGpioChips(pi5))).toMatchObject({ label: 'pinctrl-rp1', base: 571 });
    const pi4 = tree([{ name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }, { name: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 }]);
    expect(headerChip(listGpioChips(pi4))!.base).toBe(512);
    const old = tree([{ name: 'gpiochip0', label: 'pinctrl-bcm2835', base: 0, ngpio: 54 }]);
    expect(headerChip(listGpioChips(old))!.base).toBe(0);
  });

  it('exports base + BCM, sets the direction and drives the value file', async () => {
    const root = tree([{ name: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 }]);
    const pin = join(root, 'sys/class/gpio/gpio596'); // 571 + 25
    mkdirSync(pin); // the kernel would create it on export
    writeFileSync(join(pin, 'direction'), 'in');
    writeFileSync(join(pin, 'value'), '0');
    const line = await openGpioLine(25, { root });
    expect(readFileSync(join(root, 'sys/class/gpio/export'), 'utf8')).toBe('');
    expect(readFileSync(join(pin, 'direction'), 'utf8')).toBe('out');
    await line.set(1);
    expect(readFileSync(join(pin, 'value'), 'utf8')).toBe('1');
    await line.set(0);
    expect(readFileSync(join(pin, 'value'), 'utf8')).toBe('0');
    await line.close?.();
  });

  it('says how to fix a machine without Pi GPIO and an unknown pin', async () => {
    const none = tree([]);
    await expect(openGpioLine(25, { root: none })).rejects.toThrow(/use --panel png/);
    const pi4 = tree([{ name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]);
    await expect(openGpioLine(60, { root: pi4 })).rejects.toThrow(/GPIO60 does not exist/);
    expect(existsSync(join(pi4, 'sys/class/gpio/gpio572'))).toBe(false);
  });

  it('createPanel on a machine without SPI explains how to enable it', async () => {
    await expect(createPanel({ kind: 'st7735', variant: 'greentab', rotation: 90, spiBus: 9, spiDevice: 9 })).rejects.toThrow(/spidev9\.9 does not exist: enable SPI/);
  });
});
