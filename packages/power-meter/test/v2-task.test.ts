import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@power-meter/meter-files';
import { possibleTaskIds, readTaskBody } from '@power-meter/w3bstream';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, outboxContents, start, until, type Proc } from '../../../test/support/processes.js';

/**
 * W3bstream 2 `/v1/task` with real processes as a user meets them: the meter, the dev apinode
 * (`power-meter dev-receiver --transport w3bstream-v2`) on loopback, and the commands a user runs
 * when something is in the way (a device not approved yet, a project change, a meter installed
 * with a P-256 identity and a v1 backlog).
 */
const procs: Proc[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
});

function run(args: string[], env: Record<string, string> = {}): Proc {
  const p = start(BACKEND, args, { POWER_METER_RETRY_MAX_MS: '500', ...env });
  procs.push(p);
  return p;
}

/** A one-shot command's exit code and output. */
async function command(args: string[]): Promise<{ code: number | string; out: string }> {
  const p = run(args);
  const code = await p.exited;
  return { code, out: p.output() };
}

async function deviceOf(dataDir: string, extra: string[] = []): Promise<string> {
  const r = await command(['identity', '--json', '--data-dir', dataDir, '--transport', 'w3bstream-v2', '--project-id', '42', ...extra]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.out.trim().split('\n').at(-1)!) as { deviceId: string }).deviceId;
}

async function apinode(args: string[]): Promise<{ proc: Proc; url: string; record: string }> {
  const record = join(mkdtempSync(join(tmpdir(), 'apinode-')), 'received.jsonl');
  const proc = run(['dev-receiver', '--transport', 'w3bstream-v2', '--port', '0', '--record', record, '--task-step', '300', ...args]);
  const url = (await proc.waitFor(/publish_url=(\S+)/))[1]!;
  return { proc, url, record };
}

interface Rec {
  nonce: string | null;
  taskId: string | null;
  deviceId: string | null;
  reason: string | null;
  body: string;
  project: string;
}
const records = (file: string): Rec[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Rec)
    : [];

const meterArgs = (dataDir: string, url: string, more: string[] = []) => [
  'run',
  '--sensor',
  'sim',
  '--sim-load',
  '8',
  '--window',
  '1',
  '--data-dir',
  dataDir,
  '--transport',
  'w3bstream-v2',
  '--project-id',
  '42',
  '--project-version',
  '0.1',
  '--publish-url',
  url,
  '--task-poll-interval',
  '1',
  ...more,
];

