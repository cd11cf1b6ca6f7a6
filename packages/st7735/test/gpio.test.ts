import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  GpioError,
  gpiosetArgs,
  gpiosetMode,
  headerChip,
  listCharChips,
  listGpioChips,
  openGpioLine,
  parseGetReply,
  parseGpiodetect,
  parseLibgpiodVersion,
  sysfsExportError,
  sysfsNumber,
} from '../src/index.js';

type Chip = { name: string; label: string; base: number; ngpio: number };

/** A fake /sys with the legacy class/gpio tree (chips, export) as the kernel lays it out. */
function sysfsTree(chips: Chip[], opts: { exportFile?: boolean } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'sysfs-'));
  const gpio = join(root, 'sys/class/gpio');
  mkdirSync(gpio, { recursive: true });
  if (opts.exportFile !== false) writeFileSync(join(gpio, 'export'), '');
  for (const c of chips) {
    mkdirSync(join(gpio, c.name));
    writeFileSync(join(gpio, c.name, 'label'), `${c.label}\n`);
    writeFileSync(join(gpio, c.name, 'base'), `${c.base}\n`);
    writeFileSync(join(gpio, c.name, 'ngpio'), `${c.ngpio}\n`);
  }
  return root;
}

/** What the kernel creates on export: gpioN/{direction,value}. */
function exported(root: string, n: number): string {
  const pin = join(root, 'sys/class/gpio', `gpio${n}`);
  mkdirSync(pin);
  writeFileSync(join(pin, 'direction'), 'in');
  writeFileSync(join(pin, 'value'), '0');
  return pin;
}

