import {
  IdentityCurveError,
  checkMessageV2,
  verifyBody,
  signMessage,
  signMessageV2,
  transportOfBody,
  w3bstreamV2Transport,
  type Curve,
  type Transport,
  type TransportName,
} from '@power-meter/w3bstream';
import type { MeterKey } from './key/meter-key.js';
import type { BackendSettings } from './settings.js';

/**
 * What the meter does differently per W3bstream generation (`--transport`): which curve a new
 * identity gets, how a reading is signed into the body the outbox stores, and which transport the
 * publisher uses. The outbox, the publisher loop and the totals are the same for both.
 */
type TransportSettings = Pick<
  BackendSettings,
  'transport' | 'curve' | 'projectId' | 'projectVersion' | 'signature' | 'timestampUnit' | 'publicKeyField'
>;

/** W3bstream 2 recovers secp256k1 signatures only: a new identity for it is created on that curve (`--curve` is for v1). */
export function identityCurveFor(s: Pick<BackendSettings, 'transport' | 'curve'>): Curve {
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

/** The refusal for a P-256 key in a token under a secp256k1-only use, saying why and the ways out. */
export function p256TokenFor(purpose: string, keyUri: string): string {
  return `the device key ${keyUri} in the PKCS#11 token is a P-256 key, and ${purpose} identifies devices by recovering a secp256k1 signature. A TPM 2.0 offers NIST curves only (no secp256k1), and so does an ATECC608; SoftHSM and some HSMs offer secp256k1. Either keep --transport w3bstream-v1, or use a token that offers secp256k1 (power-meter identity --transport w3bstream-v2 --key-uri … creates the key on it), or keep the key in the key file (no --key-uri)`;
}

/**
 * The one check every secp256k1-only use makes before it starts (the W3bstream 2 transport here;
 * an ioID permit uses the same): throws `IdentityCurveError` naming the key, the use and the ways out.
 */
export function requireSecp256k1Key(key: Pick<MeterKey, 'curve' | 'where' | 'source'>, purpose: string): void {
  if (key.curve === 'secp256k1') return;
  throw new IdentityCurveError(key.source === 'file' ? p256ForV2(key.where) : p256TokenFor(purpose, key.where));
}

/** The outbox holds undelivered messages signed by another key (the identity was replaced, e.g. moved into a token). */
export class SignerMismatchError extends Error {
  constructor(
    readonly stored: string,
    readonly current: string,
    readonly waiting: number,
  ) {
    super(
      `the outbox holds ${waiting} undelivered reading(s) signed by the device ${stored}, but the key now is the device ${current}: they would be delivered under the new device's numbering while they name the old one. Deliver them with the old key first (start without --key-uri, or with the old identity/ directory, until state.json publishing.waiting = 0), then switch; nothing was discarded`,
    );
    this.name = 'SignerMismatchError';
  }
}

/** The device that signed a stored body (either node generation), or null when it cannot be told. */
export function signerOfBody(body: string): string | null {
  const stored = transportOfBody(body);
  if (stored === 'w3bstream-v2') {
    const c = checkMessageV2(body);
    return c.ok ? c.deviceId : null;
  }
  const v = verifyBody(body);
  return v.ok ? v.deviceId : null;
}

/**
 * Checks before the meter starts: the key's curve and the oldest stored message (the outbox is
 * in order, so a backlog from before a switch starts at its head). Throws, never discards.
 */
export function checkTransport(
  s: TransportSettings,
  key: Pick<MeterKey, 'curve' | 'where' | 'source'> & Partial<Pick<MeterKey, 'deviceId'>>,
  head: { body: string } | undefined,
  waiting: number,
): void {
  if (s.transport === 'w3bstream-v2') requireSecp256k1Key(key, 'W3bstream 2 (--transport w3bstream-v2)');
  const stored = head === undefined ? null : transportOfBody(head.body);
  if (stored !== null && stored !== s.transport) throw new TransportMismatchError(stored, s.transport, waiting);
  // A backlog signed by another key (the identity replaced, e.g. moved into a token): its signer is
  // recovered once at start; the outbox is in order, so the head is the oldest.
  if (head !== undefined && key.deviceId !== undefined) {
    const signer = signerOfBody(head.body);
    const current = key.deviceId.toLowerCase();
    if (signer !== null && signer.toLowerCase() !== current) throw new SignerMismatchError(signer.toLowerCase(), current, waiting);
  }
}

/**
 * The signed body for one reading, exactly what is stored and later sent. Through the signing
 * seam: a key in a token signs asynchronously (off the event loop); the key file as before.
 */
export async function signReading(
  s: TransportSettings,
  key: Pick<MeterKey, 'signer'>,
  reading: { powerW: number; timestampMs: number },
): Promise<string> {
  if (s.transport === 'w3bstream-v2')
    return (
      await signMessageV2(key.signer, reading, { projectId: s.projectId, projectVersion: s.projectVersion, timestampUnit: s.timestampUnit })
    ).body;
  return (
    await signMessage(key.signer, reading, {
      signatureEncoding: s.signature,
      timestampUnit: s.timestampUnit,
      publicKeyField: s.publicKeyField,
    })
  ).body;
}

/** The publisher's transport; undefined = its default, v1 from the token, device and eventType. */
export function publisherTransport(s: TransportSettings): Transport | undefined {
  return s.transport === 'w3bstream-v2' ? w3bstreamV2Transport() : undefined;
}
