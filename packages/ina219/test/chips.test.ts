import { describe, expect, it } from 'vitest';
import {
  ACCUMULATOR_MODULUS,
  CHIPS,
  CHIP_IDS,
  ChipMismatchError,
  ChipSettingError,
  DIAG_ALRT_FIELDS,
  INA226_CONFIG_FIELDS,
  INA226_CONVERSION_US,
  INA226_REGISTERS,
  INA228_ADC_CONFIG_FIELDS,
  INA228_CONFIG_FIELDS,
  INA228_REGISTERS,
  INA260_REGISTERS,
  Ina219,
  Ina219Emulator,
  Ina226,
  Ina226Emulator,
  Ina228,
  Ina228Emulator,
  MASK_ENABLE_FIELDS,
  VirtualClock,
  constantLoad,
  createSensor,
  encodeFields,
  getField,
  resolveIna226Settings,
  resolveIna228Settings,
  shuntCalFor,
  type LoadModel,
} from '../src/index.js';

const A = 0x40;

async function read(emu: { readI2cBlock: Ina228Emulator['readI2cBlock'] }, ptr: number, bytes = 2): Promise<number> {
  const buf = Buffer.alloc(bytes);
  await emu.readI2cBlock(A, ptr, bytes, buf);
  return buf.readUIntBE(0, bytes);
}

async function write(emu: { writeI2cBlock: Ina228Emulator['writeI2cBlock'] }, ptr: number, value: number): Promise<void> {
  await emu.writeI2cBlock(A, ptr, 2, Buffer.from([value >> 8, value & 0xff]));
}

const signed = (raw: number, bits: number) => (raw >= 2 ** (bits - 1) ? raw - 2 ** bits : raw);

describe('chip table and register maps', () => {
  it('has one row per chip, every register pointer once, and the datasheets power-on and ID values', () => {
    expect(CHIP_IDS).toEqual(['ina219', 'ina226', 'ina260', 'ina228']);
    for (const id of CHIP_IDS) {
      const ptrs = Object.values(CHIPS[id].registers).map((r) => r.ptr);
      expect(new Set(ptrs).size).toBe(ptrs.length);
    }
    expect(INA226_REGISTERS.config.powerOn).toBe(0x4127);
    expect(INA260_REGISTERS.config.powerOn).toBe(0x6127);
    expect(INA226_REGISTERS.dieId.powerOn).toBe(0x2260);
    expect(INA260_REGISTERS.dieId.powerOn).toBe(0x2270);
    expect(INA228_REGISTERS.adcConfig.powerOn).toBe(0xfb68);
    expect(INA228_REGISTERS.shuntCal.powerOn).toBe(0x1000);
    expect(INA228_REGISTERS.energy.bytes).toBe(5);
    expect(CHIPS.ina228.identity).toMatchObject({ manufacturerPtr: 0x3e, manufacturerId: 0x5449, devicePtr: 0x3f, dieId: 0x228 });
    // The 0xFB68 power-on ADC_CONFIG: continuous shunt, bus and temperature at 1052 us, no averaging.
    expect(encodeFields(INA228_ADC_CONFIG_FIELDS, { mode: 0xf, vbusct: 5, vshct: 5, vtct: 5, avg: 0 })).toBe(0xfb68);
  });
});

