/**
 * How the node answers, classified (docs/w3bstream.md section 4, "Decision, classification").
 * Pure: a status code and the body text in, a verdict out.
 *
 * `reason` is short (the screen shows about 16 characters of it) and starts with the node's own
 * error key where there is one; `errorKey` is that key alone (`InvalidToken`,
 * `InvalidEventChannel`, `TrafficLimitExceeded`, `HTTP 500`, `ECONNREFUSED`, `timeout`, ...);
 * `advice` says what to do, for logs and `doctor`, in the node's and the meter's terms;
 * `settings` names the publishing settings that fix it, so a program can add its own words for
 * them (its flags): this library names none.
 */
export type PublishSetting = 'projectId' | 'projectVersion' | 'publishUrl' | 'eventType' | 'signingKey';

export type Verdict =
  /**
   * Delivered: remove from the outbox. `note` flags an odd but accepted answer (log it);
   * `unhandled` is a delivery that no applet handled (`results: null`): counted and shown.
   */
  | {
      kind: 'delivered';
      reason: null;
      errorKey: null;
      advice: null;
      note: string | null;
      unhandled: boolean;
      /** W3bstream 2: the node's taskID (`''` while it aggregates messages into a task); absent for v1. */
      taskId?: string;
    }
  /** The node took the message but the applet refused this one: counted, not retried. */
  | { kind: 'rejected'; reason: string; errorKey: string; advice: string }
  /** Bad token, unknown project, deleted publisher, wrong URL: keep the data, retry slowly, tell the user. */
  | { kind: 'config'; reason: string; errorKey: string; advice: string; settings?: readonly PublishSetting[] }
  /**
   * 5xx, timeouts, connection errors, traffic limit, applet not running or busy, a 2xx that is not
   * a W3bstream answer: back off and retry. `persisting`: what to tell the user once the same
   * answer has come back `afterFailures` times in a row (the state becomes `failing`, the data is
   * still kept and retried with backoff), because that answer usually means a configuration problem.
   */
  | { kind: 'transient'; reason: string; errorKey: string; advice: string; persisting?: Persisting };

export interface Persisting {
  afterFailures: number;
  reason: string;
  advice: string;
}

/** What the publisher knows about an answer besides its status and text. */
export interface AnswerContext {
  /** The Content-Type header (parameters are ignored), or null when absent. */
  contentType?: string | null;
  /** The answer was larger than the client reads (its text is then empty). */
  oversized?: boolean;
  /** The answer's body broke off before its end (its text is then empty). */
  cutShort?: boolean;
  /** The eventType the reading was sent with, to name it when no applet handled it. */
  eventType?: string;
  /** The request body the answer is for (W3bstream 2 tasks: the taskID is checked against its signature, the project named). */
  requestBody?: string;
}

/** Failures in a row after which a suspicious transient answer is shown as `failing`. */
export const PERSISTING_AFTER_FAILURES = 3;

interface NodeAnswer {
  error?: unknown;
  key?: unknown;
  results?: unknown;
}

const ADVICE: Record<string, string> = {
  InvalidToken:
    'the node refused the publisher token: set W3BSTREAM_PUBLISHER_TOKEN to the token of this device (W3bstream Studio, Devices tab)',
  InvalidClaim:
    'the node refused the publisher token: set W3BSTREAM_PUBLISHER_TOKEN to the token of this device (W3bstream Studio, Devices tab)',
  AccessKeyNotFound: 'the access key is unknown to the node: create a new publisher token',
  AccessKeyExpired: 'the access key has expired: create a new publisher token',
  PublisherNotFound: 'the publisher (device) was deleted from the project: add it again and use its token',
  InvalidEventChannel: 'the project name at the end of the publish URL does not match the token: copy the URL from the project settings',
  TrafficLimitExceeded: 'the project exceeded its traffic limit: readings wait in the outbox and are retried',
  InstanceNotRunning: 'the project applet is not running: start it in W3bstream Studio; readings wait in the outbox',
  'instance not running': 'the project applet is stopped: start it in W3bstream Studio; readings wait in the outbox',
  'wait timeout': 'the applet was busy for more than 5 s: readings wait in the outbox and are retried',
};

/** Applet answers (results[].error) that say "not now", not "not this reading". */
const TRANSIENT_APPLET_ERRORS: Array<[RegExp, string]> = [
  [/TrafficLimitExceeded/i, 'TrafficLimitExceeded'],
  [/InstanceNotRunning/i, 'InstanceNotRunning'],
  [/instance not running/i, 'instance not running'],
  [/wait timeout/i, 'wait timeout'],
];

const NOT_W3BSTREAM_ADVICE =
  'the publish URL answers, but not like a W3bstream node (the node always answers a JSON object): a captive portal (hotel or guest Wi-Fi login page), a proxy or a load balancer error page is in the way, or the URL points at another service; readings are kept and retried';

