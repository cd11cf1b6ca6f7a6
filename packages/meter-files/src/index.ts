export { STATE_SCHEMA, FILES, LEGACY_FILES } from './schema.js';
export type { MeterState, WindowSummary, PublishingStateName, SensorStateName } from './schema.js';
export { parseState } from './parse.js';
export type { ParseResult, StateProblem } from './parse.js';
export { legacyFileContents, formatW } from './legacy.js';
export type { LegacyStatus } from './legacy.js';
export { writeFileAtomic, cleanupTempFiles, isTempFile, readState } from './files.js';
export type { AtomicWriteOptions } from './files.js';
export { exampleState } from './example.js';
