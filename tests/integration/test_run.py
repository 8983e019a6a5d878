"""POST /run end to end: real runsc, real images from the local registry."""

import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import time

import httpx
import pytest

import boxer_server
from hardening import download, ok, run, upload
from rawhttp import open_conn

BUSYBOX = "busybox"
PYTHON = "python:3.12-slim"


def runsc_processes(server):
    return boxer_server.leftover_processes(server.home)


def assert_clean(server):
    deadline = time.time() + 10
    while True:
        procs = runsc_processes(server)
        runs = os.listdir(os.path.join(server.home, "runs"))
        runs = [r for r in runs if not r.startswith(".")]
        mounts = boxer_server.leftover_mounts(server.home)
        if not procs and not runs and not mounts:
            return
        assert time.time() < deadline, (procs, runs, mounts)
        time.sleep(0.1)


def test_hello_world(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["echo", "hello world"]})
    assert res["stdout"] == "hello world\n"
    assert res["stderr"] == ""
    assert res["exit_code"] == 0
    assert res["wall_ms"] > 0
    assert res["timed_out"] is False
    # boxer-<node_id>-<uuid4> (issue 17)
    assert re.fullmatch(r"boxer-[a-z0-9][a-z0-9-]{0,19}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        res["exec_id"])
    assert_clean(server)


def test_python_hello(server):
    res = ok(server, {"image": PYTHON, "cmd": ["python3", "-c", "print('hello world')"]})
    assert res["stdout"] == "hello world\n" and res["exit_code"] == 0


def test_nonzero_exit_and_stderr(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo oops >&2; exit 3"]})
    assert res["exit_code"] == 3
    assert res["stderr"] == "oops\n"


def test_killed_by_signal_128_plus_n(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "kill -9 $$"]})
    assert res["exit_code"] == 137
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "kill -TERM $$"]})
    assert res["exit_code"] == 143


def test_command_not_found_127(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["no-such-program"]})
    assert res["exit_code"] == 127
    assert "no-such-program" in res["stderr"]


def test_env_and_cwd(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo $FOO:$BAR; pwd"],
                      "env": ["FOO=1", "BAR=two=2"], "cwd": "/tmp"})
    assert res["stdout"] == "1:two=2\n/tmp\n"


def test_image_path_used_and_user_nobody(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo $PATH; id -u; hostname"]})
    path, uid, host = res["stdout"].splitlines()
    assert "/bin" in path
    assert uid == "65534"
    assert host == res["exec_id"]


def test_rootfs_read_only_and_tmp_writable(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c",
                                                "echo x > /bin/evil; echo $?; echo y > /tmp/ok && cat /tmp/ok"]})
    lines = res["stdout"].splitlines()
    assert lines[0] != "0"
    assert lines[1] == "y"


def test_input_file_readable_not_writable(server):
    upload(server, "inputs/data.txt", b"input data\n")
    res = ok(server, {"image": BUSYBOX, "files": ["inputs/data.txt"], "persist": True,
                      "cmd": ["sh", "-c", "cat /inputs/data.txt; echo x >> /inputs/data.txt; "
                              "echo rc=$?"]})
    assert res["stdout"].startswith("input data\n")
    assert "rc=0" not in res["stdout"]
    assert download(server, "inputs/data.txt").content == b"input data\n"


def test_nested_files(server):
    upload(server, "proj/src/pkg/mod.py", b"X = 41\n")
    upload(server, "proj/main.py", b"import sys; sys.path.insert(0, '/proj/src')\n"
                                   b"from pkg.mod import X\nprint(X + 1)\n")
    res = ok(server, {"image": PYTHON, "cmd": ["python3", "/proj/main.py"],
                      "files": ["proj/main.py", "proj/src/pkg/mod.py"], "persist": True})
    assert res["stdout"] == "42\n", res