describe('INA226 and INA260 emulators follow their datasheets', () => {
  const rig = (id: 'ina226' | 'ina260', load: LoadModel = constantLoad(8), shuntOhms?: number) => {
    const clock = new VirtualClock(1000);
    const emu = new Ina226Emulator({ chip: CHIPS[id], clock, load, shuntOhms, seed: 3 });
    return { clock, emu };
  };

  it('power on with 0x4127 / 0x6127, TI manufacturer and die IDs, and keep bits 14-12 whatever is written', async () => {
    const a = rig('ina226');
    expect(await read(a.emu, 0x00)).toBe(0x4127);
    expect(await read(a.emu, 0xfe)).toBe(0x5449);
    expect(await read(a.emu, 0xff)).toBe(0x2260);
    await write(a.emu, 0x00, 0x0527);
    expect(await read(a.emu, 0x00)).toBe(0x4527);
    await write(a.emu, 0x05, 0xffff);
    expect(await read(a.emu, 0x05)).toBe(0x7fff); // 15-bit calibration
    await write(a.emu, 0x00, 0x8000);
    expect([await read(a.emu, 0x00), await read(a.emu, 0x05)]).toEqual([0x4127, 0]);
    const b = rig('ina260');
    expect(await read(b.emu, 0x00)).toBe(0x6127);
    expect(await read(b.emu, 0xff)).toBe(0x2270);
    await write(b.emu, 0x05, 1234); // no calibration register: ignored
    expect(await read(b.emu, 0x05)).toBe(0);
  });

  it('sets CVRF after AVG x (shunt + bus) conversion time for every code, clears it on a Mask/Enable read or a configuration write', async () => {
    for (let code = 0; code < 8; code++) {
      const { clock, emu } = rig('ina226');
      const avg = 1; // 4 samples
      await write(emu, 0x00, encodeFields(INA226_CONFIG_FIELDS, { avg, vbusct: code, vshct: code, mode: 7 }));
      const periodMs = (4 * 2 * INA226_CONVERSION_US[code]!) / 1000;
      clock.advance(periodMs - 0.001);
      expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(0);
      clock.advance(0.002);
      expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(1);
      expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(0); // the read cleared it
      clock.advance(periodMs);
      await write(emu, 0x00, encodeFields(INA226_CONFIG_FIELDS, { avg, vbusct: code, vshct: code, mode: 7 }));
      expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(0); // the write cleared it
    }
  });

  it('INA226: shunt 2.5 uV per count, Current = Shunt x Cal / 2048, Power = Current x Bus / 20000, clipping at 81.92 mV with OVF', async () => {
    const { clock, emu } = rig('ina226');
    await write(emu, 0x05, 1024); // Current_LSB 50 uA with 0.1 ohm
    await write(emu, 0x00, encodeFields(INA226_CONFIG_FIELDS, { avg: 0, vbusct: 0, vshct: 4, mode: 7 }));
    clock.advance(2);
    const shunt = signed(await read(emu, 0x01), 16);
    const bus = await read(emu, 0x02);
    const current = signed(await read(emu, 0x04), 16);
    const power = await read(emu, 0x03);
    expect(shunt * 2.5e-6).toBeCloseTo((8 / 12) * 0.1, 4); // 66.7 mV
    expect(bus * 1.25e-3).toBeCloseTo(12, 3); // VBUS on IN+: the supply
    expect(current).toBe(Math.trunc((shunt * 1024) / 2048));
    expect(power).toBe(Math.trunc((current * bus) / 20000));
    expect(power * 25 * 50e-6).toBeCloseTo(8, 1); // Power_LSB = 25 x Current_LSB
    const big = rig('ina226', constantLoad(12)); // 1 A through 0.1 ohm = 100 mV
    await write(big.emu, 0x05, 1024);
    big.clock.advance(3);
    expect(signed(await read(big.emu, 0x01), 16)).toBe(32767);
  });

  it('INA260: current register 1.25 mA per count through its own 2 mohm, power 10 mW per count', async () => {
    const { clock, emu } = rig('ina260', constantLoad(60)); // 5 A at 12 V
    clock.advance(3);
    const current = signed(await read(emu, 0x01), 16);
    const bus = await read(emu, 0x02);
    expect(current * 1.25e-3).toBeCloseTo(5, 2);
    expect((await read(emu, 0x03)) * 0.01).toBeCloseTo(60, 0);
    expect(await read(emu, 0x03)).toBe(Math.trunc((current * bus) / 6400));
  });

  it('averages: the registers change once per AVG samples, each sample a shunt then a bus conversion', async () => {
    const { clock, emu } = rig('ina226');
    await write(emu, 0x00, encodeFields(INA226_CONFIG_FIELDS, { avg: 2, vbusct: 0, vshct: 7, mode: 7 })); // 16 x 8.384 ms
    clock.advance(134.1);
    expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(0);
    clock.advance(0.1);
    expect(getField(await read(emu, 0x06), MASK_ENABLE_FIELDS.cvrf)).toBe(1);
  });
});

