#!/usr/bin/env bash
# Installs power-meter and power-meter-display as systemd services.
#
#   sudo ./install.sh                       install (or upgrade), enable and start both units
#   sudo ./install.sh --uninstall           stop, disable, remove units and programs (keeps data and identity)
#   sudo ./install.sh --uninstall --purge   also remove the data and /etc/power-meter (asks unless --yes)
#   ./install.sh --root DIR                 install into a staging root (an SD-card image, packaging): nothing is
#                                           started, and no key or other per-device state is made there
#
# From a checkout (built by ./install-requirements.sh, full or runtime set-up) or from an unpacked
# release tarball (scripts/build-release.sh: built JavaScript and runtime dependencies; no npm, no
# network needed). Idempotent: a second run with the same options changes nothing. Never
# overwrites the user's config file or token file. An upgrade keeps the installed options (user,
# data directory, prefix, devices) unless given again; a downgrade is refused before anything
# changes.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install.sh [options]
  --user NAME       user the services run as (default: the user who ran sudo; pi on a stock Pi)
  --data-dir DIR    data directory (default: /home/<user>/data/power-meter)
  --prefix DIR      where the application goes (default: /opt/power-meter)
  --i2c-bus N       I2C bus the backend may open (default 1: /dev/i2c-1)
  --spi DEV         SPI device the display may open, bus.device (default 0.0: /dev/spidev0.0)
  --root DIR        install into a staging root (SD-card image, packaging): no starting, no key
                    (each device makes its own on first start), `systemctl --root` for enabling
  --no-start        enable the services but do not start them now
  --uninstall       stop, disable and remove the services and programs (data and identity stay)
  --purge           with --uninstall: also remove the data directory and /etc/power-meter (settings, token)
  --yes             do not ask for confirmation
  -h, --help        this help
USAGE
}

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
USER_NAME=""
DATA_DIR=""
DATA_DIR_KNOWN=1
PREFIX=""
I2C_BUS=""
SPI_DEV=""
ROOT=""
START=1
UNINSTALL=0
PURGE=0
YES=0

while [ $# -gt 0 ]; do
  case "$1" in
    --user) USER_NAME="${2:?--user needs a name}"; shift 2 ;;
    --data-dir) DATA_DIR="${2:?--data-dir needs a directory}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --i2c-bus) I2C_BUS="${2:?--i2c-bus needs a number}"; shift 2 ;;
    --spi) SPI_DEV="${2:?--spi needs bus.device, e.g. 0.0}"; shift 2 ;;
    --no-start) START=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --yes | -y) YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  START=0
