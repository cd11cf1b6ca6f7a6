import { readFileSync } from 'node:fs';

/**
 * Settings resolution shared by both programs (design.md "Commands"): command-line flags, then
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

export interface SettingSpec<T> {
  /** camelCase key in the JSON config file. */
  key: string;
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
}

export type SpecTable = Record<string, SettingSpec<unknown>>;
export type Resolved<S extends SpecTable> = { [K in keyof S]: S[K] extends SettingSpec<infer T> ? T : never };

export interface SettingInputs {
  flags: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  config: Record<string, unknown>;
}

export function resolveSettings<S extends SpecTable>(specs: S, inputs: SettingInputs): { values: Resolved<S>; sources: Record<keyof S, SettingSource> } {
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
    } else if (inputs.config[spec.key] !== undefined) {
      raw = inputs.config[spec.key];
      source = 'config';
    } else {
      values[name] = spec.default;
      sources[name] = 'default';
      continue;
    }
    try {
      values[name] = spec.parse(raw);
    } catch {
      const label = source === 'flag' ? `--${spec.flag}` : source === 'env' ? spec.env! : `"${spec.key}" in the config file`;
      throw new SettingError(label, spec.secret ? '<hidden>' : raw, spec.allowed, source);
    }
    sources[name] = source;
  }
  return { values: values as Resolved<S>, sources: sources as Record<keyof S, SettingSource> };
}

/**
 * Reads the JSON config file. A missing default file is fine (empty config); a missing file the
 * user named, unreadable JSON or a non-object is a SettingError. `section` selects a nested object
 * (the display reads `display`).
 */
export function loadConfigFile(path: string, explicit: boolean, section?: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return {};
    throw new SettingError('--config', path, `a readable JSON file (${code ?? String(err)})`, 'file');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SettingError('--config', path, `valid JSON (${(err as Error).message})`, 'file');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SettingError('--config', path, 'a JSON object at the top level', 'file');
  const obj = parsed as Record<string, unknown>;
  if (section === undefined) return obj;
  const sub = obj[section];
  if (sub === undefined) return {};
  if (typeof sub !== 'object' || sub === null || Array.isArray(sub)) throw new SettingError(`"${section}" in ${path}`, sub, 'a JSON object', 'config');
  return sub as Record<string, unknown>;
}

/** `--help` text for one setting: description, default and environment variable. */
export function helpText(spec: SettingSpec<unknown>): string {
  const def = spec.secret ? 'unset' : spec.default === null || spec.default === undefined || spec.default === '' ? 'unset' : JSON.stringify(spec.default);
  return `${spec.describe} (default: ${def}${spec.env ? `; env ${spec.env}` : ''}; config "${spec.key}")`;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

// ---- parsers ------------------------------------------------------------------------------

export const parsers = {
  number(min: number, max: number): (raw: unknown) => number {
    return (raw) => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < min || n > max) throw new Error('out of range');
      return n;
    };
  },
  integer(min: number, max: number): (raw: unknown) => number {
    return (raw) => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(raw) ? Number(raw) : NaN;
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
    return raw;
  },
};
