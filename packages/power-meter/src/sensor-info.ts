import { CHIPS, CHIP_IDS, chipLabel } from '@power-meter/ina219';
import { sensorChip, type BackendSettings } from './settings.js';

/**
 * What measures, by `--sensor`: the one place that names the chip for what users see about the
 * hardware (Home Assistant's device model and hw_version, the logs). The chips themselves are
 * rows of the sensor library's chip table; `sim` emulates `--sim-chip` (INA219 by default).
 */
export const SENSOR_CHIPS: Record<BackendSettings['sensor'], { chip: string; simulated: boolean }> = {
  ...(Object.fromEntries(CHIP_IDS.map((id) => [id, { chip: CHIPS[id].name, simulated: false }])) as Record<
    (typeof CHIP_IDS)[number],
    { chip: string; simulated: boolean }
  >),
  sim: { chip: CHIPS.ina219.name, simulated: true },
};

export interface SensorHardware {
  /** The chip, e.g. "INA228", with " (simulated)" for --sensor sim. */
  model: string;
  /** Chip and shunt, e.g. "INA219, 0.1 Ω shunt"; the INA260's is inside the chip. */
  hwVersion: string;
}

export function sensorHardware(
  s: Pick<BackendSettings, 'sensor' | 'shuntOhms'> & Partial<Pick<BackendSettings, 'simChip'>>,
): SensorHardware {
  const id = sensorChip({ sensor: s.sensor, simChip: s.simChip ?? 'ina219' });
  const model = chipLabel(id, s.sensor === 'sim');
  const inside = CHIPS[id].internalShuntOhms;
  return {
    model,
    hwVersion: inside === null ? `${model}, ${formatOhms(s.shuntOhms)} shunt` : `${model}, ${formatOhms(inside)} shunt inside`,
  };
}

/** 0.1 -> "0.1 Ω", 0.002 -> "2 mΩ": how shunts are labelled. */
export function formatOhms(ohms: number): string {
  return ohms < 0.1 ? `${Number((ohms * 1000).toPrecision(4))} mΩ` : `${Number(ohms.toPrecision(4))} Ω`;
}
