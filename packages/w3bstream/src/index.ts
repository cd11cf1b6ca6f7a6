// Public API of @power-meter/w3bstream: identity, message codec, durable outbox, publisher, dev receiver.
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
export { addressOfPublicKey, recoverSecp256k1, signRecoverableSecp256k1 } from './recoverable.js';
export {
  MAX_PROJECT_ID,
  ProjectIdError,
  buildMessageV2,
  checkMessageV2,
  digestV2,
  parseProjectId,
  signedJsonV2,
} from './v2-codec.js';
export type { BuildV2Options, MessageV2Check, ProjectRef, RecoverableSigner, SignedMessageV2 } from './v2-codec.js';
export { classifyAnswerV2 } from './classify-v2.js';
export { TRANSPORT_NAMES, transportOfBody, w3bstreamV1Transport, w3bstreamV2Transport } from './transport.js';
export type { Transport, TransportName } from './transport.js';
export { DEV_ANSWER_MODES_V2, V2_ROUTE, answerMessageV2 } from './receiver-v2.js';
export { SignatureFormatError, derToRaw, isLowS, parseSignature, rawToDer } from './signature.js';
export type { SignatureEncoding } from './signature.js';
export {
  PUBLIC_KEY_FIELDS,
  ReadingError,
  buildMessage,
  publicKeyFieldValue,
  createBodyVerifier,
  dataText,
  formatSensorReading,
  objectMembers,
  timestampFor,
  verifyBody,
} from './codec.js';
export type {
  BuildOptions,
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
} from './outbox.js';
export { SequenceFloorError, readSequenceFloor, writeSequenceFloor } from './sequence-floor.js';
export type { SequenceFloorRecord } from './sequence-floor.js';
export { PERSISTING_AFTER_FAILURES, classifyAnswer, classifyNetworkError } from './classify.js';
export type { AnswerContext, Persisting, Verdict } from './classify.js';
export { Publisher, PublisherConfigError, parsePublishUrl, retryDelayMs } from './publisher.js';
export type { BackoffOptions, DeliveredEvent, PublishState, PublishStateName, PublisherEvents, PublisherOptions } from './publisher.js';
export { DEV_ANSWER_MODES, answerEvent, startDevReceiver } from './receiver.js';
export type { AnswerConfig, DevAnswerMode, DevReceiver, DevReceiverOptions, EventAnswer, EventRequest, ReceivedEvent } from './receiver.js';
export { readDamagedOutbox } from './salvage.js';
export type { DamagedOutboxContents } from './salvage.js';
