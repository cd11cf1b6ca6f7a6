import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { logLevelName } from './abi/codes.js';
import { type V1AppletResult, v1AnswerHead, v1AppletResult, v1EventAnswer, v1EventPath } from '@power-meter/w3bstream';
import { type ProjectIdentity, routeEvent } from './answer.js';
import { ContractLogWatcher } from './chain/logs.js';
import { type ProjectConfig, strategiesFor, validateProject } from './project/config.js';
import { ProjectServices } from './project/services.js';
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
  /** SQLite file for the project database and key/value store (default: in memory). */
  databaseFile?: string;
  /** The node's 5 s. */
  timeoutMs?: number;
  /** How often contract logs are polled when `watchChain` is on (the node: every 3 s). */
  chainPollMs?: number;
  watchChain?: boolean;
  log?: (line: string) => void;
  /** Every handled event with its results (null: no strategy), e.g. for a demo's output. */
  onEvent?: (event: HandledEvent) => void;
}

export interface HandledEvent {
  source: 'http' | 'chain';
  eventType: string;
  /** The route's eventID; null for contract logs. */
  eventId: string | null;
  results: V1AppletResult[] | null;
}

/**
 * A local W3bstream v1 project: the event route (`/srv-applet-mgr/v0/event/<project>`) in front
 * of one applet running on the node's host ABI, its database, its chains, and its contract-log
 * strategies. Events from HTTP and from contract logs go through the same strategies.
 */
export class AppletHost {
  readonly logs: HostLogLine[] = [];
  private server: http.Server | null = null;
  private readonly identity: ProjectIdentity;
  private readonly instanceId = '1';
  url = '';

  private constructor(
    readonly project: ProjectConfig,
    readonly services: ProjectServices,
    private readonly runner: AppletRunner,
    readonly watcher: ContractLogWatcher,
    private readonly opts: AppletHostOptions,
  ) {
    this.identity = { name: project.name, publisherToken: project.publisherToken, publisherId: '1', publisherKey: 'local' };
  }

  static async start(project: ProjectConfig, opts: AppletHostOptions = {}): Promise<AppletHost> {
    validateProject(project);
    const wasm = new Uint8Array(readFileSync(project.wasmFile));
    let host: AppletHost | undefined;
    const services = new ProjectServices(project, {
      databaseFile: opts.databaseFile,
      log: (level, message) => host?.record({ level, src: 'host', message }, ''),
    });
    const runner = new AppletRunner({
      wasm,
      services: services.handle,
      timeoutMs: opts.timeoutMs,
      onLog: (line, handler) => host?.record(line, handler),
    });
    const watcher = new ContractLogWatcher(project.contractLogs ?? [], {
      rpcUrlFor: (id) => project.chains?.[String(id)]?.rpcUrl ?? '',
      deliver: async (eventType, payload) => {
        const results = await host!.handleEvent(eventType, new TextEncoder().encode(payload));
        for (const r of results ?? []) opts.log?.(`contract log -> ${r.handler}: code ${r.code}${r.error ? ` ${r.error}` : ''}`);
        opts.onEvent?.({ source: 'chain', eventType, eventId: null, results });
      },
      log: (m) => opts.log?.(m),
    });
    host = new AppletHost(project, services, runner, watcher, opts);
    try {
      await runner.start();
      await host.listen();
    } catch (err) {
      await runner.close();
      services.close();
      throw err;
    }
    if (opts.watchChain) watcher.start(opts.chainPollMs ?? 1_000);
    return host;
  }

  /** Runs every strategy of `eventType` on `payload`; null when none matched. */
  async handleEvent(eventType: string, payload: Uint8Array): Promise<V1AppletResult[] | null> {
    const strategies = strategiesFor(this.project, eventType);
    if (strategies.length === 0) return null;
    const results: V1AppletResult[] = [];
    for (const s of strategies) {
      const r = await this.runner.run(s.handler, payload);
      results.push(v1AppletResult(this.project.appletName, this.instanceId, s.handler, r.code, r.error));
    }
    return results;
  }

  /** One round of the contract-log monitor, now (tests and tools use it instead of waiting). */
  syncChain(): Promise<void> {
    return this.watcher.poll();
  }

  async close(): Promise<void> {
    this.watcher.stop();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
    await this.runner.close();
    this.services.close();
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
    this.opts.onEvent?.({ source: 'http', eventType: routing.eventType, eventId: routing.eventId, results });
    return {
      status: 201,
      body: v1EventAnswer(v1AnswerHead(routing.channel, this.identity, routing.eventId, routing.timestampMs), results),
    };
  }
}
