#!/usr/bin/env bash
# A private Docker registry for tests: Debian's docker-registry on loopback,
# plain http, no auth, filesystem storage, everything under DIR.
#
#   tests/registry.sh start  DIR PORT   start; returns once /v2/ answers
#   tests/registry.sh stop   DIR PORT   stop; returns once the process is gone
#   tests/registry.sh status DIR PORT   exit 0 when running and answering
#
# Files under DIR: config.yml, data/ (the blobs), registry.log, registry.pid.
# `stop` kills only the process named in DIR/registry.pid, and only when
# that process still is a docker-registry serving DIR's config (a pid may
# have been reused since).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR PORT" >&2
    exit 2
}
[ $# -eq 3 ] || usage
CMD=$1
DIR=$2
PORT=$3
case "$PORT" in
'' | *[!0-9]*) usage ;;
esac
if [ "${#PORT}" -gt 5 ] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then usage; fi

BIN=${DOCKER_REGISTRY_BIN:-/usr/bin/docker-registry}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF="$DIR/config.yml"
PIDFILE="$DIR/registry.pid"
LOG="$DIR/registry.log"
URL="http://127.0.0.1:$PORT/v2/"

log() { printf 'registry.sh: %s\n' "$*" >&2; }

# Prints the pid from the pid file when that process is our registry.
our_pid() {
    local pid
    [ -f "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE")
    case "$pid" in
    '' | *[!0-9]*) return 1 ;;
    esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    # cmdline is NUL-separated: "<bin>\0serve\0<conf>\0".
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CONF" || return 1
    # A zombie (exited, not yet reaped by its parent) is not running.
    [ "$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" != Z ] || return 1
    echo "$pid"
}

answers() {
    curl -fsS -o /dev/null --max-time 2 "$URL" 2>/dev/null
}

start() {
    local pid
    if pid=$(our_pid); then
        answers && { log "already running (pid $pid)"; return 0; }
        log "pid $pid runs but $URL does not answer; restarting"
        stop
    fi
    if answers; then
        log "something else already answers on $URL"
        return 1
    fi
    mkdir -p "$DIR/data"
    local secret
    secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    cat >"$CONF" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    # A clean environment: the registry reads REGISTRY_* variables as config
    # overrides, and none of the caller's may leak in.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$BIN" serve "$CONF" \
        </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    for _ in $(seq 1 100); do
        if answers; then
            log "running (pid $pid) on $URL"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "docker-registry exited; log follows"
            tail -n 20 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            return 1
        fi
        sleep 0.1
    done
    log "no answer from $URL after 10s; stopping it"
    tail -n 20 "$LOG" >&2 || true
    stop
    return 1
}

gone() {
    ! our_pid >/dev/null
}

stop() {
    local pid
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    # The registry is not our child here (another invocation started it), so
    # poll /proc instead of `wait`.
    for _ in $(seq 1 100); do
        gone && break
        sleep 0.1
    done
    if ! gone; then
        log "pid $pid ignored SIGTERM for 10s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            gone && break
            sleep 0.1
        done
    fi
    if ! gone; then
        log "pid $pid is still there"
        return 1
    fi
    rm -f "$PIDFILE"
}

status() {
    local pid
    if pid=$(our_pid) && answers; then
        echo "running pid $pid $URL"
        return 0
    fi
    echo "stopped"
    return 3
}

case "$CMD" in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
