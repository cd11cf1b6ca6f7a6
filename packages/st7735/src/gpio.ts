import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { GpioLine } from './interfaces.js';
import { DeviceOpenError, type DeviceFailure } from './spi.js';

/**
 * GPIO output lines for D/C and RESET (docs/hardware.md "GPIO"). Two backends behind `GpioLine`:
 *
 * - sysfs (preferred when present): the sysfs number is the header chip's base + BCM number; the
 *   base is read from the chip whose label is pinctrl-* (pinctrl-rp1 on a Pi 5, pinctrl-bcm2711
 *   on a Pi 4, pinctrl-bcm2835 on 3/Zero), never assumed: 0 on old kernels, 512 on a Pi 4 and
 *   571 on a Pi 5 with 6.6+. Plain file writes on a value file kept open: ~10 us per toggle.
 * - the character device through a long-lived `gpioset` (libgpiod tools), for kernels without
 *   sysfs GPIO. libgpiod 2 (Trixie) with interactive mode: one process per line, each `set` is
 *   acknowledged by a `get` round trip so D/C is settled before the next SPI transfer. libgpiod
 *   1.6 (Bookworm) has no interactive mode: each change runs `gpioset --mode=exit` to completion
 *   (a few ms; correct, only slower).
 *
 * Neither needs a native addon, so nothing ARM-only can break `npm ci` on x86.
 */
export interface GpioChipInfo {
  /** sysfs directory name (gpiochip512) or character device name (gpiochip0). */
  name: string;
  label: string;
  /** sysfs number of line 0; -1 when unknown (character device only). */
  base: number;
  ngpio: number;
}

export type GpioBackend = 'auto' | 'sysfs' | 'gpioset';

export interface GpioLineOptions {
  /** 'auto' (default): sysfs when the kernel offers it, else the character device via gpioset. */
  backend?: GpioBackend;
  /** Filesystem root for /sys (tests point it at a fake tree). */
  root?: string;
  /** How long to retry while udev fixes permissions of a freshly exported pin. */
  retryMs?: number;
  /** Level driven when the line is opened (RESET must start high = not in reset). Default 1. */
  initial?: 0 | 1;
  /** gpioset / gpiodetect executables (tests use fakes). */
  gpiosetPath?: string;
  gpiodetectPath?: string;
  /** Consumer name gpioinfo shows for the line (the program's name): given by the program, this library has none of its own. */
  consumer: string;
  /** Longest wait for a running gpioset to acknowledge a change. Default 2 s. */
  ackTimeoutMs?: number;
  /** Longest wait for gpioset to start and acknowledge the initial level. Default 15 s. */
  startTimeoutMs?: number;
}

export class GpioError extends DeviceOpenError {
  constructor(message: string, kind: DeviceFailure = 'other') {
    super(message, kind);
    this.name = 'GpioError';
  }
}

const HEADER_LABEL = /^pinctrl-(rp1|bcm2712|bcm2711|bcm2835)\b/;
/** The 40-pin header exposes BCM 0-27; the SoC chips have up to 54 lines. */
const MAX_BCM = 54;

const readTrim = (f: string): string => readFileSync(f, 'utf8').trim();

/** Chips under /sys/class/gpio (only present when the kernel has sysfs GPIO). */
export function listGpioChips(root = '/'): GpioChipInfo[] {
  const dir = join(root, 'sys/class/gpio');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => /^gpiochip\d+$/.test(n))
    .map((name) => ({
      name,
      label: readTrim(join(dir, name, 'label')),
      base: Number(readTrim(join(dir, name, 'base'))),
      ngpio: Number(readTrim(join(dir, name, 'ngpio'))),
    }));
}

/**
 * Character-device chips from /sys/bus/gpio/devices (present with or without sysfs GPIO). The
 * label lives in the device directory on newer kernels, or in its legacy gpiochipN child.
 */
export function listCharChips(root = '/'): GpioChipInfo[] {
  const dir = join(root, 'sys/bus/gpio/devices');
  if (!existsSync(dir)) return [];
  const chips: GpioChipInfo[] = [];
  for (const name of readdirSync(dir).filter((n) => /^gpiochip\d+$/.test(n))) {
    const dev = join(dir, name);
    let label = '';
    let base = -1;
    let ngpio = 0;
    if (existsSync(join(dev, 'label'))) label = readTrim(join(dev, 'label'));
    if (existsSync(join(dev, 'ngpio'))) ngpio = Number(readTrim(join(dev, 'ngpio')));
    for (const child of readdirSync(dev).filter((n) => /^gpiochip\d+$/.test(n) && existsSync(join(dev, n, 'label')))) {
      label ||= readTrim(join(dev, child, 'label'));
      base = Number(readTrim(join(dev, child, 'base')));
      ngpio ||= Number(readTrim(join(dev, child, 'ngpio')));
    }
    if (label) chips.push({ name, label, base, ngpio });
  }
  return chips;
}

