#!/usr/bin/env bash
# Install edge-fer as a systemd service on Raspberry Pi OS Bookworm (64-bit).
#
#   sudo ./deploy/install-pi.sh                      # edge-fer[mqtt] from PyPI
#   sudo ./deploy/install-pi.sh --from ~/edge-fer    # from a local checkout (or a .whl / sdist path)
#   sudo ./deploy/install-pi.sh --coral              # also Google's libedgetpu for the Coral USB accelerator
#   ./deploy/install-pi.sh --dry-run                 # print the steps, change nothing (no root needed)
#
# Idempotent: run it again to upgrade; an existing /etc/edge-fer/config.toml is never overwritten
# (the new example is installed next to it as config.example.toml).
# Run it from the repository (or a copy of deploy/): it needs edge-fer.service and config.example.toml
# from its own directory.
set -euo pipefail

PREFIX=/opt/edge-fer
VENV="$PREFIX/venv"
CONF_DIR=/etc/edge-fer
CONF_FILE="$CONF_DIR/config.toml"
UNIT_NAME=edge-fer.service
UNIT_DST="/etc/systemd/system/$UNIT_NAME"
UDEV_RULES=/etc/udev/rules.d/71-edge-fer-coral.rules
SERVICE_USER=edge-fer
STATE_DIR=/var/lib/edge-fer
CORAL_KEYRING=/usr/share/keyrings/coral-edgetpu-archive-keyring.gpg
CORAL_LIST=/etc/apt/sources.list.d/coral-edgetpu.list
CORAL_REPO_URL=https://packages.cloud.google.com/apt
CORAL_KEY_URL=${CORAL_KEY_URL:-$CORAL_REPO_URL/doc/apt-key.gpg}
# The only signing keys trusted for Google's Coral repository (full fingerprints). Google's
# packages.cloud.google.com keyring holds several keys; only these are exported into the keyring
# apt uses. Taken from public listings of that keyring (Rapture Automatic Signing Key 2022-03-07,
# Artifact Registry Repository Signer); re-check with `gpg --show-keys` when Google rotates keys.
CORAL_KEY_FINGERPRINTS=${CORAL_KEY_FINGERPRINTS:-"A362B822F6DEDC652817EA46B53DC80D13EDEF05 35BAA0B33E9EB396F59CA838C0BA5CE6DC6315A3"}
# The edge-fer release this script installs from PyPI (kept equal to pyproject.toml by the tests).
EDGE_FER_VERSION=0.1.0
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

ARGS=("$@")
DRY_RUN=0
CORAL=0
START=1
APT=1
FROM=""
EXTRAS="mqtt"

