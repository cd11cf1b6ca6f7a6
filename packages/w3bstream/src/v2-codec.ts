import { keccak_256 } from '@noble/hashes/sha3.js';
import { dataText, objectMembers, type ExtraDataMembers, type Reading, type TimestampUnit } from './codec.js';
import { goJsonString } from './go-json.js';
import { addressOfPublicKey, recoverSecp256k1 } from './recoverable.js';
import { signRecoverableWith, type DigestSigner } from './signer.js';

/**
 * The W3bstream 2 ("apinode") message, docs/w3bstream.md "W3bstream 2": `POST /message` with
 * `{"projectID":<uint64>,"projectVersion":"…","data":"…","signature":"0x…"}`. The node sets the
 * signature aside, re-marshals the rest with Go's `json.Marshal` (struct field order, compact,
 * HTML-safe escaping), hashes it with keccak256 and recovers the signer's address from the
 * signature: that address is the device. Everything here is pure.
 */

/** The largest project ID the node's `uint64` field holds. */
export const MAX_PROJECT_ID = 2n ** 64n - 1n;

export class ProjectIdError extends RangeError {
  constructor(value: unknown, max: bigint = MAX_PROJECT_ID) {
    super(`project ID ${JSON.stringify(value)} is not a whole number from 1 to ${max}`);
    this.name = 'ProjectIdError';
  }
}

/**
 * The project ID as the canonical decimal the node's Go encoder writes. 0 is refused: the node's
 * `binding:"required"` treats 0 as missing and answers 400. A number above 2^53 loses digits in
 * JavaScript, so large IDs must be given as a string.
 */
export function parseProjectId(raw: unknown): string {
  const text = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : typeof raw === 'string' ? raw.trim() : null;
  if (text === null || !/^[0-9]{1,20}$/.test(text)) throw new ProjectIdError(raw);
  const n = BigInt(text);
  if (n < 1n || n > MAX_PROJECT_ID) throw new ProjectIdError(raw);
  return n.toString();
}

export interface ProjectRef {
  /** Decimal, 1 to 2^64-1 (`parseProjectId`). */
  projectId: string;
  /** Non-empty (the node's `binding:"required"`). */
  projectVersion: string;
}

/** The bytes the node hashes: Go's `json.Marshal` of its request struct with the signature left out (`omitempty`). */
export function signedJsonV2(ref: ProjectRef, data: string): string {
  return `{"projectID":${ref.projectId},"projectVersion":${goJsonString(ref.projectVersion)},"data":${goJsonString(data)}}`;
}

/** keccak256 of the UTF-8 bytes, as go-ethereum's `crypto.Keccak256Hash`. */
export function digestV2(signedJson: string): Uint8Array {
  return keccak_256(Buffer.from(signedJson, 'utf8'));
}

/** Anything that signs W3bstream 2 messages: an `Identity` on secp256k1, or a stand-in in tests. */
export interface RecoverableSigner {
  signDigestRecoverable(digest: Uint8Array): Uint8Array;
}

export interface SignedMessageV2 {
  /** The exact HTTP body, what the outbox stores: a resend is byte-identical. */
  body: string;
  /** The reading's data text (the v1 `data` object), the value of `data`. */
  dataText: string;
  /** What was hashed. */
  signedJson: string;
  /** `0x` + 130 lower-case hex: r||s||v. */
  signature: string;
}

export interface BuildV2Options extends ProjectRef {
  timestampUnit?: TimestampUnit;
  /** Members after `timestamp` inside the data text (a wire profile's additions). */
  extraData?: ExtraDataMembers;
}

export function buildMessageV2(signer: RecoverableSigner, reading: Reading, opts: BuildV2Options): SignedMessageV2 {
  const { text, signedJson } = prepareV2(reading, opts);
  return assembleV2(text, signedJson, signer.signDigestRecoverable(digestV2(signedJson)));
}

/**
 * `buildMessageV2` for any key, through the signing seam (`signer.ts`): the PEM identity signs
 * with its recoverable signer as before; a key in a token signs the keccak digest (r||s), and the
 * recovery id is found by trial recovery against its public key. The body is the same either way,
 * extended members (`reading.extras`) included.
 */
export async function signMessageV2(
  signer: RecoverableSigner | DigestSigner,
  reading: Reading,
  opts: BuildV2Options,
): Promise<SignedMessageV2> {
  const { text, signedJson } = prepareV2(reading, opts);
  const digest = digestV2(signedJson);
  const rsv = 'signDigestRecoverable' in signer ? signer.signDigestRecoverable(digest) : await signRecoverableWith(signer, digest);
  return assembleV2(text, signedJson, rsv);
}

function prepareV2(reading: Reading, opts: BuildV2Options): { text: string; signedJson: string } {
  const text = dataText(reading.powerW, reading.timestampMs, opts.timestampUnit ?? 's', opts.extraData, reading.extras);
  const ref = { projectId: parseProjectId(opts.projectId), projectVersion: opts.projectVersion };
  if (ref.projectVersion === '') throw new RangeError('project version must not be empty (the node requires it)');
  return { text, signedJson: signedJsonV2(ref, text) };
}

function assembleV2(text: string, signedJson: string, rsv: Uint8Array): SignedMessageV2 {
  const signature = `0x${Buffer.from(rsv).toString('hex')}`;
  // The same bytes plus the signature as the struct's last field: what the node decodes is what was signed.
  return { body: `${signedJson.slice(0, -1)},"signature":"${signature}"}`, dataText: text, signedJson, signature };
}

