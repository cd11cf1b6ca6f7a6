import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUDGET, footprint, runtimeClosure } from '../scripts/runtime-tree.mjs';
import { createMemoryCap, type MemoryCap } from './support/memory-cap.js';
import { ROOT, start, until, type Proc } from './support/processes.js';

/**
 * `./install-requirements.sh --runtime` for real, on a fresh copy of the checkout (its tracked
 * and new files, no node_modules, no build), as a Pi runs it, under a 400 MB memory limit (a Pi
 * Zero 2 W: 512 MB, less the firmware's share). No network: npm installs from its cache
 * (`npm_config_offline`; the full set-up this suite runs in filled it with the same versions), and
 * the prebuilt binaries canvas and better-sqlite3 would download from GitHub come from a local
 * directory prebuild-install reads through `.prebuild-installrc` (`local-prebuilds`): the
 * modules this checkout built, packed as prebuild-install's tarballs, so the path is the one a
 * Pi with internet takes (download, no compile of those two). i2c-bus and spi-device have no
 * prebuilt binaries anywhere and compile, as on a Pi. Then: the footprint against the budget, no
 * development tool, and both programs from node_modules/.bin: the meter delivers signed readings
 * and the display draws.
 */
const LIMIT_MB = 400;
const TOKEN = 'runtime-setup-token-5b2e'; // a throw-away value for the local receiver
const temps: string[] = [];
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
}, 120_000);

/** prebuild-install's tarballs of this checkout's built modules, for every runtime package that downloads one. */
function localPrebuilds(dir: string): string[] {
  const made: string[] = [];
  for (const key of runtimeClosure(ROOT).modules) {
    const pkgDir = join(ROOT, key);
    if (!existsSync(join(pkgDir, 'binding.gyp'))) continue;
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    const install: string = pkg.scripts?.install ?? '';
    if (!install.includes('prebuild-install')) continue;
    const napi = /-r napi/.test(install);
    const abi = napi
      ? Math.max(
          ...((pkg.binary?.napi_versions ?? [Number(process.versions.napi)]) as number[]).filter((v) => v <= Number(process.versions.napi)),
        )
      : process.versions.modules;
    const name = `${pkg.name}-v${pkg.version}-${napi ? 'napi' : 'node'}-v${abi}-linux-${process.arch}.tar.gz`;
    const stage = mkdtempSync(join(dir, 'stage-'));
    mkdirSync(join(stage, 'build/Release'), { recursive: true });
    const built = readdirSync(join(pkgDir, 'build/Release')).filter((f) => f.endsWith('.node'));
    expect(built.length, `${key} has no built module in this checkout`).toBeGreaterThan(0);
    for (const f of built) writeFileSync(join(stage, 'build/Release', f), readFileSync(join(pkgDir, 'build/Release', f)));
    execFileSync('tar', ['-C', stage, '-czf', join(dir, name), 'build']);
    rmSync(stage, { recursive: true });
    made.push(name);
  }
  return made;
}

let copy = '';
let setup: { code: number | null; out: string; seconds: number } = { code: null, out: '', seconds: 0 };
let cap: MemoryCap;
let receiver: DevReceiver;
const procs: Proc[] = [];

