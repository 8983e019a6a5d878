"""Persistent boxes (/v1/boxes, issue 13, first slice): real runsc, real
images from the local registry, real loop devices and mounts."""

import contextlib
import http.server
import json
import os
import threading
import subprocess
import time

import httpx
import pytest

import boxer_server
from hardening import processes_naming

BUSYBOX = "busybox"
UPLOAD_LIMIT = 4 << 20
# Own bridge and subnet, named like test_network.py's ("bxt" + this pid),
# so a suite running at the same time counts them as someone else's.
_PID = os.getpid()
BRIDGE = "bxtb%04x" % (_PID & 0xFFFF)
SUBNET = "10.%d.%d" % (100 + _PID % 150, 200 + _PID % 50)


def box_cgroups(box_id):
    """Cgroup directories named after the box (one per start generation)."""
    found = []
    for top in os.listdir("/sys/fs/cgroup"):
        for dirpath, dirnames, _ in os.walk(os.path.join("/sys/fs/cgroup", top)):
            for d in dirnames:
                if d.startswith(box_id):
                    found.append(os.path.join(dirpath, d))
            # the base directories are a few levels down; skip deep trees
            if dirpath.count("/") > 12:
                dirnames[:] = []
    return found


def loop_devices(path, settle=3.0):
    """Loop devices backed by path.  The kernel (5.17+) detaches an
    autoclear device from a work queue after the last unmount: allow it a
    moment when we expect none."""
    deadline = time.time() + settle
    while True:
        out = subprocess.run(["losetup", "-j", path], stdout=subprocess.PIPE, check=True)
        text = out.stdout.decode().strip()
        if not text or time.time() > deadline:
            return text
        time.sleep(0.05)


def wait_gone(path, timeout=30.0):
    """A removed box's directory goes once its background `runsc delete`
    has finished (~1.7 s; much longer on a loaded 2-core host)."""
    deadline = time.time() + timeout
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    return not os.path.exists(path)


