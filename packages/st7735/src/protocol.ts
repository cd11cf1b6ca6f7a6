/**
 * ST7735 facts, declared once (Sitronix ST7735R datasheet, docs/hardware.md): commands, the init
 * sequence, MADCTL bits, controller memory size and the module variants. The driver and the
 * emulator both read this file.
 */
export const CMD = {
  SWRESET: 0x01,
  SLPOUT: 0x11,
  NORON: 0x13,
  INVOFF: 0x20,
  INVON: 0x21,
  DISPON: 0x29,
  CASET: 0x2a,
  RASET: 0x2b,
  RAMWR: 0x2c,
  MADCTL: 0x36,
  COLMOD: 0x3a,
  FRMCTR1: 0xb1,
  FRMCTR2: 0xb2,
  FRMCTR3: 0xb3,
  INVCTR: 0xb4,
  PWCTR1: 0xc0,
  PWCTR2: 0xc1,
  PWCTR3: 0xc2,
  PWCTR4: 0xc3,
  PWCTR5: 0xc4,
  VMCTR1: 0xc5,
  GMCTRP1: 0xe0,
  GMCTRN1: 0xe1,
} as const;

export const MADCTL = { MY: 0x80, MX: 0x40, MV: 0x20, BGR: 0x08 } as const;

/** Controller frame memory at most: 132 columns x 162 rows (GM strapping may select 128x160). */
export const MEMORY = { cols: 132, rows: 162 } as const;

/** COLMOD parameter for 16 bits per pixel (RGB565). */
export const COLMOD_16BIT = 0x05;

/** Power and gamma settings of the ST7735R init (docs/hardware.md), with the delay after each. */
export const INIT_SEQUENCE: ReadonlyArray<{ cmd: number; params?: number[]; delayMs?: number }> = [
  { cmd: CMD.SWRESET, delayMs: 150 },
  { cmd: CMD.SLPOUT, delayMs: 500 },
  { cmd: CMD.FRMCTR1, params: [0x01, 0x2c, 0x2d] },
  { cmd: CMD.FRMCTR2, params: [0x01, 0x2c, 0x2d] },
  { cmd: CMD.FRMCTR3, params: [0x01, 0x2c, 0x2d, 0x01, 0x2c, 0x2d] },
  { cmd: CMD.INVCTR, params: [0x07] },
  { cmd: CMD.PWCTR1, params: [0xa2, 0x02, 0x84] },
  { cmd: CMD.PWCTR2, params: [0xc5] },
  { cmd: CMD.PWCTR3, params: [0x0a, 0x00] },
  { cmd: CMD.PWCTR4, params: [0x8a, 0x2a] },
  { cmd: CMD.PWCTR5, params: [0x8a, 0xee] },
  { cmd: CMD.VMCTR1, params: [0x0e] },
];

export const GAMMA: ReadonlyArray<{ cmd: number; params: number[] }> = [
  { cmd: CMD.GMCTRP1, params: [0x02, 0x1c, 0x07, 0x12, 0x37, 0x32, 0x29, 0x2d, 0x29, 0x25, 0x2b, 0x39, 0x00, 0x01, 0x03, 0x10] },
  { cmd: CMD.GMCTRN1, params: [0x03, 0x1d, 0x07, 0x06, 0x2e, 0x2c, 0x29, 0x2d, 0x2e, 0x2e, 0x37, 0x3f, 0x00, 0x00, 0x02, 0x10] },
];

export type Rotation = 0 | 90 | 180 | 270;

/** MADCTL per rotation without the BGR bit (docs/hardware.md: 0xC8, 0xA8, 0x08, 0x68 for BGR modules). */
export const ROTATION_MADCTL: Record<Rotation, number> = {
  0: MADCTL.MX | MADCTL.MY,
  90: MADCTL.MY | MADCTL.MV,
  180: 0,
  270: MADCTL.MX | MADCTL.MV,
};

/** The module batches this driver knows, by the names Adafruit's ST7735 library gives them. */
export const MODULE_VARIANTS = ['greentab', 'redtab', 'blacktab', 'mini160x80', 'mini160x80plugin'] as const;
export type ModuleVariant = (typeof MODULE_VARIANTS)[number];

export interface VariantSpec {
  /** Glass size in the native (portrait) orientation. */
  width: number;
  height: number;
  /**
   * The first column and row of the glass as addressed in portrait (rotation 0): the numbers
   * Adafruit's library calls colstart/rowstart and module sellers print. The glass sits centred
   * in the frame memory the module's GM pins select (132x162, or 128x160 for the 0/0 and the
   * plain mini's 24/0), so the same two numbers address it in every rotation; in the landscape
   * rotations they swap (MV exchanges rows and columns).
   */
  colOffset: number;
  rowOffset: number;
  /** Sub-pixel order of the glass is BGR: the MADCTL BGR bit must be set for true colours. */
  bgr: boolean;
  /** The glass inverts colours: INVON must be sent for true colours. */
  invert: boolean;
}

/**
 * Module batches ("tab colour"), with Adafruit-ST7735-Library's INITR_* settings: green tab
 * 2/1 BGR, red tab 0/0 BGR, black tab 0/0 RGB, the plain 0.96" mini (INITR_MINI160x80) 24/0 RGB
 * not inverted, and the mini with the plug-in flex cable (INITR_MINI160x80_PLUGIN) 26/1 BGR inverted.
 */
export const VARIANTS: Record<ModuleVariant, VariantSpec> = {
  greentab: { width: 128, height: 160, colOffset: 2, rowOffset: 1, bgr: true, invert: false },
  redtab: { width: 128, height: 160, colOffset: 0, rowOffset: 0, bgr: true, invert: false },
  blacktab: { width: 128, height: 160, colOffset: 0, rowOffset: 0, bgr: false, invert: false },
  mini160x80: { width: 80, height: 160, colOffset: 24, rowOffset: 0, bgr: false, invert: false },
  mini160x80plugin: { width: 80, height: 160, colOffset: 26, rowOffset: 1, bgr: true, invert: true },
};

/**
 * The frame memory a glass is centred in: offset + size + offset on each axis. MX/MY mirror
 * addresses within that memory, which is why a centred glass needs the same offsets in every
 * rotation. Null when that exceeds the controller's 132x162.
 */
export function centredMemory(
  spec: Pick<VariantSpec, 'width' | 'height' | 'colOffset' | 'rowOffset'>,
): { cols: number; rows: number } | null {
  const cols = 2 * spec.colOffset + spec.width;
  const rows = 2 * spec.rowOffset + spec.height;
  if (spec.colOffset < 0 || spec.rowOffset < 0 || cols > MEMORY.cols || rows > MEMORY.rows) return null;
  return { cols, rows };
}

/** Landscape rotations exchange the glass's width and height (and the two offsets). */
export function isLandscape(rotation: Rotation): boolean {
  return rotation === 90 || rotation === 270;
}

/** The default SPI budget per message (spidev bufsiz). */
export const MAX_MESSAGE_BYTES = 4096;
/** Commands at <= 10 MHz, as the Linux MIPI-DBI helpers do, so init settings never glitch. */
export const MAX_COMMAND_HZ = 10_000_000;
