#!/usr/bin/env bash
# Builds Boxer's test images as OCI image layouts, without a docker daemon
# and without any registry on the internet: everything comes from Debian
# packages (busybox-static on this host, bookworm from the configured Debian
# mirror through mmdebstrap) and is assembled with umoci.
#
#   tests/images/build.sh [CACHE_DIR]      (default /var/cache/boxer-test-images)
#
# Produces, under CACHE_DIR/<key>/ where <key> is a hash of this script (so
# editing the script rebuilds, and a second run with the same script is a
# no-op):
#   busybox/   OCI layout, tag "latest"     -> push as library/busybox:latest
#   python/    OCI layout, tag "3.12-slim"  -> push as library/python:3.12-slim
# The python image carries Debian bookworm's python3 (3.11) and pytest: the
# tag only mirrors the name the product's users send.
#
# Prints the directory holding the layouts as the only line on stdout;
# progress goes to stderr.  Needs root (mmdebstrap in root mode) and the
# packages mmdebstrap, umoci, busybox-static.
set -euo pipefail

CACHE_DIR=${1:-/var/cache/boxer-test-images}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
KEY=$(sha256sum "$SELF" | cut -c1-16)
OUT="$CACHE_DIR/$KEY"
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SUITE=bookworm

log() { printf 'build.sh: %s\n' "$*" >&2; }

# Fast path: no lock, no tools, nothing but a stat.
if [ -f "$OUT/done" ]; then
    echo "$OUT"
    exit 0
fi

for tool in umoci mmdebstrap tar flock; do
    command -v "$tool" >/dev/null || { log "missing $tool"; exit 1; }
done
[ -x /bin/busybox ] || { log "missing /bin/busybox (package busybox-static)"; exit 1; }
[ "$(id -u)" = 0 ] || { log "must run as root (mmdebstrap root mode)"; exit 1; }

mkdir -p "$CACHE_DIR"
# Two test runs starting at once must not build twice into the same place.
exec 9>"$CACHE_DIR/.lock"
flock 9
if [ -f "$OUT/done" ]; then
    echo "$OUT"
    exit 0
fi

# Work next to the cache so the final rename is atomic (same filesystem).
WORK=$(mktemp -d "$CACHE_DIR/.build-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)

# ---------------------------------------------------------------- mirror
# The Debian archive this machine reaches, taken from its apt sources
# (one-line and deb822 formats).  $1: suite to look for, e.g. "bookworm".
apt_uri_for_suite() {
    local want=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$want" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # A stanza ends at a blank line; print its URI when its Suites hold s.
        awk -v s="$want" '
            function flush() { if (ok && uri != "") { print uri; exit } ok = 0; uri = "" }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { flush() }' "$f"
    done
}
MIRROR=${BOXER_DEBIAN_MIRROR:-$(apt_uri_for_suite "$SUITE" | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${BOXER_DEBIAN_SECURITY:-$(apt_uri_for_suite "$SUITE-security" | head -n1)}
log "mirror $MIRROR${SECURITY:+, security $SECURITY}"

# Makes an OCI layout $1 with tag $2 from the uncompressed layer tarball $3,
# then applies the remaining args as `umoci config` options.
make_image() {
    local layout=$1 tag=$2 layer=$3
    shift 3
    umoci init --layout "$layout"
    umoci new --image "$layout:$tag"
    umoci raw add-layer --image "$layout:$tag" \
        --history.created_by "boxer tests/images/build.sh" "$layer"
    umoci config --image "$layout:$tag" --os linux --architecture amd64 \
        --author "boxer tests/images/build.sh" "$@"
    umoci gc --layout "$layout"
}

# ---------------------------------------------------------------- busybox
log "busybox: rootfs"
RF="$WORK/busybox-rootfs"
mkdir -p "$RF"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,tmp,proc,sys,dev,home}
chmod 1777 "$RF/tmp"
chmod 0700 "$RF/root"
install -m 0755 /bin/busybox "$RF/bin/busybox"
# Every applet at its canonical place (bin/sh, usr/bin/env, ...), so shebangs
# like #!/usr/bin/env work.  The list comes from the binary itself.
/bin/busybox --list-full | while read -r applet; do
    case "$applet" in
    "" | linuxrc | */busybox | /* | *..*) continue ;;
    esac
    [ -e "$RF/$applet" ] || [ -L "$RF/$applet" ] || ln -s /bin/busybox "$RF/$applet"
done
cat >"$RF/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$RF/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$RF/etc/nsswitch.conf"
chmod 0644 "$RF"/etc/*
# Fixed owner, order and times: the layer digest depends only on the inputs.
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
    -C "$RF" -cf "$WORK/busybox.tar" .
make_image "$WORK/img/busybox" latest "$WORK/busybox.tar" \
    --config.env "$PATH_ENV" --config.cmd sh --config.workingdir /
rm -rf "$RF" "$WORK/busybox.tar"

# ---------------------------------------------------------------- python
log "python: mmdebstrap $SUITE (this takes a few minutes)"
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
[ -n "$SECURITY" ] && SOURCES+=("deb $SECURITY $SUITE-security main")
# essential + python3 + pytest: no apt, no docs, no man pages, no locales;
# mmdebstrap removes apt lists and caches itself.  Device nodes are left out
# of the layer (the runtime mounts its own /dev).  The merged-usr hook makes
# the /bin -> usr/bin links itself and installs usr-is-merged, so apt does not
# pick usrmerge, which would drag in 50 MB of perl.
# shellcheck disable=SC2016 # "$1" in the hook is the chroot, expanded by mmdebstrap
mmdebstrap --variant=essential --include=python3,python3-pytest \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    --skip=output/dev --format=tar \
    "$SUITE" "$WORK/python.tar" "${SOURCES[@]}" >&2
make_image "$WORK/img/python" 3.12-slim "$WORK/python.tar" \
    --config.env "$PATH_ENV" --config.cmd python3 --config.workingdir /
rm -f "$WORK/python.tar"

# ---------------------------------------------------------------- publish
touch "$WORK/img/done"
# umoci writes blobs 0600; tests that run as another user may read them.
chmod -R a+rX "$WORK/img"
rm -rf "$OUT"
mv "$WORK/img" "$OUT"
# Older builds (from earlier versions of this script) are dead weight.
for d in "$CACHE_DIR"/*/; do
    d=${d%/}
    [ "$d" = "$OUT" ] || [ ! -f "$d/done" ] || rm -rf "$d"
done
log "done in $(($(date +%s) - START))s: $(du -sh "$OUT/busybox" | cut -f1) busybox," \
    "$(du -sh "$OUT/python" | cut -f1) python"
echo "$OUT"
