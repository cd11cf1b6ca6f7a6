import type { MeterState } from '@power-meter/meter-files';

/**
 * An output beside the data directory (MQTT, Prometheus metrics). The meter tells it about every
 * state it writes and every reading it signs; the output does its own I/O in the background.
 * Both calls are synchronous and must return at once: a slow or broken output must never delay
 * or stop measurement, the outbox or W3bstream delivery.
 */
export interface MeterObserver {
  /** The state just written to state.json (a new window, live power, publishing or sensor change). */
  onState?(state: MeterState): void;
  /** A signed reading body, after it is stored in the outbox. */
  onReading?(body: string): void;
}

/** Calls every observer; an exception in one is logged and never reaches the meter. */
export function notifyObservers(observers: readonly MeterObserver[], call: (o: MeterObserver) => void, log: (line: string) => void): void {
  for (const o of observers) {
    try {
      call(o);
    } catch (err) {
      log(`output error (ignored, measurement goes on): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
