import { describe, expect, it } from 'vitest';
import { findOutsideRefs as check } from '../scripts/check-doc-refs.mjs';

/** A repository with these files. */
const repo =
  (...files: string[]) =>
  (p: string) =>
    files.includes(p);
const exists = repo('docs/design.md', 'docs/hardware.md', 'docs/w3bstream.md', 'README.md', 'packages/st7735/README.md');

describe('check-doc-refs: comments and READMEs point only inside the repository', () => {
  it('accepts references to docs/ from the root or relative to the file, and URLs', () => {
    const text = [
      '/** The init of docs/hardware.md, and docs/design.md "Never losing a reading". */',
      'See [the spec](../../../docs/w3bstream.md) section 4 and the [README](README.md).',
      'Upstream: https://github.com/adafruit/Adafruit-ST7735-Library/blob/master/README.md',
      'cp -a "$SRC/README.md" "$STAGE/app/"',
      "for (const f of ['CHANGELOG.md', 'LICENSE']) expect(() => readFileSync(join(prefix, f))).toThrow();",
    ].join('\n');
    expect(check('packages/st7735/src/protocol.ts', text, exists)).toEqual([]);
    expect(check('packages/st7735/README.md', 'see ../../docs/design.md', exists)).toEqual([]);
    expect(check('docs/design.md', 'see `docs/w3bstream.md` section 8 and hardware.md', exists)).toEqual([]);
    // A bare name that is no specification is a plain file name, not a reference.
    expect(check('scripts/x.sh', 'cp -a bin CHANGELOG.md LICENSE README.md "$work/"', exists)).toEqual([]);
  });

  it('rejects a team folder outside the checkout, bare spec names and absolute paths', () => {
    const text = [
      'following `../../../shared/docs/w3bstream.md` (its decisions are the spec)',
      ' * (design.md, complaint 4) for no benefit',
      '/** style.md: errors carry a cause */',
      'read /work/shared/docs/hardware.md first',
    ].join('\n');
    const found = check('packages/w3bstream/README.md', text, exists);
    expect(found.map((f) => [f.line, f.ref])).toEqual([
      [1, '../../../shared/docs/w3bstream.md'],
      [2, 'design.md'],
      [3, 'style.md'],
      [4, '/work/shared/docs/hardware.md'],
    ]);
    expect(found[0]!.why).toMatch(/outside the repository/);
    expect(found[1]!.why).toMatch(/no such file in the repository/);
  });

  it('a relative path that climbs out of the repository is refused even where the file exists beside it', () => {
    const everything = () => true;
    expect(check('README.md', 'see ../shared/docs/design.md', everything)).toEqual([
      { line: 1, ref: '../shared/docs/design.md', why: 'points outside the repository' },
    ]);
  });
});
