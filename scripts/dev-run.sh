#!/usr/bin/env bash
# `make run`: everything a fresh Debian 12 machine needs to serve requests,
# offline.  Installs dependencies, builds, starts a local registry on
# 127.0.0.1:5000 holding the test images (busybox, python:3.12-slim, built
# from Debian packages) and runs Boxer in the foreground with config.dev.json,
# which uses that registry as its docker.io mirror.  Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
make -s boxer
REG_DIR=${BOXER_DEV_REGISTRY_DIR:-$HOME/.boxer-dev-registry}
if ! bash tests/registry.sh status "$REG_DIR" 5000 2>/dev/null; then
    bash tests/registry.sh start "$REG_DIR" 5000
fi
bash tests/images/push.sh 127.0.0.1:5000
trap 'bash tests/registry.sh stop "$REG_DIR" 5000' EXIT
./boxer --config config.dev.json
