#!/usr/bin/env bash
# Everything the build and the programs need, on any Debian-family Linux (Raspberry Pi OS
# Bookworm/Trixie, Debian, Ubuntu), then `npm ci` and the build. Idempotent: installs only what
# is missing. Run it as yourself (it uses sudo for the system part) or as root.
#
# Node.js: the distribution's when it is new enough (Debian 13 "trixie": 20.19), otherwise the
# official build from nodejs.org, checked against the release's SHASUMS256.txt before anything is
# unpacked into /usr/local (Debian 12 "bookworm" ships Node 18). --no-node never installs Node.
#
# On a Raspberry Pi it also enables I2C and SPI and adds the user to the i2c, spi and gpio groups.
# --test (implied by CI=true) also installs what only the test suite needs: a Mosquitto broker, and
# the PKCS#11 tokens the signing tests start on their own directories (SoftHSM2, a software TPM 2.0
# with tpm2-pkcs11).
#
# Two set-ups. Full (the default off a Pi): every dependency, development tools included, and the
# build: what `npm run demo` and `npm test` need. Runtime (--runtime, the default on a Pi): only
# what power-meter and power-meter-display run, as scripts/runtime-tree.mjs derives it from the
# programs' declared dependencies and package-lock.json (`npm ci --omit=dev` for the program
# workspaces); the build uses TypeScript from a temporary directory outside the project, removed
# afterwards; then development files are pruned. No compiler toolchain of npm's, no test runner,
# no local chain stays on a device that holds a signing key.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { echo "install-requirements: $*"; }
die() { echo "install-requirements: $*" >&2; exit 1; }

INSTALL_NODE=1
# Test-only tools, never by default: a meter should not get an MQTT broker behind its owner's back.
TEST_TOOLS=0
MODE="" # runtime or full; chosen below when no option says
for arg in "$@"; do
  case "$arg" in
    --no-node) INSTALL_NODE=0 ;;
    --test) TEST_TOOLS=1 ;;
    --runtime) MODE=runtime ;;
    --full) MODE=full ;;
    -h | --help)
      echo "usage: ./install-requirements.sh [--runtime | --full] [--test] [--no-node]"
      echo "  --runtime  only what the two programs run (the default on a Raspberry Pi): no development tools"
      echo "  --full     everything, development tools included (the default elsewhere): npm run demo, npm test"
      echo "  --test     also install the test suite's tools (a Mosquitto broker, SoftHSM2, swtpm and tpm2-pkcs11; implied by CI=true; needs the full set-up)"
      echo "  --no-node  never install Node.js (stop if there is no Node.js >= 20.19)"
      exit 0 ;;
    *) die "unknown option $arg (allowed: --runtime, --full, --test, --no-node, --help)" ;;
  esac
done
if [ "${CI:-}" = true ]; then TEST_TOOLS=1; fi
if [ "$TEST_TOOLS" -eq 1 ]; then
  [ "$MODE" != runtime ] || die "--test needs the development tools: use it without --runtime (the full set-up)"
  MODE=full
fi

# Root only for what needs it, so an up-to-date machine needs no sudo at all.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "needs root for: $*: run this script as root, or install sudo"
  fi
}
# The user who will build and run the meter (not root when started through sudo).
TARGET_USER="${SUDO_USER:-$(id -un)}"
ORIGINAL_PATH="$PATH"

# POWER_METER_SYSROOT lets the tests play a Raspberry Pi (its /proc/device-tree/model, /dev and
# /proc/meminfo).
SYSROOT="${POWER_METER_SYSROOT:-}"
IS_PI=0
if grep -qi 'raspberry pi' "$SYSROOT/proc/device-tree/model" 2>/dev/null; then IS_PI=1; fi
if [ -z "$MODE" ]; then
  if [ "$IS_PI" -eq 1 ]; then MODE=runtime; else MODE=full; fi
fi

# ---- Debian packages ------------------------------------------------------------------------
# build-essential python3 pkg-config: native addons (i2c-bus, spi-device and pkcs11js always
#   compile; canvas and better-sqlite3 when no prebuilt binary can be downloaded)
# libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev: canvas builds from source
#   (and brings the libraries canvas loads)
# fonts-dejavu-core: the display's fonts, registered explicitly so the screen looks the same everywhere
PACKAGES=(build-essential python3 pkg-config libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev
  librsvg2-dev fonts-dejavu-core ca-certificates)