@pytest.mark.parametrize("persist", [True, False])
def test_output_capture(server, persist):
    upload(server, "cap/in-%s.txt" % persist, b"in")
    res = ok(server, {"image": BUSYBOX, "persist": persist, "files": ["cap/in-%s.txt" % persist],
                      "cmd": ["sh", "-c", "mkdir -p /output/sub/deeper && echo top > /output/a.txt"
                              " && echo deep > /output/sub/deeper/b.txt"]})
    eid = res["exec_id"]
    a = download(server, "output/%s/a.txt" % eid)
    b = download(server, "output/%s/sub/deeper/b.txt" % eid)
    inp = download(server, "cap/in-%s.txt" % persist)
    if persist:
        assert a.content == b"top\n" and b.content == b"deep\n" and inp.status_code == 200
    else:
        assert a.status_code == 404 and b.status_code == 404 and inp.status_code == 404
        assert not os.path.exists(os.path.join(server.home, "files", "output", eid))


def test_missing_file_400_names_it(server):
    r = run(server, {"image": BUSYBOX, "cmd": ["true"], "files": ["nope/missing.txt"]})
    assert r.status_code == 400
    assert "nope/missing.txt" in r.json()["error"]


@pytest.mark.parametrize("body,word", [
    ({"cmd": ["true"]}, "image"),
    ({"image": BUSYBOX}, "cmd"),
    ({"image": BUSYBOX, "cmd": []}, "cmd"),
    ({"image": BUSYBOX, "cmd": "echo hi"}, "cmd"),
    ({"image": BUSYBOX, "cmd": ["a\u0000b"]}, "NUL"),
    ({"image": BUSYBOX, "cmd": ["true"], "env": ["NOEQUALS"]}, "env"),
    ({"image": BUSYBOX, "cmd": ["true"], "cwd": "relative"}, "cwd"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "internet"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "host"}, "host"),
    # Enum values compare whole strings (issue 11 item 18): no prefix, no
    # trailing NUL or byte, no empty string, no case folding.
    ({"image": BUSYBOX, "cmd": ["true"], "network": "none\u0000junk"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "none\u0000"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "sandboxx"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "sandbox\u0000x"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": ""}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "non"}, "network"),
    ({"image": BUSYBOX, "cmd": ["true"], "network": "NONE"}, "network"),
    ({"image": "UPPER/Case", "cmd": ["true"]}, "image"),
    ({"image": "-rf", "cmd": ["true"]}, "image"),
    ({"image": "busybox", "cmd": ["true"], "limits": {"memory_mb": -1}}, "memory_mb"),
    ({"image": "busybox", "cmd": ["true"], "limits": {"wall_clock_secs": 999999}},
     "wall_clock_secs"),
    ({"image": "busybox", "cmd": ["true"], "extra": 1}, "extra"),
    ({"image": "busybox", "cmd": ["true"], "persist\u0000": True}, "unknown field"),
    ({"image": "busybox", "cmd": ["true"], "limits": {"nofile\u0000x": 5}}, "unknown field"),
])
def test_bad_requests_400(server, body, word):
    r = run(server, body)
    assert r.status_code == 400, r.text
    assert word.lower() in r.json()["error"].lower(), r.text


def test_invalid_json_400(server):
    r = httpx.post(server.url + "/run", content=b'{"image": "busybox", "cmd": ["x"]',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = httpx.post(server.url + "/run", content=b'{"image": "a", "image": "b", "cmd": ["x"]}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "duplicate" in r.json()["error"].lower()


def test_unknown_image_500(server):
    r = run(server, {"image": "no-such-image:latest", "cmd": ["true"]})
    assert r.status_code == 500
    assert r.json()["error"]


def test_timeout_408_with_partial_output(server):
    t0 = time.time()
    r = run(server, {"image": BUSYBOX, "limits": {"wall_clock_secs": 2},
                     "cmd": ["sh", "-c", "echo started; echo err >&2; sleep 30"]})
    assert r.status_code == 408
    body = r.json()
    assert body["timed_out"] is True
    # Killed with SIGKILL at the wall clock: 128 + 9 (was 0, issue 11 item 16).
    assert body["exit_code"] == 137
    assert body["stdout"] == "started\n"
    assert body["stderr"] == "err\n"
    assert body["exec_id"].startswith("boxer-")
    assert "error" in body
    assert time.time() - t0 < 15
    assert_clean(server)


def test_image_failing_at_once_500_server_survives(make_server, tmp_path):
    """Issue 11 item 1: with skopeo missing from PATH the pull fails inside
    image_get; the run used to complete inside run_submit, whose caller then
    wrote into the freed request context (heap-use-after-free, an abort with
    the ASan build).  Every failure must be a clean 500, with the server
    alive: queued runs (max_concurrent_runs 1) and a client that leaves
    before its answer go through the same path."""
    # PATH without skopeo (runsc has a fallback lookup; nft is in /usr/sbin);
    # valgrind, when the suite runs under it, is started through PATH too.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    vg = shutil.which("valgrind")
    for name in (os.listdir(os.path.dirname(vg)) if vg else []):
        if name.startswith("valgrind"):  # the launcher execs valgrind.bin beside it
            os.symlink(os.path.join(os.path.dirname(vg), name), bindir / name)
    assert not shutil.which("skopeo", path="%s:/usr/sbin:/sbin" % bindir)
    srv = make_server(config={"max_concurrent_runs": 1},
                      env={"PATH": "%s:/usr/sbin:/sbin" % bindir})
    assert "skopeo not found" in srv.log_text()
    body = {"image": BUSYBOX, "cmd": ["true"]}
    for _ in range(3):
        r = httpx.post(srv.url + "/run", json=body, timeout=60)
        assert r.status_code == 500, r.text
        assert "skopeo" in r.json()["error"]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        rs = list(ex.map(lambda _: httpx.post(srv.url + "/run", json=body, timeout=60),
                         range(6)))
    assert [r.status_code for r in rs] == [500] * 6, [r.text for r in rs]
    # A client that sends its request and leaves at once.
    raw = json.dumps(body).encode()
    for _ in range(5):
        c = open_conn(srv.url)
        c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
        c.close()
    assert httpx.get(srv.url + "/healthz").status_code == 200
    r = httpx.get(srv.url + "/metrics")
    assert r.status_code == 200
    assert srv.proc.poll() is None, srv.log_text()[-3000:]
    assert srv.stop() == 0
    assert "AddressSanitizer" not in srv.log_text()


def test_output_flood_507(server):
    r = run(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "yes xxxxxxxxxxxxxxxx"]})
    assert r.status_code == 507
    assert "error" in r.json()
    assert_clean(server)


def test_output_dir_fill_bounded(make_server):
    srv = make_server(config={"output_files_limit_bytes": 4 * 1024 * 1024})
    r = httpx.post(srv.url + "/run", timeout=120, json={
        "image": BUSYBOX, "persist": True,
        "cmd": ["sh", "-c", "dd if=/dev/zero of=/output/big bs=1M count=50; echo rc=$?"]})
    assert r.status_code == 200, r.text
    assert "rc=0" not in r.json()["stdout"]
    st = os.statvfs(srv.home)
    assert st.f_bavail > 0


def test_many_output_files(server):
    res = ok(server, {"image": BUSYBOX, "persist": True, "cmd": [
        "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo $i > /output/f$i; i=$((i+1)); done"]})
    eid = res["exec_id"]
    d = os.path.join(server.home, "files", "output", eid)
    assert len(os.listdir(d)) == 200
    assert download(server, "output/%s/f199" % eid).content == b"199\n"


def test_symlink_in_output_not_captured(server):
    res = ok(server, {"image": BUSYBOX, "persist": True, "cmd": [
        "sh", "-c", "ln -s /etc/passwd /output/pw; ln -s ../../.. /output/up; "
                    "echo real > /output/real; ln /output/real /output/hard; mkfifo /output/fifo"]})
    eid = res["exec_id"]
    assert download(server, "output/%s/real" % eid).status_code in (200, 404)
    for name in ("pw", "up", "fifo"):
        assert download(server, "output/%s/%s" % (eid, name)).status_code == 404
    d = os.path.join(server.home, "files", "output", eid)
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        assert not os.path.islink(os.path.join(d, name))


def test_client_disconnect_kills_sandbox(server):
    body = json.dumps({"image": BUSYBOX, "cmd": ["sleep", "60"]}).encode()
    c = open_conn(server.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.time() + 30
    while not any("runsc" in cmd for _, cmd in runsc_processes(server)):
        assert time.time() < deadline, "sandbox never started"
        time.sleep(0.1)
    c.close()
    assert_clean(server)


def test_concurrent_runs(server):
    def one(i):
        return run(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo run-%d" % i]})

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(8)))
    for i, r in enumerate(results):
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "run-%d\n" % i
    assert len({r.json()["exec_id"] for r in results}) == 8
    assert_clean(server)


def test_queue_full_503(make_server):
    srv = make_server(config={"max_concurrent_runs": 1, "max_queued_runs": 1})
    body = {"image": BUSYBOX, "cmd": ["sleep", "3"]}
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        futs = [ex.submit(httpx.post, srv.url + "/run", json=body, timeout=60)]
        time.sleep(0.5)
        futs.append(ex.submit(httpx.post, srv.url + "/run", json=body, timeout=60))
        time.sleep(0.5)
        third = httpx.post(srv.url + "/run", json=body, timeout=60)
        assert third.status_code == 503
        assert "retry-after" in third.headers
        # health and files stay fast while runs are in flight
        t0 = time.time()
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert time.time() - t0 < 1
        assert [f.result().status_code for f in futs] == [200, 200]


def test_no_queue_503_at_once(make_server):
    """max_queued_runs: 0 means no waiting queue (README): with every run
    slot busy the next run is refused with 503 and Retry-After at once,
    without waiting for the busy slot; once the slot is free runs start."""
    srv = make_server(config={"max_concurrent_runs": 1, "max_queued_runs": 0})
    busy = {"image": BUSYBOX, "cmd": ["sleep", "5"]}
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(httpx.post, srv.url + "/run", json=busy, timeout=60)
        deadline = time.time() + 30
        while not runsc_processes(srv):
            assert time.time() < deadline and not fut.done(), "the first run never started"
            time.sleep(0.05)
        t0 = time.time()
        second = run(srv, {"image": BUSYBOX, "cmd": ["true"]})
        took = time.time() - t0
        assert second.status_code == 503, second.text
        assert "retry-after" in second.headers
        assert took < 2, took
        assert not fut.done(), "the 503 must not wait for the busy slot"
        assert fut.result().status_code == 200
    assert ok(srv, {"image": BUSYBOX, "cmd": ["echo", "free"]})["stdout"] == "free\n"
    assert_clean(srv)


def test_upload_and_run_pytest_flow(server):
    upload(server, "pyproj/calc.py", b"def add(a, b):\n    return a + b\n")
    upload(server, "pyproj/test_calc.py",
           b"from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\n"
           b"def test_fail():\n    assert add(1, 1) == 3\n")
    upload(server, "pyproj/runner.py", b"""
import json, sys, pytest
class Collect:
    def __init__(self):
        self.results = {}
    def pytest_runtest_logreport(self, report):
        if report.when == 'call':
            self.results[report.nodeid] = report.outcome
c = Collect()
code = pytest.main(['-q', '-p', 'no:cacheprovider', '/pyproj'], plugins=[c])
json.dump({'exit': int(code), 'tests': c.results}, open('/output/report.json', 'w'))
""")
    res = ok(server, {"image": PYTHON, "persist": True,
                      "files": ["pyproj/calc.py", "pyproj/test_calc.py", "pyproj/runner.py"],
                      "cmd": ["python3", "/pyproj/runner.py"], "cwd": "/pyproj"})
    rep = download(server, "output/%s/report.json" % res["exec_id"])
    assert rep.status_code == 200, res
    report = json.loads(rep.content)
    assert report["exit"] == 1
    assert report["tests"] == {"test_calc.py::test_add": "passed",
                               "test_calc.py::test_fail": "failed"}


def test_binary_stdout_is_valid_json(server):
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "printf 'ok\\377\\000\\001end'"]})
    assert res["stdout"] == "ok\ufffd\u0000\u0001end"


