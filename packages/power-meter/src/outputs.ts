import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Meter } from './meter.js';
import { sensorModel, type BackendSettings } from './settings.js';

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

/**
 * Starts the optional outputs the settings ask for and attaches them to the meter. Each is
 * loaded only when configured, so a meter without MQTT or metrics does not carry their
 * libraries in memory.
 */
export async function startOutputs(meter: Meter, s: BackendSettings, log: (line: string) => void): Promise<Outputs> {
  const stops: Array<() => Promise<void>> = [];
  const version = programVersion();
  if (s.mqttUrl) {
    const { MqttOutput, safeBroker } = await import('./mqtt/output.js');
    log(`mqtt broker=${safeBroker(s.mqttUrl)} login=${s.mqttUser ? 'set' : 'none'} readings=${s.mqttReadings}`);
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
      model: sensorModel(s),
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
