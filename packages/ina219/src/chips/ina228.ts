import type { Field, RegisterMap } from '../registers.js';

/**
 * The INA228 (TI SLYS021; its SPI twin INA229, SLYS023, has the same register set): 20-bit
 * measurements in 24-bit registers (the low 4 bits read 0), a 24-bit power register, and two
 * 40-bit accumulators, ENERGY and CHARGE, that the chip integrates itself once per conversion
 * cycle. docs/hardware.md lists the sources of every number here. The alert limit registers
 * (0x0C-0x11) are not listed: the meter does not use the ALERT pin.
 */
export const INA228_REGISTERS = {
  config: { ptr: 0x00, name: 'CONFIG', access: 'rw', bytes: 2, powerOn: 0x0000, signed: false },
  adcConfig: { ptr: 0x01, name: 'ADC_CONFIG', access: 'rw', bytes: 2, powerOn: 0xfb68, signed: false },
  shuntCal: { ptr: 0x02, name: 'SHUNT_CAL', access: 'rw', bytes: 2, powerOn: 0x1000, signed: false },
  shuntTempco: { ptr: 0x03, name: 'SHUNT_TEMPCO', access: 'rw', bytes: 2, powerOn: 0, signed: false },
  vshunt: { ptr: 0x04, name: 'VSHUNT', access: 'r', bytes: 3, powerOn: 0, signed: true },
  vbus: { ptr: 0x05, name: 'VBUS', access: 'r', bytes: 3, powerOn: 0, signed: false },
  dietemp: { ptr: 0x06, name: 'DIETEMP', access: 'r', bytes: 2, powerOn: 0, signed: true },
  current: { ptr: 0x07, name: 'CURRENT', access: 'r', bytes: 3, powerOn: 0, signed: true },
  power: { ptr: 0x08, name: 'POWER', access: 'r', bytes: 3, powerOn: 0, signed: false },
  energy: { ptr: 0x09, name: 'ENERGY', access: 'r', bytes: 5, powerOn: 0, signed: false },
  charge: { ptr: 0x0a, name: 'CHARGE', access: 'r', bytes: 5, powerOn: 0, signed: true },
  diagAlrt: { ptr: 0x0b, name: 'DIAG_ALRT', access: 'rw', bytes: 2, powerOn: 0x0001, signed: false },
  manufacturerId: { ptr: 0x3e, name: 'MANUFACTURER_ID', access: 'r', bytes: 2, powerOn: 0x5449, signed: false },
  deviceId: { ptr: 0x3f, name: 'DEVICE_ID', access: 'r', bytes: 2, powerOn: 0x2281, signed: false },
} as const satisfies RegisterMap;

export const INA228_CONFIG_FIELDS = {
  rst: { shift: 15, width: 1 },
  /** Writing 1 clears ENERGY and CHARGE. */
  rstacc: { shift: 14, width: 1 },
  /** Delay before the first conversion, 2 ms steps. */
  convdly: { shift: 6, width: 8 },
  tempcomp: { shift: 5, width: 1 },
  /** 0: +-163.84 mV full scale; 1: +-40.96 mV. */
  adcrange: { shift: 4, width: 1 },
} as const satisfies Record<string, Field>;

export const INA228_ADC_CONFIG_FIELDS = {
  mode: { shift: 12, width: 4 },
  vbusct: { shift: 9, width: 3 },
  vshct: { shift: 6, width: 3 },
  vtct: { shift: 3, width: 3 },
  avg: { shift: 0, width: 3 },
} as const satisfies Record<string, Field>;

export const DIAG_ALRT_FIELDS = {
  alatch: { shift: 15, width: 1 },
  cnvr: { shift: 14, width: 1 },
  slowalert: { shift: 13, width: 1 },
  apol: { shift: 12, width: 1 },
  /** The 40-bit ENERGY register rolled over. */
  energyof: { shift: 11, width: 1 },
  chargeof: { shift: 10, width: 1 },
  /** An arithmetic result (current, power) overflowed: those values are not valid. */
  mathof: { shift: 9, width: 1 },
  tmpol: { shift: 7, width: 1 },
  shntol: { shift: 6, width: 1 },
  shntul: { shift: 5, width: 1 },
  busol: { shift: 4, width: 1 },
  busul: { shift: 3, width: 1 },
  pol: { shift: 2, width: 1 },
  /** Conversion complete; with ALATCH = 1 it stays set until DIAG_ALRT is read. */
  cnvrf: { shift: 1, width: 1 },
  /** 1 = the trim memory checksum is good. */
  memstat: { shift: 0, width: 1 },
} as const satisfies Record<string, Field>;

/** DEVICE_ID: die ID in bits 15-4 (0x228), revision in bits 3-0. */
export const INA228_DEVICE_ID_FIELDS = {
  device: { shift: 4, width: 12 },
  revision: { shift: 0, width: 4 },
} as const satisfies Record<string, Field>;

/** VBUSCT / VSHCT / VTCT codes -> conversion time, microseconds. */
export const INA228_CONVERSION_US = [50, 84, 150, 280, 540, 1052, 2074, 4120] as const;

/**
 * MODE (4 bits): 0x0 and 0x8 shut down; 0x1-0x7 triggered, 0x9-0xF continuous, with bit 0 =
 * bus voltage, bit 1 = shunt voltage, bit 2 = temperature.
 */
export const INA228_MODES = {
  shutdown: 0x0,
  continuousBusShunt: 0xb,
  continuousAll: 0xf,
} as const;

/** LSBs (SLYS021 table 8-1 and 8.1.2). The 20-bit fields sit in bits 23-4 of their registers. */
export const INA228_SHUNT_LSB_V = [312.5e-9, 78.125e-9] as const; // by ADCRANGE
export const INA228_BUS_LSB_V = 195.3125e-6;
export const INA228_TEMP_LSB_C = 7.8125e-3;
export const INA228_FIELD_SHIFT = 4;
/** SHUNT_CAL = 13107.2e6 x CURRENT_LSB x R_shunt (x 4 when ADCRANGE = 1); 15 bits. */
export const INA228_CAL_FACTOR = 13107.2e6;
export const INA228_CAL_MASK = 0x7fff;
/** Power LSB = 3.2 x CURRENT_LSB; energy LSB = 16 x power LSB (joules); charge LSB = CURRENT_LSB (coulombs). */
export const INA228_POWER_LSB_FACTOR = 3.2;
export const INA228_ENERGY_LSB_FACTOR = 16 * 3.2;
/** The accumulators' width: both wrap modulo 2^40. */
export const ACCUMULATOR_MODULUS = 2 ** 40;
