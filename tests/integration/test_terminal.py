"""Terminals over WebSocket (issue 14): GET /v1/boxes/{id}/attach runs a
shell on a pty in a real box.  The WebSocket client is written here (raw
socket, masked frames) so the tests can also send what a library never
would: unmasked, oversized, reserved and invalid frames."""

import base64
import json
import urllib.parse
import os
import re
import socket
import struct
import time

import httpx
import pytest

import boxer_server

KEY = base64.b64encode(os.urandom(16)).decode()


class WS:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = leftover

    def send(self, op, payload, fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | rsv | op
        m = 0x80 if mask else 0
        if n < 126:
            h = bytes([b0, m | n])
        elif n < 65536:
            h = bytes([b0, m | 126]) + struct.pack(">H", n)
        else:
            h = bytes([b0, m | 127]) + struct.pack(">Q", n)
        if mask:
            k = os.urandom(4)
            h += k
            payload = bytes(c ^ k[i & 3] for i, c in enumerate(payload))
        self.sock.sendall(h + payload)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def recv(self, timeout=20.0):
        """(opcode, payload) of the next frame; server frames are unmasked."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        assert b0 & 0x80, "server frames are not fragmented"
        return b0 & 0x0F, payload

    def type(self, text):
        self.send(0x2, text.encode())

    def read_until(self, pattern, timeout=20.0):
        """Terminal output until the regex matches; returns the text."""
        parts = []
        tail = b""
        deadline = time.time() + timeout
        while not re.search(pattern, tail.decode("utf-8", "replace")):
            op, p = self.recv(max(0.1, deadline - time.time()))
            assert op == 0x2, (op, p, b"".join(parts)[-200:])
            parts.append(p)
            # patterns are short: look at the last few KiB only
            tail = (tail + p)[-8192:]
        return b"".join(parts).decode("utf-8", "replace")

    def until_close(self, timeout=20.0):
        """Frames until the close frame: (text messages, close code)."""
        texts = []
        deadline = time.time() + timeout
        while True:
            op, p = self.recv(max(0.1, deadline - time.time()))
            if op == 0x1:
                texts.append(json.loads(p))
            elif op == 0x8:
                return texts, struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None

    def close(self):
        self.sock.close()


def handshake(srv, path, headers=None, method="GET", key=KEY, version="13"):
    """Sends an upgrade request; returns (status, head text, WS or None)."""
    h = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": version}
    h.update(headers or {})
    lines = ["%s %s HTTP/1.1" % (method, path)]
    lines += ["%s: %s" % (k, v) for k, v in h.items() if v is not None]
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    head = head.decode("latin-1")
    status = int(head.split(" ")[1])
    if status != 101:
        # the error body (Content-Length) follows the head
        m = re.search(r"(?i)content-length: (\d+)", head)
        while m and len(rest) < int(m.group(1)):
            d = s.recv(65536)
            if not d:
                break
            rest += d
        s.close()
        return status, head + "\r\n\r\n" + rest.decode("utf-8", "replace"), None
    return status, head, WS(s, rest)


def attach(srv, box, query=""):
    status, head, ws = handshake(srv, "/v1/boxes/%s/attach%s" % (box, query))
    assert status == 101, head
    return head, ws


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


@pytest.fixture(scope="module")
def tserver(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("term")
    srv = boxer_server.Server(d, registry=registry).start()
    yield srv
    try:
        srv.stop()
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
    finally:
        boxer_server.unmount_under(srv.home)


def make_box(srv, image, **extra):
    r = api(srv, "POST", "/v1/boxes", json=dict(image=image, **extra))
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def pybox(tserver):
    """A box whose image has bash (python:3.12-slim is Debian's essential set)."""
    return make_box(tserver, "python:3.12-slim")


@pytest.fixture(scope="module")
def bbbox(tserver):
    """busybox: /bin/sh only."""
    return make_box(tserver, "busybox")


def runsc_execs(srv, box):
    """runsc exec clients of the box still alive."""
    return [p for p in boxer_server_processes(os.path.join(srv.home, "boxes", box))
            if " exec " in p]


def boxer_server_processes(text):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd:
            out.append(cmd.replace(b"\0", b" ").decode("utf-8", "replace"))
    return out


def wait_for(cond, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_bash_size_term_resize_exit(tserver, pybox):
    head, ws = attach(tserver, pybox, "?shell=/bin/bash&cols=100&rows=30&term=xterm-256color")
    assert "Sec-WebSocket-Accept: " in head
    accept = re.search(r"Sec-WebSocket-Accept: (\S+)", head).group(1)
    import hashlib
    want = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                         .encode()).digest()).decode()
    assert accept == want
    ws.type("stty size; echo T=$TERM; echo B=$BASH_VERSION\r")
    out = ws.read_until(r"B=\d")
    assert "30 100" in out and "T=xterm-256color" in out, out
    ws.send(0x1, json.dumps({"type": "resize", "cols": 132, "rows": 43}).encode())
    ws.type("stty size\r")
    assert "43 132" in ws.read_until(r"43 132")
    # a ping in the middle is answered with its payload
    ws.send(0x9, b"are you there")
    while True:
        op, p = ws.recv()
        if op == 0xA:
            assert p == b"are you there"
            break
    ws.type("exit 3\r")
    texts, code = ws.until_close()
    assert texts == [{"type": "exit", "code": 3}]
    assert code == 1000
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, pybox) == [])
    # the terminal is not one of the box's listed execs
    assert api(tserver, "GET", "/v1/boxes/%s/execs" % pybox).json() == []


