#!/usr/bin/env bash
# Pushes the test images (built first by build.sh when the cache lacks them)
# to a plain-http registry on loopback:
#
#   tests/images/push.sh [CACHE_DIR] REGISTRY       e.g. 127.0.0.1:5000
#
#   REGISTRY/library/busybox:latest
#   REGISTRY/library/python:3.12-slim
set -euo pipefail

if [ $# -eq 1 ]; then
    CACHE_DIR=/var/cache/boxer-test-images
    REGISTRY=$1
elif [ $# -eq 2 ]; then
    CACHE_DIR=$1
    REGISTRY=$2
else
    echo "usage: $0 [CACHE_DIR] REGISTRY" >&2
    exit 2
fi
case "$REGISTRY" in
*/* | '' | -*)
    echo "push.sh: REGISTRY is host:port, e.g. 127.0.0.1:5000" >&2
    exit 2
    ;;
esac

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
IMAGES=$("$HERE/build.sh" "$CACHE_DIR")

# oci layout:tag -> repository:tag in the registry
push() {
    # --dest-tls-verify=false: the test registry speaks plain http on loopback.
    # --insecure-policy: these are our own images; a host without
    # /etc/containers/policy.json must still be able to push them.
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
        "oci:$IMAGES/$1" "docker://$REGISTRY/$2" >&2
    echo "pushed $REGISTRY/$2" >&2
}
push busybox:latest library/busybox:latest
push python:3.12-slim library/python:3.12-slim
