import type { GpioLine, SpiPart, SpiTransfer } from './interfaces.js';
import { rgb565ToRgb } from './convert.js';
import {
  CMD,
  COLMOD_16BIT,
  centredMemory,
  isLandscape,
  MADCTL,
  MAX_MESSAGE_BYTES,
  MEMORY,
  MODULE_VARIANTS,
  ROTATION_MADCTL,
  VARIANTS,
  type ModuleVariant,
  type Rotation,
  type VariantSpec,
} from './protocol.js';

/** A violation of the ST7735 protocol or the spidev limits: the real module would show garbage. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Parameter bytes each command takes (datasheet command list). */
const PARAMS: Record<number, number> = {
  [CMD.CASET]: 4,
  [CMD.RASET]: 4,
  [CMD.MADCTL]: 1,
  [CMD.COLMOD]: 1,
  [CMD.FRMCTR1]: 3,
  [CMD.FRMCTR2]: 3,
  [CMD.FRMCTR3]: 6,
  [CMD.INVCTR]: 1,
  [CMD.PWCTR1]: 3,
  [CMD.PWCTR2]: 1,
  [CMD.PWCTR3]: 2,
  [CMD.PWCTR4]: 2,
  [CMD.PWCTR5]: 2,
  [CMD.VMCTR1]: 1,
  [CMD.GMCTRP1]: 16,
  [CMD.GMCTRN1]: 16,
  [CMD.SWRESET]: 0,
  [CMD.SLPOUT]: 0,
  [CMD.NORON]: 0,
  [CMD.INVOFF]: 0,
  [CMD.INVON]: 0,
  [CMD.DISPON]: 0,
};

export interface EmulatorStats {
  /** SPI messages (one `transfer` call each). */
  transfers: number;
  /** All bytes clocked in: commands, parameters, pixels. */
  bytesSent: number;
  commands: number;
  pixelBytes: number;
  pixelsWritten: number;
  /** Highest clock used for a command byte and for pixel data. */
  maxCommandHz: number;
  maxPixelHz: number;
  largestMessage: number;
  /** Rising edges of RESET after it was held low. */
  hardwareResets: number;
}

/**
 * The glass of a module: a variant name, or the geometry spelled out (for modules whose batch
 * differs from the stock variants).
 */
export interface GlassOptions {
  /** Base geometry to start from; the other fields override it. Default greentab. */
  variant?: ModuleVariant;
  glassWidth?: number;
  glassHeight?: number;
  /** Where the glass sits in unmirrored controller memory (portrait). */
  colOffset?: number;
  rowOffset?: number;
  bgr?: boolean;
  invert?: boolean;
  /**
   * Frame memory as strapped by the GM pins (ST7735R datasheet, "GM[2:0]"): MX/MY mirror
   * addresses within it. Default: the memory the glass is centred in (VariantSpec), as on
   * every module the variants describe; set it to model a module whose glass is not centred.
   */
  memCols?: number;
  memRows?: number;
  /**
   * Wire time of one message: the emulator yields here between accepting a message and clocking
   * it in, which is how it catches a D/C change or a second transfer during one. Default: one
   * turn of the event loop.
   */
  wireDelay?: () => Promise<void>;
}

/** A glass with the frame memory it sits in. */
export interface GlassSpec extends VariantSpec {
  memCols: number;
  memRows: number;
}

function glassSpecOf(glass: ModuleVariant | GlassOptions): GlassSpec {
  const opts: GlassOptions = typeof glass === 'string' ? { variant: glass } : glass;
  const v = VARIANTS[opts.variant ?? 'greentab'];
  if (v === undefined) throw new ProtocolError(`unknown panel variant ${JSON.stringify(opts.variant)} (${MODULE_VARIANTS.join(', ')})`);
  const spec: VariantSpec = {
    width: opts.glassWidth ?? v.width,
    height: opts.glassHeight ?? v.height,
    colOffset: opts.colOffset ?? v.colOffset,
    rowOffset: opts.rowOffset ?? v.rowOffset,
    bgr: opts.bgr ?? v.bgr,
    invert: opts.invert ?? v.invert,
  };
  const centred = centredMemory(spec);
  const memCols = opts.memCols ?? centred?.cols ?? MEMORY.cols;
  const memRows = opts.memRows ?? centred?.rows ?? MEMORY.rows;
  if (
    memCols > MEMORY.cols ||
    memRows > MEMORY.rows ||
    spec.colOffset < 0 ||
    spec.rowOffset < 0 ||
    spec.colOffset + spec.width > memCols ||
    spec.rowOffset + spec.height > memRows
  )
    throw new RangeError(
      `a ${spec.width}x${spec.height} glass at ${spec.colOffset}/${spec.rowOffset} does not fit ${memCols}x${memRows} memory (the controller has at most ${MEMORY.cols}x${MEMORY.rows})`,
    );
  return { ...spec, memCols, memRows };
}

