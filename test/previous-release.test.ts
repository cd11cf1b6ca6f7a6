import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { previousRelease } from './support/previous-release.js';
import { ROOT } from './support/processes.js';

/**
 * How the upgrade test (test/systemd.test.ts) finds the release to upgrade from: the tag, or where
 * a clone has no tags (CI clones main) the commit CHANGELOG.md records, or a clear error. Real git
 * repositories in temporary directories, each named as the repository to search (scripts/test-on-node.sh
 * sets POWER_METER_SOURCE_REPO to the checkout, which the default would search instead).
 */
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
const git = (dir: string, ...args: string[]) =>
  execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { encoding: 'utf8' }).trim();

function repo(): { dir: string; first: string; second: string } {
  const dir = mkdtempSync(join(tmpdir(), 'prev-release-'));
  temps.push(dir);
  git(dir, 'init', '-q');
  writeFileSync(join(dir, 'install.sh'), 'echo the previous release\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', 'the release');
  const first = git(dir, 'rev-parse', 'HEAD');
  writeFileSync(join(dir, 'install.sh'), 'echo later\n');
  git(dir, 'commit', '-qam', 'later');
  return { dir, first, second: git(dir, 'rev-parse', 'HEAD') };
}
const changelog = (dir: string, commit: string) =>
  writeFileSync(
    join(dir, 'CHANGELOG.md'),
    `# Changelog\n\n## Unreleased\n\n- things\n\n## 0.1.0 (2026-11-28, commit ${commit})\n\nFirst.\n`,
  );

describe('the previous release for the upgrade test', () => {
  it("is the tag when the clone has it, and its files are that commit's", () => {
    const r = repo();
    changelog(r.dir, r.first);
    git(r.dir, 'tag', 'v0.1.0', r.first);
    const p = previousRelease(r.dir, r.dir);
    expect(p).toMatchObject({ version: '0.1.0', commit: r.first, foundBy: 'tag v0.1.0' });
    const out = mkdtempSync(join(tmpdir(), 'prev-release-out-'));
    temps.push(out);
    p.extractTo(out);
    expect(readFileSync(join(out, 'install.sh'), 'utf8')).toBe('echo the previous release\n');
    expect(existsSync(join(out, 'CHANGELOG.md'))).toBe(false); // the release's files, not today's
  });

  it('falls back to the commit CHANGELOG.md records where the clone has no tags', () => {
    const r = repo();
    changelog(r.dir, r.first);
    expect(previousRelease(r.dir, r.dir).foundBy).toBe(`commit ${r.first.slice(0, 12)} from CHANGELOG.md (no tag v0.1.0 in this clone)`);
  });

  it('fails with what to fetch when neither is there, and when the tag and the changelog disagree', () => {
    const r = repo();
    changelog(r.dir, 'f'.repeat(40));
    expect(() => previousRelease(r.dir, r.dir)).toThrow(
      /the previous release 0\.1\.0 is neither tag v0\.1\.0 nor commit f{40} .*git fetch --tags/,
    );
    changelog(r.dir, r.first);
    git(r.dir, 'tag', 'v0.1.0', r.second);
    expect(() => previousRelease(r.dir, r.dir)).toThrow(`tag v0.1.0 is commit ${r.second}, but CHANGELOG.md says ${r.first}`);
  });

  it("this repository's CHANGELOG.md names a release the upgrade test can find", () => {
    const p = previousRelease(ROOT);
    expect(p.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(p.commit).toMatch(/^[0-9a-f]{40}$/);
  });
});