def test_allowed_registries(make_server):
    srv = make_server(config={"allowed_registries": ["docker.io"]})
    r = httpx.post(srv.url + "/run", json={"image": "127.0.0.1:22/evil/img", "cmd": ["true"]})
    assert r.status_code == 400 and "not allowed" in r.json()["error"]
    r = httpx.post(srv.url + "/run", json={"image": BUSYBOX, "cmd": ["true"]}, timeout=120)
    assert r.status_code == 200, r.text


def test_platform_fallback_to_ptrace(make_server, tmp_path):
    # A runsc that, like bookworm's 2022 build, does not know systrap.
    fake = tmp_path / "runsc-without-systrap"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do\n  [ \"$a\" = --platform=systrap ] && "
                    "{ echo 'unknown platform: systrap' >&2; exit 128; }\ndone\n"
                    "exec /usr/bin/runsc \"$@\"\n")
    fake.chmod(0o755)
    srv = make_server(config={"runsc_path": str(fake)})
    r = httpx.post(srv.url + "/run", json={"image": BUSYBOX, "cmd": ["echo", "on ptrace"]},
                   timeout=120)
    assert r.status_code == 200 and r.json()["stdout"] == "on ptrace\n", r.text
    log = srv.log_text()
    assert "WARNING" in log and "falling back to ptrace" in log
    assert "platform ptrace" in log


