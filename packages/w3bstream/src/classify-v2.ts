import { APINODE_ERRORS, possibleTaskIds } from './apinode.js';
import {
  type AnswerContext,
  jsonObject,
  mediaType,
  notW3bstream,
  PERSISTING_AFTER_FAILURES,
  type PublishSetting,
  short,
  type Verdict,
} from './classify.js';
import { readTaskBody } from './task-codec.js';

/**
 * How the W3bstream 2 node answers `POST /message` (cmd/apinode/api/http.go), classified. Pure.
 * - 200 `{"taskID":"0x…"}`: delivered. `taskID` is `""` while the node collects messages for an
 *   aggregated task (fewer than its aggregation amount so far): delivered too, the message is stored.
 * - 400 `{"error":"…"}`: the request itself is wrong (bad payload, project ID 0, a signature that is
 *   not hex or recovers no key): a configuration error, shown with the node's text, data kept.
 * - 500 `{"error":"…"}` (the node could not save the message: its database), other 5xx, 408, 429:
 *   transient. Timeouts and connection errors are classified by the publisher, as for v1.
 * - 404, 401, 403, a redirect, other 4xx: not the node's `/message` route: configuration.
 * - A 2xx that is not a JSON object with a string `taskID`: not the node (captive portal, proxy):
 *   transient, `failing` once it persists, exactly as for v1.
 */
export function classifyAnswerV2(status: number, bodyText: string, ctx: AnswerContext = {}): Verdict {
  const body = jsonObject<{ taskID: unknown; error: unknown }>(bodyText);
  const nodeError = body !== null && typeof body.error === 'string' && body.error !== '' ? body.error : null;
  if (status >= 200 && status < 300) {
    if (ctx.oversized) return notW3bstream(status, 'over the size limit');
    if (ctx.cutShort) return notW3bstream(status, 'cut short');
    if (body === null) return notW3bstream(status, bodyText.trim() === '' ? 'empty' : (mediaType(ctx.contentType) ?? 'no content type'));
    // The node always writes taskID (no omitempty): an object without it was written by someone else.
    if (typeof body.taskID !== 'string') return notW3bstream(status, 'no taskID');
    return { kind: 'delivered', reason: null, errorKey: null, advice: null, note: null, unhandled: false, taskId: body.taskID };
  }
  if (status === 400) {
    const what = nodeError ?? 'no error text';
    const fix = adviceFor400(what);
    return {
      kind: 'config',
      reason: `HTTP 400 ${short(what, 40)}`,
      errorKey: 'HTTP 400',
      advice: `the W3bstream 2 node refused the message: "${short(what, 300)}"; ${fix.text}; readings are kept and retried slowly`,
      settings: fix.settings,
    };
  }
  const withText = (key: string): string => (nodeError === null ? key : `${key} ${short(nodeError, 40)}`);
  if (status === 408 || status === 429 || status >= 500)
    return {
      kind: 'transient',
      reason: withText(`HTTP ${status}`),
      errorKey: `HTTP ${status}`,
      advice: `the node answered HTTP ${status}${nodeError === null ? '' : ` "${short(nodeError, 200)}"`}: retrying with backoff`,
    };
  if (status >= 300 && status < 400)
    return {
      kind: 'config',
      reason: `HTTP ${status}`,
      errorKey: `HTTP ${status}`,
      advice: `the publish URL answers with a redirect (HTTP ${status}): configure the final URL instead`,
    };
  if (status === 404)
    return {
      kind: 'config',
      reason: withText('HTTP 404'),
      errorKey: 'HTTP 404',
      advice:
        'HTTP 404 from the publish URL: no /message route there. Nodes since v0.17 take tasks at https://<node>/v1/task instead (end the publish URL with /v1/task); an older node takes https://<node>/message',
    };
  if (status === 403)
    return {
      kind: 'config',
      reason: withText('HTTP 403'),
      errorKey: 'HTTP 403',
      advice:
        'HTTP 403 from the publish URL: the older /message route has no device check; a current node refuses devices that are not registered through ioID for the project (end the publish URL with /v1/task and register the device)',
    };
  return {
    kind: 'config',
    reason: withText(`HTTP ${status}`),
    errorKey: `HTTP ${status}`,
    advice: `HTTP ${status} from the publish URL: it must be the node's URL ending in /v1/task (current nodes) or /message (nodes older than v0.17)`,
  };
}

/** What to check for the node's 400 text, and the settings that fix it (the program names them its way). */
function adviceFor400(error: string): { text: string; settings: readonly PublishSetting[] } {
  if (/ProjectID|projectID/.test(error))
    return { text: 'check the project ID (a whole number above 0, the project registered on chain)', settings: ['projectId'] };
  if (/ProjectVersion|projectVersion/.test(error))
    return { text: 'check the project version (the version string of the project file, e.g. 0.1)', settings: ['projectVersion'] };
  if (/signature/i.test(error))
    return { text: 'the signature was refused: the identity must be a secp256k1 key', settings: ['signingKey'] };
  return { text: 'check the project ID, the project version and the publish URL', settings: ['projectId', 'projectVersion', 'publishUrl'] };
}

