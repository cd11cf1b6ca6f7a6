import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/processes.js';

/*
 * install-requirements.sh against a stand-in machine: apt, dpkg, raspi-config, usermod, node
 * and npm are small scripts that keep their state in files and log every call, and PATH holds
 * nothing else. That proves what the script asks the system to do (and, on a second run, that it
 * asks nothing) without root, network or a Raspberry Pi. CI also runs the real script (.ci/run).
 */

const REAL = ['bash', 'grep', 'tr', 'dirname', 'env', 'cat', 'touch', 'mkdir', 'cp', 'chmod', 'rm'];

interface Machine {
  dir: string; // the project checkout (a copy of the script plus a package-lock.json)
  state: string;
  sysroot: string;
  bin: string;
  run(env?: Record<string, string>, args?: string[]): { code: number | null; out: string; calls: string[] };
}

/** A stand-in command; `log: false` for the ones that only ask (id, getent, dpkg-query). */
const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

function stub(bin: string, name: string, body: string, log = true) {
  const record = log ? `echo "${name} $*" >>"$STATE/calls"\n` : '';
  writeFileSync(join(bin, name), `#!/usr/bin/env bash\n${record}${body}\n`);
  chmodSync(join(bin, name), 0o755);
}

function machine(opts: { installed?: string[]; node?: string | null; uid?: number; user?: string; groups?: string } = {}): Machine {
  const top = mkdtempSync(join(tmpdir(), 'reqs-'));
  temps.push(top);
  const dir = join(top, 'checkout');
  const bin = join(top, 'bin');
  const state = join(top, 'state');
  const sysroot = join(top, 'sysroot');
  for (const d of [dir, bin, state, sysroot]) mkdirSync(d);
  copyFileSync(join(ROOT, 'install-requirements.sh'), join(dir, 'install-requirements.sh'));
  writeFileSync(join(dir, 'package-lock.json'), '{}');
  writeFileSync(join(state, 'installed'), (opts.installed ?? []).map((p) => `${p}\n`).join(''));
  writeFileSync(join(state, 'groups'), opts.groups ?? opts.user ?? 'root');
  writeFileSync(join(state, 'calls'), '');
  for (const tool of REAL) {
    const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (found.startsWith('/')) symlinkSync(found, join(bin, tool));
  }
  // npm: "ci" produces what npm ci would (the lock marker and the native addons).
  writeFileSync(
    join(state, 'npm-stub'),
    `#!/usr/bin/env bash\necho "npm $* JOBS=\${JOBS:-}" >>"$STATE/calls"\nif [ "$1" = ci ]; then for f in canvas/build/Release/canvas.node better-sqlite3/build/Release/better_sqlite3.node i2c-bus/build/Release/i2c.node spi-device/build/Release/spi.node; do mkdir -p "node_modules/\${f%/*}"; touch "node_modules/$f"; done; touch node_modules/.package-lock.json; rm -f "$STATE/abi-changed"; fi\n`,
  );
  // node -p prints the version; node -e (loading the native addons) fails after a Node upgrade.
  const nodeStub = `#!/usr/bin/env bash\ncase "$1" in -p) cat "$STATE/node-version" ;; -e) [ ! -e "$STATE/abi-changed" ] ;; esac\n`;
  writeFileSync(join(state, 'node-stub'), nodeStub);
  if (opts.node !== null) {
    writeFileSync(join(state, 'node-version'), opts.node ?? '20.20.0');
    writeFileSync(join(bin, 'node'), nodeStub, { mode: 0o755 });
    copyFileSync(join(state, 'npm-stub'), join(bin, 'npm'));
    chmodSync(join(bin, 'npm'), 0o755);
  }
  stub(bin, 'dpkg-query', 'grep -qx "${@: -1}" "$STATE/installed" && printf "install ok installed" || exit 1', false);
  // apt-get install puts the packages in the installed list; Debian's nodejs brings node 20.19.2.
  stub(bin, 'apt-get', `[ "$1" = update ] && exit 0
echo "apt-get frontend=\${DEBIAN_FRONTEND:-}" >>"$STATE/calls"
for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >>"$STATE/installed" ;; esac; done
if grep -qx nodejs "$STATE/installed"; then echo 20.19.2 >"$STATE/node-version"; cp "$STATE/node-stub" "$BIN/node"; chmod +x "$BIN/node"; fi
if grep -qx npm "$STATE/installed"; then cp "$STATE/npm-stub" "$BIN/npm"; chmod +x "$BIN/npm"; fi
true`);
  stub(bin, 'sudo', 'exec "$@"');
  stub(bin, 'id', `case "$1" in -u) echo "$FAKE_UID" ;; -un) echo "$FAKE_USER" ;; -nG) cat "$STATE/groups" ;; *) exit 1 ;; esac`, false);
  stub(bin, 'getent', '[ "$1" = group ] && case "$2" in i2c|spi|gpio) echo "$2:x:990:" ;; *) exit 2 ;; esac', false);
  stub(bin, 'usermod', 'printf " %s" "$2" >>"$STATE/groups"');
  stub(bin, 'runuser', 'shift 3; exec "$@"');
  stub(bin, 'raspi-config', `case "$2" in get_*) cat "$STATE/$\{2#get_}" 2>/dev/null || echo 1 ;; do_*) echo "$3" >"$STATE/$\{2#do_}" ;; esac`);
  const run = (env: Record<string, string> = {}, args: string[] = []) => {
    writeFileSync(join(state, 'calls'), '');
    const r = spawnSync(join(bin, 'bash'), [join(dir, 'install-requirements.sh'), ...args], {
      encoding: 'utf8',
      env: { PATH: bin, STATE: state, BIN: bin, FAKE_UID: String(opts.uid ?? 0), FAKE_USER: opts.user ?? 'root', POWER_METER_SYSROOT: sysroot, ...env },
    });
    const calls = readFileSync(join(state, 'calls'), 'utf8').trim().split('\n').filter(Boolean);
    return { code: r.status, out: `${r.stdout}${r.stderr}`, calls };
  };
  return { dir, state, sysroot, bin, run };
}