@pytest.fixture(scope="module")
def bserver(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("boxes")
    vol_root = tmp_path_factory.mktemp("volroot")
    srv = boxer_server.Server(d, config={"upload_limit_bytes": UPLOAD_LIMIT,
                                         "volume_roots": [str(vol_root)],
                                         "bridge_name": BRIDGE, "sandbox_subnet": SUBNET + ".0/24"},
                              registry=registry).start()
    srv.vol_root = vol_root
    yield srv
    boxer_server.stop_and_check(srv)


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


def exec_wait(srv, box, cmd, **extra):
    body = dict(cmd=cmd, wait=True, **extra)
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def new_box(srv, **fields):
    """Creates a box (busybox with a 1 GB disk unless fields say otherwise);
    returns its id."""
    body = {"image": BUSYBOX, "disk_size_gb": 1}
    body.update(fields)
    r = api(srv, "POST", "/v1/boxes", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@contextlib.contextmanager
def a_box(srv, **fields):
    """A new box for the with-block, removed (forced) after it, failed or not."""
    box = new_box(srv, **fields)
    try:
        yield box
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


BOXINFO_KEYS = {"id", "name", "status", "image", "cpu", "memory_mb", "disk_size_gb", "network",
                "workdir", "env", "volumes", "error_code", "error_message", "created_at",
                "started_at", "stopped_at"}
EXECINFO_KEYS = {"id", "box_id", "status", "cmd", "env", "workdir", "timeout_ms", "exit_code",
                 "error_message", "created_at", "finished_at"}


def test_box_lifecycle_disk_persists(bserver):
    srv = bserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "name": "life", "disk_size_gb": 1,
                                            "env": {"GREETING": "hello"}})
    assert r.status_code == 201, r.text
    info = r.json()
    assert set(info) == BOXINFO_KEYS
    assert info["status"] == "running" and info["id"].startswith("box_")
    assert info["name"] == "life" and info["workdir"] == "/root" and info["disk_size_gb"] == 1
    box = info["id"]
    bdir = os.path.join(srv.home, "boxes", box)
    disk = os.path.join(bdir, "disk.img")
    assert os.path.getsize(disk) == 1 << 30
    assert os.stat(disk).st_blocks * 512 < 200 << 20  # sparse
    assert loop_devices(disk, settle=0) != ""

    # GET by id and by name; BoxRun keys only unless ?extra=1
    assert api(srv, "GET", "/v1/boxes/" + box).json()["id"] == box
    assert api(srv, "GET", "/v1/boxes/life").json()["id"] == box
    assert "image_digest" in api(srv, "GET", "/v1/boxes/life?extra=1").json()
    assert [b["id"] for b in api(srv, "GET", "/v1/boxes").json()] == [box]

    e = exec_wait(srv, box, ["echo", "hi"])
    assert e["exit_code"] == 0 and e["status"] == "succeeded" and e["stdout"] == "hi\n"
    assert e["id"].startswith("exec_") and e["box_id"] == box
    # root in the box, box env and workdir, the init is PID 1
    e = exec_wait(srv, box, ["sh", "-c", "id -u; echo $GREETING; pwd; cat /proc/1/cmdline"])
    assert e["stdout"].split("\n")[:3] == ["0", "hello", "/root"], e
    assert e["stdout"].split("\n")[3].startswith("/.boxer/init")
    e = exec_wait(srv, box, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (e["exit_code"], e["status"], e["stdout"], e["stderr"]) == (3, "failed", "out\n",
                                                                         "err\n")
    # the exec env overrides the box env
    e = exec_wait(srv, box, ["sh", "-c", "echo $GREETING"], env={"GREETING": "bye"})
    assert e["stdout"] == "bye\n"

    # pip/apt-style write under /usr, read back by the next exec
    e = exec_wait(srv, box, ["sh", "-c", "mkdir -p /usr/lib/pkg && echo v1 > /usr/lib/pkg/f"])
    assert e["exit_code"] == 0, e
    assert exec_wait(srv, box, ["cat", "/usr/lib/pkg/f"])["stdout"] == "v1\n"
    # the image's rootfs underneath is untouched
    assert not any(os.path.exists(os.path.join(p, "usr/lib/pkg"))
                   for p in [os.path.join(srv.home, "images")])

    # a non-wait exec answers 201 running with BoxRun's keys only
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["sleep", "0.2"]})
    assert r.status_code == 201, r.text
    assert set(r.json()) == EXECINFO_KEYS and r.json()["status"] == "running"

    r = api(srv, "POST", "/v1/boxes/%s:stop" % box)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stopped" and r.json()["stopped_at"]
    assert processes_naming(box, but_delete=True) == []
    assert box_cgroups(box) == []
    assert loop_devices(disk) == ""
    assert boxer_server.leftover_mounts(srv.home) == []
    assert os.path.exists(disk)
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "wait": True})
    assert r.status_code == 409 and r.json()["code"] == "BOX_NOT_RUNNING", r.text
    r = api(srv, "POST", "/v1/boxes/%s:stop" % box)
    assert r.status_code == 409 and r.json()["code"] == "BOX_NOT_RUNNING", r.text

    r = api(srv, "POST", "/v1/boxes/%s:start" % box)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    assert exec_wait(srv, box, ["cat", "/usr/lib/pkg/f"])["stdout"] == "v1\n"
    r = api(srv, "POST", "/v1/boxes/%s:start" % box)
    assert r.status_code == 409 and r.json()["code"] == "BOX_ALREADY_RUNNING", r.text

    # removing a running box needs force
    r = api(srv, "DELETE", "/v1/boxes/" + box)
    assert r.status_code == 409 and r.json()["code"] == "BOX_ALREADY_RUNNING", r.text
    r = api(srv, "DELETE", "/v1/boxes/%s?force=true" % box)
    assert r.status_code == 204, r.text
    assert api(srv, "GET", "/v1/boxes/" + box).status_code == 404
    assert wait_gone(bdir), (os.listdir(bdir), processes_naming(box))
    assert box_cgroups(box) == []
    assert loop_devices(disk) == ""
    assert boxer_server.leftover_mounts(srv.home) == []
    # runsc delete runs in the background after a stop: give it its time
    deadline = time.time() + 10
    while processes_naming(box) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_naming(box) == []


