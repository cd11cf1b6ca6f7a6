import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { until } from './until.js';

/**
 * A throw-away systemd-nspawn container for test/systemd.test.ts: an overlay of a cached
 * read-only root, booted with systemd as PID 1.
 *
 * Two copies of the suite (two checkouts, two CI jobs on one machine) must be able to boot their
 * containers at the same time, and a run that was killed must not break the next one. So every
 * run has its own
 * - work directory `$TMPDIR/pm-nspawn-XXXXXX` (the overlay's upper, work and merged directories),
 *   with `owner.json` naming the test process (pid and start time, so a reused pid is not taken
 *   for the owner);
 * - machine name (the default, the directory's name, is the same `root` for every run, and
 *   systemd-nspawn keeps per-machine state under /run/systemd/nspawn/ by that name);
 * - cgroup, named like the work directory, in each cgroup hierarchy systemd uses: with
 *   `--keep-unit`, systemd-nspawn puts the container's systemd into `payload/` below its own
 *   cgroup, so two containers started from one cgroup would share one tree, and one container's
 *   systemd would wait for (and fail to kill) the other's processes in `power-meter.service`.
 *   It also gives a later run a way to find and kill every process of a killed run.
 * `cleanLeftovers()` removes what runs whose test process is gone left behind: their processes,
 * mount, cgroups and work directory.
 */
const run = promisify(execFile);
export const PREFIX = 'pm-nspawn-';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Owner {
  pid: number;
  startTicks: number;
  cgroups: string[];
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null when it is gone. */
export function startTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return null;
  }
}

/** The cgroup directories this process is in, in the hierarchies systemd uses (name=systemd v1, and v2). */
export function ownCgroupDirs(): string[] {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pre, post = ''] = line.split(' - ');
      const f = pre!.split(' ');
      const [fstype = '', , superOpts = ''] = post.split(' ');
      return { root: f[3]!, point: f[4]!, fstype, superOpts };
    });
  const dirs: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean)) {
    const [id, controllers, path = '/'] = line.split(':');
    const mount =
      id === '0' && controllers === ''
        ? mounts.find((m) => m.fstype === 'cgroup2')
        : controllers === 'name=systemd'
          ? mounts.find((m) => m.fstype === 'cgroup' && m.superOpts.split(',').includes('name=systemd'))
          : undefined;
    // A mount of a sub-tree (root other than /) would need the path translated: not seen, not handled.
    if (mount && mount.root === '/') dirs.push(join(mount.point, path));
  }
  return dirs;
}

/** Processes in a cgroup and all its children (pids as this machine sees them). */
function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.push(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // removed meanwhile
    }
  };
  walk(dir);
  return pids.filter((p) => p > 0);
}

/** Kills every process in the cgroups (the container's PID 1 first takes its namespace with it), then removes them. */
async function removeCgroups(dirs: string[]): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const pids = dirs.flatMap(cgroupPids);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (Date.now() - t0 > 60_000) throw new Error(`processes ${pids.join(' ')} in ${dirs.join(' ')} do not end`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // Children first: a cgroup is removed with rmdir once it has no children and no processes.
  const rmTree = (d: string) => {
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(d, e.name));
      rmdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // removed meanwhile
    }
  };
  for (const d of dirs) rmTree(d);
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

async function unmount(path: string): Promise<void> {
  if (!mounted(path)) return;
  await run('umount', [path]).catch(() => (mounted(path) ? run('umount', ['-l', path]) : undefined));
}

/**
 * Whether the run in `work` is to be removed by this process: its owner no longer runs, and no
 * other live cleaner (a copy of the suite starting at the same time) has claimed it. The claim is
 * a rename of the owner file to `removing-PID-TICKS.json`, which only one process can win; a
 * claim whose cleaner died is taken over the same way.
 */
function claim(work: string): { kind: 'claimed'; owner: Owner } | { kind: 'skip' } | { kind: 'no-owner' } {
  const readOwner = (file: string): Owner | null => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Owner;
    } catch {
      return null;
    }
  };
  let names: string[];
  try {
    names = readdirSync(work);
  } catch {
    return { kind: 'skip' }; // removed meanwhile
  }
  const mine = `removing-${process.pid}-${startTicks(process.pid)}.json`;
  for (const name of names) {
    const claimedBy = /^removing-(\d+)-(\d+)\.json$/.exec(name);
    if (name === 'owner.json') {
      const owner = readOwner(join(work, name));
      if (owner && startTicks(owner.pid) === owner.startTicks) return { kind: 'skip' }; // its test is still running
    } else if (claimedBy) {
      if (startTicks(Number(claimedBy[1])) === Number(claimedBy[2])) return { kind: 'skip' }; // being removed
    } else continue;
    try {
      renameSync(join(work, name), join(work, mine));
    } catch {
      return { kind: 'skip' }; // another cleaner was first
    }
    const owner = readOwner(join(work, mine));
    return owner ? { kind: 'claimed', owner } : { kind: 'skip' };
  }
  return { kind: 'no-owner' };
}

/** The work directory of a run: processes, cgroups, the overlay, the files. */
async function removeRun(work: string, cgroups: string[]): Promise<void> {
  await removeCgroups(cgroups);
  await unmount(join(work, 'root'));
  rmSync(work, { recursive: true, force: true });
}

