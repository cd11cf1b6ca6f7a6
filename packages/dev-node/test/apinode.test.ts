import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildReadingTask, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { staticApprovals, startDevReceiver, type DevReceiverOptions } from '../src/index.js';
import { onCleanup, tempDir } from '../../../test/support/cleanup.js';
import { until } from '../../../test/support/until.js';

const PROJECT = { projectId: '42', projectVersion: '0.1' };
const READING = { powerW: 12.5, timestampMs: 1_764_000_000_000 };
const k1 = () => loadOrCreateIdentity(join(tempDir('task-'), 'identity'), { curve: 'secp256k1' });

describe('the dev apinode: POST /v1/task and GET /v1/task/<id> as the node answers them', () => {
  async function start(opts: DevReceiverOptions = {}) {
    const r = await startDevReceiver({ transport: 'w3bstream-v2', taskStepMs: 50, ...opts });
    onCleanup(() => r.close());
    return r;
  }
  const post = async (url: string, body: string) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, json: JSON.parse(await res.text()) as Record<string, unknown> };
  };

  it('403 until the device is approved, then 200 with keccak256(r||s||v); the record names the device and nonce', async () => {
    const id = k1();
    const approvals = staticApprovals();
    const r = await start({ approvals, projects: [{ projectId: '42', versions: ['0.1'], signedKeys: [] }] });
    expect(r.url).toMatch(/\/v1\/task$/);
    const t = buildReadingTask(id, 9, READING, PROJECT);
    expect(await post(r.url, t.body)).toEqual({ status: 403, json: { error: 'device does not have permission' } });
    approvals.approve(id.deviceId, '42');
    expect(await post(r.url, t.body)).toEqual({ status: 200, json: { taskID: t.taskId } });
    const e = r.received.at(-1)!;
    expect([e.deviceId, e.nonce, e.project, e.projectVersion, e.sensorReading, e.taskId]).toEqual([
      id.deviceId,
      '9',
      '42',
      '0.1',
      12.5,
      t.taskId,
    ]);
    const unknown = buildReadingTask(id, 10, READING, { projectId: '43', projectVersion: '0.1' });
    expect((await post(r.url, unknown.body)).json.error).toMatch(/^failed to get project: /);
    const badVersion = buildReadingTask(id, 11, READING, { projectId: '42', projectVersion: '9.9' });
    expect((await post(r.url, badVersion.body)).json.error).toBe('failed to get project config: project config not exist');
    // The signed keys of the project's config decide the hash: a task signed without them recovers another address.
    const withKeys = await start({ approvals, projects: [{ projectId: '42', versions: [], signedKeys: ['timestamp'] }] });
    expect((await post(withKeys.url, t.body)).status).toBe(403);
    const keyed = buildReadingTask(id, 12, READING, { ...PROJECT, signedKeys: ['timestamp'] });
    expect((await post(withKeys.url, keyed.body)).status).toBe(200);
    expect((await post(r.url, `${t.body.slice(0, -3)}"}`)).json.error).toMatch(/^(invalid signature|failed to decode signature)/);
    expect((await post(r.url, '{"nonce":0,"projectID":"42","payload":{},"signature":"0x00"}')).json.error).toContain(
      "'CreateTaskReq.Nonce'",
    );
    const res = await fetch(r.url.replace('/v1/task', '/message'), { method: 'POST', body: t.body });
    expect([res.status, await res.text()]).toEqual([404, '404 page not found']);
  });

  it('GET /v1/task/<id>: packed, then assigned, then settled with a transaction hash (or failed with an error)', async () => {
    const id = k1();
    for (const outcome of ['settled', 'failed'] as const) {
      const r = await start({ taskOutcome: outcome });
      const t = buildReadingTask(id, 1, READING, PROJECT);
      const { json } = await post(r.url, t.body);
      const get = async () =>
        (await (await fetch(`${r.url}/${json.taskID}`)).json()) as {
          projectID: string;
          taskID: string;
          states: Array<Record<string, string>>;
        };
      const first = await get();
      expect(first).toMatchObject({ projectID: '42', taskID: json.taskID });
      expect(first.states[0]!.state).toBe('packed');
      // Each state follows the one before after taskStepMs (50 ms): wait for the third, however slow the machine.
      let last = first;
      await until(
        async () => {
          last = await get();
          return last.states.length >= 3;
        },
        10_000,
        `the task to be ${outcome}`,
      );
      expect(last.states.map((s) => s.state)).toEqual(['packed', 'assigned', outcome]);
      if (outcome === 'settled') expect(last.states[2]!.transaction_hash).toMatch(/^0x[0-9a-f]{64}$/);
      else expect(last.states[2]!.error).toMatch(/failed/);
      const none = (await (await fetch(`${r.url}/0x${'00'.repeat(32)}`)).json()) as { states: Array<{ state: string }> };
      expect(none.states[0]!.state).toBe('error');
    }
  });
});
