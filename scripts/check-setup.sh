#!/usr/bin/env bash
# The set-up on a stock Debian, as a Pi user meets it: a minimal Debian root (debootstrap from
# Debian's own packages; Debian 12 "bookworm" is Pi OS Bookworm's base, 13 "trixie" Pi OS Trixie's),
# this checkout copied into /home/pi/power-meter, `./install-requirements.sh` run by a user `pi`
# with sudo, then the native modules' tests and `npm run demo`. Foreign architectures (arm64,
# armhf) run under qemu user-mode emulation.
#
# nodejs.org cannot be reached from the machines this runs on, so where the script installs the
# official Node build (Debian 12 ships Node 18) a local stand-in serves nodejs.org/dist's layout on
# 127.0.0.1: the same Node release repacked from the npm registry's node-linux-<arch> package (the
# official binary) plus its bundled npm, with a SHASUMS256.txt. A tampered copy of that tarball must
# be refused before the genuine one is installed.
#
#   sudo scripts/check-setup.sh bookworm amd64    # (release: bookworm|trixie, arch: amd64|arm64|armhf)
#   sudo scripts/check-setup.sh trixie arm64 runtime
#
# The third argument picks the set-up: `full` (the default: the development set-up, then the
# native modules' tests and `npm run demo`) or `runtime` (`./install-requirements.sh --runtime`,
# as on a Pi: then the footprint against its budget, a release tarball built from it with
# scripts/build-release.sh, that tarball installed into a staging root with install.sh --root, and
# the programs run from there: readings delivered to `power-meter dev-receiver`, the screen drawn).
# The tarball is kept in $POWER_METER_TEST_CACHE/releases/.
#
# Debian roots are cached in $POWER_METER_TEST_CACHE (default /var/cache/power-meter-test) as
# check-setup-<release>-<arch>.base; each run starts from a fresh copy of it. Needs root, the npm
# registry and Debian's mirror (POWER_METER_DEBIAN_MIRROR).
set -euo pipefail
# Bash reads a script while it runs it: run from a copy, so editing this file meanwhile is harmless.
if [ -z "${CHECK_SETUP_REPO:-}" ]; then
  CHECK_SETUP_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  copy="$(mktemp)"
  cp "${BASH_SOURCE[0]}" "$copy"
  CHECK_SETUP_REPO="$CHECK_SETUP_REPO" exec bash "$copy" "$@"
fi
RELEASE="${1:-bookworm}"
ARCH="${2:-$(dpkg --print-architecture)}"
MODE="${3:-full}"
DEMO_S="${POWER_METER_CHECK_DEMO_S:-30}"
REPO="$CHECK_SETUP_REPO"
CACHE="${POWER_METER_TEST_CACHE:-/var/cache/power-meter-test}"
MIRROR="${POWER_METER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The Node release the stand-in serves as "latest-v26.x", and the npm that release bundles.
STANDIN_NODE=26.12.1
STANDIN_NPM=11.20.0

say() { echo "check-setup[$RELEASE/$ARCH]: $*"; }
die() { echo "check-setup[$RELEASE/$ARCH]: FAILED: $*" >&2; exit 1; }
case "$RELEASE" in bookworm | trixie) ;; *) die "release must be bookworm or trixie, not $RELEASE" ;; esac
case "$ARCH" in amd64 | arm64 | armhf) ;; *) die "arch must be amd64, arm64 or armhf, not $ARCH" ;; esac
case "$MODE" in full | runtime) ;; *) die "the set-up must be full or runtime, not $MODE" ;; esac
SETUP_ARGS=()
[ "$MODE" = full ] || SETUP_ARGS=(--runtime)
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot): sudo $0 $*"
START_S=$SECONDS
phase_s=$SECONDS
lap() { say "$1 took $((SECONDS - phase_s)) s"; phase_s=$SECONDS; }