describe('INA228 emulator follows SLYS021', () => {
  const rig = (load: LoadModel = constantLoad(8), shuntOhms = 0.015) => {
    const clock = new VirtualClock(1000);
    const emu = new Ina228Emulator({ clock, load, shuntOhms, seed: 5 });
    return { clock, emu };
  };
  // The meter's setup: 10 A full scale, ADC 50 us bus + 4120 us shunt, AVG 128, latched CNVRF.
  const setup = async (emu: Ina228Emulator, avg = 4) => {
    await write(emu, 0x02, shuntCalFor({ maxCurrentA: 10, shuntOhms: 0.015, adcRange: 0 }));
    await write(emu, 0x0b, encodeFields(DIAG_ALRT_FIELDS, { alatch: 1 }));
    await write(emu, 0x01, encodeFields(INA228_ADC_CONFIG_FIELDS, { mode: 0xb, vbusct: 0, vshct: 7, vtct: 0, avg }));
  };

  it('powers on with its register defaults and IDs; 24-bit results keep the low 4 bits 0', async () => {
    const { clock, emu } = rig();
    expect(await read(emu, 0x00)).toBe(0);
    expect(await read(emu, 0x01)).toBe(0xfb68);
    expect(await read(emu, 0x02)).toBe(0x1000);
    expect(await read(emu, 0x0b)).toBe(0x0001); // MEMSTAT
    expect(await read(emu, 0x3e)).toBe(0x5449);
    expect((await read(emu, 0x3f)) >> 4).toBe(0x228);
    clock.advance(10);
    expect((await read(emu, 0x04, 3)) & 0xf).toBe(0);
    expect((await read(emu, 0x05, 3)) & 0xf).toBe(0);
  });

  it('computes CURRENT = VSHUNT x 4096 / SHUNT_CAL and POWER = CURRENT x VBUS / 16384 after each result', async () => {
    const { clock, emu } = rig();
    await setup(emu, 0);
    clock.advance(4.2);
    const vshunt = signed(await read(emu, 0x04, 3), 24) / 16;
    const vbus = (await read(emu, 0x05, 3)) / 16;
    const current = signed(await read(emu, 0x07, 3), 24) / 16;
    const power = await read(emu, 0x08, 3);
    expect(vshunt * 312.5e-9).toBeCloseTo((8 / 12) * 0.015, 6); // 10 mV
    expect(vbus * 195.3125e-6).toBeCloseTo(12, 3);
    expect(current).toBe(Math.round((vshunt * 4096) / 3750));
    expect(power).toBe(Math.round((Math.abs(current) * vbus) / 16384));
    const lsb = 3750 / (13107.2e6 * 0.015);
    expect(power * 3.2 * lsb).toBeCloseTo(8, 2);
  });

  it('accumulates ENERGY every cycle (16 x 3.2 x CURRENT_LSB joules per count) and CHARGE (CURRENT_LSB coulombs), not per averaged result', async () => {
    const { clock, emu } = rig();
    await setup(emu); // AVG 128: a result every 533.76 ms
    await write(emu, 0x00, encodeFields(INA228_CONFIG_FIELDS, { rstacc: 1 }));
    clock.advance(100 * 4.17); // 100 cycles, no averaged result yet
    const lsb = 3750 / (13107.2e6 * 0.015);
    const energyJ = (await read(emu, 0x09, 5)) * 16 * 3.2 * lsb;
    expect(energyJ).toBeCloseTo(8 * 0.417, 2);
    const chargeC = signed(await read(emu, 0x0a, 5), 40) * lsb;
    expect(chargeC).toBeCloseTo((8 / 12) * 0.417, 3);
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.cnvrf)).toBe(0);
  });

  it('latches CNVRF with ALATCH until DIAG_ALRT is read; an ADC_CONFIG write restarts the sequence', async () => {
    const { clock, emu } = rig();
    await setup(emu);
    clock.advance(533.7);
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.cnvrf)).toBe(0);
    clock.advance(0.1);
    clock.advance(100); // still set long after
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.cnvrf)).toBe(1);
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.cnvrf)).toBe(0);
    await setup(emu);
    clock.advance(533.7);
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.cnvrf)).toBe(0);
  });

  it('wraps ENERGY at 2^40 and sets ENERGYOF until ENERGY is read; RSTACC clears both accumulators', async () => {
    const { clock, emu } = rig();
    await setup(emu);
    emu.presetEnergy(ACCUMULATOR_MODULUS - 10);
    clock.advance(10);
    const after = await read(emu, 0x0b);
    expect(getField(after, DIAG_ALRT_FIELDS.energyof)).toBe(1);
    const raw = await read(emu, 0x09, 5);
    expect(raw).toBeLessThan(20_000);
    expect(getField(await read(emu, 0x0b), DIAG_ALRT_FIELDS.energyof)).toBe(0);
    await write(emu, 0x00, encodeFields(INA228_CONFIG_FIELDS, { rstacc: 1 }));
    expect(await read(emu, 0x09, 5)).toBe(0);
    expect(await read(emu, 0x0a, 5)).toBe(0);
    expect(await read(emu, 0x00)).toBe(0); // RSTACC acts, it is not kept
  });

  it('reports zero current, power and energy while SHUNT_CAL is 0; ADCRANGE 1 has 78.125 nV per count', async () => {
    const { clock, emu } = rig();
    await setup(emu, 0);
    await write(emu, 0x02, 0);
    clock.advance(50);
    expect(await read(emu, 0x08, 3)).toBe(0);
    expect(await read(emu, 0x09, 5)).toBe(0);
    await write(emu, 0x00, encodeFields(INA228_CONFIG_FIELDS, { adcrange: 1 }));
    clock.advance(5);
    expect((signed(await read(emu, 0x04, 3), 24) / 16) * 78.125e-9).toBeCloseTo(0.01, 5);
  });
});

