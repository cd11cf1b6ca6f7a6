import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_MAX_BYTES,
  SettingError,
  UnknownKeyError,
  closest,
  createLogger,
  renderFields,
  loadSettings,
  parsers,
  type SettingSpec,
} from '../src/index.js';

const specs = {
  window: {
    flag: 'window',
    env: 'PM_WINDOW',
    default: 5,
    describe: 'window',
    parse: parsers.number(1, 3600),
    allowed: 'seconds, 1-3600',
  } as SettingSpec<number>,
  publishUrl: {
    flag: 'publish-url',
    env: null,
    default: '',
    describe: 'url',
    parse: parsers.optionalUrl,
    allowed: 'a URL',
  } as SettingSpec<string>,
  dataDir: {
    flag: 'data-dir',
    env: null,
    default: '/d',
    describe: 'dir',
    parse: parsers.nonEmptyString,
    allowed: 'a path',
  } as SettingSpec<string>,
};

function configFile(content: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.json');
  writeFileSync(f, content);
  return f;
}

const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

describe('loadSettings: the one loader of both programs', () => {
  it('refuses an unknown key, naming it and the closest known key; _ keys are comments; other sections are allowed', () => {
    const err = thrown(() => loadSettings({ specs, flags: { config: configFile('{"publishURL": "https://x/y"}') }, env: {} }));
    expect(err).toBeInstanceOf(UnknownKeyError);
    expect(err.message).toMatch(/unknown key "publishURL" in the config file \(did you mean "publishUrl"\?\)/);
    expect(thrown(() => loadSettings({ specs, flags: { config: configFile('{"windw": 3}') }, env: {} })).message).toMatch(
      /"windw".*did you mean "window"/,
    );
    const ok = loadSettings({
      specs,
      flags: { config: configFile('{"_comment": "x", "window": 7, "display": {"panel": "png"}}') },
      env: {},
      otherSections: ['display'],
    });
    expect(ok.values.window).toBe(7);
    expect(thrown(() => loadSettings({ specs, flags: { config: configFile('{"display": {}}') }, env: {} }))).toBeInstanceOf(
      UnknownKeyError,
    );
  });

  it('reads a section, checks its keys, and inherits named top-level keys', () => {
    const f = configFile('{"dataDir": "/top", "display": {"_c": 1, "window": 9}}');
    const r = loadSettings({ specs, flags: { config: f }, env: {}, section: 'display', inheritFromTop: ['dataDir'] });
    expect(r.values).toMatchObject({ dataDir: '/top', window: 9 });
    expect(r.configFile).toBe(f);
    const bad = configFile('{"display": {"widow": 9}}');
    expect(thrown(() => loadSettings({ specs, flags: { config: bad }, env: {}, section: 'display' })).message).toMatch(
      /unknown key "widow" in "display" in the config file \(did you mean "window"\?\)/,
    );
  });

  it('takes the config path from POWER_METER_CONFIG; a named missing file is an error', () => {
    const f = configFile('{"window": 11}');
    expect(loadSettings({ specs, flags: {}, env: { POWER_METER_CONFIG: f } }).values.window).toBe(11);
    expect(thrown(() => loadSettings({ specs, flags: { config: '/nonexistent/config.json' }, env: {} }))).toBeInstanceOf(SettingError);
  });

  it('rejects numbers that are not plain decimals', () => {
    for (const v of ['0x10', '1e3', 'Infinity', ' ', '10abc'])
      expect(thrown(() => loadSettings({ specs, flags: { window: v, config: configFile('{}') }, env: {} })).message).toContain(
        `--window = ${JSON.stringify(v)}`,
      );
    expect(loadSettings({ specs, flags: { window: '2.5', config: configFile('{}') }, env: {} }).values.window).toBe(2.5);
    expect(parsers.integer(0, 255)('12')).toBe(12);
    expect(() => parsers.integer(0, 255)('0x0c')).toThrow();
    expect(parsers.integer(0x40, 0x4f, { hex: true })('0x41')).toBe(0x41);
    expect(() => parsers.optionalUrl('https://user:pw@host/x')).toThrow();
  });

  it('reads the config only if it is a regular file of bounded size', () => {
    for (const p of ['/dev/zero', '/dev/urandom', mkdtempSync(join(tmpdir(), 'cfg-dir-'))]) {
      const err = thrown(() => loadSettings({ specs, flags: { config: p }, env: {} }));
      expect(err).toBeInstanceOf(SettingError);
      expect(err.message).toMatch(/not a regular file|is a directory|character device/);
    }
    const big = configFile(`{"window": 5, "_pad": "${'x'.repeat(CONFIG_MAX_BYTES)}"}`);
    expect(thrown(() => loadSettings({ specs, flags: { config: big }, env: {} })).message).toMatch(/more than the 1048576 allowed/);
  });

  it('suggests only keys that are close', () => {
    expect(closest('publishURL', ['publishUrl', 'window'])).toBe('publishUrl');
    expect(closest('zzzzzz', ['publishUrl', 'window'])).toBeNull();
  });
});

describe('logger', () => {
  it('prefixes sd-daemon priorities for the journal and words on a terminal; filters by level', () => {
    const lines: string[] = [];
    const j = createLogger({ program: 'pm', journal: true, level: 'info', write: (t) => void lines.push(t) });
    j.error('e');
    j.warning('w');
    j.notice('n');
    j.info('i\nsecond line');
    j.debug('d');
    expect(lines).toEqual(['<3>e\n', '<4>w\n', '<5>n\n', '<6>i | second line\n']);
    lines.length = 0;
    const t = createLogger({ program: 'pm', journal: false, level: 'warning', write: (x) => void lines.push(x) });
    t.info('hidden');
    t.warning('careful');
    expect(lines).toEqual(['pm: warning: careful\n']);
  });

  it('writes fields after the message as key=value, quoting a value only when it is not one plain word', () => {
    const lines: string[] = [];
    const j = createLogger({ program: 'pm', journal: true, write: (t) => void lines.push(t) });
    j.warning('publish failing', { seq: 3, ok: false, none: null, key: 'ECONNREFUSED', skipped: undefined });
    j.notice('said', { text: 'two words', quote: 'a"b', eq: 'a=b', empty: '', nl: 'x\ny' });
    expect(lines).toEqual([
      '<4>publish failing seq=3 ok=false none=null key=ECONNREFUSED\n',
      // A newline inside a value is JSON-escaped, so the entry stays one line with its priority.
      '<5>said text="two words" quote="a\\"b" eq="a=b" empty="" nl="x\\ny"\n',
    ]);
    expect(renderFields(undefined)).toBe('');
  });

  it('uses the prefixes only when stderr really is the stream named in JOURNAL_STREAM', () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    const file = join(dir, 'stderr');
    const fd = openSync(file, 'w');
    const st = statSync(file, { bigint: true });
    const script = `import('${join(__dirname, '../dist/index.js')}').then((m) => m.createLogger({ program: 'pm' }).warning('w'))`;
    spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', fd], env: { JOURNAL_STREAM: `${st.dev}:${st.ino}` } });
    spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', fd], env: { JOURNAL_STREAM: '1:2' } });
    closeSync(fd);
    expect(readFileSync(file, 'utf8')).toBe('<4>w\npm: warning: w\n');
  });
});