# Development only: openssl (the tests check signatures with it), shellcheck (the tests lint the
# shell scripts), systemd (the tests verify and score the units with systemd-analyze; absent in
# some containers)
if [ "$MODE" = full ]; then PACKAGES+=(openssl shellcheck systemd); fi
# mosquitto: the MQTT tests start their own broker from it (own port, config and password file)
if [ "$TEST_TOOLS" -eq 1 ]; then PACKAGES+=(mosquitto); fi
# softhsm2: a software PKCS#11 token; swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1: a software
# TPM 2.0 reached through tpm2-pkcs11 (the same module a Pi's TPM HAT uses). The signing tests start
# each on its own state directory.
if [ "$TEST_TOOLS" -eq 1 ]; then PACKAGES+=(softhsm2 swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1); fi
if [ "$IS_PI" -eq 1 ]; then
  PACKAGES+=(i2c-tools gpiod) # i2cdetect for diagnosis; gpioset for kernels without sysfs GPIO
fi

# ---- Node.js ---------------------------------------------------------------------------------
# package.json's engines: >= 20.19. The distribution's Node when it is new enough (Debian 13 and
# Pi OS Trixie: 20.19, with Debian's security support); otherwise an official build from nodejs.org:
# the current LTS line, or on 32-bit ARM the last line nodejs.org builds for ARMv7.
NODE_LTS_MAJOR=26
NODE_ARMV7_MAJOR=22
# Test hooks: a local stand-in for nodejs.org/dist, and where the official build is unpacked.
NODE_DIST_URL="${POWER_METER_NODE_DIST_URL:-https://nodejs.org/dist}"
NODE_PREFIX="${POWER_METER_NODE_PREFIX:-/usr/local}"
node_version_ok() { # X.Y.Z -> success when >= 20.19
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [ "$major" -gt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -ge 19 ]; }
}
too_old() {
  die "Node.js $1 is too old: this project needs Node.js >= 20.19. Run this script without --no-node to install the official build, or install one yourself (https://nodejs.org/en/download, or Debian 13 'trixie' which ships Node 20.19) and run it again"
}
# The version apt would install (epoch and Debian revision removed), or nothing.
distro_node_version() {
  apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}' | sed -E 's/^[0-9]+://; s/[-+~].*//' | grep -E '^[0-9]+\.[0-9]+\.' || true
}
# "<major> <arch>" of the official build for this machine; fails when nodejs.org has none.
official_node() {
  case "$(dpkg --print-architecture)" in
    amd64) echo "$NODE_LTS_MAJOR x64" ;;
    arm64) echo "$NODE_LTS_MAJOR arm64" ;;
    armhf)
      # 32-bit Pi OS on a Pi 4 or 5 runs a 64-bit kernel: uname says aarch64, the programs are armhf.
      case "$(uname -m)" in
        armv7l | armv8l | aarch64) echo "$NODE_ARMV7_MAJOR armv7l" ;;
        *) return 1 ;; # ARMv6 (Pi Zero W, Pi 1): nodejs.org has built nothing for it since Node 12
      esac ;;
    *) return 1 ;;
  esac
}
fetch() {
  curl -fsSL --connect-timeout 20 --retry 3 -o "$2" "$1" ||
    die "could not download $1: check the network, or install Node.js >= 20.19 yourself and use --no-node"
}
# Download, check against the release's SHASUMS256.txt, and only then unpack (as nodejs.org's
# own instructions and the official Docker images do). A mismatch installs nothing.
install_official_node() {
  local major="$1" arch="$2" tmp file version
  tmp="$(mktemp -d)"
  fetch "$NODE_DIST_URL/latest-v$major.x/SHASUMS256.txt" "$tmp/SHASUMS256.txt"
  file="$(grep -oE "node-v$major\.[0-9]+\.[0-9]+-linux-$arch\.tar\.xz" "$tmp/SHASUMS256.txt" | head -n 1 || true)"
  [ -n "$file" ] || die "$NODE_DIST_URL/latest-v$major.x/SHASUMS256.txt names no linux-$arch build"
  version="${file#node-}"
  version="${version%%-linux-*}"
  say "downloading $NODE_DIST_URL/$version/$file"
  fetch "$NODE_DIST_URL/$version/$file" "$tmp/$file"
  if ! (cd "$tmp" && grep -E "^[0-9a-f]{64}  $file\$" SHASUMS256.txt | sha256sum --check --strict --status); then
    rm -rf "$tmp"
    die "REFUSED $file: its SHA-256 is not the one in $NODE_DIST_URL/latest-v$major.x/SHASUMS256.txt (a damaged or tampered download). Nothing was installed. Run this script again, or install Node.js yourself and use --no-node"
  fi
  say "$file matches SHASUMS256.txt; unpacking into $NODE_PREFIX"
  as_root mkdir -p "$NODE_PREFIX"
  as_root tar -xJf "$tmp/$file" -C "$NODE_PREFIX" --strip-components=1 --no-same-owner --anchored \
    --exclude="${file%.tar.xz}/CHANGELOG.md" --exclude="${file%.tar.xz}/LICENSE" --exclude="${file%.tar.xz}/README.md"
  rm -rf "$tmp"
}

