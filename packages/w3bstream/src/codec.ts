import { createHash, verify, type KeyObject } from 'node:crypto';
import { CURVES, deviceAddress, publicKeyFromHex, type Curve } from './keys.js';
import { recoverSignerByAddress } from './recover.js';
import { signTextWith, type DigestSigner } from './signer.js';
import { isLowS, parseSignature, rsToDer, SignatureFormatError, type SignatureEncoding } from './signature.js';

/**
 * The message of docs/w3bstream.md sections 2-3: the `data` text is built once, signed (SHA-256,
 * ECDSA), and the very same text is spliced into the body. Never sign one serialisation and
 * send another. Everything here is pure (no clock, no files).
 */
export type { SignatureEncoding } from './signature.js';
export type TimestampUnit = 's' | 'ms';

/** Anything that can sign: an `Identity`, or a stand-in in tests. */
export interface Signer {
  readonly publicKeyHex: string;
  sign(text: string, encoding: SignatureEncoding): string;
}

export class ReadingError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'ReadingError';
  }
}

/**
 * A JSON number the applet reads as a float: the shortest round-trip form, with `.0` appended to
 * integral values (`12` -> `12.0`). `1e21` and `1e-7` keep their exponent, which also counts as
 * a float. Zero is a legal measurement and is sent as `0.0` (docs/w3bstream.md section 2, Decision).
 */
export function formatSensorReading(powerW: number): string {
  if (!Number.isFinite(powerW))
    throw new ReadingError(`sensor reading ${powerW} W is not a finite number: the window produced no valid power`);
  return jsonFloat(powerW);
}

