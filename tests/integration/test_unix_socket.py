"""listen_unix: the API on a Unix socket (issue 15).

The socket is made mode 0660, its peers count as loopback for the browser
rules (Host must name the loopback, foreign Origins are refused) and still
need the token when one is configured.  A stale socket file left by a crash
is replaced, a live one (another server) is refused, and the file goes away
at shutdown.  BoxRun's SDK looks for ~/.boxrun/boxrun.sock: a symlink to
Boxer's socket must work."""

import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import httpx
import pytest


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; the Host header stays "localhost"."""

    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def request(path_sock, method, path, body=None, headers=None):
    c = UnixHTTPConnection(path_sock)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture
def sockdir():
    # sun_path holds 107 bytes: pytest's tmp_path can be longer than that.
    d = tempfile.mkdtemp(prefix="bxu-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_healthz_run_mode_and_removal(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    srv = make_server(config={"listen_unix": sock})
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    status, data = request(sock, "GET", "/healthz")
    assert status == 200 and json.loads(data)["ok"] is True
    status, data = request(sock, "POST", "/run", {"image": "busybox", "cmd": ["echo", "via unix"]})
    assert status == 200, data
    assert json.loads(data)["stdout"] == "via unix\n"
    # curl, as the README shows it.
    out = subprocess.run(["curl", "-sS", "--unix-socket", sock, "http://localhost/healthz"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True, out.stderr
    # TCP still answers alongside.
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert srv.stop() == 0
    assert not os.path.lexists(sock)


def test_browser_rules_apply_as_on_loopback(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    srv = make_server(config={"listen_unix": sock})
    status, data = request(sock, "GET", "/images", headers={"Host": "evil.example"})
    assert status == 421, data
    assert "allowed_hosts" in json.loads(data)["error"]
    status, data = request(sock, "POST", "/run", {"image": "busybox", "cmd": ["true"]},
                           headers={"Origin": "http://evil.example"})
    assert status == 403, data
    status, _ = request(sock, "GET", "/images")
    assert status == 200
    assert srv.stop() == 0


def test_token_still_required(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    srv = make_server(config={"listen_unix": sock, "auth_tokens": ["s3cret"]})
    status, _ = request(sock, "GET", "/v1/boxes")
    assert status == 401
    status, _ = request(sock, "GET", "/v1/boxes", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, data = request(sock, "GET", "/v1/boxes", headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and isinstance(json.loads(data), list)
    assert srv.stop() == 0


def test_stale_socket_is_replaced(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    # What a killed server leaves: a socket file nobody listens on.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    s.close()
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    srv = make_server(config={"listen_unix": sock})
    assert request(sock, "GET", "/healthz")[0] == 200
    assert "removed a stale socket" in srv.log_text()
    # And after a real crash (SIGKILL: no cleanup) the next start works too.
    srv.kill9()
    assert os.path.lexists(sock)
    srv2 = make_server(config={"listen_unix": sock})
    assert request(sock, "GET", "/healthz")[0] == 200
    assert srv2.stop() == 0


def test_live_socket_and_non_socket_are_refused(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock)
    live.listen(4)
    try:
        srv = make_server(config={"listen_unix": sock}, start=False)
        with pytest.raises(Exception):
            srv.start()
        assert srv.proc.wait(timeout=30) != 0
        assert "another server is listening" in srv.log_text()
        assert os.path.lexists(sock)  # the other server's socket is left alone
    finally:
        live.close()
    os.unlink(sock)
    with open(sock, "w") as f:
        f.write("not a socket")
    srv = make_server(config={"listen_unix": sock}, start=False)
    with pytest.raises(Exception):
        srv.start()
    assert srv.proc.wait(timeout=30) != 0
    assert "is not a socket" in srv.log_text()
    with open(sock) as f:
        assert f.read() == "not a socket"


def test_unix_only_no_tcp(make_server, sockdir):
    sock = os.path.join(sockdir, "boxer.sock")
    srv = make_server(config={"listen_unix": sock, "listen_addr": ""})
    assert "(no TCP)" in srv.log_text()
    assert request(sock, "GET", "/healthz")[0] == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/healthz")
    assert srv.stop() == 0
    assert not os.path.lexists(sock)


def test_boxrun_symlink(make_server, sockdir):
    """BoxRun's SDK connects to ~/.boxrun/boxrun.sock with httpx over the
    socket and base URL http://localhost: the documented symlink works."""
    sock = os.path.join(sockdir, "boxer.sock")
    srv = make_server(config={"listen_unix": sock})
    home = os.path.join(sockdir, "home")
    os.makedirs(os.path.join(home, ".boxrun"))
    link = os.path.join(home, ".boxrun", "boxrun.sock")
    os.symlink(sock, link)
    transport = httpx.HTTPTransport(uds=link)
    with httpx.Client(transport=transport, base_url="http://localhost") as c:
        r = c.get("/v1/boxes")
        assert r.status_code == 200 and r.json() == []
        r = c.post("/v1/boxes", json={"image": "busybox", "name": "via-link"})
        assert r.status_code == 201, r.text
        box = r.json()
        try:
            assert box["status"] == "running"
            r = c.post("/v1/boxes/via-link/exec", json={"cmd": ["echo", "boxrun"], "wait": True})
            assert r.status_code == 200, r.text
            assert r.json()["exit_code"] == 0 and r.json()["stdout"] == "boxrun\n"
        finally:
            assert c.delete("/v1/boxes/%s?force=true" % box["id"]).status_code == 204
    assert srv.stop() == 0