def test_box_errors(bserver):
    srv = bserver
    r = api(srv, "GET", "/v1/boxes/box_nope")
    assert r.status_code == 404 and r.json()["code"] == "BOX_NOT_FOUND"
    assert r.json()["message"] == r.json()["error"]
    r = api(srv, "POST", "/v1/boxes/box_nope/exec", json={"cmd": ["true"]})
    assert r.status_code == 404 and r.json()["code"] == "BOX_NOT_FOUND"
    r = api(srv, "POST", "/v1/boxes", json={"name": "x"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST"
    assert "image" in r.json()["message"]
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "name": "Bad Name"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST"
    # only JSON bodies (a page may send text/plain across origins unasked)
    r = api(srv, "POST", "/v1/boxes", content=b'{"image": "busybox"}',
            headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
    assert api(srv, "GET", "/v1/boxes").json() == []
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "memory_mb": 1 << 30})
    assert r.status_code == 400 and "memory_mb" in r.json()["message"]


def test_image_pull_failure(bserver):
    srv = bserver
    r = api(srv, "POST", "/v1/boxes", json={"image": "nosuchimage-xyz", "name": "nopull"})
    assert r.status_code == 502 and r.json()["code"] == "IMAGE_PULL_FAILED", r.text
    info = api(srv, "GET", "/v1/boxes/nopull").json()
    assert info["status"] == "error" and info["error_code"] == "IMAGE_PULL_FAILED"
    r = api(srv, "POST", "/v1/boxes/nopull/exec", json={"cmd": ["true"]})
    assert r.status_code == 409 and r.json()["code"] == "BOX_NOT_RUNNING"
    assert api(srv, "DELETE", "/v1/boxes/nopull").status_code == 204
    assert api(srv, "GET", "/v1/boxes/nopull").status_code == 404
    assert not os.path.exists(os.path.join(srv.home, "boxes", info["id"]))


def test_exec_timeout_kills_the_process_group(bserver):
    srv = bserver
    with a_box(srv) as box:
        comms = ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/comm; done 2>/dev/null"]
        e = exec_wait(srv, box, ["echo", "ok"], timeout_ms=5000)
        assert (e["exit_code"], e["stdout"], e["timed_out"]) == (0, "ok\n", False), e
        assert e["timeout_ms"] == 5000 and e["cmd"] == ["echo", "ok"]
        t = time.time()
        e = exec_wait(srv, box, ["sh", "-c", "sleep 60 & sleep 61; echo never"], timeout_ms=500)
        assert time.time() - t < 4.5, e
        assert (e["status"], e["exit_code"], e["timed_out"]) == ("failed", 137, True), e
        assert e["stdout"] == "" and "timed out" in e["error_message"]
        # the whole group went, background child included; the box lives on
        out = exec_wait(srv, box, comms)["stdout"].split()
        assert "sleep" not in out and "init" in out, out


def test_box_whose_init_dies_is_stopped_and_starts_again(bserver):
    srv = bserver
    with a_box(srv) as box:
        assert exec_wait(srv, box, ["sh", "-c", "echo 1 > /etc/marker"])["exit_code"] == 0
        # root in the box may end its init: the box is then stopped, not stuck "running"
        exec_wait(srv, box, ["kill", "-TERM", "1"])
        deadline = time.time() + 30
        while api(srv, "GET", "/v1/boxes/" + box).json()["status"] != "stopped":
            assert time.time() < deadline
            time.sleep(0.1)
        # the sandbox's last processes and its cgroup go within moments of
        # "stopped" (they are killed, then reaped)
        deadline = time.time() + 10
        while processes_naming(box, but_delete=True) or box_cgroups(box):
            assert time.time() < deadline, (processes_naming(box, but_delete=True),
                                            box_cgroups(box))
            time.sleep(0.1)
        r = api(srv, "POST", "/v1/boxes/%s:start" % box)
        assert r.status_code == 200, r.text
        assert exec_wait(srv, box, ["cat", "/etc/marker"])["stdout"] == "1\n"


def test_stopped_box_removed_without_force(bserver):
    srv = bserver
    box = new_box(srv)
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "name": "dup", "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    r2 = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "name": "dup"})
    assert r2.status_code == 409 and r2.json()["code"] == "NAME_ALREADY_EXISTS"
    # a background child keeps the pipes open: the exec still ends with its runsc process
    e = exec_wait(srv, box, ["sh", "-c", "sleep 30 & echo started"])
    assert e["exit_code"] == 0 and e["stdout"] == "started\n"
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    assert api(srv, "DELETE", "/v1/boxes/" + box).status_code == 204
    assert api(srv, "DELETE", "/v1/boxes/dup?force=true").status_code == 204
    boxes = os.path.join(srv.home, "boxes")
    for d in os.listdir(boxes):
        assert wait_gone(os.path.join(boxes, d)), (d, os.listdir(os.path.join(boxes, d)),
                                                   processes_naming(d))
    assert os.listdir(boxes) == []


def test_exec_runsc_failures_and_signals(bserver):
    srv = bserver
    with a_box(srv) as box:
        bdir = os.path.join(srv.home, "boxes", box)
        # runsc's own failure is not the command's status
        e = exec_wait(srv, box, ["/nonexistent"])
        assert (e["status"], e["exit_code"]) == ("failed", 127), e
        assert "/nonexistent" in e["error_message"] and e["stderr"] == ""
        e = exec_wait(srv, box, ["true"], workdir="/nope/dir")
        assert e["status"] == "failed" and e["exit_code"] != 0, e
        assert '"/nope/dir"' in e["error_message"]
        # a command killed by signal N exits 128+N; a real 128 is not a runsc failure
        e = exec_wait(srv, box, ["sh", "-c", "kill -9 $$"])
        assert (e["exit_code"], e["error_message"]) == (137, None), e
        e = exec_wait(srv, box, ["sh", "-c", "echo x >&2; exit 128"])
        assert (e["exit_code"], e["error_message"], e["stderr"]) == (128, None, "x\n"), e
        # another user, numeric, without capabilities
        e = exec_wait(srv, box, ["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"],
                      user="1000:1001")
        assert e["stdout"].split("\n")[:2] == ["1000", "1001"], e
        assert e["stdout"].split()[-1] == "0000000000000000", e
        e = exec_wait(srv, box, ["sh", "-c", "grep CapEff /proc/self/status"])
        # Docker's default set without NET_RAW (bit 13)
        assert e["stdout"].split()[-1] == "00000000a80405fb", e
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "user": "root"})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", r.text
        # exec records: the list (oldest first) and one by id
        execs = api(srv, "GET", "/v1/boxes/%s/execs" % box).json()
        assert [x["cmd"][0] for x in execs][:2] == ["/nonexistent", "true"], execs
        assert all(set(x) == EXECINFO_KEYS for x in execs)
        one = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, execs[0]["id"])).json()
        assert one["exit_code"] == 127 and one["stderr"] == "" and "wall_ms" in one
        r = api(srv, "GET", "/v1/boxes/%s/exec/exec_nope" % box)
        assert r.status_code == 404 and r.json()["code"] == "EXEC_NOT_FOUND"
        # the exec's process file and runsc log do not pile up
        assert [f for f in os.listdir(bdir) if f.startswith("exec_")] == []
    assert wait_gone(bdir)