/** The shortest round-trip form with a decimal point (`12` -> `12.0`, `-0` -> `0.0`): a JSON float to an applet. */
function jsonFloat(x: number): string {
  if (Object.is(x, -0)) return '0.0';
  const text = String(x);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/**
 * The extended reading (docs/design.md "The wire profile", `--signed-fields extended`): two more
 * members inside the signed data, after the tutorial's two, so an applet can tell a gap or a
 * replay from the signed text itself and compute energy from a counter instead of from averages:
 * - `seq`: the reading's sequence number, the one at the end of its eventID (an integer from 1);
 * - `energy_wh`: the meter's energy total in Wh (a float) as stored on the card when the reading
 *   was signed: it never decreases, not across restarts or power cuts, and it counts every
 *   window up to the last sync (in strict mode, up to the previous reading).
 */
export interface ReadingExtras {
  seq: number;
  energyWh: number;
}

function extrasText(x: ReadingExtras): string {
  if (!Number.isSafeInteger(x.seq) || x.seq < 1) throw new ReadingError(`sequence number ${x.seq} is not a whole number from 1`);
  if (!Number.isFinite(x.energyWh) || x.energyWh < 0) throw new ReadingError(`energy total ${x.energyWh} Wh is not a finite amount >= 0`);
  return `,"seq":${x.seq},"energy_wh":${jsonFloat(x.energyWh)}`;
}

/** The integer timestamp for the body: Unix seconds (default) or milliseconds, floored. */
export function timestampFor(timestampMs: number, unit: TimestampUnit = 's'): number {
  const ts = unit === 's' ? Math.floor(timestampMs / 1000) : Math.floor(timestampMs);
  if (!Number.isSafeInteger(ts) || ts <= 0)
    throw new ReadingError(`timestamp ${timestampMs} ms is not a positive time: the clock is not set`);
  return ts;
}

/**
 * Members a wire profile adds after the two the applets read, in this order (e.g. the
 * calibration id): names of `[a-z_]` only, string values JSON-encoded.
 */
export type ExtraDataMembers = ReadonlyArray<readonly [name: string, value: string]>;

/**
 * `{"sensor_reading":<float>,"timestamp":<int>}`: compact, keys in this order, no whitespace;
 * the extended reading's `,"seq":<int>,"energy_wh":<float>` (`extras`) and then the `extra`
 * members follow `timestamp` (verifiers and the applets read the first two by name).
 */
export function dataText(
  powerW: number,
  timestampMs: number,
  unit: TimestampUnit = 's',
  extra: ExtraDataMembers = [],
  extras?: ReadingExtras,
): string {
  let tail = extras === undefined ? '' : extrasText(extras);
  for (const [name, value] of extra) {
    if (!/^[a-z_]{1,32}$/.test(name) || ['sensor_reading', 'timestamp', 'seq', 'energy_wh'].includes(name))
      throw new ReadingError(`data member name ${JSON.stringify(name)} is not allowed`);
    tail += `,"${name}":${JSON.stringify(value)}`;
  }
  return `{"sensor_reading":${formatSensorReading(powerW)},"timestamp":${timestampFor(timestampMs, unit)}${tail}}`;
}

/**
 * The reading in a data text (dataText's output, or a W3bstream 2 payload): `sensor_reading`,
 * `timestamp` and the extended form's `seq` and `energy_wh`, each null when it is not a number,
 * all null when there is no text or it is not a JSON object. Lenient on purpose: the dev
 * receivers record what arrived, the checks are elsewhere.
 */
export function readingOfData(text: string | null): {
  sensorReading: number | null;
  timestamp: number | null;
  signedSeq: number | null;
  energyWh: number | null;
} {
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  try {
    const d = JSON.parse(text ?? 'null') as { sensor_reading?: unknown; timestamp?: unknown; seq?: unknown; energy_wh?: unknown } | null;
    if (typeof d === 'object' && d !== null)
      return { sensorReading: num(d.sensor_reading), timestamp: num(d.timestamp), signedSeq: num(d.seq), energyWh: num(d.energy_wh) };
  } catch {
    // not JSON: nothing to read
  }
  return { sensorReading: null, timestamp: null, signedSeq: null, energyWh: null };
}

/** A reading to sign: the window's mean power and end time, and for the extended form its number and the energy total. */
export interface Reading {
  powerW: number;
  timestampMs: number;
  extras?: ReadingExtras;
}

export interface SignedMessage {
  /** The exact HTTP body. */
  body: string;
  /** The signed text, exactly as it appears inside `body`. */
  dataText: string;
  signature: string;
}

/**
 * What `public_key` carries (docs/design.md "The wire profile"):
 * - `address`: the device address, `0x` + 40 lowercase hex, what the original firmware sends
 *   (`sprintf("%02x")` of keccak256(X||Y)'s last 20 bytes) and what the tutorial's smart-grid
 *   applet needs (`public_key.slice(2, 42)` is looked up among the registered devices, which it
 *   stores as lowercase hex from the contract logs). A verifier recovers the key from the signature.
 * - `key`: `04` + X + Y (130 lowercase hex), the tutorial README's example.
 * The signed data text is the same in both.
 */
export type PublicKeyField = 'address' | 'key';
export const PUBLIC_KEY_FIELDS: readonly PublicKeyField[] = ['address', 'key'];

export interface BuildOptions {
  timestampUnit?: TimestampUnit;
  /** Members after `timestamp` inside the signed data (a wire profile's additions). */
  extraData?: ExtraDataMembers;
  signatureEncoding?: SignatureEncoding;
  /** Default `key` (this library's original form); the meter's own default is `address`. */
  publicKeyField?: PublicKeyField;
}

/** The `public_key` member's value for a signer in the chosen form. */
export function publicKeyFieldValue(signer: { publicKeyHex: string }, field: PublicKeyField): string {
  return field === 'address' ? deviceAddress(signer.publicKeyHex.toLowerCase()) : signer.publicKeyHex;
}

export function buildMessage(signer: Signer, reading: Reading, opts: BuildOptions = {}): SignedMessage {
  const text = dataText(reading.powerW, reading.timestampMs, opts.timestampUnit ?? 's', opts.extraData, reading.extras);
  return assemble(signer, text, signer.sign(text, opts.signatureEncoding ?? 'raw'), opts);
}

/**
 * `buildMessage` for any key, through the signing seam (`signer.ts`): a key with a synchronous
 * `sign(text)` (the PEM identity: OpenSSL hashes and signs in one call) keeps that path; a key in
 * a token gets the SHA-256 digest and answers asynchronously. The body is the same either way,
 * extended members (`reading.extras`) included.
 */
export async function signMessage(signer: Signer | DigestSigner, reading: Reading, opts: BuildOptions = {}): Promise<SignedMessage> {
  const text = dataText(reading.powerW, reading.timestampMs, opts.timestampUnit ?? 's', opts.extraData, reading.extras);
  const encoding = opts.signatureEncoding ?? 'raw';
  const signature = 'sign' in signer ? signer.sign(text, encoding) : await signTextWith(signer, text, encoding);
  return assemble(signer, text, signature, opts);
}

function assemble(signer: { publicKeyHex: string }, text: string, signature: string, opts: BuildOptions): SignedMessage {
  const publicKey = publicKeyFieldValue(signer, opts.publicKeyField ?? 'key');
  return { body: `{"data":${text},"signature":"${signature}","public_key":"${publicKey}"}`, dataText: text, signature };
}

interface VerifyFields {
  curve: Curve | null;
  /** `04…` as sent, or, for the address form, the key recovered from the signature (null if none matched). */
  publicKeyHex: string | null;
  /** The signer's address: derived from the key sent, or the address sent once recovery proved it. */
  deviceId: string | null;
  /** Which form `public_key` had (null: neither). */
  publicKeyForm: PublicKeyField | null;
  sensorReading: number | null;
  timestamp: number | null;
  encoding: SignatureEncoding | null;
  /** Whether s is in the lower half (this code always sends low S; others may not). */
  lowS: boolean | null;
  /** The extended reading's signed sequence number and energy total (null: not in the data). */
  seq: number | null;
  energyWh: number | null;
}

/**
 * Which signatures must have a low S. This meter always signs low S, in both encodings. A raw
 * (r||s) signature is this meter's default form, so a raw one with a high S is a malleated copy
 * and refused. DER is what foreign devices send (the tutorial's simulator signs high-S DER), so a
 * high-S DER signature verifies (`lowS: false` says so) unless the caller expects the body to
 * come from this meter (`'all'`: `power-meter verify --expect-address/--expect-key`).
 */
export type LowSRule = 'raw' | 'all';

export interface VerifyOptions {
  /** Default `'raw'`. */
  requireLowS?: LowSRule;
}
export type VerifyResult =
  | ({ ok: true; reason: null; data: { sensor_reading: number; timestamp: number }; dataText: string } & VerifyFields)
  | ({ ok: false; reason: string; data: null; dataText: string | null } & VerifyFields);

/**
 * Checks a body as the receiving side would: the tutorial applet's shape rules, then the
 * signature over the `data` text exactly as it appears in the body (so added whitespace breaks
 * it). The data text is located by a JSON scanner, not a pattern, and a body with two `data`
 * (or `signature`, `public_key`) members is refused: JSON.parse keeps the last one, so a
 * signature over one could otherwise vouch for another.
 */
export function verifyBody(body: string, opts: VerifyOptions = {}): VerifyResult {
  return verifyWith(body, keyFromHex, opts.requireLowS ?? 'raw');
}

/**
 * A `verifyBody` that remembers the last `cacheSize` public keys it parsed. A receiver sees the
 * same few keys over and over, and parsing a key costs more than verifying the signature.
 */
export function createBodyVerifier(opts: { cacheSize?: number; requireLowS?: LowSRule } = {}): (body: string) => VerifyResult {
  const cacheSize = opts.cacheSize ?? 64;
  const cache = new Map<string, KeyObject | null>();
  const keyFor = (hex: string, curve: Curve): KeyObject | null => {
    const k = `${curve}:${hex.toLowerCase()}`;
    let key = cache.get(k);
    if (key === undefined) {
      key = keyFromHex(hex, curve);
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(k, key);
    }
    return key;
  };
  // Address form: the key an address was proven to sign with is remembered, so the next body
  // from it is checked with an ordinary verification against that key (the same proof: only that
  // key's signatures verify), about 20 times cheaper than recovery. Recovery runs for a new
  // address, or when the remembered key does not verify (another curve, a new key).
  const signerOf = new Map<string, { curve: Curve; publicKeyHex: string }>();
  return (body) =>
    verifyWith(body, keyFor, opts.requireLowS ?? 'raw', {
      known: (address) => signerOf.get(address) ?? null,
      found: (address, signer) => {
        if (!signerOf.has(address) && signerOf.size >= cacheSize) signerOf.delete(signerOf.keys().next().value!);
        signerOf.set(address, signer);
      },
    });
}

interface SignerMemory {
  known: (address: string) => { curve: Curve; publicKeyHex: string } | null;
  found: (address: string, signer: { curve: Curve; publicKeyHex: string }) => void;
}
const NO_MEMORY: SignerMemory = { known: () => null, found: () => {} };

function keyFromHex(hex: string, curve: Curve): KeyObject | null {
  try {
    return publicKeyFromHex(hex, curve);
  } catch {
    return null; // not a point on this curve
  }
}

function verifyWith(
  body: string,
  keyFor: (hex: string, curve: Curve) => KeyObject | null,
  lowSRule: LowSRule,
  memory: SignerMemory = NO_MEMORY,
): VerifyResult {
  const fields: VerifyFields = {
    curve: null,
    publicKeyHex: null,
    deviceId: null,
    publicKeyForm: null,
    sensorReading: null,
    timestamp: null,
    encoding: null,
    lowS: null,
    seq: null,
    energyWh: null,
  };
  let text: string | null = null;
  const fail = (reason: string): VerifyResult => ({ ok: false, reason, data: null, dataText: text, ...fields });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return fail('body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('body is not a JSON object');
  const members = objectMembers(body);
  for (const name of ['data', 'signature', 'public_key']) {
    if (members.filter((m) => m.key === name).length > 1) return fail(`body has more than one "${name}" member`);
  }
  const { signature, public_key: publicKey, data } = parsed as { data?: unknown; signature?: unknown; public_key?: unknown };
  if (typeof signature !== 'string' || signature === '') return fail('signature missing or not a string');
  if (typeof publicKey !== 'string' || publicKey === '') return fail('public_key missing or not a string');
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fail('data is not an object');
  // Kept on failures too (what was sent); an address is not a key: recovery fills that in below.
  if (!publicKey.startsWith('0x')) fields.publicKeyHex = publicKey;
  text = members.find((m) => m.key === 'data')!.raw;
  const dataMembers = objectMembers(text);
  const d = data as { sensor_reading?: unknown; timestamp?: unknown };
  if (typeof d.sensor_reading === 'number') fields.sensorReading = d.sensor_reading;
  if (typeof d.timestamp === 'number') fields.timestamp = d.timestamp;
  for (const name of ['sensor_reading', 'timestamp']) {
    if (dataMembers.filter((m) => m.key === name).length > 1) return fail(`data has more than one "${name}" member`);
  }
  const readingRaw = dataMembers.find((m) => m.key === 'sensor_reading')?.raw;
  if (typeof d.sensor_reading !== 'number' || readingRaw === undefined) return fail('sensor_reading missing or not a number');
  if (!/[.eE]/.test(readingRaw)) return fail(`sensor_reading ${readingRaw} is not a float (the applet needs a decimal point)`);
  if (typeof d.timestamp !== 'number' || !Number.isSafeInteger(d.timestamp) || d.timestamp <= 0)
    return fail('timestamp is not a positive integer');
  const tsRaw = dataMembers.find((m) => m.key === 'timestamp')!.raw;
  if (/[.eE]/.test(tsRaw)) return fail(`timestamp ${tsRaw} is not written as an integer`);
  // The extended reading's members, when present, are what their names promise.
  const extra = checkExtras(data as Record<string, unknown>, dataMembers);
  if (typeof extra === 'string') return fail(extra);
  fields.seq = extra.seq;
  fields.energyWh = extra.energyWh;
  const isAddress = /^0x[0-9a-fA-F]{40}$/.test(publicKey);
  if (!isAddress && !/^04[0-9a-fA-F]{128}$/.test(publicKey))
    return fail('public_key is neither a device address (0x + 40 hex digits) nor a public key (04 followed by 128 hex digits)');
  fields.publicKeyForm = isAddress ? 'address' : 'key';
  if (!isAddress) {
    fields.deviceId = deviceAddress(publicKey.toLowerCase());
  }
  let sig: { r: bigint; s: bigint; encoding: SignatureEncoding };
  try {
    sig = parseSignature(signature);
  } catch (err) {
    if (err instanceof SignatureFormatError) return fail(err.message);
    throw err;
  }
  fields.encoding = sig.encoding;
  const accept = (curve: Curve): VerifyResult => {
    fields.curve = curve;
    fields.lowS = isLowS(sig.s, curve);
    if (!fields.lowS && (lowSRule === 'all' || sig.encoding === 'raw'))
      return fail(
        `signature has a high S (${sig.encoding}): this meter always signs with a low S, so this is an altered copy of a signature, not one it produced`,
      );
    return {
      ok: true,
      reason: null,
      data: { sensor_reading: d.sensor_reading as number, timestamp: d.timestamp as number },
      dataText: text!,
      ...fields,
    };
  };
  const der = Buffer.from(rsToDer(sig.r, sig.s), 'hex');
  if (isAddress) {
    // Only the address was sent: recover the key from the signature and keep it only if its
    // address is the one sent (recovery yields only keys the signature verifies against).
    const address = publicKey.toLowerCase();
    const known = memory.known(address);
    if (known !== null) {
      const key = keyFor(known.publicKeyHex, known.curve);
      if (key !== null && verify('sha256', Buffer.from(text, 'utf8'), { key, dsaEncoding: 'der' }, der)) {
        fields.publicKeyHex = known.publicKeyHex;
        fields.deviceId = address;
        return accept(known.curve);
      }
    }
    const digest = createHash('sha256').update(text, 'utf8').digest();
    const signer = recoverSignerByAddress(digest, sig.r, sig.s, address);
    if (signer === null) return fail(`signature is not by the device ${address} (no key recovered from it has that address)`);
    memory.found(address, { curve: signer.curve, publicKeyHex: signer.publicKeyHex });
    fields.publicKeyHex = signer.publicKeyHex;
    fields.deviceId = signer.address;
    return accept(signer.curve);
  }
  for (const curve of Object.keys(CURVES) as Curve[]) {
    const key = keyFor(publicKey, curve);
    if (key === null) continue;
    if (verify('sha256', Buffer.from(text, 'utf8'), { key, dsaEncoding: 'der' }, der)) return accept(curve);
  }
  return fail('signature does not verify');
}

/** `seq` (an integer from 1) and `energy_wh` (a number >= 0), each at most once; a reason when not. */
function checkExtras(
  d: Record<string, unknown>,
  members: Array<{ key: string; raw: string }>,
): { seq: number | null; energyWh: number | null } | string {
  for (const name of ['seq', 'energy_wh'])
    if (members.filter((m) => m.key === name).length > 1) return `data has more than one "${name}" member`;
  const seqRaw = members.find((m) => m.key === 'seq')?.raw;
  if (seqRaw !== undefined && (!Number.isSafeInteger(d.seq) || (d.seq as number) < 1 || /[.eE]/.test(seqRaw)))
    return `seq ${seqRaw} is not a whole number from 1`;
  if (d.energy_wh !== undefined && (typeof d.energy_wh !== 'number' || !Number.isFinite(d.energy_wh) || d.energy_wh < 0))
    return `energy_wh ${JSON.stringify(d.energy_wh)} is not an amount of energy (a number >= 0)`;
  return { seq: seqRaw === undefined ? null : (d.seq as number), energyWh: d.energy_wh === undefined ? null : (d.energy_wh as number) };
}

/**
 * The members of the JSON object that starts at the first non-space character of `json`, each
 * with its key and the raw text of its value exactly as written. Assumes `json` is valid JSON
 * (the caller parsed it first).
 */
export function objectMembers(json: string): Array<{ key: string; raw: string }> {
  const out: Array<{ key: string; raw: string }> = [];
  let i = skipSpace(json, 0);
  if (json[i] !== '{') return out;
  i = skipSpace(json, i + 1);
  while (i < json.length && json[i] !== '}') {
    const keyEnd = endOfString(json, i);
    const key = JSON.parse(json.slice(i, keyEnd)) as string;
    i = skipSpace(json, keyEnd);
    i = skipSpace(json, i + 1); // ':'
    const valueEnd = endOfValue(json, i);
    out.push({ key, raw: json.slice(i, valueEnd) });
    i = skipSpace(json, valueEnd);
    if (json[i] === ',') i = skipSpace(json, i + 1);
  }
  return out;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  return i;
}

/** `i` is at an opening quote; returns the index after the closing one. */
function endOfString(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '"') return j + 1;
  }
  return s.length;
}

function endOfValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return endOfString(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const ch = s[j];
      if (ch === '"') j = endOfString(s, j) - 1;
      else if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return s.length;
  }
  let j = i;
  while (j < s.length && !',}] \t\n\r'.includes(s[j]!)) j++;
  return j;
}
