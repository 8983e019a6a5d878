"""A web page must not reach the API (issue 11, item 3).

A page in a developer's browser can send "simple" cross-origin requests
(text/plain, multipart, form-urlencoded POSTs need no CORS preflight) to a
Boxer on localhost, and DNS rebinding (evil.example resolving to 127.0.0.1)
lets it read the answers.  Each rule is checked with raw requests, exactly as
a browser would send them."""

import json

import httpx

from rawhttp import open_conn

RUN_BODY = json.dumps({"image": "busybox", "cmd": ["echo", "ran"]}).encode()


def raw(srv, method, path, headers, body=b""):
    """One request with exactly these headers (Host included); returns
    (status, body)."""
    c = open_conn(srv.url)
    try:
        head = "%s %s HTTP/1.1\r\n" % (method, path)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        if body or method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        head += "Connection: close\r\n\r\n"
        c.send(head.encode() + body)
        status, _, data = c.response()
        return status, data
    finally:
        c.sock.close()


def own_host(srv):
    return "127.0.0.1:%d" % srv.port


# ---- Host: DNS rebinding ----

def test_rebound_host_is_refused(server):
    # The file a rebinding page would try to read back.
    r = httpx.post(server.url + "/files", data={"path": "secret/key.txt"},
                   files={"file": ("f", b"top secret")})
    assert r.status_code == 200
    for host in ("evil.example", "evil.example:%d" % server.port, "127.0.0.1.nip.io",
                 "localhost.evil.example", "192.168.1.10:%d" % server.port):
        for method, path, hdrs, body in (
                ("GET", "/files?path=secret/key.txt", [], b""),
                ("POST", "/run", [("Content-Type", "application/json")], RUN_BODY),
                ("GET", "/images", [], b""),
                ("GET", "/metrics", [], b""),
                ("GET", "/swagger", [], b"")):
            status, data = raw(server, method, path, [("Host", host)] + hdrs, body)
            assert status == 421, (host, method, path, status, data[:200])
            assert b"top secret" not in data
            assert "allowed_hosts" in json.loads(data)["error"]


def test_loopback_hosts_are_accepted(server):
    for host in ("127.0.0.1:%d" % server.port, "localhost:%d" % server.port, "localhost",
                 "127.0.0.1", "[::1]:%d" % server.port, "LocalHost:%d" % server.port):
        status, data = raw(server, "GET", "/images", [("Host", host)])
        assert status == 200, (host, status, data[:200])


def test_missing_host_is_refused(server):
    # HTTP/1.0 may omit Host; on a loopback listener that is no loopback name.
    c = open_conn(server.url)
    try:
        c.send(b"GET /images HTTP/1.0\r\n\r\n")
        assert c.response()[0] == 421
    finally:
        c.sock.close()


def test_healthz_answers_any_host(server):
    # Monitors probe /healthz with whatever Host they have; it tells nothing.
    status, data = raw(server, "GET", "/healthz", [("Host", "evil.example")])
    assert status == 200 and json.loads(data) == {"ok": True}


def test_allowed_hosts(make_server):
    srv = make_server(config={"allowed_hosts": ["boxer.test", "ci.test:1234"]})
    for host in ("boxer.test", "boxer.test:%d" % srv.port, "BOXER.test", "ci.test:1234"):
        assert raw(srv, "GET", "/images", [("Host", host)])[0] == 200, host
    for host in ("ci.test", "ci.test:1235", "boxer.test.evil", "evil.example"):
        assert raw(srv, "GET", "/images", [("Host", host)])[0] == 421, host
    srv.stop()


def test_wildcard_listener_checks_loopback_connections(make_server):
    # Listening on every address, a connection that arrives on the loopback
    # is still one a rebinding page can make.
    srv = make_server(config={"allow_unauthenticated": True}, start=False)
    srv.config["listen_addr"] = "0.0.0.0:%d" % srv.port
    srv.start()
    assert raw(srv, "GET", "/images", [("Host", "evil.example")])[0] == 421
    assert raw(srv, "GET", "/images", [("Host", own_host(srv))])[0] == 200
    srv.stop()


# ---- Origin ----

def test_foreign_origin_is_refused(server):
    h = own_host(server)
    for origin in ("http://evil.example", "null", "https://127.0.0.1:%d" % server.port,
                   "http://127.0.0.1:%d" % (server.port + 1), "http://localhost:%d" % server.port):
        for method, path, hdrs, body in (
                ("POST", "/run", [("Content-Type", "application/json")], RUN_BODY),
                ("GET", "/files?path=x", [], b""),
                ("GET", "/images", [], b"")):
            status, data = raw(server, method, path, [("Host", h), ("Origin", origin)] + hdrs,
                               body)
            assert status == 403, (origin, method, path, status, data[:200])
            assert "allowed_origins" in json.loads(data)["error"]


def test_same_origin_is_accepted(server):
    h = own_host(server)
    status, data = raw(server, "POST", "/run",
                       [("Host", h), ("Origin", "http://" + h),
                        ("Content-Type", "application/json")], RUN_BODY)
    assert status == 200, data[:300]
    assert json.loads(data)["stdout"] == "ran\n"


