#!/usr/bin/env bash
# Everything the build and the programs need, on any Debian-family Linux (Raspberry Pi OS
# Bookworm/Trixie, Debian, Ubuntu), then `npm ci` and the build. Idempotent: installs only what
# is missing. Run it as yourself (it uses sudo for the system part) or as root.
#
# On a Raspberry Pi it also enables I2C and SPI and adds the user to the i2c, spi and gpio groups.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { echo "install-requirements: $*"; }
die() { echo "install-requirements: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "needs root for the system packages: run it as root or install sudo"
fi
# The user who will build and run the meter (not root when started through sudo).
TARGET_USER="${SUDO_USER:-$(id -un)}"

# ---- Debian packages ------------------------------------------------------------------------
# build-essential python3 pkg-config: native addons (canvas, better-sqlite3, i2c-bus, spi-device)
# libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev: canvas builds from source
# fonts-dejavu-core: the display's fonts, registered explicitly so the screen looks the same everywhere
# openssl: the tests check signatures with it; shellcheck: the tests lint the shell scripts
PACKAGES=(build-essential python3 pkg-config libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev
  librsvg2-dev fonts-dejavu-core openssl shellcheck ca-certificates)
IS_PI=0
if grep -qi 'raspberry pi' /proc/device-tree/model 2>/dev/null; then
  IS_PI=1
  PACKAGES+=(i2c-tools gpiod) # i2cdetect for diagnosis; gpioset for kernels without sysfs GPIO
fi

NODE_OK=0
if command -v node >/dev/null 2>&1; then
  NODE_VERSION="$(node -p 'process.versions.node')"
  if node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    NODE_OK=1
  else
    say "Node.js $NODE_VERSION is too old: this project needs Node.js >= 20.19"
  fi
fi
if [ "$NODE_OK" -eq 0 ]; then PACKAGES+=(nodejs npm); fi

MISSING=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then MISSING+=("$p"); fi
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  say "installing ${MISSING[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
else
  say "system packages already installed"
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  die "Node.js $(node -p 'process.versions.node') from the distribution is older than 20.19: install a newer one (e.g. from https://nodejs.org or NodeSource) and run this script again"
fi

# ---- Raspberry Pi interfaces and groups -----------------------------------------------------
if [ "$IS_PI" -eq 1 ]; then
  if command -v raspi-config >/dev/null 2>&1; then
    if [ "$("${SUDO[@]}" raspi-config nonint get_i2c)" != 0 ]; then "${SUDO[@]}" raspi-config nonint do_i2c 0; say "enabled I2C (reboot if /dev/i2c-1 is missing)"; fi
    if [ "$("${SUDO[@]}" raspi-config nonint get_spi)" != 0 ]; then "${SUDO[@]}" raspi-config nonint do_spi 0; say "enabled SPI (reboot if /dev/spidev0.0 is missing)"; fi
  else
    say "raspi-config not found: enable I2C and SPI with dtparam=i2c_arm=on and dtparam=spi=on in /boot/firmware/config.txt"
  fi
  if [ "$TARGET_USER" != root ]; then
    for g in i2c spi gpio; do
      if getent group "$g" >/dev/null && ! id -nG "$TARGET_USER" | tr ' ' '\n' | grep -qx "$g"; then
        "${SUDO[@]}" usermod -aG "$g" "$TARGET_USER"
        say "added $TARGET_USER to group $g (log in again for it to apply)"
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
# JOBS=max builds the native addons on every core.
native_built() {
  [ -f node_modules/canvas/build/Release/canvas.node ] && [ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]
}
# npm's own marker: node_modules/.package-lock.json is newer than package-lock.json after an install.
if [ node_modules/.package-lock.json -nt package-lock.json ] && native_built; then
  say "npm dependencies up to date"
else
  say "npm ci (builds canvas, better-sqlite3, i2c-bus and spi-device from source: about a minute)"
  run_as_user env JOBS=max npm ci --no-audit --no-fund
fi
say "building"
run_as_user npm run build --silent
say "done. Next: npm run demo (simulation), npm test, or sudo ./install.sh (services)"
