import { describe, expect, it } from 'vitest';
import { CMD, EmulatedSt7735, ProtocolError, openModule, rgbaToRgb565be, spiOpenError } from '../src/index.js';
import { setup, testFrame } from './helpers.js';

const send = async (emu: EmulatedSt7735, dc: 0 | 1, bytes: number[]): Promise<void> => {
  await emu.dc.set(dc);
  await emu.spi.transfer([{ sendBuffer: Buffer.from(bytes), byteLength: bytes.length }]);
};

/** Brings a fresh emulator to "awake, on, 16-bit, identity MADCTL" by hand, no driver involved. */
async function ready(emu: EmulatedSt7735): Promise<void> {
  await send(emu, 0, [CMD.SLPOUT]);
  await send(emu, 0, [CMD.COLMOD]);
  await send(emu, 1, [0x05]);
  await send(emu, 0, [CMD.DISPON]);
}

describe('emulator: datasheet behaviour', () => {
  it('decodes CASET/RASET/RAMWR by hand: high byte first, window wraps, RAMWR restarts at the origin', async () => {
    const emu = new EmulatedSt7735('redtab'); // glass at 0/0, MADCTL 0 = glass orientation
    await ready(emu);
    await send(emu, 0, [CMD.CASET]);
    await send(emu, 1, [0, 3, 0, 4]); // columns 3..4
    await send(emu, 0, [CMD.RASET]);
    await send(emu, 1, [0, 7, 0, 7]); // row 7
    await send(emu, 0, [CMD.RAMWR]);
    await send(emu, 1, [0xf8, 0x00, 0x07, 0xe0, 0x00, 0x1f]); // red, green, then wraps to (3,7): blue
    // redtab is BGR glass with MADCTL BGR off: red and blue appear swapped on the glass.
    expect(emu.glassPixel(3, 7)).toEqual([255, 0, 0]);
    expect(emu.glassPixel(4, 7)).toEqual([0, 255, 0]);
    expect(emu.memory[7 * 132 + 3]).toBe(0x001f);
    expect(emu.memory[7 * 132 + 4]).toBe(0x07e0);
    await send(emu, 0, [CMD.RAMWR]);
    await send(emu, 1, [0xff, 0xff]);
    expect(emu.memory[7 * 132 + 3]).toBe(0xffff);
  });

  it('shows black until SLPOUT and DISPON, and after a hardware reset clears the controller', async () => {
    const { emu, dev } = await setup('greentab', 90);
    await dev.writeRegion(0, 0, 2, 2, Buffer.alloc(8, 0xff));
    expect(emu.isOn).toBe(true);
    expect(emu.pixel(0, 0)).toEqual([255, 255, 255]);
    await emu.reset.set(0);
    await emu.reset.set(1);
    expect(emu.isOn).toBe(false);
    expect(emu.pixel(0, 0)).toEqual([0, 0, 0]);
    expect(emu.stats().hardwareResets).toBe(2); // one in init, one here
    // Pixel data now fails: COLMOD is back at its power-on 18-bit value.
    await send(emu, 0, [CMD.RAMWR]);
    await expect(send(emu, 1, [0xff, 0xff])).rejects.toThrow(/COLMOD/);
  });

  it('glass() gives the native portrait glass, view() and pixel() default to the rotation the MADCTL selects', async () => {
    const { emu, dev } = await setup('greentab', 270);
    const frame = testFrame(dev.width, dev.height);
    await dev.writeRegion(0, 0, dev.width, dev.height, rgbaToRgb565be(frame, dev.width));
    expect(emu.rotation).toBe(270);
    expect(Buffer.from(emu.view().rgba).equals(Buffer.from(frame))).toBe(true);
    const g = emu.glass();
    expect([g.width, g.height, g.rgb.length]).toEqual([128, 160, 128 * 160 * 3]);
    // Rotation 270 maps view (x, y) to glass (W-1-y, x).
    const [x, y] = [17, 5];
    const gi = (x * 128 + (127 - y)) * 3;
    expect([...g.rgb.subarray(gi, gi + 3)]).toEqual(emu.pixel(x, y));
    const fi = (y * 160 + x) * 4;
    expect(emu.pixel(x, y)).toEqual([frame[fi], frame[fi + 1], frame[fi + 2]]);
    expect(() => emu.pixel(160, 0)).toThrow(RangeError);
  });

  it('accepts a glass spelled out (size, offsets, colour order, memory) and rejects one that cannot fit', () => {
    const emu = new EmulatedSt7735({ glassWidth: 80, glassHeight: 160, colOffset: 24, rowOffset: 0, bgr: false, invert: true });
    // By default the glass is centred in the memory its module straps: 24 + 80 + 24 by 160.
    expect(emu.glassSpec).toMatchObject({
      width: 80,
      height: 160,
      colOffset: 24,
      rowOffset: 0,
      bgr: false,
      invert: true,
      memCols: 128,
      memRows: 160,
    });
    expect(new EmulatedSt7735({ variant: 'mini160x80', memCols: 132, memRows: 162 }).glassSpec).toMatchObject({
      memCols: 132,
      memRows: 162,
    });
    expect(new EmulatedSt7735('mini160x80plugin').glassSpec).toMatchObject({ colOffset: 26, rowOffset: 1, memCols: 132, memRows: 162 });
    expect(() => new EmulatedSt7735({ colOffset: 10 })).toThrow(/does not fit/);
    expect(() => new EmulatedSt7735({ variant: 'mini160x80', memCols: 100 })).toThrow(/does not fit 100x160/);
  });
});