const PI5: Chip[] = [
  { name: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
  { name: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
];
const PI4: Chip[] = [
  { name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
  { name: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
];

describe('GPIO chip discovery and numbering', () => {
  it('finds the header chip by label: Pi 5 (rp1, base 571), Pi 4 (512), Pi 3/Zero on old kernels (0)', () => {
    expect(headerChip(listGpioChips(sysfsTree(PI5)))).toMatchObject({ label: 'pinctrl-rp1', base: 571 });
    expect(headerChip(listGpioChips(sysfsTree(PI4)))!.base).toBe(512);
    expect(headerChip(listGpioChips(sysfsTree([{ name: 'gpiochip0', label: 'pinctrl-bcm2835', base: 0, ngpio: 54 }])))!.base).toBe(0);
    expect(headerChip(listGpioChips(sysfsTree([{ name: 'gpiochip0', label: 'gpio-mockup-A', base: 0, ngpio: 8 }])))).toBeNull();
    expect(listGpioChips(mkdtempSync(join(tmpdir(), 'empty-')))).toEqual([]);
  });

  it('sysfs number = base + BCM; unknown pins are refused with the valid range', () => {
    const rp1 = headerChip(listGpioChips(sysfsTree(PI5)))!;
    expect(sysfsNumber(25, rp1)).toBe(596);
    expect(sysfsNumber(0, rp1)).toBe(571);
    expect(() => sysfsNumber(54, rp1)).toThrow(/GPIO54 does not exist on pinctrl-rp1 \(BCM 0-53/);
    expect(() => sysfsNumber(-1, rp1)).toThrow(GpioError);
    expect(() => sysfsNumber(2.5, rp1)).toThrow(GpioError);
  });

  it('character-device chips from /sys/bus/gpio/devices: label in the device or in its legacy child', () => {
    const root = mkdtempSync(join(tmpdir(), 'bus-'));
    const dev = join(root, 'sys/bus/gpio/devices');
    // Pi 5 after 6.6.45: header chip is gpiochip0, legacy child gpiochip571.
    mkdirSync(join(dev, 'gpiochip0/gpiochip571'), { recursive: true });
    writeFileSync(join(dev, 'gpiochip0/gpiochip571/label'), 'pinctrl-rp1\n');
    writeFileSync(join(dev, 'gpiochip0/gpiochip571/base'), '571\n');
    writeFileSync(join(dev, 'gpiochip0/gpiochip571/ngpio'), '54\n');
    // A chip without sysfs GPIO but with a label attribute.
    mkdirSync(join(dev, 'gpiochip10'), { recursive: true });
    writeFileSync(join(dev, 'gpiochip10/label'), 'gpio-brcmstb@107d508500\n');
    expect(listCharChips(root)).toEqual(
      expect.arrayContaining([
        { name: 'gpiochip0', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
        { name: 'gpiochip10', label: 'gpio-brcmstb@107d508500', base: -1, ngpio: 0 },
      ]),
    );
    expect(headerChip(listCharChips(root))!.name).toBe('gpiochip0');
  });

  it('parses gpiodetect output (same format in libgpiod 1.6 and 2.x)', () => {
    const out = 'gpiochip0 [pinctrl-bcm2711] (58 lines)\ngpiochip1 [raspberrypi-exp-gpio] (8 lines)\n';
    expect(parseGpiodetect(out)).toEqual([
      { name: 'gpiochip0', label: 'pinctrl-bcm2711', base: -1, ngpio: 58 },
      { name: 'gpiochip1', label: 'raspberrypi-exp-gpio', base: -1, ngpio: 8 },
    ]);
    const pi5 = 'gpiochip0 [pinctrl-rp1] (54 lines)\ngpiochip10 [gpio-brcmstb@107d508500] (32 lines)\n';
    expect(headerChip(parseGpiodetect(pi5))!.name).toBe('gpiochip0');
  });
});

describe('libgpiod versions', () => {
  it('reads the version and picks how to drive the line', () => {
    expect(parseLibgpiodVersion('gpioset (libgpiod) v1.6.3\nCopyright (C) 2017-2018 Bartosz Golaszewski')).toEqual({
      major: 1,
      minor: 6,
      patch: 3,
    });
    expect(parseLibgpiodVersion('gpioset (libgpiod) v2.1.3')).toEqual({ major: 2, minor: 1, patch: 3 });
    expect(parseLibgpiodVersion('nonsense')).toBeNull();
    expect(gpiosetMode('gpioset (libgpiod) v1.6.3', '  -m, --mode=[exit|wait|time|signal]')).toBe('oneshot-v1');
    expect(gpiosetMode('gpioset (libgpiod) v2.1.3', '  -i, --interactive\tset the lines then wait for additional set commands')).toBe(
      'interactive',
    );
    expect(gpiosetMode('gpioset (libgpiod) v2.1.3', '  -t, --toggle <period>[,period]...')).toBe('oneshot-v2');
    expect(() => gpiosetMode('', '')).toThrow(
      expect.objectContaining({ kind: 'tool-missing', message: expect.stringMatching(/cannot tell the libgpiod version/) }),
    );
  });

  it('builds the command line of each version', () => {
    expect(gpiosetArgs('oneshot-v1', 'gpiochip0', 25, 1, 'pm')).toEqual(['--mode=exit', 'gpiochip0', '25=1']);
    expect(gpiosetArgs('oneshot-v2', 'gpiochip0', 25, 0, 'pm')).toEqual(['--consumer', 'pm', '--chip', 'gpiochip0', '-t0', '25=0']);
    expect(gpiosetArgs('interactive', 'gpiochip4', 24, 1, 'pm')).toEqual([
      '--consumer',
      'pm',
      '--chip',
      'gpiochip4',
      '--interactive',
      '24=1',
    ]);
  });

  it('reads the interactive get reply, quoted or not, for the right line only', () => {
    expect(parseGetReply('gpioset> "25"=active\n', 25)).toBe(1);
    expect(parseGetReply('25=inactive\n', 25)).toBe(0);
    expect(parseGetReply('"125"=active\n', 25)).toBeNull();
    expect(parseGetReply('gpioset> ', 25)).toBeNull();
  });
});

describe('sysfs backend', () => {
  it('exports base + BCM, makes it an output at the initial level, and drives the open value file', async () => {
    const root = sysfsTree(PI5);
    const pin = exported(root, 596); // 571 + 25; already there, so no export write
    const line = await openGpioLine(25, { consumer: 'pm-test', root, initial: 0 });
    expect(readFileSync(join(root, 'sys/class/gpio/export'), 'utf8')).toBe('');
    expect(readFileSync(join(pin, 'direction'), 'utf8')).toBe('low');
    await line.set(1);
    expect(readFileSync(join(pin, 'value'), 'utf8')).toBe('1');
    await line.set(0);
    expect(readFileSync(join(pin, 'value'), 'utf8')).toBe('0');
    await line.close?.();
    expect(() => line.set(1)).toThrow(/closed/);
  });

  it('writes the sysfs number to export when the pin is not exported yet', async () => {
    const root = sysfsTree(PI4);
    // The fake "kernel": the export write succeeds but creates nothing, so configuring the
    // direction keeps failing and the error names the pin and the cause.
    await expect(openGpioLine(24, { consumer: 'pm-test', root, retryMs: 0 })).rejects.toThrow(/cannot make GPIO24 an output: ENOENT/);
    expect(readFileSync(join(root, 'sys/class/gpio/export'), 'utf8')).toBe('536');
  });

  it('retries while udev has not yet fixed the permissions of a fresh pin', async () => {
    const root = sysfsTree(PI4);
    const pin = join(root, 'sys/class/gpio/gpio537');
    setTimeout(() => exported(root, 537), 120);
    const line = await openGpioLine(25, { consumer: 'pm-test', root, retryMs: 2000 });
    expect(readFileSync(join(pin, 'direction'), 'utf8')).toBe('high');
    await line.close?.();
  });

  it('says how to fix: not a Pi, unknown pin, busy pin, no permission', async () => {
    await expect(openGpioLine(25, { consumer: 'pm-test', root: sysfsTree([]), backend: 'sysfs' })).rejects.toMatchObject({
      kind: 'not-a-pi',
      message: expect.stringMatching(/this is not a Pi/),
    });
    const pi4 = sysfsTree(PI4);
    await expect(openGpioLine(60, { consumer: 'pm-test', root: pi4 })).rejects.toMatchObject({
      kind: 'bad-pin',
      message: expect.stringMatching(/GPIO60 does not exist/),
    });
    expect(existsSync(join(pi4, 'sys/class/gpio/gpio572'))).toBe(false);

    // export is a directory here: writing it fails with EISDIR, standing in for kernel errors.
    const odd = sysfsTree(PI4, { exportFile: false });
    mkdirSync(join(odd, 'sys/class/gpio/export'));
    await expect(openGpioLine(25, { consumer: 'pm-test', root: odd, backend: 'sysfs' })).rejects.toThrow(
      /cannot export GPIO25 \(sysfs 537\): EISDIR/,
    );
  });

  it('export errors name the fix (the kernel reports them as errno codes)', () => {
    expect(sysfsExportError('EACCES', 25, 537)).toMatchObject({
      kind: 'permission',
      message: 'no permission to export GPIO25 (sysfs 537)',
    });
    expect(sysfsExportError('EINVAL', 25, 25).message).toMatch(/BCM numbers, not header pin numbers/);
    expect(sysfsExportError('EBUSY', 24, 536).message).toMatch(/kernel driver owns it; remove the dtoverlay/);
  });
});

/**
 * A stand-in for libgpiod's gpioset, following its documented behaviour: --version, --help,
 * v1 `--mode=exit chip N=V`, v2 `-t0` and `--interactive` (`set N=V`, `get N` -> `"N"=active`,
 * `exit`). It logs every value it applies to a file so the test sees what the "line" did.
 */
function fakeGpioset(
  version: '1.6.3' | '2.1.3',
  opts: { interactive?: boolean; fail?: string; dieAfterSets?: number; mute?: boolean; muteFromStart?: boolean } = {},
): { bin: string; log: string; detect: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gpioset-'));
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const bin = join(dir, 'gpioset');
  const help = opts.interactive ? '  -i, --interactive\\tset the lines then wait for additional set commands' : '  -t, --toggle <period>';
  writeFileSync(
    bin,
    `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
const log = (s) => fs.appendFileSync(${JSON.stringify(log)}, s + '\\n');
if (args[0] === '--version') { console.log('gpioset (libgpiod) v${version}'); process.exit(0); }
if (args[0] === '--help') { console.log('Usage: gpioset [OPTIONS] <line=value>...\\n${help}'); process.exit(0); }
log(args.join(' '));
${opts.fail ? `console.error(${JSON.stringify(opts.fail)}); process.exit(1);` : ''}
const spec = args[args.length - 1];
const [line, value] = spec.split('=');
let level = value;
log('line ' + line + '=' + level);
if (!args.includes('--interactive')) process.exit(0);
process.stdout.write('gpioset> ');
let buf = '';
let sets = 0;
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const cmd = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
    const [w, a] = cmd.split(/\\s+/);
    if (w === 'set') {
      if (++sets > ${opts.dieAfterSets ?? 1e9}) { console.error('gpioset: unable to set values: No such device'); process.exit(1); }
      const [l, v] = a.split('='); if (l === line) { level = v; log('line ' + l + '=' + v); }
    }
    else if (w === 'get' && ${opts.muteFromStart ? 'false' : opts.mute ? 'sets === 0' : 'true'}) process.stdout.write('"' + line + '"=' + (level === '1' ? 'active' : 'inactive') + '\\n');
    else if (w === 'exit') { log('exit'); process.exit(0); }
    process.stdout.write('gpioset> ');
  }
});
`,
  );
  chmodSync(bin, 0o755);
  const detect = join(dir, 'gpiodetect');
  writeFileSync(detect, `#!/bin/sh\necho 'gpiochip0 [pinctrl-bcm2711] (58 lines)'\necho 'gpiochip1 [raspberrypi-exp-gpio] (8 lines)'\n`);
  chmodSync(detect, 0o755);
  return { bin, log, detect };
}

const noSysfs = () => mkdtempSync(join(tmpdir(), 'nosysfs-'));

describe('gpioset backend (character device)', () => {
  it('libgpiod 2 interactive: one long-lived process, each set acknowledged before it resolves', async () => {
    const fake = fakeGpioset('2.1.3', { interactive: true });
    const line = await openGpioLine(25, {
      consumer: 'pm-test',
      root: noSysfs(),
      gpiosetPath: fake.bin,
      gpiodetectPath: fake.detect,
      initial: 0,
    });
    await line.set(1);
    // Acknowledged means applied: the log already has it when set() resolved.
    expect(readFileSync(fake.log, 'utf8')).toContain('line 25=1');
    await Promise.all([line.set(0), line.set(1), line.set(0)]);
    await line.close?.();
    const lines = readFileSync(fake.log, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('--consumer pm-test --chip gpiochip0 --interactive 25=0');
    expect(lines.slice(1)).toEqual(['line 25=0', 'line 25=1', 'line 25=0', 'line 25=1', 'line 25=0', 'exit']);
  });

  it('a gpioset that never starts answering fails the open after the start-up limit', async () => {
    const silent = fakeGpioset('2.1.3', { interactive: true, mute: true, muteFromStart: true });
    await expect(
      openGpioLine(25, {
        consumer: 'pm-test',
        root: noSysfs(),
        gpiosetPath: silent.bin,
        gpiodetectPath: silent.detect,
        ackTimeoutMs: 10,
        startTimeoutMs: 300,
      }),
    ).rejects.toThrow(/did not acknowledge GPIO25=1 within 300 ms/);
  });

  it('a gpioset that dies or stops answering fails the set with its message instead of hanging', async () => {
    const dying = fakeGpioset('2.1.3', { interactive: true, dieAfterSets: 1 });
    const line = await openGpioLine(25, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: dying.bin, gpiodetectPath: dying.detect });
    await line.set(0);
    await expect(line.set(1)).rejects.toThrow(/gpioset failed for GPIO25 on gpiochip0: gpioset: unable to set values: No such device/);
    await expect(line.set(0)).rejects.toThrow(/No such device/);
    await line.close?.();

    // It answers the start-up `get` and then never again. The 200 ms limit applies to changes of
    // a running process only: starting the fake (a cold Node start) has its own, generous limit.
    const mute = fakeGpioset('2.1.3', { interactive: true, mute: true });
    const quiet = await openGpioLine(25, {
      consumer: 'pm-test',
      root: noSysfs(),
      gpiosetPath: mute.bin,
      gpiodetectPath: mute.detect,
      ackTimeoutMs: 200,
    });
    await expect(quiet.set(0)).rejects.toMatchObject({
      kind: 'timeout',
      message: expect.stringMatching(/did not acknowledge GPIO25=0 within 200 ms/),
    });
    await quiet.close?.();
  });

  it('libgpiod 1.6: one gpioset --mode=exit per change, on the chip found by label', async () => {
    const fake = fakeGpioset('1.6.3');
    const line = await openGpioLine(24, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: fake.bin, gpiodetectPath: fake.detect });
    await line.set(0);
    const lines = readFileSync(fake.log, 'utf8').trim().split('\n');
    expect(lines).toEqual(['--mode=exit gpiochip0 24=1', 'line 24=1', '--mode=exit gpiochip0 24=0', 'line 24=0']);
  });

  it('libgpiod 2 without interactive mode: gpioset -t0 per change', async () => {
    const fake = fakeGpioset('2.1.3');
    const line = await openGpioLine(24, {
      consumer: 'pm-test',
      root: noSysfs(),
      gpiosetPath: fake.bin,
      gpiodetectPath: fake.detect,
      initial: 0,
    });
    await line.set(1);
    expect(readFileSync(fake.log, 'utf8')).toContain('--chip gpiochip0 -t0 24=1');
  });

  it('failures say how to fix them: busy line, no permission, gpioset missing, unknown pin', async () => {
    const busy = fakeGpioset('2.1.3', {
      interactive: true,
      fail: 'gpioset: unable to request lines on chip /dev/gpiochip0: Device or resource busy',
    });
    await expect(
      openGpioLine(25, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: busy.bin, gpiodetectPath: busy.detect }),
    ).rejects.toThrow(/in use by another program or kernel driver/);
    const perm = fakeGpioset('1.6.3', { fail: 'gpioset: error setting the GPIO line values: Permission denied' });
    await expect(
      openGpioLine(25, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: perm.bin, gpiodetectPath: perm.detect }),
    ).rejects.toMatchObject({
      kind: 'permission',
      message: expect.stringMatching(/^no permission on \/dev\/gpiochip0 for GPIO25 \(.*Permission denied\)$/),
    });
    await expect(openGpioLine(25, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: '/nonexistent/gpioset' })).rejects.toMatchObject({
      kind: 'tool-missing',
      message: '/nonexistent/gpioset not found (the libgpiod tools are not installed)',
    });
    const ok = fakeGpioset('2.1.3', { interactive: true });
    await expect(
      openGpioLine(58, { consumer: 'pm-test', root: noSysfs(), gpiosetPath: ok.bin, gpiodetectPath: ok.detect }),
    ).rejects.toThrow(/GPIO58 does not exist/);
  });

  it('auto prefers sysfs when the kernel offers it (no process at all)', async () => {
    const root = sysfsTree(PI5);
    exported(root, 596);
    const line = await openGpioLine(25, { consumer: 'pm-test', root, gpiosetPath: '/nonexistent/gpioset' });
    await line.set(1);
    expect(readFileSync(join(root, 'sys/class/gpio/gpio596/value'), 'utf8')).toBe('1');
    await line.close?.();
  });
});
