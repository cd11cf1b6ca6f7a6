/**
 * The project database's thread: PGlite (Postgres in WebAssembly) owned by one worker, so a
 * slow statement never holds the main thread (the event route, the time-outs, the monitors).
 * Requests run one at a time, like statements on one connection.
 */
import { PGlite, protocol } from '@electric-sql/pglite';
import { parentPort, workerData } from 'node:worker_threads';
import { AppletSql, type BackendMessage, type WireSerializer } from './engine.js';
import type { DbInit, DbReply, DbRequest } from './protocol.js';

const init = workerData as DbInit;
const port = parentPort!;

async function open(): Promise<PGlite> {
  const pg = init.template
    ? await PGlite.create({ dataDir: init.dataDir, loadDataDir: new Blob([init.template]) })
    : await PGlite.create(init.dataDir ? { dataDir: init.dataDir } : undefined);
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

async function handle(req: DbRequest): Promise<DbReply> {
  try {
    switch (req.op) {
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
