// Public API of @power-meter/dev-node, the development package: stand-ins for the W3bstream node
// (the dev receivers, a v1 applet host), a local chain, this project's contracts and applet.
// Never installed on the Pi; no program depends on it.
export { ResultCode, logLevelName } from './abi/codes.js';
export { createEnvImports, createStatImports } from './abi/imports.js';
export type { HostReply, RunContext, SyncHostCalls } from './abi/imports.js';
export { VmMemory, VmMemoryError } from './abi/memory.js';
export { routeEvent } from './answer.js';
export type { ProjectIdentity, Routing } from './answer.js';
export { APPLETS, BUILD_DIR, PACKAGE_ROOT, appletWasmFile, ensureArtifacts, loadContract } from './artifacts.js';
export type { AppletName, ContractArtifact, ContractName } from './artifacts.js';
export { AnvilMissingError, anvilBinary, startLocalChain } from './chain/anvil.js';
export type { LocalChain, LocalChainOptions } from './chain/anvil.js';
export { DEVICE_BOUND_TOPIC, DEVICE_REGISTERED_TOPIC, RewardSystem, encodeCall, eventTopic } from './chain/contracts.js';
export type { Address, Hex, RewardContracts } from './chain/contracts.js';
export { RpcError, hexToBytes, rpc, toQuantity } from './chain/rpc.js';
export { AppletHost } from './host.js';
export type { AppletHostOptions, HandledEvent, HostLogLine } from './host.js';
export { ChainMonitors, CronJobs, everyMs } from './monitor/monitors.js';
export type { Deliver, MonitorSource } from './monitor/monitors.js';
export { chainHeightJson, cronPayload, goLogJson, goNowJson, goTransactionJson, quantity } from './monitor/payloads.js';
export type { RpcLog, RpcTransaction } from './monitor/payloads.js';
export { ApiCallServer, encodeApiResponse } from './project/api-call.js';
export type { ApiResponse, ApiServices } from './project/api-call.js';
export {
  EVENT_DEFAULT,
  MONITOR_DEFAULT,
  ProjectConfigError,
  chainFor,
  envMap,
  strategiesFor,
  validateCron,
  validateProject,
} from './project/config.js';
export type {
  AppletSpec,
  ChainHeightSpec,
  ChainSpec,
  ChainTxSpec,
  ContractLogSpec,
  CronJobSpec,
  OperatorSpec,
  ProjectConfig,
  StrategySpec,
} from './project/config.js';
export { LOCAL_CHAIN_ENDPOINT, localChainIds, missingWasmFiles, readProjectFile, resolveProject } from './project/file.js';
export type { ProjectFile, ResolveOptions } from './project/file.js';
export { columnDdl, databaseDdl, schemasOf } from './project/schema.js';
export type { ColumnSpec, DatabaseSpec, KeySpec, SchemaSpec, TableSpec } from './project/schema.js';
export { ProjectServices } from './project/services.js';
export type { MetricRecord, MqttRecord, ServicesOptions } from './project/services.js';
export { ProjectDatabase } from './sql/database.js';
export { AppletSql, bindMessage } from './sql/engine.js';
export { GoJsonError, goFormatFloat, goJsonFloat, goJsonObject, goJsonString } from './sql/gojson.js';
export { SqlQueryError, encodeParam, formatPqTimestamp, parseQuery, parseRfc3339, replaceValueHolder } from './sql/query.js';
export type { GoTime, ParsedQuery, SqlParam } from './sql/query.js';
export { OID, encodeColumn, jsonifyRows } from './sql/rows.js';
export type { ResultField } from './sql/rows.js';
export { AppletRunner, WAIT_TIMEOUT_MS } from './vm/runner.js';
export type { AppletRunnerOptions, HandlerResult, LogLine, RunInfo } from './vm/runner.js';
export { DEFAULT_PER_READING_REWARD_TIERS, ENERGY_METER_PROJECT_FILE, energyMeterProject, startLocalDepin } from './depin.js';
export type { EnergyMeterProjectOptions, LocalDepin, LocalDepinOptions, PerReadingRewardTier } from './depin.js';
export { LocalIoId } from './chain/ioid.js';
export type { IoIdAddresses, PermitForRegister } from './chain/ioid.js';
// The dev receivers (also their own entry point, @power-meter/dev-node/receiver).
export * from './receiver/index.js';
export {
  V1_INVALID_TOKEN,
  V1_EVENT_ROUTE,
  v1EventAnswer,
  matchV1EventRoute,
  newV1EventId,
  v1ErrorBody,
  v1TokenAccepted,
  v1AnswerHead,
  v1AppletResult,
  v1EventParams,
  v1EventPath,
  v1WrongChannelAnswer,
} from './v1-event-route.js';
export type {
  V1ErrorBody,
  V1AnswerHead,
  V1AppletResult,
  V1EventParams,
  V1Publisher,
  V1RouteMatch,
  V1RouteRequest,
} from './v1-event-route.js';
