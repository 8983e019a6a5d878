"""Scale-out on one node (issue 17): node ids in box, exec and run ids,
/readyz, the SIGTERM drain, stateless runs (inputs, return_outputs).  Real
runsc, real images from the local registry.  The balancer test is
test_haproxy.py."""

import json
import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

import boxer_server

BUSYBOX = "busybox"
NODE = "node-a7"


@pytest.fixture(scope="module")
def nserver(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    srv = boxer_server.Server(d, config={"node_id": NODE}, registry=registry).start()
    yield srv
    boxer_server.stop_and_check(srv)


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


def run(srv, body, **kw):
    return api(srv, "POST", "/run", json=body, **kw)


def test_node_id_in_ids_info_and_metrics(nserver):
    srv = nserver
    r = run(srv, {"image": BUSYBOX, "cmd": ["hostname"]})
    assert r.status_code == 200, r.text
    eid = r.json()["exec_id"]
    assert re.fullmatch(r"boxer-%s-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                        % NODE, eid), eid
    # still the sandbox's host name (at most 63 bytes with the longest node id)
    assert r.json()["stdout"] == eid + "\n"
    assert api(srv, "GET", "/v1/info").json()["node_id"] == NODE
    m = api(srv, "GET", "/metrics").text
    assert 'boxer_node_info{node_id="%s"} 1\n' % NODE in m

    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        assert re.fullmatch(r"box_%s_[0-9a-f]{16}" % NODE, box), box
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["echo", "hi"], "wait": True})
        assert r.status_code == 200, r.text
        assert re.fullmatch(r"exec_%s_[0-9a-f]{16}" % NODE, r.json()["id"]), r.json()
        assert api(srv, "GET", "/v1/boxes/%s/exec/%s" % (box, r.json()["id"])).status_code == 200
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def test_old_box_ids_still_load(make_server):
    """A record written before node ids (box_<16 hex>) loads, starts and
    runs execs after an upgrade."""
    srv = make_server(config={"node_id": "n1"})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    assert api(srv, "POST", "/v1/boxes/%s:stop" % new).status_code == 200
    srv.stop()
    old = "box_0123456789abcdef"
    bdir = os.path.join(srv.home, "boxes")
    os.rename(os.path.join(bdir, new), os.path.join(bdir, old))
    rec_path = os.path.join(bdir, old, "box.json")
    with open(rec_path) as f:
        rec = json.load(f)
    rec["id"] = old
    with open(rec_path, "w") as f:
        json.dump(rec, f)
    srv.start()
    assert api(srv, "GET", "/v1/boxes/" + old).json()["status"] == "stopped"
    assert api(srv, "POST", "/v1/boxes/%s:start" % old).status_code == 200
    r = api(srv, "POST", "/v1/boxes/%s/exec" % old, json={"cmd": ["echo", "ok"], "wait": True})
    assert r.status_code == 200 and r.json()["stdout"] == "ok\n", r.text
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % old).status_code == 204