# ---- persist=false: inputs and outputs go however the run ends (issue 11 item 12)

def metric(srv, name):
    text = httpx.get(srv.url + "/metrics").text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def wait_gone(srv, path, timeout=15):
    # Deletion runs in a child after the run ends: poll.
    deadline = time.time() + timeout
    while True:
        r = download(srv, path)
        if r.status_code == 404:
            return
        assert time.time() < deadline, "%s still downloadable: %d" % (path, r.status_code)
        time.sleep(0.1)


def send_run(srv, body):
    data = json.dumps(body).encode()
    c = open_conn(srv.url)
    c.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(data) + data)
    return c


def test_persist_false_input_gone_after_disconnect_while_queued(make_server):
    srv = make_server(config={"max_concurrent_runs": 1, "max_queued_runs": 4})
    upload(srv, "q/in.txt", b"secret")
    busy = send_run(srv, {"image": BUSYBOX, "cmd": ["sleep", "30"]})
    try:
        deadline = time.time() + 60
        while metric(srv, "boxer_runs_in_flight") != 1:
            assert time.time() < deadline
            time.sleep(0.1)
        c = send_run(srv, {"image": BUSYBOX, "cmd": ["cat", "/q/in.txt"], "files": ["q/in.txt"]})
        while metric(srv, "boxer_runs_queued") != 1:
            assert time.time() < deadline
            time.sleep(0.1)
        assert download(srv, "q/in.txt").content == b"secret"
        c.close()
        wait_gone(srv, "q/in.txt")
    finally:
        busy.close()
    assert_clean(srv)
    srv.stop()


