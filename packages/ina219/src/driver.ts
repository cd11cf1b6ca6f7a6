import type { I2cBus } from './bus.js';
import { CHIPS, type ChipSpec } from './chips/table.js';
import { realSleep, type Sleep } from './clock.js';
import { RegisterIo, type ConversionDriver, type DriverOptions } from './device.js';
import { I2cError, isTransient } from './errors.js';
import { checkIdentity } from './identify.js';
import { BUS_FIELDS, BUS_LSB_MV, PG_RANGE_MV, REGISTERS, SHUNT_LSB_UV, getField, type RegisterName } from './registers.js';
import {
  calibrationFor,
  configWord,
  currentLsbFor,
  cycleMs,
  initialRangeMv,
  observedFractionPerCycle,
  resolveIna219Settings,
  type Ina219Settings,
  type ShuntRangeMv,
} from './settings.js';

export interface Ina219Reading {
  /** Conversion ready (CNVR) when the bus register was read. */
  ready: boolean;
  shuntUv: number;
  busV: number;
  /** Computed in software from the shunt voltage: immune to a lost calibration register. */
  currentA: number;
  powerW: number;
  /** The shunt clipped at the widest range or the chip flagged overflow: the numbers are not valid. */
  outOfRange: boolean;
  /** The automatic range stepped up during this read: the reading is discarded. */
  rangeChanged: boolean;
  rangeMv: ShuntRangeMv;
}

export type { DriverOptions } from './device.js';

/**
 * INA219 driver on the small bus interface. Reads shunt and bus only and does the current and
 * power math in software (docs/hardware.md "Robustness facts"); writes calibration anyway so other
 * tools reading registers 0x03/0x04 see correct values.
 */
export class Ina219 implements ConversionDriver {
  readonly chip: ChipSpec = CHIPS.ina219;
  readonly settings: Ina219Settings;
  /** Conversion cycle in continuous shunt + bus mode, ms. */
  readonly cycleMs: number;
  readonly observedShare: number;
  readonly currentLsbA: number;
  readonly calibration: number;
  private rangeMv: ShuntRangeMv;
  private readonly buf = Buffer.alloc(2);
  private readonly sleep: Sleep;
  resets = 0;

  constructor(
    private readonly bus: I2cBus,
    settings: Partial<Ina219Settings> = {},
    private readonly opts: DriverOptions = {},
  ) {
    this.settings = resolveIna219Settings(settings);
    this.currentLsbA = currentLsbFor(this.settings.maxCurrentA);
    this.calibration = calibrationFor(this.currentLsbA, this.settings.shuntOhms);
    this.rangeMv = initialRangeMv(this.settings);
    this.sleep = opts.sleep ?? realSleep;
    this.cycleMs = cycleMs(this.settings);
    this.observedShare = observedFractionPerCycle(this.settings);
  }

  get address(): number {
    return this.settings.address;
  }

  get expectedConfig(): number {
    return configWord(this.settings, this.rangeMv);
  }

  get currentRangeMv(): ShuntRangeMv {
    return this.rangeMv;
  }

  /**
   * Checks that no other chip identifies itself at the address (the INA219 has no ID registers),
   * resets the chip, then writes configuration and calibration.
   */
  async init(): Promise<void> {
    await checkIdentity(
      new RegisterIo(this.bus, this.settings.address, `INA219 at 0x${this.settings.address.toString(16)}`, this.opts),
      this.chip,
    );
    await this.write('config', 0x8000);
    await this.write('config', this.expectedConfig);
    await this.write('calibration', this.calibration);
  }

  /**
   * True if the chip lost its settings (brown-out or RST): the configuration reads back
   * different from what was written. Re-applies them before returning.
   */
  async checkReset(): Promise<boolean> {
    const config = await this.readRegister('config');
    if (config === this.expectedConfig) return false;
    this.resets++;
    this.opts.log?.warning(
      `INA219 at 0x${this.settings.address.toString(16)} lost its configuration (read 0x${config.toString(16)}): chip reset, settings re-applied`,
    );
    await this.write('config', this.expectedConfig);
    await this.write('calibration', this.calibration);
    return true;
  }

