"""Server core: HTTP/1.1 behaviour, limits, files, config, logging, signals.
Real binary over loopback, raw sockets and curl."""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import time

import httpx
import pytest

import boxer_server
from rawhttp import error_of, open_conn, request

LIMIT = 10485760


def upload(url, path, data, client=None):
    c = client or httpx
    return c.post(url + "/files", data={"path": path}, files={"file": ("f", data)}, timeout=60)


def multipart(path, data, boundary="XyZzy", file_first=False, extra=b""):
    p = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n"
         + path.encode() + b"\r\n")
    f = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; "
         b"filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    body = extra + (f + p if file_first else p + f) + b"--" + boundary.encode() + b"--\r\n"
    return body


# ---- routes ----

def test_healthz(server):
    r = httpx.get(server.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    assert r.headers["content-type"] == "application/json"


def test_unknown_route_404_json(server):
    r = httpx.get(server.url + "/nope")
    assert r.status_code == 404
    assert "error" in r.json()


def test_wrong_method_405_json(server):
    for method, path in (("POST", "/healthz"), ("PUT", "/files"), ("GET", "/run"),
                         ("DELETE", "/healthz")):
        r = httpx.request(method, server.url + path)
        assert r.status_code == 405, (method, path)
        assert "error" in r.json()
        assert "allow" in r.headers


def test_405_allow_lists_exact(server):
    """The route table's Allow lists, byte for byte (issue 12: the table
    replaced a hand-written chain; the answers must not change)."""
    cases = (("POST", "/healthz", "GET, HEAD"), ("OPTIONS", "/healthz", "GET, HEAD"),
             ("PUT", "/files", "GET, HEAD, POST"), ("DELETE", "/files", "GET, HEAD, POST"),
             ("GET", "/run", "POST"), ("HEAD", "/run", "POST"), ("PUT", "/run", "POST"),
             ("POST", "/images", "GET, HEAD, DELETE"), ("PATCH", "/images", "GET, HEAD, DELETE"),
             ("POST", "/metrics", "GET, HEAD"), ("POST", "/swagger", "GET, HEAD"),
             ("DELETE", "/swagger/", "GET, HEAD"), ("PUT", "/swagger/index.html", "GET, HEAD"),
             ("POST", "/swagger/openapi.json", "GET, HEAD"))
    for method, path, allow in cases:
        r = httpx.request(method, server.url + path)
        assert r.status_code == 405, (method, path)
        assert r.headers["allow"] == allow, (method, path)
        if method != "HEAD":
            assert r.json() == {"error": "method not allowed"}
    for method, path in (("GET", "/nope"), ("POST", "/runx"), ("GET", "/swaggerx"),
                         ("DELETE", "/images/"), ("GET", "/healthz/")):  # GET / redirects to /ui (issue 18)
        r = httpx.request(method, server.url + path)
        assert r.status_code == 404, (method, path)
        assert "allow" not in r.headers
        assert r.json() == {"error": "not found"}
    # HEAD is answered wherever GET is.
    for path in ("/healthz", "/metrics", "/swagger", "/swagger/openapi.json", "/images"):
        assert httpx.head(server.url + path).status_code == 200, path


def test_head_has_no_body(server):
    status, headers, body = request(server.url, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Connection: close\r\n\r\n", head=True)
    assert status == 200
    assert headers["content-length"] == "11"
    assert body == b""


def test_swagger(server):
    r = httpx.get(server.url + "/swagger")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    doc = httpx.get(server.url + "/swagger/openapi.json").json()
    assert "/run" in doc["paths"] and "/files" in doc["paths"]


def test_openapi_document_is_well_formed(server):
    """The served document is strict JSON (no duplicate key anywhere: json
    would keep the last one silently), every $ref resolves, every {param}
    of a path is declared, and POST /v1/boxes/{id}/exec lists its fields."""
    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        dups = sorted({k for k in keys if keys.count(k) > 1})
        assert not dups, "duplicate keys %s in %s" % (dups, keys)
        return dict(pairs)

    r = httpx.get(server.url + "/swagger/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = json.loads(r.content.decode("utf-8"), object_pairs_hook=no_dups,
                     parse_constant=lambda c: pytest.fail("non-JSON constant %s" % c))
    assert doc["openapi"].startswith("3.")

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, "dangling $ref " + ref
            node = node[part]
    for path, item in doc["paths"].items():
        want = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            assert method in ("get", "post", "put", "delete", "head", "patch"), (path, method)
            assert op["responses"] and op["summary"], (path, method)
            have = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert have == want, (path, method, have)
    ex = doc["paths"]["/v1/boxes/{id}/exec"]["post"]
    props = ex["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(props) == {"cmd", "env", "workdir", "timeout_ms", "user", "stdin", "stdin_b64",
                          "stdin_open", "encoding", "stream", "wait"}
    assert {"200", "201", "400", "404", "409"} <= set(ex["responses"])
    v1 = doc["paths"]["/v1/run"]["post"]["requestBody"]["content"]["application/json"]
    assert {"stdin", "stdin_b64", "user"} <= set(v1["schema"]["properties"])
    create = doc["paths"]["/v1/boxes"]["post"]["requestBody"]["content"]["application/json"]
    assert {"image", "idle_timeout_secs", "user"} <= set(create["schema"]["properties"])
    # every route of DESIGN.md's tables is documented, with its methods
    for path, methods in {
            "/run": {"post"}, "/files": {"get", "post"}, "/images": {"get", "delete"},
            "/healthz": {"get"}, "/readyz": {"get"}, "/metrics": {"get"}, "/ui": {"get"},
            "/v1/boxes": {"get", "post"}, "/v1/boxes/{id}": {"get", "delete"},
            "/v1/boxes/{id}:stop": {"post"}, "/v1/boxes/{id}:start": {"post"},
            "/v1/boxes/{id}/exec": {"post"}, "/v1/boxes/{id}/execs": {"get"},
            "/v1/boxes/{id}/exec/{eid}": {"get"}, "/v1/boxes/{id}/exec/{eid}/events": {"get"},
            "/v1/boxes/{id}/exec/{eid}:cancel": {"post"}, "/v1/boxes/{id}/exec/{eid}/stdin": {"post"},
            "/v1/boxes/{id}/exec/{eid}/signal": {"post"}, "/v1/boxes/{id}/exec/{eid}/resize": {"post"},
            "/v1/boxes/{id}/files/upload": {"post"}, "/v1/boxes/{id}/files/download": {"post"},
            "/v1/boxes/{id}/attach": {"get"}, "/v1/info": {"get"}, "/v1/node": {"get"},
            "/v1/run": {"post"}, "/v1/gc": {"post"}}.items():
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, set(doc["paths"][path]))


# ---- files ----

@pytest.mark.parametrize("size", [0, 1, 4096, LIMIT])
def test_upload_download_sizes(server, size):
    data = os.urandom(size)
    r = upload(server.url, "sizes/f%d.bin" % size, data)
    assert r.status_code == 200, r.text
    assert r.json() == {"path": "sizes/f%d.bin" % size}
    d = httpx.get(server.url + "/files", params={"path": "sizes/f%d.bin" % size}, timeout=60)
    assert d.status_code == 200
    assert d.headers["content-type"] == "application/octet-stream"
    assert int(d.headers["content-length"]) == size
    assert d.content == data


def test_upload_over_limit_413(server):
    r = upload(server.url, "big/over.bin", b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert "error" in r.json()
    assert httpx.get(server.url + "/files", params={"path": "big/over.bin"}).status_code == 404


def test_upload_file_part_before_path(server):
    body = multipart("order/first.txt", b"file came first", file_first=True)
    r = httpx.post(server.url + "/files", content=body,
                   headers={"Content-Type": "multipart/form-data; boundary=XyZzy"})
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + "/files", params={"path": "order/first.txt"}).content == \
        b"file came first"


def test_upload_quoted_boundary_and_unknown_parts(server):
    extra = (b"--b-1\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nignored\r\n")
    body = multipart("q/quoted.txt", b"hello", boundary="b-1", extra=extra)
    r = httpx.post(server.url + "/files", content=body,
                   headers={"Content-Type": 'multipart/form-data; boundary="b-1"'})
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + "/files", params={"path": "q/quoted.txt"}).content == b"hello"