# ---- host tools -----------------------------------------------------------------------------
need=(debootstrap python3 xz-utils git)
[ "$ARCH" = "$(dpkg --print-architecture)" ] || need+=(qemu-user-static binfmt-support)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
  # qemu's interpreters must be registered with the kernel (a container may not have done it).
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable >/dev/null 2>&1 || true
  q="$( [ "$ARCH" = arm64 ] && echo qemu-aarch64 || echo qemu-arm )"
  grep -qx enabled "/proc/sys/fs/binfmt_misc/$q" 2>/dev/null || die "$q is not registered with binfmt_misc"
fi

# ---- the Debian root ------------------------------------------------------------------------
mkdir -p "$CACHE"
BASE="$CACHE/check-setup-$RELEASE-$ARCH.base"
ROOT="$CACHE/check-setup-$RELEASE-$ARCH.run"
if [ ! -d "$BASE" ]; then
  say "debootstrap $RELEASE $ARCH (once; cached in $BASE)"
  rm -rf "$BASE.tmp"
  debootstrap --arch="$ARCH" --variant=minbase --include=sudo,ca-certificates "$RELEASE" "$BASE.tmp" "$MIRROR" >"$CACHE/check-setup-$RELEASE-$ARCH.debootstrap.log" 2>&1 ||
    die "debootstrap failed: see $CACHE/check-setup-$RELEASE-$ARCH.debootstrap.log"
  mv "$BASE.tmp" "$BASE"
  lap "debootstrap"