export function classifyAnswer(status: number, bodyText: string, ctx: AnswerContext = {}): Verdict {
  const body = jsonObject<NodeAnswer>(bodyText);
  if (status >= 200 && status < 300) {
    // The node always answers a JSON object: anything else (a captive portal's HTML login page, an
    // empty or cut answer, an answer over the size cap even if it starts like the node's) was not
    // written by the node, so it must never remove a reading.
    if (ctx.oversized) return notW3bstream(status, 'over the size limit');
    if (ctx.cutShort) return notW3bstream(status, 'cut short');
    if (body === null) return notW3bstream(status, bodyText.trim() === '' ? 'empty' : (mediaType(ctx.contentType) ?? 'no content type'));
    const err = typeof body.error === 'string' ? body.error : null;
    if (err !== null && /InvalidEventChannel/i.test(err)) return config('InvalidEventChannel');
    if (err !== null && /TrafficLimitExceeded/i.test(err)) return transient('TrafficLimitExceeded');
    if (err !== null && err !== '') return transient(keyOf(err), `the node reported "${short(err, 120)}": retrying`);
    // The node writes `results: null` when no strategy handled the eventType: it took the
    // reading, nobody processed it. Retrying cannot change that; counted and shown.
    if (body.results === null || body.results === undefined) {
      const eventType = ctx.eventType ?? 'DEFAULT';
      return {
        kind: 'delivered',
        reason: null,
        errorKey: null,
        advice: null,
        note: `no applet handled eventType ${eventType}`,
        unhandled: true,
      };
    }
    const results = Array.isArray(body.results) ? (body.results as Array<{ code?: unknown; error?: unknown } | null>) : [];
    const failed = results.filter(
      (r) => typeof r === 'object' && r !== null && r.code !== 0 && r.code !== undefined && r.code !== null,
    ) as Array<{ code?: unknown; error?: unknown }>;
    for (const r of failed) {
      const e = typeof r.error === 'string' ? r.error : '';
      for (const [pattern, key] of TRANSIENT_APPLET_ERRORS) if (pattern.test(e)) return transient(key);
    }
    const first = failed[0];
    if (first !== undefined) {
      const what = typeof first.error === 'string' && first.error !== '' ? first.error : `code ${String(first.code)}`;
      return {
        kind: 'rejected',
        // Long enough for an applet's reason with a device address in it ("device 0x… is not registered").
        reason: `applet: ${short(what, 160)}`,
        errorKey: 'AppletRefused',
        advice:
          'the node received the reading and the applet refused this one; retrying cannot help, so it is counted and the next reading goes on',
      };
    }
    return { kind: 'delivered', reason: null, errorKey: null, advice: null, note: null, unhandled: false };
  }
  const key = body && typeof body.key === 'string' && body.key !== '' ? keyOf(body.key) : `HTTP ${status}`;
  if (status === 401 || status === 403 || status === 404) {
    return config(
      key,
      key === `HTTP ${status}`
        ? `HTTP ${status} from the publish URL: check that it is the project's event URL (…/srv-applet-mgr/v0/event/<project>) and the token`
        : undefined,
    );
  }
  // Redirects are not followed (a redirect could carry the token elsewhere): the URL is wrong.
  if (status >= 300 && status < 400)
    return config(`HTTP ${status}`, `the publish URL answers with a redirect (HTTP ${status}): configure the final URL instead`);
  // The node answers a malformed `w3b_…` token (cut short when pasted, bad base64) with 500
  // UnknownError, not 401: once or twice it is an outage, every time it is the token.
  if (status === 500 && key === 'UnknownError') {
    return {
      ...transient(`HTTP 500 UnknownError`, 'the node answered 500 UnknownError: retrying with backoff'),
      persisting: {
        afterFailures: PERSISTING_AFTER_FAILURES,
        reason: 'HTTP 500 UnknownError (token?)',
        advice:
          'the node keeps answering 500 UnknownError, which it does for a malformed publisher token (cut short or changed when pasted): copy the token again from W3bstream Studio (Devices tab) into W3BSTREAM_PUBLISHER_TOKEN; readings are kept and retried',
      },
    };
  }
  // 408 and 429 are "come back later" from proxies in front of the node.
  if (status === 408 || status === 429 || status >= 500) return transient(key === `HTTP ${status}` ? key : `HTTP ${status} ${key}`);
  // Other 4xx: the node (or a proxy) says the request itself is wrong for this endpoint, which a
  // retry of the same request cannot fix: keep the data and tell the user, like a bad token.
  return config(
    key === `HTTP ${status}` ? key : `HTTP ${status} ${key}`,
    `HTTP ${status} from the publish URL: check that it is a W3bstream event URL`,
  );
}

/** A 2xx that the node cannot have written: transient, and `failing` once it persists. */
export function notW3bstream(status: number, what: string): Verdict {
  const reason = `not a W3bstream answer (${what})`;
  return {
    kind: 'transient',
    reason,
    errorKey: 'NotW3bstream',
    advice: `HTTP ${status} ${what}: ${NOT_W3BSTREAM_ADVICE}`,
    persisting: {
      afterFailures: PERSISTING_AFTER_FAILURES,
      reason,
      advice: `HTTP ${status} ${what} again and again: ${NOT_W3BSTREAM_ADVICE}`,
    },
  };
}

/** The answer as a JSON object, or null when it is not one (HTML, empty, an array, cut short). */
export function jsonObject<T extends object>(text: string): Partial<T> | null {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Partial<T>) : null;
  } catch {
    return null;
  }
}

/** `text/html; charset=utf-8` -> `text/html`; null when there is none. */
export function mediaType(contentType: string | null | undefined): string | null {
  const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(t) ? t : null;
}

/** A failure before any answer (connection refused, reset, DNS, timeout). */
export function classifyNetworkError(errorKey: string, detail?: string): Verdict {
  return transient(errorKey, detail ?? `no answer from the publish URL (${errorKey}): readings wait in the outbox and are retried`);
}

function config(key: string, advice?: string): Verdict {
  return { kind: 'config', reason: key, errorKey: key, advice: advice ?? ADVICE[key] ?? `the node answered ${key}` };
}

function transient(key: string, advice?: string): Extract<Verdict, { kind: 'transient' }> {
  return {
    kind: 'transient',
    reason: key,
    errorKey: key,
    advice: advice ?? ADVICE[key] ?? `the node answered ${key}: retrying with backoff`,
  };
}

/** A node error key is one word; anything else is cut to something that fits a status line. */
function keyOf(text: string): string {
  return /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(text) ? text : short(text, 40);
}

export function short(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}
