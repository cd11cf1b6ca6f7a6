import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { DbLink } from '../vm/protocol.js';
import type { DbInit, DbReply, DbRequest } from './protocol.js';
import type { MessagePort } from 'node:worker_threads';

// Like the VM thread, the database thread always runs from dist (Node 20 cannot run TypeScript).
const WORKER_FILE = fileURLToPath(new URL('../../dist/sql/db-worker.js', import.meta.url));

type Pending = { resolve: (r: DbReply) => void };
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/**
 * The project's Postgres database (PGlite on its own thread), as the host and its tests use it:
 * the applet path (`appletSql`, the node's semantics) and plain queries (`query`) for tools and
 * tests. Every call is asynchronous here; the VM thread waits for its answer synchronously.
 */
export class ProjectDatabase {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (r: DbReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      p.resolve(r);
    });
    const failAll = (why: string): void => {
      for (const [id, p] of this.pending) p.resolve({ id, ok: false, error: why });
      this.pending.clear();
    };
    worker.on('error', (err) => failAll(`the database thread failed: ${err.message}`));
    worker.on('exit', () => failAll('the database thread stopped'));
  }

  static async start(init: DbInit): Promise<ProjectDatabase> {
    if (!existsSync(WORKER_FILE)) throw new Error(`${WORKER_FILE} is missing: build the package first (npm run build)`);
    const worker = new Worker(WORKER_FILE, { workerData: init });
    const ready = await new Promise<DbReply>((resolve) => {
      worker.once('message', (r: DbReply) => resolve(r));
      worker.once('error', (err) => resolve({ id: 0, ok: false, error: err.message }));
      worker.once('exit', (code) => resolve({ id: 0, ok: false, error: `the database thread exited (${code})` }));
    });
    if (!ready.ok) {
      await worker.terminate();
      throw new Error(`the project database cannot start: ${ready.error}`);
    }
    return new ProjectDatabase(worker);
  }

  private call(req: WithoutId<DbRequest>, transfer: MessagePort[] = []): Promise<DbReply> {
    if (this.closed) return Promise.resolve({ id: 0, ok: false, error: 'the project database is closed' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.worker.postMessage({ ...req, id }, transfer);
    });
  }

  /**
   * A direct line for one VM thread: the thread posts its SQL on the returned port and sleeps on
   * `signal`; the database thread answers on the port and wakes it. `run` holds the run the
   * thread serves, so requests of a run stopped at its time-out are refused.
   */
  link(): DbLink {
    const channel = new MessageChannel();
    const link: DbLink = { port: channel.port1, signal: new SharedArrayBuffer(4), run: new SharedArrayBuffer(4) };
    void this.call({ op: 'attach', port: channel.port2, signal: link.signal, run: link.run }, [channel.port2]);
    return link;
  }

  /** ws_get_sql_db (query) and ws_set_sql_db (exec) with the node's semantics. */
  appletSql(query: Uint8Array, mode: 'query' | 'exec'): Promise<DbReply> {
    return this.call({ op: 'applet', query, mode });
  }

  /** A plain query (tools, tests): rows as objects; throws with Postgres' message. */
  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const r = await this.call({ op: 'query', sql, params });
    if (!r.ok) throw new Error(r.error);
    return (r.rows ?? []) as T[];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.call({ op: 'close' });
    this.closed = true;
    await this.worker.terminate();
  }
}
