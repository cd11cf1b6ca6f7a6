#!/usr/bin/env node
/**
 * Fails when a source comment or a README points at a document outside the repository (a team
 * folder, a sibling checkout), at one that does not exist in it, or at a section that document
 * does not have. Every Markdown file named in a tracked text file must resolve, relative to that
 * file or to the repository root, to a file inside the repository; the specifications the code
 * relies on live in docs/. A section named right after the reference must be one of its headings:
 * by number (`docs/w3bstream.md section 4`, `sections 1-4 and 9`, `w3bstream.md 9a`) or by title
 * in double quotes (`docs/design.md "Never losing a reading"`, a part of the heading's text). Any
 * other word and number there (`docs/design.md complaint 4`) is refused: a reader cannot look it
 * up.
 *
 *   node scripts/check-doc-refs.mjs        (part of `npm run lint`)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Files whose text is read: sources, scripts, docs, units. */
const TEXT_FILE = /\.(ts|mts|cts|js|mjs|cjs|md|sh|service|json|jsonc|ya?ml)$|(^|\/)[^./]+$/;
/** Names of specifications: what docs/ holds, and notes that live outside the repository. */
export const SPEC_NAMES = new Set(['design.md', 'hardware.md', 'w3bstream.md', 'style.md', 'toolchain.md']);
/** This check and its test, which name the specifications and hold the bad references to find. */
const EXEMPT = new Set(['test/doc-refs.test.ts', 'scripts/check-doc-refs.mjs']);
/** A mention of a Markdown file, with whatever path is written before it. */
const MD_REF = /[\w@~./-]*\.md\b/g;
/** URLs point elsewhere on purpose; they are not checked here. */
const URL = /\b[a-z][a-z0-9+.-]*:\/\/\S+/gi;

/** What may stand between a reference and the section it names: a closing backtick, quote or parenthesis, a comma. */
const GAP = /^[`'")\]]*,?\s*/;
/** `section 4`, `sections 1-4 and 9`, `sections 2, 3 or 9a`. */
const SECTIONS = /^sections?\s+(\d+[a-z]?(?:\s*(?:-|,|and|or)\s*\d+[a-z]?)*)/;
/** `w3bstream.md 9a)`: a section number alone. */
const BARE_NUMBER = /^(\d+[a-z]?)(?=[).,:;]|\s|$)/;
/** `"Never losing a reading"`: (part of) a heading's title. */
const QUOTED = /^"([^"]+)"/;
/** `complaint 4`, `item 2`: a numbered thing that is not a heading. */
const OTHER_NUMBERED = /^([a-z]+)\s+(\d+[a-z]?)\b/;

/** The headings of a Markdown text, without the #s (fenced code blocks skipped). */
export function headingsOf(markdown) {
  const out = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/** What is wrong with the section named in `after` (the text right after a reference), or null. */
function sectionProblem(after, headings) {
  const rest = after.replace(GAP, '');
  const numbered = SECTIONS.exec(rest) ?? BARE_NUMBER.exec(rest);
  if (numbered) {
    const missing = numbered[1].split(/\s*(?:-|,|and|or)\s*/).filter((n) => !headings.some((h) => h.startsWith(`${n}. `)));
    return missing.length === 0 ? null : `no section ${missing.join(', ')} in it (its numbered headings are the sections)`;
  }
  const quoted = QUOTED.exec(rest);
  if (quoted) return headings.some((h) => h.includes(quoted[1])) ? null : `no heading "${quoted[1]}" in it`;
  const other = OTHER_NUMBERED.exec(rest);
  if (other && other[1] !== 'section' && other[1] !== 'sections')
    return `"${other[1]} ${other[2]}" is not a heading of it: name the section by its number or its title in quotes`;
  return null;
}

/**
 * The references in one file's text that do not resolve to a file inside the repository, or that
 * name a section the file does not have. `exists(pathFromRoot)` answers for paths relative to the
 * root (no leading ./); `specNames` are the bare names that mean a specification (docs/*.md, and
 * the team's notes that are not here); `headings(pathFromRoot)` gives a Markdown file's headings
 * (headingsOf), or null to skip the section check. A section named on the next line counts too (a
 * wrapped comment). Returns one finding per offending mention: { line, ref, why }.
 */
export function findOutsideRefs(file, text, exists, specNames = SPEC_NAMES, headings = () => null) {
  const ROOT = '/repository';
  const inside = (p) => p.startsWith(`${ROOT}/`);
  const findings = [];
  const lines = text.split('\n');
  lines.forEach((lineText, i) => {
    const plain = lineText.replace(URL, ' ');
    // The next line without its comment leader (` * `, `// `, `# `), for a section named there.
    const next = (lines[i + 1] ?? '').replace(URL, ' ').replace(/^\s*(?:\*|\/\/|#|-)?\s*/, '');
    for (const m of plain.matchAll(MD_REF)) {
      const ref = m[0];
      // A path built at run time ($DIR/README.md, ${PREFIX}/x.md) is not a reference to check.
      if (ref === '.md' || /[$})]$/.test(plain.slice(0, m.index))) continue;
      // A bare name is a reference only when it names a specification (CHANGELOG.md inside a
      // Node tarball is just a file name); a path (a/b.md) is always checked.
      if (!ref.includes('/') && !specNames.has(ref)) continue;
      if (isAbsolute(ref) || ref.startsWith('~')) {
        findings.push({ line: i + 1, ref, why: 'an absolute path, outside the repository' });
        continue;
      }
      const fromFile = resolve(ROOT, dirname(file), ref);
      if (!inside(fromFile)) {
        findings.push({ line: i + 1, ref, why: 'points outside the repository' });
        continue;
      }
      const fromRoot = resolve(ROOT, ref);
      const target = exists(relative(ROOT, fromFile))
        ? relative(ROOT, fromFile)
        : inside(fromRoot) && exists(relative(ROOT, fromRoot))
          ? relative(ROOT, fromRoot)
          : null;
      if (target === null) {
        findings.push({ line: i + 1, ref, why: 'no such file in the repository (specifications belong in docs/)' });
        continue;
      }
      const titles = headings(target);
      if (titles === null) continue;
      let after = plain.slice(m.index + ref.length);
      if (after.replace(GAP, '') === '') after = `${after} ${next}`;
      const problem = sectionProblem(after, titles);
      if (problem !== null) findings.push({ line: i + 1, ref, why: `${problem} (${target})` });
    }
  });
  return findings;
}

function main() {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && TEXT_FILE.test(f) && !f.endsWith('package-lock.json') && !EXEMPT.has(f));
  const exists = (p) => existsSync(join(root, p));
  const cache = new Map();
  const headings = (p) => {
    if (!p.endsWith('.md')) return null;
    if (!cache.has(p)) cache.set(p, headingsOf(readFileSync(join(root, p), 'utf8')));
    return cache.get(p);
  };
  let count = 0;
  for (const f of files) {
    if (!existsSync(join(root, f))) continue;
    for (const { line, ref, why } of findOutsideRefs(f, readFileSync(join(root, f), 'utf8'), exists, SPEC_NAMES, headings)) {
      console.error(`${f}:${line}: ${ref}: ${why}`);
      count++;
    }
  }
  if (count > 0) {
    console.error(`check-doc-refs: ${count} reference(s) to documents or sections outside the repository or missing from it`);
    process.exit(1);
  }
  console.log(`check-doc-refs: ${files.length} files, every .md reference and the section it names resolve inside the repository`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
