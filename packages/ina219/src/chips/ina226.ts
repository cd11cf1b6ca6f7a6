import type { Field, RegisterMap } from '../registers.js';

/**
 * The INA226 (TI SBOS547) and the INA260 (TI SBOS656) share one register layout: 16-bit
 * registers, a configuration word with averaging and two conversion times, a Mask/Enable
 * register holding the conversion-ready flag, and ID registers at 0xFE/0xFF. The INA260 has its
 * shunt inside, so its register 0x01 holds current and it has no calibration register.
 * docs/hardware.md lists the sources of every number here.
 */
export const INA226_REGISTERS = {
  config: { ptr: 0x00, name: 'configuration', access: 'rw', bytes: 2, powerOn: 0x4127, signed: false },
  shunt: { ptr: 0x01, name: 'shunt voltage', access: 'r', bytes: 2, powerOn: 0, signed: true },
  bus: { ptr: 0x02, name: 'bus voltage', access: 'r', bytes: 2, powerOn: 0, signed: false },
  power: { ptr: 0x03, name: 'power', access: 'r', bytes: 2, powerOn: 0, signed: false },
  current: { ptr: 0x04, name: 'current', access: 'r', bytes: 2, powerOn: 0, signed: true },
  calibration: { ptr: 0x05, name: 'calibration', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  maskEnable: { ptr: 0x06, name: 'mask/enable', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  alertLimit: { ptr: 0x07, name: 'alert limit', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  manufacturerId: { ptr: 0xfe, name: 'manufacturer ID', access: 'r', bytes: 2, powerOn: 0x5449, signed: false },
  dieId: { ptr: 0xff, name: 'die ID', access: 'r', bytes: 2, powerOn: 0x2260, signed: false },
} as const satisfies RegisterMap;

export const INA260_REGISTERS = {
  config: { ptr: 0x00, name: 'configuration', access: 'rw', bytes: 2, powerOn: 0x6127, signed: false },
  current: { ptr: 0x01, name: 'current', access: 'r', bytes: 2, powerOn: 0, signed: true },
  bus: { ptr: 0x02, name: 'bus voltage', access: 'r', bytes: 2, powerOn: 0, signed: false },
  power: { ptr: 0x03, name: 'power', access: 'r', bytes: 2, powerOn: 0, signed: false },
  maskEnable: { ptr: 0x06, name: 'mask/enable', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  alertLimit: { ptr: 0x07, name: 'alert limit', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  manufacturerId: { ptr: 0xfe, name: 'manufacturer ID', access: 'r', bytes: 2, powerOn: 0x5449, signed: false },
  dieId: { ptr: 0xff, name: 'die ID', access: 'r', bytes: 2, powerOn: 0x2270, signed: false },
} as const satisfies RegisterMap;

/** The configuration register of both (the INA260 calls the shunt time ISHCT). Bits 14-12 are fixed. */
export const INA226_CONFIG_FIELDS = {
  rst: { shift: 15, width: 1 },
  /** Reserved, read-only: 100 on the INA226, 110 on the INA260 (their power-on values). */
  fixed: { shift: 12, width: 3 },
  avg: { shift: 9, width: 3 },
  vbusct: { shift: 6, width: 3 },
  vshct: { shift: 3, width: 3 },
  mode: { shift: 0, width: 3 },
} as const satisfies Record<string, Field>;

/** Mask/Enable: alert function bits (15-10) and the flags the meter reads (4-0). */
export const MASK_ENABLE_FIELDS = {
  sol: { shift: 15, width: 1 },
  sul: { shift: 14, width: 1 },
  bol: { shift: 13, width: 1 },
  bul: { shift: 12, width: 1 },
  pol: { shift: 11, width: 1 },
  cnvr: { shift: 10, width: 1 },
  /** Alert function flag. */
  aff: { shift: 4, width: 1 },
  /** Conversion ready: set when a (possibly averaged) result is complete; cleared by reading this register or writing the configuration. */
  cvrf: { shift: 3, width: 1 },
  /** Math overflow: current or power exceeded its register. */
  ovf: { shift: 2, width: 1 },
  apol: { shift: 1, width: 1 },
  len: { shift: 0, width: 1 },
} as const satisfies Record<string, Field>;

/** Die ID register: device ID in bits 15-4, revision in bits 3-0. */
export const DIE_ID_FIELDS = {
  device: { shift: 4, width: 12 },
  revision: { shift: 0, width: 4 },
} as const satisfies Record<string, Field>;

/** VBUSCT / VSHCT (ISHCT) codes -> conversion time, microseconds (both datasheets). */
export const INA226_CONVERSION_US = [140, 204, 332, 588, 1100, 2116, 4156, 8244] as const;
/** AVG codes -> samples averaged (INA226 and INA260 alike, and the INA228's AVG field). */
export const AVERAGES = [1, 4, 16, 64, 128, 256, 512, 1024] as const;

/** MODE field of both: the same codes as the INA219's. */
export const INA226_MODES = {
  powerDown: 0b000,
  shuntTriggered: 0b001,
  busTriggered: 0b010,
  bothTriggered: 0b011,
  powerDown2: 0b100,
  shuntContinuous: 0b101,
  busContinuous: 0b110,
  bothContinuous: 0b111,
} as const;

/** INA226 arithmetic (SBOS547 7.5): Current = Shunt x Cal / 2048, Power = Current x Bus / 20000. */
export const INA226_CAL_NUMERATOR = 0.00512;
export const INA226_CURRENT_DIVISOR = 2048;
export const INA226_POWER_DIVISOR = 20000;
/** The calibration register has 15 bits (bit 15 is not implemented). */
export const INA226_CAL_MASK = 0x7fff;
/** INA260 (SBOS656 8.5.1): fixed LSBs, Power = |Current| x Bus x 1.25 mA x 1.25 mV / 10 mW = Current x Bus / 6400. */
export const INA260_POWER_DIVISOR = 6400;