  /** Reads bus (with CNVR/OVF) and shunt; `clearReady` also reads power so CNVR starts over. */
  async read(clearReady = true): Promise<Ina219Reading> {
    const busWord = await this.readRegister('bus');
    const shuntRaw = await this.readRegister('shunt');
    if (clearReady) await this.readRegister('power');
    const ready = getField(busWord, BUS_FIELDS.cnvr) === 1;
    const ovf = getField(busWord, BUS_FIELDS.ovf) === 1;
    const busV = (getField(busWord, BUS_FIELDS.value) * BUS_LSB_MV) / 1000;
    const shuntUv = shuntRaw * SHUNT_LSB_UV;
    const limitUv = this.rangeMv * 1000;
    const clipped = Math.abs(shuntUv) >= limitUv;
    let rangeChanged = false;
    let outOfRange = false;
    if (clipped || (ovf && this.calibration !== 0)) {
      const wider = PG_RANGE_MV.find((r) => r > this.rangeMv) as ShuntRangeMv | undefined;
      if (this.settings.shuntRange === 'auto' && wider !== undefined) {
        this.rangeMv = wider;
        await this.write('config', this.expectedConfig);
        this.opts.log?.notice(`INA219 shunt range stepped up to ${wider} mV`);
        rangeChanged = true;
      } else if (clipped) {
        outOfRange = true;
      }
    }
    const currentA = shuntUv / 1e6 / this.settings.shuntOhms;
    // Power drawn from the supply: IN+ voltage (bus on IN- plus the shunt drop) times current.
    // The bus ADC samples one instant while the shunt ADC averages 68 ms; with a switching load,
    // bus x current is biased by R x var(I) (the shunt drop changes with the load), while
    // (bus + mean shunt drop) x current is unbiased for a stiff supply. The shunt's own loss
    // (0.8 % at 12 W, 0.1 ohm) is included, as a utility meter at the supply would include it.
    const supplyV = busV + shuntUv / 1e6;
    return { ready, shuntUv, busV, currentA, powerW: supplyV * currentA, outOfRange, rangeChanged, rangeMv: this.rangeMv };
  }

  async readRegister(name: RegisterName): Promise<number> {
    const spec = REGISTERS[name];
    try {
      // The usual case, three times per conversion: one transfer, no closure (backend CPU budget).
      await this.bus.readI2cBlock(this.settings.address, spec.ptr, 2, this.buf);
    } catch (err) {
      await this.retry(
        `read ${spec.name} register (0x0${spec.ptr})`,
        () => this.bus.readI2cBlock(this.settings.address, spec.ptr, 2, this.buf),
        { error: err },
      );
    }
    return spec.signed ? this.buf.readInt16BE(0) : this.buf.readUInt16BE(0);
  }

  async write(name: RegisterName, value: number): Promise<void> {
    const spec = REGISTERS[name];
    await this.retry(`write ${spec.name} register (0x0${spec.ptr})`, async () => {
      await this.bus.writeI2cBlock(this.settings.address, spec.ptr, 2, Buffer.from([(value >> 8) & 0xff, value & 0xff]));
    });
  }

  /**
   * Transient errors (EIO, NACK, timeout) are retried with backoff: 2, 4, 8 ms. `first`: the
   * caller already made the first attempt, and it failed with this error.
   */
  private async retry<T>(operation: string, fn: () => Promise<T>, first?: { error: unknown }): Promise<T> {
    const attempts = this.opts.attempts ?? 4;
    const target = `INA219 at 0x${this.settings.address.toString(16)}`;
    for (let i = 1; ; i++) {
      try {
        if (i === 1 && first !== undefined) throw first.error;
        return await fn();
      } catch (err) {
        const e = err instanceof I2cError ? err : new I2cError(operation, target, err);
        if (!isTransient(e.kind) || i >= attempts) throw e;
        await this.sleep(2 ** i);
      }
    }
  }
}
