import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { PublishingStateName } from '@power-meter/meter-files';
import fetch from 'node-fetch';
import { classifyNetworkError, type PublishSetting, type Verdict } from './classify.js';
import type { Log } from './log.js';
import type { Outbox } from './outbox.js';
import { type Transport, w3bstreamV1Transport } from './transport.js';

/**
 * Delivers the outbox in order, at least once, one message at a time, with a stable eventID
 * (`<device address>-<seq>`) on every retry (docs/w3bstream.md sections 1 and 4).
 *
 * - node-fetch with a keep-alive agent (one socket: in-order delivery needs no more, and a Pi on a
 *   phone hotspot should not open many) and a per-request timeout that covers the body too.
 * - Transient failures back off exponentially with jitter up to a cap; configuration failures
 *   (bad token, unknown project, wrong URL) keep the data and retry slowly, reported as the
 *   distinct `failing` state with the node's own error key.
 * - A message is removed from the outbox only after the node's answer says so; `stop()` aborts an
 *   attempt in flight and leaves the message stored, so stopping never loses data (the next start
 *   sends it again with the same eventID).
 * - The token is sent only in the Authorization header. It never appears in a state, a reason, an
 *   event or a log line, and redirects are not followed (they could carry it elsewhere).
 */
export interface PublishState {
  /** The same names state.json's publishing.state carries (meter-files' file contract). */
  state: PublishingStateName;
  /** Short reason (starts with the node's error key), null when ok/disabled. */
  reason: string | null;
  /** The node's own error key (`InvalidToken`, `InvalidEventChannel`, `HTTP 500`, `ECONNREFUSED`, `timeout`, ...). */
  errorKey: string | null;
  /** What to do about it, one sentence. */
  advice: string | null;
  waiting: number;
  dropped: number;
  /** Messages the applet refused (delivered-but-rejected), since the outbox was created. */
  rejected: number;
  lastSuccessMs: number | null;
  lastDeliveredSeq: number | null;
  /** Failed attempts in a row. */
  failures: number;
  /** When the next retry is due (wall clock ms), while retrying or failing. */
  nextRetryMs: number | null;
  /** Readings the node took that no applet handled (`results: null`), since the outbox was created. */
  unhandled: number;
  /** Whether the last attempt removed its reading (null before the first attempt). */
  lastAttemptOk: boolean | null;
  /**
   * W3bstream 2: the node's taskID of the last delivery (`''` while the node aggregates messages
   * into a task; `0x` + 64 hex once a task is packed). Null before the first v2 delivery and for v1.
   */
  lastTaskId: string | null;
}

export interface DeliveredEvent {
  seq: number;
  eventId: string;
  /** HTTP status of the answer. */
  status: number;
  /** True when the applet refused this message (counted, not retried). */
  rejected: boolean;
  reason: string | null;
  /** W3bstream 2 only: the taskID the node answered. */
  taskId?: string;
}

export interface BackoffOptions {
  /** First retry delay after a transient failure (default 1 s); doubles per failure. */
  baseMs?: number;
  /** Cap of the transient delay (default 5 min). */
  maxMs?: number;
  /** Retry pace while the configuration is wrong (default 60 s). */
  configRetryMs?: number;
}

export interface PublisherOptions {
  outbox: Outbox;
  /** The publish URL. Undefined or empty: publishing disabled (the meter still measures, signs and stores). */
  url?: string;
  /**
   * How messages become requests and answers verdicts. Default: W3bstream v1 built from `token`,
   * `deviceId` and `eventType` below (which only v1 uses).
   */
  transport?: Transport;
  /** Publisher token (a secret), v1. */
  token?: string;
  /** Device address, `0x…`, the first half of every eventID (v1). */
  deviceId?: string;
  /** `eventType` query parameter, default `DEFAULT` (v1). */
  eventType?: string;
  /** Per request, including reading the answer (default 15 s). */
  timeoutMs?: number;
  backoff?: BackoffOptions;
  /** One line per event, each at its level; never receives the token. */
  log?: Log;
  /**
   * Appended to advice that names settings to check (a verdict's `settings`): the program's own
   * words for them, its flags. This library names none.
   */
  settingHint?: (settings: readonly PublishSetting[]) => string;
  now?: () => number;
  random?: () => number;
}

export class PublisherConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublisherConfigError';
  }
}

/** Biggest answer read; a node answer is a few hundred bytes. */
const MAX_ANSWER_BYTES = 1 << 20;
/** While idle, look at the outbox now and then even without notify(). */
const IDLE_POLL_MS = 60_000;