/**
 * The glass position (native portrait) seen at (x, y) when the module is held in `rotation`.
 * Rotation 0 is the native scan turned 180 degrees (MADCTL MX|MY shows upright, as Adafruit's
 * rotation 0 does); each further step turns the view by another 90 degrees.
 */
function viewToGlass(rotation: Rotation, x: number, y: number, glassW: number, glassH: number): [number, number] {
  switch (rotation) {
    case 0:
      return [glassW - 1 - x, glassH - 1 - y];
    case 90:
      return [y, glassH - 1 - x];
    case 180:
      return [x, y];
    case 270:
      return [glassW - 1 - y, x];
  }
}

/**
 * An ST7735 that decodes the byte stream it receives (with the D/C level) into the controller's
 * 132x162 memory and shows it on a glass with the variant's offsets, sub-pixel order and
 * inversion. It implements the SPI and GPIO interfaces the driver uses, and fails loudly on
 * protocol violations.
 */
export class EmulatedSt7735 {
  readonly spi: SpiTransfer;
  readonly dc: GpioLine;
  readonly reset: GpioLine;
  readonly glassSpec: GlassSpec;
  readonly memory = new Uint16Array(MEMORY.cols * MEMORY.rows);
  private dcLevel: 0 | 1 = 1;
  private resetLevel: 0 | 1 = 1;
  private madctl = 0;
  private colmod = 0x06; // power-on: 18 bits per pixel
  private inverted = false;
  private displayOn = false;
  private awake = false;
  private cmd: number | null = null;
  private params: number[] = [];
  private win = { cs: 0, ce: MEMORY.cols - 1, rs: 0, re: MEMORY.rows - 1 };
  private ptr = { c: 0, r: 0 };
  private pendingByte: number | null = null;
  /** A message is on the wire (accepted, not yet clocked in). */
  private busy = false;
  private readonly wireDelay: () => Promise<void>;
  private readonly counters: EmulatorStats = {
    transfers: 0,
    bytesSent: 0,
    commands: 0,
    pixelBytes: 0,
    pixelsWritten: 0,
    maxCommandHz: 0,
    maxPixelHz: 0,
    largestMessage: 0,
    hardwareResets: 0,
  };

  constructor(glass: ModuleVariant | GlassOptions = 'greentab') {
    this.glassSpec = glassSpecOf(glass);
    // Power-on window: the whole memory as strapped.
    this.win = { cs: 0, ce: this.glassSpec.memCols - 1, rs: 0, re: this.glassSpec.memRows - 1 };
    this.wireDelay =
      (typeof glass === 'object' && 'wireDelay' in glass && glass.wireDelay) || (() => new Promise<void>((r) => setImmediate(r)));
    this.spi = { transfer: (message) => this.transfer(message) };
    this.dc = {
      set: (v) => {
        // The controller samples D/C on the last bit of each byte: a change while a message is
        // being clocked turns the rest of it into commands (or parameters). Fail loudly instead.
        if (this.busy && v !== this.dcLevel)
          throw new ProtocolError(`D/C changed to ${v} while an SPI transfer was in progress: await each transfer before toggling D/C`);
        this.dcLevel = v;
      },
    };
    this.reset = {
      set: (v) => {
        if (this.busy && v === 0) throw new ProtocolError('RESET pulled low while an SPI transfer was in progress');
        if (this.resetLevel === 0 && v === 1) {
          this.hardwareReset();
          this.counters.hardwareResets++;
        }
        this.resetLevel = v;
      },
    };
  }

  /** A snapshot of the traffic counters. */
  stats(): EmulatorStats {
    return { ...this.counters };
  }

  get isOn(): boolean {
    return this.displayOn && this.awake;
  }

  private hardwareReset(): void {
    this.softwareReset();
    this.memory.fill(0);
  }

  private softwareReset(): void {
    this.madctl = 0;
    this.colmod = 0x06;
    this.inverted = false;
    this.displayOn = false;
    this.awake = false;
    this.cmd = null;
    this.params = [];
    this.win = { cs: 0, ce: this.glassSpec.memCols - 1, rs: 0, re: this.glassSpec.memRows - 1 };
  }

