"""Hostile clients: raw sockets against the real server.  Each attack gets its
4xx or a closed connection, a well-behaved client (the canary) keeps being
served throughout, and afterwards the server's descriptor count and resident
memory are back at their baseline (read from /proc)."""

import json
import os
import selectors
import shutil
import socket
import struct
import tempfile
import threading
import time

import httpx
import pytest

import boxer_server
import hardening as H
from rawhttp import open_conn, request

HEADER_MS = 2000
BODY_MS = 2000
# Resident memory may settle a little above its first reading (allocator
# bookkeeping, the loop's fd table grown for 5,000 descriptors); a leak of
# per-connection buffers is far above this.
RSS_SLACK_KB = 3 * 1024


def _limit_server():
    H.server_nofile(16384)()


@pytest.fixture(scope="module")
def srv():
    H.raise_nofile(12000)
    tmp = tempfile.mkdtemp(prefix="boxer-hostile-")
    s = boxer_server.Server(tmp, config={"header_timeout_ms": HEADER_MS,
                                         "body_timeout_ms": BODY_MS,
                                         "keepalive_timeout_ms": 5000,
                                         # test_5000_connections_held comes from one address.
                                         "max_connections_per_ip": 10000,
                                         "upload_limit_bytes": 8 << 20,
                                         # keeps the /run body limit at 4 MiB
                                         # + 2 KiB: the oversized bodies below
                                         # count on it
                                         "stdin_limit_bytes": 1024,
                                         "max_request_body_bytes": (4 << 20) + 2048,
                                         # Nothing here should pull; if a bug
                                         # let a request through, the pull
                                         # goes to a dead loopback port.
                                         "registry_mirrors": {"docker.io": "http://127.0.0.1:9"},
                                         "insecure_registries": ["127.0.0.1:9"]},
                            preexec=_limit_server)
    s.start()
    # Warm up every path the tests use, so first-use allocations are part of
    # the baseline.
    with httpx.Client(timeout=10) as c:
        for _ in range(20):
            c.get(s.url + "/healthz")
            c.post(s.url + "/files", data={"path": "warm/up.bin"},
                   files={"file": ("f", os.urandom(100000))})
            c.get(s.url + "/files", params={"path": "warm/up.bin"})
            c.post(s.url + "/run", content=b"{bad json", headers={"Content-Type": "application/json"})
    time.sleep(1.5)
    s.base_fds = H.fd_count(s.proc.pid)
    s.base_rss = H.rss_kb(s.proc.pid)
    yield s
    try:
        assert s.proc.poll() is None, "server died:\n" + s.log_text()[-3000:]
        s.stop()
    finally:
        H.unmount_under(s.home)
        H.remove_cgroup_bases(s.home)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def guard(srv):
    """Runs the canary during the test; afterwards the server must be alive,
    back at its baseline of descriptors and memory, and leave no temp file."""
    with H.Canary(srv.url, every=0.1) as canary:
        yield srv
    assert srv.proc.poll() is None, "server died:\n" + srv.log_text()[-3000:]
    canary.check(max_latency=2.0 * H.SLOW)
    pid = srv.proc.pid
    n = H.settle_fds(pid, srv.base_fds, timeout=HEADER_MS / 1000 + 10 * H.SLOW)
    assert n == srv.base_fds, "server holds %d descriptors, baseline %d" % (n, srv.base_fds)
    if H.CHECK_RSS:
        deadline = time.time() + 5
        while H.rss_kb(pid) > srv.base_rss + RSS_SLACK_KB and time.time() < deadline:
            time.sleep(0.25)
        rss = H.rss_kb(pid)
        assert rss <= srv.base_rss + RSS_SLACK_KB, \
            "server RSS %d kB, baseline %d kB" % (rss, srv.base_rss)
    assert H.tmp_entries(srv.home) == []


def healthy(url):
    r = httpx.get(url + "/healthz", timeout=5)
    return r.status_code == 200


def multipart(path, data, boundary=b"XyZzy"):
    return (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n" +
            path + b"\r\n--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data +
            b"\r\n--" + boundary + b"--\r\n")


def upload_head(n, boundary=b"XyZzy"):
    return (b"POST /files HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=" +
            boundary + b"\r\nContent-Length: %d\r\n\r\n" % n)