@pytest.mark.parametrize("bad", ["Node_1", "a.b", "-x", "x" * 21, ""])
def test_bad_node_id_refused_at_start(tmp_path, bad):
    cfg = {"home": str(tmp_path / "home"), "listen_addr": "127.0.0.1:%d" % boxer_server.free_port(),
           "node_id": bad}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    out = subprocess.run([boxer_server.BOXER_BIN, "--config", str(p)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30)
    assert out.returncode != 0
    assert b"node_id" in out.stdout, out.stdout


# ---- /readyz ----

def wait_for(pred, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not met within %ss" % timeout)


def test_readyz_ready_and_public(make_server):
    srv = make_server(config={"node_id": NODE, "auth_tokens": ["t0ken-for-readyz"]})
    # no token, a foreign Host: answered like /healthz
    r = httpx.get(srv.url + "/readyz", headers={"Host": "evil.example"})
    assert r.status_code == 200, r.text
    assert r.json() == {"ready": True, "node_id": NODE}
    assert httpx.get(srv.url + "/metrics").status_code == 401
    m = httpx.get(srv.url + "/metrics", headers={"Authorization": "Bearer t0ken-for-readyz"}).text
    assert "boxer_ready 1\n" in m and "boxer_draining 0\n" in m
    doc = httpx.get(srv.url + "/swagger/openapi.json",
                    headers={"Authorization": "Bearer t0ken-for-readyz"}).json()
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_readyz_queue_full_and_memory(make_server):
    srv = make_server(config={"max_concurrent_runs": 1, "max_queued_runs": 0})
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", run(srv, {"image": BUSYBOX, "cmd": ["sleep", "2"]})))
    t.start()
    r = wait_for(lambda: (lambda x: x if x.status_code == 503 else None)(
        httpx.get(srv.url + "/readyz")))
    assert "run queue full" in r.json()["reason"], r.text
    assert r.headers.get("Retry-After")
    t.join()
    assert out["r"].status_code == 200
    assert httpx.get(srv.url + "/readyz").status_code == 200

    # a default run no longer fits the memory budget
    srv2 = make_server(config={"total_memory_mb": 300, "defaults": {"memory_mb": 256,
                                                                     "wall_clock_secs": 60}})
    t = threading.Thread(target=lambda: out.__setitem__(
        "r2", run(srv2, {"image": BUSYBOX, "cmd": ["sleep", "2"]})))
    t.start()
    r = wait_for(lambda: (lambda x: x if x.status_code == 503 else None)(
        httpx.get(srv2.url + "/readyz")))
    assert "memory budget exhausted" in r.json()["reason"], r.text
    t.join()
    assert out["r2"].status_code == 200
    assert httpx.get(srv2.url + "/readyz").status_code == 200


def test_readyz_disk(make_server):
    st = os.statvfs("/tmp")
    assert st.f_bavail * 100 // st.f_blocks < 99  # the check below can fail
    srv = make_server(config={"min_free_disk_percent": 99})
    r = httpx.get(srv.url + "/readyz")
    assert r.status_code == 503 and "min_free_disk_percent" in r.json()["reason"], r.text
    assert httpx.get(srv.url + "/healthz").status_code == 200


# ---- the SIGTERM drain ----

def test_sigterm_drains(make_server):
    srv = make_server(config={"node_id": NODE, "drain_timeout_secs": 30})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "sleep 3; echo done"]})))
    t.start()
    wait_for(lambda: "boxer_runs_in_flight 1\n" in httpx.get(srv.url + "/metrics").text)
    srv.proc.send_signal(signal.SIGTERM)
    r = wait_for(lambda: (lambda x: x if x.status_code == 503 else None)(
        httpx.get(srv.url + "/readyz")))
    assert r.json()["reason"].startswith("draining"), r.text
    r = run(srv, {"image": BUSYBOX, "cmd": ["true"]})
    assert r.status_code == 503 and r.headers["Retry-After"] and "draining" in r.text, r.text
    r = api(srv, "POST", "/v1/run", json={"image": BUSYBOX, "cmd": ["true"]})
    assert r.status_code == 503 and r.json()["code"] == "RESOURCE_EXCEEDED", r.text
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 503 and r.headers["Retry-After"], r.text
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "wait": True})
    assert r.status_code == 503, r.text
    assert api(srv, "GET", "/v1/boxes/" + box).status_code == 200
    assert "boxer_draining 1\n" in httpx.get(srv.url + "/metrics").text
    t.join()
    # the run in flight finished normally
    assert out["r"].status_code == 200 and out["r"].json()["stdout"] == "done\n", out["r"].text
    assert srv.proc.wait(timeout=40) == 0
    log = srv.log_text()
    assert "draining" in log and "drained" in log
    assert boxer_server.leftover_mounts(srv.home) == []
    # the box was stopped cleanly, disk kept, and starts again with the node
    assert os.path.exists(os.path.join(srv.home, "boxes", box, "disk.img"))
    srv.log.close()
    srv.start()
    assert wait_for(lambda: api(srv, "GET", "/v1/boxes/" + box).json()["status"] == "running")
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def test_second_sigterm_stops_at_once(make_server):
    srv = make_server(config={"drain_timeout_secs": 60})
    def long_run():
        try:
            run(srv, {"image": BUSYBOX, "cmd": ["sleep", "60"]}, timeout=90)
        except httpx.HTTPError:
            pass  # the server stops under it: that is the point

    t = threading.Thread(target=long_run)
    t.daemon = True
    t.start()
    wait_for(lambda: "boxer_runs_in_flight 1\n" in httpx.get(srv.url + "/metrics").text)
    srv.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(srv.url + "/readyz").status_code == 503)
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0
    assert time.time() - t0 < 15
    assert boxer_server.leftover_processes(srv.home) == []


# ---- stateless runs: inputs and return_outputs ----