/** The node's request struct: Go field name, JSON name, kind. */
const FIELDS = [
  { go: 'ProjectID', json: 'projectID', kind: 'uint64' },
  { go: 'ProjectVersion', json: 'projectVersion', kind: 'string' },
  { go: 'Data', json: 'data', kind: 'string' },
  { go: 'Signature', json: 'signature', kind: 'string' },
] as const;

export type MessageV2Check =
  | {
      ok: true;
      projectId: string;
      projectVersion: string;
      data: string;
      signature: string;
      signedJson: string;
      /** `04` + X + Y of the recovered signer. */
      publicKeyHex: string;
      /** The recovered address (lower case): the node's device ID. */
      deviceId: string;
    }
  | {
      ok: false;
      /** What the node answers: 400, or 500 where its own marshalling fails (never for valid input). */
      status: 400;
      /** The node's `error` text. */
      error: string;
      /** What the node hashed, once the request decoded with every required field (null before). */
      signedJson: string | null;
      projectId: string | null;
      projectVersion: string | null;
      data: string | null;
    };

/**
 * Checks a request body the way the node's `handleMessage` does (cmd/apinode/api/http.go):
 * gin's `ShouldBindJSON` (Go's decoder: keys matched case-insensitively, the last duplicate wins,
 * a `uint64` must be a plain non-negative integer; then `binding:"required"`: no zero, no empty
 * string), re-marshal without the signature, keccak256, `hexutil.Decode` of the signature, then
 * public-key recovery. The error texts follow the node's wrapping ("invalid request payload: …",
 * "invalid signature format: …", "invalid signature; could not recover public key: …"); the inner
 * texts of Go's libraries are approximated.
 */
export function checkMessageV2(body: string): MessageV2Check {
  const values: { projectID: string; projectVersion: string; data: string; signature: string } = {
    projectID: '0',
    projectVersion: '',
    data: '',
    signature: '',
  };
  let signedJson: string | null = null;
  const fail = (error: string): MessageV2Check => ({
    ok: false,
    status: 400,
    error,
    signedJson,
    projectId: values.projectID === '0' ? null : values.projectID,
    projectVersion: values.projectVersion || null,
    data: values.data || null,
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    return fail(`invalid request payload: ${(err as Error).message}`);
  }
  if (parsed === null) parsed = {}; // Go decodes null into a struct as "nothing set"
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    return fail(
      `invalid request payload: json: cannot unmarshal ${Array.isArray(parsed) ? 'array' : typeof parsed} into Go value of type api.HandleMessageReq`,
    );
  for (const m of objectMembers(body)) {
    const field = FIELDS.find((f) => f.json === m.key) ?? FIELDS.find((f) => f.json.toLowerCase() === m.key.toLowerCase());
    if (field === undefined || m.raw === 'null') continue; // unknown keys are ignored, null leaves the zero value
    const value: unknown = JSON.parse(m.raw);
    const where = `Go struct field HandleMessageReq.${field.json}`;
    if (field.kind === 'uint64') {
      if (typeof value !== 'number')
        return fail(`invalid request payload: json: cannot unmarshal ${jsonKind(value)} into ${where} of type uint64`);
      if (!/^[0-9]+$/.test(m.raw) || BigInt(m.raw) > MAX_PROJECT_ID)
        return fail(`invalid request payload: json: cannot unmarshal number ${m.raw} into ${where} of type uint64`);
      values.projectID = BigInt(m.raw).toString();
    } else {
      if (typeof value !== 'string')
        return fail(`invalid request payload: json: cannot unmarshal ${jsonKind(value)} into ${where} of type string`);
      values[field.json] = value;
    }
  }
  const missing = FIELDS.filter((f) => (f.kind === 'uint64' ? values.projectID === '0' : values[f.json] === ''));
  if (missing.length > 0)
    return fail(
      `invalid request payload: ${missing.map((f) => `Key: 'HandleMessageReq.${f.go}' Error:Field validation for '${f.go}' failed on the 'required' tag`).join('\n')}`,
    );
  signedJson = signedJsonV2({ projectId: values.projectID, projectVersion: values.projectVersion }, values.data);
  const sigText = values.signature;
  if (!/^0[xX]/.test(sigText)) return fail('invalid signature format: hex string without 0x prefix');
  if (sigText.length % 2 !== 0) return fail('invalid signature format: hex string of odd length');
  if (!/^[0-9a-fA-F]*$/.test(sigText.slice(2))) return fail('invalid signature format: invalid hex string');
  let publicKey: Uint8Array;
  try {
    publicKey = recoverSecp256k1(digestV2(signedJson), Buffer.from(sigText.slice(2), 'hex'));
  } catch (err) {
    return fail(`invalid signature; could not recover public key: ${(err as Error).message}`);
  }
  return {
    ok: true,
    projectId: values.projectID,
    projectVersion: values.projectVersion,
    data: values.data,
    signature: sigText,
    signedJson,
    publicKeyHex: Buffer.from(publicKey).toString('hex'),
    deviceId: addressOfPublicKey(publicKey),
  };
}

function jsonKind(v: unknown): string {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  return Array.isArray(v) ? 'array' : 'object';
}
