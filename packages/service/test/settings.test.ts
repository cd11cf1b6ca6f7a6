import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SettingError, helpText, loadConfigFile, parsers, resolveSettings, type SettingSpec } from '../src/index.js';

const specs = {
  window: {
    flag: 'window',
    env: 'PM_WINDOW',
    default: 5,
    describe: 'window length, s',
    parse: parsers.number(1, 3600),
    allowed: 'seconds, 1-3600',
  } as SettingSpec<number>,
  dataDir: {
    flag: 'data-dir',
    env: 'PM_DATA_DIR',
    default: '/d',
    describe: 'data dir',
    parse: parsers.nonEmptyString,
    allowed: 'a path',
  } as SettingSpec<string>,
  publisherToken: {
    flag: null,
    env: 'TOKEN',
    default: '',
    describe: 'token',
    parse: parsers.string,
    allowed: 'a string',
    secret: true,
  } as SettingSpec<string>,
};

describe('settings precedence and validation', () => {
  it('takes flags over environment over config over defaults', () => {
    const base = { flags: {}, env: {}, config: {} };
    expect(resolveSettings(specs, base).values.window).toBe(5);
    expect(resolveSettings(specs, { ...base, config: { window: 10 } }).values.window).toBe(10);
    expect(resolveSettings(specs, { ...base, env: { PM_WINDOW: '20' }, config: { window: 10 } }).values.window).toBe(20);
    const r = resolveSettings(specs, { flags: { window: '30', dataDir: '/x' }, env: { PM_WINDOW: '20' }, config: { window: 10 } });
    expect(r.values).toMatchObject({ window: 30, dataDir: '/x' });
    expect(r.sources).toMatchObject({ window: 'flag', dataDir: 'flag', publisherToken: 'default' });
  });

  it('refuses a config-file value of the wrong JSON type instead of converting it; flags and the environment are text', () => {
    const none = { flags: {}, env: {} };
    expect(() => resolveSettings(specs, { ...none, config: { window: '5' } })).toThrow(
      /"window" in the config file = "5" .*seconds, 1-3600, written as a JSON number \(not a JSON string\)/,
    );
    expect(() => resolveSettings(specs, { ...none, config: { dataDir: ['/d'] } })).toThrow(/written as a JSON string \(not a JSON array\)/);
    expect(resolveSettings(specs, { flags: { window: '5' }, env: { PM_DATA_DIR: '/e' }, config: {} }).values).toMatchObject({
      window: 5,
      dataDir: '/e',
    });
    // A setting may name the other types it takes (an I2C address as "0x41").
    const hex = { ...specs.window, parse: parsers.integer(0x40, 0x4f, { hex: true }), json: ['number', 'string'] as const };
    expect(resolveSettings({ hex }, { ...none, config: { hex: '0x41' } }).values.hex).toBe(0x41);
    expect(() => resolveSettings({ hex }, { ...none, config: { hex: true } })).toThrow(
      /JSON number or a JSON string \(not a JSON boolean\)/,
    );
  });

  it('names the setting, the value and what is allowed; hides secrets', () => {
    expect(() => resolveSettings(specs, { flags: { window: 'abc' }, env: {}, config: {} })).toThrow(/--window = "abc".*seconds, 1-3600/);
    expect(() => resolveSettings(specs, { flags: {}, env: { PM_WINDOW: '0' }, config: {} })).toThrow(/PM_WINDOW = "0"/);
    const err = (() => {
      try {
        resolveSettings(specs, { flags: {}, env: {}, config: { publisherToken: 42 } });
      } catch (e) {
        return e as SettingError;
      }
    })();
    expect(err).toBeInstanceOf(SettingError);
    expect(err!.message).not.toContain('42');
    expect(err!.message).toContain('"publisherToken" in the config file');
  });

  it('reads config files: a missing default file is empty, a named or broken one is an error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'settings-'));
    expect(loadConfigFile(join(dir, 'none.json'), false)).toEqual({});
    expect(() => loadConfigFile(join(dir, 'none.json'), true)).toThrow(SettingError);
    writeFileSync(join(dir, 'bad.json'), '{"window": ');
    expect(() => loadConfigFile(join(dir, 'bad.json'), false)).toThrow(/valid JSON/);
    writeFileSync(join(dir, 'ok.json'), '{"window": 7, "display": {"panel": "png"}}');
    expect(loadConfigFile(join(dir, 'ok.json'), true)).toMatchObject({ window: 7 });
    expect(loadConfigFile(join(dir, 'ok.json'), true, 'display')).toEqual({ panel: 'png' });
  });

  it('help text shows default and environment variable but never a secret default', () => {
    expect(helpText('window', specs.window)).toBe('window length, s (default: 5; env PM_WINDOW; config "window")');
    expect(helpText('publisherToken', specs.publisherToken)).toContain('default: unset');
  });
});
