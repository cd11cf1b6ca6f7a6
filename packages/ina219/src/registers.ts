/**
 * Registers as data: each chip's register map is declared once (the INA219's here, TI SBOS448
 * section 8.6; the others in chips/), and both the driver (encode/decode) and the emulator
 * (register file, power-on values) use it, so every number of a datasheet lives in one place
 * (docs/hardware.md). The helpers below work on any chip's tables.
 */
export interface RegisterSpec {
  ptr: number;
  name: string;
  access: 'r' | 'rw';
  /** Bytes on the wire, most significant first: 2 for 16-bit, 3 for 24-bit, 5 for 40-bit registers. */
  bytes: 2 | 3 | 5;
  /** Value after power-on or RST; null where the datasheet leaves it undefined (measurements). */
  powerOn: number | null;
  signed: boolean;
}

/** A chip's registers by name. */
export type RegisterMap = Record<string, RegisterSpec>;

export const REGISTERS = {
  config: { ptr: 0x00, name: 'configuration', access: 'rw', bytes: 2, powerOn: 0x399f, signed: false },
  shunt: { ptr: 0x01, name: 'shunt voltage', access: 'r', bytes: 2, powerOn: null, signed: true },
  bus: { ptr: 0x02, name: 'bus voltage', access: 'r', bytes: 2, powerOn: null, signed: false },
  power: { ptr: 0x03, name: 'power', access: 'r', bytes: 2, powerOn: 0, signed: false },
  current: { ptr: 0x04, name: 'current', access: 'r', bytes: 2, powerOn: 0, signed: true },
  calibration: { ptr: 0x05, name: 'calibration', access: 'rw', bytes: 2, powerOn: 0, signed: false },
} as const satisfies RegisterMap;

export type RegisterName = keyof typeof REGISTERS;

export function registerByPtr(ptr: number, map: RegisterMap = REGISTERS): RegisterSpec | undefined {
  for (const key in map) if (map[key]!.ptr === ptr) return map[key];
  return undefined;
}

/** Decodes a register's bytes (most significant first) as its spec says: signed or not, 16 to 40 bits. */
export function decodeRegister(spec: RegisterSpec, buf: Buffer): number {
  if (spec.bytes === 2) return spec.signed ? buf.readInt16BE(0) : buf.readUInt16BE(0);
  const raw = spec.bytes === 3 ? buf.readUIntBE(0, 3) : buf.readUIntBE(0, 5);
  const bits = spec.bytes * 8;
  // Exact in a double up to 2^53: a 40-bit value always is.
  return spec.signed && raw >= 2 ** (bits - 1) ? raw - 2 ** bits : raw;
}

/** Encodes a register value (two's complement when negative) into `bytes` bytes, most significant first. */
export function encodeRegister(spec: RegisterSpec, value: number, buf: Buffer): void {
  const bits = spec.bytes * 8;
  const raw = value < 0 ? value + 2 ** bits : value;
  buf.writeUIntBE(raw % 2 ** bits, 0, spec.bytes);
}

/** A bit field inside a 16-bit register. */
export interface Field {
  shift: number;
  width: number;
}

export const CONFIG_FIELDS = {
  rst: { shift: 15, width: 1 },
  brng: { shift: 13, width: 1 },
  pg: { shift: 11, width: 2 },
  badc: { shift: 7, width: 4 },
  sadc: { shift: 3, width: 4 },
  mode: { shift: 0, width: 3 },
} as const satisfies Record<string, Field>;

export const BUS_FIELDS = {
  /** Bits 15..3: bus voltage, 4 mV per LSB. */
  value: { shift: 3, width: 13 },
  /** Conversion ready: set when a conversion completes; cleared by reading power or writing config. */
  cnvr: { shift: 1, width: 1 },
  /** Math overflow: current or power out of range; values are meaningless. */
  ovf: { shift: 0, width: 1 },
} as const satisfies Record<string, Field>;

export function getField(word: number, f: Field): number {
  return (word >>> f.shift) & ((1 << f.width) - 1);
}

export function setField(word: number, f: Field, value: number): number {
  const mask = ((1 << f.width) - 1) << f.shift;
  return ((word & ~mask) | ((value << f.shift) & mask)) & 0xffff;
}

export function encodeFields<F extends Record<string, Field>>(fields: F, values: { [K in keyof F]?: number }): number {
  let word = 0;
  for (const key of Object.keys(values) as (keyof F)[]) {
    const field = fields[key];
    // A key that is not a field of this register is a programming error, not a zero.
    if (field === undefined) throw new RangeError(`${String(key)} is not a field of this register`);
    word = setField(word, field, values[key] ?? 0);
  }
  return word;
}

/** Shunt voltage LSB at every gain. */
export const SHUNT_LSB_UV = 10;
/** Bus voltage LSB (after the 3-bit shift). */
export const BUS_LSB_MV = 4;
/** PG field -> shunt full-scale range in mV. */
export const PG_RANGE_MV = [40, 80, 160, 320] as const;
/** BRNG field -> bus full-scale range in V. */
export const BRNG_RANGE_V = [16, 32] as const;

export const MODES = {
  powerDown: 0b000,
  shuntTriggered: 0b001,
  busTriggered: 0b010,
  bothTriggered: 0b011,
  adcOff: 0b100,
  shuntContinuous: 0b101,
  busContinuous: 0b110,
  bothContinuous: 0b111,
} as const;

export interface AdcSetting {
  code: number;
  /** Resolution of one sample in bits (12 for every averaging mode). */
  bits: number;
  /** Samples averaged per conversion. */
  samples: number;
  /** Conversion time from the datasheet (Table 5), microseconds. */
  conversionUs: number;
}

/** ADC codes (BADC/SADC) and their conversion times. Codes 0x3 and 0x8 are the same setting. */
export const ADC_SETTINGS: readonly AdcSetting[] = [
  { code: 0x0, bits: 9, samples: 1, conversionUs: 84 },
  { code: 0x1, bits: 10, samples: 1, conversionUs: 148 },
  { code: 0x2, bits: 11, samples: 1, conversionUs: 276 },
  { code: 0x3, bits: 12, samples: 1, conversionUs: 532 },
  { code: 0x8, bits: 12, samples: 1, conversionUs: 532 },
  { code: 0x9, bits: 12, samples: 2, conversionUs: 1060 },
  { code: 0xa, bits: 12, samples: 4, conversionUs: 2130 },
  { code: 0xb, bits: 12, samples: 8, conversionUs: 4260 },
  { code: 0xc, bits: 12, samples: 16, conversionUs: 8510 },
  { code: 0xd, bits: 12, samples: 32, conversionUs: 17020 },
  { code: 0xe, bits: 12, samples: 64, conversionUs: 34050 },
  { code: 0xf, bits: 12, samples: 128, conversionUs: 68100 },
];

export function adcSetting(code: number): AdcSetting {
  // Codes 0x4-0x7 behave like 0x0-0x3 on the chip (bit 3 clear = single-sample resolution modes).
  const normalized = code >= 0x4 && code <= 0x7 ? code & 0x3 : code;
  const s = ADC_SETTINGS.find((a) => a.code === normalized);
  if (!s) throw new RangeError(`ADC code 0x${code.toString(16)} is not an INA219 setting`);
  return s;
}

/** The chip's internal arithmetic constants (datasheet 8.5.1). */
export const CAL_NUMERATOR = 0.04096;
export const CURRENT_DIVISOR = 4096;
export const POWER_DIVISOR = 5000;
export const POWER_LSB_FACTOR = 20;
