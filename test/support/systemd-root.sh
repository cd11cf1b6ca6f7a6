#!/usr/bin/env bash
# Prints the path of a minimal Debian 12 root with systemd, for test/systemd.test.ts, which boots
# an overlay of it with systemd-nspawn and installs the services into it with install.sh. Built
# once per machine with debootstrap from Debian's packages (a few minutes) and cached; a later run
# only checks it. Needs root (debootstrap, and the test mounts and boots the root).
#
# The cached root is never changed once built, because other test runs may have it mounted as
# their overlay's lower layer: its directory name carries a stamp of everything that goes into
# it (release, architecture, package list, ROOT_VERSION), so a change builds a new one beside it.
# Older ones are removed once no overlay uses them and no run has asked for them for an hour.
# The lock is held only while building.
#
#   POWER_METER_TEST_CACHE   where the cached root lives (default /var/cache/power-meter-test)
set -euo pipefail

CACHE="${POWER_METER_TEST_CACHE:-/var/cache/power-meter-test}"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# systemd as PID 1, plus what the programs load at run time: the shared libraries canvas was
# built against (the copied node_modules) and the DejaVu fonts the display draws with.
# libatomic1: the official Node builds from 24 on link against it (the test copies the Node it
# runs on into the root; a Pi has it through build-essential).
PACKAGES=systemd,systemd-sysv,dbus,procps,ca-certificates,libcairo2,libpango-1.0-0,libpangocairo-1.0-0,libjpeg62-turbo,libgif7,librsvg2-2,fonts-dejavu-core,libatomic1
# Raise when the way the root is built changes in a way the package list does not show.
ROOT_VERSION=2

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
KEY="$(printf '%s %s %s %s' "$SUITE" "$ARCH" "$PACKAGES" "$ROOT_VERSION" | sha256sum | cut -c1-12)"
DIR="$CACHE/units-$SUITE-$ARCH-$KEY"
mkdir -p "$CACHE"
if [ ! -f "$DIR/.complete" ]; then
  # One builder at a time (parallel test runs on one machine share the cache); a run that finds
  # the root complete takes no lock at all.
  exec 9>"$DIR.lock"
  flock 9
  if [ ! -f "$DIR/.complete" ]; then
    echo "systemd-root.sh: building the Debian $SUITE root in $DIR (debootstrap, a few minutes; cached afterwards)" >&2
    # A builder that was killed leaves its .tmp: only the lock holder builds, so it is stale.
    rm -rf "$DIR.tmp"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR.tmp" "$MIRROR" >&2 ||
      die "debootstrap failed (see above): it needs $MIRROR"
    touch "$DIR.tmp/.complete"
    mv "$DIR.tmp" "$DIR"
  fi
  exec 9>&-
fi
# When it was last asked for (the directory's own time): older roots are kept while recently used.
touch "$DIR"

# Roots of other stamps (and the unstamped one of earlier versions): removed when no overlay has
# one as its lower layer, nobody is building it, and no run asked for it in the last hour.
for old in "$CACHE/units-$SUITE-$ARCH" "$CACHE/units-$SUITE-$ARCH"-*; do
  case "$old" in "$DIR" | *.lock | *.tmp) continue ;; esac
  [ -d "$old" ] || continue
  grep -qF "lowerdir=$old," /proc/self/mountinfo && continue
  [ -n "$(find "$old" -maxdepth 0 -mmin +60)" ] || continue
  (
    flock -n 9 || exit 0
    echo "systemd-root.sh: removing the unused root $old" >&2
    rm -rf "$old" "$old.tmp" # the lock file stays: removing a held lock's file lets a second holder in
  ) 9>"$old.lock"
done
echo "$DIR"