NODE_ROUTE=ready # ready, apt (the distribution's package) or official (nodejs.org's build)
HAVE_NODE=""
command -v node >/dev/null 2>&1 && HAVE_NODE="$(node -p process.versions.node)"
if [ -z "$HAVE_NODE" ] || ! node_version_ok "$HAVE_NODE"; then
  DISTRO_NODE=""
  if [ -z "$HAVE_NODE" ]; then
    # apt knows no candidate on a fresh image until its lists are downloaded.
    DISTRO_NODE="$(distro_node_version)"
    if [ -z "$DISTRO_NODE" ]; then as_root apt-get update -qq; DISTRO_NODE="$(distro_node_version)"; fi
    if [ -n "$DISTRO_NODE" ] && node_version_ok "$DISTRO_NODE"; then NODE_ROUTE=apt; PACKAGES+=(nodejs npm); fi
  fi
  if [ "$NODE_ROUTE" != apt ]; then
    if [ -n "$HAVE_NODE" ]; then WHY="Node.js $HAVE_NODE is too old"; else WHY="the distribution's Node.js is ${DISTRO_NODE:-not available}"; fi
    [ "$INSTALL_NODE" -eq 1 ] || too_old "${HAVE_NODE:-${DISTRO_NODE:-(none)}}"
    read -r NODE_MAJOR NODE_ARCH < <(official_node) ||
      die "$WHY, and nodejs.org has no build for this machine ($(dpkg --print-architecture), $(uname -m)). Use Raspberry Pi OS Trixie (Debian 13), whose own Node.js 20.19 runs on every Pi including the ARMv6 Zero W and Pi 1"
    NODE_ROUTE=official
    say "$WHY (this project needs >= 20.19): installing the official Node.js $NODE_MAJOR build for linux-$NODE_ARCH from $NODE_DIST_URL into $NODE_PREFIX, checked against its SHASUMS256.txt first (--no-node: install nothing)"
    PACKAGES+=(curl xz-utils)
  fi
fi

MISSING=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then MISSING+=("$p"); fi
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  say "installing ${MISSING[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
  # Debian enables a broker service with the package; the tests never use it, so it goes off again.
  if [[ " ${MISSING[*]} " == *" mosquitto "* ]] && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
  fi
else
  say "system packages already installed"
fi
if [ "$NODE_ROUTE" = official ]; then
  install_official_node "$NODE_MAJOR" "$NODE_ARCH"
  export PATH="$NODE_PREFIX/bin:$PATH"
  hash -r
  case ":${ORIGINAL_PATH}:" in
    *":$NODE_PREFIX/bin:"*) ;;
    *) say "add $NODE_PREFIX/bin to your PATH (it is there by default on Debian and Raspberry Pi OS)" ;;
  esac
fi
NODE_VERSION="$(node -p process.versions.node)"
node_version_ok "$NODE_VERSION" || too_old "$NODE_VERSION (from the distribution)"
[ "$NODE_ROUTE" != official ] || say "Node.js $NODE_VERSION ready: $(command -v node)"
command -v npm >/dev/null 2>&1 || die "npm is missing next to Node.js $NODE_VERSION: install it (apt-get install npm) and run this script again"

