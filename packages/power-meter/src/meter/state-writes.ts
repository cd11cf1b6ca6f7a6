import { performance } from 'node:perf_hooks';

/**
 * When the state files are written: requests coalesce into one write at a time, in order, off the
 * sampling loop, and the live-power refresh writes only when the figure shown changed or the
 * heartbeat is due. Apart from the meter because its ordering rule (a later state is never
 * overwritten by an earlier one) and its SD-card budget read best on their own; what is written
 * is the meter's (`write`).
 */
export class StateWrites {
  /** A state write was asked for since the running one started (see request). */
  private writeRequested = false;
  private writing: Promise<void> | null = null;
  private writeError: string | null = null;
  private lastShownPower: number | null = null;
  private lastWriteMs = 0;

  constructor(
    private readonly opts: {
      /** Builds the state and writes the files; throws when they cannot be written. */
      write: () => void;
      warn: (line: string) => void;
      /** Where the files are written, for the warning. */
      runtimeDir: string;
      /** The meter stopped: no more writes. */
      stopped: () => boolean;
    },
  ) {}

  /**
   * Asks for a write of the state files; returns at once (the sampling loop never waits for the
   * disk). Requests coalesce: one write runs at a time, and every request made meanwhile becomes
   * one more write after it, whose state is built when it starts. So writes never reorder: a
   * later state can never be overwritten by an earlier one.
   */
  request(): void {
    if (this.opts.stopped()) return;
    this.writeRequested = true;
    this.writing ??= this.drainWrites();
  }

  /** Resolves when no write runs (the one asked for last is written). */
  async settled(): Promise<void> {
    await this.writing;
  }

  private async drainWrites(): Promise<void> {
    try {
      while (this.writeRequested && !this.opts.stopped()) {
        // Everything asked for in this turn of the event loop becomes one write.
        await new Promise<void>((r) => setImmediate(r));
        this.writeRequested = false;
        try {
          this.opts.write();
          this.writeError = null;
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          // One line per distinct problem (a full disk would otherwise log twice a second).
          if (msg !== this.writeError) this.opts.warn(`cannot write the state files in ${this.opts.runtimeDir}: ${msg}`);
          this.writeError = msg;
        }
      }
    } finally {
      this.writing = null;
    }
  }

  /** A state with this live power (W, null: none) was written. */
  written(powerW: number | null): void {
    this.lastShownPower = powerW === null ? null : Math.round(powerW * 100);
    this.lastWriteMs = performance.now();
  }

  /**
   * The live-power refresh rewrites state.json only when the figure the screen shows (two
   * decimals) changed, or every 5 s as a heartbeat so the display can tell a live backend from a
   * stale one. A steady load then costs 2 small writes per window instead of 10 (SD-card wear,
   * docs/design.md "What users of other meters complain about", item 4).
   */
  refreshPower(powerW: number | null): void {
    const shown = powerW === null ? null : Math.round(powerW * 100);
    // Measured time: with the wall clock, a step back (NTP after a boot without a real-time
    // clock, `date -s`) would stop the heartbeat until the clock caught up, and the display would
    // call a live backend stale.
    // 4.5 s, not 5: the 5 s timer then always writes the heartbeat when readings stop.
    if (shown === this.lastShownPower && performance.now() - this.lastWriteMs < 4500) return;
    this.request();
  }
}
