import { describe, expect, it } from 'vitest';
import { findOutsideRefs as check, headingsOf } from '../scripts/check-doc-refs.mjs';

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

  describe('sections', () => {
    const docs: Record<string, string> = {
      'docs/design.md': [
        '# Design',
        '## Never losing a reading',
        '## What users of other meters complain about (build so these cannot happen here)',
        '```sh',
        '## not a heading: inside a code block',
        '```',
      ].join('\n'),
      'docs/w3bstream.md': ['# W3bstream', '## 1. The request', '## 4. How the node answers', '### 9a. Current: `POST /v1/task`'].join(
        '\n',
      ),
    };
    const headings = (p: string) => (p in docs ? headingsOf(docs[p]!) : null);
    const sections = (file: string, text: string) => check(file, text, exists, undefined, headings);

    it('accepts a section by number (one, several, a range, 9a) or by (part of) its title in quotes', () => {
      const text = [
        '// docs/w3bstream.md section 4, "Decision, classification"',
        ' * (docs/w3bstream.md sections 1 and 4), sections 1-4 too, and `docs/w3bstream.md` section 9a',
        ' * the node (docs/w3bstream.md 9a): task',
        ' * (docs/design.md "Never losing a reading") and docs/design.md "What users of other meters complain about", item 4',
        'see [the spec](docs/w3bstream.md) section 1',
      ].join('\n');
      expect(sections('packages/w3bstream/src/x.ts', text)).toEqual([]);
      expect(headingsOf(docs['docs/design.md']!)).not.toContain('not a heading: inside a code block');
    });

    it('refuses a section the document does not have, and a numbered thing that is no heading', () => {
      const text = [
        '// (docs/w3bstream.md section 12)',
        ' * docs/w3bstream.md sections 1-3',
        ' * (docs/design.md "Never lose a reading")',
        ' * wears SD cards (docs/design.md, complaint 4) for no benefit',
        ' * docs/design.md complaint 4).',
      ].join('\n');
      const found = sections('packages/meter-files/src/files.ts', text);
      expect(found.map((f) => [f.line, f.ref])).toEqual([
        [1, 'docs/w3bstream.md'],
        [2, 'docs/w3bstream.md'],
        [3, 'docs/design.md'],
        [4, 'docs/design.md'],
        [5, 'docs/design.md'],
      ]);
      expect(found[0]!.why).toMatch(/no section 12/);
      expect(found[1]!.why).toMatch(/no section 3/);
      expect(found[2]!.why).toMatch(/no heading "Never lose a reading"/);
      expect(found[3]!.why).toMatch(/"complaint 4" is not a heading/);
    });

    it('reads a section named on the next line of a wrapped comment', () => {
      expect(sections('a.ts', ' * within its rounding (docs/w3bstream.md\n * section 2, Decision).')).toEqual([
        expect.objectContaining({ line: 1, why: expect.stringMatching(/no section 2/) }),
      ]);
      expect(sections('a.ts', ' * the units (docs/w3bstream.md\n * section 4).')).toEqual([]);
    });
  });
});