def test_shutdown_with_running_box_leaves_nothing(make_server):
    srv = make_server()
    box = new_box(srv)
    disk = os.path.join(srv.home, "boxes", box, "disk.img")
    e = exec_wait(srv, box, ["sh", "-c", "echo kept > /root/f; sleep 300 & echo bg"])
    assert e["exit_code"] == 0, e
    try:
        srv.stop()
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
        assert loop_devices(disk) == ""
        assert box_cgroups(box) == []
        # the disk and the record are kept for the next Boxer
        assert os.path.exists(disk)
        assert os.path.exists(os.path.join(srv.home, "boxes", box, "box.json"))
    finally:
        boxer_server.unmount_under(srv.home)


def wait_status(srv, box, status, timeout=90.0):
    deadline = time.time() + timeout
    while True:
        info = api(srv, "GET", "/v1/boxes/" + box).json()
        if info.get("status") == status or time.time() > deadline:
            return info
        time.sleep(0.2)


def box_mounts(srv, box):
    return [m for m in boxer_server.leftover_mounts(srv.home) if "/boxes/%s/" % box in m]


def test_box_survives_restart_and_kill9(make_server):
    srv = make_server()
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "name": "keep", "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    disk = os.path.join(srv.home, "boxes", box, "disk.img")
    assert exec_wait(srv, box, ["sh", "-c", "echo one > /root/f1"])["exit_code"] == 0
    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    assert exec_wait(srv, box, ["cat", "/root/f1"])["stdout"] == "one\n"
    assert exec_wait(srv, box, ["sh", "-c", "echo two > /root/f2; sleep 300 &"])["exit_code"] == 0
    srv.kill9()
    srv.start()
    info = wait_status(srv, box, "running")
    assert info["status"] == "running" and info["name"] == "keep", info
    e = exec_wait(srv, box, ["cat", "/root/f1", "/root/f2"])
    assert e["stdout"] == "one\ntwo\n", e
    # only the third sandbox (generation 3) is left: one loop device, its two
    # mounts (disk, root overlay), its cgroup, no process of the old ones
    assert len(loop_devices(disk, settle=0).splitlines()) == 1
    assert len(box_mounts(srv, box)) == 2, box_mounts(srv, box)
    assert box_cgroups(box) and all(c.endswith(box + "-3") for c in box_cgroups(box))
    for gen in ("-1", "-2"):  # the container id ends an argument
        assert processes_naming(box + gen + "\0") == []
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    assert wait_gone(os.path.dirname(disk))


