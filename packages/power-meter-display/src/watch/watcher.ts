import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { FILES } from '@power-meter/meter-files';
import type { Log } from '@power-meter/service';

/**
 * Watches the data directory and calls `onChange` once per burst of writes to `state.json`.
 *
 * chokidar watches the directory (not the file), because the backend replaces the file by
 * rename on every update. A directory that does not exist yet, or is deleted and recreated,
 * is handled from a periodic tick, which compares the directory's inode with the watched one and
 * re-arms the watcher: chokidar 4 does not report files created inside a directory that was
 * missing when the watch started, and reports the removal of the watched directory late. The
 * tick also lets the screen turn "stale" when the backend stops writing.
 */
export interface StateWatcherOptions {
  dataDir: string;
  /** Called for every coalesced change and every tick; never concurrently. */
  onChange: (reason: 'change' | 'tick') => Promise<void> | void;
  /** Writes closer together than this become one redraw. */
  coalesceMs?: number;
  tickMs?: number;
  /** Where the watcher says what happened to the directory (info). */
  log?: Log;
}

export class StateWatcher {
  private watcher: FSWatcher | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private coalesceTimer: NodeJS.Timeout | null = null;
  private running = false;
  private pending: 'change' | 'tick' | null = null;
  private busy: Promise<void> | null = null;
  private closed = false;
  /** The current chokidar instance has finished its initial scan. */
  private ready = false;
  private readyWaiters: Array<() => void> = [];
  private ignoredEvents = 0;
  /**
   * The directory the current watch was set up on, held open: while it is open its inode cannot
   * be reused, so a directory re-created under the same name always has another inode number,
   * and a removed one shows nlink 0.
   */
  private armedFd: number | null = null;
  private readonly dataDir: string;

  constructor(private readonly opts: StateWatcherOptions) {
    this.dataDir = resolve(opts.dataDir);
  }

  start(): void {
    this.arm();
    this.tickTimer = setInterval(() => {
      this.checkDirectory();
      this.arm();
      this.request('tick');
    }, this.opts.tickMs ?? 1000);
    this.request('change');
  }

  /** Resolves once the directory is watched (at once if it is; after the next arm if not). */
  whenReady(): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * For tests and diagnostics: whether the directory is watched, whether a redraw is pending or
   * running (idle = neither), and how many events for other files were seen and ignored.
   */
  stats(): { armed: boolean; idle: boolean; ignoredEvents: number } {
    return {
      armed: this.watcher !== null,
      idle: !this.running && this.pending === null && this.coalesceTimer === null,
      ignoredEvents: this.ignoredEvents,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const resolve of this.readyWaiters.splice(0)) resolve();
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    await this.disarm();
    await this.busy;
  }

  /**
   * chokidar reports the removal of the watched directory itself only when its (throttled)
   * re-read of the directory gets round to it; on a loaded machine that was seen to take more
   * than 15 s. The tick checks directly: a directory that is gone, or was replaced by a new one
   * (another inode), is unwatched here and watched again by arm() once it exists.
   */
  private checkDirectory(): void {
    if (this.watcher === null || this.armedFd === null) return;
    const ino = directoryInode(this.dataDir);
    const watched = fstatSync(this.armedFd);
    if (ino !== null && ino === watched.ino && watched.nlink > 0) return;
    this.opts.log?.info(
      `data directory ${this.dataDir} ${ino === null ? 'removed; waiting for it to come back' : 'replaced; watching the new one'}`,
    );
    void this.disarm();
    this.request('change');
  }

  private arm(): void {
    if (this.closed || this.watcher !== null) return;
    if (directoryInode(this.dataDir) === null) return;
    let fd: number;
    try {
      fd = openSync(this.dataDir, 'r');
    } catch {
      return; // gone again, or not readable: the next tick tries again
    }
    const w = chokidar.watch(this.dataDir, { depth: 0, ignoreInitial: true });
    this.watcher = w;
    this.armedFd = fd;
    w.on('all', (event, path) => {
      if (resolve(path) === this.dataDir && event === 'unlinkDir') {
        this.opts.log?.info(`data directory ${this.dataDir} removed; waiting for it to come back`);
        void this.disarm();
        this.request('change');
        return;
      }
      if (basename(path) === FILES.state) this.request('change');
      else this.ignoredEvents++;
    });
    // chokidar emits 'change' for a path at most once per 50 ms and drops the rest, so a second
    // write of state.json soon after the first went unseen until the next tick (the ~1 s tail
    // the display benchmark showed). The raw fs.watch events are not throttled: a rename onto
    // state.json shows up here every time, and request() coalesces the duplicates.
    w.on('raw', (_event, path) => {
      if (typeof path === 'string' && basename(path) === FILES.state) this.request('change');
    });
    w.on('error', (err) => {
      this.opts.log?.info(`watch error on ${this.dataDir}: ${String(err)}; re-arming`);
      void this.disarm();
    });
    // A file written between the directory appearing and the watch becoming ready is picked up here.
    w.on('ready', () => {
      if (this.watcher !== w) return;
      this.ready = true;
      for (const resolve of this.readyWaiters.splice(0)) resolve();
      this.request('change');
    });
  }

  private async disarm(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    if (this.armedFd !== null) closeSync(this.armedFd);
    this.armedFd = null;
    this.ready = false;
    // Closing inside a chokidar callback can leave a handle open: close after a tick.
    if (w) await new Promise<void>((r) => setImmediate(r)).then(() => w.close());
  }

  /** Coalesce: one call per burst; a change during a redraw causes exactly one more. */
  private request(reason: 'change' | 'tick'): void {
    if (this.closed) return;
    if (this.pending === null || reason === 'change') this.pending = reason;
    if (this.coalesceTimer || this.running) return;
    this.coalesceTimer = setTimeout(
      () => {
        this.coalesceTimer = null;
        void this.run();
      },
      reason === 'change' ? (this.opts.coalesceMs ?? 10) : 0,
    );
  }

  private async run(): Promise<void> {
    if (this.running || this.pending === null || this.closed) return;
    this.running = true;
    const reason = this.pending;
    this.pending = null;
    const done = (async () => {
      try {
        await this.opts.onChange(reason);
      } catch (err) {
        this.opts.log?.info(`redraw failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    })();
    this.busy = done;
    await done;
    this.running = false;
    if (this.pending !== null) this.request(this.pending);
  }
}

/** The directory's inode, or null when it is missing or cannot be looked at (the tick must never throw). */
function directoryInode(dir: string): number | null {
  try {
    const st = statSync(dir, { throwIfNoEntry: false });
    return st?.isDirectory() ? st.ino : null;
  } catch {
    return null;
  }
}