/**
 * Removes what runs of this test left behind when they were killed (their test process no longer
 * runs): running containers, mounts, cgroups, work directories. A run without an owner file (a
 * version of this test before there was one) counts as left behind when nothing is mounted on its
 * root and it is more than an hour old. Returns the work directories removed.
 */
export async function cleanLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const work = join(tmpdir(), name);
    const c = claim(work);
    if (c.kind === 'claimed') {
      await removeRun(
        work,
        c.owner.cgroups.filter((d) => existsSync(d)),
      );
      removed.push(work);
    } else if (c.kind === 'no-owner') {
      let ageMs: number;
      try {
        ageMs = Date.now() - statSync(work).mtimeMs;
      } catch {
        continue; // removed meanwhile
      }
      if (mounted(join(work, 'root')) || ageMs < 3_600_000) continue;
      rmSync(work, { recursive: true, force: true });
      removed.push(work);
    }
  }
  return removed;
}

export interface Container {
  /** The container's root as this machine sees it. */
  merged: string;
  /** The machine name (also its host name). */
  machine: string;
  /** Runs a shell command inside the container (all its namespaces); never throws. */
  sh(cmd: string, timeoutMs?: number): Promise<{ code: number; out: string }>;
  /** systemd-nspawn's output so far. */
  console(): string;
  /** Powers the container off (SIGKILL after 30 s), then removes its processes, mount, cgroups and files. */
  shutdown(): Promise<void>;
}

/** How often a condition that runs a command in the container is checked (until's everyMs). */
export const CONTAINER_CHECK_MS = 500;

/**
 * Mounts an overlay of `lower`, lets `prepare` fill it (it runs before the boot), boots it and
 * waits for systemd in it to finish starting. On any failure the partial run is removed before
 * the error is thrown, so nothing is left mounted.
 */
export async function bootContainer(lower: string, prepare: (merged: string) => Promise<void>, bootMs: number): Promise<Container> {
  const work = mkdtempSync(join(tmpdir(), PREFIX));
  const name = basename(work);
  const cgroups = ownCgroupDirs().map((d) => join(d, name));
  const owner: Owner = { pid: process.pid, startTicks: startTicks(process.pid)!, cgroups };
  writeFileSync(join(work, 'owner.json'), JSON.stringify(owner));
  const merged = join(work, 'root');
  // Letters, digits and '-' only: a valid host name.
  const machine = `pmtest-${name.slice(PREFIX.length).replace(/[^A-Za-z0-9]/g, '0')}-${process.pid}`;
  let nspawn: ChildProcess | undefined;
  let consoleOut = '';
  let leader = 0;
  const removeAll = async () => {
    if (nspawn && nspawn.exitCode === null && nspawn.signalCode === null) {
      const exited = new Promise((resolve) => nspawn!.once('exit', resolve));
      if (leader > 0) await run('kill', ['-s', 'SIGRTMIN+4', String(leader)]).catch(() => {}); // systemd: power off
      const killer = setTimeout(() => nspawn!.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    }
    await removeRun(
      work,
      cgroups.filter((d) => existsSync(d)),
    );
  };
  try {
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(work, d));
    await run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')}`,
      merged,
    ]);
    await prepare(merged);
    for (const d of cgroups) mkdirSync(d);
    // The shell moves itself into the run's cgroups, then becomes systemd-nspawn.
    nspawn = spawn(
      'bash',
      [
        '-c',
        'for d in $CGROUPS; do echo $$ >"$d/cgroup.procs" || exit 97; done; exec systemd-nspawn --register=no --keep-unit --quiet --machine="$MACHINE" -D "$MERGED" --boot',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CGROUPS: cgroups.join(' '), MACHINE: machine, MERGED: merged } },
    );
    nspawn.stdout!.on('data', (c: Buffer) => (consoleOut += c.toString()));
    nspawn.stderr!.on('data', (c: Buffer) => (consoleOut += c.toString()));
    const child = nspawn;
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`systemd-nspawn exited ${child.exitCode}:\n${consoleOut}`);
        const children = await run('pgrep', ['-P', String(child.pid)]).catch(() => ({ stdout: '' }));
        leader = Number(children.stdout.trim().split('\n')[0]);
        return leader > 0;
      },
      bootMs,
      'the container to start',
      CONTAINER_CHECK_MS,
    );
  } catch (err) {
    await removeAll();
    throw err;
  }

  const sh = async (cmd: string, timeoutMs = 60_000) => {
    try {
      const r = await run(
        'nsenter',
        ['-t', String(leader), '-m', '-u', '-i', '-p', '-C', '--', '/usr/bin/env', '-i', `PATH=${PATH}`, '/bin/bash', '-c', cmd],
        { timeout: timeoutMs, maxBuffer: 16 << 20 },
      );
      return { code: 0, out: r.stdout + r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  };
  try {
    await until(
      async () => /^(running|degraded)$/m.test((await sh('systemctl is-system-running')).out),
      bootMs,
      'systemd in the container to finish booting',
      CONTAINER_CHECK_MS,
    );
  } catch (err) {
    await removeAll();
    throw new Error(`${(err as Error).message}\n${consoleOut}`);
  }
  return { merged, machine, sh, console: () => consoleOut, shutdown: removeAll };
}
