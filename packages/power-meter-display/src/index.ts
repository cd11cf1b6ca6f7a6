// The display's pipeline, for its benchmark (bench/bench.ts) and anyone embedding it: files ->
// state -> ScreenModel -> frame -> changed regions -> panel. The program itself is cli.ts.
export { DisplayController, type FramePanel } from './controller.js';
export { buildScreenModel } from './screen/model.js';
export { ScreenRenderer } from './screen/render.js';
export { StateWatcher } from './watch/watcher.js';
