import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT, EXIT_STATUSES, NO_RESTART_STATUSES } from '@power-meter/service';
import { afterEach, describe, expect, it } from 'vitest';
import { mountTmpfs, remountReadOnly } from '../../../test/support/filesystem.js';
import { BACKEND, ROOT, start, type Proc } from '../../../test/support/processes.js';

/**
 * Issue 24, item 4: what a restart cannot fix ends the program with a status the units list in
 * RestartPreventExitStatus= and a message saying what to do; the README's table is the code's.
 */
const started: Array<() => unknown> = [];
afterEach(async () => {
  for (const stop of started.splice(0).reverse()) await stop();
});

function run(args: string[], env: Record<string, string> = {}, opts: { uid?: number } = {}): Proc {
  const p = start(BACKEND, ['--sensor', 'sim', '--window', '1', ...args], env, opts);
  started.push(() => p.stop('SIGKILL'));
  return p;
}

describe('an unusable data directory: exit 4, no restart loop, what to do', () => {
  it('a file where the directory belongs', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pm-exit-')), 'data');
    writeFileSync(file, 'not a directory');
    const p = run(['--data-dir', file]);
    expect(await p.exited).toBe(EXIT.dataDirUnusable);
    expect(p.output()).toContain(`the data directory ${file} is not a directory: move that file away, or set --data-dir`);
  });

  it('a read-only file system', async () => {
    const mount = join(mkdtempSync(join(tmpdir(), 'pm-exit-')), 'card');
    started.push(mountTmpfs(mount, '1m'));
    mkdirSync(join(mount, 'data'));
    remountReadOnly(mount);
    const p = run(['--data-dir', join(mount, 'data')]);
    expect(await p.exited).toBe(EXIT.dataDirUnusable);
    expect(p.output()).toMatch(/the data directory .*\/data cannot be written \(EROFS .*\): remount it read-write, or set --data-dir/);
  });

  it('a directory the user running the meter may not write (here: nobody, uid 65534)', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-exit-'));
    chmodSync(base, 0o755);
    const dir = join(base, 'data');
    mkdirSync(dir, { mode: 0o755 }); // root's
    const config = join(base, 'config.json');
    writeFileSync(config, '{}', { mode: 0o644 });
    const p = run(['--data-dir', dir], { POWER_METER_CONFIG: config, XDG_RUNTIME_DIR: base }, { uid: 65534 });
    expect(await p.exited).toBe(EXIT.dataDirUnusable);
    expect(p.output()).toMatch(
      /the data directory .* cannot be written by this user \(EACCES .*\): .*must belong to the user running the meter/,
    );
  });

  it('is never created in /home (a user that does not exist) or at the top of the file system', async () => {
    const user = `nobody-${process.pid}-${Date.now()}`;
    const dir = `/home/${user}/data/power-meter`;
    const p = run(['--data-dir', dir]);
    expect(await p.exited).toBe(EXIT.dataDirUnusable);
    expect(p.output()).toContain(`the data directory ${dir} does not exist and would have to be created in /home`);
    expect(existsSync(`/home/${user}`)).toBe(false);
    // The identity command creates nothing there either.
    const id = start(BACKEND, ['identity', '--data-dir', dir]);
    expect(await id.exited).toBe(EXIT.dataDirUnusable);
    expect(existsSync(`/home/${user}`)).toBe(false);
  });
});

describe('an unusable key: exit 3 with what to do, and nothing left in the RAM directory', () => {
  const ramDirs = (root: string) => readdirSync(root).filter((n) => n.startsWith('power-meter-'));

  it('a damaged key, and a key other users can read', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-exit-'));
    const dir = join(base, 'data');
    const runtimeRoot = join(base, 'run');
    mkdirSync(runtimeRoot);
    expect(await start(BACKEND, ['identity', '--data-dir', dir]).exited).toBe(0);
    const key = join(dir, 'identity', 'device-key.pem');
    chmodSync(key, 0o644);
    const loose = run(['--data-dir', dir], { XDG_RUNTIME_DIR: runtimeRoot });
    expect(await loose.exited).toBe(EXIT.corruptData);
    expect(loose.output()).toMatch(/private key .* is readable by other users \(mode 644\): run chmod 600/);
    expect(ramDirs(runtimeRoot)).toEqual([]);
    chmodSync(key, 0o600);
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\ncut short');
    const damaged = run(['--data-dir', dir], { XDG_RUNTIME_DIR: runtimeRoot });
    expect(await damaged.exited).toBe(EXIT.corruptData);
    expect(damaged.output()).toMatch(/private key .* is corrupt \(not a PEM private key\): restore it from a backup/);
    expect(ramDirs(runtimeRoot)).toEqual([]);
  });

  it('exit 2 after the RAM directory was made (a P-256 key under W3bstream 2) leaves nothing there either', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-exit-'));
    const dir = join(base, 'data');
    const runtimeRoot = join(base, 'run');
    mkdirSync(runtimeRoot);
    expect(await start(BACKEND, ['identity', '--data-dir', dir]).exited).toBe(0);
    const p = run(['--data-dir', dir, '--transport', 'w3bstream-v2', '--project-id', '7', '--project-version', '1'], {
      XDG_RUNTIME_DIR: runtimeRoot,
    });
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(ramDirs(runtimeRoot)).toEqual([]);
  });
});

describe('settings of the wrong JSON type', () => {
  it('are refused with exit 2 naming the type, not converted', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pm-exit-'));
    for (const [config, message] of [
      [{ window: '5' }, /"window" in the config file = "5" .*seconds, 1-3600, written as a JSON number \(not a JSON string\)/],
      [{ holdUnsyncedClock: 'false' }, /"holdUnsyncedClock" .*written as a JSON boolean \(not a JSON string\)/],
      [{ publishUrl: 42 }, /"publishUrl" in the config file = "<hidden>" .*written as a JSON string \(not a JSON number\)/],
      [{ rewardTiers: '[]' }, /"rewardTiers" .*written as a JSON array \(not a JSON string\)/],
    ] as const) {
      const file = join(base, 'config.json');
      writeFileSync(file, JSON.stringify(config));
      // No flags for these settings: a flag would win over the file.
      const p = start(BACKEND, ['--sensor', 'sim', '--data-dir', join(base, 'data'), '--config', file]);
      started.push(() => p.stop('SIGKILL'));
      expect(await p.exited).toBe(EXIT.badSettings);
      expect(p.output()).toMatch(message);
    }
    expect(existsSync(join(base, 'data'))).toBe(false);
  });
});

describe('one table of exit statuses', () => {
  it("is the README's, and the units prevent a restart for exactly the statuses it says are not restarted", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| (\d) +\| (.+?) +\|$/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(rows).toEqual(EXIT_STATUSES.map((s) => [s.status, s.meaning]));
    for (const unit of ['power-meter.service', 'power-meter-display.service']) {
      const text = readFileSync(join(ROOT, 'systemd', unit), 'utf8');
      expect(text).toMatch(new RegExp(`^RestartPreventExitStatus=${NO_RESTART_STATUSES.join(' ')}$`, 'm'));
    }
    expect(NO_RESTART_STATUSES).toEqual([EXIT.badSettings, EXIT.corruptData, EXIT.dataDirUnusable]);
  });
});