elif [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo ./install.sh), or use --root DIR to install into a staging root"
fi
[ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge only makes sense with --uninstall"

UNIT_DIR="$ROOT/etc/systemd/system"
# An upgrade keeps what the installed units say (user, data directory, prefix, device nodes)
# unless an option gives it again, so the README's upgrade command needs no options.
installed() { # unit sed-script: what the installed unit says
  if [ -f "$UNIT_DIR/$1" ]; then sed -n "$2" "$UNIT_DIR/$1" | head -n 1; fi
}
INSTALLED_USER="$(installed power-meter.service 's#^User=##p')"
[ -n "$PREFIX" ] || PREFIX="$(installed power-meter.service 's#^ExecStart=.* \(/[^ ]*\)/packages/power-meter/dist/cli\.js.*#\1#p')"
PREFIX="${PREFIX:-/opt/power-meter}"
[ -n "$I2C_BUS" ] || I2C_BUS="$(installed power-meter.service 's#^DeviceAllow=/dev/i2c-\([0-9]*\) rw$#\1#p')"
I2C_BUS="${I2C_BUS:-1}"
[ -n "$SPI_DEV" ] || SPI_DEV="$(installed power-meter-display.service 's#^DeviceAllow=/dev/spidev\([0-9]*\.[0-9]*\) rw$#\1#p')"
SPI_DEV="${SPI_DEV:-0.0}"
[[ "$I2C_BUS" =~ ^[0-9]+$ ]] || die "--i2c-bus must be a number, got $I2C_BUS"
[[ "$SPI_DEV" =~ ^[0-9]+\.[0-9]+$ ]] || die "--spi must look like 0.0 (bus.device), got $SPI_DEV"

# Removing needs no service user: the data directory is the one the installed unit names.
installed_data_dir() {
  if [ -f "$UNIT_DIR/power-meter.service" ]; then sed -n 's/^Environment=POWER_METER_DATA_DIR=//p' "$UNIT_DIR/power-meter.service" | head -n 1; fi
}
if [ "$UNINSTALL" -eq 1 ] && [ -z "$USER_NAME" ] && [ -z "$DATA_DIR" ]; then
  DATA_DIR="$(installed_data_dir)"
  DATA_DIR_KNOWN="$DATA_DIR"
  if [ "$PURGE" -eq 1 ] && [ -z "$DATA_DIR" ]; then
    die "cannot find the data directory to purge (no installed power-meter.service): pass --data-dir DIR"
  fi
  USER_NAME="-"
fi

if [ -z "$USER_NAME" ] && [ -n "$INSTALLED_USER" ]; then
  USER_NAME="$INSTALLED_USER"
  [ -n "$DATA_DIR" ] || DATA_DIR="$(installed_data_dir)"
fi
if [ -z "$USER_NAME" ]; then
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then USER_NAME="$SUDO_USER"
  elif id pi >/dev/null 2>&1; then USER_NAME=pi
  elif [ "$(id -u)" -ne 0 ]; then USER_NAME="$(id -un)"
  else die "cannot tell which user the services should run as: pass --user NAME (never root)"
  fi
fi
[ "$USER_NAME" != root ] || die "the services must not run as root: pass --user NAME"
[[ "$USER_NAME" =~ ^([A-Za-z_][A-Za-z0-9_.-]*|-)$ ]] || die "--user $USER_NAME is not a plain user name"
if [ "$USER_NAME" = "-" ]; then
  GROUP_NAME="-"; USER_HOME="/nonexistent" # uninstalling: no service user involved
elif id "$USER_NAME" >/dev/null 2>&1; then
  GROUP_NAME="$(id -gn "$USER_NAME")"
  USER_HOME="$(getent passwd "$USER_NAME" | cut -d: -f6)"
elif [ -n "$ROOT" ]; then
  GROUP_NAME="$USER_NAME"; USER_HOME="/home/$USER_NAME"   # packaging for another machine
  echo "install.sh: warning: user $USER_NAME does not exist here; the units assume user and group $USER_NAME and home $USER_HOME" >&2
else
  die "user $USER_NAME does not exist (create it, or pass --user NAME)"
fi
DATA_DIR="${DATA_DIR:-$USER_HOME/data/power-meter}"
# The paths and the name go into unit files, where spaces, % (specifiers) and quotes mean
# something, and through sed: keep them plain (the user name is checked above).
for d in "$PREFIX" "$DATA_DIR"; do
  [[ "$d" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "$d: only letters, digits and . _ / + - are supported in paths"
done
# The application directory is replaced and the data directory purged wholesale: refuse a
# system or home directory (--prefix /usr/local, --data-dir ~).
for d in "$PREFIX" "$DATA_DIR"; do
  [[ "$d" =~ ^/[^/]+/[^/]+ ]] || die "$d: give an absolute path at least two levels deep (e.g. /opt/power-meter)"
  if [ "${d%/}" = "$USER_HOME" ] || [[ "${d%/}" =~ ^/(home|usr|etc|var|boot|proc|sys|dev|run|lib|lib64|bin|sbin)/[^/]+$ ]]; then
    die "$d is a system or home directory: give a directory of its own (e.g. /opt/power-meter, ~/data/power-meter)"
  fi
done
# An existing application directory must be an earlier installation: it is replaced whole.
if [ -d "$ROOT$PREFIX" ] && [ -n "$(ls -A "$ROOT$PREFIX")" ] && [ ! -f "$ROOT$PREFIX/packages/power-meter/package.json" ]; then
  die "$PREFIX exists and is not a power-meter installation: refusing to replace or remove it (choose another --prefix)"
fi

BIN_DIR="$ROOT/usr/local/bin"
ETC_DIR="$ROOT/etc/power-meter"
APP="$ROOT$PREFIX"
UNITS=(power-meter.service power-meter-display.service)

systemctl_() {
  if [ -z "$ROOT" ]; then systemctl "$@"
  elif command -v systemctl >/dev/null 2>&1; then systemctl --root="$ROOT" "$@"
  else root_links "$@"
  fi
}
# What `systemctl --root enable/disable/is-enabled` does for these units, where the machine building
# the staging root has no systemd (a container, a minimal build root): the [Install] WantedBy= links.
root_links() { # enable|disable|is-enabled [--quiet] UNIT
  local verb="$1" u="${*: -1}" t targets=()
  read -ra targets < <(sed -n 's/^WantedBy=//p' "$UNIT_DIR/$u" 2>/dev/null | tr '\n' ' ')
  for t in "${targets[@]}"; do
    case "$verb" in
      enable) mkdir -p "$UNIT_DIR/$t.wants" && ln -sfn "/etc/systemd/system/$u" "$UNIT_DIR/$t.wants/$u" ;;
      disable) rm -f "$UNIT_DIR/$t.wants/$u"; rmdir "$UNIT_DIR/$t.wants" 2>/dev/null || true ;;
      is-enabled) [ -L "$UNIT_DIR/$t.wants/$u" ] || return 1 ;;
    esac
  done
}

