import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { logLevelName } from './abi/codes.js';
import { type V1AppletResult, v1AnswerHead, v1AppletResult, v1EventAnswer, v1EventPath } from './v1-event-route.js';
import { type ProjectIdentity, routeEvent } from './answer.js';
import { ChainMonitors, CronJobs, type MonitorSource } from './monitor/monitors.js';
import { chainFor, type ProjectConfig, strategiesFor, validateProject } from './project/config.js';
import { databaseDdl, schemasOf } from './project/schema.js';
import { ProjectServices } from './project/services.js';
import { ProjectDatabase } from './sql/database.js';
import { emptyDatabaseTemplate } from './sql/template.js';
import { AppletRunner, type LogLine } from './vm/runner.js';

export interface HostLogLine extends LogLine {
  handler: string;
  atMs: number;
}

export interface AppletHostOptions {
  /** Listen address: loopback by default (a development tool). */
  host?: string;
  /** 0 (default) = a free port. */
  port?: number;
  /** Directory for the project database (PGlite); default in memory. */
  dataDir?: string;
  /** The node's 5 s. */
  timeoutMs?: number;
  /** VM threads kept warm per applet (default 4; more start while all are busy). */
  vmThreads?: number;
  /** How often the monitors run when `watchChain` is on (the node: every 3 s). */
  chainPollMs?: number;
  /** Run the chain monitors and cron jobs on their own (tests call syncChain() / fireCron() instead). */
  watchChain?: boolean;
  /** ws_api_call's send_tx state check (the node: 10 s). */
  apiStateCheckMs?: number;
  log?: (line: string) => void;
  /** Every handled event with its results (null: no strategy), e.g. for a demo's output. */
  onEvent?: (event: HandledEvent) => void;
}

export interface HandledEvent {
  source: 'http' | 'chain' | MonitorSource | 'api';
  eventType: string;
  /** The route's eventID; null for monitors, cron and API answers. */
  eventId: string | null;
  results: V1AppletResult[] | null;
}

/**
 * A local W3bstream v1 project: the event route (`/srv-applet-mgr/v0/event/<project>`) in front
 * of the project's applets on the node's host ABI, its Postgres database, its chains, its
 * monitors and cron jobs. Events from HTTP, monitors, cron and API answers go through the same
 * strategies.
 */
export class AppletHost {
  readonly logs: HostLogLine[] = [];
  private server: http.Server | null = null;
  private readonly identity: ProjectIdentity;
  url = '';

  private constructor(
    readonly project: ProjectConfig,
    readonly db: ProjectDatabase,
    readonly services: ProjectServices,
    private readonly runners: Map<string, AppletRunner>,
    readonly monitors: ChainMonitors,
    readonly cron: CronJobs,
    private readonly opts: AppletHostOptions,
  ) {
    this.identity = { name: project.name, publisherToken: project.publisherToken, publisherId: '1', publisherKey: 'local' };
  }

  static async start(project: ProjectConfig, opts: AppletHostOptions = {}): Promise<AppletHost> {
    validateProject(project);
    const wasms = project.applets.map((a) => {
      try {
        return new Uint8Array(readFileSync(a.wasmFile));
      } catch (err) {
        throw new Error(`applet ${a.appletName}: ${a.wasmFile} cannot be read: ${(err as Error).message}`);
      }
    });
    let host: AppletHost | undefined;
    const log = (line: LogLine, handler: string): void => host?.record(line, handler);
    const db = await ProjectDatabase.start({
      dataDir: opts.dataDir,
      template: opts.dataDir ? undefined : emptyDatabaseTemplate(),
      ddl: databaseDdl(project.database ?? {}),
      schemas: schemasOf(project.database).map((s) => s.schema!),
      databaseName: `w3b_${project.name}`,
    });
    const services = new ProjectServices(project, db, {
      log: (level, message) => log({ level, src: 'host', message }, ''),
      deliver: (eventType, payload) => void host?.dispatch('api', eventType, payload),
      apiStateCheckMs: opts.apiStateCheckMs,
    });
    const runners = new Map<string, AppletRunner>();
    project.applets.forEach((a, i) => {
      runners.set(
        a.appletName,
        new AppletRunner({
          wasm: wasms[i]!,
          services: services.handle,
          timeoutMs: opts.timeoutMs,
          threads: opts.vmThreads,
          onLog: log,
          linkDb: () => db.link(),
        }),
      );
    });
    const deliver = async (source: MonitorSource, eventType: string, payload: string) =>
      (await host?.dispatch(source, eventType, new TextEncoder().encode(payload))) ?? null;
    const endpointFor = (id?: number, name?: string): string | undefined => chainFor(project, id, name)?.endpoint;
    const monitors = new ChainMonitors(project.contractLogs ?? [], project.chainTxs ?? [], project.chainHeights ?? [], {
      endpointFor,
      deliver,
      log: (m) => log({ level: 2, src: 'host', message: m }, ''),
    });
    const cron = new CronJobs(project.cronJobs ?? [], deliver, (m) => log({ level: 2, src: 'host', message: m }, ''));
    host = new AppletHost(project, db, services, runners, monitors, cron, opts);
    try {
      for (const [name, r] of runners)
        await r.start().catch((err: Error) => {
          throw new Error(`applet ${name}: ${err.message}`);
        });
      await host.listen();
    } catch (err) {
      await Promise.all([...runners.values()].map((r) => r.close()));
      await db.close();
      throw err;
    }
    if (opts.watchChain) {
      monitors.start(opts.chainPollMs ?? 3_000);
      cron.start();
    }
    return host;
  }

