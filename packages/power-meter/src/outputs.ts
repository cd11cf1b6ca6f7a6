import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Meter } from './meter.js';
import type { MqttTls } from './mqtt/connection.js';
import { sensorHardware } from './sensor-info.js';
import type { BackendSettings } from './settings.js';

/** The program's version, for Home Assistant's device block and the metrics. */
export function programVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface Outputs {
  stop(): Promise<void>;
}

/** What the outputs read from files, read before the meter starts (see readOutputFiles). */
export interface OutputFiles {
  mqttTls?: MqttTls;
}

/**
 * The files the outputs need (the MQTT CA, client certificate and key), read and checked before
 * anything starts: a bad one throws MqttTlsFileError, which the program reports as an invalid
 * setting (exit 2). Loads nothing when MQTT is off.
 */
export async function readOutputFiles(s: BackendSettings): Promise<OutputFiles> {
  if (!s.mqttUrl || (!s.mqttCa && !s.mqttCert && !s.mqttKey)) return {};
  const { readMqttTls } = await import('./mqtt/tls-files.js');
  return { mqttTls: readMqttTls(s) };
}

/**
 * Starts the optional outputs the settings ask for and attaches them to the meter. Each is
 * loaded only when configured, so a meter without MQTT or metrics does not carry their
 * libraries in memory.
 */
export async function startOutputs(
  meter: Meter,
  s: BackendSettings,
  log: (line: string) => void,
  files: OutputFiles = {},
): Promise<Outputs> {
  const stops: Array<() => Promise<void>> = [];
  const version = programVersion();
  if (s.mqttUrl) {
    const { MqttOutput, safeBroker } = await import('./mqtt/output.js');
    const { liveExpireAfterS } = await import('./mqtt/discovery.js');
    log(
      `mqtt broker=${safeBroker(s.mqttUrl)} login=${s.mqttUser ? 'set' : 'none'} readings=${s.mqttReadings}${s.mqttCa ? ` ca=${s.mqttCa}` : ''}${s.mqttCert ? ` client_cert=${s.mqttCert}` : ''}`,
    );
    const hardware = sensorHardware(s);
    const retryMaxMs = process.env.POWER_METER_MQTT_RETRY_MAX_MS; // test hook: shorter backoff
    const mqtt = new MqttOutput({
      url: s.mqttUrl,
      username: s.mqttUser,
      password: s.mqttPassword,
      topicPrefix: s.mqttTopicPrefix,
      discoveryPrefix: s.mqttDiscoveryPrefix,
      powerIntervalMs: s.mqttPowerIntervalMs,
      readings: s.mqttReadings,
      deviceAddress: meter.identity.deviceId,
      version,
      model: hardware.model,
      hwVersion: hardware.hwVersion,
      suggestedArea: s.mqttArea,
      liveExpireAfterS: liveExpireAfterS(s.mqttPowerIntervalMs),
      balance: s.rpcUrl !== '',
      tls: files.mqttTls,
      log,
      retryMinMs: retryMaxMs ? Math.min(1000, Number(retryMaxMs)) : undefined,
      retryMaxMs: retryMaxMs ? Number(retryMaxMs) : undefined,
    });
    meter.observe(mqtt);
    stops.push(() => mqtt.stop());
  }
  if (s.metricsFile || s.metricsPort > 0) {
    const { MetricsOutput } = await import('./metrics/output.js');
    const metrics = await MetricsOutput.start({
      outboxStats: () => meter.outbox.stats(),
      outboxFile: join(s.dataDir, 'outbox', 'outbox.sqlite'),
      file: s.metricsFile,
      fileIntervalMs: s.metricsFileIntervalS * 1000,
      port: s.metricsPort,
      version,
      log,
    });
    meter.observe(metrics);
    stops.push(() => metrics.stop());
  }
  return { stop: async () => void (await Promise.all(stops.map((f) => f().catch(() => {})))) };
}