# ---- uninstall ----------------------------------------------------------------------------
if [ "$UNINSTALL" -eq 1 ]; then
  if [ -z "$ROOT" ]; then systemctl stop "${UNITS[@]}" 2>/dev/null || true; fi
  for u in "${UNITS[@]}"; do
    if [ -f "$UNIT_DIR/$u" ]; then systemctl_ disable "$u" >/dev/null 2>&1 || true; fi
    rm -f "$UNIT_DIR/$u"
  done
  rm -f "$ROOT/etc/tmpfiles.d/power-meter.conf"
  if [ -z "$ROOT" ]; then
    systemctl daemon-reload
    systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
  fi
  for p in power-meter power-meter-display; do
    if [ "$(readlink "$BIN_DIR/$p" 2>/dev/null || true)" = "$PREFIX/packages/$p/dist/cli.js" ]; then rm -f "$BIN_DIR/$p"; fi
  done
  rm -rf "$APP"
  if [ "$PURGE" -eq 0 ]; then
    say "removed the services and $PREFIX; kept the settings in /etc/power-meter and the data directory${DATA_DIR_KNOWN:+ $DATA_DIR} (identity, outbox)"
    exit 0
  fi
  say "removed the services and $PREFIX"
  if [ "$YES" -ne 1 ]; then
    printf 'Delete %s (including the device key and undelivered readings) and the settings and token in %s? [y/N] ' "$ROOT$DATA_DIR" "$ETC_DIR"
    read -r answer || answer=""
    case "$answer" in y | Y | yes) ;; *) say "kept $ROOT$DATA_DIR and $ETC_DIR"; exit 0 ;; esac
  fi
  rm -rf "$ROOT$DATA_DIR" "$ETC_DIR"
  say "removed $ROOT$DATA_DIR and $ETC_DIR"
  exit 0
fi

# ---- what is installed: a release tarball, or a checkout (built here if it is a full set-up) ----
NODE_BIN="$(command -v node || true)"
if [ -z "$NODE_BIN" ]; then
  die "node is not on the PATH: run ./install-requirements.sh first (or install Node.js >= 20.19); if Node lives in your home (nvm), sudo hides it: sudo env PATH=\"\$PATH\" ./install.sh"