describe('emulator: protocol violations fail loudly', () => {
  it('pixel data before RAMWR', async () => {
    const emu = new EmulatedSt7735();
    await expect(send(emu, 1, [0xff, 0xff])).rejects.toThrow(/before any command/);
    await send(emu, 0, [CMD.DISPON]);
    await expect(send(emu, 1, [0xff])).rejects.toThrow(ProtocolError);
    const emu2 = new EmulatedSt7735();
    await send(emu2, 0, [CMD.CASET]);
    await expect(send(emu2, 1, [0, 0, 0, 10, 0xff, 0xff])).rejects.toThrow(/pixel data must follow RAMWR/);
  });

  it('a command cut short by the next one, and unknown commands', async () => {
    const emu = new EmulatedSt7735();
    await send(emu, 0, [CMD.CASET]);
    await send(emu, 1, [0, 0]);
    await expect(send(emu, 0, [CMD.RAMWR])).rejects.toThrow(/got 2 of 4 parameters/);
    await expect(send(new EmulatedSt7735(), 0, [0x99])).rejects.toThrow(/unknown command 0x99/);
  });

  it('a window outside memory, in either orientation', async () => {
    const emu = new EmulatedSt7735();
    await send(emu, 0, [CMD.CASET]);
    await expect(send(emu, 1, [0, 0, 0, 132])).rejects.toThrow(/outside controller memory/);
    const backwards = new EmulatedSt7735();
    await send(backwards, 0, [CMD.RASET]);
    await expect(send(backwards, 1, [0, 9, 0, 3])).rejects.toThrow(/outside controller memory/);
    // With MV set CASET addresses rows: 0..161 is valid, 0..162 is not.
    const mv = new EmulatedSt7735();
    await send(mv, 0, [CMD.MADCTL]);
    await send(mv, 1, [0x20]);
    await send(mv, 0, [CMD.CASET]);
    await send(mv, 1, [0, 0, 0, 161]);
    await send(mv, 0, [CMD.CASET]);
    await expect(send(mv, 1, [0, 0, 0, 162])).rejects.toThrow(/0\.\.161/);
    // A 128x160 (GM-strapped) controller has less memory.
    const red = new EmulatedSt7735('redtab');
    await send(red, 0, [CMD.CASET]);
    await expect(send(red, 1, [0, 0, 0, 128])).rejects.toThrow(/0\.\.127/);
  });

  it('pixels while COLMOD is not 16-bit', async () => {
    const emu = new EmulatedSt7735();
    await send(emu, 0, [CMD.RAMWR]);
    await expect(send(emu, 1, [0xff, 0xff])).rejects.toThrow(/COLMOD is 0x6/);
    const emu2 = new EmulatedSt7735();
    await send(emu2, 0, [CMD.COLMOD]);
    await send(emu2, 1, [0x03]); // 12-bit
    await send(emu2, 0, [CMD.RAMWR]);
    await expect(send(emu2, 1, [0xff, 0xff])).rejects.toThrow(/COLMOD is 0x3/);
  });

  it('a message over 4096 bytes, counted over all its parts', async () => {
    const emu = new EmulatedSt7735();
    await expect(emu.spi.transfer([{ sendBuffer: Buffer.alloc(4097), byteLength: 4097 }])).rejects.toThrow(/EMSGSIZE/);
    const two = [2048, 2049].map((n) => ({ sendBuffer: Buffer.alloc(n), byteLength: n }));
    await expect(emu.spi.transfer(two)).rejects.toThrow(/4097 bytes/);
    await expect(emu.spi.transfer([{ sendBuffer: Buffer.alloc(2), byteLength: 3 }])).rejects.toThrow(/byteLength 3/);
  });

  it('a transfer started before the previous one finished', async () => {
    const emu = new EmulatedSt7735();
    await emu.dc.set(0);
    const first = emu.spi.transfer([{ sendBuffer: Buffer.from([CMD.SLPOUT]), byteLength: 1 }]);
    await expect(emu.spi.transfer([{ sendBuffer: Buffer.from([CMD.DISPON]), byteLength: 1 }])).rejects.toThrow(
      /before the previous one finished/,
    );
    await first;
  });

  it('D/C changing during a transfer (a driver that does not await)', async () => {
    const emu = new EmulatedSt7735();
    await emu.dc.set(0);
    const inFlight = emu.spi.transfer([{ sendBuffer: Buffer.from([CMD.SLPOUT]), byteLength: 1 }]);
    expect(() => emu.dc.set(1)).toThrow(/D\/C changed to 1 while an SPI transfer was in progress/);
    await inFlight;
    // Setting the level it already has is harmless.
    const again = emu.spi.transfer([{ sendBuffer: Buffer.from([CMD.NORON]), byteLength: 1 }]);
    expect(() => emu.dc.set(0)).not.toThrow();
    await again;
  });

  it('a transfer while RESET is held low', async () => {
    const emu = new EmulatedSt7735();
    await emu.reset.set(0);
    await expect(send(emu, 0, [CMD.SLPOUT])).rejects.toThrow(/RESET is held low/);
  });
});