def test_inputs_and_return_outputs(nserver):
    import base64
    srv = nserver
    blob = bytes(range(256))
    r = run(srv, {
        "image": BUSYBOX,
        "cmd": ["sh", "-c", "/work/run.sh && cat /work/data/a.txt && "
                "cmp /work/blob /work/blob && cp /work/blob /output/blob && "
                "mkdir -p /output/sub && echo deep > /output/sub/d.txt && "
                "ls -ln /work/run.sh | cut -c1-10 && stat -c %u /work/data/a.txt"],
        "inputs": {
            "work/run.sh": {"content": "#!/bin/sh\necho script ran\n", "mode": 0o755},
            "work/data/a.txt": {"content": "h\u00e9llo\n", "encoding": "utf8"},
            "./work//blob": {"content": base64.b64encode(blob).decode(), "encoding": "base64"},
        },
        "return_outputs": True})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["exit_code"] == 0, b
    assert b["stdout"] == "script ran\nh\u00e9llo\n-r-xr-xr-x\n65534\n" or \
        b["stdout"] == "script ran\nh\u00e9llo\n-rwxr-xr-x\n65534\n", b["stdout"]
    outs = {k: base64.b64decode(v) for k, v in b["outputs"].items()}
    assert outs == {"blob": blob, "sub/d.txt": b"deep\n"}
    assert "outputs_left" not in b
    # persist false: nothing stays on the node
    path = "/files?path=output/%s/blob" % b["exec_id"]
    assert wait_for(lambda: api(srv, "GET", path).status_code == 404)

    # no /output at all: an empty object
    r = run(srv, {"image": BUSYBOX, "cmd": ["true"], "return_outputs": True})
    assert r.status_code == 200 and r.json()["outputs"] == {}, r.text
    # without return_outputs: no field
    assert "outputs" not in run(srv, {"image": BUSYBOX, "cmd": ["true"]}).json()


def test_return_outputs_over_the_inline_limit(make_server):
    import base64
    srv = make_server(config={"max_inline_output_bytes": 10})
    r = run(srv, {"image": BUSYBOX,
                  "cmd": ["sh", "-c", "echo abc > /output/a; head -c 100 /dev/zero > /output/b"],
                  "return_outputs": True})
    assert r.status_code == 200, r.text
    b = r.json()
    assert {k: base64.b64decode(v) for k, v in b["outputs"].items()} == {"a": b"abc\n"}
    left = "output/%s/b" % b["exec_id"]
    assert b["outputs_left"] == [left]
    # left in the store (persist false or not) for the client to fetch
    time.sleep(0.5)
    g = api(srv, "GET", "/files?path=" + left)
    assert g.status_code == 200 and g.content == b"\0" * 100


def test_inputs_refused(make_server):
    srv = make_server(config={"upload_limit_bytes": 1000, "max_request_body_bytes": 4 << 20})
    base = {"image": BUSYBOX, "cmd": ["true"]}

    def bad(inputs, status=400, word=None, **extra):
        r = run(srv, dict(base, inputs=inputs, **extra))
        assert r.status_code == status, (inputs, r.text)
        if word:
            assert word in r.json()["error"], r.text

    bad({"output/x": {"content": "a"}}, word="output")
    bad({"../x": {"content": "a"}})
    bad({"x": {"content": "!!", "encoding": "base64"}}, word="base64")
    bad({"x": {"content": "a", "encoding": "utf-8"}}, word="encoding")
    bad({"x": {"content": "a", "mode": 0o1000}}, word="mode")
    bad({"x": {"content": "a", "owner": 1}}, word="unknown")
    bad({"x": {"data": "a"}}, word="unknown field data")
    bad({"x": {"mode": 420}}, word="content")
    bad({"x": "a"})
    bad(["x"])
    bad({"x": {"content": "a" * 1001}}, 413, "upload_limit_bytes")
    import base64
    for n in (1001, 2000):  # exactly after decoding, and before
        bad({"x": {"content": base64.b64encode(b"a" * n).decode(), "encoding": "base64"}}, 413,
            "upload_limit_bytes")
    bad({"x": {"content": "a"}}, word="also in files", files=["x"])
    r = run(srv, dict(base, return_outputs=True, stream=True))
    assert r.status_code == 400 and "stream" in r.text
    r = run(srv, dict(base, return_outputs=1))
    assert r.status_code == 400
    # the body limit is max_request_body_bytes
    import socket
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % ((4 << 20) + 1))
        assert s.recv(64).startswith(b"HTTP/1.1 413"), "no 413"
