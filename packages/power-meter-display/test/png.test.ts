import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModule, DeviceOpenError, GpioError, rgbaToRgb565be, spiOpenError, St7735Error, sysfsExportError } from '@power-meter/st7735';
import { createCanvas, loadImage } from 'canvas';
import { describe, expect, it } from 'vitest';
import { panelErrorHint } from '../src/hints.js';
import { savePng } from '../src/png.js';

/** A picture with a distinct colour per position, exactly representable in RGB565 (bit replication). */
function pattern(width: number, height: number): Uint8ClampedArray {
  const rgba = new Uint8ClampedArray(width * height * 4);
  const five = (v: number) => (v << 3) | (v >> 2);
  for (let i = 0; i < width * height; i++) {
    const [x, y] = [i % width, Math.floor(i / width)];
    const g6 = (y * 3) & 63;
    rgba.set([five(x & 31), (g6 << 2) | (g6 >> 4), five((x + 2 * y) & 31), 255], i * 4);
  }
  return rgba;
}

describe('png panel output', () => {
  it('saves what the emulated glass shows, atomically, and the PNG decodes to the same pixels in each orientation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'png-'));
    const file = join(dir, 'screen.png');
    const st7735 = await openModule({ kind: 'emulated', variant: 'greentab', rotation: 90 });
    const frame = pattern(160, 128);
    await st7735.device.writeRegion(0, 0, 160, 128, rgbaToRgb565be(frame, 160));
    await savePng(file, st7735.emulator!.view());
    const ctx = createCanvas(160, 128).getContext('2d');
    ctx.drawImage(await loadImage(readFileSync(file)), 0, 0);
    expect(Buffer.from(ctx.getImageData(0, 0, 160, 128).data).equals(Buffer.from(frame))).toBe(true);
    // Held in portrait the same glass is 128 wide; the temporary file is gone after each save.
    await savePng(file, st7735.emulator!.view(0));
    expect(readFileSync(file).readUInt32BE(16)).toBe(128);
    expect(readdirSync(dir)).toEqual(['screen.png']);
    await st7735.close();
  });
});

describe('flag hints for library errors (the libraries name no flags)', () => {
  it('adds the display flag that helps, by error kind', () => {
    expect(panelErrorHint(new DeviceOpenError('/dev/spidev0.0 does not exist', 'missing'))).toMatch(/--panel png/);
    expect(panelErrorHint(new DeviceOpenError('no chip', 'not-a-pi'))).toMatch(/--panel png/);
    expect(panelErrorHint(new DeviceOpenError('GPIO60 does not exist', 'bad-pin'))).toMatch(/--dc-pin and --reset-pin/);
    expect(panelErrorHint(new St7735Error('does not fit', 'geometry'))).toMatch(/--col-offset and --row-offset/);
    expect(panelErrorHint(new Error('other'))).toBe('');
  });

  it('words the system fix the st7735 library leaves to the program (it names no command)', () => {
    expect(panelErrorHint(spiOpenError('ENOENT', '/dev/spidev0.0'))).toMatch(
      /^: enable SPI \(sudo raspi-config nonint do_spi 0, .*reboot; .*--panel png$/,
    );
    expect(panelErrorHint(spiOpenError('EACCES', '/dev/spidev0.0'))).toBe(
      ': add the user to the spi group (sudo adduser $USER spi) and log in again',
    );
    expect(panelErrorHint(sysfsExportError('EACCES', 25, 537))).toBe(
      ': add the user to the gpio group (sudo adduser $USER gpio) and log in again',
    );
    expect(panelErrorHint(new GpioError('gpioset not found', 'tool-missing'))).toBe(
      ': install the libgpiod tools (sudo apt install gpiod)',
    );
  });
});