/** `gpiodetect` output (same in libgpiod 1.6 and 2.x): "gpiochip0 [pinctrl-bcm2711] (58 lines)". */
export function parseGpiodetect(text: string): GpioChipInfo[] {
  const chips: GpioChipInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^(gpiochip\d+)\s+\[([^\]]*)\]\s+\((\d+)\s+lines?\)/.exec(line.trim());
    if (m) chips.push({ name: m[1]!, label: m[2]!, base: -1, ngpio: Number(m[3]) });
  }
  return chips;
}

/** The header GPIO chip: found by label, never by number (the Pi 5 renumbered it). */
export function headerChip(chips: GpioChipInfo[]): GpioChipInfo | null {
  return chips.find((c) => HEADER_LABEL.test(c.label)) ?? null;
}

function checkBcm(bcm: number, chip: GpioChipInfo): void {
  const lines = Math.min(chip.ngpio || MAX_BCM, MAX_BCM);
  if (!Number.isInteger(bcm) || bcm < 0 || bcm >= lines)
    throw new GpioError(
      `GPIO${bcm} does not exist on ${chip.label} (BCM 0-${lines - 1}; the header has 0-27): check the pin number`,
      'bad-pin',
    );
}

export function sysfsNumber(bcm: number, chip: GpioChipInfo): number {
  checkBcm(bcm, chip);
  if (chip.base < 0) throw new GpioError(`${chip.name} (${chip.label}) has no sysfs base number`);
  return chip.base + bcm;
}

/** Version of the libgpiod tools from `gpioset --version` ("gpioset (libgpiod) v1.6.3"). */
export function parseLibgpiodVersion(text: string): { major: number; minor: number; patch: number } | null {
  const m = /libgpiod\)?\s+v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text) ?? /\bv(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) } : null;
}

/** How gpioset will drive the line, from its version and whether its help lists --interactive. */
export type GpiosetMode = 'interactive' | 'oneshot-v1' | 'oneshot-v2';

export function gpiosetMode(versionText: string, helpText: string): GpiosetMode {
  const v = parseLibgpiodVersion(versionText);
  if (!v)
    throw new GpioError(
      `cannot tell the libgpiod version from 'gpioset --version' (${JSON.stringify(versionText.slice(0, 80))}): not the libgpiod tools`,
      'tool-missing',
    );
  if (v.major < 2) return 'oneshot-v1';
  // Interactive mode is a build option of libgpiod 2 (needs libedit); fall back when missing.
  return /--interactive\b/.test(helpText) ? 'interactive' : 'oneshot-v2';
}

/** Command line for each mode (libgpiod 1.6: `gpioset [opts] chip offset=value`; 2.x: `-c chip`). */
export function gpiosetArgs(mode: GpiosetMode, chip: string, offset: number, value: 0 | 1, consumer: string): string[] {
  switch (mode) {
    case 'interactive':
      return ['--consumer', consumer, '--chip', chip, '--interactive', `${offset}=${value}`];
    case 'oneshot-v2':
      // -t0: set, then exit at once (the last toggle period 0 means "exit").
      return ['--consumer', consumer, '--chip', chip, '-t0', `${offset}=${value}`];
    case 'oneshot-v1':
      return ['--mode=exit', chip, `${offset}=${value}`];
  }
}

/** The acknowledgement of `get <offset>` in interactive mode: `"25"=active` (or unquoted). */
export function parseGetReply(text: string, offset: number): 0 | 1 | null {
  // Anchored on what precedes the id, so line 25 never matches a reply about line 125.
  const m = new RegExp(`(?:^|[^\\w"])"?${offset}"?=(active|inactive)\\b`).exec(text);
  return m ? (m[1] === 'active' ? 1 : 0) : null;
}

export async function openGpioLine(bcm: number, opts: GpioLineOptions): Promise<GpioLine> {
  const root = opts.root ?? '/';
  const backend = opts.backend ?? 'auto';
  const sysfsChip = headerChip(listGpioChips(root));
  const sysfsUsable = sysfsChip !== null && existsSync(join(root, 'sys/class/gpio/export'));
  if (backend === 'sysfs' || (backend === 'auto' && sysfsUsable)) {
    if (!sysfsChip)
      throw new GpioError(
        `no Raspberry Pi GPIO chip (label pinctrl-*) under ${join(root, 'sys/class/gpio')}: this is not a Pi, or the kernel lacks sysfs GPIO (the gpioset backend works without it)`,
        'not-a-pi',
      );
    return openSysfsLine(bcm, sysfsChip, root, opts);
  }
  return openGpiosetLine(bcm, root, opts);
}

