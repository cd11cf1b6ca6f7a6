import { existsSync } from 'node:fs';
import { readBoundedFileSync } from '@power-meter/meter-files';

/**
 * Settings resolution shared by both programs (docs/design.md "Commands"): command-line flags, then
 * environment variables, then the JSON config file, then built-in defaults. Each setting is
 * declared once (flag, environment variable, config key, default, parser), and the same table
 * drives parsing, validation, `--help` text and the README's configuration reference.
 */
export type SettingSource = 'flag' | 'env' | 'config' | 'default';

export class SettingError extends Error {
  constructor(
    readonly setting: string,
    readonly value: unknown,
    readonly allowed: string,
    readonly source: SettingSource | 'file',
  ) {
    super(`invalid setting ${setting} = ${JSON.stringify(value)} (from ${source}): allowed ${allowed}`);
    this.name = 'SettingError';
  }
}

/**
 * One setting. Its name is its key in the table (SpecTable): the camelCase key in the JSON config
 * file and the name of the resolved value, written once.
 */
export interface SettingSpec<T> {
  /** Long flag without dashes (`data-dir`), or null for settings that must never be a flag. */
  flag: string | null;
  /** Environment variable name. */
  env: string | null;
  default: T;
  /** Text for --help and the README. */
  describe: string;
  /** Converts a raw value (string from flag/env, any JSON from the config) or throws `allowed`. */
  parse: (raw: unknown) => T;
  /** What is allowed, for error messages. */
  allowed: string;
  /** Never print the value (tokens). */
  secret?: boolean;
  /**
   * The JSON types the config file may use for it. Flags and environment variables are text and
   * go through `parse` as text; in the JSON file a value of the wrong type (`{"window":"5"}`) is
   * refused rather than converted. Default: the type of `default` (no check when it is null).
   */
  json?: readonly JsonType[];
}

export type JsonType = 'string' | 'number' | 'boolean' | 'array' | 'object';

function jsonTypeOf(v: unknown): JsonType | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return 'array';
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean' || t === 'object' ? t : null;
}

/** The JSON types a config-file value of this setting may have (null: any, the parser decides). */
export function configJsonTypes(spec: SettingSpec<unknown>): readonly JsonType[] | null {
  if (spec.json !== undefined) return spec.json;
  const t = jsonTypeOf(spec.default);
  return t === null ? null : [t];
}

/** Settings by name: each key is the setting's config-file key (`dataDir`, `publishUrl`). */
export type SpecTable = Record<string, SettingSpec<unknown>>;
export type Resolved<S extends SpecTable> = { [K in keyof S]: S[K] extends SettingSpec<infer T> ? T : never };

export interface SettingInputs {
  flags: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  config: Record<string, unknown>;
}

export function resolveSettings<S extends SpecTable>(
  specs: S,
  inputs: SettingInputs,
): { values: Resolved<S>; sources: Record<keyof S, SettingSource> } {
  const values = {} as Record<string, unknown>;
  const sources = {} as Record<string, SettingSource>;
  for (const [name, spec] of Object.entries(specs)) {
    const flagKey = spec.flag === null ? null : camel(spec.flag);
    let raw: unknown;
    let source: SettingSource;
    if (flagKey !== null && inputs.flags[flagKey] !== undefined) {
      raw = inputs.flags[flagKey];
      source = 'flag';
    } else if (spec.env !== null && inputs.env[spec.env] !== undefined && inputs.env[spec.env] !== '') {
      raw = inputs.env[spec.env];
      source = 'env';
    } else if (inputs.config[name] !== undefined) {
      raw = inputs.config[name];
      source = 'config';
    } else {
      values[name] = spec.default;
      sources[name] = 'default';
      continue;
    }
    const label = source === 'flag' ? `--${spec.flag}` : source === 'env' ? spec.env! : `"${name}" in the config file`;
    const types = source === 'config' ? configJsonTypes(spec) : null;
    const type = jsonTypeOf(raw);
    if (types !== null && (type === null || !types.includes(type)))
      throw new SettingError(
        label,
        spec.secret ? '<hidden>' : raw,
        `${spec.allowed}, written as a JSON ${types.join(' or a JSON ')} (not a JSON ${type ?? 'null'})`,
        source,
      );
    try {
      values[name] = spec.parse(raw);
    } catch {
      throw new SettingError(label, spec.secret ? '<hidden>' : raw, spec.allowed, source);
    }
    sources[name] = source;
  }
  return { values: values as Resolved<S>, sources: sources as Record<keyof S, SettingSource> };
}

