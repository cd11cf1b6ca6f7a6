/**
 * How the node answers, classified (w3bstream.md section 4, "Decision, classification").
 * Pure: a status code and the body text in, a verdict out.
 */
export type Verdict =
  /** Delivered: drop from the outbox. */
  | { kind: 'delivered'; reason: null; note: string | null }
  /** The node took the message but the applet refused this one: counted, not retried. */
  | { kind: 'rejected'; reason: string }
  /** Bad token, unknown project, deleted publisher: keep the data, retry slowly, tell the user. */
  | { kind: 'config'; reason: string }
  /** 5xx, timeouts, connection errors, traffic limit, applet not running: back off and retry. */
  | { kind: 'transient'; reason: string };

interface NodeAnswer {
  error?: unknown;
  key?: unknown;
  results?: Array<{ code?: unknown; error?: unknown }>;
}

export function classifyAnswer(status: number, bodyText: string): Verdict {
  let body: NodeAnswer | null = null;
  try {
    const parsed: unknown = JSON.parse(bodyText);
    if (typeof parsed === 'object' && parsed !== null) body = parsed as NodeAnswer;
  } catch {
    body = null;
  }
  if (status >= 200 && status < 300) {
    if (body === null) {
      return status === 200 || status === 201
        ? { kind: 'delivered', reason: null, note: 'unparseable success body' }
        : { kind: 'transient', reason: `HTTP ${status} with an unparseable body` };
    }
    const err = typeof body.error === 'string' ? body.error : null;
    if (err !== null && /InvalidEventChannel/i.test(err)) return { kind: 'config', reason: 'InvalidEventChannel' };
    if (err !== null && err !== '') return { kind: 'transient', reason: short(err) };
    const failed = (body.results ?? []).filter((r) => r && r.code !== 0 && r.code !== undefined);
    for (const r of failed) {
      const e = typeof r.error === 'string' ? r.error : '';
      if (/TrafficLimitExceeded/i.test(e)) return { kind: 'transient', reason: 'TrafficLimitExceeded' };
      if (/InstanceNotRunning/i.test(e)) return { kind: 'transient', reason: 'InstanceNotRunning' };
    }
    if (failed.length > 0) {
      const e = failed[0]!.error;
      return { kind: 'rejected', reason: `applet refused: ${short(typeof e === 'string' && e !== '' ? e : `code ${String(failed[0]!.code)}`)}` };
    }
    return { kind: 'delivered', reason: null, note: null };
  }
  const key = body && typeof body.key === 'string' ? body.key : `HTTP ${status}`;
  if (status === 401 || status === 403 || status === 404) return { kind: 'config', reason: key };
  return { kind: 'transient', reason: key === `HTTP ${status}` ? key : `HTTP ${status} ${key}` };
}

function short(text: string): string {
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
