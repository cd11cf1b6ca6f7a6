#!/usr/bin/env bash
# Prints the path of a minimal Debian 12 root with systemd, for test/systemd.test.ts, which boots
# it with systemd-nspawn and installs the services into it with install.sh. Built once per
# machine with debootstrap from Debian's packages (a few minutes) and cached; a later run only
# checks it. Needs root (debootstrap, and the test mounts and boots the root).
#
#   POWER_METER_TEST_CACHE   where the cached root lives (default /var/cache/power-meter-test)
set -euo pipefail

CACHE="${POWER_METER_TEST_CACHE:-/var/cache/power-meter-test}"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# systemd as PID 1, plus what the programs load at run time: the shared libraries canvas was
# built against (the copied node_modules) and the DejaVu fonts the display draws with.
PACKAGES=systemd,systemd-sysv,dbus,procps,ca-certificates,libcairo2,libpango-1.0-0,libpangocairo-1.0-0,libjpeg62-turbo,libgif7,librsvg2-2,fonts-dejavu-core

die() { echo "systemd-root.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount, systemd-nspawn)"

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "systemd-root.sh: installing ${missing[*]}" >&2
  # Another test may be using apt at the same time: wait for its lock rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

ARCH="$(dpkg --print-architecture)"
KEY="$(printf '%s %s %s' "$SUITE" "$ARCH" "$PACKAGES" | sha256sum | cut -c1-12)"
DIR="$CACHE/units-$SUITE-$ARCH"
mkdir -p "$CACHE"
# One builder at a time (parallel test runs on one machine share the cache).
exec 9>"$CACHE/units-$SUITE-$ARCH.lock"
flock 9
if [ ! -f "$DIR/.complete-$KEY" ]; then
  echo "systemd-root.sh: building the Debian $SUITE root in $DIR (debootstrap, a few minutes; cached afterwards)" >&2
  rm -rf "$DIR.tmp" "$DIR"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR.tmp" "$MIRROR" >&2 ||
    die "debootstrap failed (see above): it needs $MIRROR"
  touch "$DIR.tmp/.complete-$KEY"
  mv "$DIR.tmp" "$DIR"
fi
echo "$DIR"