/** A config file is a few kilobytes; anything bigger is not one (and must not fill memory). */
export const CONFIG_MAX_BYTES = 1024 * 1024;

/**
 * Reads the JSON config file. A missing default file is fine (empty config); a missing file the
 * user named, anything but a regular file of at most CONFIG_MAX_BYTES (`--config /dev/zero`),
 * unreadable JSON or a non-object is a SettingError. `section` selects a nested object (the
 * display reads `display`).
 */
export function loadConfigFile(path: string, explicit: boolean, section?: string): Record<string, unknown> {
  const r = readBoundedFileSync(path, CONFIG_MAX_BYTES);
  if (!r.ok) {
    if (r.code === 'missing' && !explicit) return {};
    throw new SettingError('--config', path, `a regular JSON file of at most ${CONFIG_MAX_BYTES} bytes (${r.message})`, 'file');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.text);
  } catch (err) {
    throw new SettingError('--config', path, `valid JSON (${(err as Error).message})`, 'file');
  }
  if (!isObject(parsed)) throw new SettingError('--config', path, 'a JSON object at the top level', 'file');
  if (section === undefined) return parsed;
  const sub = parsed[section];
  if (sub === undefined) return {};
  if (!isObject(sub)) throw new SettingError(`"${section}" in ${path}`, sub, 'a JSON object', 'config');
  return sub;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Refuses config keys no setting reads: a misspelt `"publishURL"` would otherwise leave
 * publishing disabled without a word. Keys starting with `_` are comments. `where` names the
 * object (`the config file`, `"display" in the config file`).
 */
export function checkConfigKeys(config: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(config)) {
    if (key.startsWith('_') || known.includes(key)) continue;
    throw new UnknownKeyError(key, where, closest(key, known), known);
  }
}

/** A config key that no setting reads (exit 2 like any invalid setting). */
export class UnknownKeyError extends SettingError {
  constructor(
    readonly key: string,
    where: string,
    readonly suggestion: string | null,
    known: readonly string[],
  ) {
    super(`"${key}" in ${where}`, key, `one of ${known.join(', ')} (keys starting with _ are comments)`, 'config');
    this.message = `unknown key "${key}" in ${where}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}: known keys are ${known.join(', ')}; keys starting with _ are comments`;
    this.name = 'UnknownKeyError';
  }
}

/** The known key nearest to a misspelt one (edit distance, case-insensitive), if any is close. */
export function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

export const DEFAULT_CONFIG_FILE = '/etc/power-meter/config.json';

export interface LoadSettingsOptions<S extends SpecTable> {
  specs: S;
  /** Parsed command-line flags (commander's camelCase names); `config` is the --config flag. */
  flags: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /**
   * Where this program's keys live in the config file: undefined = the top level (the backend),
   * or the name of an object (the display reads `display`).
   */
  section?: string;
  /** Top-level objects that belong to another program: allowed, not read (the backend: `display`). */
  otherSections?: readonly string[];
  /** Settings of a section that fall back to the same top-level key (the shared `dataDir`). */
  inheritFromTop?: readonly string[];
  /** Checks that involve several settings (and where each came from); throw a SettingError. */
  check?: (values: Resolved<S>, sources: Record<keyof S, SettingSource>) => void;
}

/**
 * The one settings loader of both programs: finds the config file (`--config`, then
 * POWER_METER_CONFIG, then /etc/power-meter/config.json if it exists), reads it bounded,
 * refuses unknown keys, then resolves flags > environment > config > defaults with each
 * setting's own parser. Every key comes from the spec table, so a setting added there is read,
 * validated and documented without touching this function. Throws SettingError (exit 2).
 */
