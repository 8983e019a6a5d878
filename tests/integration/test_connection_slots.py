"""Connection slots (issue 11, item 9): idle connections cannot lock others
out.  The head timeout runs from the accept, one address may hold at most
max_connections_per_ip connections, the last slots are a reserve (a new
connection first closes an idle one), and running out of descriptors pauses
accepting instead of failing."""

import socket
import time

import httpx

import hardening as H
from rawhttp import open_conn


def connect_from(port, src="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def healthz_from(port, src="127.0.0.1", timeout=5):
    """GET /healthz on a fresh connection from src; returns the status line
    or raises on timeout/close."""
    s = connect_from(port, src, timeout)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]
    finally:
        s.close()


def closed_within(sock, seconds):
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_connections_do_not_block_healthz(make_server):
    # 600 descriptors: Boxer keeps 256 for its own work, so 344 connection
    # slots, fewer than the 400 idle connections below.
    H.raise_nofile(2000)
    srv = make_server(config={"header_timeout_ms": 60000, "keepalive_timeout_ms": 60000,
                              "max_connections_per_ip": 1000},
                      preexec=H.server_nofile(600))
    socks = []
    try:
        for _ in range(400):
            socks.append(connect_from(srv.port))
        time.sleep(0.5)
        for _ in range(5):
            t0 = time.time()
            assert healthz_from(srv.port) == b"HTTP/1.1 200 OK"
            assert time.time() - t0 < 2 * H.SLOW
        # Work that needs a request body too.
        r = httpx.post(srv.url + "/files", data={"path": "slots/a.txt"},
                       files={"file": ("f", b"still served")}, timeout=10)
        assert r.status_code == 200, r.text
        # The server gave up idle connections to make room, not busy ones,
        # and is still below its descriptor limit.
        assert H.fd_count(srv.proc.pid) < 600
    finally:
        for s in socks:
            s.close()
    srv.stop()
    assert "boxer: GET /healthz 200" in srv.log_text()


def test_out_of_descriptors_pauses_and_recovers(make_server):
    # 200 descriptors: Boxer then allows 256 connections (its floor), more
    # than it has descriptors for, so accept4 meets EMFILE first.
    H.raise_nofile(2000)
    srv = make_server(config={"header_timeout_ms": 60000, "max_connections_per_ip": 1000},
                      preexec=H.server_nofile(200))
    socks = []
    try:
        for _ in range(400):
            socks.append(connect_from(srv.port))
        time.sleep(0.5)
        # Under valgrind the descriptor limit is valgrind's own: it closes
        # an accepted connection past it itself (the client sees EOF)
        # before Boxer can see EMFILE, so only recovery is checked there.
        if not H.VALGRIND:
            for _ in range(5):
                t0 = time.time()
                assert healthz_from(srv.port) == b"HTTP/1.1 200 OK"
                assert time.time() - t0 < 2 * H.SLOW
        assert srv.proc.poll() is None
    finally:
        for s in socks:
            s.close()
    # Everything closed: back to normal, no descriptor left over.
    time.sleep(1)
    assert healthz_from(srv.port) == b"HTTP/1.1 200 OK"
    assert H.fd_count(srv.proc.pid) < 100
    srv.stop()


def test_per_ip_limit(make_server):
    srv = make_server(config={"max_connections_per_ip": 5, "header_timeout_ms": 60000})
    held = [connect_from(srv.port) for _ in range(5)]
    try:
        time.sleep(0.3)
        extra = connect_from(srv.port)
        # Over the limit: closed at once, without an answer.
        assert closed_within(extra, 2), "sixth connection from one address was kept"
        extra.close()
        # Other addresses are not affected.
        assert healthz_from(srv.port, src="127.0.0.2") == b"HTTP/1.1 200 OK"
        # The held ones still work.
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200 OK")
        # One closed: the address gets its slot back.
        held.pop().close()
        time.sleep(0.3)
        assert healthz_from(srv.port) == b"HTTP/1.1 200 OK"
    finally:
        for s in held:
            s.close()
    srv.stop()


def test_idle_connection_closed_after_header_timeout(make_server):
    srv = make_server(config={"header_timeout_ms": 1000, "keepalive_timeout_ms": 60000})
    c = connect_from(srv.port)
    t0 = time.time()
    try:
        assert closed_within(c, 5 * H.SLOW), "idle connection not closed"
        took = time.time() - t0
        assert 0.8 <= took < 2.5 * H.SLOW, took
    finally:
        c.close()
    # After a request, keep-alive idling uses keepalive_timeout_ms instead.
    k = open_conn(srv.url)
    try:
        k.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert k.response()[0] == 200
        assert not k.closed_by_peer(timeout=2.0)
        k.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert k.response()[0] == 200
    finally:
        k.sock.close()
    srv.stop()
