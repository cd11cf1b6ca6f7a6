import { setTimeout as delay } from 'node:timers/promises';
import type { GpioLine, SpiTransfer } from './interfaces.js';
import {
  CMD,
  COLMOD_16BIT,
  centredMemory,
  GAMMA,
  INIT_SEQUENCE,
  isLandscape,
  MADCTL,
  MAX_COMMAND_HZ,
  MAX_MESSAGE_BYTES,
  MEMORY,
  ROTATION_MADCTL,
  VARIANTS,
  type ModuleVariant,
  type Rotation,
} from './protocol.js';

export interface St7735Options {
  variant?: ModuleVariant;
  rotation?: Rotation;
  /** Overrides of the variant's geometry and colour settings (offsets as in VariantSpec: portrait, Adafruit's colstart/rowstart). */
  colOffset?: number;
  rowOffset?: number;
  bgr?: boolean;
  invert?: boolean;
  /** SPI clock for pixel data, Hz (default 24 MHz); the display's `speedHz` setting. */
  speedHz?: number;
  /** SPI clock for commands, Hz: capped at MAX_COMMAND_HZ (10 MHz). */
  commandSpeedHz?: number;
  maxMessageBytes?: number;
  /** Waits `ms` (the reset and init delays); default: Node's timers. Tests pass one that returns at once. */
  sleep?: (ms: number) => Promise<void>;
}

/** What was wrong, so an application can name its own setting: `geometry` (offsets), `rotation`, `region` (a write call). */
export type St7735ErrorKind = 'geometry' | 'rotation' | 'region' | 'variant';

export class St7735Error extends Error {
  constructor(
    message: string,
    readonly kind: St7735ErrorKind = 'region',
  ) {
    super(message);
    this.name = 'St7735Error';
  }
}

/**
 * The ST7735 device layer (luma's "device"): reset, init, and windowed RGB565 writes. It knows
 * commands and geometry, nothing about what is drawn. Every transfer is awaited before the next
 * starts, so D/C never changes during a transfer.
 */
export class St7735 {
  /** Logical size after rotation (160x128 for the 1.8" module in landscape). */
  readonly width: number;
  readonly height: number;
  readonly colOffset: number;
  readonly rowOffset: number;
  readonly madctl: number;
  private readonly invert: boolean;
  private readonly pixelHz: number;
  private readonly commandHz: number;
  private readonly maxBytes: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private queue: Promise<void> = Promise.resolve();
  /** The D/C level last driven, so unchanged levels cost no GPIO write (null = unknown). */
  private dcLevel: 0 | 1 | null = null;
  /** Bytes clocked out since construction (commands, parameters and pixels). */
  bytesSent = 0;

  constructor(
    private readonly spi: SpiTransfer,
    private readonly dc: GpioLine,
    private readonly reset: GpioLine | null,
    opts: St7735Options = {},
  ) {
    const v = VARIANTS[opts.variant ?? 'greentab'];
    if (v === undefined) throw new St7735Error(`unknown panel variant ${JSON.stringify(opts.variant)}`, 'variant');
    const rotation = opts.rotation ?? 90;
    const rot = ROTATION_MADCTL[rotation];
    if (rot === undefined) throw new St7735Error(`rotation ${String(rotation)} is not one of 0, 90, 180, 270`, 'rotation');
    const landscape = isLandscape(rotation);
    this.width = landscape ? v.height : v.width;
    this.height = landscape ? v.width : v.height;
    const col = opts.colOffset ?? v.colOffset;
    const row = opts.rowOffset ?? v.rowOffset;
    // The glass is centred in the memory its module straps (VariantSpec), so MX/MY mirroring
    // lands on it from either end and the portrait offsets hold in every rotation; MV makes
    // CASET address physical rows, so in landscape the two swap. This is how Adafruit's and
    // the Linux drivers address these modules.
    if (centredMemory({ ...v, colOffset: col, rowOffset: row }) === null)
      throw new St7735Error(
        `a ${v.width}x${v.height} glass at offset ${col}/${row} needs ${2 * col + v.width}x${2 * row + v.height} frame memory, more than the controller's ${MEMORY.cols}x${MEMORY.rows}: check the column/row offsets`,
        'geometry',
      );
    this.colOffset = landscape ? row : col;
    this.rowOffset = landscape ? col : row;
    this.madctl = rot | ((opts.bgr ?? v.bgr) ? MADCTL.BGR : 0);
    this.invert = opts.invert ?? v.invert;
    this.pixelHz = opts.speedHz ?? 24_000_000;
    this.commandHz = Math.min(opts.commandSpeedHz ?? MAX_COMMAND_HZ, MAX_COMMAND_HZ);
    this.maxBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.sleep = opts.sleep ?? ((ms) => delay(ms));
  }

