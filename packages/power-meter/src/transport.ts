import {
  IdentityCurveError,
  buildMessage,
  buildMessageV2,
  buildReadingTask,
  checkMessageV2,
  signMessage,
  signMessageV2,
  signReadingTask,
  transportOfBody,
  verifyBody,
  v2DialectOfUrl,
  w3bstreamV2Transport,
  type Curve,
  type ExtraDataMembers,
  type Identity,
  type Outbox,
  type Reading,
  type Transport,
  type TransportName,
  type V2Dialect,
} from '@power-meter/w3bstream';
import type { MeterKey } from './key/meter-key.js';
import type { BackendSettings } from './settings.js';

/**
 * What the meter does differently per W3bstream generation (`--transport`) and, for W3bstream 2,
 * per node API (the publish URL's ending: `/v1/task` or `/message`): which curve a new identity
 * gets, how a reading is signed into the body the outbox stores, which transport the publisher
 * uses, and which stored backlog it can still send. The outbox, the publisher loop and the totals
 * are the same for all.
 */
type TransportSettings = Pick<
  BackendSettings,
  | 'transport'
  | 'curve'
  | 'projectId'
  | 'projectVersion'
  | 'signedKeys'
  | 'signature'
  | 'timestampUnit'
  | 'publicKeyField'
  | 'signedFields'
  | 'publishUrl'
  | 'dataDir'
>;

/** What a stored body was signed for: the v1 event, or a W3bstream 2 dialect. */
export type SignedFor = 'w3bstream-v1' | 'w3bstream-v2 task' | 'w3bstream-v2 message';

/** W3bstream 2 recovers secp256k1 signatures only: a new identity for it is created on that curve (`--curve` is for v1). */
export function identityCurveFor(s: Pick<BackendSettings, 'transport' | 'curve'>): Curve {
  return s.transport === 'w3bstream-v2' ? 'secp256k1' : s.curve;
}

/** The W3bstream 2 API the meter signs for: the publish URL's ending; `task` (the current node) without a URL. */
export function v2Dialect(s: Pick<BackendSettings, 'publishUrl'>): V2Dialect {
  return s.publishUrl === '' ? 'task' : (v2DialectOfUrl(s.publishUrl) ?? 'task');
}

/** What the configured meter signs new readings for. */
export function signedForSettings(s: Pick<BackendSettings, 'transport' | 'publishUrl'>): SignedFor {
  return s.transport === 'w3bstream-v1' ? 'w3bstream-v1' : `w3bstream-v2 ${v2Dialect(s)}`;
}

/** The refusal for a P-256 identity under W3bstream 2, saying how to get a secp256k1 one without losing the old key. */
export function p256ForV2(keyFile: string): string {
  const dir = keyFile.replace(/\/[^/]*$/, '');
  const dataDir = dir.replace(/\/identity$/, '');
  return `the device identity ${keyFile} is a P-256 key, and W3bstream 2 (--transport w3bstream-v2) identifies devices by recovering a secp256k1 signature. The key is not replaced (its address may be registered): either keep --transport w3bstream-v1, or stop the meter, move ${dir} away (keep it as a backup: mv ${dir} ${dir}.p256), run "power-meter identity --transport w3bstream-v2 --data-dir ${dataDir}" to create a secp256k1 identity, and register it in ioID (README "Put the meter on IoTeX"). Readings still waiting, signed by the old key, can then be signed again for W3bstream 2 ("power-meter outbox resign") or exported and discarded ("power-meter outbox export", "power-meter outbox discard")`;
}

/** The ways out of a backlog that cannot be sent with the current settings (README "A backlog signed for other settings"). */
function waysOut(s: Pick<BackendSettings, 'dataDir'>, drain: string): string {
  return `Either ${drain}; or sign them again for the current settings with "power-meter outbox resign --data-dir ${s.dataDir} …(the same settings)" (same readings, same values and times, new signatures; stop the meter first); or save them with "power-meter outbox export --data-dir ${s.dataDir} > backlog.jsonl" and remove them with "power-meter outbox discard --data-dir ${s.dataDir}". Nothing was discarded`;
}

/** The outbox holds undelivered messages signed for another node generation or API. */
export class TransportMismatchError extends Error {
  constructor(
    readonly stored: SignedFor,
    readonly configured: SignedFor,
    readonly waiting: number,
    s: Pick<BackendSettings, 'dataDir'>,
  ) {
    const drain =
      stored === 'w3bstream-v1'
        ? 'start with --transport w3bstream-v1 (and its publish URL and token) until they are delivered (state.json publishing.waiting = 0), then switch'
        : `start with --transport w3bstream-v2 and a publish URL ending in ${stored.endsWith('task') ? '/v1/task' : '/message'} until they are delivered, then switch`;
    super(
      `the outbox holds ${waiting} undelivered reading(s) signed for ${stored}, but the settings sign for ${configured}: their signatures cover the ${stored} request, so they cannot be sent to the other node. ${waysOut(s, drain)}`,
    );
    this.name = 'TransportMismatchError';
  }
}

