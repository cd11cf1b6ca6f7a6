import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMessage, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureArtifacts } from '../src/index.js';
import { MONITORS_PROJECT } from './helpers.js';

// The built command as a user runs it (npm test builds dist/ first).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const TOKEN = 'cli-test-token';
let dir: string;

beforeAll(() => {
  ensureArtifacts();
  dir = mkdtempSync(join(tmpdir(), 'applet-host-cli-'));
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function envWithout(name: string): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[name];
  return env;
}

/** Resolves with the first stdout match of `pattern`; fails with the output so far after `timeoutMs`. */
function waitFor(child: ChildProcess, output: { text: string }, pattern: RegExp, timeoutMs = 120_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = pattern.exec(output.text);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        child.off('exit', onExit);
        resolve(m);
      }
      return m !== null;
    };
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.off('exit', onExit);
      reject(new Error(`no ${pattern}: ${why}:\n${output.text.slice(-3000)}`));
    };
    const onExit = (code: number | null): void => fail(`the command exited (${code})`);
    const timer = setTimeout(() => fail(`nothing within ${timeoutMs} ms`), timeoutMs);
    child.once('exit', onExit);
    child.stdout?.on('data', check);
    check();
  });
}

describe('applet-host up', () => {
  it('exits 2 with what to do when the token is not set', () => {
    const r = spawnSync(process.execPath, [CLI, 'up', '--port', '0'], {
      env: envWithout('W3BSTREAM_PUBLISHER_TOKEN'),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('W3BSTREAM_PUBLISHER_TOKEN is not set');
  });

  it('exits 2 naming a device value that is not an address', () => {
    const r = spawnSync(process.execPath, [CLI, 'up', '--device', '0x1234'], {
      env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('"0x1234" is not an address (0x + 40 hex');
  });

  it('runs the loop: a registered device’s signed 2 W reading mints, the owner’s balance is printed, SIGTERM stops it', async () => {
    const device = loadOrCreateIdentity(join(dir, 'device'), { curve: 'secp256k1' });
    const child = spawn(process.execPath, [CLI, 'up', '--port', '0', '--device', device.deviceId], {
      env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { text: '' };
    child.stdout.on('data', (c: Buffer) => (out.text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out.text += c.toString()));
    try {
      const rpcUrl = (await waitFor(child, out, /chain 31337 at (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
      const url = (await waitFor(child, out, /publish URL (http:\/\/127\.0\.0\.1:\d+\/srv-applet-mgr\/v0\/event\/energy_meter)/))[1]!;
      expect(out.text).not.toContain(TOKEN);
      const { body } = buildMessage(
        { sign: (t, e) => device.sign(t, e), publicKeyHex: device.deviceId },
        { powerW: 2.0, timestampMs: Date.now() },
      );
      const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` }, body });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { results: { code: number }[] }).results[0]!.code).toBe(0);
      await waitFor(child, out, /owner balance 10 ECO/);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // The chain went with it: nothing answers at its address any more.
      await expect(fetch(rpcUrl, { method: 'POST', body: '{}', signal: AbortSignal.timeout(10_000) })).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 300_000);

  it('exits 2 naming the field of a project file that is wrong, before starting anything', () => {
    const file = join(dir, 'bad.project.json');
    const fixture = JSON.parse(readFileSync(MONITORS_PROJECT, 'utf8')) as {
      database: { schemas: { tables: { cols: { constrains: { datatype: string } }[] }[] }[] };
    };
    fixture.database.schemas[0]!.tables[0]!.cols[1]!.constrains.datatype = 'JSONB';
    writeFileSync(file, JSON.stringify(fixture));
    const r = spawnSync(process.execPath, [CLI, 'up', '--project', file, '--port', '0'], {
      env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('project database column marks.label.constrains.datatype: "JSONB" is not allowed (INT, ');
    expect(r.stderr).toContain('fix the project file');
    // A wasm file that is not there is a wrong setting too.
    const noWasm = JSON.parse(readFileSync(MONITORS_PROJECT, 'utf8')) as { applets: { wasmFile: string }[] };
    noWasm.applets[0]!.wasmFile = 'nowhere.wasm';
    writeFileSync(file, JSON.stringify(noWasm));
    const r2 = spawnSync(process.execPath, [CLI, 'up', '--project', file, '--port', '0'], {
      env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain(`project applets.sql-probe.wasmFile: ${join(dir, 'nowhere.wasm')} does not exist`);
  });

  it('up --project runs a project file: its chain, its applet, its cron; kill -9 of the host takes the chain with it', async () => {
    const child = spawn(process.execPath, [CLI, 'up', '--project', MONITORS_PROJECT, '--port', '0', '--monitor-interval', '500'], {
      env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { text: '' };
    child.stdout.on('data', (c: Buffer) => (out.text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out.text += c.toString()));
    try {
      const rpcUrl = (await waitFor(child, out, /chain 31337 at (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
      const url = (await waitFor(child, out, /publish URL (http:\/\/127\.0\.0\.1:\d+\/srv-applet-mgr\/v0\/event\/monitors_demo)/))[1]!;
      const res = await fetch(`${url}?eventType=DEFAULT`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` }, body: 'cli' });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { results: { handler: string; code: number }[] }).results).toEqual([
        expect.objectContaining({ handler: 'mark', code: 0 }),
      ]);
      // The cron job (@every 1s) runs by itself, and the monitors poll the chain.
      await waitFor(child, out, /cron TICK -> on_event: code 0/);
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      // The watchdog noticed: the chain stops answering (no fixed wait: poll until it is gone).
      const until = Date.now() + 30_000;
      for (;;) {
        const alive = await fetch(rpcUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
          signal: AbortSignal.timeout(5_000),
        }).then(
          () => true,
          () => false,
        );
        if (!alive) break;
        if (Date.now() > until) throw new Error(`the chain at ${rpcUrl} still answers 30 s after the host was killed`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 300_000);
});