export class Publisher extends EventEmitter {
  private readonly url: URL | null;
  private readonly transport: Transport;
  private readonly timeoutMs: number;
  private readonly backoff: Required<BackoffOptions>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly agent: http.Agent | null;
  private running = false;
  private loop: Promise<void> | null = null;
  private stopController = new AbortController();
  private wakeSleep: (() => void) | null = null;
  private wakeIdle: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private current: Omit<PublishState, 'waiting' | 'dropped' | 'rejected' | 'unhandled'>;
  private lastCounts = { waiting: 0, dropped: 0, rejected: 0, unhandled: 0 };
  /** The same suspicious transient answer (`persisting`), this many times in a row. */
  private repeats = { errorKey: '', count: 0 };

  constructor(private readonly opts: PublisherOptions) {
    super();
    this.url = opts.url ? parsePublishUrl(opts.url) : null;
    const deviceId = (opts.deviceId ?? '').toLowerCase();
    if (this.url && opts.transport === undefined && !/^0x[0-9a-f]{40}$/.test(deviceId))
      throw new PublisherConfigError(`device id ${JSON.stringify(deviceId)} is not 0x + 40 hex digits: pass identity.deviceId`);
    this.transport = opts.transport ?? w3bstreamV1Transport({ token: opts.token, deviceId, eventType: opts.eventType });
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.backoff = {
      baseMs: opts.backoff?.baseMs ?? 1000,
      maxMs: opts.backoff?.maxMs ?? 300_000,
      configRetryMs: opts.backoff?.configRetryMs ?? 60_000,
    };
    for (const [name, v] of [
      ['timeoutMs', this.timeoutMs],
      ['backoff.baseMs', this.backoff.baseMs],
      ['backoff.maxMs', this.backoff.maxMs],
      ['backoff.configRetryMs', this.backoff.configRetryMs],
    ] as const) {
      if (!(Number.isFinite(v) && v > 0)) throw new PublisherConfigError(`publisher option ${name}=${v} is invalid: a duration > 0 ms`);
    }
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.agent =
      this.url === null
        ? null
        : this.url.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 1 })
          : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.current = {
      state: this.url ? 'ok' : 'disabled',
      reason: null,
      errorKey: null,
      advice: null,
      lastSuccessMs: null,
      lastDeliveredSeq: null,
      failures: 0,
      nextRetryMs: null,
      lastAttemptOk: null,
      lastTaskId: null,
    };
    this.state(); // the counts to report if the outbox fails later
  }

  override on<K extends keyof PublisherEvents>(event: K, listener: (arg: PublisherEvents[K]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override once<K extends keyof PublisherEvents>(event: K, listener: (arg: PublisherEvents[K]) => void): this {
    return super.once(event, listener as (...args: unknown[]) => void);
  }

  state(): PublishState {
    try {
      const s = this.opts.outbox.stats();
      this.lastCounts = { waiting: s.waiting, dropped: s.dropped, rejected: s.rejected, unhandled: s.unhandled };
    } catch {
      // The outbox is closed or failing: report the last counts rather than throw from a getter.
    }
    return { ...this.current, ...this.lastCounts };
  }

  /** Starts delivering (no-op when disabled or already running). */
  start(): void {
    if (this.url === null || this.running) return;
    this.running = true;
    this.stopController = new AbortController();
    this.unsubscribe = this.opts.outbox.onAppend(() => this.notify());
    this.loop = this.run().catch((err: unknown) => {
      // The loop only throws if the outbox itself fails (disk full, closed underneath us).
      this.running = false;
      // Nothing retries after this, so it is reported as failing, not retrying.
      this.setState({
        state: 'failing',
        reason: 'outbox error',
        errorKey: 'OutboxError',
        advice: `the outbox failed: ${(err as Error).message}; restart the meter`,
      });
    });
  }

  /** Wakes an idle publisher (call after appending). Does not cut a backoff short. */
  notify(): void {
    this.wakeIdle?.();
  }

  /**
   * Ends a backoff or slow-retry sleep at once: for a caller that knows the cause of the failures
   * is gone (the meter sees the device's ioID registration appear on chain while the node answers
   * 403). The next attempt follows the usual rules.
   */
  retryNow(): void {
    this.wakeSleep?.();
  }

  /**
   * Stops promptly: aborts a request in flight (its message stays in the outbox and is sent again
   * with the same eventID next time) and ends a backoff sleep. Resolves when the loop has ended.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.stopController.abort();
    this.wakeSleep?.();
    this.wakeIdle?.();
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.loop;
    this.loop = null;
    this.agent?.destroy();
  }

  /** How a message is named in logs and events: its eventID for v1 (stable across retries and restarts). */
  eventIdFor(seq: number): string {
    return this.transport.messageId(seq);
  }

  /** The URL for one message (v1: eventType and the stable eventID as query parameters). */
  urlFor(seq: number): string {
    if (this.url === null) throw new PublisherConfigError('publishing is disabled: no publish URL');
    return this.transport.request(this.url, seq).url;
  }

  private async run(): Promise<void> {
    const { outbox } = this.opts;
    while (this.running) {
      const [msg] = outbox.peek(1);
      if (!msg) {
        await this.sleep(IDLE_POLL_MS, true);
        continue;
      }
      const answer = await this.post(msg.seq, msg.body);
      if (answer === 'stopped' || answer.verdict.kind === 'transient' || answer.verdict.kind === 'config') outbox.noteAttempt(msg.seq);
      if (answer === 'stopped') break;
      const delayMs = this.handle(msg.seq, answer.status, answer.verdict);
      if (delayMs !== null) {
        await this.sleep(delayMs, false);
        this.current.nextRetryMs = null;
      }
    }
  }

  /** Applies an answer; returns how long to wait before the next attempt (null: go on now). */
  private handle(seq: number, status: number, v: Verdict): number | null {
    const { outbox, log } = this.opts;
    const eventId = this.eventIdFor(seq);
    switch (v.kind) {
      case 'delivered':
      case 'rejected': {
        const rejected = v.kind === 'rejected';
        const unhandled = v.kind === 'delivered' && v.unhandled;
        outbox.markDelivered(seq, rejected ? 'rejected' : unhandled ? 'unhandled' : 'delivered');
        if (v.kind === 'delivered' && v.note) log?.info(`delivered seq=${seq} event_id=${eventId} note="${v.note}"`);
        if (v.kind === 'rejected') log?.warning(`rejected seq=${seq} event_id=${eventId} reason="${v.reason}": ${v.advice}`);
        this.repeats = { errorKey: '', count: 0 };
        // Delivered, but nobody processed it: `ok` with the reason shown until a reading is handled.
        const note = unhandled
          ? {
              reason: v.note,
              errorKey: 'NoApplet',
              advice: this.withHint(
                'the node took the reading but no applet strategy handles this eventType: set the event type to one the project handles, or add a strategy for it in W3bstream Studio',
                ['eventType'],
              ),
            }
          : { reason: null, errorKey: null, advice: null };
        const taskId = v.kind === 'delivered' && v.taskId !== undefined ? v.taskId : undefined;
        this.setState({
          state: 'ok',
          ...note,
          failures: 0,
          lastSuccessMs: this.now(),
          lastDeliveredSeq: seq,
          lastAttemptOk: true,
          ...(taskId === undefined ? {} : { lastTaskId: taskId }),
        });
        this.safeEmit('delivered', {
          seq,
          eventId,
          status,
          rejected,
          reason: v.reason ?? note.reason,
          ...(taskId === undefined ? {} : { taskId }),
        });
        return null;
      }
      case 'config':
      case 'transient': {
        const failures = this.current.failures + 1;
        const delayMs = retryDelayMs(v.kind, failures, this.backoff, this.random);
        const repeats = v.errorKey === this.repeats.errorKey ? this.repeats.count + 1 : 1;
        this.repeats = { errorKey: v.errorKey, count: repeats };
        const persisting =
          v.kind === 'transient' && v.persisting !== undefined && repeats >= v.persisting.afterFailures ? v.persisting : null;
        this.setState({
          state: v.kind === 'config' || persisting ? 'failing' : 'retrying',
          reason: persisting?.reason ?? v.reason,
          errorKey: v.errorKey,
          advice: persisting?.advice ?? (v.kind === 'config' ? this.withHint(v.advice, v.settings) : v.advice),
          failures,
          nextRetryMs: this.now() + delayMs,
          lastAttemptOk: false,
        });
        return delayMs;
      }
    }
  }

  /** The advice with the program's words for the settings it names, if any. */
  private withHint(advice: string, settings: readonly PublishSetting[] | undefined): string {
    if (settings === undefined || settings.length === 0) return advice;
    return `${advice}${this.opts.settingHint?.(settings) ?? ''}`;
  }

  private setState(patch: Partial<PublishState>): void {
    const before = this.current;
    this.current = { ...this.current, ...patch };
    const s = this.state();
    if (before.state !== s.state || before.errorKey !== s.errorKey || before.reason !== s.reason) {
      // Format relied on by the end-to-end tests and journal readers: state, reason, waiting.
      // Trouble (retrying, failing) is a warning; back to ok after trouble is a notice.
      const level = s.state === 'retrying' || s.state === 'failing' ? 'warning' : s.state === 'ok' ? 'notice' : 'info';
      this.opts.log?.[level](
        `publish state=${s.state}${s.reason ? ` reason="${s.reason}"` : ''} waiting=${s.waiting}${s.advice ? ` advice="${s.advice}"` : ''}`,
      );
    }
    this.safeEmit('state', s);
  }

  /** A listener that throws must not kill the delivery loop. */
  private safeEmit<K extends keyof PublisherEvents>(event: K, arg: PublisherEvents[K]): void {
    try {
      this.emit(event, arg);
    } catch (err) {
      this.opts.log?.warning(`publisher ${event} listener failed: ${(err as Error).message}`);
    }
  }

  private async post(seq: number, body: string): Promise<{ status: number; verdict: Verdict } | 'stopped'> {
    // One controller per request, aborted by its own timer (cleared when the answer is in) or by
    // stop(). AbortSignal.timeout would leave a timer pending for the full timeout per message.
    const request = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      request.abort();
    }, this.timeoutMs);
    const onStop = (): void => request.abort();
    this.stopController.signal.addEventListener('abort', onStop, { once: true });
    const signal = request.signal;
    const req = this.transport.request(this.url!, seq);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'power-meter-w3bstream/0.1',
      ...req.headers,
    };
    let status = 0;
    try {
      const res = await fetch(req.url, {
        method: 'POST',
        headers,
        body,
        agent: this.agent!,
        signal,
        redirect: 'manual',
        size: MAX_ANSWER_BYTES,
      });
      status = res.status;
      let text: string;
      let oversized = false;
      let cutShort = false;
      try {
        text = await res.text();
      } catch (err) {
        if (signal.aborted) throw err;
        // Over the cap, or cut short: either way not an answer the node wrote (never "delivered").
        oversized = (err as { type?: string }).type === 'max-size';
        cutShort = !oversized;
        text = '';
      }
      const verdict = this.transport.classify(status, text, {
        contentType: res.headers.get('content-type'),
        oversized,
        cutShort,
        requestBody: body,
      });
      return { status, verdict };
    } catch (err) {
      if (this.stopController.signal.aborted) return 'stopped';
      if (timedOut) {
        const verdict: Verdict = {
          kind: 'transient',
          reason: `timeout ${this.timeoutMs} ms`,
          errorKey: 'timeout',
          advice: `no answer within ${this.timeoutMs} ms (a busy node delays answers instead of refusing): retrying`,
        };
        return { status, verdict };
      }
      const e = err as { code?: string; type?: string; name?: string };
      return { status, verdict: classifyNetworkError(e.code ?? e.type ?? e.name ?? 'network error') };
    } finally {
      clearTimeout(timer);
      this.stopController.signal.removeEventListener('abort', onStop);
    }
  }

  private sleep(ms: number, wakeOnNotify: boolean): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wakeSleep = null;
        this.wakeIdle = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeSleep = done;
      if (wakeOnNotify) this.wakeIdle = done;
    });
  }
}

