import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleState, parseState, readState } from '@power-meter/meter-files';
import { resolveSettings } from '@power-meter/service';
import { describe, expect, it } from 'vitest';
import { rewardsForWindow, tokensPerH } from '../src/rewards.js';
import { BACKEND_SETTINGS, DEFAULT_HOURLY_REWARD_TIERS, applyChipDefaults } from '../src/settings.js';
import { StateWriter, buildState } from '../src/state-writer.js';
import { clockTrusted, decideClockSync, probeClock, wallTimeOf } from '../src/timesync.js';

describe('state.json names the chip and the calibration', () => {
  it('writes chip, simulated and calibration id into sensor, and readers check their types', () => {
    const base = exampleState();
    const state = buildState({
      ...base,
      nowMs: 1_764_000_000_000,
      rewards: { ...base.rewards, tiers: DEFAULT_HOURLY_REWARD_TIERS },
      sensor: { ...base.sensor, chip: 'INA228', simulated: true, calibrationId: '20260514-3f9a1c2e' },
    });
    expect(state.sensor).toMatchObject({ chip: 'INA228', simulated: true, calibrationId: '20260514-3f9a1c2e' });
    const text = JSON.stringify(state);
    expect(parseState(text)).toMatchObject({ ok: true, state: { sensor: { chip: 'INA228' } } });
    expect(parseState(text.replace('"chip":"INA228"', '"chip":228'))).toMatchObject({
      ok: false,
      problem: 'invalid',
      message: expect.stringMatching(/sensor\.chip/),
    });
    expect(parseState(text.replace('"calibrationId":"20260514-3f9a1c2e"', '"calibrationId":5'))).toMatchObject({ ok: false });
    // Older writers omit them: still valid.
    expect(
      parseState(JSON.stringify(buildState({ ...base, nowMs: 1, rewards: { ...base.rewards, tiers: DEFAULT_HOURLY_REWARD_TIERS } }))).ok,
    ).toBe(true);
  });
});

describe('rewards (docs/w3bstream.md section 6 tier table)', () => {
  it('uses the firmware table by default: < 3 W -> 10/h, < 5 W -> 4/h, else 0', () => {
    expect(tokensPerH(2.99, DEFAULT_HOURLY_REWARD_TIERS)).toBe(10);
    expect(tokensPerH(3, DEFAULT_HOURLY_REWARD_TIERS)).toBe(4);
    expect(tokensPerH(4.99, DEFAULT_HOURLY_REWARD_TIERS)).toBe(4);
    expect(tokensPerH(5, DEFAULT_HOURLY_REWARD_TIERS)).toBe(0);
    expect(rewardsForWindow(2, 5000, DEFAULT_HOURLY_REWARD_TIERS)).toBeCloseTo(10 / 720, 12);
    expect(rewardsForWindow(2, -5, DEFAULT_HOURLY_REWARD_TIERS)).toBe(0);
  });
});

describe('backend settings', () => {
  const resolve = (flags: Record<string, unknown>, env: Record<string, string> = {}, config: Record<string, unknown> = {}) =>
    resolveSettings(BACKEND_SETTINGS, { flags, env, config }).values;

  it("takes the shunt and current of the chosen chip's breakout unless they are set", () => {
    const withDefaults = (flags: Record<string, unknown>, config: Record<string, unknown> = {}) => {
      const r = resolveSettings(BACKEND_SETTINGS, { flags, env: {}, config });
      return applyChipDefaults(r.values, r.sources);
    };
    expect(withDefaults({})).toMatchObject({ sensor: 'ina219', shuntOhms: 0.1, maxCurrentA: 3.2 });
    expect(withDefaults({ sensor: 'ina228' })).toMatchObject({ shuntOhms: 0.015, maxCurrentA: 10 });
    expect(withDefaults({ sensor: 'sim', simChip: 'ina226' })).toMatchObject({ shuntOhms: 0.1, maxCurrentA: 0.8 });
    expect(withDefaults({ sensor: 'ina260' })).toMatchObject({ shuntOhms: 0.002, maxCurrentA: 15 });
    expect(withDefaults({ sensor: 'ina228' }, { shuntOhms: 0.01 })).toMatchObject({ shuntOhms: 0.01, maxCurrentA: 10 });
  });

  it('has the documented defaults', () => {
    expect(resolve({})).toMatchObject({
      dataDir: '/home/pi/data/power-meter',
      window: 5,
      sensor: 'ina219',
      i2cBus: 1,
      i2cAddress: 0x40,
      shuntOhms: 0.1,
      publishUrl: '',
      curve: 'p256',
      signature: 'raw',
      timestampUnit: 's',
      holdUnsyncedClock: true,
    });
  });

  it('validates with messages naming the setting', () => {
    expect(() => resolve({ window: '0' })).toThrow(/--window = "0".*seconds, 1-3600/);
    expect(() => resolve({ i2cAddress: '0x50' })).toThrow(/--i2c-address.*0x40-0x4f/);
    expect(() => resolve({ sensor: 'ina3221' })).toThrow(/--sensor.*ina219, ina226, ina260, ina228, sim/);
    expect(() => resolve({ simChip: 'sim' })).toThrow(/--sim-chip.*ina219, ina226, ina260, ina228$/);
    expect(() => resolve({ publishUrl: 'ftp://x' })).toThrow(/http\(s\) URL/);
    expect(() => resolve({ simLoad: 'pwm:12:2:5' })).toThrow(/--sim-load/);
    expect(() =>
      resolve(
        {},
        {},
        {
          rewardTiers: [
            { belowW: 5, tokensPerH: 1 },
            { belowW: 3, tokensPerH: 2 },
          ],
        },
      ),
    ).toThrow(/rewardTiers/);
    expect(resolve({ i2cAddress: '0x41' }).i2cAddress).toBe(0x41);
    expect(resolve({}, { POWER_METER_HOLD_UNSYNCED_CLOCK: 'false' }).holdUnsyncedClock).toBe(false);
  });

  it('takes the token from the environment or the config file, never a flag', () => {
    expect(BACKEND_SETTINGS.publisherToken.flag).toBeNull();
    expect(resolve({ publisherToken: 'from-flag' }).publisherToken).toBe('');
    expect(resolve({}, { W3BSTREAM_PUBLISHER_TOKEN: 'tok' }).publisherToken).toBe('tok');
  });
});

