export * from './registers.js';
export * from './chips/ina226.js';
export * from './chips/ina228.js';
export { CHIPS, CHIP_IDS, TI_MANUFACTURER_ID, chipLabel, chipSpec } from './chips/table.js';
export type { ChipId, ChipIdentity, ChipSpec } from './chips/table.js';
export { ChipMismatchError, ChipSettingError, I2cError, Ina219SettingError, SensorFault, classifyI2cError, isTransient } from './errors.js';
export type { I2cFailure } from './errors.js';
export { openI2cBus } from './bus.js';
export type { I2cBus, ClosableI2cBus } from './bus.js';
export { systemClock, realSleep, VirtualClock } from './clock.js';
export type { MonotonicClock, Sleep } from './clock.js';
export { constantLoad, pwmLoad, demoBoardLoad, parseSimLoad, meanCurrentA, trueEnergyWh, mulberry32, SimLoadError } from './loads.js';
export type { LoadModel, Segment, DemoBoardOptions } from './loads.js';
export { Ina219Emulator } from './emulator.js';
export type { EmulatorOptions, Fault } from './emulator.js';
export { Ina226Emulator } from './emulators/ina226.js';
export type { Ina226EmulatorOptions } from './emulators/ina226.js';
export { Ina228Emulator } from './emulators/ina228.js';
export type { Ina228EmulatorOptions } from './emulators/ina228.js';
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
export { isAccumulatorDriver, RegisterIo } from './device.js';
export type { Log, LogFields } from './log.js';
export type { AccumulatorDriver, ConversionDriver, Reading } from './device.js';
export { Ina219 } from './driver.js';
export type { Ina219Reading, DriverOptions } from './driver.js';
export { INA226_DEFAULT_SETTINGS, Ina226, ina226CalibrationFor, resolveIna226Settings } from './drivers/ina226.js';
export type { Ina226Settings } from './drivers/ina226.js';
export { INA228_DEFAULT_SETTINGS, Ina228, resolveIna228Settings, shuntCalFor } from './drivers/ina228.js';
export type { Ina228Settings } from './drivers/ina228.js';
export { checkIdentity, probeChip } from './identify.js';
export type { ProbeResult } from './identify.js';
export { WindowAccumulator } from './window.js';
export type { WindowResult, Piece } from './window.js';
export { EnergyWindowAccumulator } from './energy-window.js';
export type { EnergySpan } from './energy-window.js';
export { Sampler } from './sampler.js';
export type { SamplerOptions, LatestReading, SensorState } from './sampler.js';
export { EnergySampler } from './energy-sampler.js';
export { createSampler, createSensor, driverFor, emulatorFor } from './sensor.js';
export type { ChipEmulator, MeasuringSampler, Sensor, SensorKind, SensorOptions } from './sensor.js';
export {
  CALIBRATION_LIMITS,
  CalibrationError,
  NO_CALIBRATION,
  calibrateReading,
  calibrateWindow,
  calibrationId,
  calibrationProblem,
  fitCalibration,
  referenceOf,
} from './calibration.js';
export type { Calibration, CalibrationPoint, Fit, LiveValues } from './calibration.js';