def post_run_raw(url, body, extra=b""):
    """POST /run; the server may answer (413) and close before it read the
    whole body, so a failed send still reads the answer."""
    c = open_conn(url)
    try:
        try:
            c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n" % len(body) + extra +
                   b"\r\n" + body)
        except OSError:
            pass
        return c.response()
    finally:
        c.close()


def answer_or_close(c, timeout=10.0):
    """The status of the server's answer, or None when it closed (or reset)
    the connection without one."""
    c.sock.settimeout(timeout)
    try:
        return c.response()[0]
    except (ConnectionError, OSError):
        return None


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- many connections ----

def test_5000_connections_held(guard):
    srv = guard
    pid = srv.proc.pid
    # Half of them idle, half with a request head that never ends.
    socks = H.hold_connections(srv.port, 5000, lambda i: (
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"p" * 200 if i % 2 else None))
    try:
        deadline = time.time() + 5
        while H.fd_count(pid) < srv.base_fds + 5000 and time.time() < deadline:
            time.sleep(0.05)
        assert H.fd_count(pid) >= srv.base_fds + 5000, "server did not accept them all"
        # While they are held, real work still gets done, quickly.
        t0 = time.time()
        data = os.urandom(300000)
        r = httpx.post(srv.url + "/files", data={"path": "held/f.bin"},
                       files={"file": ("f", data)}, timeout=10)
        assert r.status_code == 200, r.text
        assert httpx.get(srv.url + "/files", params={"path": "held/f.bin"},
                         timeout=10).content == data
        assert time.time() - t0 < 3 * H.SLOW
        # Idle connections hold no input buffer: the whole flood costs
        # little more than the partial heads it carries.
        grown = H.rss_kb(pid) - srv.base_rss
        assert grown < 40 * 1024 or not H.CHECK_RSS, "5,000 connections cost %d kB" % grown
    finally:
        for s in socks:
            s.close()


def test_slowloris_headers(guard):
    srv = guard
    sel = selectors.DefaultSelector()
    socks = H.hold_connections(srv.port, 200, lambda i: b"GET /healthz HTTP/1.1\r\n")
    t0 = time.time()
    closed_at = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    try:
        # One more header byte every 250 ms on every connection: each byte
        # is well inside any idle timeout, the head never completes.
        while len(closed_at) < len(socks) and time.time() - t0 < HEADER_MS / 1000 + 8 * H.SLOW:
            for s in socks:
                if s in closed_at:
                    continue
                try:
                    s.send(b"X")
                except OSError:
                    closed_at[s] = time.time() - t0
            for key, _ in sel.select(timeout=0.25):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data and not data.startswith(b"HTTP/1.1 408"):
                    pytest.fail("unexpected answer %r" % data[:80])
                if not data:
                    closed_at[s] = time.time() - t0
                    sel.unregister(s)
        assert len(closed_at) == len(socks), "%d slowloris connections still open" % (
            len(socks) - len(closed_at))
        assert max(closed_at.values()) < HEADER_MS / 1000 + 4 * H.SLOW
    finally:
        sel.close()
        for s in socks:
            s.close()


@pytest.mark.parametrize("route", ["run", "files"])
def test_slowloris_body(guard, route):
    srv = guard
    conns = []
    for i in range(50):
        c = open_conn(srv.url)
        if route == "run":
            c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        else:
            c.send(upload_head(100000) + multipart(b"slow/%d" % i, b"")[:120])
        conns.append(c)
    t0 = time.time()
    # A byte every 500 ms: never idle for body_timeout_ms, but far below any
    # sane rate.
    done = {}
    while len(done) < len(conns) and time.time() - t0 < BODY_MS / 1000 + 8 * H.SLOW:
        for c in conns:
            if c in done:
                continue
            try:
                c.sock.send(b" ")
            except OSError:
                done[c] = None
        time.sleep(0.5)
        for c in conns:
            if c in done:
                continue
            c.sock.setblocking(False)
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            finally:
                c.sock.setblocking(True)
            done[c] = data
    try:
        assert len(done) == len(conns), "%d slow bodies still accepted after %.1fs" % (
            len(conns) - len(done), time.time() - t0)
        for data in done.values():
            assert data is None or data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
        assert any(d and d.startswith(b"HTTP/1.1 408") for d in done.values())
    finally:
        for c in conns:
            c.close()
    for i in range(50):
        assert httpx.get(srv.url + "/files", params={"path": "slow/%d" % i}).status_code == 404