  /** Hardware reset (RESET low >= 20 us, then 120 ms) and the ST7735R init sequence. */
  init(): Promise<void> {
    return this.serial(async () => {
      this.dcLevel = null;
      if (this.reset) {
        await this.reset.set(1);
        await this.sleep(5);
        await this.reset.set(0);
        await this.sleep(1);
        await this.reset.set(1);
        await this.sleep(120);
      }
      for (const step of INIT_SEQUENCE) {
        await this.command(step.cmd, step.params);
        if (step.delayMs) await this.sleep(step.delayMs);
      }
      await this.command(this.invert ? CMD.INVON : CMD.INVOFF);
      await this.command(CMD.MADCTL, [this.madctl]);
      await this.command(CMD.COLMOD, [COLMOD_16BIT]);
      await this.setWindow(0, 0, this.width, this.height);
      for (const g of GAMMA) await this.command(g.cmd, g.params);
      await this.command(CMD.NORON);
      await this.sleep(10);
      await this.command(CMD.DISPON);
      await this.sleep(100);
    });
  }

  /** Writes w x h RGB565 big-endian pixels at (x, y) through CASET/RASET/RAMWR. */
  writeRegion(x: number, y: number, w: number, h: number, rgb565be: Buffer): Promise<void> {
    if (w <= 0 || h <= 0 || x < 0 || y < 0 || x + w > this.width || y + h > this.height)
      return Promise.reject(new St7735Error(`region ${w}x${h} at (${x},${y}) is outside the ${this.width}x${this.height} screen`));
    if (rgb565be.length < w * h * 2)
      return Promise.reject(new St7735Error(`region ${w}x${h} needs ${w * h * 2} bytes, got ${rgb565be.length}`));
    // Copy now: the caller may reuse its buffer before the queued write runs.
    const pixels = Buffer.from(rgb565be.subarray(0, w * h * 2));
    return this.serial(async () => {
      await this.setWindow(x, y, w, h);
      await this.command(CMD.RAMWR);
      await this.setDc(1);
      for (let off = 0; off < pixels.length; off += this.maxBytes) {
        const chunk = pixels.subarray(off, Math.min(pixels.length, off + this.maxBytes));
        await this.send(chunk, this.pixelHz);
      }
    });
  }

  async close(): Promise<void> {
    await this.queue;
  }

  private async setWindow(x: number, y: number, w: number, h: number): Promise<void> {
    const xs = x + this.colOffset;
    const xe = xs + w - 1;
    const ys = y + this.rowOffset;
    const ye = ys + h - 1;
    await this.command(CMD.CASET, [xs >> 8, xs & 0xff, xe >> 8, xe & 0xff]);
    await this.command(CMD.RASET, [ys >> 8, ys & 0xff, ye >> 8, ye & 0xff]);
  }

  private async command(cmd: number, params?: number[]): Promise<void> {
    await this.setDc(0);
    await this.send(Buffer.from([cmd]), this.commandHz);
    if (params && params.length > 0) {
      await this.setDc(1);
      await this.send(Buffer.from(params), this.commandHz);
    }
  }

  private async setDc(level: 0 | 1): Promise<void> {
    if (this.dcLevel === level) return;
    this.dcLevel = null; // unknown until the write succeeded
    await this.dc.set(level);
    this.dcLevel = level;
  }

  private async send(buf: Buffer, speedHz: number): Promise<void> {
    await this.spi.transfer([{ sendBuffer: buf, byteLength: buf.length, speedHz }]);
    this.bytesSent += buf.length;
  }

  /** Runs operations one after another, even when callers do not await each other. */
  private serial(op: () => Promise<void>): Promise<void> {
    const next = this.queue.then(op);
    this.queue = next.catch(() => {});
    return next;
  }
}
