"""Exec input and control (issue 14): stdin for /run and box execs,
interactive stdin, cancel and signals.  Real runsc, real images; one
server and one box for the whole module."""

import base64
import hashlib
import os
import time

import httpx
import pytest

import boxer_server

BUSYBOX = "busybox"
PYTHON = "python:3.12-slim"
STDIN_LIMIT = 10 << 20  # the default stdin_limit_bytes
IN_BUFFER = 65536       # exec_stdin_buffer_bytes of this module's server
_PID = os.getpid()
BRIDGE = "bxti%04x" % (_PID & 0xFFFF)
SUBNET = "10.%d.%d" % (60 + _PID % 30, 100 + _PID % 50)


@pytest.fixture(scope="module")
def srv(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("input")
    s = boxer_server.Server(d, config={"exec_stdin_buffer_bytes": IN_BUFFER,
                                       "bridge_name": BRIDGE,
                                       "sandbox_subnet": SUBNET + ".0/24"},
                            registry=registry).start()
    yield s
    try:
        s.stop()
        assert boxer_server.leftover_processes(s.home) == []
        assert boxer_server.leftover_mounts(s.home) == []
    finally:
        boxer_server.unmount_under(s.home)


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


@pytest.fixture(scope="module")
def box(srv):
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    yield bid
    r = api(srv, "DELETE", "/v1/boxes/%s?force=true" % bid)
    assert r.status_code == 204, r.text


def run(srv, body):
    return api(srv, "POST", "/run", json=body)


def start(srv, box, **body):
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def get(srv, box, eid):
    r = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, eid))
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(srv, box, eid, cond, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        e = get(srv, box, eid)
        if cond(e):
            return e
        assert time.time() < deadline, e
        time.sleep(0.05)


def finished(e):
    return e["finished_at"] is not None


def stdin(srv, box, eid, data, **params):
    return api(srv, "POST", "/v1/boxes/%s/exec/%s/stdin" % (box, eid), content=data,
               params=params, headers={"Content-Type": "application/octet-stream"})


# ---- /run ----

def test_run_stdin_text_and_python(srv):
    r = run(srv, {"image": BUSYBOX, "cmd": ["cat"], "stdin": "hello\nwörld\n"})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "hello\nwörld\n"
    r = run(srv, {"image": PYTHON, "cmd": ["python3", "-c",
                                          "import sys; print(sum(int(x) for x in sys.stdin.read().split()))"],
                  "stdin": "1 2 3\n40\n"})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "46\n", r.json()
    # without stdin the command reads EOF at once (/dev/null), as before
    r = run(srv, {"image": BUSYBOX, "cmd": ["cat"]})
    assert (r.status_code, r.json()["stdout"]) == (200, ""), r.text


def test_run_stdin_b64_binary_and_10mb(srv):
    data = bytes(range(256)) * 8
    r = run(srv, {"image": BUSYBOX, "cmd": ["od", "-An", "-v", "-tx1"],
                  "stdin_b64": base64.b64encode(data).decode()})
    assert r.status_code == 200, r.text
    assert bytes.fromhex(r.json()["stdout"].replace("\n", "").replace(" ", "")) == data
    big = os.urandom(10 * 1000 * 1000)
    r = run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "cat | sha256sum"],
                  "stdin_b64": base64.b64encode(big).decode()})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"].split()[0] == hashlib.sha256(big).hexdigest()


def test_run_stdin_limits(srv):
    # over stdin_limit_bytes, as text and as base64: 413 naming the setting
    r = run(srv, {"image": BUSYBOX, "cmd": ["cat"], "stdin": "x" * (STDIN_LIMIT + 1)})
    assert r.status_code == 413 and "stdin_limit_bytes" in r.json()["error"], r.text
    r = run(srv, {"image": BUSYBOX, "cmd": ["cat"],
                  "stdin_b64": base64.b64encode(b"x" * (STDIN_LIMIT + 3)).decode()})
    assert r.status_code == 413 and "stdin_limit_bytes" in r.json()["error"], r.text
    for bad in ({"stdin": "a", "stdin_b64": "YQ=="}, {"stdin_b64": "a!=="}, {"stdin": 3}):
        r = run(srv, dict({"image": BUSYBOX, "cmd": ["cat"]}, **bad))
        assert r.status_code == 400, (bad, r.text)


