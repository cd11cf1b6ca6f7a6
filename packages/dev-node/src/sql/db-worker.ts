/**
 * The project database's thread: PGlite (Postgres in WebAssembly) owned by one worker, so a
 * slow statement never holds the main thread (the event route, the time-outs, the monitors).
 * Requests run one at a time, like statements on one connection.
 */
import { PGlite, protocol } from '@electric-sql/pglite';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { AppletSql, type BackendMessage, type WireSerializer } from './engine.js';
import type { DbLinkReply, DbLinkRequest } from '../vm/protocol.js';
import type { DbInit, DbReply, DbRequest } from './protocol.js';

const init = workerData as DbInit;
const port = parentPort!;

// A development host needs no 128 MB buffer cache (Postgres' default): ~90 MB less resident
// memory per host, the same answers.
const postgresqlconf = ['shared_buffers = 32MB'];

async function open(): Promise<PGlite> {
  const pg = init.template
    ? await PGlite.create({ dataDir: init.dataDir, loadDataDir: new Blob([init.template]), postgresqlconf })
    : await PGlite.create({ ...(init.dataDir ? { dataDir: init.dataDir } : {}), postgresqlconf });
  for (const statement of init.ddl) await pg.exec(statement);
  return pg;
}

let pg: PGlite;
try {
  pg = await open();
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: (err as Error).message } satisfies DbReply);
  process.exit(1);
}

const engine = new AppletSql(
  async (message) => (await pg.execProtocol(message, { throwOnError: false })).messages as unknown as BackendMessage[],
  protocol.serialize as unknown as WireSerializer,
  init.schemas,
  init.databaseName,
);

/** A VM thread's own line: its requests join the same queue; the answer wakes that thread. */
function attach(port: MessagePort, signal: SharedArrayBuffer, run: SharedArrayBuffer): void {
  const flag = new Int32Array(signal);
  const current = new Int32Array(run);
  port.on('message', (req: DbLinkRequest) => {
    queue = queue.then(async () => {
      let reply: DbLinkReply;
      if (Atomics.load(current, 0) !== req.runId) reply = { code: -1, error: 'the event was stopped (time-out): its SQL is refused' };
      else
        try {
          const r = await engine.run(req.query, req.mode);
          reply = {
            code: r.ok ? 0 : -1,
            data: r.ok && req.mode === 'query' ? (r.data ?? new Uint8Array(0)) : undefined,
            error: r.error,
            notes: r.notes,
          };
        } catch (err) {
          reply = { code: -1, error: (err as Error).message };
        }
      port.postMessage(reply);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    });
  });
  port.on('close', () => port.removeAllListeners());
}

async function handle(req: DbRequest): Promise<DbReply> {
  try {
    switch (req.op) {
      case 'attach':
        attach(req.port, req.signal, req.run);
        return { id: req.id, ok: true };
      case 'applet': {
        const r = await engine.run(req.query, req.mode);
        return { id: req.id, ok: r.ok, data: r.data, error: r.error, notes: r.notes };
      }
      case 'query': {
        const r = await pg.query(req.sql, req.params ?? []);
        return { id: req.id, ok: true, rows: r.rows as Record<string, unknown>[] };
      }
      case 'close':
        await pg.close();
        return { id: req.id, ok: true };
    }
  } catch (err) {
    return { id: req.id, ok: false, error: (err as Error).message };
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (req: DbRequest) => {
  queue = queue.then(async () => port.postMessage(await handle(req)));
});
port.postMessage({ id: 0, ok: true } satisfies DbReply);
