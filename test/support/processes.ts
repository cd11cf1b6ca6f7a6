import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { afterAll } from 'vitest';

/** Real processes for the tests: the built programs (npm test builds first). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BACKEND = join(ROOT, 'packages/power-meter/dist/cli.js');
export const DISPLAY = join(ROOT, 'packages/power-meter-display/dist/cli.js');

/** An empty config file, so a developer's /etc/power-meter/config.json never leaks into tests. */
const EMPTY_CONFIG = join(mkdtempSync(join(tmpdir(), 'pm-config-')), 'config.json');
writeFileSync(EMPTY_CONFIG, '{}');
/**
 * Where the backends of these tests keep their RAM directories ($XDG_RUNTIME_DIR/power-meter-<id>),
 * instead of /dev/shm, where the ones of killed backends would pile up; removed when the tests end.
 */
const RUNTIME_ROOT = mkdtempSync(join(tmpdir(), 'pm-run-'));
afterAll(() => rmSync(RUNTIME_ROOT, { recursive: true, force: true }));

export interface Proc {
  proc: ChildProcessWithoutNullStreams;
  /** stdout + stderr so far. */
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends a signal and resolves with the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  exited: Promise<number | string>;
}

/** `uid`: run as another user (and its group of the same number), e.g. 65534 (nobody) to meet permissions root never meets. */
export function start(script: string, args: string[], env: Record<string, string> = {}, opts: { uid?: number } = {}): Proc {
  const proc = spawn(process.execPath, [script, ...args], {
    ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
    // A clean environment: no token or config from the machine running the tests leaks in.
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      POWER_METER_CONFIG: EMPTY_CONFIG,
      XDG_RUNTIME_DIR: RUNTIME_ROOT,
      ...env,
    },
    stdio: 'pipe',
  });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    output: () => out,
    async waitFor(pattern, timeoutMs = 15_000) {
      const t0 = Date.now();
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (proc.exitCode !== null) throw new Error(`process exited (${proc.exitCode}) before ${pattern}:\n${out}`);
        if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${pattern}:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    exited,
  };
}

/** The tests that start processes wait with the shared helper; importing it from here is the same function. */
export { until } from './until.js';

/**
 * The outbox's own counters and undelivered sequence numbers, read directly from the database of a
 * stopped backend (read-only: the test checks what the program left, it changes nothing).
 */
export async function outboxContents(
  dataDir: string,
): Promise<{ waiting: number; delivered: number; dropped: number; nextSeq: number; seqs: number[]; windows: number }> {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(dataDir, 'outbox', 'outbox.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const counter = (name: string) => (db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number }).value;
    const seqs = (db.prepare('SELECT seq FROM messages ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
    const windows = (db.prepare('SELECT windows FROM meter_totals WHERE id = 1').get() as { windows: number }).windows;
    return {
      waiting: counter('waiting'),
      delivered: counter('delivered'),
      dropped: counter('dropped'),
      nextSeq: counter('next_seq'),
      seqs,
      windows,
    };
  } finally {
    db.close();
  }
}