fi
TREE=("$NODE_BIN" "$SRC/scripts/runtime-tree.mjs")
# As the owner of the checkout, so sudo leaves no root-owned files in it.
as_owner() {
  local owner
  owner="$(stat -c %U "$SRC")"
  if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ] && [ "$owner" != UNKNOWN ]; then runuser -u "$owner" -- env "PATH=$PATH" "$@"; else "$@"; fi
}
if [ -f "$SRC/release.json" ]; then
  # A release tarball: built JavaScript and node_modules for one CPU and Node ABI (native modules).
  read -r REL_ARCH REL_ABI REL_NODE < <("$NODE_BIN" -p 'const r = require(process.argv[1]); [r.nodeArch, r.modulesAbi, r.node].join(" ")' "$SRC/release.json")
  HERE_ARCH="$("$NODE_BIN" -p process.arch)"
  HERE_ABI="$("$NODE_BIN" -p process.versions.modules)"
  if [ -n "$ROOT" ]; then
    # An image for another machine: its Node.js is the one that matters, and it cannot run here.
    say "this release runs on $REL_ARCH with Node.js ${REL_NODE%%.*}.x (modules ABI $REL_ABI): the device needs that Node.js"
  else
    [ "$REL_ARCH" = "$HERE_ARCH" ] ||
      die "this release is built for $REL_ARCH CPUs and this machine is $HERE_ARCH: use the release tarball for $HERE_ARCH"
    [ "$REL_ABI" = "$HERE_ABI" ] ||
      die "this release's native modules are built for Node.js $REL_NODE (modules ABI $REL_ABI) and this machine runs Node.js $("$NODE_BIN" -v) (ABI $HERE_ABI): install Node.js ${REL_NODE%%.*}, or use a release built with this machine's Node.js line"
  fi
elif [ ! -d "$SRC/node_modules" ]; then
  die "dependencies are not installed in $SRC: run ./install-requirements.sh first"
elif grep -qs '"mode": "runtime"' "$SRC/node_modules/.power-meter-setup.json"; then
  # A runtime set-up has no TypeScript: install-requirements.sh is what builds there.
  [ -z "$(cd "$SRC" && "${TREE[@]}" needs runtime)" ] ||
    die "the sources in $SRC changed since ./install-requirements.sh built them (or Node.js changed): run ./install-requirements.sh again, then this"
else
  # A full set-up: tsc -b rebuilds only what changed since the last build.
  (cd "$SRC" && as_owner npm run build --silent) || die "the build failed (npm run build in $SRC)"
fi

# ---- a staging root carries no device: no key, no outbox, no state -----------------------------
if [ -n "$ROOT" ] && [ -d "$ROOT$DATA_DIR" ] && [ -n "$(ls -A "$ROOT$DATA_DIR")" ]; then
  die "$ROOT$DATA_DIR holds a device's data (its key, outbox or state): every device made from this root would share that identity. Remove it (or use an empty root); each device creates its own on first start"
fi

# ---- versions: an upgrade goes forward, a downgrade is refused before anything changes --------
NEW_VERSION="$("$NODE_BIN" -p 'require(process.argv[1]).version' "$SRC/package.json")"
if [ -f "$APP/package.json" ]; then
  OLD_VERSION="$("$NODE_BIN" -p 'require(process.argv[1]).version' "$APP/package.json")"
  # -1, 0 or 1: semantic-version order (a pre-release such as 0.2.0-rc.1 is before 0.2.0).
  ORDER="$("$NODE_BIN" -e '
    const parse = (v) => { const [core, pre] = v.split("+")[0].split("-", 2); return [core.split(".").map(Number), pre]; };
    const [[a, ap], [b, bp]] = [parse(process.argv[1]), parse(process.argv[2])];
    let c = 0;
    for (let i = 0; i < 3 && c === 0; i++) c = Math.sign((a[i] ?? 0) - (b[i] ?? 0));
    if (c === 0 && ap !== bp) c = ap === undefined ? 1 : bp === undefined ? -1 : ap < bp ? -1 : 1;
    console.log(c);' "$NEW_VERSION" "$OLD_VERSION")"
  OLD_COMMIT="$("$NODE_BIN" -p 'try { require(process.argv[1]).commit || "unknown" } catch { "unknown" }' "$APP/installed.json")"
  if [ "$ORDER" -lt 0 ]; then
    die "REFUSED: $PREFIX holds power-meter $OLD_VERSION, and this is $NEW_VERSION, an older release. Nothing was changed. Its programs may not read what $OLD_VERSION stored (the outbox and state migrate forward only). To go back anyway: sudo ./install.sh --uninstall from the newer release (the data and the device key stay), then this release's install.sh; keep a copy of the data directory first"
  elif [ "$ORDER" -gt 0 ]; then
    say "upgrading power-meter $OLD_VERSION to $NEW_VERSION"
  fi
  UPGRADE_FROM="$OLD_VERSION"
  if [ "$OLD_COMMIT" != unknown ]; then UPGRADE_FROM="$OLD_VERSION (commit ${OLD_COMMIT:0:12})"; fi
