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

export interface Logger {
  readonly level: LogLevel;
  error(line: string): void;
  warning(line: string): void;
  notice(line: string): void;
  info(line: string): void;
  debug(line: string): void;
  /** Plain `(line) => void` for libraries that take one callback: info level. */
  readonly line: (line: string) => void;
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
  const emit = (l: LogLevel, line: string): void => {
    if (PRIORITY[l] > max) return;
    // One journal entry per line: a message with newlines would lose its priority after the first.
    const text = line.replace(/\r?\n/g, ' | ');
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
    error: (line) => emit('error', line),
    warning: (line) => emit('warning', line),
    notice: (line) => emit('notice', line),
    info: (line) => emit('info', line),
    debug: (line) => emit('debug', line),
    line: (line) => emit('info', line),
  };
}

/** Parser for `--log-level`. */
export function parseLogLevel(raw: unknown): LogLevel {
  if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) throw new Error('not a level');
  return raw as LogLevel;
}
