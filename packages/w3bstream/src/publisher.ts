import http from 'node:http';
import https from 'node:https';
import fetch from 'node-fetch';
import { classifyAnswer, type Verdict } from './classify.js';
import type { Outbox } from './outbox.js';

/**
 * Delivers the outbox in order, at least once, one message at a time, with a stable eventID
 * (`<device address>-<seq>`) on every retry. Transient failures back off exponentially with
 * jitter up to a cap; configuration failures (bad token, unknown project) keep the data and
 * retry slowly, reported as a distinct "failing" state with the node's own error key.
 */
export type PublishStateName = 'disabled' | 'ok' | 'retrying' | 'failing';

export interface PublishState {
  state: PublishStateName;
  reason: string | null;
  waiting: number;
  dropped: number;
  rejected: number;
  lastSuccessMs: number | null;
  /** Result of the last attempt, for the legacy `status` file. */
  lastAttempt: 'Success' | 'Failed to publish' | null;
}

export interface PublisherOptions {
  outbox: Outbox;
  /** Empty: publishing disabled (the meter still measures, signs and stores). */
  url: string;
  token: string;
  deviceAddress: string;
  eventType?: string;
  timeoutMs?: number;
  /** First retry delay and cap for transient failures. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Retry delay while the configuration is wrong. */
  configRetryMs?: number;
  log?: (line: string) => void;
  onState?: (s: PublishState) => void;
  nowMs?: () => number;
  random?: () => number;
}

export class Publisher {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private wakeIdle: (() => void) | null = null;
  private failures = 0;
  private current: PublishState;
  private readonly agent: http.Agent;
  private abort: AbortController | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly opts: PublisherOptions) {
    const s = opts.outbox.stats();
    this.current = { state: opts.url ? 'ok' : 'disabled', reason: null, waiting: s.waiting, dropped: s.dropped, rejected: s.rejected, lastSuccessMs: null, lastAttempt: null };
    this.agent = opts.url.startsWith('https:') ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  state(): PublishState {
    const s = this.opts.outbox.stats();
    return { ...this.current, waiting: s.waiting, dropped: s.dropped, rejected: s.rejected };
  }

  start(): void {
    if (!this.opts.url || this.running) return;
    this.running = true;
    this.unsubscribe = this.opts.outbox.onAppend(() => this.wakeIdle?.());
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort?.abort();
    this.wake?.();
    this.wakeIdle?.();
    this.unsubscribe?.();
    await this.loop;
    this.agent.destroy();
  }

  /** The URL for one message: eventType and a stable eventID as query parameters. */
  urlFor(seq: number): string {
    const u = new URL(this.opts.url);
    u.searchParams.set('eventType', this.opts.eventType ?? 'DEFAULT');
    u.searchParams.set('eventID', `${this.opts.deviceAddress}-${seq}`);
    return u.toString();
  }

  private async run(): Promise<void> {
    const { outbox } = this.opts;
    while (this.running) {
      const [msg] = outbox.peek(1);
      if (!msg) {
        await this.sleep(60_000, true);
        continue;
      }
      outbox.noteAttempt(msg.seq);
      const verdict = await this.post(msg.seq, msg.body);
      if (!this.running && verdict.kind === 'transient' && verdict.reason === 'stopped') break;
      this.handle(msg.seq, verdict);
      // A backoff is not cut short by new readings: only stop() ends it early.
      if (verdict.kind === 'transient' || verdict.kind === 'config') await this.sleep(this.delayFor(verdict), false);
    }
  }

  private handle(seq: number, v: Verdict): void {
    const { outbox, log } = this.opts;
    const now = (this.opts.nowMs ?? Date.now)();
    switch (v.kind) {
      case 'delivered':
        outbox.ack(seq);
        if (v.note) log?.(`delivered seq=${seq} (${v.note})`);
        this.failures = 0;
        this.setState({ state: 'ok', reason: null, lastSuccessMs: now, lastAttempt: 'Success' });
        return;
      case 'rejected':
        outbox.reject(seq);
        log?.(`rejected seq=${seq} reason="${v.reason}": the node received it and the applet refused it; counted, not retried`);
        this.failures = 0;
        this.setState({ state: 'ok', reason: null, lastSuccessMs: now, lastAttempt: 'Success' });
        return;
      case 'config':
        this.failures++;
        this.setState({ state: 'failing', reason: v.reason, lastAttempt: 'Failed to publish' });
        return;
      case 'transient':
        this.failures++;
        this.setState({ state: 'retrying', reason: v.reason, lastAttempt: 'Failed to publish' });
        return;
    }
  }

  private setState(patch: Partial<PublishState>): void {
    const before = this.current;
    this.current = { ...this.current, ...patch };
    if (before.state !== this.current.state || before.reason !== this.current.reason) {
      const s = this.state();
      this.opts.log?.(`publish state=${s.state}${s.reason ? ` reason="${s.reason}"` : ''} waiting=${s.waiting}`);
    }
    this.opts.onState?.(this.state());
  }

  /** Exponential backoff with full jitter for transient failures; a slow fixed pace for config errors. */
  private delayFor(v: Verdict): number {
    if (v.kind === 'config') return this.opts.configRetryMs ?? 60_000;
    const base = this.opts.backoffBaseMs ?? 1000;
    const cap = this.opts.backoffMaxMs ?? 300_000;
    const exp = Math.min(cap, base * 2 ** Math.min(this.failures - 1, 30));
    return exp / 2 + (this.opts.random ?? Math.random)() * (exp / 2);
  }

  private async post(seq: number, body: string): Promise<Verdict> {
    this.abort = new AbortController();
    const timer = setTimeout(() => this.abort?.abort(), this.opts.timeoutMs ?? 15_000);
    try {
      const res = await fetch(this.urlFor(seq), {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.opts.token}`, 'Content-Type': 'application/json' },
        body,
        agent: this.agent,
        signal: this.abort.signal,
      });
      const text = await res.text();
      return classifyAnswer(res.status, text);
    } catch (err) {
      if (!this.running) return { kind: 'transient', reason: 'stopped' };
      const e = err as { name?: string; code?: string; message?: string };
      if (e.name === 'AbortError') return { kind: 'transient', reason: `no answer within ${this.opts.timeoutMs ?? 15_000} ms` };
      return { kind: 'transient', reason: e.code ?? e.message ?? String(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number, wakeOnAppend: boolean): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = null;
        this.wakeIdle = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
      if (wakeOnAppend) this.wakeIdle = done;
    });
  }
}
