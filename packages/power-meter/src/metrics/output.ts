import { statSync } from 'node:fs';
import http from 'node:http';
import { basename, dirname } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import { writeFileAtomicSync, type MeterState } from '@power-meter/meter-files';
import type { OutboxStats } from '@power-meter/w3bstream';
import type { MeterObserver } from '../observer.js';
import { FaultCounter, METRICS, type MetricsSnapshot, type Sample } from './metrics.js';

export interface MetricsOutputOptions {
  /** The live outbox counters (delivered, refused, sequence). */
  outboxStats: () => OutboxStats;
  /** outbox.sqlite: its size (with the WAL) is a metric. */
  outboxFile: string;
  /** node_exporter textfile (`*.prom`), or empty. */
  file: string;
  fileIntervalMs: number;
  /** Port on 127.0.0.1 for /metrics, or 0. */
  port: number;
  version: string;
  log: (line: string) => void;
}

/**
 * Prometheus metrics from the meter's states: a prom-client registry whose values are read from
 * the latest state at collection time, served on 127.0.0.1 only (the figures are the household's
 * consumption: nothing to show the network) and/or written as a node_exporter textfile. The file
 * is rewritten at most every `fileIntervalMs` (SD-card wear); put it on a tmpfs if you scrape often.
 */
export class MetricsOutput implements MeterObserver {
  readonly registry = new Registry();
  private latest: MeterState | null = null;
  private readonly faults = new FaultCounter();
  private server: http.Server | null = null;
  private lastFileMs = -Infinity;
  private writing = false;
  private fileError: string | null = null;

  private constructor(private readonly opts: MetricsOutputOptions) {
    for (const def of METRICS) {
      // prom-client keeps values; ours live in the state, so each collection refills them.
      const fill = (metric: { reset(): void; remove(...labels: string[]): void }, put: (s: Sample) => void): void => {
        const snap = this.snapshot();
        metric.reset();
        // reset() leaves a 0 in a metric without labels: an unknown value is no sample at all.
        if (def.labelNames.length === 0) metric.remove();
        if (snap) for (const s of def.samples(snap)) put(s);
      };
      const config = { name: def.name, help: def.help, labelNames: def.labelNames, registers: [this.registry] };
      if (def.type === 'counter')
        new Counter({
          ...config,
          collect(this: Counter) {
            fill(this, (s) => this.inc(s.labels, s.value));
          },
        });
      else
        new Gauge({
          ...config,
          collect(this: Gauge) {
            fill(this, (s) => this.set(s.labels, s.value));
          },
        });
    }
  }

  static async start(opts: MetricsOutputOptions): Promise<MetricsOutput> {
    const m = new MetricsOutput(opts);
    if (opts.port > 0) await m.listen();
    if (opts.file) opts.log(`metrics file=${opts.file} every ${Math.round(opts.fileIntervalMs / 1000)} s`);
    return m;
  }

  onState(state: MeterState): void {
    this.latest = state;
    this.faults.update(state);
    const now = Date.now();
    if (this.opts.file && !this.writing && now - this.lastFileMs >= this.opts.fileIntervalMs) {
      this.lastFileMs = now;
      void this.writeFile();
    }
  }

  /** The exposition text, or null before the first state (nothing true to say yet). */
  async text(): Promise<string | null> {
    return this.latest ? this.registry.metrics() : null;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private snapshot(): MetricsSnapshot | null {
    if (!this.latest) return null;
    return {
      state: this.latest,
      outbox: this.opts.outboxStats(),
      outboxBytes: fileSize(this.opts.outboxFile) + fileSize(`${this.opts.outboxFile}-wal`),
      sensorFaults: this.faults.sensorFaults,
      incompleteWindows: this.faults.incompleteWindows,
      version: this.opts.version,
    };
  }

  private async writeFile(): Promise<void> {
    this.writing = true;
    try {
      const text = await this.text();
      // -rw-r--r-- whatever the umask (the unit's UMask=0027 would give -rw-r-----): node_exporter
      // runs as another user and must read it.
      if (text !== null) writeFileAtomicSync(dirname(this.opts.file), basename(this.opts.file), text, { mode: 0o644, exactMode: true });
      this.fileError = null;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (msg !== this.fileError)
        this.opts.log(
          `metrics: cannot write ${this.opts.file} (${msg}): check that its directory exists and is writable by this user (the service may write only its data directory: add ReadWritePaths=<that directory> with sudo systemctl edit power-meter); measurement goes on`,
        );
      this.fileError = msg;
    } finally {
      this.writing = false;
    }
  }

  private listen(): Promise<void> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
        return;
      }
      this.text().then(
        (text) => {
          if (text === null) res.writeHead(503, { 'content-type': 'text/plain' }).end('no state yet\n');
          else res.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
        },
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`),
      );
    });
    return new Promise((resolve) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        // A taken port is a setting to change, not a reason to stop measuring.
        this.opts.log(
          `metrics: cannot listen on 127.0.0.1:${this.opts.port} (${err.code ?? err.message}): choose another --metrics-port; the endpoint is off, measurement goes on`,
        );
        resolve();
      });
      // Loopback only, on purpose: scrape it from a local Prometheus or an SSH tunnel.
      server.listen(this.opts.port, '127.0.0.1', () => {
        this.server = server;
        this.opts.log(`metrics listening url=http://127.0.0.1:${this.opts.port}/metrics`);
        resolve();
      });
    });
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