  /**
   * Runs every strategy of `eventType` on `payload`, each on its applet, side by side as the node
   * runs them; results in the project's order. null when no strategy matched.
   */
  async handleEvent(eventType: string, payload: Uint8Array): Promise<V1AppletResult[] | null> {
    const strategies = strategiesFor(this.project, eventType);
    if (strategies.length === 0) return null;
    return Promise.all(
      strategies.map(async (s) => {
        const r = await this.runners.get(s.applet.appletName)!.run(s.handler, payload, eventType);
        return v1AppletResult(s.applet.appletName, s.instanceId, s.handler, r.code, r.error);
      }),
    );
  }

  /** One round of every chain monitor, now (tests and tools use it instead of waiting). */
  syncChain(): Promise<void> {
    return this.monitors.poll();
  }

  /** Runs cron job `index` now. */
  fireCron(index: number): Promise<void> {
    return this.cron.fire(index);
  }

  /** The VM threads' load per applet (events queued, running, threads). */
  load(): Record<string, AppletRunner['load']> {
    return Object.fromEntries([...this.runners].map(([k, r]) => [k, r.load]));
  }

  async close(): Promise<void> {
    this.monitors.stop();
    this.cron.stop();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
    await Promise.all([...this.runners.values()].map((r) => r.close()));
    await this.db.close();
  }

  private async dispatch(source: HandledEvent['source'], eventType: string, payload: Uint8Array): Promise<V1AppletResult[] | null> {
    const results = await this.handleEvent(eventType, payload);
    for (const r of results ?? []) this.opts.log?.(`${source} ${eventType} -> ${r.handler}: code ${r.code}${r.error ? ` ${r.error}` : ''}`);
    this.opts.onEvent?.({ source, eventType, eventId: null, results });
    return results;
  }

  private record(line: LogLine, handler: string): void {
    this.logs.push({ ...line, handler, atMs: Date.now() });
    this.opts.log?.(`${line.src} ${logLevelName(line.level)}${handler ? ` ${handler}` : ''}: ${line.message}`);
  }

  private async listen(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', () => undefined);
      req.on('end', () => {
        void this.answer(req, Buffer.concat(chunks)).then(({ status, body }) => {
          if (res.destroyed) return;
          res.writeHead(status, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(body));
        });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    const { port, address } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.url = `http://${host}:${port}${v1EventPath(this.project.name)}`;
  }

  private async answer(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; body: unknown }> {
    const routing = routeEvent(
      { method: req.method ?? 'GET', url: req.url ?? '/', authorization: req.headers.authorization },
      this.identity,
      Date.now(),
    );
    if (routing.kind === 'answer') return { status: routing.status, body: routing.body };
    const results = await this.handleEvent(routing.eventType, new Uint8Array(body));
    for (const r of results ?? [])
      this.opts.log?.(`http ${routing.eventType} ${routing.eventId} -> ${r.handler}: code ${r.code}${r.error ? ` ${r.error}` : ''}`);
    if (!results) this.opts.log?.(`http ${routing.eventType} ${routing.eventId}: no strategy (results: null)`);
    this.opts.onEvent?.({ source: 'http', eventType: routing.eventType, eventId: routing.eventId, results });
    return {
      status: 201,
      body: v1EventAnswer(v1AnswerHead(routing.channel, this.identity, routing.eventId, routing.timestampMs), results),
    };
  }
}
