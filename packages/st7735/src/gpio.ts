import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { GpioLine } from './interfaces.js';
import { DeviceOpenError } from './spi.js';

/**
 * GPIO output lines through sysfs, numbered the way current kernels require (hardware.md): the
 * sysfs number is the header chip's base + the BCM number. The base is read from the chip whose
 * label is pinctrl-* (pinctrl-rp1 on a Pi 5, pinctrl-bcm2711 on a Pi 4, pinctrl-bcm2835 on
 * 3/Zero), not assumed: it is 0 on old kernels, 512 on a Pi 4 and 571 on a Pi 5 with 6.6+.
 * Pure file I/O, no native addon, so nothing ARM-only can break `npm ci` on x86. D/C toggles a
 * few times per update, so sysfs speed is no limit; the value file stays open.
 */
export interface GpioChipInfo {
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

export function listGpioChips(root = '/'): GpioChipInfo[] {
  const dir = join(root, 'sys/class/gpio');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.startsWith('gpiochip'))
    .map((name) => {
      const read = (f: string): string => readFileSync(join(dir, name, f), 'utf8').trim();
      return { name, label: read('label'), base: Number(read('base')), ngpio: Number(read('ngpio')) };
    });
}

/** The header GPIO chip: found by label, never by number (the Pi 5 renumbered it). */
export function headerChip(chips: GpioChipInfo[]): GpioChipInfo | null {
  return chips.find((c) => /^pinctrl-(rp1|bcm2712|bcm2711|bcm2835)/.test(c.label)) ?? null;
}

export function sysfsNumber(bcm: number, chip: GpioChipInfo): number {
  if (!Number.isInteger(bcm) || bcm < 0 || bcm >= Math.min(chip.ngpio, 54)) throw new DeviceOpenError(`GPIO${bcm} does not exist on ${chip.label} (0-${Math.min(chip.ngpio, 54) - 1})`);
  return chip.base + bcm;
}

export async function openGpioLine(bcm: number, opts: { root?: string; retryMs?: number } = {}): Promise<GpioLine> {
  const root = opts.root ?? '/';
  const chip = headerChip(listGpioChips(root));
  if (!chip)
    throw new DeviceOpenError(
      `no Raspberry Pi GPIO chip (pinctrl-*) under ${join(root, 'sys/class/gpio')}: this is not a Pi, or the kernel lacks sysfs GPIO; use --panel png on other machines`,
    );
  const n = sysfsNumber(bcm, chip);
  const gpioDir = join(root, 'sys/class/gpio', `gpio${n}`);
  if (!existsSync(gpioDir)) {
    try {
      writeFileSync(join(root, 'sys/class/gpio/export'), String(n));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES') throw new DeviceOpenError(`no permission to export GPIO${bcm}: add the user to the gpio group (sudo adduser $USER gpio)`);
      if (code === 'EINVAL') throw new DeviceOpenError(`the kernel refused GPIO${bcm} (sysfs ${n}, EINVAL): wrong numbering or pin; check --dc-pin/--reset-pin`);
      if (code !== 'EBUSY') throw new DeviceOpenError(`cannot export GPIO${bcm}: ${code ?? String(err)}`);
      // EBUSY: already exported (by us earlier, or by another program).
    }
  }
  // udev sets the group permissions of a freshly exported pin asynchronously: retry briefly.
  const deadline = Date.now() + (opts.retryMs ?? 1000);
  for (;;) {
    try {
      writeFileSync(join(gpioDir, 'direction'), 'out');
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new DeviceOpenError(
          code === 'EACCES' ? `no permission on GPIO${bcm}: add the user to the gpio group (sudo adduser $USER gpio)` : `cannot configure GPIO${bcm} as output: ${code ?? String(err)} (is another program using it?)`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const fd = openSync(join(gpioDir, 'value'), 'r+');
  return {
    set(value) {
      writeSync(fd, value ? '1' : '0', 0);
    },
    close() {
      closeSync(fd);
    },
  };
}