/** The outbox holds W3bstream 2 readings signed for another project or project version. */
export class ProjectMismatchError extends Error {
  constructor(
    readonly stored: { projectId: string; projectVersion: string; count: number },
    readonly configured: { projectId: string; projectVersion: string },
    s: Pick<BackendSettings, 'dataDir'>,
  ) {
    const name = (p: { projectId: string; projectVersion: string }) => `project ${p.projectId} version ${p.projectVersion || '(default)'}`;
    super(
      `the outbox holds ${stored.count} undelivered reading(s) signed for ${name(stored)}, but the settings say ${name(configured)}: the project is inside their signatures, so they would go to ${name(stored)}, not to the new one. ${waysOut(s, `start with --project-id ${stored.projectId}${stored.projectVersion ? ` --project-version ${stored.projectVersion}` : ''} until they are delivered (state.json publishing.waiting = 0), then change`)}`,
    );
    this.name = 'ProjectMismatchError';
  }
}

/** What the waiting messages were signed for, by group (one scan of the outbox). */
export interface BacklogGroup {
  signedFor: SignedFor | null;
  projectId: string;
  projectVersion: string;
  count: number;
  firstSeq: number;
}

export function backlogGroups(outbox: Outbox): BacklogGroup[] {
  return outbox.groupWaiting({ extract: ['$.projectID', '$.projectVersion'], type: ['$.nonce', '$.data'] }).map((g) => {
    const [nonce, data] = g.types;
    const signedFor: SignedFor | null =
      nonce !== null ? 'w3bstream-v2 task' : data !== null ? 'w3bstream-v1' : g.values[0] !== null ? 'w3bstream-v2 message' : null;
    return {
      signedFor,
      projectId: g.values[0] === null ? '' : String(g.values[0]),
      projectVersion: g.values[1] === null ? '' : String(g.values[1]),
      count: g.count,
      firstSeq: g.firstSeq,
    };
  });
}

/** The refusal for a P-256 key in a token under a secp256k1-only use, saying why and the ways out. */
export function p256TokenFor(purpose: string, keyUri: string): string {
  return `the device key ${keyUri} in the PKCS#11 token is a P-256 key, and ${purpose} identifies devices by recovering a secp256k1 signature. A TPM 2.0 offers NIST curves only (no secp256k1), and so does an ATECC608; SoftHSM and some HSMs offer secp256k1. Either keep --transport w3bstream-v1, or use a token that offers secp256k1 (power-meter identity --transport w3bstream-v2 --key-uri … creates the key on it), or keep the key in the key file (no --key-uri)`;
}

/**
 * The one check every secp256k1-only use makes before it starts (the W3bstream 2 transport, an
 * ioID permit): throws `IdentityCurveError` naming the key, the use and the ways out.
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

/**
 * The device that signed a stored body, or null when it cannot be told cheaply (a /v1/task body:
 * its digest depends on the project's signed keys).
 */
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
 * A backlog signed by another key (the identity replaced, e.g. moved into a token) is refused:
 * its signer is recovered once at start; the outbox is in order, so the head is the oldest.
 */
export function checkBacklogSigner(key: Pick<MeterKey, 'deviceId'>, head: { body: string } | undefined, waiting: number): void {
  if (head === undefined) return;
  const signer = signerOfBody(head.body);
  const current = key.deviceId.toLowerCase();
  if (signer !== null && signer.toLowerCase() !== current) throw new SignerMismatchError(signer.toLowerCase(), current, waiting);
}

/**
 * Checks before the meter starts: the identity's curve, and every stored message still waiting
 * (which node API it was signed for, which project and version). Throws, never discards.
 */
export function checkTransport(
  s: TransportSettings,
  key: Pick<MeterKey, 'curve' | 'where' | 'source'>,
  backlog: readonly BacklogGroup[],
): void {
  if (s.transport === 'w3bstream-v2') requireSecp256k1Key(key, 'W3bstream 2 (--transport w3bstream-v2)');
  const configured = signedForSettings(s);
  const waiting = backlog.reduce((n, g) => n + g.count, 0);
  const other = backlog.find((g) => g.signedFor !== null && g.signedFor !== configured);
  if (other !== undefined)
    throw new TransportMismatchError(
      other.signedFor!,
      configured,
      backlog.filter((g) => g.signedFor === other.signedFor).reduce((n, g) => n + g.count, 0),
      s,
    );
  if (configured === 'w3bstream-v1' || waiting === 0) return;
  const mine = { projectId: s.projectId, projectVersion: s.projectVersion };
  const foreign = backlog.find((g) => g.signedFor !== null && (g.projectId !== mine.projectId || g.projectVersion !== mine.projectVersion));
  if (foreign !== undefined) {
    const count = backlog
      .filter((g) => g.projectId === foreign.projectId && g.projectVersion === foreign.projectVersion)
      .reduce((n, g) => n + g.count, 0);
    throw new ProjectMismatchError({ projectId: foreign.projectId, projectVersion: foreign.projectVersion, count }, mine, s);
  }
}

