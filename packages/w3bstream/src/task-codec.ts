import { sha256 } from '@noble/hashes/sha2.js';
import { dataText, objectMembers, type ExtraDataMembers, type Reading, type TimestampUnit } from './codec.js';
import { goJsonString } from './go-json.js';
import { possibleTaskIds } from './apinode.js';
import { ProjectIdError } from './v2-codec.js';
import { signRecoverableWith, type DigestSigner } from './signer.js';

/**
 * The current W3bstream 2 task (docs/w3bstream.md section 9a): `POST <node>/v1/task` with
 * `{"nonce":<uint64>,"projectID":"<decimal>","projectVersion":"…","payload":<JSON>,"signature":"0x<r||s>"}`.
 * The node (service/apinode/api/http.go, `createTask` and `HashTask`) reads the request with
 * gjson, re-marshals it with Go's `json.Marshal` without the signature (its `MarshalJSON`: field
 * order nonce, projectID, projectVersion (omitted when empty), payload as raw JSON, which Go
 * compacts and HTML-escapes), hashes that with sha256, and, when the project's config lists signed
 * keys, hashes again: sha256(payload hash || each key's value from the payload as a little-endian
 * uint64). It appends recovery id 0 and 1 to the 64-byte signature, recovers both keys and takes
 * the first address approved for the project. Everything here is pure.
 */

/** Project IDs are uint256 on chain; the node parses them as a decimal big integer. */
export const MAX_TASK_PROJECT_ID = 2n ** 256n - 1n;
/** The node's nonce is a uint64; 0 is refused (`binding:"required"`). */
export const MAX_NONCE = 2n ** 64n - 1n;

/** The project ID as canonical decimal, 1 to 2^256-1 (a number above 2^53 must be given as a string). */
export function parseTaskProjectId(raw: unknown): string {
  const text = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : typeof raw === 'string' ? raw.trim() : null;
  if (text === null || !/^[0-9]{1,78}$/.test(text)) throw new ProjectIdError(raw, MAX_TASK_PROJECT_ID);
  const n = BigInt(text);
  if (n < 1n || n > MAX_TASK_PROJECT_ID) throw new ProjectIdError(raw, MAX_TASK_PROJECT_ID);
  return n.toString();
}

/** A key the project's config signs (`signedKeys`, type uint64: the only type the node hashes). */
export const SIGNED_KEY_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export interface TaskProject {
  /** Canonical decimal (`parseTaskProjectId`). */
  projectId: string;
  /** The project file's version; '' = omitted (the node then takes the project's default version). */
  projectVersion: string;
  /** The config's `signedKeys` (uint64), in the config's order; empty for most projects, `timestamp` for Pebble's. */
  signedKeys?: readonly string[];
}

/**
 * JSON text compacted as Go's encoder writes a `json.RawMessage` (`appendCompact` with HTML
 * escaping): white space outside strings removed, `<` `>` `&` written `\u003c` `\u003e` `\u0026`,
 * U+2028 and U+2029 written `\u2028` `\u2029`; every other byte, escapes and number spellings
 * included, kept as is. The input must be valid JSON.
 */
