import type { Logger } from '@power-meter/service';
import { isLandscape } from '@power-meter/st7735';
import { DisplayController, type FramePanel } from './controller.js';
import { ScreenRenderer } from './screen/render.js';
import type { DisplaySettings } from './settings.js';
import { StateWatcher } from './watch/watcher.js';

export interface RunningDisplay {
  controller: DisplayController;
  stop(): Promise<void>;
}

/**
 * Whether redraws work. A redraw that fails (the png directory is read-only, the SPI write
 * fails) is a fault someone must see: an error line in the journal (once per distinct cause),
 * and the unit's status line starts with "fault:" (`systemctl status`, `power-meter doctor`)
 * until a redraw succeeds again.
 */
export class RedrawHealth {
  private failing: string | null = null;

  constructor(
    private readonly logger: Pick<Logger, 'error' | 'notice'>,
    private readonly status: (text: string) => void,
  ) {}

  get fault(): string | null {
    return this.failing;
  }

  ok(mode: string): void {
    if (this.failing !== null) this.logger.notice(`redraw works again (was: ${this.failing})`);
    if (this.failing !== null || mode !== this.lastMode) this.status(`ok: screen ${mode}`);
    this.failing = null;
    this.lastMode = mode;
  }

  failed(err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    if (reason !== this.failing) {
      this.logger.error(`redraw failed: ${reason}; the screen is not updated until this is fixed`);
      this.status(`fault: redraw failing: ${reason}`);
    }
    this.failing = reason;
  }

  private lastMode = '';
}

/** Starts watching and drawing; the panel is opened by the caller (real or emulated). */
export async function startDisplay(
  settings: DisplaySettings,
  panel: FramePanel,
  logger: Logger,
  status: (text: string) => void = () => {},
): Promise<RunningDisplay> {
  const renderer = new ScreenRenderer(isLandscape(settings.rotation) ? 'landscape' : 'portrait', settings.fontDir);
  const controller = new DisplayController({ dataDir: settings.dataDir, renderer, panel, log: logger });
  const health = new RedrawHealth(logger, status);
  let lastMode = '';
  const watcher = new StateWatcher({
    dataDir: settings.dataDir,
    log: logger,
    onChange: async () => {
      try {
        const r = await controller.refresh();
        health.ok(r.model.mode);
        if (r.model.mode !== lastMode) {
          logger.info(`screen mode=${r.model.mode}`);
          lastMode = r.model.mode;
        }
      } catch (err) {
        health.failed(err);
      }
    },
  });
  watcher.start();
  return {
    controller,
    async stop() {
      await watcher.close();
      await panel.close();
    },
  };
}
