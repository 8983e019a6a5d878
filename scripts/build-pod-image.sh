#!/usr/bin/env bash
# Builds Boxer's Kubernetes pod image (deploy/kubernetes: image "boxer") as an
# OCI image layout, the way tests/images/build.sh builds the test images: a
# Debian bookworm root file system from Debian packages (mmdebstrap: runsc
# from bookworm-backports for the systrap platform, skopeo, umoci, nftables,
# e2fsprogs for box disks, ca-certificates), plus a second layer with the
# static Boxer binary (`make static`) and a default /etc/boxer/config.json
# (deploy/kubernetes/config.json; the StatefulSet mounts its ConfigMap over
# it), assembled with umoci.  No Docker daemon, no registry.
#
#   scripts/build-pod-image.sh [LAYOUT]    (default build/pod-image)
#
# LAYOUT is an OCI layout with the tags "latest" and the Boxer version;
# push it with e.g.
#   skopeo copy oci:build/pod-image:latest docker://REGISTRY/boxer:latest
# and set that name in deploy/kubernetes/kustomization.yaml (images:).
# Needs root (mmdebstrap root mode), mmdebstrap, umoci and a C toolchain
# for `make static` (when ./boxer-static is not there yet).  Nothing is
# cached but what the machine's apt cache holds.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
OUT=$(readlink -f "${1:-$REPO/build/pod-image}")
SUITE=bookworm
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'build-pod-image: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (mmdebstrap root mode)"; exit 1; }
for tool in mmdebstrap umoci tar make; do
    command -v "$tool" >/dev/null || { log "missing $tool"; exit 1; }
done
# shellcheck source=scripts/debian-mirror.sh
. "$REPO/scripts/debian-mirror.sh"

START=$SECONDS
VERSION=$(sed -n 's/^VERSION := //p' "$REPO/Makefile")
if [ ! -x "$REPO/boxer-static" ] || [ -n "$(find "$REPO" -maxdepth 1 -name '*.[ch]' -newer "$REPO/boxer-static")" ]; then
    log "make static"
    make -C "$REPO" -j2 static >&2
fi
# It must be static: nothing in the image provides Boxer's libraries.
if ! file -b "$REPO/boxer-static" 2>/dev/null | grep -q 'statically linked'; then
    ldd "$REPO/boxer-static" >/dev/null 2>&1 && { log "boxer-static is not static"; exit 1; }
fi

WORK=$(mktemp -d /var/tmp/boxer-pod-image-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mapfile -t SOURCES < <(debian_sources "$SUITE" "$SUITE-updates" "$SUITE-security" "$SUITE-backports")
mapfile -t CACHE_OPTS < <(host_apt_cache_opts)
log "base: mmdebstrap $SUITE essential + runsc skopeo umoci nftables (from ${SOURCES[0]})"
# essential (no apt) plus the tools Boxer runs; no docs, man pages or
# locales; device nodes left out (the pod gets the host's /dev).
# shellcheck disable=SC2016 # "$1" in the hook is the chroot, expanded by mmdebstrap
mmdebstrap --variant=essential \
    --include="runsc/$SUITE-backports,skopeo,umoci,nftables,e2fsprogs,ca-certificates" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "${CACHE_OPTS[@]}" \
    --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/cache/apt/archives/*.deb' \
    --skip=output/dev --format=tar \
    "$SUITE" "$WORK/base.tar" "${SOURCES[@]}" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -n 40 "$WORK/mmdebstrap.log" >&2; log "mmdebstrap failed"; exit 1; }

# Boxer's layer: the binary, its default configuration and its home.
mkdir -p "$WORK/boxer/usr/bin" "$WORK/boxer/etc/boxer" "$WORK/boxer/var/lib/boxer"
install -m 0755 "$REPO/boxer-static" "$WORK/boxer/usr/bin/boxer"
install -m 0640 "$REPO/deploy/kubernetes/config.json" "$WORK/boxer/etc/boxer/config.json"
chmod 0700 "$WORK/boxer/var/lib/boxer"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
    -C "$WORK/boxer" -cf "$WORK/boxer.tar" ./usr ./etc ./var

log "umoci: layout $OUT"
L="$WORK/layout"
umoci init --layout "$L"
umoci new --image "$L:$VERSION"
umoci raw add-layer --image "$L:$VERSION" \
    --history.created_by "boxer scripts/build-pod-image.sh: Debian $SUITE" "$WORK/base.tar"
umoci raw add-layer --image "$L:$VERSION" \
    --history.created_by "boxer scripts/build-pod-image.sh: boxer $VERSION" "$WORK/boxer.tar"
umoci config --image "$L:$VERSION" --os linux --architecture amd64 \
    --author "boxer scripts/build-pod-image.sh" \
    --config.entrypoint /usr/bin/boxer \
    --config.cmd=--config --config.cmd=/etc/boxer/config.json \
    --config.env "$PATH_ENV" --config.env HOME=/var/lib/boxer \
    --config.workingdir /var/lib/boxer --config.volume /var/lib/boxer \
    --config.exposedports 8080/tcp --config.stopsignal SIGTERM \
    --config.label org.opencontainers.image.title=boxer \
    --config.label "org.opencontainers.image.version=$VERSION"
umoci tag --image "$L:$VERSION" latest
umoci gc --layout "$L"
chmod -R a+rX "$L"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$L" "$OUT"
log "done in $((SECONDS - START)) s: $(du -sh "$OUT" | cut -f1), tags latest and $VERSION"
echo "$OUT"