describe('a meter on /v1/task (real processes, dev apinode on loopback)', () => {
  it('not approved for its first 14 s: 403s, keeps everything, then delivers every reading with nonces in order', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'pm-task-')), 'data');
    const device = await deviceOf(dataDir);
    const node = await apinode(['--approve', `${device}:42`, '--approve-after', '14', '--project-id', '42', '--project-version', '0.1']);
    const meter = run(meterArgs(dataDir, node.url));
    await meter.waitFor(/publish state=failing reason="device not approved for project 42"/, 20_000);
    // state.json follows the log line (its write is scheduled after the state change).
    await until(
      async () => {
        const during = await readState(dataDir);
        return during.ok && during.state.publishing.reason === 'device not approved for project 42';
      },
      20_000,
      'state.json saying the device is not approved',
    );
    // Approved 14 s after its first task: then everything held meanwhile goes, oldest first.
    await until(() => records(node.record).some((r) => r.taskId !== null), 40_000, 'the first accepted task');
    const heldBack = records(node.record).filter((r) => r.reason === 'device does not have permission');
    expect(heldBack.length).toBeGreaterThan(3);
    const firstOk = records(node.record).find((r) => r.taskId !== null)!;
    // The first reading waited 14 s or more: everything stored meanwhile is delivered after it.
    const atApproval = await readState(dataDir);
    const backlog = atApproval.ok ? atApproval.state.publishing.waiting : 0;
    expect(backlog).toBeGreaterThan(5);
    await until(() => records(node.record).filter((r) => r.taskId !== null).length >= backlog + 3, 40_000, 'the backlog delivered');
    // The newest delivered task is followed (GET /v1/task/<id> every second here) into state.json.
    await until(
      async () => {
        const st = await readState(dataDir);
        return st.ok && st.state.publishing.task?.state === 'settled';
      },
      30_000,
      'a settled task in state.json',
    );
    expect(await meter.stop('SIGTERM')).toBe(0);
    const all = records(node.record);
    const ok = all.filter((r) => r.taskId !== null);
    // Only the head of the queue was ever refused, and each resend was the same bytes.
    expect(new Set(heldBack.map((r) => r.body)).size).toBe(1);
    expect(heldBack.every((r) => r.nonce === '1')).toBe(true);
    expect(firstOk.nonce).toBe('1');
    // Every reading delivered once, nonces 1, 2, 3, … in order, each signed by this device,
    // and each taskID is keccak256(r||s||v) of its own signature.
    expect(ok.map((r) => Number(r.nonce))).toEqual(ok.map((_, i) => i + 1));
    for (const r of ok) {
      expect(r.deviceId).toBe(device);
      const sig = readTaskBody(r.body)!.signature!;
      expect(possibleTaskIds(sig)).toContain(r.taskId);
    }
    const left = await outboxContents(dataDir);
    expect(left.delivered + left.waiting).toBe(left.nextSeq - 1);
    expect(left.dropped).toBe(0);
    // At least once: a task the node took while SIGTERM cut its answer short is still waiting
    // (it goes again, the same bytes, at the next start); every other accepted one is delivered.
    const inFlight = ok.length - left.delivered;
    expect([0, 1]).toContain(inFlight);
    expect(left.waiting).toBeGreaterThanOrEqual(inFlight);
    // The followed task's state stays in state.json (the dev node settles tasks after 600 ms).
    const st = await readState(dataDir);
    if (!st.ok || !st.state.publishing.task) throw new Error('no task state');
    expect(st.state.publishing.task).toMatchObject({ state: 'settled', failedCount: 0 });
    expect(ok.map((r) => r.taskId)).toContain(st.state.publishing.task.id);
    expect(st.state.publishing.task.txHash).toMatch(/^0x[0-9a-f]{64}$/);
  }, 120_000);

  it('a project change while readings wait exits 2 naming the backlog and the ways out; resign moves them, nothing lost', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'pm-proj-')), 'data');
    // Readings stored for project 42 / 0.1 while no node answers (a URL nobody listens on).
    const meter = run(meterArgs(dataDir, 'http://127.0.0.1:9/v1/task'));
    await until(
      async () => {
        const st = await readState(dataDir);
        return st.ok && st.state.publishing.waiting >= 3;
      },
      30_000,
      '3 waiting',
    );
    expect(await meter.stop('SIGTERM')).toBe(0);
    const waiting = (await outboxContents(dataDir)).waiting;
    const changed = await command(
      meterArgs(dataDir, 'http://127.0.0.1:9/v1/task').map((a) => (a === '42' ? '43' : a === '0.1' ? '0.2' : a)),
    );
    expect(changed.code).toBe(2);
    expect(changed.out).toContain(`the outbox holds ${waiting} undelivered reading(s) signed for project 42 version 0.1`);
    expect(changed.out).toContain('project 43 version 0.2');
    expect(changed.out).toMatch(/power-meter outbox resign/);
    expect(changed.out).toMatch(/power-meter outbox export/);
    expect(changed.out).toMatch(/power-meter outbox discard/);
    expect((await outboxContents(dataDir)).waiting).toBe(waiting);
    // Without --yes (no terminal to ask at) nothing changes.
    const settings43 = ['--data-dir', dataDir, '--transport', 'w3bstream-v2', '--project-id', '43', '--project-version', '0.2'];
    const unconfirmed = await command(['outbox', 'resign', ...settings43]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.out).toMatch(/not confirmed: nothing was changed/);
    const resign = await command(['outbox', 'resign', '--yes', ...settings43]);
    expect(resign.code).toBe(0);
    expect(resign.out).toContain(`signed ${waiting} reading(s) again for w3bstream-v2 task, project 43 version 0.2`);
    // The new project's node takes every one of them, the old readings first, nonces in order.
    const node = await apinode(['--project-id', '43']);
    const after = run(meterArgs(dataDir, node.url).map((a) => (a === '42' ? '43' : a === '0.1' ? '0.2' : a)));
    await until(() => records(node.record).filter((r) => r.taskId !== null).length >= waiting + 2, 30_000, 'backlog delivered');
    expect(await after.stop('SIGTERM')).toBe(0);
    const ok = records(node.record).filter((r) => r.taskId !== null);
    expect(ok.every((r) => r.project === '43')).toBe(true);
    const nonces = ok.map((r) => Number(r.nonce));
    expect(nonces).toEqual([...nonces].sort((a, b) => a - b));
    expect(new Set(nonces).size).toBe(nonces.length);
  }, 120_000);

  it('an installed meter (P-256 identity, a v1 backlog, no node) switched to W3bstream 2 as the README says', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'pm-switch-')), 'data');
    // What install.sh left: the default P-256 identity, readings signed for v1 piling up with no publish URL.
    const v1 = run(['run', '--sensor', 'sim', '--window', '1', '--data-dir', dataDir]);
    await until(async () => {
      const s = await readState(dataDir);
      return s.ok && s.state.publishing.waiting >= 2;
    }, 30_000);
    expect(await v1.stop('SIGTERM')).toBe(0);
    const waiting = (await outboxContents(dataDir)).waiting;
    const v2 = ['--data-dir', dataDir, '--transport', 'w3bstream-v2', '--project-id', '42'];
    // 1. identity for W3bstream 2 refuses the P-256 key: exit 2, nothing on stdout, how to go on.
    const id = run(['identity', ...v2]);
    expect(await id.exited).toBe(2);
    expect(id.output()).toMatch(/P-256 key/);
    expect(id.output()).toMatch(/mv .*identity .*identity\.p256/);
    expect(id.output()).not.toMatch(/device_id/);
    // 2. Moved aside as told; a secp256k1 identity is created.
    renameSync(join(dataDir, 'identity'), join(dataDir, 'identity.p256'));
    const device = await deviceOf(dataDir);
    expect(device).toMatch(/^0x[0-9a-f]{40}$/);
    // 3. The v1 backlog blocks the start, with the ways out (never a silent discard).
    const node = await apinode(['--approve', `${device}:42`]);
    const blocked = await command(meterArgs(dataDir, node.url));
    expect(blocked.code).toBe(2);
    expect(blocked.out).toContain(`the outbox holds ${waiting} undelivered reading(s) signed for w3bstream-v1`);
    expect(blocked.out).toMatch(/outbox discard/);
    // 4. Export them, then discard with a confirmation.
    const exported = await command(['outbox', 'export', ...v2]);
    expect(exported.code).toBe(0);
    const lines = exported.out
      .split('\n')
      .filter((l) => l.startsWith('{"seq"'))
      .map((l) => JSON.parse(l) as { signedFor: string; powerW: number; body: string });
    expect(lines.length).toBe(waiting);
    expect(lines.every((l) => l.signedFor === 'w3bstream-v1' && l.body.startsWith('{"data":'))).toBe(true);
    writeFileSync(join(dataDir, '..', 'backlog.jsonl'), exported.out);
    const discard = await command(['outbox', 'discard', '--yes', ...v2]);
    expect(discard.code).toBe(0);
    expect(discard.out).toContain(`discarded ${waiting} undelivered reading(s)`);
    // 5. The meter starts and delivers to the node.
    const meter = run(meterArgs(dataDir, node.url));
    await until(() => records(node.record).filter((r) => r.taskId !== null).length >= 2, 30_000, 'delivered');
    expect(await meter.stop('SIGTERM')).toBe(0);
    expect(records(node.record).every((r) => r.taskId !== null && r.deviceId === device)).toBe(true);
  }, 120_000);

  it('a publish URL that ends in neither /v1/task nor /message is refused at start, naming both', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'pm-url-')), 'data');
    const r = await command(meterArgs(dataDir, 'http://127.0.0.1:9/api/tasks'));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--publish-url/);
    expect(r.out).toMatch(/\/v1\/task/);
    expect(r.out).toMatch(/\/message/);
    expect(existsSync(join(dataDir, 'outbox'))).toBe(false);
  }, 60_000);
});

