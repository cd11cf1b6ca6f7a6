import { connect, type ErrorWithReasonCode, type MqttClient } from 'mqtt';
import type { MeterState } from '@power-meter/meter-files';
import type { MeterObserver } from '../observer.js';
import { discoveryMessages, type DeviceInfo } from './discovery.js';
import { StatePlanner, type OutMessage } from './payloads.js';
import { clientId, homeAssistantStatusTopic, meterTopics, type MeterTopics } from './topics.js';

export interface MqttOutputOptions extends DeviceInfo {
  url: string;
  /** Empty = no login. Neither is ever logged. */
  username: string;
  password: string;
  topicPrefix: string;
  discoveryPrefix: string;
  powerIntervalMs: number;
  /** Publish each signed reading body too. */
  readings: boolean;
  log: (line: string) => void;
  /** Reconnect backoff, ms: doubles from min to max; a refused login waits max at once. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export type MqttConnection = 'connecting' | 'connected' | 'retrying' | 'refused';

/** CONNACK reason codes for a refused login: MQTT 5 (0x86 bad user name or password, 0x87 not authorized), 3.1.1 (4, 5). */
const LOGIN_REFUSED = new Set([134, 135, 4, 5]);

/**
 * Publishes the meter's state to an MQTT broker, with Home Assistant discovery. Off the
 * measuring path: the meter only hands it states (see observer.ts); when the broker is away
 * nothing is queued (the data directory, the outbox and W3bstream do not depend on it) and the
 * latest state is sent in full on reconnect. mqtt.js's fixed-period reconnect is off: this
 * class reconnects with a doubling delay, and does not hammer a broker that refused the login.
 */
export class MqttOutput implements MeterObserver {
  private readonly client: MqttClient;
  private readonly topics: MeterTopics;
  private readonly planner: StatePlanner;
  private readonly haStatus: string;
  private latest: MeterState | null = null;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private problem: { text: string; refused: boolean } | null = null;
  private lastLogged: string | null = null;
  private stopping = false;
  private conn: { state: MqttConnection; reason: string | null } = { state: 'connecting', reason: null };

  constructor(private readonly opts: MqttOutputOptions) {
    this.topics = meterTopics(opts.topicPrefix, opts.deviceAddress);
    this.planner = new StatePlanner(this.topics, opts.powerIntervalMs);
    this.haStatus = homeAssistantStatusTopic(opts.discoveryPrefix);
    this.client = connect(opts.url, {
      clientId: clientId(opts.deviceAddress),
      username: opts.username || undefined,
      password: opts.password || undefined,
      protocolVersion: 5,
      clean: true,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 0,
      queueQoSZero: false,
      // The broker publishes this when the connection dies without a DISCONNECT (kill -9,
      // power cut, network loss): Home Assistant then shows every entity unavailable.
      will: { topic: this.topics.availability, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    this.client.on('connect', () => this.onConnect());
    this.client.on('error', (err) => this.onError(err));
    this.client.on('close', () => this.onClose());
    this.client.on('message', (topic, payload) => {
      if (topic === this.haStatus && payload.toString() === 'online') this.sendAll();
    });
  }

  /** Connection state and failed attempts in a row, for logs and tests. */
  connection(): { state: MqttConnection; reason: string | null; failures: number } {
    return { ...this.conn, failures: this.failures };
  }

  onState(state: MeterState): void {
    this.latest = state;
    if (this.client.connected) this.send(this.planner.next(state, Date.now()));
  }

  onReading(body: string): void {
    if (this.opts.readings && this.client.connected) this.client.publish(this.topics.reading, body, { qos: 1, retain: false }, () => {});
  }

  /** Says `offline` (a clean stop is not a death: no last will) and disconnects, within ~1 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const bounded = <T>(p: Promise<T>, ms: number): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, ms).unref())]);
    if (this.client.connected)
      await bounded(this.client.publishAsync(this.topics.availability, 'offline', { qos: 1, retain: true }), 500).catch(() => {});
    await bounded(this.client.endAsync(), 500).catch(() => {});
    this.client.end(true);
  }

  private onConnect(): void {
    this.failures = 0;
    this.problem = null;
    this.conn = { state: 'connected', reason: null };
    this.say(
      `mqtt connected to ${safeBroker(this.opts.url)} topics=${this.topics.availability.replace(/\/availability$/, '')}/# discovery=${this.opts.discoveryPrefix}`,
    );
    this.client.publish(this.topics.availability, 'online', { qos: 1, retain: true }, () => {});
    for (const m of discoveryMessages(this.opts.discoveryPrefix, this.opts.topicPrefix, this.opts))
      this.client.publish(m.topic, JSON.stringify(m.config), { qos: 1, retain: true }, () => {});
    this.client.subscribe(this.haStatus, { qos: 0 }, () => {});
    this.sendAll();
  }

  private sendAll(): void {
    if (this.latest && this.client.connected) this.send(this.planner.all(this.latest, Date.now()));
  }

  private send(messages: OutMessage[]): void {
    for (const m of messages) this.client.publish(m.topic, m.payload, { qos: 0, retain: true }, () => {});
  }

  private onError(err: Error): void {
    const code = (err as ErrorWithReasonCode).code;
    const refused = typeof code === 'number' && LOGIN_REFUSED.has(code);
    this.problem = {
      text: refused
        ? `the broker refused the login (${err.message.replace(/^Connection refused: /, '')}, reason code ${code})`
        : typeof code === 'string'
          ? code
          : err.message,
      refused,
    };
  }

  private onClose(): void {
    if (this.stopping || this.retryTimer) return;
    const min = this.opts.retryMinMs ?? 1000;
    const max = this.opts.retryMaxMs ?? 60_000;
    const refused = this.problem?.refused ?? false;
    const delayMs = refused ? max : Math.min(max, min * 2 ** Math.min(this.failures, 16));
    this.failures++;
    const reason = this.problem?.text ?? 'connection closed';
    this.conn = { state: refused ? 'refused' : 'retrying', reason };
    const fix = refused
      ? "check POWER_METER_MQTT_USER and POWER_METER_MQTT_PASSWORD in /etc/power-meter/power-meter.env (or the broker's password file), then restart power-meter"
      : 'check that the broker runs and --mqtt-url';
    // One line per outage (and per change to or from a refused login), not per attempt: a
    // broker down for a day must not fill the journal.
    const cap = max >= 1000 ? `${Math.round(max / 1000)} s` : `${max} ms`;
    this.say(
      `mqtt ${this.conn.state}: ${safeBroker(this.opts.url)}: ${reason}; ${fix}; ${refused ? `retrying every ${cap}` : `retrying with a growing delay (at most ${cap})`}; measurement and W3bstream delivery are not affected`,
      this.conn.state,
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.problem = null;
      if (!this.stopping) this.client.reconnect();
    }, delayMs);
  }

  private say(line: string, key: string = line): void {
    if (key === this.lastLogged) return;
    this.lastLogged = key;
    this.opts.log(line);
  }
}

/** Scheme, host and port only. */
export function safeBroker(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.hostname}:${u.port || (u.protocol === 'mqtts:' ? 8883 : 1883)}`;
}
