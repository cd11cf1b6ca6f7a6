import { keccak_256 } from '@noble/hashes/sha3.js';
import {
  APINODE_ERRORS,
  PROJECT_CONFIG_MISSING,
  taskIdOf,
  type TaskStateName,
  objectMembers,
  readingOfData,
  addressOfPublicKey,
  recoverSecp256k1,
  digestTask,
  MAX_NONCE,
  signedJsonTask,
} from '@power-meter/w3bstream';
import { answerBetween, type DevAnswerMode, type EventAnswer, type EventRequest, type ReceivedEvent } from './exchange.js';

/**
 * The dev apinode's `POST /v1/task` and `GET /v1/task/<id>`, as the current node does them
 * (service/apinode/api/http.go `createTask`, `queryTask`; docs/w3bstream.md 9a), pure. The
 * approval lookup (`DeviceApprovals`, possibly asynchronous) sits between `checkTask` and
 * `taskAnswer`, in the server (receiver.ts).
 */

/** A project the dev node knows: its versions (the first is the default) and its config's signed keys. */
export interface DevProject {
  projectId: string;
  /** Empty: every version is known (a config for any version asked for). */
  versions: readonly string[];
  signedKeys: readonly string[];
}

/** Which projects the node knows: listed ones, or (null) any project with any version and no signed keys. */
export type DevProjects = readonly DevProject[] | null;

export type TaskCheck =
  | {
      ok: false;
      status: 400;
      error: string;
      nonce: string | null;
      projectId: string | null;
      projectVersion: string | null;
      payload: string | null;
    }
  | {
      ok: true;
      nonce: string;
      projectId: string;
      projectVersion: string;
      payload: string;
      /** 0x + 128 hex as sent. */
      signature: string;
      /** The addresses recovered with recovery id 0 and 1 (lower case), in the order the node asks about them. */
      candidates: [string, string];
      /** `04…` keys of the candidates. */
      publicKeys: [string, string];
      /** keccak256(r||s||v) for v 0 and 1. */
      taskIds: [string, string];
    };

/**
 * The node's checks, in its order: decode (gin's decoder: the body must be one JSON value;
 * `CreateTaskReq.UnmarshalJSON` reads the fields with gjson: exact key names, the first of a
 * duplicate, `payload` a JSON object or array, or a hex string), `binding:"required"` (nonce not
 * 0, projectID and signature not empty), the project ID as a decimal big integer,
 * `hexutil.Decode` of the signature, the project and its config version, the hash (with the
 * config's signed keys), then recovery with id 0 and 1 (both must give a key).
 */
