#!/usr/bin/env bash
# Runs the whole test suite on another Node.js line than the machine's (CI: the current LTS, next
# to the machine's 20.x). The Node binary is the official build as the npm registry publishes it
# (node-linux-<arch>, whose include/ has the headers node-gyp needs offline); the suite runs in a
# copy of this checkout so that native modules built for that Node's ABI never replace the ones
# the machine's Node loads.
#
#   scripts/test-on-node.sh 26        # newest 26.x; or an exact version such as 26.12.1
set -euo pipefail
LINE="${1:?usage: scripts/test-on-node.sh <major or version>, e.g. 26}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Not under $HOME: the suite runs the meter as another user too (exit-codes.test.ts: uid 65534),
# who must be able to execute this Node, and root's home is 0700. The directory is this user's
# own (checked), readable by all, writable by this user only.
CACHE="${POWER_METER_NODE_CACHE:-/var/tmp/power-meter-node-$(id -u)}"
say() { echo "test-on-node[$LINE]: $*"; }
die() { echo "test-on-node[$LINE]: $*" >&2; exit 1; }
case "$(uname -m)" in x86_64) ARCH=x64 ;; aarch64) ARCH=arm64 ;; *) die "no node-linux-* package for $(uname -m)" ;; esac
START_S=$SECONDS

# ---- the Node binary (cached per version) -----------------------------------------------------
# The newest version in the line (npm view lists every match, in no particular order).
VERSION="$(npm view "node-linux-$ARCH@$LINE" version --json 2>/dev/null | node -e '
  const v = [].concat(JSON.parse(require("fs").readFileSync(0, "utf8") || "[]"));
  const key = (s) => s.split(".").map(Number);
  v.sort((a, b) => { const [x, y] = [key(a), key(b)]; return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]; });
  console.log(v.pop() ?? "");')"
[ -n "$VERSION" ] || die "the npm registry has no node-linux-$ARCH@$LINE"
NODE_HOME="$CACHE/node-v$VERSION-linux-$ARCH"
if [ -e "$CACHE" ] && { [ ! -O "$CACHE" ] || [ -n "$(find "$CACHE" -maxdepth 0 -perm /022)" ]; }; then
  die "$CACHE belongs to another user or others may write it: remove it, or set POWER_METER_NODE_CACHE to a directory of your own"
fi
if [ ! -x "$NODE_HOME/bin/node" ]; then
  say "fetching node-linux-$ARCH@$VERSION from the npm registry"
  mkdir -p -m 0755 "$CACHE"
  tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-linux-$ARCH@$VERSION" >/dev/null && tar -xzf ./*.tgz)
  # Another run (a second checkout on this machine) may be fetching the same version: rename(2)
  # puts one complete copy in place, and a copy that lost the race is dropped, never one in use.
  if [ -e "$NODE_HOME" ] && [ ! -x "$NODE_HOME/bin/node" ]; then rm -rf "$NODE_HOME"; fi
  mv -T "$tmp/package" "$NODE_HOME" 2>/dev/null || [ -x "$NODE_HOME/bin/node" ] || die "cannot put node-linux-$ARCH@$VERSION into $NODE_HOME"
  rm -rf "$tmp"
fi
[ "$("$NODE_HOME/bin/node" -p process.versions.node)" = "$VERSION" ] || die "$NODE_HOME/bin/node is not Node $VERSION"

# ---- a copy of the checkout, its dependencies built for this Node ------------------------------
COPY="$(mktemp -d "${TMPDIR:-/tmp}/power-meter-node$VERSION.XXXXXX")"
trap 'rm -rf "$COPY"' EXIT
chmod 0755 "$COPY" # readable by the other user the suite runs the meter as, like a checkout
git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null -T - -cf -) | tar -xf - -C "$COPY"
# This Node first on the PATH: npm, the install scripts and the tests all run on it. node-gyp takes
# the headers from the package instead of downloading them.
export PATH="$NODE_HOME/bin:$PATH"
cd "$COPY"
say "npm ci on Node $(node -v) (modules ABI $(node -p process.versions.modules))"
phase_s=$SECONDS
# Compile rather than try GitHub for prebuilt binaries: the same result everywhere, and no wait on
# a network that may not answer: prebuild-install's own setting, in its config file in the copy.
# node-gyp's headers are the package's, given to the install scripts only, through the shell npm
# runs them with. (npm warns about npm_config_build_from_source and npm_config_nodedir in its own
# environment: "Unknown env config".)
SETUP_TMP="$(mktemp -d)"
printf 'buildFromSource=true\n' >.prebuild-installrc
printf '#!/bin/sh\nnpm_config_nodedir=%q\nexport npm_config_nodedir\nexec /bin/sh "$@"\n' "$NODE_HOME" >"$SETUP_TMP/sh"
chmod 0755 "$SETUP_TMP/sh"
JOBS=max npm ci --no-audit --no-fund --loglevel=error --script-shell="$SETUP_TMP/sh"
rm -rf .prebuild-installrc "$SETUP_TMP"
say "npm ci took $((SECONDS - phase_s)) s"
phase_s=$SECONDS
# The whole suite, test/systemd.test.ts too: it copies this Node into its Debian root, which has
# libatomic1 for the official builds from Node 24 on (test/support/systemd-root.sh).
# The copy has no .git: the upgrade test (test/systemd.test.ts) finds the previous release in this repository.
POWER_METER_SOURCE_REPO="$REPO" npm test
say "npm test took $((SECONDS - phase_s)) s; $((SECONDS - START_S)) s in all, on Node $VERSION"