/** A failed write to /sys/class/gpio/export, turned into what to do about it. */
export function sysfsExportError(code: string, bcm: number, sysfsN: number): GpioError {
  if (code === 'EACCES' || code === 'EPERM') return new GpioError(`no permission to export GPIO${bcm} (sysfs ${sysfsN})`, 'permission');
  if (code === 'EINVAL')
    return new GpioError(
      `the kernel refused GPIO${bcm} (sysfs ${sysfsN}, EINVAL): the pin does not exist on this chip; check the pin number (BCM numbers, not header pin numbers)`,
      'bad-pin',
    );
  if (code === 'EBUSY')
    return new GpioError(
      `GPIO${bcm} is busy (EBUSY): a kernel driver owns it; remove the dtoverlay that uses it (e.g. an st7735r/fbtft overlay) from /boot/firmware/config.txt, or use another pin`,
      'busy',
    );
  return new GpioError(`cannot export GPIO${bcm} (sysfs ${sysfsN}): ${code}`);
}

async function openSysfsLine(bcm: number, chip: GpioChipInfo, root: string, opts: GpioLineOptions): Promise<GpioLine> {
  const n = sysfsNumber(bcm, chip);
  const gpioDir = join(root, 'sys/class/gpio', `gpio${n}`);
  if (!existsSync(gpioDir)) {
    try {
      writeFileSync(join(root, 'sys/class/gpio/export'), String(n));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // EBUSY: claimed already, by us earlier (fine: the directory appears) or by a kernel
      // driver such as an fbtft/st7735r overlay (then the directory never appears).
      if (code !== 'EBUSY' || !existsSync(gpioDir)) throw sysfsExportError(code ?? String(err), bcm, n);
    }
  }
  // udev sets the group permissions of a freshly exported pin asynchronously: retry briefly.
  const deadline = Date.now() + (opts.retryMs ?? 1000);
  const initial = opts.initial ?? 1;
  for (;;) {
    try {
      // "high"/"low" set the direction and the level at once, without a glitch to 0.
      writeFileSync(join(gpioDir, 'direction'), initial ? 'high' : 'low');
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (Date.now() > deadline)
        throw code === 'EACCES' || code === 'EPERM'
          ? new GpioError(`no permission on ${gpioDir}`, 'permission')
          : new GpioError(`cannot make GPIO${bcm} an output: ${code ?? String(err)} (is another program using it?)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const fd = openSync(join(gpioDir, 'value'), 'r+');
  let open = true;
  return {
    set(value) {
      if (!open) throw new GpioError(`GPIO${bcm} is closed`);
      writeSync(fd, value ? '1' : '0', 0);
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** Runs a program to completion; resolves with its output, rejects with a GpioError. */
function run(cmd: string, args: string[], timeoutMs = 5000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new GpioError(`${cmd} not found (the libgpiod tools are not installed)`, 'tool-missing')
          : new GpioError(`cannot run ${cmd}: ${err.message}`),
      ),
    );
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** What a failed gpioset said, turned into a fix. */
function gpiosetFailure(bcm: number, chip: string, stderr: string): GpioError {
  const msg = stderr.trim().split('\n').slice(-2).join(' ');
  if (/permission denied/i.test(msg)) return new GpioError(`no permission on /dev/${chip} for GPIO${bcm} (${msg})`, 'permission');
  if (/busy/i.test(msg))
    return new GpioError(
      `GPIO${bcm} is in use by another program or kernel driver (${msg}): stop it, or remove the dtoverlay that claims the pin`,
      'busy',
    );
  return new GpioError(`gpioset failed for GPIO${bcm} on ${chip}: ${msg || 'no message'}`);
}

async function openGpiosetLine(bcm: number, root: string, opts: GpioLineOptions): Promise<GpioLine> {
  const gpioset = opts.gpiosetPath ?? 'gpioset';
  const consumer = opts.consumer;
  const version = await run(gpioset, ['--version']);
  const help = await run(gpioset, ['--help']);
  const mode = gpiosetMode(version.stdout + version.stderr, help.stdout + help.stderr);
  let chip = headerChip(listCharChips(root));
  if (!chip) {
    const detect = await run(opts.gpiodetectPath ?? 'gpiodetect', []);
    chip = headerChip(parseGpiodetect(detect.stdout));
  }
  if (!chip)
    throw new GpioError(
      'no Raspberry Pi GPIO chip (label pinctrl-rp1/bcm2711/bcm2835) among the GPIO character devices: this is not a Pi',
      'not-a-pi',
    );
  checkBcm(bcm, chip);
  const initial = opts.initial ?? 1;
  if (mode !== 'interactive') {
    const setOnce = async (value: 0 | 1): Promise<void> => {
      const r = await run(gpioset, gpiosetArgs(mode, chip.name, bcm, value, consumer));
      if (r.code !== 0) throw gpiosetFailure(bcm, chip.name, r.stderr + r.stdout);
    };
    await setOnce(initial);
    return { set: setOnce };
  }
  return InteractiveLine.start(gpioset, gpiosetArgs(mode, chip.name, bcm, initial, consumer), bcm, chip.name, initial, {
    ackTimeoutMs: opts.ackTimeoutMs ?? 2000,
    startTimeoutMs: opts.startTimeoutMs ?? 15_000,
  });
}

/**
 * One long-lived `gpioset --interactive` holding the line. Each set writes `set N=V` then
 * `get N`, and resolves when the reply shows V: gpioset handles commands in order, so the reply
 * proves the line changed before the caller starts the next SPI transfer.
 */
class InteractiveLine implements GpioLine {
  private out = '';
  private stderr = '';
  private waiter: { value: 0 | 1; resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private exited: GpioError | null = null;
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly bcm: number,
    private readonly chip: string,
    private readonly ackTimeoutMs: number,
  ) {
    child.stdout.on('data', (d: Buffer) => {
      this.out += d.toString();
      this.check();
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // EPIPE on a dead gpioset surfaces through 'close' below; do not crash the process on it.
    child.stdin.on('error', () => {});
    child.on('close', () => {
      this.exited = gpiosetFailure(this.bcm, this.chip, this.stderr || 'gpioset exited');
      this.fail(this.exited);
    });
  }

  static async start(
    cmd: string,
    args: string[],
    bcm: number,
    chip: string,
    initial: 0 | 1,
    timeouts: { ackTimeoutMs: number; startTimeoutMs: number },
  ): Promise<InteractiveLine> {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new GpioError(`${cmd} not found (the libgpiod tools are not installed)`, 'tool-missing') : err),
      );
    });
    const line = new InteractiveLine(child, bcm, chip, timeouts.ackTimeoutMs);
    try {
      // The first acknowledgement also proves the request succeeded (busy/permission fail here).
      // It waits for the process to start as well, which on a loaded Pi Zero can take seconds:
      // a separate, generous limit, so the per-change limit can stay tight.
      await line.request(`get ${bcm}\n`, initial, timeouts.startTimeoutMs);
    } catch (err) {
      child.kill();
      throw err;
    }
    return line;
  }

  set(value: 0 | 1): Promise<void> {
    return this.request(`set ${this.bcm}=${value}\nget ${this.bcm}\n`, value);
  }

  /** Sends commands ending in `get`, resolves when the reply shows `value`. One at a time. */
  private request(commands: string, value: 0 | 1, timeoutMs = this.ackTimeoutMs): Promise<void> {
    const op = this.chain.then(
      () =>
        new Promise<void>((resolve, reject) => {
          if (this.exited) return reject(this.exited);
          const timer = setTimeout(() => {
            this.waiter = null;
            reject(
              new GpioError(
                `gpioset did not acknowledge GPIO${this.bcm}=${value} within ${timeoutMs} ms${this.stderr ? ` (${this.stderr.trim()})` : ''}`,
                'timeout',
              ),
            );
          }, timeoutMs);
          this.waiter = { value, resolve, reject, timer };
          this.out = '';
          this.child.stdin.write(commands);
        }),
    );
    this.chain = op.catch(() => {});
    return op;
  }

  private check(): void {
    const w = this.waiter;
    if (!w) return;
    const seen = parseGetReply(this.out, this.bcm);
    if (seen === null) return;
    clearTimeout(w.timer);
    this.waiter = null;
    if (seen === w.value) w.resolve();
    else w.reject(new GpioError(`gpioset reports GPIO${this.bcm}=${seen} after setting ${w.value}`));
  }

  private fail(err: GpioError): void {
    const w = this.waiter;
    if (!w) return;
    clearTimeout(w.timer);
    this.waiter = null;
    w.reject(err);
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.stdin.end('exit\n');
    const timer = setTimeout(() => this.child.kill(), 1000);
    await done;
    clearTimeout(timer);
  }
}
