// Public API of @power-meter/applet-host: a local W3bstream v1 applet host, a local chain, this
// project's contracts and applet. A development tool; never installed on the Pi.
export { ResultCode, logLevelName } from './abi/codes.js';
export { createEnvImports } from './abi/imports.js';
export type { HostReply, RunContext, SyncHostCalls } from './abi/imports.js';
export { VmMemory, VmMemoryError } from './abi/memory.js';
export { SqlQueryError, jsonifyRows, parseQuery, toSqlite } from './abi/sql.js';
export type { ColumnInfo, ParsedQuery, SqlParam } from './abi/sql.js';
export { EVENT_ROUTE, appletResult, errorBody, eventAnswer, routeEvent } from './answer.js';
export type { AppletResult, EventRequest, ProjectIdentity, Routing } from './answer.js';
export { BUILD_DIR, PACKAGE_ROOT, appletWasmFile, ensureArtifacts, loadContract } from './artifacts.js';
export type { ContractArtifact, ContractName } from './artifacts.js';
export { AnvilMissingError, anvilBinary, startLocalChain } from './chain/anvil.js';
export type { LocalChain, LocalChainOptions } from './chain/anvil.js';
export { DEVICE_BOUND_TOPIC, DEVICE_REGISTERED_TOPIC, RewardSystem, encodeCall, eventTopic } from './chain/contracts.js';
export type { Address, Hex, RewardContracts } from './chain/contracts.js';
export { ContractLogWatcher, goLogJson } from './chain/logs.js';
export type { RpcLog, WatcherOptions } from './chain/logs.js';
export { RpcError, hexToBytes, rpc, toQuantity } from './chain/rpc.js';
export { AppletHost } from './host.js';
export type { AppletHostOptions, HandledEvent, HostLogLine } from './host.js';
export { ProjectConfigError, strategiesFor, tableDdl, validateProject } from './project/config.js';
export type { ChainSpec, ContractLogSpec, ProjectConfig, TableSpec } from './project/config.js';
export { ProjectServices } from './project/services.js';
export type { MqttRecord, ServicesOptions } from './project/services.js';
export { AppletRunner, WAIT_TIMEOUT_MS } from './vm/runner.js';
export type { AppletRunnerOptions, HandlerResult, LogLine } from './vm/runner.js';
export { DEFAULT_REWARD_TIERS, energyMeterProject, startLocalDepin } from './depin.js';
export type { EnergyMeterProjectOptions, LocalDepin, LocalDepinOptions, RewardTier } from './depin.js';