describe('clock synchronisation', () => {
  const base = {
    wallNowMs: Date.UTC(2026, 10, 24),
    floorMs: Date.UTC(2026, 0, 1),
    timesyncdPresent: false,
    timesyncdSynced: false,
    kernelNtpSynced: null,
  };

  it('distrusts a clock earlier than the build date, whatever the services say', () => {
    const s = decideClockSync({ ...base, wallNowMs: 0, timesyncdSynced: true });
    expect(s.state).toBe('unsynced');
    expect(s.reason).toMatch(/1970.*earlier than this build/);
  });

  it('follows systemd-timesyncd and the kernel NTP status; without any service only the floor applies', () => {
    expect(decideClockSync({ ...base, timesyncdPresent: true }).state).toBe('unsynced');
    expect(decideClockSync({ ...base, timesyncdPresent: true, timesyncdSynced: true }).state).toBe('synced');
    expect(decideClockSync({ ...base, kernelNtpSynced: false }).state).toBe('unsynced');
    expect(decideClockSync({ ...base, kernelNtpSynced: true }).state).toBe('synced');
    const unknown = decideClockSync(base);
    expect(unknown.state).toBe('unknown');
    expect(clockTrusted(unknown)).toBe(true);
  });

  it('probes the timesyncd marker files under a root', async () => {
    const root = mkdtempSync(join(tmpdir(), 'root-'));
    mkdirSync(join(root, 'run/systemd/timesync'), { recursive: true });
    const floorMs = Date.UTC(2026, 0, 1);
    expect(decideClockSync(await probeClock({ root, floorMs })).state).toBe('unsynced');
    writeFileSync(join(root, 'run/systemd/timesync/synchronized'), '');
    expect(decideClockSync(await probeClock({ root, floorMs })).state).toBe('synced');
  });

  it('re-anchors monotonic instants: a clock step does not move earlier readings', () => {
    const anchor = { wallMs: 1_764_000_000_000, monoMs: 50_000 };
    expect(wallTimeOf(45_000, anchor)).toBe(1_763_999_995_000);
  });
});

describe('data directory writer', () => {
  it('writes state.json and the eight legacy files consistently, skipping unchanged files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'data-'));
    const w = new StateWriter(dir);
    const ex = { ...exampleState(), rewards: { tokensPerH: 4, total: 1.25, tiers: DEFAULT_HOURLY_REWARD_TIERS } };
    const state = buildState({ ...ex, nowMs: ex.updatedAtMs, powerW: 4.123456 });
    w.write(state, 'Success');
    const read = await readState(dir);
    expect(read.ok && read.state.powerW).toBe(4.1235);
    const writesAfterFirst = w.writes;
    expect(writesAfterFirst).toBe(9);
    w.write(state, 'Success');
    expect(w.writes).toBe(writesAfterFirst);
    w.write(buildState({ ...ex, nowMs: ex.updatedAtMs + 500, powerW: 5 }), 'Success');
    // Only state.json and current_power_usage changed.
    expect(w.writes).toBe(writesAfterFirst + 2);
  });

  it('state.json carries the configured reward tiers, so the display colours by them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'data-'));
    const ex = exampleState();
    const tiers = [
      { belowW: 1.5, tokensPerH: 20 },
      { belowW: 2.5, tokensPerH: 6 },
      { belowW: 9, tokensPerH: 1 },
    ];
    new StateWriter(dir).write(buildState({ ...ex, nowMs: ex.updatedAtMs, rewards: { tokensPerH: 6, total: 2, tiers } }), null);
    const read = await readState(dir);
    expect(read.ok && read.state.rewards).toEqual({ tokensPerH: 6, total: 2, tiers });
  });
});
