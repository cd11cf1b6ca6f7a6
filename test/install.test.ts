import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { footprint } from '../scripts/runtime-tree.mjs';
import { ROOT } from './support/processes.js';
import { NO_RESTART_STATUSES } from '@power-meter/service';

const UNITS = ['power-meter.service', 'power-meter-display.service'];
/** The service user named in the fake roots: a name of this run, so it exists on no machine (not even
 *  after a killed run of another copy of the suite), which the "does not exist here" warning needs. */
const USER = `pmtest${randomBytes(4).toString('hex')}`;

/** Each fake root holds a copy of the application (~100 MB): removed after the file's tests. */
const temps: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
// Removing several copies of ~110 MB takes longer than the default hook timeout on a busy machine.
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
}, 180_000);

/** A copy of the working tree (build output included unless `built` is false), so the
 *  "nothing changed" checks cannot see the sources being edited or rebuilt meanwhile. */
function copyCheckout(built = true): string {
  const checkout = tempDir('checkout-');
  const noBuild = built ? '' : `--exclude='./packages/*/dist' --exclude='./packages/*/tsconfig.tsbuildinfo'`;
  execFileSync('bash', ['-c', `tar -C "$1" --exclude=./.git ${noBuild} -cf - . | tar -xf - -C "$2"`, 'copy', ROOT, checkout]);
  return checkout;
}
const INSTALL = join(copyCheckout(), 'install.sh');