def test_persist_false_input_gone_after_disconnect_while_running(server):
    upload(server, "r/in.txt", b"secret")
    c = send_run(server, {"image": BUSYBOX, "cmd": ["sleep", "60"], "files": ["r/in.txt"]})
    deadline = time.time() + 30
    while not any("runsc" in cmd for _, cmd in runsc_processes(server)):
        assert time.time() < deadline, "sandbox never started"
        time.sleep(0.1)
    assert download(server, "r/in.txt").content == b"secret"
    c.close()
    wait_gone(server, "r/in.txt")
    assert_clean(server)


@pytest.mark.parametrize("end,status", [
    ("timeout", 408), ("output_limit", 507), ("bad_image", 500)])
def test_persist_false_input_gone_on_error_ends(server, end, status):
    path = "e/%s.txt" % end
    upload(server, path, b"secret")
    body = {"image": BUSYBOX, "files": [path], "cmd": ["sh", "-c", "echo x > /output/o; sleep 30"],
            "limits": {"wall_clock_secs": 2}}
    if end == "output_limit":
        body["cmd"] = ["sh", "-c", "echo x > /output/o; yes xxxxxxxxxxxxxxxx"]
    if end == "bad_image":
        body["image"] = "no-such-image:latest"
    r = run(server, body)
    assert r.status_code == status, r.text
    wait_gone(server, path)
    eid = r.json()["exec_id"]
    wait_gone(server, "output/%s/o" % eid)
    assert_clean(server)


# ---- /output: what is not captured is said in the answer (issue 11 item 13)