def test_command_closing_stdin_early(srv):
    # head reads one line and leaves: the rest of a large stdin is dropped,
    # the run ends normally
    r = run(srv, {"image": BUSYBOX, "cmd": ["head", "-n", "1"],
                  "stdin": "first\n" + "y" * (2 << 20)})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "first\n"


# ---- box execs ----

def test_exec_stdin_one_shot(srv, box):
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box,
            json={"cmd": ["sh", "-c", "cat | sha256sum"], "wait": True,
                  "stdin_b64": base64.b64encode(bytes(range(256))).decode()})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"].split()[0] == hashlib.sha256(bytes(range(256))).hexdigest()
    big = os.urandom(10 * 1000 * 1000)
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box,
            json={"cmd": ["sh", "-c", "cat | sha256sum"], "wait": True,
                  "stdin_b64": base64.b64encode(big).decode()})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"].split()[0] == hashlib.sha256(big).hexdigest()
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box,
            json={"cmd": ["cat"], "stdin": "x" * (STDIN_LIMIT + 1)})
    assert r.status_code == 413 and "stdin_limit_bytes" in r.json()["message"], r.text


def test_exec_interactive_sh(srv, box):
    # the request's own stdin comes first and counts in the offsets
    eid = start(srv, box, cmd=["sh"], stdin_open=True, stdin="echo pre\n")
    r = stdin(srv, box, eid, b"echo hi\n")
    assert r.status_code == 200 and r.json() == {"offset": 17}, r.text
    wait_until(srv, box, eid, lambda e: e["stdout"] == "pre\nhi\n")
    assert get(srv, box, eid)["status"] == "running"
    r = stdin(srv, box, eid, b"echo bye; exit 5\n", eof=1)
    assert r.status_code == 200 and r.json() == {"offset": 34}, r.text
    e = wait_until(srv, box, eid, finished)
    assert (e["status"], e["exit_code"], e["stdout"]) == ("failed", 5, "pre\nhi\nbye\n"), e
    # finished: 409 for input, signal and cancel
    r = stdin(srv, box, eid, b"more")
    assert r.status_code == 409 and r.json()["code"] == "EXEC_ALREADY_FINISHED", r.text
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s/signal" % (box, eid), json={"signal": "INT"})
    assert r.status_code == 409 and r.json()["code"] == "EXEC_ALREADY_FINISHED", r.text
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid))
    assert r.status_code == 409 and r.json()["code"] == "EXEC_ALREADY_FINISHED", r.text


def test_slow_reader_does_not_block_the_server(srv, box):
    # the command reads nothing for a second: Boxer keeps serving while the
    # rest of its stdin waits in the buffer
    data = os.urandom(4 << 20)
    eid = start(srv, box, cmd=["sh", "-c", "sleep 1; cat | sha256sum"],
                stdin_b64=base64.b64encode(data).decode())
    t0 = time.time()
    r = api(srv, "GET", "/healthz", timeout=5)
    assert r.status_code == 200 and time.time() - t0 < 0.5
    e = get(srv, box, eid)
    assert e["status"] == "running", e
    e = wait_until(srv, box, eid, finished)
    assert e["stdout"].split()[0] == hashlib.sha256(data).hexdigest(), e