export function checkTask(body: string, projects: DevProjects): TaskCheck {
  const state = {
    nonce: null as string | null,
    projectId: null as string | null,
    projectVersion: null as string | null,
    payload: null as string | null,
  };
  const fail = (error: string): TaskCheck => ({ ok: false, status: 400, error, ...state });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    return fail(`${APINODE_ERRORS.badRequest}: ${body.trim() === '' ? 'EOF' : (err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return fail(`${APINODE_ERRORS.badRequest}: invalid payload format`);
  const members = objectMembers(body);
  const first = (key: string) => members.find((m) => m.key === key)?.raw;
  const text = (raw: string | undefined): string => {
    if (raw === undefined || raw === 'null') return '';
    const v: unknown = JSON.parse(raw);
    return typeof v === 'string' ? v : raw;
  };
  const nonceRaw = first('nonce');
  const nonce =
    nonceRaw !== undefined && /^[0-9]+$/.test(text(nonceRaw)) && BigInt(text(nonceRaw)) <= MAX_NONCE ? BigInt(text(nonceRaw)) : 0n;
  const projectId = text(first('projectID'));
  const projectVersion = text(first('projectVersion'));
  const signature = text(first('signature'));
  const payloadRaw = first('payload');
  let payload: string;
  if (payloadRaw !== undefined && /^[[{]/.test(payloadRaw)) payload = payloadRaw;
  else if (payloadRaw?.startsWith('"')) {
    const hex = JSON.parse(payloadRaw) as string;
    if (!/^([0-9a-fA-F]{2})*$/.test(hex))
      return fail(`${APINODE_ERRORS.badRequest}: failed to decode payload from hex string: encoding/hex: invalid byte`);
    payload = hex;
  } else return fail(`${APINODE_ERRORS.badRequest}: invalid payload format`);
  Object.assign(state, { nonce: nonce === 0n ? null : nonce.toString(), projectId: projectId || null, projectVersion, payload });
  const missing = [
    ['Nonce', nonce === 0n],
    ['ProjectID', projectId === ''],
    ['Signature', signature === ''],
  ].filter(([, m]) => m);
  if (missing.length > 0)
    return fail(
      `${APINODE_ERRORS.badRequest}: ${missing.map(([f]) => `Key: 'CreateTaskReq.${f}' Error:Field validation for '${f}' failed on the 'required' tag`).join('\n')}`,
    );
  if (!/^[+-]?[0-9]+$/.test(projectId)) return fail(APINODE_ERRORS.badProjectId);
  const pid = BigInt(projectId).toString();
  if (!/^0[xX]/.test(signature)) return fail(`${APINODE_ERRORS.badSignatureHex}: hex string without 0x prefix`);
  if (signature.length % 2 !== 0) return fail(`${APINODE_ERRORS.badSignatureHex}: hex string of odd length`);
  if (!/^[0-9a-fA-F]*$/.test(signature.slice(2))) return fail(`${APINODE_ERRORS.badSignatureHex}: invalid hex string`);
  const project = projects === null ? { projectId: pid, versions: [], signedKeys: [] } : projects.find((p) => p.projectId === pid);
  if (project === undefined) return fail(`${APINODE_ERRORS.unknownProject}: project not exist, project_id ${pid}`);
  if (projectVersion !== '' && project.versions.length > 0 && !project.versions.includes(projectVersion))
    return fail(`${APINODE_ERRORS.unknownVersion}: ${PROJECT_CONFIG_MISSING}`);
  // The node re-marshals what it read: projectID as sent (a string), a JSON payload compacted; a
  // hex payload's bytes go back in as raw JSON when they are JSON, else as lower-case hex.
  const marshalled = payloadRaw.startsWith('"') ? hexPayloadJson(payload) : payload;
  const signedJson = signedJsonTask(nonce, { projectId, projectVersion }, marshalled);
  const digest = digestTask(signedJson, marshalled, project.signedKeys);
  const sig = Buffer.from(signature.slice(2), 'hex');
  const candidates: string[] = [];
  const keys: string[] = [];
  for (const v of [0, 1]) {
    try {
      const pub = recoverSecp256k1(digest, new Uint8Array([...sig, v]));
      candidates.push(addressOfPublicKey(pub));
      keys.push(Buffer.from(pub).toString('hex'));
    } catch (err) {
      return fail(
        `${APINODE_ERRORS.recoverFailed}: failed to recover public key from signature, recover_id ${v}: ${(err as Error).message}`,
      );
    }
  }
  return {
    ok: true,
    nonce: nonce.toString(),
    projectId: pid,
    projectVersion,
    payload,
    signature,
    candidates: candidates as [string, string],
    publicKeys: keys as [string, string],
    taskIds: [taskIdOf(sig, 0), taskIdOf(sig, 1)],
  };
}

/** The 403 body, exactly. */
export function notApprovedBody(): string {
  return JSON.stringify({ error: APINODE_ERRORS.notApproved });
}

/** One state as `GET /v1/task/<id>` lists it (Go's `StateLog`, empty fields omitted). */
export interface TaskStateLog {
  state: TaskStateName;
  time: string;
  comment?: string;
  error?: string;
  transaction_hash?: string;
  prover_id?: string;
}

/** A task the dev node packed, and how it is to progress. */
export interface DevTask {
  taskId: string;
  projectId: string;
  createdAtMs: number;
  /** Where this task ends: `packed` (no prover), `settled` (proof on chain), `failed` (the prover gave up). */
  outcome: 'packed' | 'settled' | 'failed';
  /** Time between states (packed -> assigned -> settled/failed). */
  stepMs: number;
}

const SETTLED_COMMENT = 'The task has been completed. Please check the generated proof in the corresponding DApp contract.';

/** `GET /v1/task/<id>`: the node's `QueryTaskResp` for a task (null: unknown to the node). Pure. */
export function taskStatusBody(idText: string, task: DevTask | null, nowMs: number): string {
  const iso = (ms: number) => new Date(ms).toISOString();
  if (task === null)
    return JSON.stringify({
      projectID: '',
      taskID: idText,
      states: [{ state: 'error', time: iso(nowMs), error: 'failed to query task: failed to query task: sql: no rows in result set' }],
    });
  const states: TaskStateLog[] = [{ state: 'packed', time: iso(task.createdAtMs) }];
  const assignedAt = task.createdAtMs + task.stepMs;
  const endAt = task.createdAtMs + 2 * task.stepMs;
  if (task.outcome !== 'packed' && nowMs >= assignedAt) {
    const prover = Buffer.from(keccak_256(Buffer.from(`prover:${task.projectId}`)))
      .toString('hex')
      .slice(0, 40);
    states.push({ state: 'assigned', time: iso(assignedAt), prover_id: `did:io:${prover}` });
    if (nowMs >= endAt) {
      if (task.outcome === 'settled')
        states.push({
          state: 'settled',
          time: iso(endAt),
          comment: SETTLED_COMMENT,
          transaction_hash: `0x${Buffer.from(keccak_256(Buffer.from(`settle:${task.taskId}`))).toString('hex')}`,
        });
      else states.push({ state: 'failed', time: iso(endAt), error: 'dev apinode: the prover failed this task (injected)' });
    }
  }
  return JSON.stringify({ projectID: task.projectId, taskID: idText, states });
}

/** What Go's `MarshalJSON` writes for a payload that came as hex: its bytes when they are JSON, else the hex again. */
function hexPayloadJson(hex: string): string {
  const text = Buffer.from(hex, 'hex').toString('utf8');
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(hex.toLowerCase());
  }
}

/** The modes a command line can pass for `/v1/task` (`not-from-node`: 200 with a taskID the node would not compute). */
export const DEV_ANSWER_MODES_TASK = ['normal', 'wait-timeout', 'html', 'empty', 'oversized', 'drop', 'not-from-node'] as const;

/**
 * The answer to one `POST /v1/task`, once the checks ran and the approvals were asked (pure).
 * `approved`: the recovery id whose address is approved, null when neither is, `'failed'` when
 * the lookup failed (the node's 500). Returns the task to store when one was packed.
 */
export function taskAnswer(
  req: EventRequest,
  mode: DevAnswerMode,
  c: TaskCheck,
  approved: 0 | 1 | null | 'failed',
  ctx: { seen: (key: string) => boolean },
): { answer: EventAnswer; taskId: string | null } {
  const json = (status: number, body: unknown): Extract<EventAnswer, { drop: false }> => ({
    drop: false,
    status,
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify(body),
    event: null,
    counted: true,
  });
  const between = answerBetween(mode);
  if (between !== null) return { answer: between, taskId: null };
  if (typeof mode === 'object' && 'status' in mode)
    return { answer: json(mode.status, { error: 'dev apinode answering an injected failure' }), taskId: null };
  if (typeof mode === 'object') return { answer: json(400, { error: mode.appletError }), taskId: null };
  const key = c.ok ? c.signature.toLowerCase() : '';
  const refusal = !c.ok
    ? c.error
    : approved === 'failed'
      ? `${APINODE_ERRORS.approvalLookupFailed}: dev apinode approval lookup failed`
      : approved === null
        ? APINODE_ERRORS.notApproved
        : mode === 'wait-timeout'
          ? `${APINODE_ERRORS.saveFailed}: dev apinode answering an injected failure`
          : null;
  const taskId = c.ok && refusal === null && approved !== null && approved !== 'failed' ? c.taskIds[approved] : null;
  const event: ReceivedEvent = {
    receivedAtMs: req.receivedAtMs,
    project: c.projectId ?? '',
    eventType: '',
    eventId: '',
    seq: c.nonce === null || !Number.isSafeInteger(Number(c.nonce)) ? null : Number(c.nonce),
    duplicate: key !== '' && ctx.seen(key),
    ...readingOfData(c.payload),
    verified: c.ok,
    reason: refusal,
    publicKey: c.ok && typeof approved === 'number' ? c.publicKeys[approved] : null,
    deviceId: c.ok && typeof approved === 'number' ? c.candidates[approved] : null,
    publicKeyForm: null,
    curve: c.ok ? 'secp256k1' : null,
    signerMatchesEventId: null,
    handled: taskId !== null,
    appletError: null,
    body: req.body,
    projectVersion: c.projectVersion,
    data: c.payload,
    taskId,
    dedupeKey: key,
    nonce: c.nonce,
    candidates: c.ok ? c.candidates : undefined,
  };
  if (!c.ok) return { answer: { ...json(400, { error: c.error }), event }, taskId: null };
  if (approved === 'failed' || mode === 'wait-timeout') return { answer: { ...json(500, { error: refusal }), event }, taskId: null };
  if (approved === null) return { answer: { ...json(403, { error: APINODE_ERRORS.notApproved }), event }, taskId: null };
  if (mode === 'oversized')
    return { answer: { ...json(200, { taskID: taskId, padding: 'x'.repeat((1 << 20) + 1024) }), event: null }, taskId: null };
  if (mode === 'not-from-node')
    return { answer: { ...json(200, { taskID: `0x${Buffer.from(keccak_256(Buffer.from(key))).toString('hex')}` }), event }, taskId: null };
  return { answer: { ...json(200, { taskID: taskId }), event }, taskId };
}
