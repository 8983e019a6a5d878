#!/usr/bin/env bash
# Builds the Debian package from the tree (dpkg-buildpackage -us -uc -b, in a
# copy: `debian/rules clean` would remove the tree's own build) and installs
# it, with its Depends from Debian's archive, into a fresh bookworm chroot
# (mmdebstrap, minbase variant plus systemd, as on a Debian 12 host).  In
# the chroot it checks the file list (binary, man page, unit, conffile),
# that the binary runs, that the unit is enabled and that
# `systemd-analyze verify` accepts it, and that installing made nothing
# else (no /var/lib/boxer before the service starts).  The service is not
# started: no systemd runs in a chroot.
#
#   scripts/check-deb.sh [OUTDIR]   (the .deb is left in OUTDIR when given)
#
# Needs root (mmdebstrap root mode) and the packages of scripts/install-deps.sh
# (dpkg-dev, debhelper, musl-tools, mmdebstrap).  Nothing is cached across
# runs but the machine's apt cache, which the chroot reads from and adds to.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
SUITE=bookworm

log() { printf 'check-deb: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# ------------------------------------------------------------- in the chroot
# Called by mmdebstrap's customize hook with the chroot's path (mmdebstrap
# has mounted /proc, /sys and /dev there).
if [ "${1:-}" = --inside ]; then
    root=$2
    inroot() { chroot "$root" "$@"; }
    # shellcheck disable=SC2016 # dpkg-query format fields, not shell
    st=$(inroot dpkg-query -W -f='${Status}' boxer)
    [ "$st" = "install ok installed" ] || fail "boxer is $st"
    files=$(inroot dpkg-query -L boxer)
    for f in /usr/bin/boxer /usr/share/man/man1/boxer.1.gz /lib/systemd/system/boxer.service \
        /etc/boxer/config.json /usr/share/doc/boxer/copyright; do
        grep -qx "$f" <<<"$files" || fail "$f is not in the package"
        [ -f "$root$f" ] || fail "$f is not installed"
    done
    log "files: $(grep -c . <<<"$files") paths, binary, man page, unit, config"
    # shellcheck disable=SC2016
    conffiles=$(inroot dpkg-query -W -f='${Conffiles}\n' boxer)
    grep -q '^ /etc/boxer/config.json ' <<<"$conffiles" || fail "/etc/boxer/config.json is not a conffile"
    [ "$(stat -c %a "$root/etc/boxer/config.json")" = 640 ] || fail "config.json is not 0640"
    grep -q '"listen_addr": "127.0.0.1:8080"' "$root/etc/boxer/config.json" ||
        fail "the default configuration does not listen on the loopback only"
    v=$(inroot /usr/bin/boxer --version)
    log "binary: $v"
    [[ $v == "boxer "* ]] || fail "boxer --version: $v"
    grep -qx 'ExecStartPre=/usr/bin/boxer check-host --config /etc/boxer/config.json' \
        "$root/lib/systemd/system/boxer.service" || fail "the unit does not run check-host"
    grep -qx 'ExecStart=/usr/bin/boxer --config /etc/boxer/config.json' \
        "$root/lib/systemd/system/boxer.service" || fail "the unit's ExecStart"
    [ -L "$root/etc/systemd/system/multi-user.target.wants/boxer.service" ] ||
        fail "boxer.service is not enabled"
    # Inside the chroot: its own systemd and units, /usr/bin/boxer, /bin/sh.
    out=$(inroot systemd-analyze verify --man=no /lib/systemd/system/boxer.service 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify said: $out"
    log "systemd-analyze verify: clean"
    # Nothing surprising made by the install: the state directory comes from
    # StateDirectory= when the service starts.
    [ ! -e "$root/var/lib/boxer" ] || fail "the install made /var/lib/boxer"
    exit 0
fi

# ------------------------------------------------------------------- outside
[ "$(id -u)" = 0 ] || fail "must run as root (mmdebstrap root mode)"
for tool in dpkg-buildpackage dh mmdebstrap git; do
    command -v "$tool" >/dev/null || fail "missing $tool (scripts/install-deps.sh)"
done
# shellcheck source=scripts/debian-mirror.sh
. "$REPO/scripts/debian-mirror.sh"

# Under /var, next to the apt cache: hard links to and from it.
WORK=$(mktemp -d /var/tmp/boxer-deb-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

# The tree as git sees it (tracked and new files, nothing ignored: no
# build output), built where `debian/rules clean` cannot touch the tree.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$REPO/$f" ] && printf '%s\0' "$f"; done |
    tar -C "$REPO" --null -T - -cf - | tar -C "$WORK/src" -xf -
log "building the package"
if ! (cd "$WORK/src" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -us -uc -b) \
    >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    fail "dpkg-buildpackage"
fi
DEB=$(echo "$WORK"/boxer_*_amd64.deb)
[ -f "$DEB" ] || fail "no .deb built"
log "built $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB) in $((SECONDS - START)) s"
if [ -n "${1:-}" ]; then
    mkdir -p "$1"
    cp "$DEB" "$1/"
fi

mapfile -t SOURCES < <(debian_sources "$SUITE" "$SUITE-updates" "$SUITE-security")
mapfile -t CACHE_OPTS < <(host_apt_cache_opts)
log "mmdebstrap $SUITE minbase + systemd + the package, from ${SOURCES[0]}"
T=$SECONDS
# /dev/null: the chroot is checked by the hook and thrown away.
# The hooks: the .deb reachable at its path inside the chroot too (dpkg
# runs there); merged /usr made directly (no usrmerge, which pulls in perl).
mmdebstrap --variant=minbase --include=systemd --include="$DEB" \
    --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "${CACHE_OPTS[@]}" \
    --customize-hook="\"$SELF\" --inside \"\$1\"" \
    "$SUITE" /dev/null "${SOURCES[@]}" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -n 40 "$WORK/mmdebstrap.log" >&2; fail "mmdebstrap or a check in the chroot"; }
grep '^check-deb:' "$WORK/mmdebstrap.log" >&2 || true
log "chroot install and checks in $((SECONDS - T)) s; all in $((SECONDS - START)) s: ok"
