#!/usr/bin/env node
/**
 * Fails when a source comment or a README points at a document outside the repository (a team
 * folder, a sibling checkout) or at one that does not exist in it. Every Markdown file named
 * in a tracked text file must resolve, relative to that file or to the repository root, to a file
 * inside the repository; the specifications the code relies on live in docs/.
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

/**
 * The references in one file's text that do not resolve to a file inside the repository.
 * `exists(pathFromRoot)` answers for paths relative to the root (no leading ./); `specNames` are
 * the bare names that mean a specification (docs/*.md, and the team's notes that are not here).
 * Returns one finding per offending mention: { line, ref, why }.
 */
export function findOutsideRefs(file, text, exists, specNames = SPEC_NAMES) {
  const ROOT = '/repository';
  const inside = (p) => p.startsWith(`${ROOT}/`);
  const findings = [];
  text.split('\n').forEach((lineText, i) => {
    const plain = lineText.replace(URL, ' ');
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
      if (exists(relative(ROOT, fromFile)) || (inside(fromRoot) && exists(relative(ROOT, fromRoot)))) continue;
      findings.push({ line: i + 1, ref, why: 'no such file in the repository (specifications belong in docs/)' });
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
  let count = 0;
  for (const f of files) {
    if (!existsSync(join(root, f))) continue;
    for (const { line, ref, why } of findOutsideRefs(f, readFileSync(join(root, f), 'utf8'), exists)) {
      console.error(`${f}:${line}: ${ref}: ${why}`);
      count++;
    }
  }
  if (count > 0) {
    console.error(`check-doc-refs: ${count} reference(s) to documents outside the repository or missing from it`);
    process.exit(1);
  }
  console.log(`check-doc-refs: ${files.length} files, every .md reference resolves inside the repository`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
