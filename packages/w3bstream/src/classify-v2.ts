import { type AnswerContext, jsonObject, mediaType, notW3bstream, short, type Verdict } from './classify.js';

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
    return {
      kind: 'config',
      reason: `HTTP 400 ${short(what, 40)}`,
      errorKey: 'HTTP 400',
      advice: `the W3bstream 2 node refused the message: "${short(what, 300)}"; ${adviceFor400(what)}; readings are kept and retried slowly`,
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
  return {
    kind: 'config',
    reason: withText(`HTTP ${status}`),
    errorKey: `HTTP ${status}`,
    advice: `HTTP ${status} from the publish URL: with --transport w3bstream-v2 it must be the node's message URL (https://<node>/message)`,
  };
}

function adviceFor400(error: string): string {
  if (/ProjectID|projectID/.test(error)) return 'check --project-id (a whole number above 0, the project registered on chain)';
  if (/ProjectVersion|projectVersion/.test(error)) return 'check --project-version (the version string of the project file, e.g. 0.1)';
  if (/signature/i.test(error)) return 'the signature was refused: the identity must be a secp256k1 key (power-meter identity shows it)';
  return 'check --project-id, --project-version and the publish URL';
}