export function goCompactJson(json: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (c === '<' || c === '>' || c === '&' || c === '\u2028' || c === '\u2029') {
      out += `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
      continue;
    }
    if (inString) {
      out += c;
      if (c === '\\') out += json[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    if (c === '"') inString = true;
    out += c;
  }
  return out;
}

/** The bytes the node hashes: its `MarshalJSON` of the request with the signature left out. */
export function signedJsonTask(nonce: bigint | number, project: TaskProject, payloadJson: string): string {
  const version = project.projectVersion === '' ? '' : `,"projectVersion":${goJsonString(project.projectVersion)}`;
  return `{"nonce":${BigInt(nonce)},"projectID":${goJsonString(project.projectId)}${version},"payload":${goCompactJson(payloadJson)}}`;
}

/**
 * A payload member read as gjson's `Result.Uint()` reads it (what the node hashes for a signed
 * key): a whole number exactly; another number truncated toward zero (within 2^53, else its
 * text when that is a whole number); `true` 1; a string of digits its value; anything else,
 * missing included, 0.
 */
export function gjsonUint(payloadJson: string, name: string): bigint {
  let value: unknown;
  let raw: string | undefined;
  try {
    const parsed: unknown = JSON.parse(payloadJson);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 0n;
    value = (parsed as Record<string, unknown>)[name];
    raw = new RegExp(`"${name}"\\s*:\\s*(-?[0-9][0-9.eE+-]*)`).exec(payloadJson)?.[1];
  } catch {
    return 0n;
  }
  if (value === true) return 1n;
  if (typeof value === 'string') return /^[0-9]{1,20}$/.test(value) && BigInt(value) <= MAX_NONCE ? BigInt(value) : 0n;
  if (typeof value !== 'number') return 0n;
  if (Math.abs(value) <= Number.MAX_SAFE_INTEGER) return BigInt.asUintN(64, BigInt(Math.trunc(value)));
  if (raw !== undefined && /^[0-9]{1,20}$/.test(raw) && BigInt(raw) <= MAX_NONCE) return BigInt(raw);
  return value > 0 ? (value >= 2 ** 64 ? MAX_NONCE : BigInt(Math.trunc(value))) : 0n;
}

/** sha256 of the signed JSON, then (signed keys) sha256(that || each key's uint64 little-endian). */
export function digestTask(signedJson: string, payloadJson: string, signedKeys: readonly string[] = []): Uint8Array {
  const payloadHash = sha256(Buffer.from(signedJson, 'utf8'));
  if (signedKeys.length === 0) return payloadHash;
  const buf = Buffer.alloc(32 + 8 * signedKeys.length);
  buf.set(payloadHash, 0);
  for (const [i, k] of signedKeys.entries()) buf.writeBigUInt64LE(gjsonUint(payloadJson, k), 32 + 8 * i);
  return sha256(buf);
}

/** Signs a digest the Ethereum way: 65 bytes r||s||v (v = recovery id 0/1), low S. */
export interface TaskSigner {
  signDigestRecoverable(digest: Uint8Array): Uint8Array;
}

export interface SignedTask {
  /** The exact HTTP body the outbox stores: a resend is byte-identical. */
  body: string;
  /** The payload (the reading's data object). */
  payload: string;
  /** What was hashed before the signed keys. */
  signedJson: string;
  /** `0x` + 128 lower-case hex: r||s, what the body carries. */
  signature: string;
  /** The recovery id the node needs to find this device (it tries 0 and 1). */
  recoveryId: 0 | 1;
  /** The taskID the node answers when it approves this device: keccak256(r||s||recoveryId). */
  taskId: string;
}

/** The task for one payload (JSON text), signed; `nonce` is the reading's sequence number. */
export function buildTask(signer: TaskSigner, nonce: number | bigint, payloadJson: string, project: TaskProject): SignedTask {
  const t = prepareTask(nonce, payloadJson, project);
  return finishTask(t, signer.signDigestRecoverable(t.digest));
}

/**
 * `buildTask` for any key, through the signing seam (`signer.ts`): a key with a synchronous
 * recoverable signer (the key file) as before; a key in a PKCS#11 token signs the digest
 * asynchronously (r||s) and the recovery id is found by trial recovery. The body is the same.
 */
export async function signTask(
  signer: TaskSigner | DigestSigner,
  nonce: number | bigint,
  payloadJson: string,
  project: TaskProject,
): Promise<SignedTask> {
  const t = prepareTask(nonce, payloadJson, project);
  const rsv = 'signDigestRecoverable' in signer ? signer.signDigestRecoverable(t.digest) : await signRecoverableWith(signer, t.digest);
  return finishTask(t, rsv);
}

function prepareTask(
  nonce: number | bigint,
  payloadJson: string,
  project: TaskProject,
): { signedJson: string; payload: string; digest: Uint8Array } {
  const n = BigInt(nonce);
  if (n < 1n || n > MAX_NONCE) throw new RangeError(`nonce ${n} is not from 1 to 2^64-1 (the node refuses 0)`);
  const ref = { ...project, projectId: parseTaskProjectId(project.projectId) };
  const payload = goCompactJson(payloadJson);
  const signedJson = signedJsonTask(n, ref, payload);
  return { signedJson, payload, digest: digestTask(signedJson, payload, ref.signedKeys ?? []) };
}

function finishTask(t: { signedJson: string; payload: string }, rsv: Uint8Array): SignedTask {
  const rs = rsv.subarray(0, 64);
  const recoveryId = rsv[64] === 1 ? 1 : 0;
  const signature = `0x${Buffer.from(rs).toString('hex')}`;
  return {
    body: `${t.signedJson.slice(0, -1)},"signature":"${signature}"}`,
    payload: t.payload,
    signedJson: t.signedJson,
    signature,
    recoveryId,
    taskId: possibleTaskIds(rs)[recoveryId],
  };
}

/** The task for one reading: the payload is the reading's data object (`{"sensor_reading":…,"timestamp":…}`). */
export function buildReadingTask(
  signer: TaskSigner,
  nonce: number,
  reading: Reading,
  project: TaskProject & { timestampUnit?: TimestampUnit; extraData?: ExtraDataMembers },
): SignedTask {
  return buildTask(
    signer,
    nonce,
    dataText(reading.powerW, reading.timestampMs, project.timestampUnit ?? 's', project.extraData, reading.extras),
    project,
  );
}

/** `buildReadingTask` through the signing seam (see `signTask`), extended members (`reading.extras`) included. */
export function signReadingTask(
  signer: TaskSigner | DigestSigner,
  nonce: number,
  reading: Reading,
  project: TaskProject & { timestampUnit?: TimestampUnit; extraData?: ExtraDataMembers },
): Promise<SignedTask> {
  return signTask(
    signer,
    nonce,
    dataText(reading.powerW, reading.timestampMs, project.timestampUnit ?? 's', project.extraData, reading.extras),
    project,
  );
}

/** What a stored task body says about itself (null fields: not a task body of this form). */
export interface StoredTask {
  nonce: string;
  projectId: string;
  projectVersion: string;
  payload: string;
  /** The 64 signature bytes, or null when the signature is not 128 hex digits. */
  signature: Uint8Array | null;
}

/** Reads a task body (the node's field names, any order; the first of a duplicate, as gjson does). Null when it is not one. */
export function readTaskBody(body: string): StoredTask | null {
  try {
    JSON.parse(body);
  } catch {
    return null;
  }
  const members = objectMembers(body);
  const raw = (key: string): string | undefined => members.find((m) => m.key === key)?.raw;
  const str = (key: string): string | null => {
    const r = raw(key);
    if (r === undefined) return null;
    const v: unknown = JSON.parse(r);
    return typeof v === 'string' ? v : null;
  };
  const projectId = str('projectID');
  const payload = raw('payload');
  if (projectId === null || payload === undefined || !/^[[{]/.test(payload)) return null;
  const sig = str('signature');
  const nonce = raw('nonce');
  return {
    nonce: nonce !== undefined && /^[0-9]+$/.test(nonce) ? nonce : '0',
    projectId,
    projectVersion: str('projectVersion') ?? '',
    payload,
    signature: sig !== null && /^0x[0-9a-fA-F]{128}$/.test(sig) ? new Uint8Array(Buffer.from(sig.slice(2), 'hex')) : null,
  };
}
