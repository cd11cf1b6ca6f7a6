import type { BackendSettings } from './settings.js';

/**
 * What measures, by `--sensor`: the one place that names the chip for what users see about the
 * hardware (Home Assistant's device model and hw_version). Another chip is one more row here.
 */
export const SENSOR_CHIPS: Record<BackendSettings['sensor'], { chip: string; simulated: boolean }> = {
  ina219: { chip: 'INA219', simulated: false },
  sim: { chip: 'INA219', simulated: true },
};

export interface SensorHardware {
  /** The chip, e.g. "INA219", with " (simulated)" for --sensor sim. */
  model: string;
  /** Chip and shunt, e.g. "INA219, 0.1 Ω shunt". */
  hwVersion: string;
}

export function sensorHardware(s: Pick<BackendSettings, 'sensor' | 'shuntOhms'>): SensorHardware {
  const { chip, simulated } = SENSOR_CHIPS[s.sensor];
  const model = simulated ? `${chip} (simulated)` : chip;
  return { model, hwVersion: `${model}, ${formatOhms(s.shuntOhms)} shunt` };
}

/** 0.1 -> "0.1 Ω", 0.002 -> "2 mΩ": how shunts are labelled. */
export function formatOhms(ohms: number): string {
  return ohms < 0.1 ? `${Number((ohms * 1000).toPrecision(4))} mΩ` : `${Number(ohms.toPrecision(4))} Ω`;
}