def test_missing_shell_falls_back_to_sh(tserver, bbbox):
    _, ws = attach(tserver, bbbox, "?shell=/bin/bash")
    ws.type("echo SHELL0=$0; stty size\r")
    out = ws.read_until(r"\d+ \d+\r?\n")
    assert "SHELL0=/bin/sh" in out and "24 80" in out, out
    assert "failed to load" not in out
    ws.type("exit\r")
    texts, code = ws.until_close()
    assert texts == [{"type": "exit", "code": 0}] and code == 1000
    ws.close()


def test_client_close_and_hangup_end_the_shell(tserver, bbbox):
    _, ws = attach(tserver, bbbox, "?shell=/bin/sh")
    ws.type("echo ready\r")
    ws.read_until("ready\r\n")
    assert len(runsc_execs(tserver, bbbox)) == 1
    ws.send(0x8, struct.pack(">H", 4001) + b"bye")
    texts, code = ws.until_close()
    assert texts == [] and code == 4001  # the close is echoed
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, bbbox) == [])
    # a client that just goes away
    _, ws = attach(tserver, bbbox)
    ws.type("echo ready\r")
    ws.read_until("ready\r\n")
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, bbbox) == [])


@pytest.mark.parametrize("case", ["missing key", "bad key", "version 8", "no upgrade", "POST",
                                  "cols 0", "rows big", "cols text", "relative shell",
                                  "bad term", "long shell", "no box"])
def test_bad_handshakes(tserver, bbbox, case):
    path = "/v1/boxes/%s/attach" % bbbox
    kw = {}
    want = 400
    if case == "missing key":
        kw = {"key": None}
    elif case == "bad key":
        kw = {"key": "c2hvcnQ="}
    elif case == "version 8":
        kw, want = {"version": "8"}, 426
    elif case == "no upgrade":
        kw, want = {"headers": {"Upgrade": None, "Connection": None}}, 426
    elif case == "POST":
        kw, want = {"method": "POST"}, 405
    elif case == "cols 0":
        path += "?cols=0"
    elif case == "rows big":
        path += "?rows=100000"
    elif case == "cols text":
        path += "?cols=eighty"
    elif case == "relative shell":
        path += "?shell=bash"
    elif case == "bad term":
        path += "?term=xterm%0a"
    elif case == "long shell":
        path += "?shell=/" + "a" * 500
    elif case == "no box":
        path, want = "/v1/boxes/box_nope/attach", 404
    status, head, ws = handshake(tserver, path, **kw)
    assert ws is None and status == want, head
    if want == 426:
        assert "Sec-WebSocket-Version: 13" in head
    assert api(tserver, "GET", "/healthz").status_code == 200