def test_restart_boxes_false_leaves_box_stopped(make_server):
    srv = make_server(config={"restart_boxes": False})
    box = new_box(srv)
    disk = os.path.join(srv.home, "boxes", box, "disk.img")
    assert exec_wait(srv, box, ["sh", "-c", "echo x > /root/f"])["exit_code"] == 0
    gone = new_box(srv)
    srv.kill9()
    # a removal cut short by the crash: the record says so, the next Boxer
    # finishes it
    rec = os.path.join(srv.home, "boxes", gone, "box.json")
    with open(rec) as f:
        data = json.load(f)
    data["removing"] = True
    with open(rec, "w") as f:
        json.dump(data, f)
    srv.start()
    assert not os.path.exists(os.path.dirname(rec))
    assert api(srv, "GET", "/v1/boxes/" + gone).status_code == 404
    assert processes_naming(gone, but_delete=True) == [] and box_cgroups(gone) == []
    info = api(srv, "GET", "/v1/boxes/" + box).json()
    assert info["status"] == "stopped" and info["stopped_at"], info
    assert loop_devices(disk) == "" and box_mounts(srv, box) == [] and box_cgroups(box) == []
    assert processes_naming(box, but_delete=True) == []
    assert api(srv, "POST", "/v1/boxes/%s:start" % box).status_code == 200
    assert exec_wait(srv, box, ["cat", "/root/f"])["stdout"] == "x\n"


def test_idle_box_is_stopped(bserver):
    srv = bserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1,
                                            "idle_timeout_secs": 2})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    assert exec_wait(srv, box, ["true"])["exit_code"] == 0
    assert api(srv, "GET", "/v1/boxes/" + box).json()["status"] == "running"
    assert wait_status(srv, box, "stopped", timeout=40)["status"] == "stopped"
    assert api(srv, "DELETE", "/v1/boxes/" + box).status_code == 204


def test_gc_removes_only_old_stopped_boxes(bserver):
    srv = bserver
    ids = []
    for _ in range(2):
        ids.append(new_box(srv))
    old, young = ids
    assert api(srv, "POST", "/v1/boxes/%s:stop" % old).status_code == 200
    time.sleep(3)
    r = api(srv, "POST", "/v1/gc", json={"older_than": 2})
    assert r.status_code == 200 and r.json() == {"removed": 1}, r.text
    assert api(srv, "GET", "/v1/boxes/" + old).status_code == 404
    assert wait_gone(os.path.join(srv.home, "boxes", old))
    assert api(srv, "POST", "/v1/boxes/%s:stop" % young).status_code == 200
    r = api(srv, "POST", "/v1/gc", json={"older_than": 2})
    assert r.json() == {"removed": 0}, r.text
    assert api(srv, "GET", "/v1/boxes/" + young).json()["status"] == "stopped"
    assert api(srv, "DELETE", "/v1/boxes/" + young).status_code == 204
    assert "post" in api(srv, "GET", "/swagger/openapi.json").json()["paths"]["/v1/gc"]


