// Public API of @power-meter/w3bstream: identity, message codec, durable outbox, publisher, dev receiver.
export { CURVES, UnknownCurveError, deviceAddress, normalizeCurve, publicKeyFromHex, publicKeyHex } from './keys.js';
export type { Curve, CurveName } from './keys.js';
export { IdentityCorruptError, IdentityError, IdentityMissingError, IdentityPermissionError, KEY_FILE, loadIdentity, loadOrCreateIdentity } from './identity.js';
export type { Identity, IdentityErrorKind } from './identity.js';
export { SignatureFormatError, derToRaw, isLowS, parseSignature, rawToDer } from './signature.js';
export type { SignatureEncoding } from './signature.js';
export { ReadingError, buildMessage, createBodyVerifier, dataText, formatReading, formatSensorReading, objectMembers, signText, timestampFor, verifyBody } from './codec.js';
export type { BuildOptions, SignedMessage, Signer, TimestampUnit, VerifyResult } from './codec.js';
export { Outbox, OutboxLockedError, OutboxOptionError } from './outbox.js';
export type { DeliveryOutcome, OutboxMessage, OutboxOptions, OutboxStats } from './outbox.js';
export { classifyAnswer, classifyNetworkError } from './classify.js';
export type { Verdict } from './classify.js';
export { Publisher, PublisherConfigError, parsePublishUrl, retryDelayMs } from './publisher.js';
export type { BackoffOptions, DeliveredEvent, PublishState, PublishStateName, PublisherEvents, PublisherOptions } from './publisher.js';
export { startDevReceiver } from './receiver.js';
export type { DevReceiver, DevReceiverOptions, Misbehaviour, ReceivedEvent, ReceivedRecord } from './receiver.js';
