#!/usr/bin/env bash
# Everything the build and the programs need, on any Debian-family Linux (Raspberry Pi OS
# Bookworm/Trixie, Debian, Ubuntu), then `npm ci` and the build. Idempotent: installs only what
# is missing. Run it as yourself (it uses sudo for the system part) or as root.
#
# On a Raspberry Pi it also enables I2C and SPI and adds the user to the i2c, spi and gpio groups.
# --test (implied by CI=true) also installs what only the test suite needs: a Mosquitto broker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { echo "install-requirements: $*"; }
die() { echo "install-requirements: $*" >&2; exit 1; }

# Root only for what needs it, so an up-to-date machine needs no sudo at all.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "needs root for: $*: run this script as root, or install sudo"
  fi
}
# The user who will build and run the meter (not root when started through sudo).
TARGET_USER="${SUDO_USER:-$(id -un)}"

# ---- Debian packages ------------------------------------------------------------------------
# build-essential python3 pkg-config: native addons (canvas, better-sqlite3, i2c-bus, spi-device)
# libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev: canvas builds from source
# fonts-dejavu-core: the display's fonts, registered explicitly so the screen looks the same everywhere
# openssl: the tests check signatures with it; shellcheck: the tests lint the shell scripts;
# systemd: the tests verify and score the units with systemd-analyze (absent in some containers)
PACKAGES=(build-essential python3 pkg-config libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev
  librsvg2-dev fonts-dejavu-core openssl shellcheck systemd ca-certificates)
# Test-only tools, never by default: a meter should not get an MQTT broker behind its owner's back.
TEST_TOOLS=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST_TOOLS=1 ;;
    *) die "unknown option $arg (allowed: --test, for the test suite's tools)" ;;
  esac
done
if [ "${CI:-}" = true ]; then TEST_TOOLS=1; fi
# mosquitto: the MQTT tests start their own broker from it (own port, config and password file)
if [ "$TEST_TOOLS" -eq 1 ]; then PACKAGES+=(mosquitto); fi
# POWER_METER_SYSROOT lets the tests play a Raspberry Pi (its /proc/device-tree/model and /dev).
SYSROOT="${POWER_METER_SYSROOT:-}"
IS_PI=0
if grep -qi 'raspberry pi' "$SYSROOT/proc/device-tree/model" 2>/dev/null; then
  IS_PI=1
  PACKAGES+=(i2c-tools gpiod) # i2cdetect for diagnosis; gpioset for kernels without sysfs GPIO
fi

# Node.js: the distribution's if there is none; an older one is not replaced behind the user's back.
node_version_ok() { # X.Y.Z -> success when >= 20.19
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [ "$major" -gt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -ge 19 ]; }
}
too_old() {
  die "Node.js $1 is too old: this project needs Node.js >= 20.19. Install a newer one (https://nodejs.org/en/download, NodeSource's Debian packages, or Debian 13 'trixie' which ships Node 20.19) and run this script again"
}
if command -v node >/dev/null 2>&1; then
  NODE_VERSION="$(node -p process.versions.node)"
  node_version_ok "$NODE_VERSION" || too_old "$NODE_VERSION"
else
  PACKAGES+=(nodejs npm)
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
NODE_VERSION="$(node -p process.versions.node)"
node_version_ok "$NODE_VERSION" || too_old "$NODE_VERSION (from the distribution)"
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
  node_modules/i2c-bus/build/Release/i2c.node node_modules/spi-device/build/Release/spi.node)
native_built() {
  local f
  for f in "${NATIVE[@]}"; do [ -f "$f" ] || return 1; done
  node -e 'for (const f of process.argv.slice(1)) require(require("node:path").resolve(f))' "${NATIVE[@]}" 2>/dev/null
}
if [ node_modules/.package-lock.json -nt package-lock.json ] && native_built; then
  say "npm dependencies up to date"
else
  say "npm ci (builds canvas, better-sqlite3, i2c-bus and spi-device from source: about a minute)"
  # JOBS=max builds the native addons on every core.
  run_as_user env JOBS=max npm ci --no-audit --no-fund
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
