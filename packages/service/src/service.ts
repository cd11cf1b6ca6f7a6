import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';

/**
 * Talking to systemd (sd_notify(3)) from Node, which has no unix datagram sockets: each message
 * is sent by the `systemd-notify` program, so the units need `NotifyAccess=all` (the sender is a
 * child, not the main process). systemd-notify waits until systemd has processed the message
 * before it exits (sd_notify_barrier, systemd >= 246), so systemd can still tell which unit the
 * short-lived sender belonged to.
 *
 * - `ready()` after start-up: with `Type=notify`, `systemctl start` returns only then, and a
 *   program that dies during start-up is a failed start, not a running service.
 * - The watchdog: with `WatchdogSec=`, systemd sets WATCHDOG_USEC and expects `WATCHDOG=1` at least
 *   that often. The pings are sent from the event loop, so a loop that hangs (an endless loop, a
 *   blocking call) stops them and systemd kills and restarts the program (SIGABRT, then SIGKILL).
 * - `status()` sets the one-line status `systemctl status` shows.
 *
 * Outside systemd (NOTIFY_SOCKET unset) every call does nothing.
 */
export interface ServiceNotifierOptions {
  env?: NodeJS.ProcessEnv;
  /** Told once if messages cannot be sent (systemd-notify missing). */
  warn?: (line: string) => void;
  /** The program that sends messages (default `systemd-notify` on the PATH). */
  command?: string;
}

export class ServiceNotifier {
  readonly enabled: boolean;
  /** Watchdog period systemd expects, ms (null: no watchdog). */
  readonly watchdogMs: number | null;
  private timer: NodeJS.Timeout | null = null;
  private warned = false;
  private inFlight = 0;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: ServiceNotifierOptions = {}) {
    this.env = opts.env ?? process.env;
    this.enabled = Boolean(this.env.NOTIFY_SOCKET);
    const usec = Number(this.env.WATCHDOG_USEC);
    // WATCHDOG_PID, when set, names the process the watchdog is meant for (not an inheriting child).
    const forUs = this.env.WATCHDOG_PID === undefined || Number(this.env.WATCHDOG_PID) === process.pid;
    this.watchdogMs = this.enabled && forUs && Number.isFinite(usec) && usec > 0 ? usec / 1000 : null;
  }

  ready(status?: string): void {
    this.send(['READY=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  status(text: string): void {
    this.send([`STATUS=${text}`]);
  }

  stopping(): void {
    this.stopWatchdog();
    this.send(['STOPPING=1']);
  }

  /** Pings the watchdog at half its period (sd_watchdog_enabled(3) recommends that margin). */
  startWatchdog(): void {
    if (this.watchdogMs === null || this.timer !== null) return;
    const every = Math.max(500, this.watchdogMs / 2);
    this.send(['WATCHDOG=1']);
    this.timer = setInterval(() => this.send(['WATCHDOG=1']), every);
    this.timer.unref();
  }

  stopWatchdog(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private send(assignments: string[]): void {
    if (!this.enabled) return;
    // A slow systemd must not pile up senders: one at a time is plenty for pings and status.
    if (this.inFlight > 2) return;
    this.inFlight++;
    const child = spawn(this.opts.command ?? 'systemd-notify', assignments, { stdio: 'ignore', env: this.env });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (!this.warned)
        this.opts.warn?.(
          `cannot notify systemd (${this.opts.command ?? 'systemd-notify'}: ${err.code ?? err.message}): the unit's watchdog will restart this program; install systemd or remove Type=notify/WatchdogSec= from the unit`,
        );
      this.warned = true;
    });
    child.once('close', () => this.inFlight--);
    child.unref();
  }
}

/** The `version` of the package.json next to a program's dist/ (`--version`), given its `import.meta.url`. */
export function packageVersion(moduleUrl: string): string {
  return (JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as { version: string }).version;
}