fi

CHANGED=0 # anything installed or replaced: the services restart, and a re-run says whether it did anything

# ---- application: staged, then swapped in only if it differs (idempotent) ------------------
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/power-meter-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
# The programs, the libraries they use and their runtime dependencies (scripts/runtime-tree.mjs):
# no development tool (the development package, dev-node, is no program's dependency), no source,
# no benchmark; built native modules as install-requirements.sh (or the release build) made them.
# No npm needed.
"${TREE[@]}" copy "$STAGE/app" || die "could not assemble the application from $SRC (see above)"
# What was installed, from where (the commit when it is a git checkout): shown by a later upgrade.
COMMIT=""
if [ -f "$SRC/release.json" ]; then COMMIT="$("$NODE_BIN" -p 'require(process.argv[1]).commit ?? ""' "$SRC/release.json")"
elif command -v git >/dev/null 2>&1; then COMMIT="$(as_owner git -C "$SRC" rev-parse HEAD 2>/dev/null || true)"; fi
printf '{\n  "version": "%s",\n  "commit": "%s"\n}\n' "$NEW_VERSION" "$COMMIT" >"$STAGE/app/installed.json"
chmod -R u=rwX,go=rX "$STAGE/app"

if [ -d "$APP" ] && diff -r --no-dereference -q "$STAGE/app" "$APP" >/dev/null 2>&1; then
  say "application in $PREFIX is up to date"
else
  mkdir -p "$(dirname "$APP")"
  rm -rf "$APP.new"
  cp -a "$STAGE/app" "$APP.new"
  rm -rf "$APP.old"
  if [ -d "$APP" ]; then mv "$APP" "$APP.old"; fi
  mv "$APP.new" "$APP"
  rm -rf "$APP.old"
  CHANGED=1
  if [ -n "${UPGRADE_FROM:-}" ]; then
    say "installed the application in $PREFIX: $NEW_VERSION${COMMIT:+ (commit ${COMMIT:0:12})}, replacing $UPGRADE_FROM; the data directory and settings are kept"
  else
    say "installed the application in $PREFIX"
  fi
fi

# ---- programs on the PATH ----------------------------------------------------------------
mkdir -p "$BIN_DIR"
chmod 0755 "$APP/packages/power-meter/dist/cli.js" "$APP/packages/power-meter-display/dist/cli.js"
for p in power-meter power-meter-display; do
  target="$PREFIX/packages/$p/dist/cli.js"
  if [ "$(readlink "$BIN_DIR/$p" 2>/dev/null || true)" != "$target" ]; then
    ln -sfn "$target" "$BIN_DIR/$p"
    CHANGED=1
  fi
done

# ---- units ---------------------------------------------------------------------------------
# The Node.js the units start: in a staging root, the one inside it when there is one.
UNIT_NODE="$NODE_BIN"
if [ -n "$ROOT" ]; then
  UNIT_NODE=""
  for n in /usr/bin/node /usr/local/bin/node; do if [ -x "$ROOT$n" ]; then UNIT_NODE="$n"; break; fi; done
  if [ -z "$UNIT_NODE" ]; then
    UNIT_NODE="$NODE_BIN"
    say "no Node.js in $ROOT (usr/bin or usr/local/bin): the units start $NODE_BIN; the device needs Node.js there"
  fi
fi
install_if_changed() { # src dest mode
  if ! cmp -s "$1" "$2"; then
    install -D -m "$3" "$1" "$2"
    CHANGED=1
    say "installed $(basename "$2")"
  fi
}
for u in "${UNITS[@]}"; do
  sed -e "s#@PREFIX@#$PREFIX#g" -e "s#@USER@#$USER_NAME#g" -e "s#@GROUP@#$GROUP_NAME#g" \
    -e "s#@DATA_DIR@#$DATA_DIR#g" -e "s#@NODE@#$UNIT_NODE#g" \
    -e "s#@I2C_BUS@#$I2C_BUS#g" -e "s#@SPI_BUS@#${SPI_DEV%.*}#g" -e "s#@SPI_DEVICE@#${SPI_DEV#*.}#g" \
    "$SRC/systemd/$u" >"$STAGE/$u"
  install_if_changed "$STAGE/$u" "$UNIT_DIR/$u" 0644