usage() {
    cat <<EOF
Usage: ${0##*/} [options]

Install edge-fer as a hardened systemd service on Raspberry Pi OS Bookworm 64-bit:
  1. apt: python3-venv python3-pip python3-picamera2 (camera bindings come from Raspberry Pi OS)
  2. optional (--coral): Google's Coral apt repository and libedgetpu1-std
  3. system user '$SERVICE_USER' (groups video, plugdev)
  4. venv $VENV with --system-site-packages (so picamera2/libcamera are visible),
     pip install edge-fer[$EXTRAS] (or --from PATH)
  5. udev rules for the Coral USB accelerator (ids 1a6e:089a and 18d1:9302, group plugdev)
  6. $CONF_FILE from config.example.toml, only if absent
  7. $UNIT_DST: install, enable, (re)start

Options:
  --from PATH      install from a local checkout, wheel or sdist instead of PyPI
  --extras LIST    pip extras (default: $EXTRAS; '' for none)
  --version X      the edge-fer release to install from PyPI (default: $EDGE_FER_VERSION, pinned)
  --check-coral-key FILE
                   only check that FILE (an apt key, armored or binary) holds a pinned Coral key
                   fingerprint, print the fingerprints found, and exit (0: trusted, 1: not)
  --coral          add Google's apt repository and install libedgetpu1-std (network access on the Pi)
  --no-apt         skip the apt steps (packages already installed, or offline)
  --no-start       install and enable the service, but do not (re)start it now
  --dry-run, -n    print what would be done; change nothing
  --help, -h       this help
EOF
}

die() { printf 'install-pi: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'install-pi: warning: %s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# Run a command, or print it under --dry-run.
run() {
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '    +'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# write_file DEST MODE OWNER GROUP: write stdin to DEST when the content differs. Returns 0 when the
# file changed (or would change), 1 when it was already up to date.
write_file() {
    local dest=$1 mode=$2 owner=$3 group=$4 tmp lines
    tmp="$(mktemp)"
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        note "$dest is up to date"
        return 1
    fi
    if [[ $DRY_RUN -eq 1 ]]; then
        note "would write $dest (mode $mode, $owner:$group):"
        sed -n '1,6s/^/        | /p' "$tmp"
        lines=$(wc -l <"$tmp")
        if [[ $lines -gt 6 ]]; then
            note "    | ... ($lines lines)"
        fi
        rm -f "$tmp"
    else
        install -m "$mode" -o "$owner" -g "$group" "$tmp" "$dest"
        rm -f "$tmp"
        note "wrote $dest"
    fi
    return 0
}

# install_file SRC DEST MODE OWNER GROUP
install_file() {
    local src=$1
    shift
    write_file "$@" <"$src"
}

# coral_key_keyring KEYFILE OUT: verify that KEYFILE holds at least one pinned fingerprint and
# write a binary keyring with only the pinned keys to OUT (no OUT: only check). 0 ok, 1 refused.
coral_key_keyring() {
    local keyfile=$1 out=$2 home found fpr ok=()
    [[ -s $keyfile ]] || { printf 'install-pi: error: Coral key %s is empty or missing\n' "$keyfile" >&2; return 1; }
    home="$(mktemp -d)"
    found="$(gpg --homedir "$home" --batch --with-colons --show-keys "$keyfile" 2>/dev/null |
        awk -F: '$1 == "pub" {want = 1; next} $1 == "fpr" && want {print $10; want = 0}')" || true
    for fpr in $found; do
        [[ " $CORAL_KEY_FINGERPRINTS " == *" $fpr "* ]] && ok+=("$fpr")
    done
    printf '    key fingerprints in %s: %s\n' "$keyfile" "${found:-none}" | tr '\n' ' '
    printf '\n'
    if [[ ${#ok[@]} -eq 0 ]]; then
        rm -rf "$home"
        printf 'install-pi: error: the Coral apt key does not carry a pinned fingerprint (%s); refusing to trust it. Check it with Google'"'"'s documentation, then set CORAL_KEY_FINGERPRINTS="<fingerprint>"\n' "$CORAL_KEY_FINGERPRINTS" >&2
        return 1
    fi
    if [[ -n $out ]]; then
        if ! { gpg --homedir "$home" --batch --quiet --import "$keyfile" 2>/dev/null &&
            gpg --homedir "$home" --batch --export "${ok[@]}" >"$out.tmp" && mv "$out.tmp" "$out"; }; then
            rm -rf "$home" "$out.tmp"
            printf 'install-pi: error: cannot write %s\n' "$out" >&2
            return 1
        fi
    fi
    rm -rf "$home"
    printf '    trusted: %s\n' "${ok[*]}"
    return 0
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --from) [[ $# -ge 2 ]] || die "--from needs a path"; FROM=$2; shift 2 ;;
        --from=*) FROM=${1#*=}; shift ;;
        --extras) [[ $# -ge 2 ]] || die "--extras needs a value"; EXTRAS=$2; shift 2 ;;
        --extras=*) EXTRAS=${1#*=}; shift ;;
        --version) [[ $# -ge 2 ]] || die "--version needs a value"; EDGE_FER_VERSION=$2; shift 2 ;;
        --version=*) EDGE_FER_VERSION=${1#*=}; shift ;;
        --check-coral-key) [[ $# -ge 2 ]] || die "--check-coral-key needs a file"; coral_key_keyring "$2" ""; exit $? ;;
        --coral) CORAL=1; shift ;;
        --no-apt) APT=0; shift ;;
        --no-start) START=0; shift ;;
        -n | --dry-run) DRY_RUN=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

# ---------------------------------------------------------------------------------------------------
step "Checks"
[[ -f $SCRIPT_DIR/$UNIT_NAME ]] || die "$SCRIPT_DIR/$UNIT_NAME not found (run the script from deploy/)"
[[ -f $SCRIPT_DIR/config.example.toml ]] || die "$SCRIPT_DIR/config.example.toml not found"
if [[ $DRY_RUN -eq 1 ]]; then
    note "dry run: nothing will be changed"
elif [[ $EUID -ne 0 ]]; then
    die "run as root (sudo $0 ${ARGS[*]}), or use --dry-run"
fi
codename=unknown
if [[ -r /etc/os-release ]]; then
    # shellcheck source=/dev/null
    codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-unknown}")"
fi
arch="$(uname -m)"
note "OS codename: $codename, architecture: $arch"
[[ $codename == bookworm ]] || warn "written for Raspberry Pi OS Bookworm; this is '$codename'"
[[ $arch == aarch64 ]] || warn "written for 64-bit Raspberry Pi OS (aarch64); this is '$arch'"

[[ $EDGE_FER_VERSION =~ ^[0-9][0-9A-Za-z.+-]*$ ]] || die "--version $EDGE_FER_VERSION: not a version number"
pip_spec="edge-fer==$EDGE_FER_VERSION"
if [[ -n $FROM ]]; then
    [[ -e $FROM ]] || die "--from $FROM: no such file or directory"
    if [[ -d $FROM ]]; then
        pip_spec="$(cd -- "$FROM" && pwd)"
    else
        pip_spec="$(cd -- "$(dirname -- "$FROM")" && pwd)/$(basename -- "$FROM")"
    fi
fi
if [[ -n $EXTRAS ]]; then
    pip_spec="${pip_spec}[${EXTRAS}]"
fi

# ---------------------------------------------------------------------------------------------------
if [[ $APT -eq 1 ]]; then
    step "System packages (apt)"
    run apt-get update
    # --no-install-recommends keeps a Lite image free of the desktop preview stack.
    run apt-get install -y --no-install-recommends python3-venv python3-pip python3-picamera2
fi

if [[ $CORAL -eq 1 ]]; then
    step "Coral Edge TPU runtime (Google's apt repository; needs network access on the Pi)"
    if [[ $APT -eq 0 ]]; then
        warn "--coral with --no-apt: only the repository is configured; install libedgetpu1-std yourself"
    fi
    if [[ ! -s $CORAL_KEYRING ]]; then
        [[ $APT -eq 1 ]] && run apt-get install -y --no-install-recommends ca-certificates curl gnupg
        if [[ $DRY_RUN -eq 1 ]]; then
            run curl -fsSL -o /tmp/coral-apt-key.gpg "$CORAL_KEY_URL"
            note "+ check the key's fingerprint against: $CORAL_KEY_FINGERPRINTS; write $CORAL_KEYRING"
        else
            keytmp="$(mktemp)"
            curl -fsSL -o "$keytmp" "$CORAL_KEY_URL" || { rm -f "$keytmp"; die "cannot download the Coral apt key from $CORAL_KEY_URL"; }
            coral_key_keyring "$keytmp" "$CORAL_KEYRING" || { rm -f "$keytmp"; die "Coral apt key refused"; }
            rm -f "$keytmp"
            chmod 0644 "$CORAL_KEYRING"
        fi
    else
        note "$CORAL_KEYRING present"
    fi
    if write_file "$CORAL_LIST" 0644 root root <<EOF
deb [signed-by=$CORAL_KEYRING] $CORAL_REPO_URL coral-edgetpu-stable main
EOF
    then
        [[ $APT -eq 1 ]] && run apt-get update
    fi
    # libedgetpu1-std: standard clock. libedgetpu1-max runs faster and hotter (needs cooling); choose it
    # by hand if wanted (the two conflict).
    [[ $APT -eq 1 ]] && run apt-get install -y libedgetpu1-std
fi

# ---------------------------------------------------------------------------------------------------
step "Service user '$SERVICE_USER'"
for g in video plugdev; do
    if getent group "$g" >/dev/null; then
        note "group $g exists"
    else
        run groupadd --system "$g"
    fi
done
if getent passwd "$SERVICE_USER" >/dev/null; then
    note "user $SERVICE_USER exists"
else
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "edge-fer daemon" "$SERVICE_USER"
fi
run usermod --append --groups video,plugdev "$SERVICE_USER"

# ---------------------------------------------------------------------------------------------------
step "Python environment $VENV"
run install -d -m 0755 -o root -g root "$PREFIX"
if [[ -x $VENV/bin/python ]]; then
    note "venv exists"
    if ! grep -qs '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
        warn "$VENV was made without --system-site-packages: picamera2 will not be importable (remove it and rerun)"
    fi
else
    run python3 -m venv --system-site-packages "$VENV"
fi
# Raspberry Pi OS's picamera2 stack (simplejpeg, python3-numpy 1.24) is compiled against numpy 1.x; a
# numpy 2 wheel in the venv would shadow the system one and break it. Keep numpy < 2 in the venv (pip
# then picks an opencv-python-headless build that supports numpy 1.x). Not verified on a device yet.
run "$VENV/bin/python" -m pip install --upgrade "$pip_spec" "numpy<2"
if [[ $DRY_RUN -eq 0 ]]; then
    "$VENV/bin/edge-fer" --help >/dev/null || die "$VENV/bin/edge-fer does not run"
    "$VENV/bin/python" -c 'import picamera2' 2>/dev/null \
        || warn "picamera2 is not importable in the venv (fine for USB webcams; the Pi camera needs python3-picamera2)"
fi

# ---------------------------------------------------------------------------------------------------
step "udev rules for the Coral USB accelerator ($UDEV_RULES)"
if write_file "$UDEV_RULES" 0644 root root <<'EOF'
# Coral USB Accelerator, for edge-fer (installed by deploy/install-pi.sh): members of plugdev may use it.
# It enumerates as 1a6e:089a (Global Unichip) until libedgetpu loads its firmware, then as 18d1:9302 (Google).
SUBSYSTEM=="usb", ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0660", GROUP="plugdev"
SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0660", GROUP="plugdev"
EOF
then
    if command -v udevadm >/dev/null; then
        run udevadm control --reload-rules
        run udevadm trigger --subsystem-match=usb
    else
        note "udevadm not found; the rules apply at the next boot"
    fi
fi

# ---------------------------------------------------------------------------------------------------
step "Configuration $CONF_DIR"
run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
install_file "$SCRIPT_DIR/config.example.toml" "$CONF_DIR/config.example.toml" 0640 root "$SERVICE_USER" || true
if [[ -e $CONF_FILE ]]; then
    note "$CONF_FILE exists: kept (compare with $CONF_DIR/config.example.toml after upgrades)"
else
    install_file "$SCRIPT_DIR/config.example.toml" "$CONF_FILE" 0640 root "$SERVICE_USER" || true
fi

# ---------------------------------------------------------------------------------------------------
step "systemd unit $UNIT_DST"
install_file "$SCRIPT_DIR/$UNIT_NAME" "$UNIT_DST" 0644 root root || true
run systemctl daemon-reload
run systemctl enable "$UNIT_NAME"
if [[ $START -eq 1 ]]; then
    run systemctl restart "$UNIT_NAME"
else
    note "not started (--no-start): sudo systemctl start $UNIT_NAME"
fi

step "Done"
note "edit $CONF_FILE, then: sudo systemctl restart $UNIT_NAME"
note "logs: journalctl -u $UNIT_NAME -f    health: curl -s http://127.0.0.1:8080/healthz"
if [[ $CORAL -eq 1 ]]; then
    note "Coral USB: unplug and replug the accelerator once so the new udev rules apply"
fi