def test_upload_chunked_body(server):
    body = multipart("chunked/c.txt", b"sent in chunks" * 1000)

    def gen():
        for i in range(0, len(body), 777):
            yield body[i:i + 777]

    r = httpx.post(server.url + "/files", content=gen(),
                   headers={"Content-Type": "multipart/form-data; boundary=XyZzy"})
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + "/files", params={"path": "chunked/c.txt"}).content == \
        b"sent in chunks" * 1000


def test_upload_near_delimiters_in_big_reads(server):
    """Data dense with CRs and delimiter prefixes ("\r\n--XyZz" then a
    mismatch, CR CR, a prefix cut at every length) over several of the
    server's 256 KiB body reads, the file part before the path: the parser
    decides on whole reads and holds back only a prefix at a read's end,
    so every byte must come back, none may end the part early."""
    delim = b"\r\n--XyZzy"
    unit = b"".join(delim[:k] + b"q" for k in range(1, len(delim))) + b"\r\r\n--XyZzY\n"
    data = (unit * (3 * 262144 // len(unit) + 7))[:3 * 262144 + 5] + b"\r\n--XyZz"
    body = multipart("near/delims.bin", data, file_first=True)

    def gen():
        # Pieces that cut the data at odd places as well as whole reads.
        for i in range(0, len(body), 100003):
            yield body[i:i + 100003]

    for content in (body, gen()):
        r = httpx.post(server.url + "/files", content=content, timeout=60,
                       headers={"Content-Type": "multipart/form-data; boundary=XyZzy"})
        assert r.status_code == 200, r.text
        d = httpx.get(server.url + "/files", params={"path": "near/delims.bin"}, timeout=60)
        assert d.status_code == 200
        assert d.content == data


def test_upload_expect_100_continue(server, tmp_path):
    f = tmp_path / "e.txt"
    f.write_bytes(b"expect me")
    out = subprocess.run(["curl", "-sS", "-v", "-H", "Expect: 100-continue", "-F",
                          "path=expect/e.txt", "-F", "file=@%s" % f, server.url + "/files"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0
    assert b"100 Continue" in out.stderr
    assert json.loads(out.stdout) == {"path": "expect/e.txt"}


@pytest.mark.parametrize("bad", ["", "/abs", "../up", "a/../../b", "output/x", "output",
                                 ".tmp/x", "a/" + "x" * 256, "y/" * 2100, "nul\x00byte"])
def test_upload_bad_paths_400(server, bad):
    body = multipart("PLACEHOLDER", b"data").replace(b"PLACEHOLDER", bad.encode())
    r = httpx.post(server.url + "/files", content=body,
                   headers={"Content-Type": "multipart/form-data; boundary=XyZzy"})
    assert r.status_code == 400, (bad, r.text)
    assert "error" in r.json()


def test_upload_missing_fields_400(server):
    only_path = (b"--XyZzy\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\na.txt\r\n"
                 b"--XyZzy--\r\n")
    r = httpx.post(server.url + "/files", content=only_path,
                   headers={"Content-Type": "multipart/form-data; boundary=XyZzy"})
    assert r.status_code == 400 and "file" in r.json()["error"]
    r = httpx.post(server.url + "/files", files={"file": ("f", b"x")})
    assert r.status_code == 400 and "path" in r.json()["error"]
    r = httpx.post(server.url + "/files", content=b"plain", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_upload_normalizes_paths(server):
    r = upload(server.url, "./norm//a/./b.txt", b"n")
    assert r.status_code == 200
    assert r.json()["path"] == "norm/a/b.txt"
    assert httpx.get(server.url + "/files", params={"path": "norm/a/b.txt"}).content == b"n"


def test_download_errors(server):
    assert httpx.get(server.url + "/files").status_code == 400
    assert httpx.get(server.url + "/files", params={"path": "does/not/exist"}).status_code == 404
    upload(server.url, "dir/inside.txt", b"x")
    assert httpx.get(server.url + "/files", params={"path": "dir"}).status_code == 400
    assert httpx.get(server.url + "/files", params={"path": "../../etc/passwd"}).status_code == 400
    status, _, body = request(server.url, b"GET /files?path=a%00b HTTP/1.1\r\nHost: localhost\r\n"
                              b"Connection: close\r\n\r\n")
    assert status == 400


def test_download_percent_decoded_query(server):
    upload(server.url, "space dir/a+b.txt", b"pct")
    r = httpx.get(server.url + "/files?path=space%20dir%2Fa%2Bb.txt")
    assert r.status_code == 200 and r.content == b"pct"


def test_overwrite_is_atomic_for_readers(server):
    upload(server.url, "atomic/f.txt", b"old" * 100000)
    # A download that started before the overwrite sees the old file whole.
    c = open_conn(server.url)
    c.send(b"GET /files?path=atomic/f.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.05)
    upload(server.url, "atomic/f.txt", b"new" * 100000)
    status, _, body = c.response()
    c.close()
    assert status == 200 and body in (b"old" * 100000, b"new" * 100000)
    assert httpx.get(server.url + "/files", params={"path": "atomic/f.txt"}).content == \
        b"new" * 100000


def test_symlink_in_store_not_followed(server):
    files = os.path.join(server.home, "files")
    os.makedirs(os.path.join(files, "evil"), exist_ok=True)
    link = os.path.join(files, "evil", "passwd")
    if not os.path.islink(link):
        os.symlink("/etc/passwd", link)
    r = httpx.get(server.url + "/files", params={"path": "evil/passwd"})
    assert r.status_code in (400, 404)
    os.symlink("/etc", os.path.join(files, "etcdir"))
    r = upload(server.url, "etcdir/boxer-pwned", b"x")
    assert r.status_code in (400, 500)
    assert not os.path.exists("/etc/boxer-pwned")


# ---- HTTP/1.1 framing ----

def test_keepalive_and_pipelining(server):
    c = open_conn(server.url)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3 +
           b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for _ in range(3):
        status, headers, body = c.response()
        assert status == 200 and body == b'{"ok":true}'
    status, _, _ = c.response()
    assert status == 404
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert c.response()[0] == 200
    c.close()


def test_http10(server):
    c = open_conn(server.url)
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, body = c.response()
    assert status == 200 and body == b'{"ok":true}'
    assert c.closed_by_peer()
    c = open_conn(server.url)
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = c.response()
    assert headers.get("connection", "").lower() == "keep-alive"
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert c.response()[0] == 200
    c.close()


def test_smuggling_cl_and_te_rejected_and_closed(server):
    c = open_conn(server.url)
    c.send(b"POST /files HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, headers, _ = c.response()
    assert status == 400
    assert headers.get("connection") == "close"
    assert c.closed_by_peer()


def test_conflicting_content_lengths_rejected(server):
    c = open_conn(server.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
           b"hello!")
    assert c.response()[0] == 400
    assert c.closed_by_peer()


def test_request_line_too_long_414(server):
    status, _, body = request(server.url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 414
    assert "error" in json.loads(body)


def test_headers_too_large_431(server):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    assert request(server.url, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")[0] == 431
    big = b"X-Big: " + b"v" * 40000 + b"\r\n"
    assert request(server.url, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + big + b"\r\n")[0] == 431


def test_body_too_large_413(server):
    status, _, body = request(server.url, b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 999999999\r\n\r\n")
    assert status == 413


def test_garbage_400(server):
    for raw in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host
                b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n bad-fold\r\n\r\n"):
        status = request(server.url, raw)[0]
        assert 400 <= status < 600, raw


def test_slowloris_head_timeout(make_server):
    srv = make_server(config={"header_timeout_ms": 500, "keepalive_timeout_ms": 1000})
    c = open_conn(srv.url)
    c.send(b"GET /healthz HTTP/1.1\r\n")
    t0 = time.time()
    try:
        status, _, _ = c.response()
        assert status == 408
    except ConnectionError:
        pass
    assert c.closed_by_peer(5)
    assert time.time() - t0 < 4
    # an idle keep-alive connection is closed too
    c = open_conn(srv.url)
    assert c.closed_by_peer(5)
    assert httpx.get(srv.url + "/healthz").status_code == 200


def test_slow_body_timeout(make_server):
    srv = make_server(config={"body_timeout_ms": 500})
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    status, _, _ = c.response()
    assert status == 408
    assert c.closed_by_peer(5)


def test_fd_exhaustion_pauses_accept(make_server):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    srv = make_server(preexec=limit)
    proc = srv.proc
    socks = []
    for _ in range(120):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        socks.append(s)
    time.sleep(0.5)
    # The server is not spinning on a listener it cannot accept from.
    cpu0 = sum(map(float, open("/proc/%d/stat" % proc.pid).read().split()[13:15]))
    time.sleep(1.0)
    cpu1 = sum(map(float, open("/proc/%d/stat" % proc.pid).read().split()[13:15]))
    assert cpu1 - cpu0 < 30, "server burns CPU while out of descriptors"
    for s in socks:
        s.close()
    deadline = time.time() + 10
    while True:
        try:
            if httpx.get(srv.url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "accept did not resume"
        time.sleep(0.1)
    srv.stop()


# ---- logging, signals, config ----

def test_log_lines(server):
    httpx.get(server.url + "/healthz?probe=log")
    time.sleep(0.1)
    log = server.log_text()
    assert "boxer: version" in log and "listening on" in log and "platform" in log
    assert any(line.startswith("boxer: GET /healthz 200 ") and line.endswith("ms")
               for line in log.splitlines())


def test_sigterm_finishes_inflight_and_exits_0(make_server):
    srv = make_server(config={"header_timeout_ms": 5000})
    c = open_conn(srv.url)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert c.response()[0] == 200
    # a request that is half sent when the signal arrives still completes
    body = multipart("term/t.txt", b"z" * 100000)
    head = (b"POST /files HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; "
            b"boundary=XyZzy\r\nContent-Length: %d\r\n\r\n" % len(body))
    c2 = open_conn(srv.url)
    c2.send(head + body[:1000])
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    c2.send(body[1000:])
    status, _, _ = c2.response()
    assert status == 200
    assert srv.proc.wait(timeout=15) == 0
    srv.log.close()


def test_sigpipe_does_not_kill(server):
    upload(server.url, "pipe/big.bin", os.urandom(LIMIT))
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /files?path=pipe/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(0.2)
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/healthz").status_code == 200


def run_boxer(args, env=None, timeout=10):
    e = dict(os.environ)
    e.pop("BOXER_CONFIG", None)
    if env:
        e.update(env)
    return subprocess.run([boxer_server.BOXER_BIN] + args, capture_output=True, timeout=timeout,
                          env=e)


def test_help_and_version():
    r = run_boxer(["--help"])
    assert r.returncode == 0 and b"usage: boxer" in r.stdout
    r = run_boxer(["--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"boxer ")
    assert run_boxer(["--bogus"]).returncode != 0


@pytest.mark.parametrize("cfg,field", [
    ({"bogus": 1}, "bogus"),
    ({"listen_addr": 8080}, "listen_addr"),
    ({"listen_addr": "not an address"}, "listen_addr"),
    ({"defaults": {"memory_mb": -5}}, "defaults.memory_mb"),
    ({"defaults": {"cpu_cores": "1"}}, "defaults.cpu_cores"),
    ({"defaults": {"wat": 1}}, "defaults.wat"),
    ({"ignore_cgroups": "yes"}, "ignore_cgroups"),
    ({"output_limit_bytes": 0}, "output_limit_bytes"),
    ({"upload_limit_bytes": 1.5}, "upload_limit_bytes"),
    ({"platform": "vmware"}, "platform"),
])
def test_config_errors_name_the_field(tmp_path, cfg, field):
    p = tmp_path / "c.json"
    cfg = dict(cfg)
    cfg.setdefault("home", str(tmp_path / "home"))
    p.write_text(json.dumps(cfg))
    r = run_boxer(["--config", str(p)])
    assert r.returncode != 0
    assert field.encode() in r.stderr, r.stderr


def test_config_precedence(tmp_path):
    # --config wins over $BOXER_CONFIG, which wins over ~/.boxer/config.json
    good = tmp_path / "good.json"
    bad = tmp_path / "bad.json"
    good.write_text(json.dumps({"home": str(tmp_path / "h"), "listen_addr": "127.0.0.1:0",
                                "ignore_cgroups": True}))
    bad.write_text(json.dumps({"unknown_env_field": 1}))
    r = run_boxer(["--config", str(bad)], env={"BOXER_CONFIG": str(good)})
    assert r.returncode != 0 and b"unknown_env_field" in r.stderr
    home = tmp_path / "userhome"
    (home / ".boxer").mkdir(parents=True)
    (home / ".boxer" / "config.json").write_text(json.dumps({"home_field_bad": 1}))
    r = run_boxer(["--version"], env={"HOME": str(home)})
    assert r.returncode == 0
    r = run_boxer([], env={"HOME": str(home), "BOXER_CONFIG": str(bad)})
    assert b"unknown_env_field" in r.stderr
    r = run_boxer([], env={"HOME": str(home)})
    assert b"home_field_bad" in r.stderr
