import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMessage, loadOrCreateIdentity } from '@power-meter/w3bstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureArtifacts } from '../src/index.js';

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
});
