#!/usr/bin/env bash
# Runs every example against $BOXER_URL (default: ~/.boxer/boxer.sock, else http://127.0.0.1:8080) with
# the SDK from this source tree.  Exits non-zero when any example fails.
#
#   BOXER_URL=http://127.0.0.1:8080 examples/run-all.sh
#
# PYTHON selects the interpreter; by default the first of python3 and
# /usr/bin/python3 that can import httpx.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here/../sdk/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

py=${PYTHON:-}
if [ -z "$py" ]; then
    for cand in python3 /usr/bin/python3; do
        if "$cand" -c 'import httpx' >/dev/null 2>&1; then py=$cand; break; fi
    done
fi
if [ -z "$py" ]; then
    echo "run-all: no python3 with httpx found (set PYTHON=...)" >&2
    exit 1
fi

echo "run-all: examples against ${BOXER_URL:-the default server} with $py"
passed=0
failed=0
for ex in hello-world upload-and-run batch-eval agent-box; do
    echo "=== $ex"
    if "$py" "$here/$ex/main.py"; then
        echo "=== $ex: ok"
        passed=$((passed + 1))
    else
        echo "=== $ex: FAILED (exit $?)"
        failed=$((failed + 1))
    fi
done
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
