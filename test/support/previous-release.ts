import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The release before this one, for the upgrade test: the newest version heading of CHANGELOG.md
 * that names a commit ("## 0.1.0 (2026-11-28, commit <40 hex>)"), found in the repository as its
 * tag `v<version>`, or, where a clone has no tags (CI clones main), as that commit. Neither
 * there: an error that says what to fetch, never a skipped test.
 *
 * `repo` is the git repository whose history holds it: this checkout, or the one
 * POWER_METER_SOURCE_REPO names when the suite runs in a copy without `.git`
 * (scripts/test-on-node.sh).
 */
export interface PreviousRelease {
  version: string;
  commit: string;
  /** How it was found: the tag, or the commit CHANGELOG.md records. */
  foundBy: string;
  /** Writes the release's files (git archive) into `dest`. */
  extractTo(dest: string): void;
}

const git = (repo: string, args: string[]) =>
  execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

export function previousRelease(checkout: string, repo = process.env.POWER_METER_SOURCE_REPO || checkout): PreviousRelease {
  const changelog = readFileSync(join(checkout, 'CHANGELOG.md'), 'utf8');
  const m = /^## (\d+\.\d+\.\d+\S*) \([^)]*commit ([0-9a-f]{40})\)/m.exec(changelog);
  if (!m) throw new Error('CHANGELOG.md names no released version with its commit ("## X.Y.Z (date, commit <full hash>)")');
  const [, version, commit] = m as unknown as [string, string, string];
  let foundBy: string;
  let tagged: string | null = null;
  try {
    tagged = git(repo, ['rev-parse', '--verify', '--quiet', `refs/tags/v${version}^{commit}`]);
  } catch {
    tagged = null;
  }
  if (tagged) {
    if (tagged !== commit) throw new Error(`tag v${version} is commit ${tagged}, but CHANGELOG.md says ${commit}: one of them is wrong`);
    foundBy = `tag v${version}`;
  } else {
    try {
      git(repo, ['cat-file', '-e', `${commit}^{commit}`]);
    } catch {
      throw new Error(
        `the previous release ${version} is neither tag v${version} nor commit ${commit} in ${repo}: the upgrade test installs it from there. ` +
          'Fetch it (git fetch --tags, or a clone with its history: not --depth 1), or set POWER_METER_SOURCE_REPO to a clone that has it',
      );
    }
    foundBy = `commit ${commit.slice(0, 12)} from CHANGELOG.md (no tag v${version} in this clone)`;
  }
  return {
    version,
    commit,
    foundBy,
    extractTo: (dest) => {
      execFileSync('bash', ['-c', 'git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', 'archive', repo, commit, dest]);
    },
  };
}
