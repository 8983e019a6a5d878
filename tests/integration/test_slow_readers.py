"""Answers held by slow readers (issue 11, item 8).

A /run answer is streamed from the run's captured output as the socket
drains, not built whole (escaping makes control bytes six times their size:
2 MiB of \\x01 is a 12 MiB answer).  Clients that never read cost the server
little beyond the captured output itself, and are dropped after
write_timeout_ms; one that reads too slowly is dropped by the minimum send
rate."""

import json
import re
import socket
import time

import httpx

import hardening as H

OUT_BYTES = 2 << 20          # stdout of each run
CLIENTS = 50
WRITE_MS = 6000 * H.SLOW
# busybox: OUT_BYTES bytes of \x01, each escaped as \u0001 in the answer.
CMD = ["sh", "-c", "head -c %d /dev/zero | tr '\\000' '\\001'" % OUT_BYTES]
BODY = json.dumps({"image": "busybox", "cmd": CMD}).encode()
REQUEST = (b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY


def metric(url, name):
    text = httpx.get(url + "/metrics", timeout=10 * H.SLOW).text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1))


def non_reader(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the kernel holds little on our side either.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(REQUEST)
    return s


def wait_runs_done(url, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric(url, "boxer_runs_in_flight") == 0 and metric(url, "boxer_runs_queued") == 0:
            return
        time.sleep(0.5)
    raise AssertionError("runs did not finish in %ss" % timeout)


def dropped(sock):
    """True when the server reset the connection, seen without reading (a
    read would make the answer progress)."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    return state != 1  # TCP_ESTABLISHED


def test_fifty_non_readers_keep_rss_flat(make_server):
    H.raise_nofile(2000)
    srv = make_server(config={"write_timeout_ms": WRITE_MS, "max_concurrent_runs": 4,
                              "output_limit_bytes": 4 << 20})
    pid = srv.proc.pid
    # Warm up: the image is pulled and one full answer goes out, so the
    # baseline includes first-use allocations.
    r = httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": CMD}, timeout=120)
    assert r.status_code == 200 and r.json()["stdout"] == "\x01" * OUT_BYTES
    time.sleep(1.5)
    base = H.rss_kb(pid)
    base_fds = H.fd_count(pid)
    socks = [non_reader(srv.port) for _ in range(CLIENTS)]
    try:
        wait_runs_done(srv.url, 300 * H.SLOW)
        # Every answer is now stuck behind a client that does not read.
        # What may stay: the captured stdout of each run (until its answer
        # is delivered or given up) plus a few MiB; building the answers
        # whole would cost 6x the output again, per client.
        grown_kb = H.rss_kb(pid) - base
        outputs_kb = CLIENTS * OUT_BYTES // 1024
        print("RSS grew %d kB with %d unread answers of %d kB of output each" %
              (grown_kb, CLIENTS, OUT_BYTES // 1024))
        if H.CHECK_RSS:
            assert grown_kb < outputs_kb + 8 * 1024, \
                "RSS grew %d kB for %d kB of run output" % (grown_kb, outputs_kb)
        # Meanwhile a normal client gets its whole answer, byte for byte.
        r = httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": CMD}, timeout=120)
        assert r.status_code == 200
        assert r.json()["stdout"] == "\x01" * OUT_BYTES
        assert len(r.content) == len(r.text.encode()) and r.headers["content-length"] == \
            str(len(r.content))
        # The non-readers are dropped once write_timeout_ms passes without
        # progress, and their memory goes with them.
        deadline = time.time() + WRITE_MS / 1000 + 10 * H.SLOW
        left = list(socks)
        while left and time.time() < deadline:
            left = [s for s in left if not dropped(s)]
            time.sleep(0.2)
        assert not left, "%d non-reading clients still connected" % len(left)
        assert H.settle_fds(pid, base_fds) <= base_fds
        time.sleep(1.5)
        if H.CHECK_RSS:
            assert H.rss_kb(pid) - base < 8 * 1024, "RSS did not come back down"
    finally:
        for s in socks:
            s.close()
    srv.stop()


def test_trickling_reader_is_dropped(make_server):
    srv = make_server(config={"write_timeout_ms": 2000 * H.SLOW})
    r = httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": CMD}, timeout=120)
    assert r.status_code == 200
    s = non_reader(srv.port)
    try:
        # Wait for the head of the answer, then read 100 bytes every 0.25 s
        # (400 bytes/s), always just inside any idle timeout.
        s.settimeout(60)
        head = s.recv(100)
        assert head.startswith(b"HTTP/1.1 200"), head
        t0 = time.time()
        got = len(head)
        s.settimeout(1)
        closed = False
        while time.time() - t0 < 40 * H.SLOW:
            time.sleep(0.25)
            try:
                chunk = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            except socket.timeout:
                continue
            if not chunk:
                closed = True
                break
            got += len(chunk)
        took = time.time() - t0
    finally:
        s.close()
    # 12 MiB at 400 bytes/s would take nine hours; the server gives up after
    # write_timeout_ms plus what the bytes taken (read, or queued on our side
    # of the connection, some tens of KiB) earn at 4096 bytes/s.
    assert closed, "trickling reader still connected after %.1fs (%d bytes)" % (took, got)
    assert took < 25 * H.SLOW
    srv.stop()


def test_answer_buffer_cap_makes_answers_wait_not_fail(make_server):
    # Room for two pieces in all: the non-readers take it, the reader's
    # answer waits (without timing out) until they are dropped, then
    # arrives whole.
    srv = make_server(config={"write_timeout_ms": 3000 * H.SLOW,
                              "answer_buffer_max_bytes": 65536})
    r = httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": CMD}, timeout=120)
    assert r.status_code == 200 and r.json()["stdout"] == "\x01" * OUT_BYTES
    socks = [non_reader(srv.port) for _ in range(3)]
    try:
        wait_runs_done(srv.url, 120 * H.SLOW)
        time.sleep(0.5)
        t0 = time.time()
        r = httpx.post(srv.url + "/run", json={"image": "busybox", "cmd": CMD}, timeout=120)
        assert r.status_code == 200
        assert r.json()["stdout"] == "\x01" * OUT_BYTES
        assert time.time() - t0 < 30 * H.SLOW
        deadline = time.time() + 3 * H.SLOW + 15
        left = list(socks)
        while left and time.time() < deadline:
            left = [s for s in left if not dropped(s)]
            time.sleep(0.2)
        assert not left, "%d non-reading clients still connected" % len(left)
    finally:
        for s in socks:
            s.close()
    srv.stop()
