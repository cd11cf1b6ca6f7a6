import { DisplayController, type FramePanel } from './controller.js';
import { ScreenRenderer } from './screen/render.js';
import type { DisplaySettings } from './settings.js';
import { StateWatcher } from './watch/watcher.js';

export interface RunningDisplay {
  controller: DisplayController;
  stop(): Promise<void>;
}

/** Starts watching and drawing; the panel is opened by the caller (real or emulated). */
export async function startDisplay(settings: DisplaySettings, panel: FramePanel, log: (line: string) => void): Promise<RunningDisplay> {
  const portrait = settings.rotation === 0 || settings.rotation === 180;
  const renderer = new ScreenRenderer(portrait ? 'portrait' : 'landscape', settings.fontDir);
  const controller = new DisplayController({ dataDir: settings.dataDir, renderer, panel, log });
  let lastMode = '';
  const watcher = new StateWatcher({
    dataDir: settings.dataDir,
    log,
    onChange: async () => {
      const r = await controller.refresh();
      if (r.model.mode !== lastMode) {
        log(`screen mode=${r.model.mode}`);
        lastMode = r.model.mode;
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