def test_box_resource_exceeded(make_server):
    srv = make_server(config={"max_disk_size_gb": 2, "box_defaults": {"disk_size_gb": 1},
                              "max_boxes": 1})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 3})
    assert r.status_code == 400 and r.json()["code"] == "RESOURCE_EXCEEDED", r.text
    assert "max_disk_size_gb" in r.json()["message"]
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "memory_mb": 1 << 30})
    assert r.status_code == 400 and r.json()["code"] == "RESOURCE_EXCEEDED", r.text
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201 and r.json()["disk_size_gb"] == 1, r.text
    first = r.json()["id"]
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 503 and r.json()["code"] == "RESOURCE_EXCEEDED", r.text
    assert int(r.headers["Retry-After"]) > 0
    assert "max_boxes" in r.json()["message"]
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % first).status_code == 204
def multipart(fields):
    """A multipart body with the fields in the given order."""
    b = b"----boxertestboundary"
    out = b""
    for name, value in fields:
        out += b"--" + b + b"\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\""
        out += (b"; filename=\"f\"" if name == "file" else b"") + b"\r\n\r\n" + value + b"\r\n"
    out += b"--" + b + b"--\r\n"
    return out, "multipart/form-data; boundary=" + b.decode()


def upload(srv, box, dest, data, file_first=False):
    fields = [("dest", dest.encode()), ("file", data)]
    body, ct = multipart(fields[::-1] if file_first else fields)
    return api(srv, "POST", "/v1/boxes/%s/files/upload" % box, content=body,
               headers={"Content-Type": ct})


def download(srv, box, path):
    return api(srv, "POST", "/v1/boxes/%s/files/download" % box, json={"path": path})


def test_box_files_in_and_out(bserver):
    srv = bserver
    with a_box(srv) as box:
        data = os.urandom(UPLOAD_LIMIT)  # exactly the limit is fine
        r = upload(srv, box, "/root/new/dir/in.bin", data)
        assert r.status_code == 200, r.text
        assert r.json() == {"ok": True, "dest": "/root/new/dir/in.bin"}
        assert exec_wait(srv, box, ["sh", "-c", "wc -c < /root/new/dir/in.bin"])["stdout"].strip() \
            == str(len(data))
        r = upload(srv, box, "/root/t.txt", b"hello box\n", file_first=True)
        assert r.status_code == 200, r.text
        assert exec_wait(srv, box, ["cat", "/root/t.txt"])["stdout"] == "hello box\n"
        # what the box wrote comes back byte for byte
        r = download(srv, box, "/root/new/dir/in.bin")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        assert r.content == data
        assert exec_wait(srv, box, ["sh", "-c", "printf 'out\\n' > /tmp/o"])["exit_code"] == 0
        assert download(srv, box, "/tmp/o").content == b"out\n"
        for p in ("/nope", "/root"):
            r = download(srv, box, p)
            assert r.status_code == 404 and r.json()["code"] == "FILE_NOT_FOUND", r.text
        assert download(srv, box, "rel").status_code == 400
        r = upload(srv, box, "/root/big", os.urandom(UPLOAD_LIMIT + 1))
        assert r.status_code == 413, r.text
        body, ct = multipart([("file", b"x")])
        r = api(srv, "POST", "/v1/boxes/%s/files/upload" % box, content=body,
                headers={"Content-Type": ct})
        assert r.status_code == 400 and "dest" in r.json()["message"]
        assert download(srv, box + "x", "/tmp/o").json()["code"] == "BOX_NOT_FOUND"
        # transfers are not execs
        r = api(srv, "GET", "/v1/boxes/%s/execs" % box)
        assert all(e["cmd"][0] != "/.boxer/init" for e in r.json()), r.text