/**
 * The signed body for one reading, exactly what is stored and later sent, as a function of its
 * sequence number (called inside the outbox's transaction): a task is signed with it as nonce, and
 * with `--signed-fields extended` it and `energyWh` (the energy total on the card) go into the
 * signed data as `seq` and `energy_wh`. `extraData`: what the wire profile adds after those (the
 * calibration id).
 */
export function signReading(
  s: TransportSettings,
  identity: Identity,
  reading: { powerW: number; timestampMs: number },
  extraData: ExtraDataMembers = [],
  energyWh = 0,
): (seq: number) => string {
  const signed = (seq: number): Reading => (s.signedFields === 'extended' ? { ...reading, extras: { seq, energyWh } } : reading);
  if (s.transport === 'w3bstream-v2') {
    if (v2Dialect(s) === 'task') {
      const project = {
        projectId: s.projectId,
        projectVersion: s.projectVersion,
        signedKeys: s.signedKeys,
        timestampUnit: s.timestampUnit,
        extraData,
      };
      return (seq) => buildReadingTask(identity, seq, signed(seq), project).body;
    }
    return (seq) =>
      buildMessageV2(identity, signed(seq), {
        projectId: s.projectId,
        projectVersion: s.projectVersion,
        timestampUnit: s.timestampUnit,
        extraData,
      }).body;
  }
  return (seq) =>
    buildMessage(identity, signed(seq), {
      signatureEncoding: s.signature,
      timestampUnit: s.timestampUnit,
      publicKeyField: s.publicKeyField,
      extraData,
    }).body;
}

/**
 * `signReading` through the signing seam, for the meter's key wherever it is. The key file keeps
 * the synchronous path above (signed inside the outbox's transaction with the number it gets). A
 * key in a token signs off the event loop, so the body is signed before it is stored; when the
 * number is part of what is signed (a task's nonce, the extended reading's `seq`), it is signed
 * with the number `nextSeq()` says it will get (the meter's signing loop is the only writer, so it
 * does), and the function returned refuses to store it under any other number (Outbox.append then
 * rolls back: nothing numbered, stored or counted). `energyWh`: as for `signReading`.
 */
export async function signReadingWith(
  s: TransportSettings,
  key: Pick<MeterKey, 'signer' | 'source'>,
  reading: { powerW: number; timestampMs: number },
  extraData: ExtraDataMembers,
  nextSeq: () => number,
  energyWh = 0,
): Promise<string | ((seq: number) => string)> {
  if (key.source === 'file') return signReading(s, key.signer as Identity, reading, extraData, energyWh);
  const task = s.transport === 'w3bstream-v2' && v2Dialect(s) === 'task';
  const numbered = task || s.signedFields === 'extended';
  const seq = numbered ? nextSeq() : 0;
  const signed: Reading = s.signedFields === 'extended' ? { ...reading, extras: { seq, energyWh } } : reading;
  let body: string;
  if (task)
    body = (
      await signReadingTask(key.signer, seq, signed, {
        projectId: s.projectId,
        projectVersion: s.projectVersion,
        signedKeys: s.signedKeys,
        timestampUnit: s.timestampUnit,
        extraData,
      })
    ).body;
  else if (s.transport === 'w3bstream-v2')
    body = (
      await signMessageV2(key.signer, signed, {
        projectId: s.projectId,
        projectVersion: s.projectVersion,
        timestampUnit: s.timestampUnit,
        extraData,
      })
    ).body;
  else
    body = (
      await signMessage(key.signer, signed, {
        signatureEncoding: s.signature,
        timestampUnit: s.timestampUnit,
        publicKeyField: s.publicKeyField,
        extraData,
      })
    ).body;
  if (!numbered) return body;
  return (got) => {
    if (got !== seq)
      throw new Error(
        `the reading was signed for ${task ? 'nonce' : 'seq'} ${seq} but would be stored as ${got}: signed again with the next window`,
      );
    return body;
  };
}

/** The publisher's transport; undefined = its default, v1 from the token, device and eventType. */
export function publisherTransport(s: TransportSettings): Transport | undefined {
  return s.transport === 'w3bstream-v2' ? w3bstreamV2Transport({ dialect: v2Dialect(s) }) : undefined;
}

export type { TransportName };
