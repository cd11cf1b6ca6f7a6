import { fstatSync } from 'node:fs';

/**
 * The one logger of both programs. Lines go to stderr; under journald (systemd connects stderr to
 * the journal and names the stream in JOURNAL_STREAM) each line starts with the sd-daemon
 * priority prefix `<N>` (sd-daemon(3)), so `journalctl -p warning` shows warnings and errors and
 * `systemctl status` colours them. On a terminal the level is written as a word instead.
 */
export const LOG_LEVELS = ['error', 'warning', 'notice', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** syslog priorities (sd-daemon.h: SD_ERR 3, SD_WARNING 4, SD_NOTICE 5, SD_INFO 6, SD_DEBUG 7). */
export const PRIORITY: Record<LogLevel, number> = { error: 3, warning: 4, notice: 5, info: 6, debug: 7 };

/** Facts that go with a message, written after it as ` key=value` (undefined ones are left out). */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

/**
 * What the libraries (ina219, w3bstream) and the programs' own parts log through: a message at a
 * level, with optional fields. The libraries declare the same shape themselves (they depend on no
 * logging package); a Logger is one.
 */
export interface Log {
  error(message: string, fields?: LogFields): void;
  warning(message: string, fields?: LogFields): void;
  notice(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}

export interface Logger extends Log {
  readonly level: LogLevel;
  /** Plain `(line) => void` for parts that take one callback: info level. */
  readonly line: (line: string) => void;
}

/**
 * ` key=value` for each field: numbers, booleans and null as they are, strings bare when they are
 * one plain word and JSON-quoted otherwise (spaces, quotes, `=`, backslashes, control characters,
 * empty), so a line splits into fields the same way whatever the values hold.
 */
export function renderFields(fields: LogFields | undefined): string {
  if (fields === undefined) return '';
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = typeof value === 'string' && !/^[^\s"=\\\p{Cc}]+$/u.test(value) ? JSON.stringify(value) : String(value);
    out += ` ${key}=${text}`;
  }
  return out;
}

export interface LoggerOptions {
  /** Lines below this level are dropped (default info). */
  level?: LogLevel;
  /** Program name, before warnings and errors on a terminal (journald has SyslogIdentifier=). */
  program: string;
  /** Prefix lines with `<N>`: default = stderr is the journal stream. */
  journal?: boolean;
  /** Where lines go (default: stderr, which Node writes synchronously for files, pipes and terminals on Linux, so the last line before an exit is kept). */
  write?: (text: string) => void;
}

/**
 * True when stderr is the journal stream systemd announced in JOURNAL_STREAM ("<dev>:<inode>"),
 * checked against stderr itself as sd-daemon(3) recommends: a child that inherited the variable
 * but writes to a pipe or a terminal gets plain lines.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return st.dev === BigInt(m[1] ?? '') && st.ino === BigInt(m[2] ?? '');
  } catch {
    return false;
  }
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? 'info';
  const journal = opts.journal ?? stderrIsJournal();
  const write = opts.write ?? ((text: string) => void process.stderr.write(text));
  const max = PRIORITY[level];
  const emit = (l: LogLevel, line: string, fields?: LogFields): void => {
    if (PRIORITY[l] > max) return;
    // One journal entry per line: a message with newlines would lose its priority after the first.
    const text = `${line}${renderFields(fields)}`.replace(/\r?\n/g, ' | ');
    const tag = journal
      ? `<${PRIORITY[l]}>`
      : l === 'info' || l === 'debug'
        ? ''
        : l === 'error'
          ? `${opts.program}: `
          : `${opts.program}: ${l}: `;
    try {
      write(`${tag}${text}\n`);
    } catch {
      // stderr gone (EPIPE, EAGAIN on a full pipe): logging must never take the program down.
    }
  };
  return {
    level,
    error: (line, fields) => emit('error', line, fields),
    warning: (line, fields) => emit('warning', line, fields),
    notice: (line, fields) => emit('notice', line, fields),
    info: (line, fields) => emit('info', line, fields),
    debug: (line, fields) => emit('debug', line, fields),
    line: (line) => emit('info', line),
  };
}

/** Parser for `--log-level`. */
export function parseLogLevel(raw: unknown): LogLevel {
  if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) throw new Error('not a level');
  return raw as LogLevel;
}
