/**
 * How the node answers, classified (w3bstream.md section 4, "Decision, classification").
 * Pure: a status code and the body text in, a verdict out.
 *
 * `reason` is short (the screen shows about 16 characters of it) and starts with the node's own
 * error key where there is one; `errorKey` is that key alone (`InvalidToken`,
 * `InvalidEventChannel`, `TrafficLimitExceeded`, `HTTP 500`, `ECONNREFUSED`, `timeout`, ...);
 * `advice` says what to do, for logs and `doctor`.
 */
export type Verdict =
  /** Delivered: remove from the outbox. `note` flags an odd but accepted answer (log it). */
  | { kind: 'delivered'; reason: null; errorKey: null; advice: null; note: string | null }
  /** The node took the message but the applet refused this one: counted, not retried. */
  | { kind: 'rejected'; reason: string; errorKey: string; advice: string }
  /** Bad token, unknown project, deleted publisher, wrong URL: keep the data, retry slowly, tell the user. */
  | { kind: 'config'; reason: string; errorKey: string; advice: string }
  /** 5xx, timeouts, connection errors, traffic limit, applet not running: back off and retry. */
  | { kind: 'transient'; reason: string; errorKey: string; advice: string };

interface NodeAnswer {
  error?: unknown;
  key?: unknown;
  results?: unknown;
}

const ADVICE: Record<string, string> = {
  InvalidToken: 'the node refused the publisher token: set W3BSTREAM_PUBLISHER_TOKEN to the token of this device (W3bstream Studio, Devices tab)',
  InvalidClaim: 'the node refused the publisher token: set W3BSTREAM_PUBLISHER_TOKEN to the token of this device (W3bstream Studio, Devices tab)',
  AccessKeyNotFound: 'the access key is unknown to the node: create a new publisher token',
  AccessKeyExpired: 'the access key has expired: create a new publisher token',
  PublisherNotFound: 'the publisher (device) was deleted from the project: add it again and use its token',
  InvalidEventChannel: 'the project name at the end of the publish URL does not match the token: copy the URL from the project settings',
  TrafficLimitExceeded: 'the project exceeded its traffic limit: readings wait in the outbox and are retried',
  InstanceNotRunning: 'the project applet is not running: start it in W3bstream Studio; readings wait in the outbox',
};

export function classifyAnswer(status: number, bodyText: string): Verdict {
  let body: NodeAnswer | null = null;
  try {
    const parsed: unknown = JSON.parse(bodyText);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as NodeAnswer;
  } catch {
    body = null;
  }
  if (status >= 200 && status < 300) {
    if (body === null) {
      // Section 4: an unparseable success body counts as delivered only for 200/201 (logged).
      return status === 200 || status === 201
        ? { kind: 'delivered', reason: null, errorKey: null, advice: null, note: `HTTP ${status} with an unparseable body` }
        : transient(`HTTP ${status}`, `HTTP ${status} with an unparseable body is not a W3bstream answer: retrying`);
    }
    const err = typeof body.error === 'string' ? body.error : null;
    if (err !== null && /InvalidEventChannel/i.test(err)) return config('InvalidEventChannel');
    if (err !== null && /TrafficLimitExceeded/i.test(err)) return transient('TrafficLimitExceeded');
    if (err !== null && err !== '') return transient(keyOf(err), `the node reported "${short(err, 120)}": retrying`);
    const results = Array.isArray(body.results) ? (body.results as Array<{ code?: unknown; error?: unknown } | null>) : [];
    const failed = results.filter((r) => typeof r === 'object' && r !== null && r.code !== 0 && r.code !== undefined && r.code !== null) as Array<{ code?: unknown; error?: unknown }>;
    for (const r of failed) {
      const e = typeof r.error === 'string' ? r.error : '';
      if (/TrafficLimitExceeded/i.test(e)) return transient('TrafficLimitExceeded');
      if (/InstanceNotRunning/i.test(e)) return transient('InstanceNotRunning');
    }
    if (failed.length > 0) {
      const e = failed[0]!.error;
      const what = typeof e === 'string' && e !== '' ? e : `code ${String(failed[0]!.code)}`;
      return {
        kind: 'rejected',
        reason: `applet: ${short(what, 70)}`,
        errorKey: 'AppletRefused',
        advice: 'the node received the reading and the applet refused this one; retrying cannot help, so it is counted and the next reading goes on',
      };
    }
    return { kind: 'delivered', reason: null, errorKey: null, advice: null, note: null };
  }
  const key = body && typeof body.key === 'string' && body.key !== '' ? keyOf(body.key) : `HTTP ${status}`;
  if (status === 401 || status === 403 || status === 404) {
    return config(key, key === `HTTP ${status}` ? `HTTP ${status} from the publish URL: check that it is the project's event URL (…/srv-applet-mgr/v0/event/<project>) and the token` : undefined);
  }
  // Redirects are not followed (a redirect could carry the token elsewhere): the URL is wrong.
  if (status >= 300 && status < 400) return config(`HTTP ${status}`, `the publish URL answers with a redirect (HTTP ${status}): configure the final URL instead`);
  // 408 and 429 are "come back later" from proxies in front of the node.
  if (status === 408 || status === 429 || status >= 500) return transient(key === `HTTP ${status}` ? key : `HTTP ${status} ${key}`);
  // Other 4xx: the node (or a proxy) says the request itself is wrong for this endpoint, which a
  // retry of the same request cannot fix: keep the data and tell the user, like a bad token.
  return config(key === `HTTP ${status}` ? key : `HTTP ${status} ${key}`, `HTTP ${status} from the publish URL: check that it is a W3bstream event URL`);
}

/** A failure before any answer (connection refused, reset, DNS, timeout). */
export function classifyNetworkError(errorKey: string, detail?: string): Verdict {
  return transient(errorKey, detail ?? `no answer from the publish URL (${errorKey}): readings wait in the outbox and are retried`);
}

function config(key: string, advice?: string): Verdict {
  return { kind: 'config', reason: key, errorKey: key, advice: advice ?? ADVICE[key] ?? `the node answered ${key}` };
}

function transient(key: string, advice?: string): Verdict {
  return { kind: 'transient', reason: key, errorKey: key, advice: advice ?? ADVICE[key] ?? `the node answered ${key}: retrying with backoff` };
}

/** A node error key is one word; anything else is cut to something that fits a status line. */
function keyOf(text: string): string {
  return /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(text) ? text : short(text, 40);
}

function short(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}