done

# ---- data directory, config and token file (never overwritten) -----------------------------
# At boot, systemd-tmpfiles makes the data directory when it is missing, owned by the service
# user: a device made from an image (--root) has none, and its first start then creates the
# device's own key in it, as that user. (The unit's sandbox needs the directory to exist before it
# starts, so the unit cannot make it itself.) Inside the user's home, the folders between are the
# user's too.
{
  echo "# power-meter's data directory (written by install.sh): made at boot when missing, owned by the service user."
  if [ "${DATA_DIR#"$USER_HOME"/}" != "$DATA_DIR" ]; then
    d="$USER_HOME"
    rest="${DATA_DIR#"$USER_HOME"/}"
    while [ "${rest%%/*}" != "$rest" ]; do
      d="$d/${rest%%/*}"
      rest="${rest#*/}"
      echo "d $d 0755 $USER_NAME $GROUP_NAME -"
    done
  fi
  echo "d $DATA_DIR 0755 $USER_NAME $GROUP_NAME -"
} >"$STAGE/power-meter.conf"
install_if_changed "$STAGE/power-meter.conf" "$ROOT/etc/tmpfiles.d/power-meter.conf" 0644
# Not in a staging root: each device has its own.
if [ -z "$ROOT" ] && [ ! -d "$DATA_DIR" ]; then
  if [ "${DATA_DIR#"$USER_HOME"/}" != "$DATA_DIR" ]; then
    # Inside the user's home: created by the user, so ~/data is theirs too, not root's.
    runuser -u "$USER_NAME" -- mkdir -p -m 0755 "$DATA_DIR"
  else
    install -d -m 0755 -o "$USER_NAME" -g "$GROUP_NAME" "$DATA_DIR"
  fi
  CHANGED=1
  say "created the data directory $DATA_DIR"
fi
mkdir -p "$ETC_DIR"
if [ ! -e "$ETC_DIR/config.json" ]; then
  # Off a Pi (no I2C bus or SPI device here) the example uses the simulated sensor and the png
  # panel, so both services run; on the Pi the real devices. Either can be changed later.
  SENSOR=ina219 PANEL=st7735
  if [ -z "$ROOT" ] && [ ! -e "/dev/i2c-$I2C_BUS" ]; then SENSOR=sim; say "no /dev/i2c-$I2C_BUS here: the example config uses the simulated sensor (\"sensor\": \"sim\")"; fi
  if [ -z "$ROOT" ] && [ ! -e "/dev/spidev$SPI_DEV" ]; then PANEL=png; say "no /dev/spidev$SPI_DEV here: the example config uses the png panel (/var/lib/power-meter-display/screen.png)"; fi
  cat >"$ETC_DIR/config.json" <<CONFIG
{
  "_comment": "power-meter settings. Keys not starting with _ are read; every key, flag and environment variable is in $PREFIX/README.md (Configuration). Restart after editing: sudo systemctl restart power-meter power-meter-display",
  "_publishUrl": "Your W3bstream project's event URL, e.g. https://<host>/srv-applet-mgr/v0/event/<project>. Empty = measure, sign and store without sending.",
  "publishUrl": "",
  "_dataDir": "Where the meter keeps its state files, key and outbox; power-meter identity/doctor read it from here too.",
  "dataDir": "$DATA_DIR",
  "_token": "The publisher token does NOT go here: put W3BSTREAM_PUBLISHER_TOKEN=... in /etc/power-meter/power-meter.env (mode 600).",
  "window": 5,
  "sensor": "$SENSOR",
  "i2cBus": $I2C_BUS,
  "i2cAddress": 64,
  "shuntOhms": 0.1,
  "walletAddress": "",
  "rewardTiers": [{ "belowW": 3, "tokensPerH": 10 }, { "belowW": 5, "tokensPerH": 4 }],
  "display": {
    "_comment": "power-meter-display settings",
    "panel": "$PANEL",
    "rotation": 90,
    "variant": "greentab",
    "dcPin": 25,
    "resetPin": 24
  }
}
CONFIG
  chmod 0644 "$ETC_DIR/config.json"
  CHANGED=1
  say "wrote an example $ETC_DIR/config.json"