BAD_FRAMES = {
    # name: (frame sender, close code)
    "unmasked": (lambda ws: ws.send(0x2, b"ls\r", mask=False), 1002),
    "reserved opcode": (lambda ws: ws.send(0x3, b"x"), 1002),
    "rsv bit": (lambda ws: ws.send(0x2, b"x", rsv=0x40), 1002),
    "fragmented ping": (lambda ws: ws.send(0x9, b"x", fin=False), 1002),
    "continuation first": (lambda ws: ws.send(0x0, b"x"), 1002),
    "invalid utf-8": (lambda ws: ws.send(0x1, b'{"type":"\xff"}'), 1007),
    "oversized binary": (lambda ws: ws.send(0x2, b"", length=2 << 20), 1009),
    "oversized text": (lambda ws: ws.send(0x1, b"x" * 5000), 1009),
    "bad control json": (lambda ws: ws.send(0x1, b"not json"), 1003),
    "bad resize": (lambda ws: ws.send(0x1, b'{"type":"resize","cols":0,"rows":5}'), 1003),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frames_closed(tserver, bbbox, name):
    sender, want = BAD_FRAMES[name]
    _, ws = attach(tserver, bbbox, "?shell=/bin/sh")
    sender(ws)
    texts, code = ws.until_close()
    assert code == want
    assert texts == []
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, bbbox) == [])
    assert api(tserver, "GET", "/healthz").status_code == 200


def test_box_stop_ends_session_and_idle(tserver):
    box = make_box(tserver, "busybox", idle_timeout_secs=2)
    _, ws = attach(tserver, box, "?shell=/bin/sh")
    ws.type("echo ready\r")
    ws.read_until("ready\r\n")
    # an open terminal is activity: the box outlives its idle timeout
    time.sleep(3.5)
    assert api(tserver, "GET", "/v1/boxes/" + box).json()["status"] == "running"
    r = api(tserver, "POST", "/v1/boxes/%s:stop" % box)
    assert r.status_code == 200, r.text
    texts, code = ws.until_close()
    assert len(texts) == 1 and texts[0]["type"] == "exit", texts
    assert code == 1000
    ws.close()
    status, head, _ = handshake(tserver, "/v1/boxes/%s/attach" % box)
    assert status == 409 and '"code":"BOX_NOT_RUNNING"' in head, head
    assert api(tserver, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def test_command_instead_of_shell(tserver, bbbox):
    """?cmd= (repeated) runs that argv on the terminal, no shell between;
    env, workdir and user apply; typed input reaches it; its exit status
    is the exit message."""
    q = ("?cmd=sh&cmd=-c&cmd=" + urllib.parse.quote(
        'stty size; echo "E=$K W=$(pwd) U=$(id -u):$(id -g) A=$0"; read x; echo "got:$x"; exit 6')
        + "&cmd=" + urllib.parse.quote("a b;$(c)&d", safe="")
        + "&env=K%3Dv%26w%3D1&workdir=%2Ftmp&user=77%3A88&cols=90&rows=20")
    _, ws = attach(tserver, bbbox, q)
    out = ws.read_until(r"A=.*\n")
    assert "20 90" in out and "E=v&w=1 W=/tmp U=77:88 A=a b;$(c)&d" in out, out
    ws.type("typed input\r")
    assert "got:typed input" in ws.read_until(r"got:typed input")
    texts, code = ws.until_close()
    assert texts == [{"type": "exit", "code": 6}] and code == 1000
    ws.close()
    # a program the box lacks: 127 and a message on the terminal
    _, ws = attach(tserver, bbbox, "?cmd=/no/such&cmd=x")
    out = ws.read_until(r"/no/such")
    texts, code = ws.until_close()
    assert texts == [{"type": "exit", "code": 127}], (texts, out)
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, bbbox) == [])


