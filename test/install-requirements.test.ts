import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/processes.js';

/*
 * install-requirements.sh against a stand-in machine: apt, dpkg, raspi-config, usermod, node
 * and npm are small scripts that keep their state in files and log every call, and PATH holds
 * nothing else. That proves what the script asks the system to do (and, on a second run, that it
 * asks nothing) without root, network or a Raspberry Pi. CI also runs the real script (.ci/run).
 */

const REAL = [
  'bash',
  'grep',
  'tr',
  'dirname',
  'env',
  'cat',
  'touch',
  'mkdir',
  'cp',
  'chmod',
  'rm',
  'awk',
  'sed',
  'head',
  'cut',
  'readlink',
  'mktemp',
  'curl',
  'sha256sum',
  'tar',
  'xz',
];

interface Machine {
  dir: string; // the project checkout (a copy of the script plus a package-lock.json)
  state: string;
  sysroot: string;
  bin: string;
  run(env?: Record<string, string>, args?: string[]): { code: number | null; out: string; calls: string[] };
  /** The same, without blocking this process (for tests that serve something to the script). */
  runAsync(env?: Record<string, string>, args?: string[]): Promise<{ code: number | null; out: string; calls: string[] }>;
}

/** A stand-in command; `log: false` for the ones that only ask (id, getent, dpkg-query). */
const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** What npm ci leaves behind (stand-in): the native modules, each with its binding.gyp and built module. */
const NPM_CI =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion (${f%/*}), not a template
  'for d in canvas better-sqlite3 i2c-bus spi-device pkcs11js; do mkdir -p "node_modules/$d"; touch "node_modules/$d/binding.gyp"; done; for f in canvas/build/Release/canvas.node better-sqlite3/build/Release/better_sqlite3.node i2c-bus/build/Release/i2c.node spi-device/build/Release/spi.node pkcs11js/build/Release/pkcs11.node; do mkdir -p "node_modules/${f%/*}"; touch "node_modules/$f"; done; touch node_modules/.package-lock.json';

/**
 * What npm ci's install scripts would see (stand-in): prebuild-install's setting in its config
 * file, and node-gyp's headers from npm's environment (npm warns about that) or from the shell
 * npm runs the scripts with (--script-shell, the set-up's wrapper). npm itself must never get
 * npm_config_nodedir.
 */
const NPM_ENV = [
  'nd=""',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
  'for a in "$@"; do case "$a" in --script-shell=*) nd="$(env -i "${a#*=}" -c \'echo "$npm_config_nodedir"\')" ;; esac; done',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
  'echo "npm-env prebuild_rc=$(grep -h buildFromSource .prebuild-installrc ../.prebuild-installrc 2>/dev/null) nodedir=$nd npm_sees_nodedir=${npm_config_nodedir:-}" >>"$STATE/calls"',
].join('; ');

/**
 * node: `-p` prints the version (or the modules ABI); the project's scripts (*.mjs) and the
 * github.com probe run on the real Node; TypeScript's compiler is recorded, not run.
 */
function nodeStubScript(version: string, abi: string): string {
  return `#!/usr/bin/env bash
case "$1" in
  -p) if [ "$2" = process.versions.modules ]; then ${abi}; else ${version}; fi ;;
  --no-warnings | *.mjs) exec ${process.execPath} "$@" ;;
  */typescript/bin/tsc) shift; echo "tsc $*" >>"$STATE/calls" ;;
esac
`;
}

function stub(bin: string, name: string, body: string, log = true) {
  const record = log ? `echo "${name} $*" >>"$STATE/calls"\n` : '';
  writeFileSync(join(bin, name), `#!/usr/bin/env bash\n${record}${body}\n`);
  chmodSync(join(bin, name), 0o755);
}

interface MachineOptions {
  installed?: string[];
  node?: string | null;
  uid?: number;
  user?: string;
  groups?: string;
  /** What `apt-cache policy nodejs` offers (Debian 12: 18.19.0, Debian 13: 20.19.2). */
  aptNode?: string;
  /** `dpkg --print-architecture` and `uname -m`. */
  debArch?: string;
  machineArch?: string;
}

function machine(opts: MachineOptions = {}): Machine {
  const top = mkdtempSync(join(tmpdir(), 'reqs-'));
  temps.push(top);
  const dir = join(top, 'checkout');
  const bin = join(top, 'bin');
  const state = join(top, 'state');
  const sysroot = join(top, 'sysroot');
  for (const d of [dir, bin, state, sysroot]) mkdirSync(d);
  copyFileSync(join(ROOT, 'install-requirements.sh'), join(dir, 'install-requirements.sh'));
  // What the script reads to derive the runtime set-up (scripts/runtime-tree.mjs): the manifests,
  // the lock, the TypeScript configs and sources (its build record hashes them).
  execFileSync('bash', [
    '-c',
    'cd "$1" && tar -cf - package.json package-lock.json tsconfig.base.json scripts/runtime-tree.mjs packages/*/package.json packages/*/tsconfig.json packages/*/src | tar -xf - -C "$2"',
    'copy',
    ROOT,
    dir,
  ]);
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
    `#!/usr/bin/env bash\necho "npm $* JOBS=\${JOBS:-}" >>"$STATE/calls"\nif [ "$1" = ci ]; then ${NPM_ENV}; ${NPM_CI}; elif [ -e .prebuild-installrc ] || [ -n "\${npm_config_nodedir:-}" ]; then echo "npm-env leaked into npm $1" >>"$STATE/calls"; fi\n`,
  );
  // node -p prints the version; node -e (loading the native addons) fails after a Node upgrade.
  // node --no-warnings -e: the script's reachability probe for github.com, run by the real Node.
  const nodeStub = nodeStubScript('cat "$STATE/node-version"', 'cat "$STATE/abi"');
  writeFileSync(join(state, 'abi'), '115');
  writeFileSync(join(state, 'node-stub'), nodeStub);
  if (opts.node !== null) {
    writeFileSync(join(state, 'node-version'), opts.node ?? '20.20.0');
    writeFileSync(join(bin, 'node'), nodeStub, { mode: 0o755 });
    copyFileSync(join(state, 'npm-stub'), join(bin, 'npm'));
    chmodSync(join(bin, 'npm'), 0o755);
  }
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell script's "${@: -1}" (its last argument), not a template
  stub(bin, 'dpkg-query', 'grep -qx "${@: -1}" "$STATE/installed" && printf "install ok installed" || exit 1', false);
  // apt-get install puts the packages in the installed list; Debian's nodejs brings node 20.19.2.
  stub(
    bin,
    'apt-get',
    `[ "$1" = update ] && exit 0
echo "apt-get frontend=\${DEBIAN_FRONTEND:-}" >>"$STATE/calls"
for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >>"$STATE/installed" ;; esac; done
if grep -qx nodejs "$STATE/installed"; then echo 20.19.2 >"$STATE/node-version"; cp "$STATE/node-stub" "$BIN/node"; chmod +x "$BIN/node"; fi
if grep -qx npm "$STATE/installed"; then cp "$STATE/npm-stub" "$BIN/npm"; chmod +x "$BIN/npm"; fi
true`,
  );
  stub(
    bin,
    'apt-cache',
    `[ "$*" = "policy nodejs" ] && printf 'nodejs:\\n  Installed: (none)\\n  Candidate: %s\\n' "${opts.aptNode ?? '20.19.2+dfsg-1'}"`,
    false,
  );
  stub(bin, 'dpkg', `[ "$1" = --print-architecture ] && echo ${opts.debArch ?? 'amd64'}`, false);
  stub(bin, 'uname', `[ "$1" = -m ] && echo ${opts.machineArch ?? 'x86_64'}`, false);
  stub(bin, 'sudo', 'exec "$@"');
  stub(bin, 'id', `case "$1" in -u) echo "$FAKE_UID" ;; -un) echo "$FAKE_USER" ;; -nG) cat "$STATE/groups" ;; *) exit 1 ;; esac`, false);
  stub(bin, 'getent', '[ "$1" = group ] && case "$2" in i2c|spi|gpio) echo "$2:x:990:" ;; *) exit 2 ;; esac', false);
  stub(bin, 'usermod', 'printf " %s" "$2" >>"$STATE/groups"');
  stub(bin, 'runuser', 'shift 3; exec "$@"');
  stub(
    bin,
    'raspi-config',
    `case "$2" in get_*) cat "$STATE/$\{2#get_}" 2>/dev/null || echo 1 ;; do_*) echo "$3" >"$STATE/$\{2#do_}" ;; esac`,
  );
  const spawnArgs = (env: Record<string, string>, args: string[]) => ({
    file: join(bin, 'bash'),
    args: [join(dir, 'install-requirements.sh'), ...args],
    env: {
      PATH: bin,
      STATE: state,
      BIN: bin,
      FAKE_UID: String(opts.uid ?? 0),
      FAKE_USER: opts.user ?? 'root',
      POWER_METER_SYSROOT: sysroot,
      ...env,
    },
  });
  const calls = () => readFileSync(join(state, 'calls'), 'utf8').trim().split('\n').filter(Boolean);
  const run = (env: Record<string, string> = {}, args: string[] = []) => {
    writeFileSync(join(state, 'calls'), '');
    const a = spawnArgs(env, args);
    const r = spawnSync(a.file, a.args, { encoding: 'utf8', env: a.env });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, calls: calls() };
  };
  const runAsync = (env: Record<string, string> = {}, args: string[] = []) =>
    new Promise<{ code: number | null; out: string; calls: string[] }>((resolve) => {
      writeFileSync(join(state, 'calls'), '');
      const a = spawnArgs(env, args);
      const child = spawn(a.file, a.args, { env: a.env });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('close', (code) => resolve({ code, out, calls: calls() }));
    });
  return { dir, state, sysroot, bin, run, runAsync };
}