  private async transfer(message: SpiPart[]): Promise<void> {
    // spidev serialises messages in the kernel, but a driver that starts one before the previous
    // finished cannot know which D/C level each will see: that is the bug this catches.
    if (this.busy) throw new ProtocolError('SPI transfer started before the previous one finished');
    const total = message.reduce((n, p) => n + p.byteLength, 0);
    if (total > MAX_MESSAGE_BYTES)
      throw new ProtocolError(`SPI message of ${total} bytes exceeds spidev's ${MAX_MESSAGE_BYTES}-byte limit (EMSGSIZE)`);
    for (const p of message)
      if (p.byteLength > p.sendBuffer.length)
        throw new ProtocolError(`SPI part says byteLength ${p.byteLength} but its sendBuffer has ${p.sendBuffer.length} bytes`);
    if (this.resetLevel === 0) throw new ProtocolError('SPI transfer while RESET is held low');
    this.busy = true;
    try {
      await this.wireDelay();
    } finally {
      this.busy = false;
    }
    const c = this.counters;
    c.transfers++;
    c.bytesSent += total;
    c.largestMessage = Math.max(c.largestMessage, total);
    for (const part of message) {
      const bytes = part.sendBuffer.subarray(0, part.byteLength);
      if (this.dcLevel === 0) {
        c.maxCommandHz = Math.max(c.maxCommandHz, part.speedHz ?? 0);
        c.commands += bytes.length;
        for (const b of bytes) this.command(b);
      } else if (this.cmd === CMD.RAMWR) {
        c.maxPixelHz = Math.max(c.maxPixelHz, part.speedHz ?? 0);
        c.pixelBytes += bytes.length;
        for (const b of bytes) this.pixelByte(b);
      } else {
        c.maxCommandHz = Math.max(c.maxCommandHz, part.speedHz ?? 0);
        for (const b of bytes) this.param(b);
      }
    }
  }

  private command(b: number): void {
    if (this.cmd !== null && this.cmd !== CMD.RAMWR && this.params.length < (PARAMS[this.cmd] ?? 0))
      throw new ProtocolError(
        `command 0x${this.cmd.toString(16)} got ${this.params.length} of ${PARAMS[this.cmd]} parameters before the next command`,
      );
    this.cmd = b;
    this.params = [];
    this.pendingByte = null;
    switch (b) {
      case CMD.SWRESET:
        this.softwareReset();
        this.cmd = CMD.SWRESET;
        break;
      case CMD.SLPOUT:
        this.awake = true;
        break;
      case CMD.DISPON:
        this.displayOn = true;
        break;
      case CMD.INVON:
        this.inverted = true;
        break;
      case CMD.INVOFF:
        this.inverted = false;
        break;
      case CMD.RAMWR:
        // RAMWR (again) restarts at the window origin.
        this.ptr = { c: this.win.cs, r: this.win.rs };
        break;
      default:
        if (PARAMS[b] === undefined) throw new ProtocolError(`unknown command 0x${b.toString(16)}`);
    }
  }

  private param(b: number): void {
    if (this.cmd === null) throw new ProtocolError('data (D/C high) before any command: pixel data must follow RAMWR');
    const want = PARAMS[this.cmd] ?? 0;
    if (this.params.length >= want)
      throw new ProtocolError(
        `unexpected data after command 0x${this.cmd.toString(16)} (takes ${want} parameter bytes): pixel data must follow RAMWR`,
      );
    this.params.push(b);
    if (this.params.length === want) this.apply(this.cmd, this.params);
  }

  private apply(cmd: number, p: number[]): void {
    const mv = (this.madctl & MADCTL.MV) !== 0;
    if (cmd === CMD.CASET || cmd === CMD.RASET) {
      const start = (p[0]! << 8) | p[1]!;
      const end = (p[2]! << 8) | p[3]!;
      // With MV set, column addresses run along memory rows and vice versa.
      const isCols = (cmd === CMD.CASET) !== mv;
      const limit = isCols ? this.glassSpec.memCols : this.glassSpec.memRows;
      if (start > end || end >= limit)
        throw new ProtocolError(
          `${cmd === CMD.CASET ? 'CASET' : 'RASET'} ${start}..${end} is outside controller memory (0..${limit - 1} in this orientation)`,
        );
      if (cmd === CMD.CASET) this.win = { ...this.win, cs: start, ce: end };
      else this.win = { ...this.win, rs: start, re: end };
    } else if (cmd === CMD.MADCTL) {
      this.madctl = p[0]!;
    } else if (cmd === CMD.COLMOD) {
      this.colmod = p[0]! & 0x07;
    }
  }