const ALL = ['build-essential', 'python3', 'pkg-config', 'libcairo2-dev', 'libpango1.0-dev', 'libjpeg-dev', 'libgif-dev', 'librsvg2-dev', 'fonts-dejavu-core', 'openssl', 'shellcheck', 'systemd', 'ca-certificates'];

describe('install-requirements.sh', () => {
  it('on a fresh Debian without Node: installs the packages and Node, npm ci with JOBS=max, builds; a second run installs nothing', () => {
    const m = machine({ node: null });
    const first = m.run();
    expect(first.code).toBe(0);
    const install = first.calls.find((c) => c.startsWith('apt-get') && c.includes(' install '))!;
    for (const p of [...ALL, 'nodejs', 'npm']) expect(install.split(' ')).toContain(p);
    expect(install).not.toMatch(/i2c-tools|gpiod/); // Pi-only
    expect(first.calls).toContain('apt-get frontend=noninteractive'); // never stops at a debconf question
    expect(first.calls).toContain('npm ci --no-audit --no-fund JOBS=max');
    expect(first.calls).toContain('npm run build --silent JOBS=');
    expect(first.calls.some((c) => c.startsWith('raspi-config') || c.startsWith('usermod'))).toBe(false);
    expect(first.out).not.toMatch(/reboot/i);

    const second = m.run();
    expect(second.code).toBe(0);
    expect(second.calls).toEqual(['npm run build --silent JOBS=']);
    expect(second.out).toMatch(/system packages already installed/);
    expect(second.out).toMatch(/npm dependencies up to date/);

    // Native addons that no longer load (Node upgraded underneath) or are gone: npm ci again.
    writeFileSync(join(m.state, 'abi-changed'), '');
    expect(m.run().calls).toContain('npm ci --no-audit --no-fund JOBS=max');
    expect(m.run().calls).not.toContain('npm ci --no-audit --no-fund JOBS=max');
    rmSync(join(m.dir, 'node_modules/spi-device/build/Release/spi.node'));
    expect(m.run().calls).toContain('npm ci --no-audit --no-fund JOBS=max');
  });

  it('installs only what is missing, through sudo when not root', () => {
    const m = machine({ installed: ALL.filter((p) => p !== 'shellcheck'), uid: 1000, user: 'alice' });
    const r = m.run();
    expect(r.code).toBe(0);
    // The frontend setting must survive sudo's environment reset: it goes through env.
    expect(r.calls).toContain('sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck');
    expect(r.calls.some((c) => c.startsWith('runuser'))).toBe(false); // npm runs as alice already
  });

  it('needs no sudo when the system part is done; says so when it is needed and missing', () => {
    const done = machine({ installed: ALL, uid: 1000, user: 'alice' });
    rmSync(join(done.bin, 'sudo'));
    const ok = done.run();
    expect(ok.code).toBe(0);
    expect(ok.calls).toContain('npm ci --no-audit --no-fund JOBS=max');
    const missing = machine({ installed: [], uid: 1000, user: 'alice' });
    rmSync(join(missing.bin, 'sudo'));
    const r = missing.run();
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/needs root for: apt-get update.*run this script as root, or install sudo/);
  });

  it('stops before touching anything when the installed Node is older than 20.19, saying where to get one', () => {
    for (const old of ['18.19.0', '20.18.3']) {
      const m = machine({ node: old });
      const r = m.run();
      expect(r.code).toBe(1);
      expect(r.out).toContain(`Node.js ${old} is too old`);
      expect(r.out).toMatch(/>= 20\.19.*nodejs\.org/s);
      expect(r.calls).toEqual([]);
    }
    expect(machine({ node: '22.1.0', installed: ALL }).run().code).toBe(0);
  });

  it('on a Raspberry Pi through sudo: enables I2C and SPI, adds the user to i2c, spi and gpio, runs npm as the user, says a reboot is needed', () => {
    const m = machine({ installed: ALL, user: 'root', groups: 'pi adm' });
    mkdirSync(join(m.sysroot, 'proc/device-tree'), { recursive: true });
    writeFileSync(join(m.sysroot, 'proc/device-tree/model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
    const first = m.run({ SUDO_USER: 'pi' });
    expect(first.code).toBe(0);
    expect(first.calls).toContain('apt-get install -y -qq --no-install-recommends i2c-tools gpiod');
    expect(first.calls).toContain('raspi-config nonint do_i2c 0');
    expect(first.calls).toContain('raspi-config nonint do_spi 0');
    for (const g of ['i2c', 'spi', 'gpio']) expect(first.calls).toContain(`usermod -aG ${g} pi`);
    // npm runs as pi (node_modules must not be root's), with JOBS=max and the caller's PATH.
    expect(first.calls.some((c) => /^runuser -u pi -- env PATH=\S+ env JOBS=max npm ci --no-audit --no-fund$/.test(c))).toBe(true);
    expect(first.calls).toContain('npm ci --no-audit --no-fund JOBS=max');
    expect(first.calls.some((c) => /^runuser -u pi -- env PATH=\S+ npm run build --silent$/.test(c))).toBe(true);
    expect(first.out).toMatch(/REBOOT NEEDED/);

    // After the reboot: the device nodes exist, everything is enabled: nothing to do, nothing to say.
    mkdirSync(join(m.sysroot, 'dev'));
    writeFileSync(join(m.sysroot, 'dev/i2c-1'), '');
    writeFileSync(join(m.sysroot, 'dev/spidev0.0'), '');
    const second = m.run({ SUDO_USER: 'pi' });
    expect(second.code).toBe(0);
    expect(second.calls.some((c) => /^(apt-get|usermod|raspi-config nonint do_|npm ci)/.test(c))).toBe(false);
    expect(second.out).toMatch(/no reboot needed/);
  });

  it('on a Pi whose interfaces load at once: only a new login is needed for the groups', () => {
    const m = machine({ installed: [...ALL, 'i2c-tools', 'gpiod'], user: 'root', groups: 'pi' });
    mkdirSync(join(m.sysroot, 'proc/device-tree'), { recursive: true });
    writeFileSync(join(m.sysroot, 'proc/device-tree/model'), 'Raspberry Pi Zero 2 W Rev 1.0\0');
    mkdirSync(join(m.sysroot, 'dev'));
    writeFileSync(join(m.sysroot, 'dev/i2c-1'), '');
    writeFileSync(join(m.sysroot, 'dev/spidev0.0'), '');
    const r = m.run({ SUDO_USER: 'pi' });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/LOG OUT AND BACK IN/);
    expect(r.out).not.toMatch(/REBOOT NEEDED/);
  });

  it('installs the test-only broker (mosquitto) only with --test or CI=true, never by default or on a Pi', () => {
    const plain = machine({ installed: ALL });
    expect(plain.run().calls.some((c) => c.includes('mosquitto'))).toBe(false);
    const pi = machine({ installed: ALL, user: 'root', groups: 'pi' });
    mkdirSync(join(pi.sysroot, 'proc/device-tree'), { recursive: true });
    writeFileSync(join(pi.sysroot, 'proc/device-tree/model'), 'Raspberry Pi 4 Model B Rev 1.4\0');
    expect(pi.run({ SUDO_USER: 'pi' }).calls.some((c) => c.includes('mosquitto'))).toBe(false);
    expect(machine({ installed: ALL }).run({}, ['--test']).calls).toContain('apt-get install -y -qq --no-install-recommends mosquitto');
    expect(machine({ installed: ALL }).run({ CI: 'true' }).calls).toContain('apt-get install -y -qq --no-install-recommends mosquitto');
    const typo = machine({ installed: ALL }).run({}, ['--tests']);
    expect(typo.code).toBe(1);
    expect(typo.out).toMatch(/unknown option --tests \(allowed: --test/);
  });
});