@pytest.mark.parametrize("query,why", [
    ("?cmd=", "program must not be empty"),
    ("?cmd=sh&shell=/bin/sh", "either shell or cmd"),
    ("?cmd=a%00b", "NUL"),
    ("?cmd=sh&cmd=%zz", ""),
    ("?" + "&".join(["cmd=a"] * 257), "more than 256 cmd"),
    ("?cmd=" + "a" * 4097, "over 4096 bytes"),
    ("?cmd=sh&env=novalue", "K=V"),
    ("?cmd=sh&env=%3Dv", "K=V"),
    ("?cmd=sh&" + "&".join(["env=K%3Dv"] * 65), "more than 64 env"),
    ("?cmd=sh&workdir=tmp", "absolute"),
    ("?cmd=sh&workdir=/a&workdir=/b", "repeated"),
    ("?cmd=sh&user=root", "numeric"),
    ("?cmd=sh&user=1:x", "numeric"),
    ("?cmd=sh&user=99999999999", "numeric"),
    ("?cmd=sh" + "&cmd=" + "b" * 4000 + "&cmd=" + "c" * 4000 + "&env=K%3D" + "d" * 500,
     "request line"),
], ids=lambda v: v[:40] if isinstance(v, str) else None)
def test_bad_command_params(tserver, bbbox, query, why):
    status, head, ws = handshake(tserver, "/v1/boxes/%s/attach%s" % (bbbox, query))
    if why == "request line":  # the whole command is bounded by the request line
        assert ws is None and status == 414, head
        return
    assert ws is None and status == 400, head
    assert '"code":"INVALID_REQUEST"' in head and why in head, head
    assert runsc_execs(tserver, bbbox) == []


def test_openapi_lists_attach(tserver):
    doc = api(tserver, "GET", "/swagger/openapi.json").json()
    op = doc["paths"]["/v1/boxes/{id}/attach"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"id", "shell", "cols", "rows", "term",
                                                     "cmd", "env", "workdir", "user"}
    assert "post" in doc["paths"]["/v1/boxes/{id}/exec/{eid}/resize"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_reader_blocks_the_shell(tserver, bbbox):
    """A client that does not read: Boxer stops reading the pty (the shell
    blocks on its terminal) instead of buffering 20 MB; once the client
    reads again every byte arrives."""
    total = 20 << 20
    _, ws = attach(tserver, bbbox, "?shell=/bin/sh")
    ws.type("echo ready\r")
    ws.read_until("ready\r\n")
    before = rss_kb(tserver.proc.pid)
    # 'Z' spelled in octal: the echoed command line holds none
    ws.type("head -c %d /dev/zero | tr '\\0' '\\132'; echo; echo DO''NE\r" % total)
    time.sleep(3)
    grown = rss_kb(tserver.proc.pid) - before
    assert grown < 8 * 1024, "RSS grew %d KiB while the client did not read" % grown
    out = ws.read_until(r"DONE", timeout=120)
    assert out.count("Z") == total
    ws.type("exit\r")
    texts, code = ws.until_close()
    assert texts == [{"type": "exit", "code": 0}] and code == 1000
    ws.close()


def exec_info(srv, box, eid):
    return api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, eid)).json()