describe('./install-requirements.sh --runtime on a fresh clone, under a 400 MB memory limit', () => {
  beforeAll(async () => {
    copy = tempDir('runtime-clone-');
    // What a clone holds: no dependencies, no build output, nothing .gitignore names (tar, not git:
    // scripts/test-on-node.sh runs the suite in a copy without .git).
    execFileSync('bash', [
      '-c',
      'tar -C "$1" --exclude=./.git --exclude=node_modules --exclude=dist --exclude=dist-bench --exclude=\'*.tsbuildinfo\' --exclude=./release --exclude=./.demo --exclude=./coverage --exclude=./.prebuild-installrc -cf - . | tar -xf - -C "$2"',
      'copy',
      ROOT,
      copy,
    ]);
    expect(existsSync(join(copy, 'packages/power-meter/dist'))).toBe(false);
    expect(existsSync(join(copy, 'node_modules'))).toBe(false);
    const prebuilds = tempDir('prebuilds-');
    const made = localPrebuilds(prebuilds);
    expect(made.length).toBeGreaterThanOrEqual(2); // canvas and better-sqlite3
    writeFileSync(join(copy, '.prebuild-installrc'), `local-prebuilds=${prebuilds}\n`);
    // github.com's stand-in for the set-up's reachability probe: any loopback answer will do.
    receiver = await startDevReceiver({ project: 'runtime', token: TOKEN });
    cap = createMemoryCap(`pm-runtime-setup-${process.pid}`, LIMIT_MB * 2 ** 20);
    const t0 = Date.now();
    setup = await new Promise((resolve) => {
      const child = spawn('bash', ['-c', 'echo $$ >"$CAP_PROCS" && exec ./install-requirements.sh --runtime --no-node'], {
        cwd: copy,
        env: {
          ...process.env,
          CAP_PROCS: cap.procsFile,
          npm_config_offline: 'true',
          POWER_METER_PREBUILT_PROBE_URL: receiver.url,
          SUDO_USER: '',
          CI: '',
        },
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('close', (code) => resolve({ code, out, seconds: (Date.now() - t0) / 1000 }));
    });
  }, 20 * 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await receiver?.close();
    cap?.close();
  }, 60_000);

  it('succeeds within the limit, using the prebuilt canvas and better-sqlite3 (only the modules without prebuilt binaries compile: i2c-bus, spi-device, pkcs11js)', () => {
    const peakMb = cap.peakAnonBytes() / 2 ** 20;
    const kernelPeak = cap.kernelPeakBytes();
    console.log(
      `runtime set-up under a ${LIMIT_MB} MB limit (cgroup v${cap.version}): ${setup.seconds.toFixed(0)} s, exit ${setup.code}; ` +
        `peak anonymous memory ${peakMb.toFixed(0)} MB, peak with the page cache ${kernelPeak === null ? 'n/a' : `${(kernelPeak / 2 ** 20).toFixed(0)} MB`}, ` +
        `processes killed for memory: ${cap.oomKills()}`,
    );
    expect(setup.code, setup.out).toBe(0);
    expect(cap.oomKills()).toBe(0);
    expect(peakMb).toBeLessThan(LIMIT_MB);
    // The set-up saw the limit and compiled one module at a time; nothing had to compile SQLite.
    expect(setup.out).toMatch(new RegExp(`${LIMIT_MB} MB of memory \\(RAM and swap\\) available: native modules compile one at a time`));
    expect(setup.out).not.toMatch(/CC\(target\) Release\/obj\.target\/sqlite3/);
    expect(setup.out).toMatch(/CXX\(target\) Release\/obj\.target\/i2c/);
    expect(setup.out).not.toMatch(/Unknown env config/);
  });

  it(`leaves at most ${BUDGET.mb} MB and ${BUDGET.files} files of dependencies, and no development tool`, () => {
    const f = footprint(copy);
    console.log(
      `runtime tree: ${f.mb.toFixed(1)} MB in ${f.files} files, ${f.packages} packages (budget ${BUDGET.mb} MB, ${BUDGET.files} files)`,
    );
    expect(setup.out).toContain(`runtime dependencies: ${f.mb.toFixed(1)} MB in ${f.files} files`);
    expect(f.mb).toBeLessThanOrEqual(BUDGET.mb);
    expect(f.files).toBeLessThanOrEqual(BUDGET.files);
    expect(f.forbidden).toEqual([]);
    for (const tool of ['typescript', 'vitest', '@biomejs', 'ethers', 'solc', 'assemblyscript', 'binaryen', '@foundry-rs'])
      expect(existsSync(join(copy, 'node_modules', tool)), tool).toBe(false);
    // The build's temporary tools are gone, and no stray links were left in the workspaces.
    expect(setup.out).toMatch(/building the programs with typescript@[\d.]+ .*from a temporary directory \((\S+), removed afterwards\)/);
    const buildDir = /from a temporary directory \((\S+), removed afterwards\)/.exec(setup.out)![1]!;
    expect(existsSync(buildDir)).toBe(false);
    for (const ws of runtimeClosure(copy).workspaces) expect(existsSync(join(copy, ws, 'node_modules')), ws).toBe(false);
    expect(existsSync(join(copy, 'packages/power-meter/dist/cli.js'))).toBe(true);
    // No development package either: the backend's dev-receiver says where to get it.
    expect(existsSync(join(copy, 'node_modules/@power-meter/dev-node'))).toBe(false);
    const dev = spawnSync(process.execPath, [join(copy, 'packages/power-meter/dist/cli.js'), 'dev-receiver', '--port', '0'], {
      encoding: 'utf8',
    });
    expect(dev.status).toBe(1);
    expect(dev.stderr).toContain('./install-requirements.sh --full');
  });

  it('both programs run from node_modules/.bin: the meter delivers signed readings, the display draws', async () => {
    const work = tempDir('runtime-run-');
    const backend = start(
      join(copy, 'node_modules/.bin/power-meter'),
      ['--sensor', 'sim', '--sim-load', '4', '--window', '1', '--data-dir', join(work, 'data'), '--publish-url', receiver.url],
      { W3BSTREAM_PUBLISHER_TOKEN: TOKEN, POWER_METER_RETRY_MAX_MS: '1000' },
    );
    procs.push(backend);
    const display = start(join(copy, 'node_modules/.bin/power-meter-display'), [
      '--panel',
      'png',
      '--png',
      join(work, 'screen.png'),
      '--data-dir',
      join(work, 'data'),
    ]);
    procs.push(display);
    await until(() => receiver.received.filter((r) => r.verified).length >= 3, 60_000, 'three verified readings');
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    await until(() => existsSync(join(work, 'screen.png')), 60_000, 'the screen image');
    expect(readFileSync(join(work, 'screen.png')).subarray(1, 4).toString()).toBe('PNG');
  }, 150_000);

  it('install.sh installs from it (no TypeScript needed), and refuses sources changed since the build', () => {
    const root = tempDir('runtime-root-');
    const install = () =>
      execFileSync(
        'bash',
        ['-c', 'bash "$0" --root "$1" --user pmruntime --data-dir /srv/pm 2>&1; echo "exit=$?"', join(copy, 'install.sh'), root],
        {
          encoding: 'utf8',
          env: { ...process.env, SUDO_USER: '' },
        },
      );
    const ok = install();
    expect(ok, ok).toMatch(/exit=0$/m);
    expect(existsSync(join(root, 'opt/power-meter/packages/power-meter/dist/cli.js'))).toBe(true);
    expect(footprint(join(root, 'opt/power-meter')).forbidden).toEqual([]);
    const src = join(copy, 'packages/meter-files/src/index.ts');
    const before = readFileSync(src);
    writeFileSync(src, `${before}\n// changed after the build\n`);
    try {
      const stale = install();
      expect(stale).toMatch(/exit=1$/m);
      expect(stale).toMatch(/the sources in .* changed since \.\/install-requirements\.sh built them/);
    } finally {
      writeFileSync(src, before);
    }
  }, 120_000);

  it('a second run does nothing', () => {
    const again = execFileSync('./install-requirements.sh', ['--runtime', '--no-node'], {
      cwd: copy,
      encoding: 'utf8',
      env: { ...process.env, npm_config_offline: 'true', POWER_METER_PREBUILT_PROBE_URL: receiver.url, SUDO_USER: '', CI: '' },
    });
    expect(again).toMatch(/npm dependencies up to date \(runtime set-up\)/);
    expect(again).not.toMatch(/building the programs/);
  }, 120_000);
});
