import { createSampler, createSensor } from '@power-meter/ina219';
import type { OpenOutbox, SamplerFactory, SensorFactory } from './meter.js';

/**
 * What the program's commands make the sensor, the sampler and the outbox with: the libraries'
 * own by default. A test entry (test/support/meter-with-fault.mjs) replaces one before it loads
 * cli.js, so a fault (a sampler that stops, an outbox that fails, another chip) is injected
 * without a test branch or a test variable in the program itself.
 */
export const programDeps: { createSensor: SensorFactory; createSampler: SamplerFactory; openOutbox?: OpenOutbox } = {
  createSensor,
  createSampler,
};