/**
 * How long to wait after the `failures`-th failure in a row (pure). Transient: exponential backoff
 * with "equal jitter" (half fixed, half random) capped at `maxMs`, so a fleet that lost the same
 * node does not come back in lock step and the delay still grows. Config errors: a slow pace
 * with +-10 % jitter: the data is kept, and hammering the node cannot fix a wrong token.
 */
export function retryDelayMs(
  kind: 'transient' | 'config',
  failures: number,
  backoff: Required<BackoffOptions>,
  random: () => number,
): number {
  if (kind === 'config') return backoff.configRetryMs * (0.9 + 0.2 * random());
  const exp = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return exp / 2 + random() * (exp / 2);
}

export interface PublisherEvents {
  delivered: DeliveredEvent;
  state: PublishState;
}

/** Validates the publish URL; the message shows it without its query (which could hold a token). */
export function parsePublishUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new PublisherConfigError(
      `publish URL ${JSON.stringify(text.split('?')[0])} is not a URL: copy it from the W3bstream project settings (https://<host>/srv-applet-mgr/v0/event/<project>)`,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new PublisherConfigError(`publish URL ${u.origin}${u.pathname} must start with https:// (or http:// for a local receiver)`);
  if (u.username || u.password)
    throw new PublisherConfigError(
      `publish URL ${u.host}${u.pathname} must not contain a user or password: the token goes in W3BSTREAM_PUBLISHER_TOKEN`,
    );
  return u;
}