def test_exec_with_tty(tserver, bbbox):
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", "stty size; [ -t 0 ] && [ -t 1 ] && echo TTY; echo T=$TERM"],
                  "tty": {"rows": 33, "cols": 91}, "wait": True})
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["exit_code"] == 0 and e["status"] == "succeeded", e
    # the terminal's bytes are stdout (with its CR LF line ends)
    assert e["stdout"].replace("\r\n", "\n") == "33 91\nTTY\nT=xterm\n", e
    assert e["stderr"] == ""
    # not a tty without "tty"
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", "[ -t 1 ] || echo NOTTY"], "wait": True})
    assert r.json()["stdout"] == "NOTTY\n"
    # exit codes and a missing program, as for other execs
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", "exit 5"], "tty": {"rows": 5, "cols": 5}, "wait": True})
    assert r.json()["exit_code"] == 5
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["/nonexistent"], "tty": {"rows": 5, "cols": 5}, "wait": True})
    assert r.json()["exit_code"] == 127 and r.json()["status"] == "failed"
    for bad in ({"rows": 0, "cols": 5}, {"rows": 5}, {"rows": 5, "cols": 1001},
                {"rows": 5, "cols": 5, "x": 1}, [5, 5], {"rows": "5", "cols": 5}):
        r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
                json={"cmd": ["true"], "tty": bad})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (bad, r.text)


def test_exec_resize(tserver, bbbox):
    # the command waits until its terminal has the new size
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", 'until [ "$(stty size)" = "50 120" ]; do sleep 0.05; done; '
                          "echo resized; stty size"],
                  "tty": {"rows": 24, "cols": 80}})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    path = "/v1/boxes/%s/exec/%s/resize" % (bbbox, eid)
    for bad in ({"rows": 0, "cols": 5}, {"rows": 50}, "x"):
        r = api(tserver, "POST", path, json=bad)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", r.text
    r = api(tserver, "POST", path, json={"rows": 50, "cols": 120})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == eid
    assert wait_for(lambda: exec_info(tserver, bbbox, eid)["status"] != "running")
    e = exec_info(tserver, bbbox, eid)
    assert e["exit_code"] == 0 and "resized\r\n50 120" in e["stdout"], e
    # resizing a finished exec, an exec without a terminal, an unknown one
    r = api(tserver, "POST", path, json={"rows": 50, "cols": 120})
    assert r.status_code == 409 and r.json()["code"] == "EXEC_ALREADY_FINISHED", r.text
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox, json={"cmd": ["sleep", "5"]})
    plain = r.json()["id"]
    r = api(tserver, "POST", "/v1/boxes/%s/exec/%s/resize" % (bbbox, plain),
            json={"rows": 50, "cols": 120})
    assert r.status_code == 400, r.text
    r = api(tserver, "POST", "/v1/boxes/%s/exec/exec_nope/resize" % bbbox,
            json={"rows": 50, "cols": 120})
    assert r.status_code == 404 and r.json()["code"] == "EXEC_NOT_FOUND", r.text
    r = api(tserver, "POST", "/v1/boxes/box_nope/exec/%s/resize" % eid,
            json={"rows": 50, "cols": 120})
    assert r.status_code == 404 and r.json()["code"] == "BOX_NOT_FOUND", r.text


def test_shutdown_closes_sessions(make_server):
    """A Boxer stopping closes its terminals at once (they do not hold the
    shutdown grace period) and leaves nothing behind."""
    srv = make_server()
    box = make_box(srv, "busybox")
    _, ws = attach(srv, box, "?shell=/bin/sh")
    ws.type("echo ready\r")
    ws.read_until("ready\r\n")
    t0 = time.time()
    assert srv.stop() == 0
    took = time.time() - t0
    # under SHUTDOWN_GRACE_MS (10 s), which an open connection would hold
    assert took < 8, took
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            ws.recv(timeout=5)
    ws.close()
    try:
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
    finally:
        boxer_server.unmount_under(srv.home)


