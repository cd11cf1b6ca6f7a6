import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { STATE_SCHEMA, type MeterState } from '@power-meter/meter-files';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINER_CHECK_MS, bootContainer, cleanLeftovers, type Container } from './support/nspawn.js';
import { previousRelease } from './support/previous-release.js';
import { until } from './support/until.js';
import { ROOT } from './support/processes.js';

/**
 * The services under a real systemd: a minimal Debian 12 root (debootstrap, cached on this
 * machine by test/support/systemd-root.sh) booted with systemd-nspawn, the application installed
 * into it with install.sh, exactly as on a Pi. Each run boots a throw-away overlay of the cached
 * root with its own machine name and cgroup (test/support/nspawn.ts), so two copies of the suite
 * can run at once, and first removes what killed runs left. The container shares this machine's
 * network, so the units deliver to a receiver that this test runs on 127.0.0.1.
 */
const run = promisify(execFile);
const TOKEN = 'nspawn-test-token-31c9'; // a throw-away value for the local receiver
const BOOT_MS = 120_000;
const STEP_MS = 90_000;

let box: Container | undefined;
let receiver: DevReceiver;

/** Runs a shell command inside the container; never throws. */
function sh(cmd: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  if (!box) throw new Error('the container did not boot');
  return box.sh(cmd, timeoutMs);
}

async function show(unit: string): Promise<Record<string, string>> {
  const r = await sh(`systemctl show ${unit} --property=ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,Result,StatusText`);
  return Object.fromEntries(
    r.out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** Sequence numbers received so far (duplicates are allowed: delivery is at least once). */
function seqs(): number[] {
  return [...new Set(receiver.received.filter((r) => r.verified).map((r) => Number(r.eventId?.split('-').pop())))].sort((a, b) => a - b);
}

/** 1, 2, 3, … without a hole. */
function gapFree(list: number[]): boolean {
  return list.length > 0 && list[0] === 1 && list.every((s, i) => s === i + 1);
}

/** The cached root, overlaid, with this machine's Node and npm and a copy of the checkout in it. */
async function boot(): Promise<Container> {
  const built = await run('bash', [join(ROOT, 'test/support/systemd-root.sh')], { timeout: 30 * 60_000, maxBuffer: 16 << 20 });
  const lower = built.stdout.trim().split('\n').pop()!;
  return bootContainer(
    lower,
    async (merged) => {
      // This machine's Node and npm, and a copy of the checkout (built, with node_modules), as a
      // user would have after ./install-requirements.sh.
      cpSync(process.execPath, join(merged, 'usr/local/bin/node'));
      // npm beside this Node, else the npm on the PATH: the npm registry's Node builds
      // (scripts/test-on-node.sh) come without one.
      const besideNode = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
      const npm = existsSync(besideNode)
        ? besideNode
        : dirname(dirname(realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim())));
      cpSync(npm, join(merged, 'usr/local/lib/node_modules/npm'), { recursive: true });
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(merged, 'usr/local/bin/npm'));
      mkdirSync(join(merged, 'src'));
      await run('bash', ['-c', 'tar -C "$1" --exclude=./.git -cf - . | tar -xf - -C "$2"', 'copy', ROOT, join(merged, 'src')], {
        maxBuffer: 16 << 20,
      });
    },
    BOOT_MS,
  );
}

