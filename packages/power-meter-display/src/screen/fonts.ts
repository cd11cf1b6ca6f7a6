import { join } from 'node:path';

/**
 * Where Debian's fonts-dejavu-core puts the two faces the screen uses. Kept free of canvas so
 * the settings can name the default without loading the native module.
 */
export const DEFAULT_FONT_DIR = '/usr/share/fonts/truetype/dejavu';

export const FONT_FILES = { regular: 'DejaVuSans.ttf', bold: 'DejaVuSans-Bold.ttf' } as const;

export function fontPaths(fontDir: string = DEFAULT_FONT_DIR): { regular: string; bold: string } {
  return { regular: join(fontDir, FONT_FILES.regular), bold: join(fontDir, FONT_FILES.bold) };
}

export class FontMissingError extends Error {
  constructor(readonly file: string) {
    super(
      `font file ${file} is missing: install Debian's fonts-dejavu-core ` +
        `(sudo apt-get install fonts-dejavu-core, or run ./install-requirements.sh), ` +
        `or point --font-dir at a folder containing ${FONT_FILES.regular} and ${FONT_FILES.bold}`,
    );
    this.name = 'FontMissingError';
  }
}