export function loadSettings<S extends SpecTable>(
  opts: LoadSettingsOptions<S>,
): { values: Resolved<S>; sources: Record<keyof S, SettingSource>; configFile: string | null } {
  const named = (opts.flags.config as string | undefined) ?? (opts.env.POWER_METER_CONFIG || undefined);
  const path = named ?? DEFAULT_CONFIG_FILE;
  const use = named !== undefined || existsSync(path);
  const top = use ? loadConfigFile(path, named !== undefined) : {};
  const keys = Object.keys(opts.specs);
  let config: Record<string, unknown>;
  if (opts.section === undefined) {
    checkConfigKeys(top, [...keys, ...(opts.otherSections ?? [])], 'the config file');
    config = top;
  } else {
    const sub = top[opts.section];
    if (sub !== undefined && !isObject(sub)) throw new SettingError(`"${opts.section}" in the config file`, sub, 'a JSON object', 'config');
    config = { ...(sub ?? {}) };
    checkConfigKeys(config, keys, `"${opts.section}" in the config file`);
    for (const k of opts.inheritFromTop ?? []) if (config[k] === undefined && top[k] !== undefined) config[k] = top[k];
  }
  const r = resolveSettings(opts.specs, { flags: opts.flags, env: opts.env, config });
  opts.check?.(r.values, r.sources);
  return { ...r, configFile: use ? path : null };
}

/** `--help` text for one setting (its table key and spec): description, default, environment variable, config key. */
export function helpText(key: string, spec: SettingSpec<unknown>): string {
  const def = spec.secret
    ? 'unset'
    : spec.default === null || spec.default === undefined || spec.default === ''
      ? 'unset'
      : JSON.stringify(spec.default);
  return `${spec.describe} (default: ${def}${spec.env ? `; env ${spec.env}` : ''}; config "${key}")`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

// ---- parsers ------------------------------------------------------------------------------

const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)$/;

export const parsers = {
  /** Plain decimal notation only: `0x10`, `1e3`, `Infinity` are refused, not reinterpreted. */
  number(min: number, max: number): (raw: unknown) => number {
    return (raw) => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < min || n > max) throw new Error('out of range');
      return n;
    };
  },
  /** Decimal digits only; `hex: true` also accepts 0x.. (an I2C address is written 0x40). */
  integer(min: number, max: number, opts: { hex?: boolean } = {}): (raw: unknown) => number {
    return (raw) => {
      const text = typeof raw === 'string' ? raw.trim() : '';
      const n =
        typeof raw === 'number' ? raw : /^-?\d+$/.test(text) || (opts.hex === true && /^0x[0-9a-f]+$/i.test(text)) ? Number(text) : NaN;
      if (!Number.isInteger(n) || n < min || n > max) throw new Error('out of range');
      return n;
    };
  },
  oneOf<T extends string>(values: readonly T[]): (raw: unknown) => T {
    return (raw) => {
      if (typeof raw !== 'string' || !values.includes(raw as T)) throw new Error('not allowed');
      return raw as T;
    };
  },
  boolean(raw: unknown): boolean {
    if (typeof raw === 'boolean') return raw;
    if (typeof raw === 'string' && /^(true|1|yes|on)$/i.test(raw)) return true;
    if (typeof raw === 'string' && /^(false|0|no|off)$/i.test(raw)) return false;
    throw new Error('not a boolean');
  },
  string(raw: unknown): string {
    if (typeof raw !== 'string') throw new Error('not a string');
    return raw;
  },
  nonEmptyString(raw: unknown): string {
    if (typeof raw !== 'string' || raw.trim() === '') throw new Error('empty');
    return raw;
  },
  /** http(s) URL or the empty string (publishing disabled). */
  optionalUrl(raw: unknown): string {
    if (typeof raw !== 'string') throw new Error('not a string');
    if (raw === '') return '';
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    if (u.username || u.password) throw new Error('credentials in the URL');
    return raw;
  },
};
