import type { MqttClient } from 'mqtt';
import type { MeterState } from '@power-meter/meter-files';
import type { MeterObserver } from '../observer.js';
import { MAX_INCOMING_PACKET_BYTES, type MqttTls, createMqttClient, isProtocolRefusal, useMqtt311 } from './connection.js';
import { discoveryMessages, type DeviceInfo, type DiscoveryOptions } from './discovery.js';
import { describeMqttError, type MqttProblem } from './problems.js';
import { StatePlanner, type OutMessage } from './payloads.js';
import { clientId, homeAssistantStatusTopic, meterTopics, type MeterTopics } from './topics.js';

export interface MqttOutputOptions extends DeviceInfo, DiscoveryOptions {
  url: string;
  /** CA, client certificate and key for mqtts:// (PEM contents). */
  tls?: MqttTls;
  /** Largest incoming packet, bytes (tests); default MAX_INCOMING_PACKET_BYTES. */
  maxPacketBytes?: number;
  /** When the program started, Unix ms (Home Assistant's "Last restart"); default: this process's start. */
  startedAtMs?: number;
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

/**
 * `refused`: the broker refused the login; `certificate`: TLS failed on a certificate (the
 * broker's is not trusted, expired or for another name, or the broker refused the meter's). Both
 * are retried at the longest delay: only a setting can fix them.
 */
export type MqttConnection = 'connecting' | 'connected' | 'retrying' | 'refused' | 'certificate';

/** How each state starts its log line. */
const STATE_WORDS: Record<MqttConnection, string> = {
  connecting: 'connecting',
  connected: 'connected',
  retrying: 'retrying',
  refused: 'refused',
  certificate: 'certificate problem',
};

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
  private problem: MqttProblem | null = null;
  private droppedLogged = false;
  /** The broker refused MQTT 5: reconnect at once with 3.1.1, not after the backoff. */
  private retryNow = false;
  private lastLogged: string | null = null;
  private stopping = false;
  private conn: { state: MqttConnection; reason: string | null } = { state: 'connecting', reason: null };

  constructor(private readonly opts: MqttOutputOptions) {
    this.topics = meterTopics(opts.topicPrefix, opts.deviceAddress);
    this.planner = new StatePlanner(
      this.topics,
      opts.powerIntervalMs,
      opts.startedAtMs ?? Math.round(Date.now() - process.uptime() * 1000),
    );
    this.haStatus = homeAssistantStatusTopic(opts.discoveryPrefix);
    this.client = createMqttClient({
      url: opts.url,
      tls: opts.tls,
      maxPacketBytes: opts.maxPacketBytes,
      onDrop: (p) => this.onDrop(p.bytes),
      client: {
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
      },
    });
    this.client.on('connect', () => this.onConnect());
    this.client.on('error', (err) => this.onError(err));
    this.client.on('close', () => this.onClose());
    this.client.on('message', (topic, payload) => {
      // Home Assistant (re)started: it may have lost the configs (a broker without persistence,
      // a deleted device), so they go out again with every state, as on a reconnect.
      if (topic === this.haStatus && payload.toString() === 'online') {
        this.sendDiscovery();
        this.sendAll();
      }
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
    this.sendDiscovery();
    // QoS 0 on purpose: every message the meter can receive is then QoS 0, which the packet
    // guard (packet-guard.ts) may skip without breaking the session.
    this.client.subscribe(this.haStatus, { qos: 0 }, () => {});
    this.sendAll();
  }

  private sendDiscovery(): void {
    if (!this.client.connected) return;
    for (const m of discoveryMessages(this.opts.discoveryPrefix, this.opts.topicPrefix, this.opts, this.opts))
      this.client.publish(m.topic, JSON.stringify(m.config), { qos: 1, retain: true }, () => {});
  }

  /** An incoming message over the size limit was skipped unread: said once per process. */
  private onDrop(bytes: number): void {
    if (this.droppedLogged) return;
    this.droppedLogged = true;
    this.opts.log(
      `mqtt: ignored a ${bytes}-byte message from the broker (over the ${this.opts.maxPacketBytes ?? MAX_INCOMING_PACKET_BYTES}-byte limit; something published it on ${this.haStatus}?); later ones are ignored silently`,
    );
  }

  private sendAll(): void {
    if (this.latest && this.client.connected) this.send(this.planner.all(this.latest, Date.now()));
  }

  private send(messages: OutMessage[]): void {
    for (const m of messages) this.client.publish(m.topic, m.payload, { qos: 0, retain: true }, () => {});
  }

  private onError(err: Error): void {
    if (this.client.options.protocolVersion === 5 && isProtocolRefusal(err)) {
      // An MQTT 3.1.1 broker: try again at once in its protocol, and say so once.
      useMqtt311(this.client);
      this.opts.log(
        `mqtt: ${safeBroker(this.opts.url)} speaks only MQTT 3.1.1 (${err.message}): connecting with MQTT 3.1.1 (no Maximum Packet Size to advertise: messages over ${this.opts.maxPacketBytes ?? MAX_INCOMING_PACKET_BYTES} bytes are skipped by the meter)`,
      );
      this.problem = { kind: 'network', text: 'MQTT 3.1.1 broker', fix: '', lasting: false };
      this.retryNow = true;
      return;
    }
    this.problem = describeMqttError(err);
  }

  private onClose(): void {
    if (this.stopping || this.retryTimer) return;
    if (this.retryNow) {
      this.retryNow = false;
      this.problem = null;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (!this.stopping) this.client.reconnect();
      }, 0);
      return;
    }
    const min = this.opts.retryMinMs ?? 1000;
    const max = this.opts.retryMaxMs ?? 60_000;
    const lasting = this.problem?.lasting ?? false;
    const delayMs = lasting ? max : Math.min(max, min * 2 ** Math.min(this.failures, 16));
    this.failures++;
    const reason = this.problem?.text ?? 'connection closed';
    const kind = this.problem?.kind;
    this.conn = {
      state: kind === 'login' ? 'refused' : kind === 'certificate' || kind === 'client-certificate' ? 'certificate' : 'retrying',
      reason,
    };
    const fix = this.problem?.fix ?? 'check that the broker runs and --mqtt-url';
    // One line per outage (and per change of state), not per attempt: a broker down
    // for a day must not fill the journal.
    const cap = max >= 1000 ? `${Math.round(max / 1000)} s` : `${max} ms`;
    this.say(
      `mqtt ${STATE_WORDS[this.conn.state]}: ${safeBroker(this.opts.url)}: ${reason}; ${fix}; ${lasting ? `retrying every ${cap}` : `retrying with a growing delay (at most ${cap})`}; measurement and W3bstream delivery are not affected`,
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