function install(args: string[], input = '') {
  const r = spawnSync('bash', [INSTALL, ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, W3BSTREAM_PUBLISHER_TOKEN: '', SUDO_USER: '' },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Every path under dir with its mode, size, mtime and link target: "nothing changed" means equal. */
function snapshot(dir: string): string {
  return execFileSync('find', [dir, '-printf', '%p %m %s %T@ %l\\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
}

// Each test runs install.sh, which stages and copies the application (~110 MB): on a loaded machine
// that takes longer than the default 30 s.
describe('install.sh into a fake root', { timeout: 180_000 }, () => {
  const root = tempDir('fakeroot-');
  const args = ['--root', root, '--no-start', '--user', USER, '--data-dir', '/srv/pm-data', '--prefix', '/opt/power-meter'];
  const first = install(args);

  it('installs the application, the programs, both units (enabled), the data directory, config and token file', () => {
    expect(first.code).toBe(0);
    for (const u of UNITS) {
      const unit = readFileSync(join(root, 'etc/systemd/system', u), 'utf8');
      expect(unit).not.toMatch(/@[A-Z_]+@/);
      expect(unit).toContain(`User=${USER}`);
      expect(unit).toContain('POWER_METER_DATA_DIR=/srv/pm-data');
      expect(unit).toMatch(/ExecStart=\S*node (--\S+ )*\/opt\/power-meter\/packages\/power-meter(-display)?\/dist\/cli\.js/);
      expect(unit).not.toMatch(/TOKEN=/);
      expect(lstatSync(join(root, 'etc/systemd/system/multi-user.target.wants', u)).isSymbolicLink()).toBe(true);
      expect(spawnSync('systemctl', ['--root', root, 'is-enabled', u], { encoding: 'utf8' }).stdout.trim()).toBe('enabled');
    }
    // USER exists only on the machine the fake root is for: said, not refused.
    expect(first.out).toContain(`warning: user ${USER} does not exist here`);
    expect(readFileSync(join(root, 'etc/systemd/system/power-meter.service'), 'utf8')).toContain(
      'EnvironmentFile=-/etc/power-meter/power-meter.env',
    );
    expect(readlinkSync(join(root, 'usr/local/bin/power-meter'))).toBe('/opt/power-meter/packages/power-meter/dist/cli.js');
    expect(readlinkSync(join(root, 'usr/local/bin/power-meter-display'))).toBe('/opt/power-meter/packages/power-meter-display/dist/cli.js');
    const env = statSync(join(root, 'etc/power-meter/power-meter.env'));
    expect(env.mode & 0o777).toBe(0o600);
    expect(env.uid).toBe(process.getuid!()); // root on a real install (sudo ./install.sh)
    expect(JSON.parse(readFileSync(join(root, 'etc/power-meter/config.json'), 'utf8'))).toMatchObject({ publishUrl: '', window: 5 });
    // A staging root (an image) holds no device: no data directory, no key. Each device makes its
    // own on first start (the unit creates the directory as the service user).
    expect(existsSync(join(root, 'srv/pm-data'))).toBe(false);
    expect(first.out).not.toMatch(/device_id\s+0x/);
    expect(first.out).toMatch(/No device key was made: this is a staging root/);
    // At boot, systemd-tmpfiles makes the data directory, owned by the service user, where none exists.
    expect(readFileSync(join(root, 'etc/tmpfiles.d/power-meter.conf'), 'utf8')).toMatch(
      new RegExp(`^d /srv/pm-data 0755 ${USER} ${USER} -$`, 'm'),
    );
    // Only what the programs run: no development tool, no development package (dev-node), no sources.
    const f = footprint(join(root, 'opt/power-meter'));
    expect(f.forbidden).toEqual([]);
    expect(existsSync(join(root, 'opt/power-meter/node_modules/vitest'))).toBe(false);
    expect(existsSync(join(root, 'opt/power-meter/node_modules/better-sqlite3'))).toBe(true);
    expect(existsSync(join(root, 'opt/power-meter/packages/dev-node'))).toBe(false);
    expect(existsSync(join(root, 'opt/power-meter/packages/power-meter/src'))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, 'opt/power-meter/installed.json'), 'utf8'))).toMatchObject({ version: '0.1.0' });
    expect(first.out).toMatch(/systemctl status power-meter/);
  });

  it('the installed program runs from the prefix, and makes its key on its first start', () => {
    const dataDir = tempDir('first-start-');
    const out = execFileSync(
      process.execPath,
      [
        join(root, 'opt/power-meter/packages/power-meter/dist/cli.js'),
        'identity',
        '--json',
        '--data-dir',
        dataDir,
        '--config',
        join(root, 'etc/power-meter/config.json'),
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out).deviceId).toMatch(/^0x[0-9a-f]{40}$/);
  });

  it('leaves the development package out, and the installed dev-receiver says so (exit 1)', () => {
    const app = join(root, 'opt/power-meter');
    expect(existsSync(join(app, 'packages/dev-node'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/@power-meter/dev-node'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/@electric-sql/pglite'))).toBe(false);
    expect(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).workspaces).not.toContain('packages/dev-node');
    const r = spawnSync(process.execPath, [join(app, 'packages/power-meter/dist/cli.js'), 'dev-receiver', '--port', '0'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('development package (@power-meter/dev-node), which this installation does not have');
  });

  it('units pass systemd-analyze verify with empty stderr and score 2.0 / 1.5 or better', () => {
    for (const u of UNITS) {
      const v = spawnSync('systemd-analyze', ['verify', join(root, 'etc/systemd/system', u)], { encoding: 'utf8' });
      expect(v.stderr).toBe('');
      expect(v.status).toBe(0);
    }
    const score = (u: string) => {
      const s = spawnSync('systemd-analyze', ['security', '--offline=true', join(root, 'etc/systemd/system', u)], { encoding: 'utf8' });
      return Number(/Overall exposure level for \S+: ([\d.]+)/.exec(s.stdout + s.stderr)![1]);
    };
    const backend = score('power-meter.service');
    const display = score('power-meter-display.service');
    // Recorded in the test output (and in the README's "Installing as services").
    console.log(`systemd-analyze security --offline=true: power-meter.service ${backend}, power-meter-display.service ${display}`);
    expect(backend).toBeLessThanOrEqual(2.0);
    expect(display).toBeLessThanOrEqual(1.5);
  });

  it('gives each unit exactly its devices, groups and network, without the settings that break Node on a Pi', () => {
    const unit = (u: string) => readFileSync(join(root, 'etc/systemd/system', u), 'utf8');
    const backend = unit('power-meter.service');
    const display = unit('power-meter-display.service');
    for (const text of [backend, display]) {
      // MemoryDenyWriteExecute kills V8's JIT; PrivateUsers hides the groups that open the devices.
      expect(text).not.toMatch(/^(MemoryDenyWriteExecute|PrivateUsers)=(yes|true|1)/m);
      expect(text).not.toMatch(/^User=root$/m);
      expect(text).toMatch(/^NoNewPrivileges=yes$/m);
      expect(text).toMatch(/^ProtectSystem=strict$/m);
      expect(text).toMatch(/^DevicePolicy=closed$/m);
      expect(text).toMatch(/^Restart=on-failure$/m);
      expect(text).toMatch(/^WantedBy=multi-user\.target$/m);
      // Failures systemd can see: readiness and a watchdog pinged from the event loop, no
      // restart loop for what a restart cannot fix (EXIT_STATUSES: settings, stored data, the data directory).
      expect(text).toMatch(/^Type=notify$/m);
      expect(text).toMatch(/^NotifyAccess=all$/m);
      expect(text).toMatch(/^WatchdogSec=\d+$/m);
      expect(text).toMatch(new RegExp(`^RestartPreventExitStatus=${NO_RESTART_STATUSES.join(' ')}$`, 'm'));
    }
    expect(backend).toMatch(/^SyslogIdentifier=power-meter$/m);
    expect(display).toMatch(/^SyslogIdentifier=power-meter-display$/m);
    expect(display).toMatch(/^StateDirectory=power-meter-display$/m);
    expect(backend).toMatch(/^SupplementaryGroups=i2c$/m);
    expect(backend).toMatch(/^ReadWritePaths=\/srv\/pm-data$/m);
    expect(backend).toMatch(/^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$/m);
    expect(backend).toMatch(/^After=network-online\.target/m);
    expect(backend.match(/^DeviceAllow=.*$/gm)).toEqual(['DeviceAllow=/dev/i2c-1 rw']);
    expect(display).toMatch(/^SupplementaryGroups=spi gpio$/m);
    expect(display).toMatch(/^PrivateNetwork=yes$/m);
    expect(display).toMatch(/^Environment=MALLOC_ARENA_MAX=2$/m); // measured by npm run bench as the unit runs it
    expect(display).toMatch(/^RestrictAddressFamilies=AF_UNIX$/m);
    expect(display).not.toMatch(/^ReadWritePaths=/m);
    expect(display).not.toMatch(/power-meter\.service/); // shows "no data" on its own
    expect(display.match(/^DeviceAllow=.*$/gm)).toEqual(['DeviceAllow=/dev/spidev0.0 rw', 'DeviceAllow=char-gpiochip rw']);
  });

  it('is idempotent and never overwrites the config or the token file', () => {
    writeFileSync(join(root, 'etc/power-meter/config.json'), '{"publishUrl":"https://example.invalid/x"}');
    writeFileSync(join(root, 'etc/power-meter/power-meter.env'), 'W3BSTREAM_PUBLISHER_TOKEN=tok-7f3e9d51c2\n', { mode: 0o600 });
    const before = snapshot(root);
    const again = install(args);
    expect(again.code).toBe(0);
    expect(again.out).toContain('nothing changed');
    expect(again.out).not.toMatch(/installed the application|wrote|enabled|created/);
    expect(snapshot(root)).toBe(before);
    expect(readFileSync(join(root, 'etc/power-meter/power-meter.env'), 'utf8')).toBe('W3BSTREAM_PUBLISHER_TOKEN=tok-7f3e9d51c2\n');
    expect(again.out).not.toContain('tok-7f3e9d51c2');
  });

  it('--uninstall keeps data and settings; --purge --yes removes the data too', () => {
    // What a device would have made on its first start.
    mkdirSync(join(root, 'srv/pm-data/identity'), { recursive: true });
    writeFileSync(join(root, 'srv/pm-data/keep-me'), 'x');
    const un = install([...args, '--uninstall']);
    expect(un.code).toBe(0);
    for (const u of UNITS) {
      expect(existsSync(join(root, 'etc/systemd/system', u))).toBe(false);
      expect(existsSync(join(root, 'etc/systemd/system/multi-user.target.wants', u))).toBe(false);
    }
    expect(existsSync(join(root, 'usr/local/bin/power-meter'))).toBe(false);
    expect(existsSync(join(root, 'opt/power-meter'))).toBe(false);
    expect(existsSync(join(root, 'srv/pm-data/keep-me'))).toBe(true);
    expect(existsSync(join(root, 'srv/pm-data/identity'))).toBe(true);
    expect(existsSync(join(root, 'etc/power-meter/power-meter.env'))).toBe(true);
    // Exactly what was installed is gone: what remains is the settings, the data and empty folders.
    const left = execFileSync('find', [root, '-type', 'f,l'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((p) => p.slice(root.length))
      .sort();
    expect(left.filter((p) => !p.startsWith('/srv/pm-data/'))).toEqual([
      '/etc/power-meter/config.json',
      '/etc/power-meter/power-meter.env',
    ]);
    const no = install([...args, '--uninstall', '--purge'], 'n\n');
    expect(no.code).toBe(0);
    expect(existsSync(join(root, 'srv/pm-data/keep-me'))).toBe(true);
    expect(existsSync(join(root, 'etc/power-meter/power-meter.env'))).toBe(true);
    const purge = install([...args, '--uninstall', '--purge', '--yes']);
    expect(purge.code).toBe(0);
    expect(existsSync(join(root, 'srv/pm-data'))).toBe(false);
    // Purge also takes the settings and the token: no file of ours is left anywhere.
    expect(existsSync(join(root, 'etc/power-meter'))).toBe(false);
    expect(execFileSync('find', [root, '-type', 'f,l'], { encoding: 'utf8' })).toBe('');
  });

  it('--uninstall needs no service user: the data directory to purge is the one the installed unit names', () => {
    const other = tempDir('fakeroot-nouser-');
    expect(
      install(['--root', other, '--no-start', '--user', USER, '--data-dir', '/srv/pm-other', '--prefix', '/opt/power-meter']).code,
    ).toBe(0);
    mkdirSync(join(other, 'srv/pm-other/identity'), { recursive: true }); // as a device's first start makes it
    const un = install(['--root', other, '--uninstall', '--purge', '--yes']);
    expect(un.out).not.toMatch(/cannot tell which user/);
    expect(un.code).toBe(0);
    expect(existsSync(join(other, 'srv/pm-other'))).toBe(false);
    expect(existsSync(join(other, 'etc/systemd/system/power-meter.service'))).toBe(false);
    // Nothing installed and no --data-dir: there is nothing to purge, and it says what to pass.
    const again = install(['--root', other, '--uninstall', '--purge', '--yes']);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/pass --data-dir DIR/);
  });

  it('limits each unit to its own device node, configurable', () => {
    const other = tempDir('fakeroot-');
    expect(install(['--root', other, '--no-start', '--user', USER, '--i2c-bus', '3', '--spi', '1.2']).code).toBe(0);
    // The default data directory is in the user's home: the folder between is made the user's too.
    expect(
      readFileSync(join(other, 'etc/tmpfiles.d/power-meter.conf'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('d ')),
    ).toEqual([`d /home/${USER}/data 0755 ${USER} ${USER} -`, `d /home/${USER}/data/power-meter 0755 ${USER} ${USER} -`]);
    expect(readFileSync(join(other, 'etc/systemd/system/power-meter.service'), 'utf8')).toMatch(/^DeviceAllow=\/dev\/i2c-3 rw$/m);
    expect(readFileSync(join(other, 'etc/systemd/system/power-meter-display.service'), 'utf8')).toMatch(
      /^DeviceAllow=\/dev\/spidev1\.2 rw$/m,
    );
    expect(install(['--root', other, '--spi', 'zero']).out).toMatch(/--spi must look like 0\.0/);
  });

  it("refuses a staging root whose data directory holds a device (its key would be every device's), changing nothing", () => {
    const other = tempDir('fakeroot-');
    mkdirSync(join(other, 'srv/pm-data/identity'), { recursive: true });
    writeFileSync(join(other, 'srv/pm-data/identity/device.key'), 'not a real key');
    const before = snapshot(other);
    const r = install(['--root', other, '--no-start', '--user', USER, '--data-dir', '/srv/pm-data']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/srv\/pm-data holds a device's data .*every device made from this root would share that identity/);
    expect(snapshot(other)).toBe(before);
  });

  it('an upgrade with no options keeps the installed user, data directory, prefix and device nodes', () => {
    const other = tempDir('fakeroot-');
    const opts = [
      '--root',
      other,
      '--no-start',
      '--user',
      USER,
      '--data-dir',
      '/srv/pm-kept',
      '--prefix',
      '/opt/pm-kept',
      '--i2c-bus',
      '3',
      '--spi',
      '1.2',
    ];
    expect(install(opts).code).toBe(0);
    const units = () => UNITS.map((u) => readFileSync(join(other, 'etc/systemd/system', u), 'utf8')).join('\n');
    const before = units();
    const again = install(['--root', other, '--no-start']);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('nothing changed');
    expect(units()).toBe(before);
    expect(before).toMatch(/^DeviceAllow=\/dev\/i2c-3 rw$/m);
    expect(before).toContain(`User=${USER}`);
  });

  it('builds a staging root on a machine without systemd: the same enablement links, idempotent', () => {
    // Every command of this machine but systemctl (a container or build root without systemd).
    const bin = tempDir('no-systemctl-');
    for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'])
      for (const name of existsSync(dir) ? readdirSync(dir) : [])
        if (name !== 'systemctl' && !existsSync(join(bin, name))) symlinkSync(join(dir, name), join(bin, name));
    const run = (args: string[]) => {
      const r = spawnSync('bash', [INSTALL, ...args], { encoding: 'utf8', env: { ...process.env, PATH: bin, SUDO_USER: '' } });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };
    const other = tempDir('fakeroot-nosystemd-');
    const args = ['--root', other, '--user', USER, '--data-dir', '/srv/pm-data'];
    const r = run(args);
    expect(r.code, r.out).toBe(0);
    for (const u of UNITS) {
      expect(readlinkSync(join(other, 'etc/systemd/system/multi-user.target.wants', u))).toBe(`/etc/systemd/system/${u}`);
      // What systemd itself reads from them.
      expect(spawnSync('systemctl', ['--root', other, 'is-enabled', u], { encoding: 'utf8' }).stdout.trim()).toBe('enabled');
    }
    const again = run(args);
    expect(again.out).toContain('nothing changed');
    expect(run([...args, '--uninstall']).code).toBe(0);
    expect(existsSync(join(other, 'etc/systemd/system/multi-user.target.wants/power-meter.service'))).toBe(false);
  });

  it('refuses to replace or delete a directory that is not its own', () => {
    const other = tempDir('fakeroot-');
    const base = ['--root', other, '--no-start', '--user', USER];
    expect(install([...base, '--prefix', '/usr/local']).out).toMatch(/\/usr\/local is a system or home directory/);
    expect(install([...base, '--data-dir', `/home/${USER}`]).out).toContain(`/home/${USER} is a system or home directory`);
    expect(install([...base, '--data-dir', 'data']).out).toMatch(/give an absolute path/);
    // Would be a specifier in a unit file, or break the substitution.
    expect(install([...base, '--data-dir', '/srv/50%']).out).toMatch(/only letters, digits/);
    expect(install([...base, '--prefix', '/opt/a#b']).out).toMatch(/only letters, digits/);
    expect(install(['--root', other, '--user', 'x;y']).out).toMatch(/not a plain user name/);
    mkdirSync(join(other, 'opt/tools'), { recursive: true });
    writeFileSync(join(other, 'opt/tools/precious'), 'x');
    for (const extra of [[], ['--uninstall']]) {
      const r = install([...base, '--prefix', '/opt/tools', ...extra]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/\/opt\/tools exists and is not a power-meter installation/);
    }
    expect(readFileSync(join(other, 'opt/tools/precious'), 'utf8')).toBe('x');
    // Uninstall leaves a power-meter command that is not its own link alone.
    mkdirSync(join(other, 'usr/local/bin'), { recursive: true });
    writeFileSync(join(other, 'usr/local/bin/power-meter'), '#!/bin/sh\n');
    expect(install([...base, '--uninstall']).code).toBe(0);
    expect(existsSync(join(other, 'usr/local/bin/power-meter'))).toBe(true);
  });

  it('refuses to run services as root and rejects unknown options', () => {
    expect(install(['--root', root, '--user', 'root']).out).toMatch(/must not run as root/);
    const bad = install(['--frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/unknown option --frobnicate/);
  });
});

describe('install.sh from a checkout that was never built', () => {
  it('builds it first, then installs programs that run', () => {
    // The working tree as cloned and `npm ci`-ed, without any build output.
    const checkout = copyCheckout(false);
    expect(existsSync(join(checkout, 'packages/power-meter/dist'))).toBe(false);
    const root = tempDir('fakeroot-');
    const r = spawnSync('bash', [join(checkout, 'install.sh'), '--root', root, '--no-start', '--user', USER, '--data-dir', '/srv/pm'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    for (const p of ['power-meter', 'power-meter-display']) {
      expect(existsSync(join(checkout, 'packages', p, 'dist/cli.js'))).toBe(true);
      const help = execFileSync(process.execPath, [join(root, 'opt/power-meter/packages', p, 'dist/cli.js'), '--help'], {
        encoding: 'utf8',
      });
      expect(help).toMatch(new RegExp(`^Usage: ${p} `));
    }
    expect(r.stdout).toMatch(/No device key was made/);
  }, 180_000);
});

/** Parses build-release.sh's footprint line ("runtime dependencies: 16.6 MB in 1360 files ..."). */
function footprintLine(out: string): { mb: number; files: number } {
  const m = /runtime dependencies: ([\d.]+) MB in (\d+) files/.exec(out);
  if (!m) throw new Error(`no footprint line in:\n${out}`);
  return { mb: Number(m[1]), files: Number(m[2]) };
}

// Building the release copies the runtime tree (~17 MB) and packs it; installing it copies it again.
describe('a release tarball (scripts/build-release.sh), installed without npm or a network', { timeout: 300_000 }, () => {
  const checkout = join(INSTALL, '..');
  const out = tempDir('release-');
  const built = spawnSync('bash', [join(checkout, 'scripts/build-release.sh'), '--out', out], { encoding: 'utf8' });
  const tarball = readdirSync(out).find((f) => f.endsWith('.tar.gz')) ?? '';
  const unpacked = tempDir('release-x-');
  if (tarball) execFileSync('tar', ['-xzf', join(out, tarball), '-C', unpacked]);
  const top = join(unpacked, tarball.replace(/\.tar\.gz$/, ''));
  /** install.sh from a release: npm is a trap that records any call, and there is no network at all (a new network namespace). */
  const npmLog = join(tempDir('npm-trap-'), 'calls');
  const trapDir = tempDir('npm-trap-bin-');
  writeFileSync(join(trapDir, 'npm'), `#!/bin/sh\necho "npm $*" >>${npmLog}\nexit 97\n`, { mode: 0o755 });
  const installRelease = (dir: string, args: string[]) => {
    const r = spawnSync('unshare', ['--net', 'bash', join(dir, 'install.sh'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${trapDir}:${process.env.PATH}`, SUDO_USER: '' },
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  it('holds the built programs and their runtime dependencies only, within the budget, for this CPU and Node ABI', () => {
    expect(built.status, built.stdout + built.stderr).toBe(0);
    expect(tarball).toMatch(/^power-meter-0\.1\.0-linux-\w+\.tar\.gz$/);
    const f = footprintLine(built.stdout);
    console.log(`release ${tarball}: runtime dependencies ${f.mb} MB in ${f.files} files (budget 60 MB, 1500 files)`);
    expect(f.mb).toBeLessThanOrEqual(60);
    expect(f.files).toBeLessThanOrEqual(1500);
    expect(footprint(top).forbidden).toEqual([]);
    const release = JSON.parse(readFileSync(join(top, 'release.json'), 'utf8'));
    expect(release).toMatchObject({ version: '0.1.0', nodeArch: process.arch, modulesAbi: process.versions.modules });
    const files = execFileSync('tar', ['-tzf', join(out, tarball)], { encoding: 'utf8' }).split('\n');
    // Built JavaScript, no sources, no applet host, no device state of the machine that built it.
    expect(files.some((p) => p.endsWith('packages/power-meter/dist/cli.js'))).toBe(true);
    expect(files.filter((p) => /\/src\/.*\.ts$|applet-host|\.d\.ts$|\/identity\/|\.sqlite|\.key$/.test(p))).toEqual([]);
    expect(files.some((p) => p.endsWith('/install.sh'))).toBe(true);
    expect(files.some((p) => p.endsWith('/systemd/power-meter.service'))).toBe(true);
  });

  it('install.sh installs it into a staging root with no npm and no network; the programs run; no key is made', () => {
    const root = tempDir('fakeroot-release-');
    const r = installRelease(top, ['--root', root, '--user', USER, '--data-dir', '/srv/pm']);
    expect(r.code, r.out).toBe(0);
    expect(existsSync(npmLog) ? readFileSync(npmLog, 'utf8') : '').toBe('');
    expect(existsSync(join(root, 'srv/pm'))).toBe(false);
    expect(execFileSync('find', [root, '-name', 'identity', '-o', '-name', '*.sqlite'], { encoding: 'utf8' })).toBe('');
    for (const p of ['power-meter', 'power-meter-display']) {
      const v = execFileSync(process.execPath, [join(root, 'opt/power-meter/packages', p, 'dist/cli.js'), '--version'], {
        encoding: 'utf8',
      });
      expect(v.trim()).toBe('0.1.0');
    }
    expect(JSON.parse(readFileSync(join(root, 'opt/power-meter/installed.json'), 'utf8')).commit).toBe(
      JSON.parse(readFileSync(join(top, 'release.json'), 'utf8')).commit,
    );
  });

  it('refuses a downgrade before changing anything; an upgrade says what it replaces', () => {
    const root = tempDir('fakeroot-release-');
    expect(installRelease(top, ['--root', root, '--user', USER]).code).toBe(0);
    const withVersion = (version: string) => {
      const dir = join(tempDir(`release-${version}-`), 'r');
      execFileSync('cp', ['-a', top, dir]);
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }));
      return dir;
    };
    const before = snapshot(root);
    const down = installRelease(withVersion('0.0.9'), ['--root', root]);
    expect(down.code).toBe(1);
    expect(down.out).toMatch(
      /REFUSED: \/opt\/power-meter holds power-meter 0\.1\.0, and this is 0\.0\.9, an older release\. Nothing was changed/,
    );
    expect(snapshot(root)).toBe(before);
    const up = installRelease(withVersion('0.2.0'), ['--root', root]);
    expect(up.code, up.out).toBe(0);
    expect(up.out).toMatch(/upgrading power-meter 0\.1\.0 to 0\.2\.0/);
    expect(up.out).toMatch(/installed the application in \/opt\/power-meter: 0\.2\.0\b.*, replacing 0\.1\.0\b/);
    expect(JSON.parse(readFileSync(join(root, 'opt/power-meter/package.json'), 'utf8')).version).toBe('0.2.0');
  });
});

describe('shell scripts', () => {
  it('pass shellcheck', () => {
    const r = spawnSync(
      'shellcheck',
      [join(ROOT, 'install.sh'), join(ROOT, 'install-requirements.sh'), join(ROOT, '.ci/run'), join(ROOT, 'scripts/build-release.sh')],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readdirSync(join(ROOT, 'systemd')).sort()).toEqual(['power-meter-display.service', 'power-meter.service']);
  });
});
