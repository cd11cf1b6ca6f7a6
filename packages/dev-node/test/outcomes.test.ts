import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppletHost, ensureArtifacts, type HandledEvent } from '../src/index.js';
import { TOKEN, probeProject, publish } from './helpers.js';

// The node's answers for handlers that fail, and for requests the route refuses.
let host: AppletHost;
const handled: HandledEvent[] = [];

beforeAll(async () => {
  ensureArtifacts();
  host = await AppletHost.start(probeProject(), { onEvent: (e) => handled.push(e) });
}, 300_000);

afterAll(async () => host?.close());

describe('handler outcomes', () => {
  it('a trap is code -1 with the reason', async () => {
    const a = await publish(host, 'probe_trap', '');
    expect(a.status).toBe(201);
    expect(a.body.results).toEqual([
      expect.objectContaining({
        handler: 'probe_trap',
        code: -1,
        error: expect.stringMatching(/Index out of range.*wasm trap: unreachable/),
      }),
    ]);
  });

  it('a thrown error is code -1 with the applet’s message', async () => {
    const a = await publish(host, 'probe_throw', 'meter 9');
    expect(a.body.results?.[0]).toMatchObject({ code: -1, error: expect.stringContaining('refused on purpose: meter 9') });
  });

  it('a non-zero return is that code, without an error; onEvent sees the same results', async () => {
    const a = await publish(host, 'probe_return', '3', { eventId: 'Meter-1-42' });
    expect(a.body.results).toEqual([{ appletName: 'abi-probe', instanceID: '1', handler: 'probe_return', returnValue: null, code: 3 }]);
    expect(handled.at(-1)).toEqual({ source: 'http', eventType: 'probe_return', eventId: 'meter-1-42', results: a.body.results });
  });

  it('a handler the applet does not export is code -1', async () => {
    const a = await publish(host, 'no_such_handler', '');
    expect(a.body.results?.[0]).toMatchObject({ code: -1, error: 'runtime: no_such_handler fn is not imported' });
  });

  it('a handler past the 5 s limit is `wait timeout`, and the next event runs on a fresh VM', async () => {
    const a = await publish(host, 'probe_loop', 'x');
    expect(a.body.results).toEqual([
      { appletName: 'abi-probe', instanceID: '1', handler: 'probe_loop', returnValue: null, code: -1, error: 'wait timeout' },
    ]);
    const next = await publish(host, 'probe_return', '0');
    expect(next.body.results?.[0]).toMatchObject({ code: 0 });
  }, 60_000);
});

describe('the event route', () => {
  it('answers 401 InvalidToken for a wrong token, with the node’s error body', async () => {
    const a = await publish(host, 'probe_log', '', { token: 'wrong' });
    expect(a.status).toBe(401);
    expect(a.body).toEqual({ key: 'InvalidToken', code: 401999002, msg: 'InvalidToken', desc: 'InvalidToken', canBeTalk: false });
  });

  it('answers 201 InvalidEventChannel for another project name, running nothing', async () => {
    const before = host.logs.length;
    const a = await publish(host, 'probe_log', '', { url: host.url.replace('/probe_project', '/other_project') });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ channel: 'other_project', results: null, error: 'InvalidEventChannel' });
    expect(host.logs.length).toBe(before);
  });

  it('answers results null for an eventType no strategy names', async () => {
    const a = await publish(host, 'NOBODY', '', { eventId: 'Meter-ABC-7' });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ channel: 'probe_project', eventID: 'meter-abc-7', results: null });
    expect(a.body.error).toBeUndefined();
  });

  it('takes the token from ?authorization= too, with or without Bearer', async () => {
    const url = new URL(host.url);
    url.searchParams.set('eventType', 'probe_return');
    url.searchParams.set('authorization', TOKEN);
    const res = await fetch(url, { method: 'POST', body: '0' });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { results: { code: number }[] }).results[0]!.code).toBe(0);
  });
});

describe('loading', () => {
  it('refuses to start with a file that is not a WebAssembly module, saying so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'applet-host-bad-'));
    try {
      const wasmFile = join(dir, 'not.wasm');
      writeFileSync(wasmFile, 'this is text, not wasm');
      const project = probeProject();
      project.applets[0]!.wasmFile = wasmFile;
      await expect(AppletHost.start(project)).rejects.toThrow(/applet abi-probe: the applet cannot be loaded: .*magic/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
