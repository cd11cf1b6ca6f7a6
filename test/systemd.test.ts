import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTAINER_CHECK_MS, bootContainer, cleanLeftovers, type Container } from './support/nspawn.js';
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
      await sh(
        'mkdir -p /run/systemd/system/power-meter.service.d && printf "[Service]\\nEnvironment=POWER_METER_TEST_FAULT=sampler\\n" > /run/systemd/system/power-meter.service.d/fault.conf && systemctl daemon-reload',
      );
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
        'rm /run/systemd/system/power-meter.service.d/fault.conf && systemctl daemon-reload && systemctl reset-failed power-meter; systemctl restart power-meter',
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
      // The SQLite header overwritten: the file is no database any more.
      expect(
        (await sh(`printf 'ZZZZZZZZZZZZZZZZ' | dd of=${DATA_DIR}/outbox/outbox.sqlite bs=1 seek=0 conv=notrunc status=none`)).code,
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
            `mv ${DATA_DIR}/outbox/outbox.sqlite ${DATA_DIR}/outbox/outbox.sqlite.damaged; systemctl reset-failed power-meter; systemctl start power-meter`,
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
});
