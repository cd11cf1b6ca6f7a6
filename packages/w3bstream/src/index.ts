// Public API of @power-meter/w3bstream: identity, message codec, durable outbox, publisher, what the node says.
export { CURVES, UnknownCurveError, deviceAddress, normalizeCurve, publicKeyFromHex, publicKeyHex } from './keys.js';
export type { Curve, CurveName } from './keys.js';
export {
  IdentityCorruptError,
  IdentityCurveError,
  IdentityError,
  IdentityMissingError,
  IdentityPermissionError,
  KEY_FILE,
  loadIdentity,
  loadOrCreateIdentity,
} from './identity.js';
export type { Identity, IdentityErrorKind, PublicJwk } from './identity.js';
export { RECOVERY_IDS, recoverCandidates, recoverPublicKey, recoverSignerByAddress } from './recover.js';
export type { RecoveredSigner } from './recover.js';
export { goJsonString } from './go-json.js';
export {
  EIP712_DOMAIN_TYPE,
  IOID_DOMAIN_NAME,
  IOID_DOMAIN_VERSION,
  IOID_PERMIT_TYPE,
  IoIdInputError,
  didDocument,
  didDocumentHash,
  didDocumentText,
  didKeyId,
  ioIdDomainSeparator,
  ioIdPermitDigest,
  ioIdPermitStructHash,
  signIoIdPermit,
  signIoIdPermitWith,
} from './ioid.js';
export type { DidDocument, IoIdPermit, IoIdPermitRequest } from './ioid.js';
export { addressOfPublicKey, recoverSecp256k1, signRecoverableSecp256k1 } from './recoverable.js';
export {
  MAX_PROJECT_ID,
  ProjectIdError,
  buildMessageV2,
  checkMessageV2,
  signMessageV2,
  digestV2,
  parseProjectId,
  signedJsonV2,
} from './v2-codec.js';
export type { BuildV2Options, MessageV2Check, ProjectRef, RecoverableSigner, SignedMessageV2 } from './v2-codec.js';
export { classifyAnswerV2, classifyTaskAnswer } from './classify-v2.js';
export {
  MAX_NONCE,
  MAX_TASK_PROJECT_ID,
  SIGNED_KEY_NAME,
  buildReadingTask,
  buildTask,
  signReadingTask,
  signTask,
  digestTask,
  gjsonUint,
  goCompactJson,
  parseTaskProjectId,
  readTaskBody,
  signedJsonTask,
} from './task-codec.js';
export type { SignedTask, StoredTask, TaskProject, TaskSigner } from './task-codec.js';
export {
  TRANSPORT_NAMES,
  V2_DIALECTS,
  transportOfBody,
  v2DialectOfBody,
  v2DialectOfUrl,
  w3bstreamV1Transport,
  w3bstreamV2Transport,
} from './transport.js';
export type { Transport, TransportName, V2Dialect } from './transport.js';
export {
  APINODE_ERRORS,
  MESSAGE_ROUTE,
  PROJECT_CONFIG_MISSING,
  TASK_ROUTE,
  TASK_STATES,
  possibleTaskIds,
  taskIdOf,
} from './apinode.js';
export type { Approval, DeviceApprovals, TaskStateName } from './apinode.js';
export { TaskWatcher, isFinalTaskState, parseTaskStatus } from './task-status.js';
export type { TaskStatus, TaskWatcherOptions } from './task-status.js';
export { SignatureFormatError, derToRaw, isLowS, parseSignature, rawToDer } from './signature.js';
export { SignerCurveError, lowSOf, requireSecp256k1, signRecoverableWith, signTextWith } from './signer.js';
export type { DigestSigner } from './signer.js';
export type { SignatureEncoding } from './signature.js';
export {
  PUBLIC_KEY_FIELDS,
  ReadingError,
  buildMessage,
  signMessage,
  publicKeyFieldValue,
  createBodyVerifier,
  dataText,
  formatSensorReading,
  readingOfData,
  objectMembers,
  timestampFor,
  verifyBody,
} from './codec.js';
export type {
  BuildOptions,
  ExtraDataMembers,
  LowSRule,
  PublicKeyField,
  Reading,
  ReadingExtras,
  SignedMessage,
  Signer,
  TimestampUnit,
  VerifyOptions,
  VerifyResult,
} from './codec.js';
export { Outbox, OutboxCorruptError, OutboxLockedError, OutboxOptionError, OutboxTooNewError, isCorruptionError } from './outbox.js';
export type {
  AppendResult,
  DeliveryOutcome,
  Migration,
  OutboxMessage,
  OutboxOpenReport,
  OutboxOptions,
  OutboxSql,
  OutboxStats,
  SchemaExtension,
  SeqGapReason,
  WaitingGroup,
} from './outbox.js';
export { SequenceFloorError, readSequenceFloor, writeSequenceFloor } from './sequence-floor.js';
export type { SequenceFloorRecord } from './sequence-floor.js';
export { PERSISTING_AFTER_FAILURES, classifyAnswer, classifyNetworkError } from './classify.js';
export type { AnswerContext, Persisting, PublishSetting, Verdict } from './classify.js';
export { Publisher, PublisherConfigError, parsePublishUrl, retryDelayMs } from './publisher.js';
export type { BackoffOptions, DeliveredEvent, PublishState, PublisherEvents, PublisherOptions } from './publisher.js';
export type { Log, LogFields } from './log.js';
export { readDamagedOutbox } from './salvage.js';
export type { DamagedOutboxContents } from './salvage.js';
export { Pkcs11UriError, formatPkcs11Uri, parsePkcs11Uri } from './pkcs11/uri.js';
export type { Pkcs11Uri } from './pkcs11/uri.js';
export { Pkcs11Key, TokenError, ecPointHex, tokenErrorOf } from './pkcs11/token.js';
export type { OpenTokenOptions, TokenFaultKind, TokenKeyInfo } from './pkcs11/token.js';