describe('drivers: every chip reads 8 W, refuses another chip, and re-applies a lost configuration', () => {
  it.each(['ina219', 'ina226', 'ina260', 'ina228'] as const)('%s reads 8 W within 0.2 W from its emulator', async (chip) => {
    const clock = new VirtualClock(1000);
    const s = await createSensor({ kind: 'sim', simChip: chip, simLoad: '8', clock, sleep: clock.sleep, seed: 2 });
    await s.driver.init();
    clock.advance(s.driver.cycleMs + 2);
    const r = await s.driver.read();
    expect(r.ready).toBe(true);
    expect(Math.abs(r.powerW - 8)).toBeLessThan(0.2);
    expect(r.outOfRange).toBe(false);
    expect(s.chip.id).toBe(chip);
  });

  it('a chip that identifies as another is refused, naming what answered', async () => {
    const clock = new VirtualClock(0);
    const ina228 = new Ina228Emulator({ clock, load: constantLoad(4) });
    const e1 = await new Ina226(ina228, CHIPS.ina226, {}, { sleep: clock.sleep }).init().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ChipMismatchError);
    expect((e1 as ChipMismatchError).foundId).toBe('ina228');
    expect((e1 as Error).message).toMatch(/0x40 is an INA228 .*not an INA226/);
    const e2 = await new Ina219(ina228, {}, { sleep: clock.sleep }).init().catch((e: unknown) => e);
    expect((e2 as ChipMismatchError).foundId).toBe('ina228');
    const ina226 = new Ina226Emulator({ chip: CHIPS.ina226, clock, load: constantLoad(4) });
    const e3 = await new Ina226(ina226, CHIPS.ina260, {}, { sleep: clock.sleep }).init().catch((e: unknown) => e);
    expect((e3 as ChipMismatchError).foundId).toBe('ina226');
    const ina219 = new Ina219Emulator({ clock, load: constantLoad(4) });
    const e4 = await new Ina228(ina219, {}, { sleep: clock.sleep }).init().catch((e: unknown) => e);
    expect(e4).toBeInstanceOf(ChipMismatchError);
    expect((e4 as ChipMismatchError).foundId).toBeNull();
    expect((e4 as Error).message).toMatch(/reads manufacturer 0x0 and device 0x0 at 0x3e\/0x3f/);
  });

  it('a missing chip is an I2C fault, not a mismatch', async () => {
    const clock = new VirtualClock(0);
    const emu = new Ina226Emulator({ chip: CHIPS.ina226, clock, load: constantLoad(4) });
    emu.unplug();
    const e = await new Ina226(emu, CHIPS.ina226, {}, { sleep: clock.sleep }).init().catch((x: unknown) => x);
    expect((e as Error).name).toBe('I2cError');
  });

  it('INA226 and INA228 detect a power-on reset by reading their configuration back', async () => {
    const clock = new VirtualClock(0);
    const e226 = new Ina226Emulator({ chip: CHIPS.ina226, clock, load: constantLoad(4) });
    const d226 = new Ina226(e226, CHIPS.ina226, {}, { sleep: clock.sleep });
    await d226.init();
    expect(await d226.checkReset()).toBe(false);
    e226.spontaneousReset();
    expect(await d226.checkReset()).toBe(true);
    expect(e226.peek()).toEqual({ config: d226.expectedConfig, calibration: d226.calibration });
    const e228 = new Ina228Emulator({ clock, load: constantLoad(4) });
    const d228 = new Ina228(e228, {}, { sleep: clock.sleep });
    await d228.init();
    expect(await d228.configIntact()).toBe(true);
    e228.spontaneousReset();
    expect(await d228.configIntact()).toBe(false);
    expect(await d228.checkReset()).toBe(true);
    expect(e228.peek()).toMatchObject({ adcConfig: d228.expectedAdcConfig, shuntCal: 3750 });
  });

  it('settings beyond a chip are refused, naming chip, setting and limit', () => {
    expect(() => resolveIna226Settings(CHIPS.ina226, { maxCurrentA: 3.2 })).toThrow(
      /INA226 setting maxCurrentA=3.2: allowed at most 0.82 A with a 0.1 ohm shunt/,
    );
    expect(() => resolveIna226Settings(CHIPS.ina260, { maxCurrentA: 20 })).toThrow(/at most 15 A/);
    expect(resolveIna226Settings(CHIPS.ina260, { shuntOhms: 0.1 }).shuntOhms).toBe(0.002); // its own shunt
    expect(() => resolveIna228Settings({ maxCurrentA: 12 })).toThrow(ChipSettingError);
    expect(resolveIna228Settings().shuntOhms).toBe(0.015);
    expect(shuntCalFor({ maxCurrentA: 10, shuntOhms: 0.015, adcRange: 0 })).toBe(3750);
  });
});
