export * from './registers.js';
export { I2cError, Ina219SettingError, SensorFault, classifyI2cError, isTransient } from './errors.js';
export type { I2cFailure } from './errors.js';
export { openI2cBus } from './bus.js';
export type { I2cBus, ClosableI2cBus } from './bus.js';
export { systemClock, realSleep, VirtualClock } from './clock.js';
export type { MonotonicClock, Sleep } from './clock.js';
export { constantLoad, pwmLoad, demoBoardLoad, parseSimLoad, meanCurrentA, trueEnergyWh, mulberry32, SimLoadError } from './loads.js';
export type { LoadModel, Segment, DemoBoardOptions } from './loads.js';
export { Ina219Emulator } from './emulator.js';
export type { EmulatorOptions, Fault } from './emulator.js';
export {
  DEFAULT_SETTINGS,
  PRESETS,
  calibrationFor,
  currentLsbFor,
  configWord,
  cycleMs,
  observedFractionPerCycle,
  powerLsbW,
  resolveIna219Settings,
} from './settings.js';
export type { Ina219Settings, Preset, ShuntRangeMv } from './settings.js';
export { Ina219 } from './driver.js';
export type { Ina219Reading, DriverOptions } from './driver.js';
export { WindowAccumulator } from './window.js';
export type { WindowResult, Piece } from './window.js';
export { Sampler } from './sampler.js';
export type { SamplerOptions, LatestReading, SensorState } from './sampler.js';
export { createSensor } from './sensor.js';
export type { Sensor, SensorOptions } from './sensor.js';
