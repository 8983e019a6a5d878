#!/usr/bin/env bash
# Installs everything Boxer needs to build, run and test on Debian 12.
# Idempotent: does nothing slow when all is present.
set -euo pipefail

PKGS=(build-essential clang libclang-rt-14-dev llvm pkg-config check musl-tools
      runsc skopeo umoci docker-registry mmdebstrap busybox-static
      curl jq bc wrk nginx-light nftables iproute2 valgrind mandoc haproxy
      python3 python3-pytest python3-pytest-asyncio python3-httpx python3-venv python3-yaml mypy
      chromium chromium-driver python3-selenium
      dpkg-dev debhelper)

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: must run as root (apt-get)" >&2
    exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# runsc from bookworm-backports has the systrap platform; bookworm's does not.
need_bpo=0
if ! runsc --version 2>/dev/null | grep -q 'version 0.0~2024'; then need_bpo=1; fi

need_kubectl=0
command -v kubectl >/dev/null 2>&1 || need_kubectl=1

if [ ${#missing[@]} -eq 0 ] && [ $need_bpo = 0 ] && [ $need_kubectl = 0 ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ ! -f /etc/apt/sources.list.d/bookworm-backports.list ] && \
   ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' \
        > /etc/apt/sources.list.d/bookworm-backports.list
fi
apt-get update -q || true
apt-get install -y -q --no-install-recommends "${PKGS[@]}"
if apt-cache madison runsc | grep -q bookworm-backports; then
    apt-get install -y -q -t bookworm-backports runsc
else
    echo "install-deps: bookworm-backports has no runsc; using bookworm's (ptrace platform only)" >&2
fi
# kubectl renders deploy/kubernetes (tests/integration/test_deploy.py): Debian's
# kubernetes-client unless some kubectl is there already (another package's
# would clash with it).
if [ $need_kubectl = 1 ]; then
    apt-get install -y -q --no-install-recommends kubernetes-client
fi
# Debian starts these services on install on some systems; Boxer's tests run
# their own instances on loopback with their own configs.
for s in nginx docker-registry haproxy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$s" >/dev/null 2>&1 || true; fi
done