describe('every reading is told apart on the wire (--window 1, timestamps in seconds)', () => {
  it('W3bstream v1: no two bodies alike, timestamps strictly increasing and close to the time received', async () => {
    const { startDevReceiver } = await import('@power-meter/dev-node');
    const rx = await startDevReceiver({ project: 'test', token: 'test-token-1' });
    try {
      const dataDir = join(mkdtempSync(join(tmpdir(), 'pm-distinct-')), 'data');
      // A constant load: equal powers, so only the timestamp can tell two readings apart.
      const meter = run(
        [
          'run',
          '--sensor',
          'sim',
          '--sim-load',
          '8',
          '--window',
          '1',
          '--timestamp-unit',
          's',
          '--data-dir',
          dataDir,
          '--publish-url',
          rx.url,
        ],
        {
          W3BSTREAM_PUBLISHER_TOKEN: 'test-token-1',
        },
      );
      await until(() => rx.received.length >= 12, 40_000, '12 readings');
      expect(await meter.stop('SIGTERM')).toBe(0);
      const got = rx.received.filter((e) => !e.duplicate);
      expect(got.every((e) => e.verified)).toBe(true);
      expect(new Set(got.map((e) => e.body)).size).toBe(got.length);
      const ts = got.map((e) => e.timestamp!);
      for (let i = 1; i < ts.length; i++) expect(ts[i]!).toBeGreaterThan(ts[i - 1]!);
      for (const e of got) expect(Math.abs(e.timestamp! - e.receivedAtMs / 1000)).toBeLessThan(30);
    } finally {
      await rx.close();
    }
  }, 90_000);
});