# ---- Raspberry Pi interfaces and groups -----------------------------------------------------
REBOOT=0
RELOGIN=0
if [ "$IS_PI" -eq 1 ]; then
  if command -v raspi-config >/dev/null 2>&1; then
    # get_i2c / get_spi print 0 when the interface is enabled.
    if [ "$(as_root raspi-config nonint get_i2c)" != 0 ]; then as_root raspi-config nonint do_i2c 0; say "enabled I2C"; fi
    if [ "$(as_root raspi-config nonint get_spi)" != 0 ]; then as_root raspi-config nonint do_spi 0; say "enabled SPI"; fi
  else
    say "raspi-config not found: enable I2C and SPI with dtparam=i2c_arm=on and dtparam=spi=on in /boot/firmware/config.txt"
  fi
  # raspi-config loads the overlays at once when it can; the device nodes tell whether it did.
  for dev in i2c-1 spidev0.0; do
    if [ ! -e "$SYSROOT/dev/$dev" ]; then REBOOT=1; say "/dev/$dev does not exist yet"; fi
  done
  if [ "$TARGET_USER" != root ]; then
    for g in i2c spi gpio; do
      if getent group "$g" >/dev/null && ! id -nG "$TARGET_USER" | tr ' ' '\n' | grep -qx "$g"; then
        as_root usermod -aG "$g" "$TARGET_USER"
        RELOGIN=1
        say "added $TARGET_USER to group $g"
      fi
    done
  fi
fi