def test_ping_flood_is_bounded(tserver, bbbox):
    """Pings from a client that reads no pongs: Boxer stops reading it once
    a bounded amount is queued, so its sends block."""
    _, ws = attach(tserver, bbbox, "?shell=/bin/sh")
    before = rss_kb(tserver.proc.pid)
    k = b"\x01\x02\x03\x04"
    payload = b"p" * 125
    one = bytes([0x89, 0x80 | 125]) + k + bytes(c ^ k[i & 3] for i, c in enumerate(payload))
    batch = one * 500
    sent = 0
    ws.sock.settimeout(3)
    with pytest.raises(socket.timeout):
        while sent < (64 << 20):
            ws.sock.sendall(batch)
            sent += len(batch)
    grown = rss_kb(tserver.proc.pid) - before
    assert grown < 16 * 1024, "RSS grew %d KiB for %d bytes of pings" % (grown, sent)
    ws.close()
    assert wait_for(lambda: runsc_execs(tserver, bbbox) == [])
    assert api(tserver, "GET", "/healthz").status_code == 200


def test_foreign_origin_refused(tserver, bbbox):
    status, head, ws = handshake(tserver, "/v1/boxes/%s/attach" % bbbox,
                                 headers={"Origin": "http://evil.example"})
    assert status == 403 and ws is None, head


def test_upgraded_connection_counts_and_has_no_request_timeouts(make_server):
    """After the 101 the connection leaves HTTP's keep-alive and head
    timeouts (an idle terminal stays open) but still counts against
    max_connections_per_ip."""
    srv = make_server(config={"max_connections_per_ip": 2, "keepalive_timeout_ms": 500,
                              "header_timeout_ms": 500})
    box = make_box(srv, "busybox")
    _, a = attach(srv, box, "?shell=/bin/sh")
    _, b = attach(srv, box, "?shell=/bin/sh")
    # a third connection from this address is closed at once
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url + "/healthz", timeout=5)
    time.sleep(1.5)  # three times both timeouts
    for ws in (a, b):
        ws.type("echo alive\r")
        ws.read_until("alive\r\n")
    a.send(0x8, struct.pack(">H", 1000))
    a.until_close()
    a.close()
    assert wait_for(lambda: _can_connect(srv))
    b.close()
    try:
        assert srv.stop() == 0
        assert boxer_server.leftover_processes(srv.home) == []
    finally:
        boxer_server.unmount_under(srv.home)


def _can_connect(srv):
    try:
        return httpx.get(srv.url + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_tty_exec_cancel_and_signal_reach_the_command(tserver, bbbox):
    # a tty exec's command is found through runsc's pid file like any exec's:
    # :cancel kills its group (the shell's sleep too), /signal reaches a trap
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", "sleep 1000; echo after"], "tty": {"rows": 5, "cols": 20}})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    r = api(tserver, "POST", "/v1/boxes/%s/exec/%s:cancel" % (bbbox, eid))
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    # "canceled" is the status from the cancel on; the exit comes after
    assert wait_for(lambda: exec_info(tserver, bbbox, eid)["finished_at"] is not None, timeout=10)
    e = exec_info(tserver, bbbox, eid)
    assert (e["status"], e["exit_code"]) == ("canceled", 137), e
    ps = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox, json={"cmd": ["ps"], "wait": True}).json()
    assert "sleep 1000" not in ps["stdout"], ps["stdout"]
    r = api(tserver, "POST", "/v1/boxes/%s/exec" % bbbox,
            json={"cmd": ["sh", "-c", 'trap "echo got USR1; exit 5" USR1; echo ready; '
                          "while :; do sleep 0.1; done"], "tty": {"rows": 5, "cols": 20}})
    eid = r.json()["id"]
    assert wait_for(lambda: "ready" in exec_info(tserver, bbbox, eid)["stdout"])
    r = api(tserver, "POST", "/v1/boxes/%s/exec/%s/signal" % (bbbox, eid), json={"signal": "USR1"})
    assert r.status_code == 200, r.text
    assert wait_for(lambda: exec_info(tserver, bbbox, eid)["finished_at"] is not None, timeout=10)
    e = exec_info(tserver, bbbox, eid)
    assert e["exit_code"] == 5 and "got USR1" in e["stdout"], e
