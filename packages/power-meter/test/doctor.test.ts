import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printDoctor, runDoctor } from '../src/doctor.js';
import { BACKEND_SETTINGS, type BackendSettings } from '../src/settings.js';

const settings = (over: Partial<BackendSettings> = {}): BackendSettings =>
  ({
    ...Object.fromEntries(Object.entries(BACKEND_SETTINGS).map(([k, v]) => [k, v.default])),
    sensor: 'sim',
    dataDir: join(mkdtempSync(join(tmpdir(), 'doc-')), 'data'),
    ...over,
  }) as BackendSettings;

/** `systemctl show UNIT --property=…` prints one key=value line per property (systemctl(1)). */
function systemctl(units: Record<string, Record<string, string>>) {
  return (args: string[]): string | null => {
    const unit = args[1] ?? '';
    const props = units[unit] ?? { LoadState: 'not-found', ActiveState: 'inactive', SubState: 'dead', NRestarts: '0', StatusText: '' };
    return `${Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`;
  };
}

describe('doctor: the installed services', () => {
  it('fails a running display whose status line reports a fault, and a backend in a restart loop', async () => {
    const checks = await runDoctor(settings(), {
      envFile: '/nonexistent',
      systemctl: systemctl({
        'power-meter.service': {
          LoadState: 'loaded',
          ActiveState: 'activating',
          SubState: 'auto-restart',
          NRestarts: '4',
          StatusText: 'fault: sampler stopped: x',
        },
        'power-meter-display.service': {
          LoadState: 'loaded',
          ActiveState: 'active',
          SubState: 'running',
          NRestarts: '0',
          StatusText: 'fault: redraw failing: EROFS: read-only file system',
        },
      }),
    });
    expect(checks.find((c) => c.name === 'power-meter')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/auto-restart\), restarted 4 times/),
    });
    expect(checks.find((c) => c.name === 'power-meter-display')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/reports a problem; status: fault: redraw failing: EROFS/),
      fix: expect.stringMatching(/journalctl -u power-meter-display -p warning/),
    });
    const out: string[] = [];
    expect(printDoctor(checks, false, (t) => void out.push(t))).toBe(false);
    expect(out.at(-1)).toBe('2 problem(s) found');
  });

  it('passes running services and skips units that are not installed', async () => {
    const ok = await runDoctor(settings(), {
      systemctl: systemctl({
        'power-meter.service': {
          LoadState: 'loaded',
          ActiveState: 'active',
          SubState: 'running',
          NRestarts: '1',
          StatusText: 'last minute: measured 12, delivered 12, waiting 0',
        },
      }),
    });
    expect(ok.find((c) => c.name === 'power-meter')).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/running \(restarted 1 times\); status: last minute/),
    });
    expect(ok.find((c) => c.name === 'power-meter-display')).toBeUndefined();
    const out: string[] = [];
    expect(printDoctor(ok, true, (t) => void out.push(t))).toBe(true);
    expect(JSON.parse(out[0]!)).toMatchObject({ ok: true, failed: 0 });
  });
});

describe('doctor: publishing', () => {
  it('asks for a token with W3bstream v1, not with W3bstream 2 (the device is its signature)', async () => {
    const url = 'http://127.0.0.1:9/message';
    const v1 = await runDoctor(settings({ publishUrl: url, publisherToken: '' }), { envFile: '/nonexistent', systemctl: null });
    expect(v1.find((c) => c.name === 'token')).toMatchObject({ status: 'fail', detail: 'publish URL set but no publisher token' });
    const v2 = await runDoctor(
      settings({ publishUrl: url, publisherToken: '', transport: 'w3bstream-v2', projectId: '7', projectVersion: '0.1' }),
      { envFile: '/nonexistent', systemctl: null },
    );
    expect(v2.find((c) => c.name === 'token')).toBeUndefined();
    expect(v2.find((c) => c.name === 'transport')).toMatchObject({
      status: 'ok',
      detail: expect.stringMatching(/project 7 version "0.1", no token/),
    });
    expect(v2.find((c) => c.name === 'endpoint')).toBeDefined();
  });
});
