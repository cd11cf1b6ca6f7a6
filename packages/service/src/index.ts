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
export { EXIT, EXIT_STATUSES, NO_RESTART_STATUSES } from './exit-codes.js';
export type { ExitStatus, ExitStatusInfo } from './exit-codes.js';
export { createLogger, parseLogLevel, renderFields, stderrIsJournal, LOG_LEVELS, PRIORITY } from './log.js';
export type { Log, LogFields, Logger, LogLevel, LoggerOptions } from './log.js';
export { ServiceNotifier, packageVersion } from './service.js';
export type { ServiceNotifierOptions } from './service.js';
