import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppletHost, AppletRunner, appletWasmFile, ensureArtifacts, type HostReply, type ProjectConfig } from '../src/index.js';
import { publish, TOKEN } from './helpers.js';
import { readFileSync } from 'node:fs';
import { receiveMessageOnPort } from 'node:worker_threads';

// Item 5 of issue 22: a looping or allocating handler holds only its own VM thread, for at most
// the time-out; an event answered `wait timeout` never runs afterwards.
const TIMEOUT_MS = 1500;
let host: AppletHost;

function project(): ProjectConfig {
  const handlers = ['spin', 'grow', 'mark', 'mark_then_spin', 'sql_exec_raw'];
  return {
    name: 'timeouts',
    publisherToken: TOKEN,
    applets: [
      { appletName: 'sql-probe', wasmFile: appletWasmFile('sql-probe'), strategies: handlers.map((h) => ({ eventType: h, handler: h })) },
    ],
    database: {
      schemas: [
        {
          tables: [
            {
              name: 'marks',
              cols: [
                { name: 'id', constrains: { datatype: 'INT64', autoincrement: true } },
                { name: 'label', constrains: { datatype: 'TEXT' } },
              ],
            },
          ],
        },
      ],
    },
  };
}

beforeAll(async () => {
  ensureArtifacts();
  // Eight threads ready: the normal event below needs no thread started for it on a loaded machine.
  host = await AppletHost.start(project(), { timeoutMs: TIMEOUT_MS, vmThreads: 8 });
}, 300_000);
afterAll(async () => host?.close());

const marks = async () => (await host.db.query<{ label: string }>('SELECT label FROM marks ORDER BY id')).map((r) => r.label);

describe('time-outs that protect the rest', () => {
  it('four looping handlers and one allocating handler do not hold up a fifth event: it is answered at once', async () => {
    const order: string[] = [];
    const track = (name: string, p: ReturnType<typeof publish>) =>
      p.then((a) => {
        order.push(name);
        return a;
      });
    const loops = [1, 2, 3, 4].map((i) => track(`spin${i}`, publish(host, 'spin', `loop ${i}`)));
    const grow = track('grow', publish(host, 'grow', 'alloc'));
    const normal = await track('mark', publish(host, 'mark', 'normal'));
    expect(normal.body.results?.[0]).toMatchObject({ handler: 'mark', code: 0 });
    expect(order[0]).toBe('mark'); // answered while all five were still running
    for (const a of await Promise.all([...loops, grow])) expect(a.body.results?.[0]).toMatchObject({ code: -1, error: 'wait timeout' });
    expect(await marks()).toContain('normal');
    // The threads stopped at the time-out were replaced: the host still answers.
    expect((await publish(host, 'mark', 'after')).body.results?.[0]).toMatchObject({ code: 0 });
  }, 60_000);

  it('a handler stopped at the time-out does nothing afterwards', async () => {
    const a = await publish(host, 'mark_then_spin', 'stopped');
    expect(a.body.results?.[0]).toMatchObject({ code: -1, error: 'wait timeout' });
    expect(await marks()).toContain('stopped'); // it ran until it was stopped …
    const load = host.load()['sql-probe']!;
    expect(load.running).toBe(0); // … and is not running any more
  }, 60_000);
});

describe('an event answered wait timeout while its SQL waits for the database', () => {
  it('has that SQL refused when the database gets to it: the statement never runs', async () => {
    // One event holds the database thread longer than the time-out (Postgres cannot be interrupted
    // there); a second event's INSERT waits behind it, and the second event times out meanwhile.
    const slow = publish(host, 'sql_exec_raw', JSON.stringify({ statement: 'SELECT pg_sleep(3)', params: [] }));
    await new Promise((r) => setTimeout(r, 200));
    const late = await publish(host, 'mark', 'behind the slow statement');
    expect(late.body.results?.[0]).toMatchObject({ code: -1, error: 'wait timeout' });
    expect((await slow).body.results?.[0]).toMatchObject({ code: -1, error: 'wait timeout' });
    // This query queues behind both on the database thread: by its answer the INSERT was refused.
    expect(await marks()).not.toContain('behind the slow statement');
  }, 60_000);

  it('the database thread serves a VM thread’s line only for the run that thread is on now', async () => {
    const link = host.db.link();
    const run = new Int32Array(link.run);
    const flag = new Int32Array(link.signal);
    // As the VM thread does: post, sleep on the flag until the database thread wakes it, take the answer.
    const waitAsync = (
      Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }
    ).waitAsync;
    const ask = async (runId: number, label: string) => {
      Atomics.store(flag, 0, 0);
      const query = new TextEncoder().encode(
        JSON.stringify({ statement: 'INSERT INTO marks (label) VALUES ($1)', params: [{ string: label }] }),
      );
      link.port.postMessage({ runId, mode: 'exec', query });
      const woken = waitAsync(flag, 0, 0);
      if (woken.async) await woken.value;
      return receiveMessageOnPort(link.port)?.message as { code: number; error?: string };
    };
    Atomics.store(run, 0, 7);
    expect(await ask(7, 'run 7')).toMatchObject({ code: 0 });
    Atomics.store(run, 0, 0); // run 7 stopped
    expect(await ask(7, 'run 7 again')).toMatchObject({ code: -1, error: expect.stringContaining('refused') });
    expect(await marks()).toContain('run 7');
    expect(await marks()).not.toContain('run 7 again');
    link.port.close();
  });
});

describe('an event answered wait timeout while it waits for a thread', () => {
  it('is dropped: it never runs, even once a thread is free', async () => {
    const calls: string[] = [];
    const runner = new AppletRunner({
      wasm: new Uint8Array(readFileSync(appletWasmFile('sql-probe'))),
      threads: 1,
      maxThreads: 1,
      timeoutMs: 3000,
      services: (req, run): HostReply => {
        calls.push(`${run.handler}:${req.op}`);
        return { code: 0, data: new TextEncoder().encode(req.op === 'sqlExec' ? '' : 'x') };
      },
    });
    await runner.start();
    try {
      const busy = runner.run('spin', new TextEncoder().encode('busy'), 'spin');
      const queued = await runner.run('mark', new TextEncoder().encode('late'), 'mark', 300);
      expect(queued).toEqual({ code: -1, error: 'wait timeout' });
      expect(runner.load).toMatchObject({ queued: 0, running: 1 });
      expect(await busy).toEqual({ code: -1, error: 'wait timeout' });
      // The one thread is free again: the dropped event would have run now if it were still queued.
      expect(await runner.run('mark', new TextEncoder().encode('next'), 'mark')).toEqual({ code: 0, error: null });
      expect(calls.filter((c) => c.startsWith('mark:'))).toEqual(['mark:sqlExec']);
    } finally {
      await runner.close();
    }
  }, 60_000);
});
