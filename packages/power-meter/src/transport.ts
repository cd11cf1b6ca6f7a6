import {
  IdentityCurveError,
  buildMessage,
  buildMessageV2,
  transportOfBody,
  w3bstreamV2Transport,
  type Identity,
  type Reading,
  type ReadingExtras,
  type Transport,
  type TransportName,
} from '@power-meter/w3bstream';
import type { BackendSettings } from './settings.js';

/**
 * What the meter does differently per W3bstream generation (`--transport`): which curve a new
 * identity gets, how a reading is signed into the body the outbox stores, and which transport the
 * publisher uses. The outbox, the publisher loop and the totals are the same for both.
 */
type TransportSettings = Pick<
  BackendSettings,
  'transport' | 'curve' | 'projectId' | 'projectVersion' | 'signature' | 'timestampUnit' | 'publicKeyField' | 'signedFields'
>;

/** W3bstream 2 recovers secp256k1 signatures only: a new identity for it is created on that curve (`--curve` is for v1). */
export function identityCurveFor(s: Pick<BackendSettings, 'transport' | 'curve'>): 'p256' | 'secp256k1' {
  return s.transport === 'w3bstream-v2' ? 'secp256k1' : s.curve;
}

/** The refusal for a P-256 identity under W3bstream 2, saying how to get a secp256k1 one without losing the old key. */
export function p256ForV2(keyFile: string): string {
  const dir = keyFile.replace(/\/[^/]*$/, '');
  return `the device identity ${keyFile} is a P-256 key, and W3bstream 2 (--transport w3bstream-v2) identifies devices by recovering a secp256k1 signature. The key is not replaced (its address may be registered): either keep --transport w3bstream-v1, or stop the meter, move ${dir} away (keep it as a backup), run "power-meter identity --transport w3bstream-v2 --project-id … --project-version …" to create a secp256k1 identity, and register its DID in ioID`;
}

/** The outbox holds undelivered messages signed for the other node generation. */
export class TransportMismatchError extends Error {
  constructor(
    readonly stored: TransportName,
    readonly configured: TransportName,
    readonly waiting: number,
  ) {
    super(
      `the outbox holds ${waiting} undelivered reading(s) signed for ${stored}, but --transport is ${configured}: their signatures cover the ${stored} message, so they cannot be sent to the other node. Start with --transport ${stored} until they are delivered (state.json publishing.waiting = 0), then switch; nothing was discarded`,
    );
    this.name = 'TransportMismatchError';
  }
}

/**
 * Checks before the meter starts: the identity's curve and the oldest stored message (the outbox is
 * in order, so a backlog from before a switch starts at its head). Throws, never discards.
 */
export function checkTransport(s: TransportSettings, identity: Identity, head: { body: string } | undefined, waiting: number): void {
  if (s.transport === 'w3bstream-v2' && identity.curve !== 'secp256k1') throw new IdentityCurveError(p256ForV2(identity.keyFile));
  const stored = head === undefined ? null : transportOfBody(head.body);
  if (stored !== null && stored !== s.transport) throw new TransportMismatchError(stored, s.transport, waiting);
}

/**
 * The signed body for one reading, exactly what is stored and later sent. `extras` (its sequence
 * number and the energy total) go into the signed data only with `--signed-fields extended`.
 */
export function signReading(
  s: TransportSettings,
  identity: Identity,
  reading: { powerW: number; timestampMs: number },
  extras: ReadingExtras,
): string {
  const r: Reading = s.signedFields === 'extended' ? { ...reading, extras } : reading;
  if (s.transport === 'w3bstream-v2')
    return buildMessageV2(identity, r, { projectId: s.projectId, projectVersion: s.projectVersion, timestampUnit: s.timestampUnit }).body;
  return buildMessage(identity, r, {
    signatureEncoding: s.signature,
    timestampUnit: s.timestampUnit,
    publicKeyField: s.publicKeyField,
  }).body;
}

/** The publisher's transport; undefined = its default, v1 from the token, device and eventType. */
export function publisherTransport(s: TransportSettings): Transport | undefined {
  return s.transport === 'w3bstream-v2' ? w3bstreamV2Transport() : undefined;
}