def test_idle_body_timeout_then_fast_upload_still_fine(guard):
    """The rate rule does not hurt a client that sends a large body fast
    after a pause shorter than the idle timeout."""
    srv = guard
    data = os.urandom(3 << 20)
    body = multipart(b"pause/f.bin", data)
    c = open_conn(srv.url)
    c.send(upload_head(len(body)) + body[:1000])
    time.sleep(BODY_MS / 1000 * 0.6)
    c.send(body[1000:])
    status, _, resp = c.response()
    c.close()
    assert status == 200, resp
    assert httpx.get(srv.url + "/files", params={"path": "pause/f.bin"}).content == data


# ---- garbage and pipelining ----

def test_pipelined_garbage(guard):
    srv = guard
    c = open_conn(srv.url)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3 + b"\x16\x03\x01\x02\x00garbage\r\n\r\n"
           + b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for _ in range(3):
        assert c.response()[0] == 200
    status, headers, _ = c.response()
    assert status == 400 and headers.get("connection") == "close"
    assert c.closed_by_peer(5)
    c.close()
    for junk in (b"\r\n" * 10000, os.urandom(100000), b"GET " * 5000, b"\x00" * 70000,
                 b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" + os.urandom(50000)):
        c = open_conn(srv.url)
        try:
            c.send(junk)
        except OSError:
            pass  # the server may close before it has read it all
        statuses = []
        while True:
            s = answer_or_close(c, 5)
            if s is None:
                break
            statuses.append(s)
        c.close()
        assert statuses == [] or all(s in (200, 400, 414, 431) for s in statuses)
        assert not statuses or statuses[-1] != 200, (junk[:20], statuses)


def test_many_pipelined_requests(guard):
    srv = guard
    n = 5000
    c = open_conn(srv.url, timeout=30)
    got = []

    def reader():
        for _ in range(n):
            got.append(c.response()[0])

    t = threading.Thread(target=reader)
    t.start()
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * n)
    t.join(60)
    c.close()
    assert len(got) == n and set(got) == {200}


def test_pipelined_requests_client_never_reads(guard):
    """A client that pipelines and never reads stalls only itself."""
    srv = guard
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setblocking(False)
    sent = 0
    chunk = b"GET /swagger/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n" * 100
    t0 = time.time()
    while time.time() - t0 < 3:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
    assert healthy(srv.url)
    s.close()


# ---- oversized everything ----