def test_allowed_origins(make_server):
    srv = make_server(config={"allowed_origins": ["http://app.test:3000"]})
    h = own_host(srv)
    assert raw(srv, "GET", "/images", [("Host", h), ("Origin", "http://app.test:3000")])[0] == 200
    assert raw(srv, "GET", "/images", [("Host", h), ("Origin", "http://app.test:3001")])[0] == 403
    assert raw(srv, "GET", "/images", [("Host", h), ("Origin", "http://app.test")])[0] == 403
    srv.stop()


# ---- Content-Type: no "simple" cross-origin POST ----

def test_run_needs_json_content_type(server):
    h = own_host(server)
    for ctype in ("text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                  "application/jsonx", None):
        hdrs = [("Host", h)] + ([("Content-Type", ctype)] if ctype else [])
        status, data = raw(server, "POST", "/run", hdrs, RUN_BODY)
        assert status == 415, (ctype, status, data[:200])
        assert "application/json" in json.loads(data)["error"]
    # multipart/form-data (issue 17: the multipart /run) is a "simple"
    # type like /files': what guards it is the Origin check (a page's
    # cross-origin POST always carries its Origin) and the Host check
    mp = (b'--x\r\nContent-Disposition: form-data; name="request"\r\n\r\n' + RUN_BODY +
          b"\r\n--x--\r\n")
    status, data = raw(server, "POST", "/run", [("Host", h), ("Origin", "http://evil.test"),
                                                ("Content-Type", "multipart/form-data; boundary=x")],
                       mp)
    assert status == 403, (status, data[:200])
    status, data = raw(server, "POST", "/run", [("Host", "evil.test"),
                                                ("Content-Type", "multipart/form-data; boundary=x")],
                       mp)
    assert status == 421, (status, data[:200])
    status, data = raw(server, "POST", "/run", [("Host", h),
                                                ("Content-Type", "multipart/form-data; boundary=x")],
                       mp)
    assert status == 200 and json.loads(data)["stdout"] == "ran\n", data[:300]
    # Parameters are fine.
    status, data = raw(server, "POST", "/run",
                       [("Host", h), ("Content-Type", "application/json; charset=utf-8")],
                       RUN_BODY)
    assert status == 200 and json.loads(data)["stdout"] == "ran\n", data[:300]


def test_files_needs_multipart(server):
    h = own_host(server)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/json", None):
        hdrs = [("Host", h)] + ([("Content-Type", ctype)] if ctype else [])
        status, data = raw(server, "POST", "/files", hdrs, b"path=a&file=b")
        assert status == 415, (ctype, status, data[:200])
        assert "multipart/form-data" in json.loads(data)["error"]


# ---- /swagger keeps working in a browser ----

def test_swagger_same_origin(server):
    h = own_host(server)
    # The page itself: a navigation sends no Origin.
    status, data = raw(server, "GET", "/swagger",
                       [("Host", h), ("Accept", "text/html"), ("Sec-Fetch-Mode", "navigate")])
    assert status == 200 and b"<html" in data.lower()
    # Its script fetches the document, then "Try it out" posts a run, both
    # from the page's own origin.
    status, data = raw(server, "GET", "/swagger/openapi.json",
                       [("Host", h), ("Origin", "http://" + h), ("Sec-Fetch-Mode", "cors")])
    assert status == 200 and "/run" in json.loads(data)["paths"]
    status, data = raw(server, "POST", "/run",
                       [("Host", h), ("Origin", "http://" + h),
                        ("Content-Type", "application/json")], RUN_BODY)
    assert status == 200 and json.loads(data)["exit_code"] == 0
    # The same page served under a rebound name gets nothing.
    assert raw(server, "GET", "/swagger", [("Host", "evil.example:%d" % server.port)])[0] == 421


# ---- public listeners need a token ----

def test_public_listener_without_token_refuses_to_start(make_server):
    srv = make_server(start=False)
    srv.config["listen_addr"] = "0.0.0.0:%d" % srv.port
    try:
        srv.start()
        started = True
    except RuntimeError:
        started = False
    assert not started, "started on 0.0.0.0 without a token"
    srv.proc.wait(timeout=30)
    assert srv.proc.returncode != 0
    log = srv.log_text()
    assert "refusing to listen on 0.0.0.0" in log and "allow_unauthenticated" in log


def test_public_listener_with_token_or_opt_in(make_server):
    srv = make_server(config={"auth_tokens": ["tok"]}, start=False)
    srv.config["listen_addr"] = "0.0.0.0:%d" % srv.port
    srv.start()
    assert httpx.get(srv.url + "/images", headers={"Authorization": "Bearer tok"}).status_code == 200
    srv.stop()
    srv2 = make_server(env={"BOXER_TOKEN": "envtok"}, start=False)
    srv2.config["listen_addr"] = ":%d" % srv2.port
    srv2.start()
    srv2.stop()
    srv3 = make_server(config={"allow_unauthenticated": True}, start=False)
    srv3.config["listen_addr"] = "0.0.0.0:%d" % srv3.port
    srv3.start()
    srv3.stop()
    assert "WARNING: listening on 0.0.0.0" in srv3.log_text()