describe('openModule', () => {
  it('emulated: an initialised driver on an emulated glass with the same geometry overrides', async () => {
    const st7735 = await openModule({ kind: 'emulated', variant: 'mini160x80plugin', rotation: 270, colOffset: 24, rowOffset: 0 });
    expect(st7735.emulator!.glassSpec).toMatchObject({ colOffset: 24, rowOffset: 0 });
    const { device } = st7735;
    expect([device.width, device.height]).toEqual([160, 80]);
    const frame = testFrame(160, 80);
    await device.writeRegion(0, 0, 160, 80, rgbaToRgb565be(frame, 160));
    expect(Buffer.from(st7735.emulator!.view().rgba).equals(Buffer.from(frame))).toBe(true);
    await st7735.close();
  });

  it('st7735 on a machine without SPI says so, with a kind the application words the fix from', async () => {
    const err = await openModule({
      kind: 'st7735',
      gpioConsumer: 'pm-test',
      variant: 'greentab',
      rotation: 90,
      spiBus: 9,
      spiDevice: 9,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'DeviceOpenError', kind: 'missing' });
    expect((err as Error).message).toBe('/dev/spidev9.9 does not exist');
  });

  it('SPI open errors state the fact and its kind (the program words the system fix)', () => {
    expect(spiOpenError('EACCES', '/dev/spidev0.0')).toMatchObject({ kind: 'permission', message: 'no permission to open /dev/spidev0.0' });
    expect(spiOpenError('ENOENT', '/dev/spidev0.0')).toMatchObject({
      kind: 'missing',
      message: expect.stringMatching(/^\/dev\/spidev0\.0 does not exist/),
    });
    expect(spiOpenError('EBUSY', '/dev/spidev0.0').message).toMatch(/dtoverlay/);
    expect(spiOpenError('EIO', '/dev/spidev0.0', 'EIO: i/o error').message).toBe('cannot open /dev/spidev0.0: EIO: i/o error');
  });
});