async function writeConfig(config: Record<string, unknown>): Promise<void> {
  const json = JSON.stringify(config).replace(/'/g, "'\\''");
  expect((await sh(`printf '%s' '${json}' > /etc/power-meter/config.json`)).code).toBe(0);
}

/**
 * A drop-in that runs the installed meter with its sampler failing at the first window: the test
 * entry (packages/power-meter/test/support/meter-with-fault.mjs) copied into the installed package
 * beside dist/, started by the unit's own ExecStart line with that entry instead of dist/cli.js.
 * The copy's path is recorded in /run/power-meter-fault-entry for the clean-up.
 */
const FAULT_DROP_IN = [
  'set -e',
  'line="$(systemctl cat power-meter | grep \'^ExecStart=\' | tail -n 1)"',
  'pkg="$(printf \'%s\\n\' "$line" | sed -n \'s#^ExecStart=.* \\(/[^ ]*\\)/dist/cli\\.js.*#\\1#p\')"',
  'test -n "$pkg"',
  'mkdir -p "$pkg/test/support"',
  'cp /src/packages/power-meter/test/support/meter-with-fault.mjs "$pkg/test/support/"',
  'printf \'%s\\n\' "$pkg/test/support/meter-with-fault.mjs" > /run/power-meter-fault-entry',
  'mkdir -p /run/systemd/system/power-meter.service.d',
  "printf '[Service]\\nExecStart=\\n%s\\n' \"$(printf '%s\\n' \"$line\" | sed 's#/dist/cli\\.js#/test/support/meter-with-fault.mjs sampler#')\" > /run/systemd/system/power-meter.service.d/fault.conf",
  'systemctl daemon-reload',
].join('\n');

const DATA_DIR = '/home/meter/data/power-meter';
const goodConfig = () => ({
  _comment: 'written by test/systemd.test.ts',
  publishUrl: receiver.url,
  dataDir: DATA_DIR,
  sensor: 'sim',
  simLoad: '4',
  window: 2,
  display: { panel: 'png' },
});

describe('the units under a real systemd (Debian 12 in systemd-nspawn)', () => {
  beforeAll(async () => {
    const left = await cleanLeftovers();
    if (left.length > 0) console.log(`removed what killed runs left: ${left.join(' ')}`);
    receiver = await startDevReceiver({ project: 'nspawn', token: TOKEN });
    box = await boot();
  }, 35 * 60_000);

  afterAll(async () => {
    await box?.shutdown();
    await receiver?.close();
  }, 120_000);

  it(
    'install.sh installs and starts both units on a machine without I2C, SPI or their groups',
    async () => {
      expect((await sh('useradd --create-home --shell /bin/bash meter')).code).toBe(0);
      const r = await sh('bash /src/install.sh --user meter', 10 * 60_000);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/created the system group i2c/);
      expect(r.out).toMatch(/example config uses the simulated sensor/);
      expect(r.out).toMatch(/power-meter is installed/);
      for (const u of ['power-meter', 'power-meter-display'])
        expect((await show(u)).ActiveState, `${u}\n${(await sh(`journalctl -u ${u} --no-pager`)).out}`).toBe('active');
    },
    12 * 60_000,
  );

  it(
    'delivers readings to the receiver, and the display draws its png in the state directory',
    async () => {
      await writeConfig(goodConfig());
      expect((await sh(`printf 'W3BSTREAM_PUBLISHER_TOKEN=${TOKEN}\\n' > /etc/power-meter/power-meter.env`)).code).toBe(0);
      const restart = await sh('systemctl restart power-meter power-meter-display');
      expect(restart.code, restart.out).toBe(0);
      await until(() => seqs().length >= 3, STEP_MS, 'three readings at the receiver', CONTAINER_CHECK_MS);
      expect(gapFree(seqs())).toBe(true);
      expect(receiver.received.every((r) => r.verified)).toBe(true);
      await until(
        async () => (await sh('test -s /var/lib/power-meter-display/screen.png')).code === 0,
        STEP_MS,
        'the png panel to draw',
        CONTAINER_CHECK_MS,
      );
      await until(
        async () => /^ok: screen/.test((await show('power-meter-display')).StatusText ?? ''),
        STEP_MS,
        'the display status line',
        CONTAINER_CHECK_MS,
      );
    },
    3 * STEP_MS,
  );

  it(
    'comes back after SIGKILL: nothing stored is lost, no number is used twice, none is skipped',
    async () => {
      // Running and delivering first (on a loaded machine the previous restart may still be under way).
      await until(async () => (await show('power-meter')).ActiveState === 'active', STEP_MS, 'the backend to run', CONTAINER_CHECK_MS);
      const before = await show('power-meter');
      const last = Math.max(...seqs());
      const kill = await sh('systemctl kill --signal=SIGKILL power-meter');
      expect(kill.code, `${kill.out}\n${JSON.stringify(before)}\n${(await sh('journalctl -u power-meter -b --no-pager -n 40')).out}`).toBe(
        0,
      );
      await until(
        async () => {
          const s = await show('power-meter');
          return s.ActiveState === 'active' && s.MainPID !== before.MainPID && s.MainPID !== '0';
        },
        STEP_MS,
        'systemd to restart the killed backend',
        CONTAINER_CHECK_MS,
      );
      await until(() => seqs().filter((q) => q > last).length >= 3, STEP_MS, 'readings after the restart', CONTAINER_CHECK_MS);
      // Every reading stored before the kill is delivered after it: the outbox drains.
      // Read inside the machine: state.json is a link into the unit's RuntimeDirectory (its /run).
      await until(
        async () => {
          try {
            return (
              (JSON.parse((await sh(`cat ${DATA_DIR}/state.json`)).out) as { publishing: { waiting: number } }).publishing.waiting === 0
            );
          } catch {
            return false;
          }
        },
        STEP_MS,
        'the outbox to drain',
        CONTAINER_CHECK_MS,
      );
      // Numbers run on without reuse and without a hole: the RAM copy in the unit's
      // RuntimeDirectory (kept across restarts) knew the next number, so the rest of the block the
      // sequence floor had reserved is not skipped.
      const list = seqs();
      expect(gapFree(list), JSON.stringify(list)).toBe(true);
      expect((JSON.parse((await sh(`cat ${DATA_DIR}/state.json`)).out) as { publishing: { skipped: number } }).publishing.skipped).toBe(0);
      expect(receiver.received.every((r) => r.verified)).toBe(true);
      expect(Number((await show('power-meter')).NRestarts)).toBeGreaterThanOrEqual(1);
    },
    4 * STEP_MS,
  );

  it(
    'a sampler that stops for good ends the process, and systemd restarts it',
    async () => {
      // The installed program with the fault injected (packages/power-meter/test/support/meter-with-fault.mjs,
      // copied beside the installed dist/): the unit's own command line, node flags included,
      // with that entry instead of dist/cli.js.
      expect((await sh(FAULT_DROP_IN)).code).toBe(0);
      const since = (await sh('date +%s')).out.trim();
      await sh('systemctl restart power-meter');
      // Two runs that each stopped on the fault: the second was started by systemd, not by us.
      await until(
        async () =>
          (
            (await sh(`journalctl -u power-meter --since @${since} -p err --no-pager -o cat`)).out.match(
              /sampler stopped: .*exiting so the service manager restarts the meter/g,
            ) ?? []
          ).length >= 2,
        STEP_MS,
        'systemd to restart the failed backend',
        CONTAINER_CHECK_MS,
      );
      expect((await sh(`journalctl -u power-meter --since @${since} --no-pager -o cat`)).out).toMatch(/Scheduled restart job/);
      await sh(
        'rm /run/systemd/system/power-meter.service.d/fault.conf "$(cat /run/power-meter-fault-entry)" /run/power-meter-fault-entry && systemctl daemon-reload && systemctl reset-failed power-meter; systemctl restart power-meter',
      );
      await until(
        async () => (await show('power-meter')).ActiveState === 'active',
        STEP_MS,
        'the backend to run again',
        CONTAINER_CHECK_MS,
      );
    },
    3 * STEP_MS,
  );

  it(
    'a hung event loop is caught by the watchdog',
    async () => {
      await sh(
        'mkdir -p /run/systemd/system/power-meter.service.d && printf "[Service]\\nWatchdogSec=4\\n" > /run/systemd/system/power-meter.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart power-meter',
      );
      const running = await show('power-meter');
      expect(running.ActiveState).toBe('active');
      // Healthy for longer than the watchdog period: the pings arrive.
      const since = (await sh('date +%s')).out.trim();
      await until(async () => Number((await sh('date +%s')).out) - Number(since) >= 6, 30_000, 'two watchdog periods', CONTAINER_CHECK_MS);
      expect((await show('power-meter')).MainPID).toBe(running.MainPID);
      // A stopped process runs no event loop at all: no pings, so systemd must kill it.
      expect((await sh(`kill -STOP ${running.MainPID}`)).code).toBe(0);
      await until(
        async () => /Watchdog timeout/.test((await sh(`journalctl -u power-meter --since @${since} --no-pager -o cat`)).out),
        STEP_MS,
        'the watchdog to fire',
        CONTAINER_CHECK_MS,
      );
      await until(
        async () => {
          const s = await show('power-meter');
          return s.ActiveState === 'active' && s.MainPID !== running.MainPID;
        },
        STEP_MS,
        'systemd to restart the hung backend',
        CONTAINER_CHECK_MS,
      );
      await sh('rm /run/systemd/system/power-meter.service.d/watchdog.conf && systemctl daemon-reload && systemctl restart power-meter');
    },
    3 * STEP_MS,
  );

  it(
    'a bad setting stops the unit with exit 2 and no restart loop; warnings reach journalctl -p warning',
    async () => {
      await writeConfig({ ...goodConfig(), windw: 3 });
      const since = (await sh('date +%s')).out.trim();
      expect((await sh('systemctl restart power-meter')).code).not.toBe(0); // it exits before it is ready
      await until(async () => (await show('power-meter')).ActiveState === 'failed', STEP_MS, 'the unit to fail', CONTAINER_CHECK_MS);
      const failed = await show('power-meter');
      expect(failed.ExecMainStatus).toBe('2');
      // Longer than RestartSec=5: still failed, never restarted.
      await until(async () => Number((await sh('date +%s')).out) - Number(since) >= 8, 30_000, 'more than RestartSec', CONTAINER_CHECK_MS);
      expect(await show('power-meter')).toMatchObject({ ActiveState: 'failed', MainPID: '0' });
      const warnings = (await sh('journalctl -t power-meter -p warning -b --no-pager -o cat')).out;
      expect(warnings).toMatch(/unknown key "windw" in the config file \(did you mean "window"\?\)/);
      expect(warnings).toMatch(/sampler stopped/);
      expect(warnings).not.toMatch(/^start pid=/m); // info lines stay out of -p warning
      expect((await sh('journalctl -t power-meter -p info -b --no-pager -o cat')).out).toMatch(/^start pid=\d+ version=/m);
      await writeConfig(goodConfig());
      expect((await sh('systemctl reset-failed power-meter; systemctl restart power-meter')).code).toBe(0);
    },
    3 * STEP_MS,
  );

  it(
    'a damaged outbox stops the unit with exit 3 and no restart loop',
    async () => {
      expect((await sh('systemctl stop power-meter')).code).toBe(0);
      // The SQLite header overwritten: the file is no database any more. A clean stop leaves the
      // outbox on the card only; a stop that ran past TimeoutStopSec (a heavily loaded machine)
      // ends in SIGKILL and leaves the RAM copy, which the next start rightly prefers to the
      // card's file: that copy is damaged too, so the start meets a damaged outbox either way.
      expect(
        (
          await sh(
            `for f in ${DATA_DIR}/outbox/outbox.sqlite /run/power-meter/outbox.sqlite; do [ -e "$f" ] || continue; printf 'ZZZZZZZZZZZZZZZZ' | dd of="$f" bs=1 seek=0 conv=notrunc status=none || exit 1; done`,
          )
        ).code,
      ).toBe(0);
      const since = (await sh('date +%s')).out.trim();
      expect((await sh('systemctl start power-meter')).code).not.toBe(0);
      await until(async () => (await show('power-meter')).ActiveState === 'failed', STEP_MS, 'the unit to fail', CONTAINER_CHECK_MS);
      expect((await show('power-meter')).ExecMainStatus).toBe('3');
      await until(async () => Number((await sh('date +%s')).out) - Number(since) >= 8, 30_000, 'more than RestartSec', CONTAINER_CHECK_MS);
      expect(await show('power-meter')).toMatchObject({ ActiveState: 'failed', MainPID: '0' });
      expect((await sh(`journalctl -t power-meter -p err --since @${since} --no-pager -o cat`)).out).toMatch(
        /outbox .*outbox\.sqlite is damaged/,
      );
      // Set aside (as salvage would), the meter starts with a new outbox and numbering that goes on.
      expect(
        (
          await sh(
            `mv ${DATA_DIR}/outbox/outbox.sqlite ${DATA_DIR}/outbox/outbox.sqlite.damaged; rm -f /run/power-meter/outbox.sqlite*; systemctl reset-failed power-meter; systemctl start power-meter`,
          )
        ).code,
      ).toBe(0);
      await until(
        async () => (await show('power-meter')).ActiveState === 'active',
        STEP_MS,
        'the backend to run again',
        CONTAINER_CHECK_MS,
      );
    },
    3 * STEP_MS,
  );

  it(
    'a data directory the service user may not write stops the unit with exit 4 and no restart loop',
    async () => {
      expect((await sh('systemctl stop power-meter')).code).toBe(0);
      const owner = (await sh(`stat -c %U:%G ${DATA_DIR}`)).out.trim();
      expect((await sh(`chown root:root ${DATA_DIR} && chmod 755 ${DATA_DIR}`)).code).toBe(0);
      const since = (await sh('date +%s')).out.trim();
      expect((await sh('systemctl start power-meter')).code).not.toBe(0);
      await until(async () => (await show('power-meter')).ActiveState === 'failed', STEP_MS, 'the unit to fail');
      expect((await show('power-meter')).ExecMainStatus).toBe('4');
      await until(async () => Number((await sh('date +%s')).out) - Number(since) >= 8, 30_000, 'more than RestartSec');
      expect(await show('power-meter')).toMatchObject({ ActiveState: 'failed', MainPID: '0' });
      expect((await sh(`journalctl -t power-meter -p err --since @${since} --no-pager -o cat`)).out).toMatch(
        /the data directory .* cannot be written by this user \(EACCES/,
      );
      expect((await sh(`chown ${owner} ${DATA_DIR}; systemctl reset-failed power-meter; systemctl start power-meter`)).code).toBe(0);
      await until(async () => (await show('power-meter')).ActiveState === 'active', STEP_MS, 'the backend to run again');
    },
    3 * STEP_MS,
  );

  it(
    'doctor reports both services as running',
    async () => {
      const r = await sh('runuser -u meter -- power-meter doctor --json');
      const why = `${r.out}\n${(await sh('systemctl status --no-pager power-meter power-meter-display; journalctl -b -p warning --no-pager -n 30')).out}`;
      const report = JSON.parse(r.out) as { checks: Array<{ name: string; status: string; detail: string }> };
      expect(
        report.checks.find((c) => c.name === 'power-meter'),
        why,
      ).toMatchObject({ status: 'ok' });
      expect(
        report.checks.find((c) => c.name === 'power-meter-display'),
        why,
      ).toMatchObject({ status: 'ok' });
      // The display ran through the whole test (well over WatchdogSec=30) on its own pings.
      expect(await show('power-meter-display'), why).toMatchObject({ ActiveState: 'active', NRestarts: '0' });
      expect((await sh('journalctl -t power-meter-display -p info -b --no-pager -o cat')).out).toMatch(
        /^start pid=\d+ version=.* panel=png png=\/var\/lib\/power-meter-display\/screen\.png/m,
      );
      expect(readdirSync(join(box!.merged, 'var/lib/power-meter-display'))).toContain('screen.png');
      expect(existsSync(join(box!.merged, 'etc/systemd/system/power-meter.service'))).toBe(true);
    },
    STEP_MS,
  );

  it(
    'upgrades in place from the previous release: identity, sequence floor, held readings, totals, settings and token kept; numbering goes on',
    async () => {
      const t0 = Date.now();
      const prev = previousRelease(ROOT);
      console.log(`previous release ${prev.version}: ${prev.foundBy}`);
      // A machine with only the previous release: this one's installation removed, data and all.
      expect((await sh('bash /src/install.sh --uninstall --purge --yes')).code).toBe(0);
      // Its checkout as its README's set-up leaves it: the release's files, dependencies installed
      // (this checkout's, hard-linked: the lock is the same where the programs are concerned).
      mkdirSync(join(box!.merged, 'prev'));
      prev.extractTo(join(box!.merged, 'prev'));
      expect((await sh('cp -al /src/node_modules /prev/node_modules')).code).toBe(0);
      receiver.setMode('drop'); // the receiver is down: every reading waits in the outbox
      const installed = await sh('bash /prev/install.sh --user meter', 10 * 60_000);
      expect(installed.code, installed.out).toBe(0);
      await writeConfig(goodConfig());
      expect((await sh(`printf 'W3BSTREAM_PUBLISHER_TOKEN=${TOKEN}\\n' > /etc/power-meter/power-meter.env`)).code).toBe(0);
      expect((await sh('systemctl restart power-meter power-meter-display')).code).toBe(0);
      const address = async () => JSON.parse((await sh('runuser -u meter -- power-meter identity --json')).out).deviceId as string;
      const device = await address();
      const state = async () => {
        try {
          return JSON.parse((await sh(`cat ${DATA_DIR}/state.json`)).out) as MeterState;
        } catch {
          return null;
        }
      };
      await until(
        async () => ((await state())?.publishing.waiting ?? 0) >= 4,
        STEP_MS,
        "readings waiting in the old release's outbox",
        CONTAINER_CHECK_MS,
      );
      // What the old release holds, read from its files once it has stopped (a clean stop syncs the outbox to the card).
      expect((await sh('systemctl stop power-meter')).code).toBe(0);
      const before = {
        outbox: await readOutbox(join(box!.merged, DATA_DIR.slice(1), 'outbox/outbox.sqlite')),
        floor: JSON.parse(readFileSync(join(box!.merged, DATA_DIR.slice(1), 'identity/sequence-floor.json'), 'utf8')) as {
          nextSeq: number;
        },
        state: (await state())!,
        settings: (await sh('sha256sum /etc/power-meter/config.json /etc/power-meter/power-meter.env')).out,
        key: (await sh(`sha256sum ${DATA_DIR}/identity/device-key.pem`)).out,
      };
      expect(before.outbox.seqs.length).toBeGreaterThanOrEqual(4);
      expect(receiver.received.filter((r) => r.deviceId === device)).toEqual([]); // nothing got through
      // The upgrade: the README's command, in this release's checkout, no options.
      const upgrade = await sh('cd /src && ./install.sh', 10 * 60_000);
      expect(upgrade.code, upgrade.out).toBe(0);
      console.log(
        upgrade.out
          .split('\n')
          .filter((l) => /^install\.sh: /.test(l))
          .join('\n'),
      );
      expect(upgrade.out).toMatch(
        new RegExp(`installed the application in /opt/power-meter: .*replacing ${prev.version.replace(/\./g, '\\.')}\\b`),
      );
      expect(await address()).toBe(device);
      receiver.setMode('normal'); // the receiver is back
      const mine = () => receiver.received.filter((r) => r.deviceId === device && r.verified);
      const held = before.outbox.seqs;
      await until(() => held.every((q) => mine().some((r) => r.seq === q)), STEP_MS, 'every held reading delivered');
      await until(() => mine().filter((r) => (r.seq ?? 0) > Math.max(...held)).length >= 3, STEP_MS, 'new readings after the upgrade');
      // Numbering goes on from the floor: new readings above everything held, none reused: an
      // eventID that arrives twice (a redelivery) carries the same signed body.
      const bodies = new Map<string, string>();
      for (const r of mine()) {
        expect(bodies.get(r.eventId) ?? r.body, `eventID ${r.eventId} reused`).toBe(r.body);
        bodies.set(r.eventId, r.body);
      }
      const fresh = mine().filter((r) => !held.includes(r.seq!));
      expect(fresh.length).toBeGreaterThanOrEqual(3);
      for (const r of fresh) expect(r.seq!).toBeGreaterThanOrEqual(before.outbox.nextSeq);
      expect(receiver.received.filter((r) => r.deviceId === device).every((r) => r.verified)).toBe(true);
      // Totals never go back; the settings, token and key are the same files; the state is the new schema.
      const after = (await state())!;
      expect(after.schema).toBe(STATE_SCHEMA);
      expect(after.deviceId).toBe(device);
      expect(after.energyTotalWh).toBeGreaterThanOrEqual(before.state.energyTotalWh);
      expect(after.rewards.total).toBeGreaterThanOrEqual(before.state.rewards.total);
      expect((await sh('sha256sum /etc/power-meter/config.json /etc/power-meter/power-meter.env')).out).toBe(before.settings);
      expect((await sh(`sha256sum ${DATA_DIR}/identity/device-key.pem`)).out).toBe(before.key);
      // The outbox migrated forward (never back), its totals kept; the floor only rises.
      expect((await sh('systemctl stop power-meter')).code).toBe(0);
      const outbox = await readOutbox(join(box!.merged, DATA_DIR.slice(1), 'outbox/outbox.sqlite'));
      expect(outbox.userVersion).toBeGreaterThanOrEqual(before.outbox.userVersion);
      for (const [name, v] of Object.entries(before.outbox.schemaVersions)) expect(outbox.schemaVersions[name]).toBeGreaterThanOrEqual(v);
      expect(outbox.windows).toBeGreaterThan(before.outbox.windows);
      expect(outbox.energyWh).toBeGreaterThan(before.outbox.energyWh); // kept, and counting on
      expect(outbox.rewardsTotal).toBeGreaterThanOrEqual(before.outbox.rewardsTotal);
      expect(outbox.nextSeq).toBeGreaterThan(before.outbox.nextSeq);
      expect(
        JSON.parse(readFileSync(join(box!.merged, DATA_DIR.slice(1), 'identity/sequence-floor.json'), 'utf8')).nextSeq,
      ).toBeGreaterThanOrEqual(before.floor.nextSeq);
      console.log(
        `upgrade ${prev.version} -> this checkout: device ${device}, ${held.length} held readings (seq ${held[0]}..${held[held.length - 1]}) all delivered after the upgrade, ` +
          `new readings from seq ${Math.min(...fresh.map((r) => r.seq!))}, outbox schema ${before.outbox.userVersion} -> ${outbox.userVersion}, ` +
          `energy total ${before.outbox.energyWh.toFixed(4)} Wh at the upgrade -> ${outbox.energyWh.toFixed(4)} Wh (${before.outbox.windows} -> ${outbox.windows} windows); ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
      expect((await sh('systemctl start power-meter')).code).toBe(0);
    },
    15 * 60_000,
  );

  it(
    'an image from the release tarball (install.sh --root, no npm, no network) holds no key: two devices made from it get two addresses, each key made by the service user on first start',
    async () => {
      const t0 = Date.now();
      // The release for this machine, built here as CI builds it.
      const out = mkdtempSync(join(tmpdir(), 'pm-release-'));
      try {
        const built = await run('bash', [join(ROOT, 'scripts/build-release.sh'), '--out', out], {
          maxBuffer: 16 << 20,
          timeout: 10 * 60_000,
        });
        const tarball = readdirSync(out).find((f) => f.endsWith('.tar.gz'))!;
        cpSync(join(out, tarball), join(box!.merged, 'var/tmp', tarball)); // (the machine's /tmp is its own tmpfs)
        console.log(built.stdout.trim());
        expect(
          (
            await sh(
              `mkdir /release && tar -xzf /var/tmp/${tarball} -C /release && ln -s /release/${tarball.replace(/\.tar\.gz$/, '')} /rel`,
            )
          ).code,
        ).toBe(0);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
      // A release whose native modules are for another Node.js is refused, before anything changes.
      expect(
        (
          await sh(
            'cp -a /release /release-other && cd /release-other/* && sed -i \'s/"modulesAbi": "[0-9]*"/"modulesAbi": "1"/\' release.json',
          )
        ).code,
      ).toBe(0);
      const other = await sh('bash /release-other/*/install.sh --user meter');
      expect(other.code).toBe(1);
      expect(other.out).toMatch(/native modules are built for Node\.js .* \(modules ABI 1\) and this machine runs Node\.js/);
      // The image: no npm on the machine, no network at all.
      const image = await sh(
        'mv /usr/local/bin/npm /usr/local/bin/npm.hidden && unshare --net bash /rel/install.sh --root /image --user meter --data-dir /home/meter/data/power-meter; r=$?; mv /usr/local/bin/npm.hidden /usr/local/bin/npm; exit $r',
        5 * 60_000,
      );
      expect(image.code, image.out).toBe(0);
      expect(image.out).toMatch(/No device key was made: this is a staging root/);
      expect((await sh('find /image -name "*.pem" -o -name identity -o -name "*.sqlite" -o -name state.json')).out).toBe('');
      expect((await sh('test ! -e /image/home')).code).toBe(0);
      /** A new device: nothing of the previous one left, the image copied onto it, first start. */
      const flash = async () => {
        await sh('systemctl stop power-meter power-meter-display');
        expect((await sh('bash /src/install.sh --uninstall --purge --yes')).code).toBe(0);
        expect((await sh(`test ! -e ${DATA_DIR} && cp -a /image/. / && systemctl daemon-reload`)).code).toBe(0);
        // What the first boot does before the services (systemd-tmpfiles-setup.service): the data directory, owned by meter.
        expect((await sh('systemd-tmpfiles --create /etc/tmpfiles.d/power-meter.conf')).code).toBe(0);
        expect((await sh('systemctl is-enabled power-meter power-meter-display')).out.trim().split('\n')).toEqual(['enabled', 'enabled']);
        await writeConfig(goodConfig()); // the owner's settings (the image's example expects the real sensor)
        expect((await sh(`printf 'W3BSTREAM_PUBLISHER_TOKEN=${TOKEN}\\n' > /etc/power-meter/power-meter.env`)).code).toBe(0);
        const started = await sh('systemctl start power-meter power-meter-display');
        expect(started.code, `${started.out}\n${(await sh('journalctl -u power-meter -b --no-pager -n 30')).out}`).toBe(0);
        const owner = (await sh(`stat -c '%U %a' ${DATA_DIR} ${DATA_DIR}/identity/device-key.pem`)).out.trim().split('\n');
        expect(owner[0]).toMatch(/^meter /);
        expect(owner[1]).toBe('meter 600');
        const id = JSON.parse((await sh('runuser -u meter -- power-meter identity --json')).out).deviceId as string;
        await until(() => receiver.received.some((r) => r.deviceId === id && r.verified), STEP_MS, `a reading from ${id}`);
        return id;
      };
      const first = await flash();
      const second = await flash();
      expect(second).not.toBe(first);
      console.log(`two devices from one image: ${first} and ${second}; ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    },
    15 * 60_000,
  );
});

/** The outbox of a stopped backend, read-only: its held sequence numbers, counters, totals and schema versions. */
async function readOutbox(file: string) {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const counter = (name: string) => (db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number }).value;
    return {
      seqs: (db.prepare('SELECT seq FROM messages ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq),
      nextSeq: counter('next_seq'),
      ...(() => {
        const t = db.prepare('SELECT windows, energy_wh, rewards_total FROM meter_totals WHERE id = 1').get() as {
          windows: number;
          energy_wh: number;
          rewards_total: number;
        };
        return { windows: t.windows, energyWh: t.energy_wh, rewardsTotal: t.rewards_total };
      })(),
      userVersion: db.pragma('user_version', { simple: true }) as number,
      schemaVersions: Object.fromEntries(
        (db.prepare('SELECT name, version FROM schema_versions').all() as Array<{ name: string; version: number }>).map((r) => [
          r.name,
          r.version,
        ]),
      ),
    };
  } finally {
    db.close();
  }
}
