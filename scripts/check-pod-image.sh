#!/usr/bin/env bash
# CI's test of the pod image: builds it (scripts/build-pod-image.sh) into a
# temporary layout and checks its configuration (entrypoint, command, env,
# port, tags) against what deploy/kubernetes expects, then unpacks it and
# runs, chrooted into its root file system, `boxer --version` and the
# versions of the tools Boxer needs there (runsc with systrap, skopeo,
# umoci, nft, mkfs.ext4).  Needs root, jq and the build script's tools.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SELF")")
VERSION=$(sed -n 's/^VERSION := //p' "$REPO/Makefile")

log() { printf 'check-pod-image: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root"
command -v jq >/dev/null || fail "missing jq"

WORK=$(mktemp -d /var/tmp/boxer-pod-check-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
L=$(bash "$REPO/scripts/build-pod-image.sh" "$WORK/layout")

# The manifest and config of a tag, from the layout's own JSON.
blob() { cat "$L/blobs/${1%%:*}/${1#*:}"; }
tags=$(jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"]' "$L/index.json" | sort | tr '\n' ' ')
[ "$tags" = "$VERSION latest " ] || fail "tags: $tags"
manifest=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "latest") | .digest' "$L/index.json")
cfg=$(blob "$(blob "$manifest" | jq -r .config.digest)")
layers=$(blob "$manifest" | jq '.layers | length')
[ "$layers" = 2 ] || fail "$layers layers (Debian, then Boxer)"
want() {  # want JQ-EXPR EXPECTED-JSON
    local got
    got=$(jq -c "$1" <<<"$cfg")
    [ "$got" = "$2" ] || fail "config $1 is $got, not $2"
}
want .architecture '"amd64"'
want .config.Entrypoint '["/usr/bin/boxer"]'
want .config.Cmd '["--config","/etc/boxer/config.json"]'
want '.config.Env | map(select(startswith("PATH=") or startswith("HOME=")))' \
    '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOME=/var/lib/boxer"]'
want '.config.ExposedPorts | keys' '["8080/tcp"]'
want .config.StopSignal '"SIGTERM"'
want .config.WorkingDir '"/var/lib/boxer"'
# what deploy/kubernetes says of the pod: the image's command and home
grep -q 'args: \["--config", "/etc/boxer/config.json"\]' "$REPO/deploy/kubernetes/statefulset.yaml" ||
    fail "statefulset.yaml's args differ from the image's command"
grep -q 'mountPath: /var/lib/boxer' "$REPO/deploy/kubernetes/statefulset.yaml" ||
    fail "statefulset.yaml's home differs from the image's"
grep -A2 -- '- name: boxer$' "$REPO/deploy/kubernetes/kustomization.yaml" | grep -q 'newName: boxer' ||
    fail "kustomization.yaml does not name the image boxer"
log "config: entrypoint, command, env, port, stop signal, tags ok ($layers layers)"

umoci unpack --image "$L:latest" "$WORK/bundle" >/dev/null
R=$WORK/bundle/rootfs
# chrooted, with a /proc (runsc reads it) that goes with the private mount
# namespace, so nothing stays mounted whatever happens
inimg() {
    # shellcheck disable=SC2016 # expanded by the inner sh
    unshare --mount --propagation private -- \
        sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$R" "$@"
}
v=$(inimg /usr/bin/boxer --version)
[ "$v" = "boxer $VERSION" ] || fail "boxer --version in the image: $v"
[ "$(stat -c %a "$R/etc/boxer/config.json")" = 640 ] || fail "config.json mode"
jq -e '.home == "/var/lib/boxer" and .listen_addr == ":8080"' "$R/etc/boxer/config.json" >/dev/null ||
    fail "the image's default config"
# whole outputs, then their first line (head would end the pipe early)
r=$(inimg runsc --version)
r=${r%%$'\n'*}
[[ $r == "runsc version 0.0~2024"* ]] || fail "runsc in the image is $r (systrap needs bookworm-backports')"
tools="$v; $r"
for t in "skopeo --version" "umoci --version" "nft --version" "mkfs.ext4 -V"; do
    # shellcheck disable=SC2086 # the tool and its option
    out=$(inimg $t 2>&1) || fail "$t in the image: $out"
    out=${out%%$'\n'*}
    tools="$tools; $out"
done
[ -e "$R/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA certificates"
log "runs in the image: $tools"
log "ok in $((SECONDS - START)) s, layout $(du -sh "$L" | cut -f1)"
