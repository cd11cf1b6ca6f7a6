export { STATE_SCHEMA, FILES, LEGACY_FILES, DEFAULT_HOURLY_REWARD_TIERS } from './schema.js';
export type { MeterState, RewardBalance, IoIdStatus, WindowSummary, PublishingStateName, SensorStateName } from './schema.js';
export type { HourlyRewardTier } from './schema.js';
export { parseState } from './parse.js';
export type { ParseResult, StateProblem } from './parse.js';
export { legacyFileContents, legacyStatusOf, formatW } from './legacy.js';
export type { LegacyStatus } from './legacy.js';
export { writeFileAtomic, writeFileAtomicSync, cleanupTempFiles, isTempFile, readState, STATE_MAX_BYTES } from './files.js';
export type { AtomicWriteOptions } from './files.js';
export { exampleIoIdStatus, exampleRewardBalance, exampleState } from './example.js';
export {
  SettingError,
  UnknownKeyError,
  resolveSettings,
  loadConfigFile,
  loadSettings,
  checkConfigKeys,
  closest,
  configJsonTypes,
  helpText,
  parsers,
  CONFIG_MAX_BYTES,
  DEFAULT_CONFIG_FILE,
} from './settings.js';
export type { JsonType, SettingSpec, SpecTable, Resolved, SettingInputs, SettingSource, LoadSettingsOptions } from './settings.js';
export { readBoundedFile, readBoundedFileSync } from './bounded-read.js';
export type { BoundedReadResult } from './bounded-read.js';
export { EXIT, EXIT_STATUSES, NO_RESTART_STATUSES } from './exit-codes.js';
export type { ExitStatus, ExitStatusInfo } from './exit-codes.js';
export { createLogger, parseLogLevel, stderrIsJournal, LOG_LEVELS, PRIORITY } from './log.js';
export type { Logger, LogLevel, LoggerOptions } from './log.js';
export { ServiceNotifier, packageVersion } from './service.js';
export { pidAlive } from './process.js';
export type { ServiceNotifierOptions } from './service.js';