const ALL = [
  'build-essential',
  'python3',
  'pkg-config',
  'libcairo2-dev',
  'libpango1.0-dev',
  'libjpeg-dev',
  'libgif-dev',
  'librsvg2-dev',
  'fonts-dejavu-core',
  'openssl',
  'shellcheck',
  'systemd',
  'ca-certificates',
];

describe('install-requirements.sh', { timeout: 120_000 }, () => {
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

    // Native addons built for another Node (upgraded underneath: another modules ABI than the
    // set-up recorded) or gone: npm ci again.
    writeFileSync(join(m.state, 'abi'), '127');
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

  it('with --no-node: stops before touching anything when the installed Node is older than 20.19, saying where to get one', () => {
    for (const old of ['18.19.0', '20.18.3']) {
      const m = machine({ node: old });
      const r = m.run({}, ['--no-node']);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`Node.js ${old} is too old`);
      expect(r.out).toMatch(/>= 20\.19.*nodejs\.org/s);
      expect(r.calls).toEqual([]);
    }
    expect(machine({ node: '22.1.0', installed: ALL }).run({}, ['--no-node']).code).toBe(0);
    // Debian 12 without any Node: its 18.19 is not installed, nothing else is touched.
    const bookworm = machine({ node: null, aptNode: '18.19.0+dfsg-6~deb12u2' }).run({}, ['--no-node']);
    expect(bookworm.code).toBe(1);
    expect(bookworm.out).toContain('Node.js 18.19.0 is too old');
    expect(bookworm.calls.some((c) => c.includes(' install '))).toBe(false);
  });

  it('refuses an unknown option, naming the allowed ones', () => {
    const r = machine({ installed: ALL }).run({}, ['--no-nodes']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('unknown option --no-nodes (allowed: --runtime, --full, --test, --no-node, --help)');
    expect(r.calls).toEqual([]);
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
    // The runtime set-up, the default on a Pi: npm runs as pi (node_modules must not be root's),
    // with JOBS=max and the caller's PATH, for the two programs' workspaces without devDependencies.
    const ci = '--no-audit --no-fund --omit=dev --workspace=packages/power-meter --workspace=packages/power-meter-display';
    expect(
      first.calls.some((c) => new RegExp(`^runuser -u pi -- env PATH=\\S+ env JOBS=max( npm_config_\\w+=\\S*)* npm ci ${ci}$`).test(c)),
    ).toBe(true);
    expect(first.calls).toContain(`npm ci ${ci} JOBS=max`);
    // Built with TypeScript from a temporary directory (its own npm ci there), as pi, without type-checking.
    expect(first.calls).toContain('npm ci --ignore-scripts --no-audit --no-fund --loglevel=error JOBS=');
    expect(first.calls).toContain('tsc -b packages/power-meter/tsconfig.json packages/power-meter-display/tsconfig.json --noCheck');
    expect(first.calls.some((c) => /npm run build/.test(c))).toBe(false);
    expect(first.out).toMatch(/building the programs with typescript@[\d.]+ @types\/node@[\d.]+ from a temporary directory/);
    expect(first.out).toMatch(/runtime dependencies: [\d.]+ MB in \d+ files/);
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

  it('runtime set-up: a second run does nothing; changed sources are built again without npm ci; --full on a Pi is the whole set-up', () => {
    const m = machine({ installed: ALL, user: 'root', groups: 'pi i2c spi gpio' });
    mkdirSync(join(m.sysroot, 'proc/device-tree'), { recursive: true });
    writeFileSync(join(m.sysroot, 'proc/device-tree/model'), 'Raspberry Pi 5 Model B Rev 1.0\0');
    expect(m.run({ SUDO_USER: 'pi' }).code).toBe(0);
    const again = m.run({ SUDO_USER: 'pi' });
    expect(again.out).toMatch(/npm dependencies up to date \(runtime set-up\)/);
    expect(again.calls.some((c) => /^(npm |tsc )/.test(c))).toBe(false);
    writeFileSync(
      join(m.dir, 'packages/meter-files/src/index.ts'),
      `${readFileSync(join(m.dir, 'packages/meter-files/src/index.ts'), 'utf8')}\n// changed\n`,
    );
    const changed = m.run({ SUDO_USER: 'pi' });
    expect(changed.calls.filter((c) => c.startsWith('tsc '))).toHaveLength(1);
    expect(changed.calls.some((c) => /^npm ci --no-audit/.test(c))).toBe(false);
    // A developer's Pi: everything, and the normal build.
    const full = m.run({ SUDO_USER: 'pi' }, ['--full']);
    expect(full.calls).toContain('npm ci --no-audit --no-fund JOBS=max');
    expect(full.calls).toContain('npm run build --silent JOBS=');
    // --test needs the development tools.
    const bad = m.run({}, ['--runtime', '--test']);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/--test needs the development tools/);
  });

  it('runtime set-up off a Pi (--runtime): no development-only Debian packages either', () => {
    const m = machine({ installed: [] });
    const r = m.run({}, ['--runtime']);
    expect(r.code, r.out).toBe(0);
    const install = r.calls.find((c) => c.startsWith('apt-get') && c.includes(' install '))!.split(' ');
    for (const p of ['build-essential', 'python3', 'libcairo2-dev', 'fonts-dejavu-core']) expect(install).toContain(p);
    for (const p of ['shellcheck', 'openssl', 'systemd', 'mosquitto']) expect(install).not.toContain(p);
    expect(r.calls.some((c) => c.startsWith('npm ci --no-audit --no-fund --omit=dev --workspace=packages/power-meter'))).toBe(true);
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
    // With the tests: the broker and the PKCS#11 tokens the signing tests start (SoftHSM2, swtpm + tpm2-pkcs11).
    const TEST_PACKAGES = 'mosquitto softhsm2 swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1';
    expect(machine({ installed: ALL }).run({}, ['--test']).calls).toContain(
      `apt-get install -y -qq --no-install-recommends ${TEST_PACKAGES}`,
    );
    expect(machine({ installed: ALL }).run({ CI: 'true' }).calls).toContain(
      `apt-get install -y -qq --no-install-recommends ${TEST_PACKAGES}`,
    );
    expect(plain.run().calls.some((c) => /softhsm2|swtpm|tpm2/.test(c))).toBe(false);
    const typo = machine({ installed: ALL }).run({}, ['--tests']);
    expect(typo.code).toBe(1);
    expect(typo.out).toMatch(/unknown option --tests \(allowed: --runtime, --full, --test/);
  });
});

/*
 * The official-build route against a stand-in for nodejs.org/dist on 127.0.0.1 (the layout the
 * script reads: latest-v<major>.x/SHASUMS256.txt and <version>/node-<version>-linux-<arch>.tar.xz).
 * The tarball holds this file's node and npm stand-ins, so what it installs can be run afterwards.
 * scripts/check-setup.sh runs the same route with the real Node binary in a Debian 12 root.
 */
// Several runs of the script per test: generous time for a loaded machine.
describe('install-requirements.sh: Node from nodejs.org where the distribution has none new enough', { timeout: 120_000 }, () => {
  const VERSION = 'v26.12.1';
  const NAME = `node-${VERSION}-linux-x64`;
  let server: Server;
  let base = '';
  let tarball: Buffer;
  let served: Buffer;
  const requests: string[] = [];

  beforeAll(async () => {
    const top = mkdtempSync(join(tmpdir(), 'reqs-dist-'));
    temps.push(top);
    const pkg = join(top, NAME);
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    mkdirSync(join(pkg, 'include/node'), { recursive: true });
    // The official tarball's top level; the script keeps CHANGELOG.md, LICENSE and README.md out of /usr/local.
    for (const f of ['CHANGELOG.md', 'LICENSE', 'README.md']) writeFileSync(join(pkg, f), f);
    writeFileSync(
      join(pkg, 'include/node/node_version.h'),
      '#define NODE_MAJOR_VERSION 26\n#define NODE_MINOR_VERSION 12\n#define NODE_PATCH_VERSION 1\n',
    );
    writeFileSync(join(pkg, 'include/node/common.gypi'), '{}'); // node-gyp needs it beside the headers
    writeFileSync(join(pkg, 'bin/node'), nodeStubScript('echo 26.12.1', 'echo 147'), {
      mode: 0o755,
    });
    writeFileSync(
      join(pkg, 'bin/npm'),
      `#!/usr/bin/env bash\necho "npm(official) $*" >>"$STATE/calls"\nif [ "$1" = ci ]; then ${NPM_ENV}; ${NPM_CI}; fi\n`,
      { mode: 0o755 },
    );
    const r = spawnSync('tar', ['-C', top, '-cJf', join(top, `${NAME}.tar.xz`), NAME]);
    expect(r.status).toBe(0);
    tarball = readFileSync(join(top, `${NAME}.tar.xz`));
    served = tarball;
    const sha = createHash('sha256').update(tarball).digest('hex');
    // A real SHASUMS256.txt lists every file of the release; ours lists two more builds.
    const shasums = (v: string, arches: string[]) =>
      arches.map((a, i) => `${a === 'x64' && v === VERSION ? sha : String(i).repeat(64)}  node-${v}-linux-${a}.tar.xz\n`).join('');
    server = createServer((req, res) => {
      const url = req.url ?? '';
      requests.push(url);
      if (url === '/dist/latest-v26.x/SHASUMS256.txt') res.end(shasums(VERSION, ['arm64', 'armv7l', 'x64']));
      else if (url === '/dist/latest-v22.x/SHASUMS256.txt') res.end(shasums('v22.22.0', ['arm64', 'armv7l', 'x64']));
      else if (url === `/dist/${VERSION}/${NAME}.tar.xz`) res.end(served);
      else res.writeHead(404).end('not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dist`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Test hooks: the stand-in, a prefix of our own instead of /usr/local, and github.com's probe on loopback. */
  const hooks = (m: Machine, probe = `${base}/`) => ({
    POWER_METER_NODE_DIST_URL: base,
    POWER_METER_NODE_PREFIX: join(m.dir, '..', 'usr-local'),
    POWER_METER_PREBUILT_PROBE_URL: probe,
  });

  it('on Debian 12 (Node 18): says what it will do, checks the tarball against SHASUMS256.txt, unpacks it, builds with it', async () => {
    served = tarball;
    requests.length = 0;
    const m = machine({ node: null, aptNode: '18.19.0+dfsg-6~deb12u2', installed: ALL });
    const env = hooks(m);
    const prefix = env.POWER_METER_NODE_PREFIX;
    const r = await m.runAsync(env);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(
      `the distribution's Node.js is 18.19.0 (this project needs >= 20.19): installing the official Node.js 26 build for linux-x64 from ${base} into ${prefix}, checked against its SHASUMS256.txt first (--no-node: install nothing)`,
    );
    expect(r.out).toContain(`${NAME}.tar.xz matches SHASUMS256.txt`);
    expect(r.out).toContain(`Node.js 26.12.1 ready: ${prefix}/bin/node`);
    expect(requests).toEqual(['/dist/latest-v26.x/SHASUMS256.txt', `/dist/${VERSION}/${NAME}.tar.xz`, '/dist/']);
    // Tools for the download, not Debian's nodejs/npm.
    const install = r.calls.find((c) => c.startsWith('apt-get') && c.includes(' install '))!;
    expect(install.split(' ')).toEqual(expect.arrayContaining(['curl', 'xz-utils']));
    expect(install.split(' ')).not.toContain('nodejs');
    expect(readFileSync(join(prefix, 'include/node/node_version.h'), 'utf8')).toContain('26');
    for (const f of ['CHANGELOG.md', 'LICENSE', 'README.md']) expect(() => readFileSync(join(prefix, f))).toThrow();
    // npm is the one just installed, with the headers beside it for node-gyp; github.com answered.
    expect(r.calls.some((c) => /^npm\(official\) ci --no-audit --no-fund --script-shell=\S+\/sh$/.test(c))).toBe(true);
    expect(r.calls).toContain(`npm-env prebuild_rc= nodedir=${prefix} npm_sees_nodedir=`);

    // Next time (the new Node first on the PATH, as /usr/local/bin is on Debian): nothing to do.
    requests.length = 0;
    const again = await m.runAsync({ ...env, PATH: `${prefix}/bin:${m.bin}` });
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/npm dependencies up to date/);
    expect(requests).toEqual([]);
  });

  it('refuses a tarball whose SHA-256 is not in SHASUMS256.txt and installs nothing', async () => {
    served = Buffer.from(tarball);
    served.writeUInt8(served.readUInt8(served.length >> 1) ^ 0xff, served.length >> 1);
    const m = machine({ node: '18.19.0', installed: ALL });
    const env = hooks(m);
    const r = await m.runAsync(env);
    served = tarball;
    expect(r.code).toBe(1);
    expect(r.out).toContain('Node.js 18.19.0 is too old (this project needs >= 20.19): installing the official Node.js 26 build');
    expect(r.out).toContain(`REFUSED ${NAME}.tar.xz: its SHA-256 is not the one in ${base}/latest-v26.x/SHASUMS256.txt`);
    expect(r.out).toContain('Nothing was installed');
    expect(() => readFileSync(join(env.POWER_METER_NODE_PREFIX, 'bin/node'))).toThrow();
    expect(r.calls.some((c) => c.startsWith('npm'))).toBe(false);
  });

  it('picks the build for the CPU: arm64 gets the LTS line, 32-bit ARMv7 (also on a 64-bit kernel) Node 22, ARMv6 none', async () => {
    requests.length = 0;
    const arm64 = machine({ node: '18.19.0', installed: ALL, debArch: 'arm64', machineArch: 'aarch64' });
    const r64 = await arm64.runAsync(hooks(arm64));
    // The stand-in has no arm64 tarball: the script asked for the right one and stopped.
    expect(r64.code).toBe(1);
    expect(r64.out).toContain(`could not download ${base}/${VERSION}/node-${VERSION}-linux-arm64.tar.xz`);
    for (const kernel of ['armv7l', 'aarch64']) {
      const armhf = machine({ node: '18.19.0', installed: ALL, debArch: 'armhf', machineArch: kernel });
      const r = await armhf.runAsync(hooks(armhf));
      expect(r.out).toContain('installing the official Node.js 22 build for linux-armv7l');
      expect(r.out).toContain(`could not download ${base}/v22.22.0/node-v22.22.0-linux-armv7l.tar.xz`);
    }
    const zero = machine({ node: '18.19.0', installed: ALL, debArch: 'armhf', machineArch: 'armv6l' });
    const before = requests.length;
    const r6 = await zero.runAsync(hooks(zero));
    expect(r6.code).toBe(1);
    expect(r6.out).toContain('Node.js 18.19.0 is too old, and nodejs.org has no build for this machine (armhf, armv6l)');
    expect(r6.out).toContain('Raspberry Pi OS Trixie');
    expect(requests.length).toBe(before);
    expect(r6.calls).toEqual([]);
  });

  it('builds native modules from source at once when github.com (the prebuilt binaries) cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const m = machine({ node: '20.20.0', installed: ALL });
    const r = await m.runAsync(hooks(m, `http://127.0.0.1:${port}/`));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(
      'github.com (where the prebuilt binaries are) cannot be reached, so canvas and better-sqlite3 build from source',
    );
    expect(r.calls).toContain('npm-env prebuild_rc=buildFromSource=true nodedir= npm_sees_nodedir=');
    // prebuild-install's own setting, for that npm ci only (npm warns about npm_config_build_from_source).
    expect(existsSync(join(m.dir, '.prebuild-installrc'))).toBe(false);
    expect(r.out).not.toMatch(/Unknown env config/);
    // The setting is npm ci's alone: the build after it does not inherit it (npm 11 warns about it).
    expect(r.calls).toContain('npm run build --silent JOBS=');
    expect(r.calls).not.toContain('npm-env leaked into npm run');
    // The set-up's npm ci failing (a compiler killed for want of memory): how to add swap, and an error.
    const failing = machine({ node: '20.20.0', installed: ALL });
    writeFileSync(
      join(failing.bin, 'npm'),
      '#!/usr/bin/env bash\necho "npm $*" >>"$STATE/calls"\necho "cc: fatal error: Killed signal terminated program cc1" >&2\nexit 1\n',
    );
    const f = await failing.runAsync(hooks(failing, `http://127.0.0.1:${port}/`));
    expect(f.code).toBe(1);
    expect(f.out).toMatch(/npm ci failed; if a compiler was killed .* there was not enough memory/);
    expect(f.out).toContain('sudo fallocate -l 1G /var/power-meter.swap');
    expect(existsSync(join(failing.dir, '.prebuild-installrc'))).toBe(false);
    // Reachable: prebuild-install decides per module (download, or compile when none is published).
    const online = machine({ node: '20.20.0', installed: ALL });
    const ok = await online.runAsync(hooks(online));
    expect(ok.out).toContain('npm ci (prebuilt canvas and better-sqlite3 where published');
    expect(ok.calls).toContain('npm-env prebuild_rc= nodedir= npm_sees_nodedir=');
  });

  it('with little memory (a Pi Zero 2 W): compiles one module at a time, and when a compile is needed says so and how to add swap', async () => {
    const zero = (opts: MachineOptions = {}) => {
      const m = machine({ installed: [...ALL, 'i2c-tools', 'gpiod'], user: 'root', groups: 'pi i2c spi gpio', ...opts });
      mkdirSync(join(m.sysroot, 'proc/device-tree'), { recursive: true });
      writeFileSync(join(m.sysroot, 'proc/device-tree/model'), 'Raspberry Pi Zero 2 W Rev 1.0\0');
      // 512 MB of RAM, the firmware's share taken, 100 MB of swap (Pi OS's default).
      writeFileSync(
        join(m.sysroot, 'proc/meminfo'),
        'MemTotal:         436284 kB\nMemFree:          250000 kB\nMemAvailable:     351232 kB\nSwapTotal:        102396 kB\nSwapFree:         102396 kB\n',
      );
      return m;
    };
    const online = zero();
    const ok = await online.runAsync({ ...hooks(online), SUDO_USER: 'pi' });
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain('442 MB of memory (RAM and swap) available: native modules compile one at a time');
    expect(ok.calls.some((c) => /^npm ci --no-audit --no-fund --foreground-scripts --omit=dev .* JOBS=1$/.test(c))).toBe(true);
    expect(ok.out).not.toMatch(/COMPILING NEEDS MEMORY/); // prebuilt canvas and better-sqlite3
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const offline = zero();
    const r = await offline.runAsync({ ...hooks(offline, `http://127.0.0.1:${port}/`), SUDO_USER: 'pi' });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/COMPILING NEEDS MEMORY: compiling SQLite \(better-sqlite3\) takes about 370 MB and this machine has 442 MB/);
    expect(r.out).toContain(
      'sudo fallocate -l 1G /var/power-meter.swap && sudo chmod 600 /var/power-meter.swap && sudo mkswap /var/power-meter.swap && sudo swapon /var/power-meter.swap',
    );
  });
});