def test_box_file_symlink_stays_in_the_box(bserver):
    srv = bserver
    with open("/etc/shadow", "rb") as f:
        host_shadow = f.read()
    with a_box(srv) as box:
        res = exec_wait(srv, box, ["sh", "-c", "echo box-own > /etc/shadow && ln -s /etc/shadow /root/x"
                                   " && ln -s ../../../../../etc/shadow /root/y"])
        assert res["exit_code"] == 0, res
        for p in ("/root/x", "/root/y"):
            r = download(srv, box, p)
            assert r.status_code == 200, r.text
            assert r.content == b"box-own\n" and r.content != host_shadow
        # an upload through the link writes the box's file, not the host's
        assert upload(srv, box, "/root/x", b"written\n").status_code == 200
        assert exec_wait(srv, box, ["cat", "/etc/shadow"])["stdout"] == "written\n"
        with open("/etc/shadow", "rb") as f:
            assert f.read() == host_shadow


def test_box_volumes_only_under_volume_roots(bserver, tmp_path):
    srv = bserver
    inside = srv.vol_root / "data"
    inside.mkdir()
    (inside / "hello").write_text("from the host\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("no\n")
    (srv.vol_root / "escape").symlink_to(outside)
    bad = [dict(host_path=str(outside), guest_path="/mnt/v"),
           dict(host_path=str(srv.vol_root / "escape"), guest_path="/mnt/v"),
           dict(host_path=str(srv.vol_root / "escape" / "secret"), guest_path="/mnt/v"),
           dict(host_path=str(srv.vol_root / ".." / outside.name), guest_path="/mnt/v"),
           dict(host_path="/", guest_path="/mnt/v"),
           dict(host_path=str(inside), guest_path="/proc/v"),
           dict(host_path=str(inside), guest_path="/mnt/../v"),
           dict(host_path=str(inside), guest_path="rel")]
    for v in bad:
        r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "volumes": [v]})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (v, r.text)
    vols = [dict(host_path=str(inside), guest_path="/mnt/data", readonly=True)]
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1, "volumes": vols})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        assert r.json()["volumes"] == vols
        assert exec_wait(srv, box, ["cat", "/mnt/data/hello"])["stdout"] == "from the host\n"
        res = exec_wait(srv, box, ["sh", "-c", "echo x > /mnt/data/new"])
        assert res["exit_code"] != 0, res
        assert not (inside / "new").exists()
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def box_veths():
    out = subprocess.run(["ip", "-j", "link"], check=True, stdout=subprocess.PIPE, text=True).stdout
    return [l["ifname"] for l in json.loads(out)
            if l.get("ifalias", "").startswith("boxer:%s:box-" % BRIDGE)]


def test_box_network(bserver):
    srv = bserver
    gateway = SUBNET + ".1"

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-secret")

        def log_message(self, *a):
            pass

    # a host service on the bridge address: no box may reach it
    httpd = http.server.ThreadingHTTPServer((gateway, 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    fetch = ["sh", "-c", "wget -q -T 3 -O - http://%s:%d/ 2>&1; echo rc=$?"
             % (gateway, httpd.server_address[1])]
    boxes = []
    try:
        for net in (False, "none"):
            r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1, "network": net})
            assert r.status_code == 201 and r.json()["network"] is False, r.text
            boxes.append(r.json()["id"])
            assert exec_wait(srv, boxes[-1], ["cat", "/proc/net/route"])["stdout"].count("\n") <= 1
            out = exec_wait(srv, boxes[-1], fetch)["stdout"]
            assert "host-secret" not in out and "rc=0" not in out, out
        assert box_veths() == []
        r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1, "network": True})
        assert r.status_code == 201 and r.json()["network"] is True, r.text
        box = r.json()["id"]
        boxes.append(box)
        for _ in range(2):
            out = exec_wait(srv, box, ["ip", "-4", "addr"])["stdout"]
            assert (" inet %s." % SUBNET) in out, out
            assert len(box_veths()) == 1
            out = exec_wait(srv, box, fetch)["stdout"]
            assert "host-secret" not in out and "rc=0" not in out, out
            # stop tears the veth down, start makes it again
            assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
            assert box_veths() == []
            assert api(srv, "POST", "/v1/boxes/%s:start" % box).status_code == 200
        r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "network": "host"})
        assert r.status_code == 400, r.text
    finally:
        httpd.shutdown()
        httpd.server_close()
        for b in boxes:
            assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204
    assert box_veths() == []
