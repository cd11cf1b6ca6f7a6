#!/usr/bin/env bash
# A release tarball, for a machine without npm or internet (a Pi offline): the built JavaScript and
# the runtime dependencies only (scripts/runtime-tree.mjs: no development tool, no source, no key,
# no data), with install.sh, the units, README, CHANGELOG and release.json, which names the CPU
# and the Node.js modules ABI the native modules (canvas, better-sqlite3, i2c-bus, spi-device, and
# any a program adds) were built for. install.sh refuses it on another CPU or Node.js line.
#
# It packs this checkout for the machine it runs on: its CPU, its Node.js. A release for a Pi is
# built on ARM: on a Pi (or any arm64/armhf Debian) with internet, or on a PC under emulation with
# `sudo scripts/check-arm.sh`, which builds one in an emulated Debian root and installs it there.
#
#   ./install-requirements.sh --runtime && scripts/build-release.sh [--out DIR]   (default DIR: ./release)
#
# On the target: tar -xzf power-meter-<version>-linux-<arch>.tar.gz && sudo ./power-meter-<version>/install.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "build-release: $*"; }
die() { echo "build-release: $*" >&2; exit 1; }
OUT=release
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
    -h | --help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown option $1 (allowed: --out DIR)" ;;
  esac
done
command -v node >/dev/null 2>&1 || die "node is not on the PATH: run ./install-requirements.sh first"
[ -d node_modules ] || die "no node_modules: run ./install-requirements.sh (or --runtime) first"
TREE=(node scripts/runtime-tree.mjs)
MARKER=node_modules/.power-meter-setup.json
if [ -f "$MARKER" ] && grep -q '"mode": "runtime"' "$MARKER"; then
  [ -z "$("${TREE[@]}" needs runtime)" ] || die "the sources or Node.js changed since the last runtime build: run ./install-requirements.sh --runtime again"
else
  say "building (npm run build)"
  npm run build --silent
fi

VERSION="$(node -p 'require("./package.json").version')"
COMMIT=""
if command -v git >/dev/null 2>&1 && git rev-parse HEAD >/dev/null 2>&1; then
  COMMIT="$(git rev-parse HEAD)"
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then COMMIT="$COMMIT+changes"; fi
fi
DEB_ARCH="$(dpkg --print-architecture 2>/dev/null || node -p process.arch)"
NAME="power-meter-$VERSION-linux-$DEB_ARCH"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/power-meter-release.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
"${TREE[@]}" copy "$STAGE/$NAME" || die "could not assemble the release (see above)"
cp -a install.sh systemd "$STAGE/$NAME/"
mkdir "$STAGE/$NAME/scripts"
cp -a scripts/runtime-tree.mjs "$STAGE/$NAME/scripts/"
node -e '
  const [file, version, commit, debArch] = process.argv.slice(1);
  const release = {
    name: "power-meter", version, commit, built: new Date().toISOString().slice(0, 10),
    debArch, nodeArch: process.arch, node: process.versions.node, modulesAbi: process.versions.modules, napi: process.versions.napi,
    glibc: process.report.getReport().header.glibcVersionRuntime ?? null,
  };
  require("node:fs").writeFileSync(file, JSON.stringify(release, null, 2) + "\n");' "$STAGE/$NAME/release.json" "$VERSION" "$COMMIT" "$DEB_ARCH"
"${TREE[@]}" footprint "$STAGE/$NAME" --check || die "the release's dependencies are over budget or hold a development tool (see above)"
mkdir -p "$OUT"
tar -C "$STAGE" --owner=0 --group=0 -czf "$OUT/$NAME.tar.gz.part" "$NAME"
mv "$OUT/$NAME.tar.gz.part" "$OUT/$NAME.tar.gz"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
say "$OUT/$NAME.tar.gz ($(du -h "$OUT/$NAME.tar.gz" | cut -f1)): Node.js $(node -p process.versions.node) (modules ABI $(node -p process.versions.modules)), $(node -p process.arch); sha256 in $NAME.tar.gz.sha256"
say "on the target: tar -xzf $NAME.tar.gz && sudo ./$NAME/install.sh"
