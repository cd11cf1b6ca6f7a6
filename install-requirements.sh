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
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { echo "install-requirements: $*"; }
die() { echo "install-requirements: $*" >&2; exit 1; }

INSTALL_NODE=1
# Test-only tools, never by default: a meter should not get an MQTT broker behind its owner's back.
TEST_TOOLS=0
for arg in "$@"; do
  case "$arg" in
    --no-node) INSTALL_NODE=0 ;;
    --test) TEST_TOOLS=1 ;;
    -h | --help)
      echo "usage: ./install-requirements.sh [--no-node] [--test]"
      echo "  --no-node  never install Node.js (stop if there is no Node.js >= 20.19)"
      echo "  --test     also install the test suite's tools (a Mosquitto broker, SoftHSM2, swtpm and tpm2-pkcs11; implied by CI=true)"
      exit 0 ;;
    *) die "unknown option $arg (allowed: --test, --no-node, --help)" ;;
  esac
done
if [ "${CI:-}" = true ]; then TEST_TOOLS=1; fi

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

# ---- Debian packages ------------------------------------------------------------------------
# build-essential python3 pkg-config: native addons (canvas, better-sqlite3, i2c-bus, spi-device, pkcs11js)
# libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev: canvas builds from source
# fonts-dejavu-core: the display's fonts, registered explicitly so the screen looks the same everywhere
# openssl: the tests check signatures with it; shellcheck: the tests lint the shell scripts;
# systemd: the tests verify and score the units with systemd-analyze (absent in some containers)
PACKAGES=(build-essential python3 pkg-config libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev
  librsvg2-dev fonts-dejavu-core openssl shellcheck systemd ca-certificates)
# mosquitto: the MQTT tests start their own broker from it (own port, config and password file)
if [ "$TEST_TOOLS" -eq 1 ]; then PACKAGES+=(mosquitto); fi
# softhsm2: a software PKCS#11 token; swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1: a software
# TPM 2.0 reached through tpm2-pkcs11 (the same module a Pi's TPM HAT uses). The signing tests start
# each on its own state directory.
if [ "$TEST_TOOLS" -eq 1 ]; then PACKAGES+=(softhsm2 swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1); fi
# POWER_METER_SYSROOT lets the tests play a Raspberry Pi (its /proc/device-tree/model and /dev).
SYSROOT="${POWER_METER_SYSROOT:-}"
IS_PI=0
if grep -qi 'raspberry pi' "$SYSROOT/proc/device-tree/model" 2>/dev/null; then
  IS_PI=1
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
# The native addons exist and load in this Node (a Node upgrade changes the ABI: rebuild).
NATIVE=(node_modules/canvas/build/Release/canvas.node node_modules/better-sqlite3/build/Release/better_sqlite3.node
  node_modules/i2c-bus/build/Release/i2c.node node_modules/spi-device/build/Release/spi.node
  node_modules/pkcs11js/build/Release/pkcs11.node)
native_built() {
  local f
  for f in "${NATIVE[@]}"; do [ -f "$f" ] || return 1; done
  node -e 'for (const f of process.argv.slice(1)) require(require("node:path").resolve(f))' "${NATIVE[@]}" 2>/dev/null
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
if [ node_modules/.package-lock.json -nt package-lock.json ] && native_built; then
  say "npm dependencies up to date"
else
  # npm settings for this npm ci only: npm 11 warns about them ("Unknown env config") in every
  # later npm command that inherits them, such as the build below.
  ci_env=(JOBS=max)
  if [ -z "${npm_config_nodedir:-}" ] && NODEDIR="$(node_headers_here)"; then ci_env+=(npm_config_nodedir="$NODEDIR"); fi
  if [ -n "${npm_config_build_from_source:-}" ]; then
    say "npm ci (npm_config_build_from_source=$npm_config_build_from_source: native modules build from source)"
  elif github_reachable; then
    say "npm ci (prebuilt canvas and better-sqlite3 where published for this Node and CPU; i2c-bus, spi-device and pkcs11js compile in seconds)"
  else
    say "npm ci: github.com (where the prebuilt binaries are) cannot be reached, so canvas and better-sqlite3 build from source (about a minute on a PC, 15 or more on a Pi)"
    ci_env+=(npm_config_build_from_source=true)
  fi
  # JOBS=max builds the native addons on every core.
  run_as_user env "${ci_env[@]}" npm ci --no-audit --no-fund
fi
say "building"
run_as_user npm run build --silent
if [ "$REBOOT" -eq 1 ]; then
  say "REBOOT NEEDED for I2C/SPI: sudo reboot"
elif [ "$RELOGIN" -eq 1 ]; then
  say "LOG OUT AND BACK IN (or reboot) so $TARGET_USER's new groups apply"
elif [ "$IS_PI" -eq 1 ]; then
  say "I2C, SPI and the groups of $TARGET_USER are ready: no reboot needed"
fi
say "done. Next: npm run demo (simulation), npm test, or sudo ./install.sh (services)"