fi
MOUNTS=()
SERVER_PID=""
cleanup() {
  local i
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
# Never delete through a mount left by an interrupted run (its /dev is the host's).
while read -r _ mnt _; do
  case "$mnt" in "$ROOT"/*) umount -l "$mnt" ;; esac
done </proc/mounts
grep -q " $ROOT/" /proc/mounts && die "$ROOT still has mounts: unmount them first"
rm -rf --one-file-system "$ROOT"
mkdir "$ROOT"
cp -a "$BASE/." "$ROOT/"
for m in proc sys dev dev/pts; do
  case "$m" in proc) mount -t proc proc "$ROOT/proc" ;; sys) mount -t sysfs sys "$ROOT/sys" ;; *) mount --bind "/$m" "$ROOT/$m" ;; esac
  MOUNTS+=("$ROOT/$m")
done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The chroot shares this machine's host name: let sudo resolve it, as a stock image's /etc/hosts does.
echo "127.0.1.1 $(hostname)" >>"$ROOT/etc/hosts"
# The stock image's user: pi, in the sudo group, sudo without a password (as Pi OS sets it up).
chroot "$ROOT" useradd -m -s /bin/bash -G sudo pi
echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$ROOT/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$ROOT/etc/sudoers.d/010_pi-nopasswd"
# This checkout as it is (tracked and new files, not node_modules or builds).
mkdir "$ROOT/home/pi/power-meter"
git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null -T - -cf -) | tar -xf - -C "$ROOT/home/pi/power-meter"
chroot "$ROOT" chown -R pi:pi /home/pi/power-meter
# A machine behind a TLS-inspecting proxy trusts the proxy's CA locally: so must the root, and
# npm there must read the system's bundle (as this machine's npmrc says) instead of its own.
PI_ENV=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  # What update-ca-certificates would add (running it under emulation takes minutes).
  cat /usr/local/share/ca-certificates/*.crt >>"$ROOT/etc/ssl/certs/ca-certificates.crt"
  PI_ENV=(npm_config_cafile=/etc/ssl/certs/ca-certificates.crt)
fi
# As pi, in a login shell (the PATH of a stock image), in the project.
# as_pi [VAR=value...] command [args...]
as_pi() { chroot "$ROOT" runuser -u pi -- bash -lc 'cd ~/power-meter && exec env "$@"' as_pi "${PI_ENV[@]}" "$@"; }

# The set-up command: pi runs it and it uses sudo, as the README says. Under qemu user-mode
# emulation set-uid programs do not work (sudo cannot become root), so there it takes the
# README's other way, "sudo ./install-requirements.sh": root runs it for pi, npm runs as pi.
# setup_run [VAR=value...]
setup_run() {
  if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
    as_pi "$@" ./install-requirements.sh "${SETUP_ARGS[@]}"
  else
    chroot "$ROOT" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      SUDO_USER=pi "${PI_ENV[@]}" "$@" bash -c 'cd /home/pi/power-meter && exec ./install-requirements.sh "$@"' setup "${SETUP_ARGS[@]}"
  fi
}

# ---- the nodejs.org stand-in ----------------------------------------------------------------
DIST=""
case "$ARCH" in amd64) NODE_ARCH=x64 ;; arm64) NODE_ARCH=arm64 ;; *) NODE_ARCH="" ;; esac
if [ -n "$NODE_ARCH" ]; then
  # nodejs.org/dist's layout: <version>/node-<version>-linux-<arch>.tar.xz with the release's
  # SHASUMS256.txt, the same under latest-v26.x/; tampered/ holds the same files with one byte of
  # the tarball changed.
  DIST="$CACHE/check-setup-dist-$NODE_ARCH"
  V="v$STANDIN_NODE"
  NAME="node-$V-linux-$NODE_ARCH"
  if [ ! -f "$DIST/dist/$V/$NAME.tar.xz" ]; then
    say "building the stand-in $NAME.tar.xz from the npm registry's node-linux-$NODE_ARCH@$STANDIN_NODE and npm@$STANDIN_NPM"
    work="$(mktemp -d)"
    (cd "$work" && npm pack --silent "node-linux-$NODE_ARCH@$STANDIN_NODE" "npm@$STANDIN_NPM" >/dev/null)
    mkdir -p "$work/$NAME/lib/node_modules/npm" "$work/pkg"
    tar -xzf "$work/node-linux-$NODE_ARCH-$STANDIN_NODE.tgz" -C "$work/pkg"
    (cd "$work/pkg/package" && cp -a bin include share CHANGELOG.md LICENSE README.md "$work/$NAME/")
    tar -xzf "$work/npm-$STANDIN_NPM.tgz" -C "$work/$NAME/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/$NAME/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/$NAME/bin/npx"
    mkdir -p "$DIST/dist/$V"
    # Fast compression: the test needs the format, not nodejs.org's file size.
    tar -C "$work" --owner=0 --group=0 -cf - "$NAME" | xz -T0 -1 >"$DIST/dist/$V/$NAME.tar.xz.part"
    mv "$DIST/dist/$V/$NAME.tar.xz.part" "$DIST/dist/$V/$NAME.tar.xz"
    rm -rf "$work"
  fi
  (cd "$DIST/dist/$V" && rm -f ./*.part && sha256sum -- *.tar.xz >SHASUMS256.txt)
  rm -rf "$DIST/dist/latest-v26.x" "$DIST/tampered"
  cp -a "$DIST/dist/$V" "$DIST/dist/latest-v26.x"
  cp -a "$DIST/dist" "$DIST/tampered"
  size="$(stat -c %s "$DIST/tampered/$V/$NAME.tar.xz")"
  printf 'X' | dd of="$DIST/tampered/$V/$NAME.tar.xz" bs=1 seek=$((size / 2)) conv=notrunc status=none
  # A real HTTP server (Python's) on a free loopback port.
  python3 -u -m http.server --bind 127.0.0.1 0 --directory "$DIST" >"$CACHE/check-setup-server-$RELEASE-$ARCH.log" 2>&1 &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 100); do
    PORT="$(grep -oE 'port [0-9]+' "$CACHE/check-setup-server-$RELEASE-$ARCH.log" | head -n 1 | cut -d' ' -f2 || true)"
    [ -n "$PORT" ] && break
    sleep 0.2
  done
  [ -n "$PORT" ] || die "the stand-in server did not start: $(cat "$CACHE/check-setup-server-$RELEASE-$ARCH.log")"
  say "nodejs.org stand-in on http://127.0.0.1:$PORT/dist (Node $STANDIN_NODE, linux-$NODE_ARCH)"
fi
lap "preparing the root"

# ---- 1. a tampered download is refused -----------------------------------------------------
if [ -n "$DIST" ] && [ "$RELEASE" = bookworm ]; then
  set +e
  out="$(setup_run POWER_METER_NODE_DIST_URL="http://127.0.0.1:$PORT/tampered" 2>&1)"
  code=$?
  set -e
  echo "$out" | tail -n 4
  [ "$code" -ne 0 ] || die "install-requirements.sh accepted a tampered Node tarball"
  grep -q "REFUSED node-v$STANDIN_NODE-linux-$NODE_ARCH.tar.xz" <<<"$out" || die "no REFUSED message for the tampered tarball"
  [ ! -e "$ROOT/usr/local/bin/node" ] || die "a Node was unpacked from the tampered tarball"
  say "tampered tarball refused, nothing unpacked"
  lap "refusal run (includes the Debian packages)"
fi

# ---- 2. the set-up -------------------------------------------------------------------------
env_url=()
[ -z "$DIST" ] || env_url=(POWER_METER_NODE_DIST_URL="http://127.0.0.1:$PORT/dist")
setup_run "${env_url[@]}"
lap "./install-requirements.sh"
NODE_VERSION="$(as_pi node -p process.versions.node)"
say "Node.js $NODE_VERSION at $(as_pi sh -c 'command -v node')"
as_pi node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  const engines = require("./package.json").engines.node;
  if (engines !== ">=20.19") throw new Error("engines changed to " + engines + ": update this check");
  if (!(maj > 20 || (maj === 20 && min >= 19))) throw new Error("Node " + process.versions.node + " does not meet " + engines);'
if [ "$RELEASE" = bookworm ] && [ -n "$DIST" ]; then
  [ "$NODE_VERSION" = "$STANDIN_NODE" ] || die "expected the official Node $STANDIN_NODE, found $NODE_VERSION"
fi
# A second run changes nothing and needs no download.
second="$(setup_run 2>&1)"
# (here-strings, not echo | grep -q: grep -q stops reading at the match, and with pipefail the
# echo's broken pipe would fail the check)
grep -q "system packages already installed" <<<"$second" || die "second run installed packages: $second"
grep -q "npm dependencies up to date" <<<"$second" || die "second run ran npm ci again: $second"
lap "second run"

# ---- 3. runtime: footprint, a release tarball, installed into a staging root and run from there
if [ "$MODE" = runtime ]; then
  as_pi node scripts/runtime-tree.mjs footprint --check || die "the runtime set-up is over budget or holds a development tool"
  as_pi scripts/build-release.sh --out /home/pi/release
  lap "scripts/build-release.sh"
  tarball="$(basename "$(find "$ROOT/home/pi/release" -name '*.tar.gz' | head -n 1)")"
  mkdir -p "$CACHE/releases"
  cp "$ROOT/home/pi/release/$tarball" "$CACHE/releases/"
  # The tarball as an offline Pi gets it: unpacked elsewhere, installed with npm replaced by a trap
  # (this root has no systemd either: install.sh makes the units' enablement links itself).
  cat >"$ROOT/tmp/check-release.sh" <<'RUN'
set -euo pipefail
rm -rf /tmp/rel /tmp/image /tmp/npm-trap && mkdir -p /tmp/rel /tmp/npm-trap
tar -xzf "/home/pi/release/$1" -C /tmp/rel
printf '#!/bin/sh\necho "npm was called: $*" >&2\nexit 97\n' >/tmp/npm-trap/npm && chmod +x /tmp/npm-trap/npm
env PATH="/tmp/npm-trap:$PATH" bash /tmp/rel/*/install.sh --root /tmp/image --user pi
RUN
  chroot "$ROOT" bash /tmp/check-release.sh "$tarball" || die "install.sh --root from the release failed"
  [ -z "$(find "$ROOT/tmp/image" -name '*.pem' -o -name identity -o -name '*.sqlite')" ] || die "the image holds device state"
  # Run from the image as pi: the dev receiver on a free port, the meter on the simulated sensor, the png panel.
  cat >"$ROOT/tmp/run-release.sh" <<'RUN'
set -uo pipefail
APP=/tmp/image/opt/power-meter/packages
cd /tmp && rm -rf pm-data pm-run rec.jsonl screen.png receiver.log
# The meter's RAM directory (a service gets /run/power-meter): /dev/shm here is the host's.
mkdir -m 0700 pm-run
export XDG_RUNTIME_DIR=/tmp/pm-run DEV_RECEIVER_TOKEN=check-token W3BSTREAM_PUBLISHER_TOKEN=check-token
node $APP/power-meter/dist/cli.js dev-receiver --port 0 --project check --record /tmp/rec.jsonl >receiver.log 2>&1 & r=$!
url=""
for _ in $(seq 1 600); do url="$(sed -n 's/.*publish_url=\([^ ]*\).*/\1/p' receiver.log | head -n 1)"; [ -n "$url" ] && break; sleep 0.5; done
[ -n "$url" ] || { cat receiver.log; kill $r; exit 1; }
node $APP/power-meter/dist/cli.js --sensor sim --sim-load 4 --window 1 --data-dir /tmp/pm-data --publish-url "$url" & m=$!
node $APP/power-meter-display/dist/cli.js --panel png --png /tmp/screen.png --data-dir /tmp/pm-data & d=$!
sleep "$1"
kill $m $d $r; wait
echo "verified=$(grep -c '"verified":true' /tmp/rec.jsonl)"
RUN
  run_s="$DEMO_S"
  out="$(chroot "$ROOT" runuser -u pi -- bash /tmp/run-release.sh "$run_s" 2>&1 || true)"
  echo "$out" | tail -n 12
  verified="$(sed -n 's/^verified=//p' <<<"$out")"
  [ "${verified:-0}" -ge 1 ] || die "the release's power-meter delivered no verified reading in $run_s s"
  [ -s "$ROOT/tmp/screen.png" ] || die "the release's power-meter-display drew no screen"
  lap "the release, installed into a staging root and run for $run_s s"
  say "PASSED (runtime): $verified verified readings from the release, screen drawn; release $CACHE/releases/$tarball; $((SECONDS - START_S)) s in all"
  exit 0
fi

# ---- 3. smoke tests: the native modules' own tests, then the whole system in simulation ------
as_pi npx vitest run packages/w3bstream/test/outbox.test.ts packages/power-meter-display/test/screen.test.ts
lap "native-module tests (better-sqlite3, canvas)"
as_pi node -e 'require("i2c-bus"); require("spi-device"); console.log("i2c-bus and spi-device load")'
demo="$(as_pi npm run demo -- --duration "$DEMO_S" --no-preview 2>&1 || true)"
echo "$demo" | tail -n 5
verified="$(grep -c ' verified$' <<<"$demo" || true)"
[ "$verified" -ge 1 ] || die "npm run demo delivered no verified reading in $DEMO_S s"
! grep -q 'NOT VERIFIED' <<<"$demo" || die "npm run demo delivered a reading that does not verify"
png="$(echo "$demo" | sed -n 's/^demo: screen image \(.*\) (rewritten.*/\1/p')"
[ -s "$ROOT$png" ] || die "npm run demo drew no screen ($png)"
lap "npm run demo -- --duration $DEMO_S"
say "PASSED: Node.js $NODE_VERSION, $verified verified readings, screen drawn; $((SECONDS - START_S)) s in all"