/**
 * How the current node answers `POST /v1/task` (service/apinode/api/http.go, `createTask`),
 * classified. Pure. `ctx.requestBody` is the task that was sent: its signature gives the two
 * taskIDs the node can answer, its project names the project in reasons.
 * - 200 `{"taskID":"0x…"}`: delivered, when the taskID is keccak256(r||s||v) of this task's
 *   signature for v 0 or 1. Any other taskID was not computed by the node from this task ("answer
 *   not from the node"): kept and retried, `failing` once it persists.
 * - 403 "device does not have permission": the device is not registered through ioID for the
 *   project (`NotApproved`): kept, retried slowly.
 * - 400 "failed to get project" / "failed to get project config": `UnknownProject` /
 *   `UnknownVersion`, kept, retried slowly; any other 400 (a request the node could not read or
 *   verify: a signing bug here) is kept too, shown with the node's text. Nothing a node refuses is
 *   ever removed: only a delivery removes a reading.
 * - 5xx, 408, 429, a 2xx that is not the node's JSON: transient.
 */
export function classifyTaskAnswer(status: number, bodyText: string, ctx: AnswerContext = {}): Verdict {
  const body = jsonObject<{ taskID: unknown; error: unknown }>(bodyText);
  const nodeError = body !== null && typeof body.error === 'string' && body.error !== '' ? body.error : null;
  const task = ctx.requestBody === undefined ? null : readTaskBody(ctx.requestBody);
  const project = task === null ? '?' : task.projectId;
  const version = task === null || task.projectVersion === '' ? 'default' : task.projectVersion;
  if (status >= 200 && status < 300) {
    if (ctx.oversized) return notW3bstream(status, 'over the size limit');
    if (ctx.cutShort) return notW3bstream(status, 'cut short');
    if (body === null) return notW3bstream(status, bodyText.trim() === '' ? 'empty' : (mediaType(ctx.contentType) ?? 'no content type'));
    if (typeof body.taskID !== 'string') return notW3bstream(status, 'no taskID');
    const taskId = body.taskID.toLowerCase();
    const expected = task?.signature ? possibleTaskIds(task.signature) : null;
    if (expected !== null && !expected.includes(taskId)) {
      const reason = 'answer not from the node';
      const advice = `HTTP ${status} with taskID ${short(body.taskID, 70)}, which is not keccak256 of this task's signature (${expected[0]} or ${expected[1]}): something other than the node answered (a proxy, another service at the URL); the reading is kept and sent again`;
      return {
        kind: 'transient',
        reason,
        errorKey: 'NotFromNode',
        advice,
        persisting: { afterFailures: PERSISTING_AFTER_FAILURES, reason, advice },
      };
    }
    return { kind: 'delivered', reason: null, errorKey: null, advice: null, note: null, unhandled: false, taskId };
  }
  const withText = (key: string): string => (nodeError === null ? key : `${key} ${short(nodeError, 40)}`);
  if (status === 403 && nodeError !== null && nodeError.startsWith(APINODE_ERRORS.notApproved))
    return {
      kind: 'config',
      reason: `device not approved for project ${project}`,
      errorKey: 'NotApproved',
      advice: `the node answered "${short(nodeError, 80)}": this device is not registered through ioID for project ${project} (the owner registers it with the device's signed permit); readings are kept and sent once it is approved`,
    };
  if (status === 400 && nodeError !== null && nodeError.startsWith(`${APINODE_ERRORS.unknownVersion}`))
    return {
      kind: 'config',
      reason: `unknown project ${project} / version ${version}`,
      errorKey: 'UnknownVersion',
      advice: `the node answered "${short(nodeError, 160)}": project ${project} has no version ${version}; set the project version to one in the project's file (or leave it empty for the project's default); readings are kept`,
    };
  if (status === 400 && nodeError !== null && nodeError.startsWith(`${APINODE_ERRORS.unknownProject}:`))
    return {
      kind: 'config',
      reason: `unknown project ${project} / version ${version}`,
      errorKey: 'UnknownProject',
      advice: `the node answered "${short(nodeError, 160)}": the node does not know project ${project} (not registered on this node's chain, or its project file cannot be read); check the project ID; readings are kept`,
    };
  if (status === 400)
    return {
      kind: 'config',
      reason: withText('HTTP 400'),
      errorKey: 'HTTP 400',
      advice: `the node refused the task: "${nodeError === null ? 'no error text' : short(nodeError, 300)}"; the node could not read or verify what this meter signed: readings are kept (report this with the log line); check that the project's signed keys match the project's config`,
    };
  if (status === 408 || status === 429 || status >= 500)
    return {
      kind: 'transient',
      reason: withText(`HTTP ${status}`),
      errorKey: `HTTP ${status}`,
      advice: `the node answered HTTP ${status}${nodeError === null ? '' : ` "${short(nodeError, 200)}"`}: retrying with backoff`,
    };
  if (status >= 300 && status < 400)
    return {
      kind: 'config',
      reason: `HTTP ${status}`,
      errorKey: `HTTP ${status}`,
      advice: `the publish URL answers with a redirect (HTTP ${status}): configure the final URL instead`,
    };
  return {
    kind: 'config',
    reason: withText(`HTTP ${status}`),
    errorKey: `HTTP ${status}`,
    advice:
      status === 404
        ? 'HTTP 404 from the publish URL: no /v1/task route there (a node older than v0.17 takes https://<node>/message instead: end the publish URL with /message)'
        : `HTTP ${status} from the publish URL: it must be the node's task URL (https://<node>/v1/task)`,
  };
}