def test_output_errors_name_skipped_entries(server):
    # (gVisor keeps FIFOs and sockets made in a sandbox inside its own
    # kernel, so the host never sees one in /output; store capture's unit
    # test covers those.  Symlinks, hard links and bad names do reach it.)
    res = ok(server, {"image": BUSYBOX, "persist": True, "cmd": [
        "sh", "-c", "echo real > /output/real; ln -s /etc/passwd /output/pw; "
                    "mkdir /output/d; echo a > /output/d/a; ln /output/d/a /output/d/hard; "
                    "echo x > \"/output/d/$(printf 'b\\377d')\""]})
    errs = res["output_errors"]
    assert "/output/pw: symbolic link, not captured" in errs, errs
    assert any(e.startswith("/output/d/hard: hard link") for e in errs), errs
    assert any(e.startswith("/output/d: an entry was not captured: its name") for e in errs), errs
    assert len(errs) == 4, errs  # d/a is one of the two names of the hard link
    assert download(server, "output/%s/real" % res["exec_id"]).content == b"real\n"
    # Nothing skipped: no output_errors field at all (backward compatible).
    assert "output_errors" not in ok(server, {"image": BUSYBOX, "cmd": ["true"]})


def test_capture_failure_is_the_answer(make_server):
    srv = make_server()
    out = os.path.join(srv.home, "files", "output")
    if os.path.isdir(out):
        os.rmdir(out)
    with open(out, "w") as f:
        f.write("in the way")
    r = httpx.post(srv.url + "/run", timeout=120, json={
        "image": BUSYBOX, "persist": True, "cmd": ["sh", "-c", "echo hi > /output/x; echo done"]})
    assert r.status_code == 500, r.text
    assert "capturing /output" in r.json()["error"]
    os.unlink(out)
    assert_clean(srv)
    srv.stop()


# ---- an empty /output takes no capture child (review: a fork per run) ----

def run_stream_result(srv, body):
    with httpx.stream("POST", srv.url + "/run", json=dict(body, stream=True), timeout=120) as r:
        assert r.status_code == 200, r.read()
        evs = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert evs[-1]["type"] == "result", evs
    return evs[-1]


def test_empty_output_answers_as_a_capture_of_nothing(server):
    """A run that leaves /output empty is not captured (no child); one that
    leaves only an empty directory still goes through the capture child,
    which keeps nothing.  Both answers must be the same: same fields, empty
    "outputs" for return_outputs, no output_errors, nothing in the store,
    on /run, its stream and /v1/run.  A run leaving one file still gets it."""
    empty = ["true"]
    via_child = ["mkdir", "/output/d"]  # an entry: the capture runs, keeps nothing
    gone = ["sh", "-c", "echo x > /output/f && rm /output/f"]
    store_out = os.path.join(server.home, "files", "output")
    for ret in (True, False):
        answers = []
        for cmd in (empty, via_child, gone):
            res = ok(server, {"image": BUSYBOX, "cmd": cmd, "persist": True,
                              "return_outputs": ret})
            assert res["exit_code"] == 0, res
            assert "output_errors" not in res and "outputs_left" not in res, res
            assert not os.path.exists(os.path.join(store_out, res["exec_id"])), res
            answers.append(res)
        keys = {frozenset(a) for a in answers}
        assert len(keys) == 1, answers
        if ret:
            assert all(a["outputs"] == {} for a in answers), answers
        else:
            assert all("outputs" not in a for a in answers), answers

    # the stream's result event and /v1/run: the same fields either way
    for variant in ("stream", "v1"):
        answers = []
        for cmd in (empty, via_child):
            if variant == "stream":
                res = run_stream_result(server, {"image": BUSYBOX, "cmd": cmd, "persist": True})
            else:
                r = httpx.post(server.url + "/v1/run", json={"image": BUSYBOX, "cmd": cmd},
                               timeout=120)
                assert r.status_code == 200, r.text
                res = r.json()
            assert res["exit_code"] == 0 and "output_errors" not in res, res
            answers.append(res)
        assert set(answers[0]) == set(answers[1]), answers

    # one file: still captured, returned and stored
    res = ok(server, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo one > /output/f"],
                      "persist": True, "return_outputs": True})
    assert res["outputs"] == {"f": "b25lCg=="}, res
    assert download(server, "output/%s/f" % res["exec_id"]).content == b"one\n"
    res = run_stream_result(server, {"image": BUSYBOX, "persist": True,
                                     "cmd": ["sh", "-c", "echo two > /output/f"]})
    assert res["exit_code"] == 0, res
    assert download(server, "output/%s/f" % res["exec_id"]).content == b"two\n"
