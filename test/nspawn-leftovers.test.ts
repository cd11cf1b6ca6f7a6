import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTAINER_CHECK_MS, PREFIX, cleanLeftovers, ownCgroupDirs, startTicks } from './support/nspawn.js';
import { until } from './support/until.js';

/*
 * What a killed run of test/systemd.test.ts leaves behind, made by hand: a work directory whose
 * owner no longer runs, a process in the run's cgroups (a container's systemd would be there), and
 * a mount on its root. The next run's cleanLeftovers() must remove all of it, and must leave a
 * run whose owner still runs alone (and two cleaners at once must not trip over each other). Needs root (cgroups, mount), like the systemd test.
 */
function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

describe('cleanLeftovers (systemd test)', () => {
  it("removes a killed run's processes, cgroups, mount and files, and leaves a running one alone", async () => {
    // A killed run: its owner (a process that has exited) and a process left in its cgroups.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    const killed = mkdtempSync(join(tmpdir(), PREFIX));
    const cgroups = ownCgroupDirs().map((d) => join(d, basename(killed)));
    expect(cgroups.length).toBeGreaterThan(0);
    for (const d of cgroups) mkdirSync(d);
    writeFileSync(join(killed, 'owner.json'), JSON.stringify({ pid: deadPid, startTicks: 1, cgroups }));
    mkdirSync(join(killed, 'root'));
    expect(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(killed, 'root')]).status).toBe(0);
    const orphan = spawn('bash', ['-c', 'for d in $CGROUPS; do echo $$ >"$d/cgroup.procs"; done; exec sleep 600'], {
      env: { ...process.env, CGROUPS: cgroups.join(' ') },
      stdio: 'ignore',
    });
    const gone = new Promise((resolve) => orphan.once('exit', (_code, signal) => resolve(signal)));
    await until(
      () => readFileSync(join(cgroups[0]!, 'cgroup.procs'), 'utf8').trim() === String(orphan.pid),
      30_000,
      'the process in its cgroup',
      CONTAINER_CHECK_MS,
    );

    // A run in progress: this test process is its owner.
    const running = mkdtempSync(join(tmpdir(), PREFIX));
    writeFileSync(join(running, 'owner.json'), JSON.stringify({ pid: process.pid, startTicks: startTicks(process.pid), cgroups: [] }));

    try {
      // Another copy of the suite may be cleaning at the same moment (its systemd test starts
      // with this): then either one removes the run, never both, and never the running one.
      const removed = await cleanLeftovers();
      expect(removed).not.toContain(running);
      expect(await gone).toBe('SIGKILL');
      expect(mounted(join(killed, 'root'))).toBe(false);
      for (const d of cgroups) expect(existsSync(d)).toBe(false);
      expect(existsSync(killed)).toBe(false);
      expect(existsSync(join(running, 'owner.json'))).toBe(true);
    } finally {
      orphan.kill('SIGKILL');
      spawnSync('umount', [join(killed, 'root')]);
      spawnSync('rm', ['-rf', killed, running]);
      for (const d of cgroups) spawnSync('rmdir', [d]);
    }
  }, 120_000);

  it('two cleaners at once: one removes the run, the other skips it, neither fails', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const killed = mkdtempSync(join(tmpdir(), PREFIX));
    writeFileSync(join(killed, 'owner.json'), JSON.stringify({ pid: Number(dead.stdout), startTicks: 1, cgroups: [] }));
    mkdirSync(join(killed, 'root'));
    expect(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(killed, 'root')]).status).toBe(0);
    try {
      const [a, b] = await Promise.all([cleanLeftovers(), cleanLeftovers()]);
      expect([...a, ...b].filter((w) => w === killed).length).toBeLessThanOrEqual(1);
      expect(mounted(join(killed, 'root'))).toBe(false);
      expect(existsSync(killed)).toBe(false);
    } finally {
      spawnSync('umount', [join(killed, 'root')]);
      spawnSync('rm', ['-rf', killed]);
    }
  }, 120_000);
});