def test_oversized_request_line_and_headers(guard):
    srv = guard
    assert request(srv.url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")[0] == 414
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    assert request(srv.url, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")[0] == 431
    # Megabytes of head: the server answers (or closes) without buffering it.
    for raw in (b"GET /" + b"a" * (4 << 20), b"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + b"v" * (4 << 20)):
        c = open_conn(srv.url)
        try:
            c.send(raw)
        except OSError:
            pass
        assert answer_or_close(c) in (None, 414, 431)
        assert c.closed_by_peer(5)
        c.close()


def test_oversized_bodies(guard):
    srv = guard
    # Announced too large: refused before any byte of it is read.
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n")
    assert c.response()[0] == 413
    c.close()
    c = open_conn(srv.url)
    c.send(upload_head(1 << 40))
    assert c.response()[0] == 413
    c.close()
    # Chunked, so the size is only known on the way: cut off at the limit.
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    status = None
    try:
        for _ in range(80):
            c.send(b"10000\r\n" + b" " * 0x10000 + b"\r\n")
    except OSError:
        pass
    status = answer_or_close(c)
    assert status in (None, 413)
    c.close()
    # An upload over upload_limit_bytes, sent in full.
    data = b"x" * ((8 << 20) + 1)
    r = httpx.post(srv.url + "/files", data={"path": "big/over"}, files={"file": ("f", data)},
                   timeout=30)
    assert r.status_code == 413
    assert httpx.get(srv.url + "/files", params={"path": "big/over"}).status_code == 404


@pytest.mark.parametrize("body,status", [
    (b"[" * 100000 + b"]" * 100000, 400),
    (b'{"image":' * 50000 + b'1' + b'}' * 50000, 400),
    (b'{"image":"' + b"a" * (3 << 20) + b'","cmd":["x"]}', 400),
    (b'{"image":"' + b"a" * (5 << 20) + b'","cmd":["x"]}', 413),
    (b'{"image":"busybox","cmd":["x"],"limits":{"memory_mb":' + b"9" * (3 << 20) + b'}}', 400),
    (b'{"image":"busybox","cmd":["x"],"limits":{"memory_mb":1e999}}', 400),
    # Underflows to 0 (= the default): valid JSON, so the bad image decides.
    (b'{"image":"Bad","cmd":["x"],"limits":{"memory_mb":-1e-999}}', 400),
    (b'{"image":"Bad","cmd":["x"],"limits":{"cpu_cores":' + b"0." + b"0" * 100000 + b"1}}", 400),
    (b'{"image":"busybox","cmd":["x"],"env":["' + b"K=" + b"v" * (3 << 20) + b'"]}', 400),
    (b'{"' + b"k" * (3 << 20) + b'":1}', 400),
], ids=lambda v: None if isinstance(v, int) else "%dB-%s" % (len(v), v[:12].decode("latin-1")))
def test_oversized_json(guard, body, status):
    srv = guard
    got, _, resp = post_run_raw(srv.url, body)
    assert got == status, resp[:200]
    assert "error" in json.loads(resp)


def test_cmd_with_100k_arguments(guard):
    srv = guard
    for n in (100000, 4097):
        body = json.dumps({"image": "busybox", "cmd": ["a"] * n}).encode()
        t0 = time.time()
        status, _, resp = post_run_raw(srv.url, body)
        assert status == 400, resp[:200]
        assert "cmd" in json.loads(resp)["error"] or "values" in json.loads(resp)["error"]
        assert time.time() - t0 < 3 * H.SLOW


# ---- invalid UTF-8 and NUL everywhere ----

BAD_STRINGS = [
    b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80",
    b"\\u0000", b"\\ud800", b"\\udfff", b"a\x00b", b"\x01",
]

RUN_TEMPLATES = [
    b'{"image":"@","cmd":["true"]}',
    b'{"image":"busybox","cmd":["@"]}',
    b'{"image":"busybox","cmd":["true","@"]}',
    b'{"image":"busybox","cmd":["true"],"env":["@=v"]}',
    b'{"image":"busybox","cmd":["true"],"env":["K=@"]}',
    b'{"image":"busybox","cmd":["true"],"cwd":"/@"}',
    b'{"image":"busybox","cmd":["true"],"files":["in/@"]}',
    b'{"image":"busybox","cmd":["true"],"network":"@"}',
    b'{"image":"busybox","cmd":["true"],"@":1}',
    b'{"image":"busybox","cmd":["true"],"limits":{"@":1}}',
]


def test_invalid_utf8_and_nul_in_json_fields(guard):
    srv = guard
    for tmpl in RUN_TEMPLATES:
        for bad in BAD_STRINGS:
            body = tmpl.replace(b"@", bad)
            status, _, resp = post_run_raw(srv.url, body)
            # \\u0000 in a key or in the network name is simply an unknown
            # value; every case is refused, none reaches a sandbox.
            assert status == 400, (body, resp[:200])
            assert "error" in json.loads(resp)


def test_invalid_utf8_and_nul_in_paths(guard):
    srv = guard
    for bad in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"a\x00b", b"\x01", b"\n"):
        body = multipart(b"utf8/x" + bad + b"y", b"data")
        status, _, resp = request(srv.url, upload_head(len(body)) + body)
        assert status == 400, (bad, resp[:200])
    for q in (b"%FF", b"%C0%80", b"%ED%A0%80", b"%00", b"a%00b", b"%0A", b"%", b"%zz"):
        status, _, _ = request(srv.url, b"GET /files?path=utf8/" + q + b" HTTP/1.1\r\nHost: localhost\r\n"
                               b"Connection: close\r\n\r\n")
        assert status == 400, q
    for target in (b"/files\xff", b"/heal%00thz", b"/\x00", b"/%ZZ"):
        c = open_conn(srv.url)
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status = answer_or_close(c)
        c.close()
        assert status in (None, 400, 404), target
    for hdr in (b"X-A: a\x00b\r\n", b"X-\xff: v\r\n", b"Host: \x00\r\n"):
        status, _, _ = request(srv.url, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + hdr +
                               b"Connection: close\r\n\r\n")
        assert status == 400, hdr
    # Nothing was stored under any of those names.
    assert not os.path.exists(os.path.join(srv.home, "files", "utf8"))


# ---- bodies that lie ----

def test_body_shorter_than_content_length(guard):
    srv = guard
    # Then silence: 408 once the body timeout passes.
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"image\":")
    t0 = time.time()
    assert answer_or_close(c, BODY_MS / 1000 + 5 * H.SLOW) in (None, 408)
    assert time.time() - t0 < BODY_MS / 1000 + 3 * H.SLOW
    c.close()
    # Then half-close: the server gives up at once, nothing is stored.
    body = multipart(b"lies/short.bin", b"z" * 100000)
    c = open_conn(srv.url)
    c.send(upload_head(len(body) + 5000) + body)
    c.sock.shutdown(socket.SHUT_WR)
    assert answer_or_close(c) in (None, 400)
    c.close()
    assert httpx.get(srv.url + "/files", params={"path": "lies/short.bin"}).status_code == 404


def test_body_longer_than_content_length(guard):
    srv = guard
    # The extra bytes are the next "request": garbage, 400, closed.
    body = b'{"image":"busybox","cmd":["true"]}'
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n" + body)
    first = answer_or_close(c)
    assert first == 400  # '{"image":"' is not JSON
    assert c.closed_by_peer(5)
    c.close()
    # An upload whose multipart body runs past its length: the part is
    # incomplete at the end of the declared body.
    full = multipart(b"lies/long.bin", b"q" * 10000)
    c = open_conn(srv.url)
    c.send(upload_head(len(full) - 100) + full)
    assert answer_or_close(c) in (None, 400)
    c.close()
    assert httpx.get(srv.url + "/files", params={"path": "lies/long.bin"}).status_code == 404


@pytest.mark.parametrize("chunks", [
    b"5\r\nabc\r\n0\r\n\r\n",                      # size says 5, 3 come
    b"3\r\nabcdefgh\r\n0\r\n\r\n",                 # size says 3, 8 come
    b"ffffffffffffffffffffff\r\n",                 # overflowing size
    b"-1\r\nx\r\n",                                # negative size
    b"5;" + b"e" * 100000 + b"\r\nabcde\r\n",      # endless extension
    b"0\r\n" + b"X-T: v\r\n" * 20000 + b"\r\n",    # endless trailers
])
def test_bad_chunked_framing(guard, chunks):
    srv = guard
    c = open_conn(srv.url)
    try:
        c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    except OSError:
        pass
    assert answer_or_close(c, BODY_MS / 1000 + 5 * H.SLOW) in (None, 400, 408, 413, 431)
    assert c.closed_by_peer(BODY_MS / 1000 + 5 * H.SLOW)
    c.close()


# ---- resets mid-upload ----

def test_resets_mid_upload_leave_nothing(guard):
    srv = guard
    data = os.urandom(4 << 20)
    for round_ in range(3):
        socks = []
        for i in range(10):
            body = multipart(b"reset/%d-%d.bin" % (round_, i), data)
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(upload_head(len(body)) + body[:len(body) // 2 + i * 1000])
            socks.append(s)
        # Let the server write part of each file into the store's .tmp.
        deadline = time.time() + 5
        tmp = os.path.join(srv.home, "files", ".tmp")
        while len(os.listdir(tmp)) < 10 and time.time() < deadline:
            time.sleep(0.05)
        assert len(os.listdir(tmp)) == 10, "uploads did not start"
        for s in socks:
            rst_close(s)
        deadline = time.time() + 5
        while os.listdir(tmp) and time.time() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmp) == [], "partial uploads left behind"
        for i in range(10):
            assert httpx.get(srv.url + "/files", params={
                "path": "reset/%d-%d.bin" % (round_, i)}).status_code == 404
    # A reset right after the head, and one in the middle of a download.
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(upload_head(1000))
    rst_close(s)
    httpx.post(srv.url + "/files", data={"path": "reset/dl.bin"}, files={"file": ("f", data)})
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /files?path=reset/dl.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.recv(1000)
        rst_close(s)
    assert httpx.get(srv.url + "/files", params={"path": "reset/dl.bin"}).content == data