# ---- npm dependencies and build (as the user, never as root through sudo) -------------------
run_as_user() {
  if [ "$(id -u)" -eq 0 ] && [ "$TARGET_USER" != root ]; then
    runuser -u "$TARGET_USER" -- env "PATH=$PATH" "$@"
  else
    "$@"
  fi
}
tree() { run_as_user node scripts/runtime-tree.mjs "$@"; }
# Native addons: every package node-gyp builds (a binding.gyp at its top), found in node_modules
# rather than named here, so one a program adds is covered too. Each must have its built module;
# the set-up's record (scripts/runtime-tree.mjs mark) holds the Node modules ABI they were built
# for, and a Node upgrade that changes it means npm ci again.
natives_present() {
  local g d
  for g in node_modules/*/binding.gyp node_modules/@*/*/binding.gyp; do
    [ -f "$g" ] || continue
    d="$(dirname "$g")"
    compgen -G "$d/build/Release/*.node" >/dev/null || compgen -G "$d/prebuilds/*/*.node" >/dev/null || return 1
  done
}
# Source builds need Node's C++ headers. An official build and Debian's libnode-dev carry them next
# to node: use those rather than have node-gyp download them again.
node_headers_here() {
  local home h
  home="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  h="$home/include/node/node_version.h"
  [ -f "$h" ] && [ -f "$home/include/node/common.gypi" ] && [ "$(awk '/^#define NODE_(MAJOR|MINOR|PATCH)_VERSION /{printf "%s%s", s, $3; s="."}' "$h")" = "$NODE_VERSION" ] && echo "$home"
}
# canvas and better-sqlite3 download a prebuilt binary for this Node and CPU from their GitHub
# releases (seconds, where compiling takes many minutes on a Pi) and compile when that fails. Where
# github.com cannot be reached at all, compile at once instead of waiting on each download.
github_reachable() {
  node --no-warnings -e 'fetch(process.argv[1], { method: "HEAD", signal: AbortSignal.timeout(10000) }).then(() => process.exit(0), () => process.exit(1))' \
    "${POWER_METER_PREBUILT_PROBE_URL:-https://github.com/}"
}
# Memory the set-up may use, in MB: available RAM plus free swap, or the limit of this process's
# cgroup (v2 memory.max, v1 memory.limit_in_bytes) when that is lower.
memory_mb() {
  local meminfo="$SYSROOT/proc/meminfo" mb path limit line
  [ -r "$meminfo" ] || meminfo=/proc/meminfo
  mb="$(awk '/^(MemAvailable|SwapFree):/ {kb += $2} END {print int(kb / 1024)}' "$meminfo")"
  while IFS=: read -r _ ctrl path; do
    limit=""
    if [ -z "$ctrl" ]; then
      for line in "/sys/fs/cgroup$path/memory.max" "/sys/fs/cgroup/unified$path/memory.max"; do [ -r "$line" ] && limit="$(cat "$line")" && break; done
    elif [[ ",$ctrl," == *",memory,"* ]] && [ -r "/sys/fs/cgroup/memory$path/memory.limit_in_bytes" ]; then
      limit="$(cat "/sys/fs/cgroup/memory$path/memory.limit_in_bytes")"
    fi
    if [[ "$limit" =~ ^[0-9]+$ ]] && [ $((limit / 1048576)) -lt "$mb" ]; then mb=$((limit / 1048576)); fi
  done <"${POWER_METER_CGROUP_FILE:-/proc/self/cgroup}"
  echo "$mb"
}
# Measured (README, "Memory"): compiling SQLite for better-sqlite3 takes about 370 MB in one
# compiler process, canvas about 280 MB, i2c-bus and spi-device about 200 MB, npm itself about 150 MB.
COMPILE_NEEDS_MB=700
swap_advice() {
  say "to add 1 GB of swap for the set-up (removed again with: sudo swapoff /var/power-meter.swap && sudo rm /var/power-meter.swap):"
  say "  sudo fallocate -l 1G /var/power-meter.swap && sudo chmod 600 /var/power-meter.swap && sudo mkswap /var/power-meter.swap && sudo swapon /var/power-meter.swap"
}
BUILD_DIR=""
SCRIPT_SHELL_DIR=""
PREBUILD_RC_WRITTEN=0
cleanup_build() {
  if [ "$PREBUILD_RC_WRITTEN" -eq 1 ]; then rm -f .prebuild-installrc; PREBUILD_RC_WRITTEN=0; fi
  if [ -n "$SCRIPT_SHELL_DIR" ]; then rm -rf "$SCRIPT_SHELL_DIR"; SCRIPT_SHELL_DIR=""; fi
  local l
  for l in "${BUILD_LINKS[@]}"; do rm -f "$l"; done
  for l in "${BUILD_LINK_DIRS[@]}"; do rmdir "$l" 2>/dev/null || true; done
  if [ -n "$BUILD_DIR" ]; then rm -rf "$BUILD_DIR"; fi
  BUILD_LINKS=() BUILD_LINK_DIRS=() BUILD_DIR=""
}
BUILD_LINKS=()
BUILD_LINK_DIRS=()
trap cleanup_build EXIT
# The runtime build: TypeScript (and the type packages tsconfig.base.json names), at the versions
# in package-lock.json, into a temporary directory outside the project; the program workspaces
# and the libraries they reference compiled to JavaScript without type-checking (--noCheck: the
# sources were checked where they were developed, and a Pi needs only the output); then the
# directory goes, and no development tool stays behind.
build_runtime() {
  local ws t d
  BUILD_DIR="$(run_as_user mktemp -d "${TMPDIR:-/tmp}/power-meter-build.XXXXXX")"
  say "building the programs with $(tree build-tools "$BUILD_DIR") from a temporary directory ($BUILD_DIR, removed afterwards)"
  (cd "$BUILD_DIR" && run_as_user npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
    die "could not install TypeScript for the build into $BUILD_DIR (npm ci there failed; see above)"
  # tsc looks for type packages in the node_modules/@types nearest each tsconfig.json first.
  while read -r ws; do
    for t in "$BUILD_DIR"/node_modules/@types/*; do
      [ -e "$t" ] || continue
      d="$ws/node_modules/@types"
      if [ ! -d "$d" ]; then
        [ -d "$ws/node_modules" ] || BUILD_LINK_DIRS+=("$ws/node_modules")
        BUILD_LINK_DIRS=("$d" "${BUILD_LINK_DIRS[@]}")
        run_as_user mkdir -p "$d"
      fi
      if [ ! -e "$d/$(basename "$t")" ]; then
        run_as_user ln -s "$t" "$d/$(basename "$t")"
        BUILD_LINKS+=("$d/$(basename "$t")")
      fi
    done
  done < <(tree workspaces)
  mapfile -t PROGRAMS < <(tree programs)
  run_as_user node "$BUILD_DIR/node_modules/typescript/bin/tsc" -b "${PROGRAMS[@]/%//tsconfig.json}" --noCheck ||
    die "the build failed (tsc -b --noCheck; see above)"
  cleanup_build
}

ABI="$(node -p process.versions.modules)"
NEED="$(tree needs "$MODE" --abi "$ABI")"
if [ "$NEED" != install ] && ! natives_present; then NEED=install; fi
if [ "$NEED" != install ]; then
  say "npm dependencies up to date ($MODE set-up)"
else
  MEM_MB="$(memory_mb)"
  # npm settings for this npm ci only: npm 11 warns about npm_config_* variables it does not know
  # ("Unknown env config"), so the native modules' own settings are used, never npm's.
  ci_env=()
  ci_args=(--no-audit --no-fund)
  if [ -z "${npm_config_nodedir:-}" ] && NODEDIR="$(node_headers_here)"; then
    # node-gyp takes the headers from npm_config_nodedir, which npm 11 warns about in its own
    # environment ("Unknown env config"): so only the install scripts get it, through the shell npm
    # runs them with (npm's script-shell setting).
    SCRIPT_SHELL_DIR="$(run_as_user mktemp -d "${TMPDIR:-/tmp}/power-meter-setup.XXXXXX")"
    printf '#!/bin/sh\n# node-gyp: Node.js headers beside this Node (install-requirements.sh; removed after npm ci)\nnpm_config_nodedir=%q\nexport npm_config_nodedir\nexec /bin/sh "$@"\n' "$NODEDIR" >"$SCRIPT_SHELL_DIR/sh"
    chmod 0755 "$SCRIPT_SHELL_DIR/sh"
    ci_args+=(--script-shell="$SCRIPT_SHELL_DIR/sh")
  fi
  if [ "$MEM_MB" -lt 1024 ]; then
    # One compiler at a time, one module at a time (npm runs install scripts in parallel otherwise).
    ci_env+=(JOBS=1)
    ci_args+=(--foreground-scripts)
    say "$MEM_MB MB of memory (RAM and swap) available: native modules compile one at a time"
  else
    ci_env+=(JOBS=max) # every core
  fi
  COMPILE=1
  if [ -n "${npm_config_build_from_source:-}" ]; then
    say "npm ci (npm_config_build_from_source=$npm_config_build_from_source: native modules build from source)"
  elif github_reachable; then
    COMPILE=0
    say "npm ci (prebuilt canvas and better-sqlite3 where published for this Node and CPU; i2c-bus, spi-device and pkcs11js compile in seconds)"
  else
    say "npm ci: github.com (where the prebuilt binaries are) cannot be reached, so canvas and better-sqlite3 build from source (about a minute on a PC, 15 or more on a Pi)"
    # prebuild-install's own setting, in its own config file (found from the module's directory
    # upwards), for this npm ci only: npm's build-from-source would be an npm setting npm does not
    # know ("npm warn Unknown env config"), and prebuild-install_* variables do not survive the
    # shell npm runs install scripts with.
    if [ ! -e .prebuild-installrc ]; then
      printf '# Written by install-requirements.sh for one npm ci (github.com unreachable); removed afterwards.\nbuildFromSource=true\n' >.prebuild-installrc
      PREBUILD_RC_WRITTEN=1
    else
      say "(.prebuild-installrc exists: your settings for prebuild-install apply as they are)"
    fi
  fi
  if [ "$COMPILE" -eq 1 ] && [ "$MEM_MB" -lt "$COMPILE_NEEDS_MB" ]; then
    say "COMPILING NEEDS MEMORY: compiling SQLite (better-sqlite3) takes about 370 MB and this machine has $MEM_MB MB (RAM and swap) free; if the compiler is killed (out of memory), add swap and run this again"
    swap_advice
  fi
  if [ "$MODE" = runtime ]; then
    mapfile -t PROGRAMS < <(tree programs)
    ci_args+=(--omit=dev "${PROGRAMS[@]/#/--workspace=}")
    say "runtime set-up: only what ${PROGRAMS[*]} need (npm ci --omit=dev for those workspaces)"
  fi
  if ! run_as_user env "${ci_env[@]}" npm ci "${ci_args[@]}"; then
    if [ "$COMPILE" -eq 1 ] || [ "$MEM_MB" -lt 1024 ]; then
      say "npm ci failed; if a compiler was killed (\"Killed\", signal 9, out of memory above), there was not enough memory ($MEM_MB MB):"
      swap_advice
    fi
    die "npm ci failed (see above)"
  fi
  cleanup_build
  natives_present || die "npm ci finished but a native module has no built .node file (see the npm output above)"
fi
if [ "$MODE" = full ]; then
  say "building"
  run_as_user npm run build --silent
  [ "$NEED" != install ] || tree mark full --abi "$ABI"
elif [ -n "$NEED" ]; then
  build_runtime
  tree prune
  tree mark runtime --abi "$ABI" --built
  tree footprint
fi
if [ "$REBOOT" -eq 1 ]; then
  say "REBOOT NEEDED for I2C/SPI: sudo reboot"
elif [ "$RELOGIN" -eq 1 ]; then
  say "LOG OUT AND BACK IN (or reboot) so $TARGET_USER's new groups apply"
elif [ "$IS_PI" -eq 1 ]; then
  say "I2C, SPI and the groups of $TARGET_USER are ready: no reboot needed"
fi
if [ "$MODE" = full ]; then
  say "done. Next: npm run demo (simulation), npm test, or sudo ./install.sh (services)"
else
  say "done (runtime set-up: no development tools). Next: sudo ./install.sh (services), or node_modules/.bin/power-meter --help"
fi