  private pixelByte(b: number): void {
    if (this.colmod !== COLMOD_16BIT)
      throw new ProtocolError(
        `pixel data while COLMOD is 0x${this.colmod.toString(16)}; the driver must select 16-bit RGB565 (COLMOD 0x05)`,
      );
    if (this.pendingByte === null) {
      this.pendingByte = b;
      return;
    }
    const word = (this.pendingByte << 8) | b; // high byte first on the wire
    this.pendingByte = null;
    const { c, r } = this.ptr;
    let pc = c;
    let pr = r;
    if (this.madctl & MADCTL.MV) [pc, pr] = [r, c];
    if (this.madctl & MADCTL.MX) pc = this.glassSpec.memCols - 1 - pc;
    if (this.madctl & MADCTL.MY) pr = this.glassSpec.memRows - 1 - pr;
    this.memory[pr * MEMORY.cols + pc] = word;
    this.counters.pixelsWritten++;
    if (c < this.win.ce) this.ptr.c = c + 1;
    else {
      this.ptr.c = this.win.cs;
      this.ptr.r = r < this.win.re ? r + 1 : this.win.rs;
    }
  }

  /**
   * The rotation whose MADCTL the controller holds (docs/hardware.md's table), i.e. how the module is
   * meant to be held; 90 when MADCTL matches none of them.
   */
  get rotation(): Rotation {
    const scan = this.madctl & (MADCTL.MX | MADCTL.MY | MADCTL.MV);
    for (const r of [0, 90, 180, 270] as const) if (ROTATION_MADCTL[r] === scan) return r;
    return 90;
  }

  /** The colour the glass shows at (gx, gy) in its native portrait orientation (black when off). */
  glassPixel(gx: number, gy: number): [number, number, number] {
    const g = this.glassSpec;
    if (gx < 0 || gy < 0 || gx >= g.width || gy >= g.height)
      throw new RangeError(`(${gx},${gy}) is outside the ${g.width}x${g.height} glass`);
    if (!this.isOn) return [0, 0, 0];
    const word = this.memory[(gy + g.rowOffset) * MEMORY.cols + gx + g.colOffset]!;
    let [r, gr, b] = rgb565ToRgb(word);
    if (((this.madctl & MADCTL.BGR) !== 0) !== g.bgr) [r, b] = [b, r];
    if (this.inverted !== g.invert) [r, gr, b] = [255 - r, 255 - gr, 255 - b];
    return [r, gr, b];
  }

  /** What a person sees holding the module in the orientation of `rotation` (RGBA; see viewToGlass). */
  view(rotation: Rotation = this.rotation): { width: number; height: number; rgba: Uint8ClampedArray } {
    const { width, height } = this.viewSize(rotation);
    const rgba = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const [r, g, b] = this.pixel(x, y, rotation);
        const i = (y * width + x) * 4;
        rgba[i] = r;
        rgba[i + 1] = g;
        rgba[i + 2] = b;
        rgba[i + 3] = 255;
      }
    return { width, height, rgba };
  }

  private viewSize(rotation: Rotation): { width: number; height: number } {
    const { width, height } = this.glassSpec;
    return isLandscape(rotation) ? { width: height, height: width } : { width, height };
  }

  /** The whole glass in its native portrait orientation, 3 bytes (R, G, B) per pixel. */
  glass(): { width: number; height: number; rgb: Buffer } {
    const { width, height } = this.glassSpec;
    const rgb = Buffer.alloc(width * height * 3);
    for (let y = 0, o = 0; y < height; y++)
      for (let x = 0; x < width; x++, o += 3) {
        const [r, g, b] = this.glassPixel(x, y);
        rgb[o] = r;
        rgb[o + 1] = g;
        rgb[o + 2] = b;
      }
    return { width, height, rgb };
  }

  /** The colour at (x, y) as seen holding the module in `rotation` (default: the MADCTL's). */
  pixel(x: number, y: number, rotation: Rotation = this.rotation): [number, number, number] {
    const { width: vw, height: vh } = this.viewSize(rotation);
    if (x < 0 || y < 0 || x >= vw || y >= vh) throw new RangeError(`(${x},${y}) is outside the ${vw}x${vh} view`);
    const [gx, gy] = viewToGlass(rotation, x, y, this.glassSpec.width, this.glassSpec.height);
    return this.glassPixel(gx, gy);
  }
}