fi
if [ ! -e "$ETC_DIR/power-meter.env" ]; then
  (
    umask 077
    cat >"$ETC_DIR/power-meter.env" <<'ENV'
# Secrets for power-meter.service (read by systemd, mode 600, owned by root).
# The W3bstream publisher token of this device (Devices tab of your project):
#W3BSTREAM_PUBLISHER_TOKEN=
ENV
  )
  chmod 0600 "$ETC_DIR/power-meter.env"
  CHANGED=1
  say "wrote $ETC_DIR/power-meter.env (mode 600): put your publisher token there"
fi

# ---- device identity (before the services start, so only one process ever creates the key) --
ID_CMD=("$NODE_BIN" "$APP/packages/power-meter/dist/cli.js" identity --data-dir "$DATA_DIR" --config "$ETC_DIR/config.json")
if [ "$(id -u)" -eq 0 ]; then ID_CMD=(runuser -u "$USER_NAME" -- "${ID_CMD[@]}"); fi
# The backend creates the device key on first use; if it cannot (yet), the install still stands.
if [ -n "$ROOT" ]; then
  IDENTITY="No device key was made: this is a staging root (an image). On each device the first boot
makes the data directory $DATA_DIR (systemd-tmpfiles),
and the first start creates the device's own key in it, as user $USER_NAME. Its address, on the device:
  power-meter identity --data-dir $DATA_DIR"
elif IDENTITY="$("${ID_CMD[@]}" 2>&1)"; then
  IDENTITY="This device (register its address in your W3bstream project):
$IDENTITY"
else
  IDENTITY="The device address is not available yet (power-meter identity said: $(printf '%s' "$IDENTITY" | head -n 3)).
Later: power-meter identity --data-dir $DATA_DIR"
fi

# ---- enable and start ----------------------------------------------------------------------
# The units ask for these groups (SupplementaryGroups=); systemd refuses to start a unit whose
# group does not exist (status=216/GROUP). Raspberry Pi OS has them; elsewhere (a laptop, a
# container) they are created as empty system groups: nobody gains access to anything.
if [ -z "$ROOT" ]; then
  for g in i2c spi gpio; do
    if ! getent group "$g" >/dev/null; then
      groupadd --system "$g" || die "cannot create the system group $g that the units need (groupadd --system $g)"
      say "created the system group $g (this machine has none; the units need it to exist)"
    fi
  done
fi
if [ -z "$ROOT" ] && [ "$CHANGED" -eq 1 ]; then systemctl daemon-reload; fi
for u in "${UNITS[@]}"; do
  if ! systemctl_ is-enabled --quiet "$u" 2>/dev/null; then
    systemctl_ enable "$u" >/dev/null 2>&1 || systemctl_ enable "$u"
    CHANGED=1
    say "enabled $u"
  fi
done
if [ "$START" -eq 1 ]; then
  # Type=notify: start returns once each program says it is ready, or fails if it exits first.
  if [ "$CHANGED" -eq 1 ]; then verb=restart; else verb=start; fi
  failed=()
  for u in "${UNITS[@]}"; do
    if ! systemctl "$verb" "$u" || ! systemctl is-active --quiet "$u"; then failed+=("$u"); fi
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    for u in "${failed[@]}"; do systemctl status --no-pager --lines=5 "$u" >&2 || true; done
    die "installed, but ${failed[*]} did not start: see systemctl status ${failed[*]%.service} and journalctl -u ${failed[0]%.service} -p warning -b"
  fi
fi

# ---- next steps --------------------------------------------------------------------------
if [ "$CHANGED" -eq 0 ]; then say "nothing changed: already installed and up to date"; fi
cat <<NEXT

power-meter is installed (user $USER_NAME, data $DATA_DIR, application $PREFIX).
$IDENTITY

Next steps:
  1. Register this device in your W3bstream project (and on chain if your applet uses it).
  2. Put the publish URL in /etc/power-meter/config.json ("publishUrl") and the token in
     /etc/power-meter/power-meter.env (W3BSTREAM_PUBLISHER_TOKEN=...), then:
       sudo systemctl restart power-meter
  3. Check it:  systemctl status power-meter   |   power-meter doctor   |   journalctl -u power-meter -f
NEXT