def test_exec_stdin_offsets_and_bounds(srv, box):
    eid = start(srv, box, cmd=["cat"], stdin_open=True)
    assert stdin(srv, box, eid, b"abc", offset=0).json() == {"offset": 3}
    # the same write again (a retry): nothing appended
    assert stdin(srv, box, eid, b"abc", offset=0).json() == {"offset": 3}
    # overlapping: only the new part goes in
    assert stdin(srv, box, eid, b"cdef", offset=2).json() == {"offset": 6}
    r = stdin(srv, box, eid, b"x", offset=10)
    assert r.status_code == 409 and r.json()["code"] == "STDIN_OFFSET_GAP", r.text
    r = stdin(srv, box, eid, b"x", offset="-1")
    assert r.status_code == 400, r.text
    assert stdin(srv, box, eid, b"", offset=6, eof=1).json() == {"offset": 6}
    e = wait_until(srv, box, eid, finished)
    assert (e["status"], e["stdout"]) == ("succeeded", "abcdef"), e
    # an exec without stdin_open takes no input
    eid = start(srv, box, cmd=["sleep", "1000"])
    r = stdin(srv, box, eid, b"x")
    assert r.status_code == 409 and r.json()["code"] == "STDIN_CLOSED", r.text
    assert api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid)).status_code == 200
    # a command that does not read: the pipe (64 KiB) fills, then the
    # buffer; a write that does not fit is 429 (retry later), one larger
    # than the whole buffer 413
    eid = start(srv, box, cmd=["sleep", "1000"], stdin_open=True)
    chunk = b"z" * 60000
    assert stdin(srv, box, eid, chunk).status_code == 200
    assert stdin(srv, box, eid, chunk).status_code == 200
    r = stdin(srv, box, eid, chunk)
    assert r.status_code == 429 and r.json()["code"] == "STDIN_BUFFER_FULL", r.text
    assert r.headers.get("Retry-After") == "1"
    r = stdin(srv, box, eid, b"z" * (IN_BUFFER + 1))
    assert r.status_code == 413, r.text
    assert api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid)).status_code == 200
    r = stdin(srv, box, "exec_nope", b"x")
    assert r.status_code == 404 and r.json()["code"] == "EXEC_NOT_FOUND", r.text


def test_cancel_kills_the_group(srv, box):
    eid = start(srv, box, cmd=["sh", "-c", "sleep 1000; echo after"])
    t0 = time.time()
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled" and r.json()["id"] == eid
    e = wait_until(srv, box, eid, finished, timeout=10)
    assert time.time() - t0 < 5, e
    assert (e["status"], e["exit_code"], e["stdout"]) == ("canceled", 137, ""), e
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid))
    assert r.status_code == 409 and r.json()["code"] == "EXEC_ALREADY_FINISHED", r.text
    # the shell's child went with it
    ps = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["ps"], "wait": True}).json()
    assert "sleep 1000" not in ps["stdout"], ps["stdout"]


@pytest.mark.parametrize("sig,timeout_ms", [("INT", None), ("TERM", 60000), ("SIGUSR1", None)])
def test_signal_reaches_shell_trap(srv, box, sig, timeout_ms):
    # with timeout_ms the command runs under the in-box timeout helper:
    # the signal must reach the command through it
    name = sig.replace("SIG", "")
    script = ('trap "echo got INT; exit 3" INT; trap "echo got TERM; exit 4" TERM; '
              'trap "echo got USR1; exit 5" USR1; echo ready; while :; do sleep 0.1; done')
    body = {"cmd": ["sh", "-c", script]}
    if timeout_ms:
        body["timeout_ms"] = timeout_ms
    eid = start(srv, box, **body)
    wait_until(srv, box, eid, lambda e: "ready" in e["stdout"])
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s/signal" % (box, eid), json={"signal": sig})
    assert r.status_code == 200, r.text
    e = wait_until(srv, box, eid, finished, timeout=10)
    want = {"INT": 3, "TERM": 4, "USR1": 5}[name]
    assert (e["status"], e["exit_code"]) == ("failed", want), e
    assert e["stdout"] == "ready\ngot %s\n" % name, e


def test_signal_kill_and_unknown(srv, box):
    eid = start(srv, box, cmd=["sleep", "1000"])
    for bad in ({"signal": "FOO"}, {"signal": 9}, {}, {"signal": "SIG"}):
        r = api(srv, "POST", "/v1/boxes/%s/exec/%s/signal" % (box, eid), json=bad)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (bad, r.text)
    r = api(srv, "POST", "/v1/boxes/%s/exec/%s/signal" % (box, eid), json={"signal": "KILL"})
    assert r.status_code == 200, r.text
    e = wait_until(srv, box, eid, finished, timeout=10)
    assert (e["status"], e["exit_code"]) == ("failed", 137), e
    # no helper files left behind
    bdir = os.path.join(srv.home, "boxes", box)
    deadline = time.time() + 10
    while [f for f in os.listdir(bdir) if f.startswith("exec_")] and time.time() < deadline:
        time.sleep(0.1)
    assert [f for f in os.listdir(bdir) if f.startswith("exec_")] == []
