import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '@power-meter/service';
import { startDevReceiver, type DevReceiver } from '@power-meter/dev-node';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND, ROOT, start, until, type Proc } from '../../../test/support/processes.js';
import { summaryLine } from '../src/service/summary.js';

const TOKEN = 'test-token-7d41c0b2';
const procs: Proc[] = [];
const receivers: DevReceiver[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

/** The program with a fault injected through its dependencies (test/support/meter-with-fault.mjs). */
const WITH_FAULT = join(ROOT, 'packages/power-meter/test/support/meter-with-fault.mjs');

function backend(args: string[], env: Record<string, string> = {}, fault?: 'sampler' | 'publisher'): Proc {
  const dir = join(mkdtempSync(join(tmpdir(), 'pm-svc-')), 'data');
  const program = ['--sensor', 'sim', '--window', '1', '--data-dir', dir, ...args];
  const p = start(fault === undefined ? BACKEND : WITH_FAULT, fault === undefined ? program : [fault, ...program], {
    W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
    POWER_METER_RETRY_MAX_MS: '500',
    ...env,
  });
  procs.push(p);
  return p;
}

function config(content: unknown): string {
  const f = join(mkdtempSync(join(tmpdir(), 'pm-cfg-')), 'config.json');
  writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
}

describe('settings that would fail later are refused at start (exit 2)', () => {
  it('checks --sim-load with the sensor library parser, not a second grammar', async () => {
    for (const v of ['60', 'pwm:12:0.5:0', 'pwm:12:1.5:10']) {
      const p = backend(['--sim-load', v]);
      expect(await p.exited).toBe(EXIT.badSettings);
      expect(p.output()).toContain(`invalid setting --sim-load = "${v}"`);
    }
  });

  it('refuses non-decimal numbers', async () => {
    const p = backend(['--window', '0x10']);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toContain('--window = "0x10"');
    const q = backend(['--power-interval', '1e3']);
    expect(await q.exited).toBe(EXIT.badSettings);
  });

  it('names a misspelt config key and the closest known one', async () => {
    const p = backend(['--config', config({ publishURL: 'https://example.invalid/x' })]);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toMatch(/unknown key "publishURL" in the config file \(did you mean "publishUrl"\?\)/);
    const q = backend(['--config', config({ windw: 3, _comment: 'comments are fine', display: { panel: 'png' } })]);
    expect(await q.exited).toBe(EXIT.badSettings);
    expect(q.output()).toMatch(/unknown key "windw".*did you mean "window"/);
  });

  it('refuses a publish URL with user:password without printing the password', async () => {
    const p = backend(['--publish-url', 'https://meter:hunter2-pw@example.invalid/srv-applet-mgr/v0/event/x']);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toMatch(/--publish-url = "<hidden>" .*without a user or password/);
    expect(p.output()).not.toContain('hunter2-pw');
  });

  it('refuses --config /dev/zero at once instead of reading it', async () => {
    const p = backend(['--config', '/dev/zero']);
    expect(await p.exited).toBe(EXIT.badSettings);
    expect(p.output()).toMatch(/--config = "\/dev\/zero".*character device/);
  });
});

describe('a component that stops for good ends the process non-zero', () => {
  it('the sampler', async () => {
    const p = backend(['--sim-load', '4'], {}, 'sampler');
    expect(await p.exited).toBe(EXIT.failure);
    expect(p.output()).toMatch(/sampler stopped: .*exiting so the service manager restarts the meter/);
  });

  it('the publisher', async () => {
    const r = await startDevReceiver({ project: 'test', token: TOKEN });
    receivers.push(r);
    const p = backend(['--sim-load', '4', '--publish-url', r.url], {}, 'publisher');
    expect(await p.exited).toBe(EXIT.failure);
    expect(p.output()).toMatch(/publisher stopped: the outbox failed.*exiting so the service manager restarts the meter/);
    expect(r.received.length).toBeGreaterThanOrEqual(1);
  });
});

describe('logs by priority', () => {
  it('under journald (stderr is the JOURNAL_STREAM) warnings carry <4>, info <6>; a summary line follows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-journal-'));
    const file = join(dir, 'journal');
    const fd = openSync(file, 'w');
    const st = statSync(file, { bigint: true });
    // Nothing listens on port 9 of the loopback: publishing keeps retrying, a warning.
    const child = spawn(
      process.execPath,
      [
        BACKEND,
        '--sensor',
        'sim',
        '--sim-load',
        '4',
        '--window',
        '1',
        '--data-dir',
        join(dir, 'data'),
        '--publish-url',
        'http://127.0.0.1:9/srv-applet-mgr/v0/event/x',
        '--config',
        config({}),
      ],
      {
        stdio: ['ignore', fd, fd],
        env: {
          PATH: process.env.PATH ?? '',
          JOURNAL_STREAM: `${st.dev}:${st.ino}`,
          W3BSTREAM_PUBLISHER_TOKEN: TOKEN,
          POWER_METER_RETRY_MAX_MS: '500',
          POWER_METER_SUMMARY_MS: '1500',
        },
      },
    );
    closeSync(fd);
    try {
      await until(
        () => /^<6>summary last minute: measured [1-9]\d*, delivered 0, waiting [1-9]/m.test(readFileSync(file, 'utf8')),
        20_000,
        'a summary line',
      );
      const text = readFileSync(file, 'utf8');
      expect(text).toMatch(/^<4>publish state=retrying reason="ECONNREFUSED"/m);
      expect(text).toMatch(/^<6>start pid=\d+ version=\d+\.\d+\.\d+$/m);
      expect(
        text
          .split('\n')
          .filter((l) => l !== '')
          .every((l) => /^<[3-7]>/.test(l)),
      ).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('--log-level warning keeps warnings and drops info lines', async () => {
    const p = backend(['--sim-load', '4', '--log-level', 'warning', '--publish-url', 'http://127.0.0.1:9/srv-applet-mgr/v0/event/x']);
    await p.waitFor(/power-meter: warning: publish state=retrying/);
    expect(p.output()).not.toMatch(/^start pid=/m);
    const bad = backend(['--log-level', 'verbose']);
    expect(await bad.exited).toBe(EXIT.badSettings);
    expect(bad.output()).toMatch(/--log-level = "verbose".*error, warning, notice, info, debug/);
  });

  it('summarises a minute from the outbox counters', () => {
    const before = { waiting: 2, dropped: 0, rejected: 0, delivered: 10, appended: 12 };
    expect(summaryLine(before, { waiting: 1, dropped: 0, rejected: 1, delivered: 21, appended: 24 }, 1)).toBe(
      'summary last minute: measured 12, delivered 12, waiting 1',
    );
    expect(summaryLine(before, { waiting: 5, dropped: 3, rejected: 0, delivered: 10, appended: 18 }, 1)).toBe(
      'summary last minute: measured 6, delivered 0, waiting 5, dropped 3',
    );
  });
});

describe('command line', () => {
  it('npx power-meter and npx power-meter-display run in the checkout (never fetched from the registry)', () => {
    for (const bin of ['power-meter', 'power-meter-display']) {
      const r = spawnSync('npx', ['--no-install', bin, '--version'], { cwd: ROOT, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
      expect(r.status).toBe(0);
    }
  });

  it('--version prints the package version; doctor --json is one object with camelCase keys', async () => {
    const v = start(BACKEND, ['--version']);
    expect(await v.exited).toBe(0);
    const pkg = JSON.parse(readFileSync(join(BACKEND, '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(v.output().trim()).toBe(pkg.version);
    const dir = join(mkdtempSync(join(tmpdir(), 'pm-doc-')), 'data');
    const d = start(BACKEND, ['doctor', '--json', '--sensor', 'sim', '--data-dir', dir]);
    expect(await d.exited).toBe(0);
    const out = JSON.parse(d.output()) as { ok: boolean; failed: number; checks: Array<{ name: string; status: string }> };
    expect(out).toMatchObject({ ok: true, failed: 0 });
    expect(out.checks.map((c) => c.name)).toEqual(expect.arrayContaining(['config', 'sensor', 'data-dir', 'identity', 'clock', 'publish']));
  });
});
