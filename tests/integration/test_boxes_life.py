"""Persistent boxes (issue 13), their life over time: exec records across
restarts, many create/remove cycles, a full disk, limits seen inside, a
client that goes away.  Real runsc, images from the local registry."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

import boxer_server
from test_boxes import (BUSYBOX, EXECINFO_KEYS, api, box_cgroups, exec_wait, processes_naming,
                        wait_gone, wait_status)


def execs_of(srv, box, extra=True):
    r = api(srv, "GET", "/v1/boxes/%s/execs%s" % (box, "?extra=1" if extra else ""))
    assert r.status_code == 200, r.text
    return r.json()


def test_exec_records_survive_restart_and_kill9(make_server):
    srv = make_server(config={"max_execs_per_box": 3})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    edir = os.path.join(srv.home, "boxes", box, "execs")
    first = exec_wait(srv, box, ["echo", "dropped"])
    # output that is not UTF-8 and not text, on both streams; a failure; a timeout
    binary = exec_wait(srv, box, ["sh", "-c", "printf 'a\\377\\000b'; echo err >&2; exit 3"])
    assert binary["exit_code"] == 3 and binary["status"] == "failed", binary
    timed = exec_wait(srv, box, ["sleep", "30"], timeout_ms=300)
    assert timed["timed_out"] and timed["exit_code"] == 137, timed
    before = execs_of(srv, box)
    # max_execs_per_box: the oldest went, and its files with it
    assert [e["id"] for e in before] == [first["id"], binary["id"], timed["id"]][-3:]
    last = exec_wait(srv, box, ["sh", "-c", "echo last"])
    before = execs_of(srv, box)
    assert [e["id"] for e in before] == [binary["id"], timed["id"], last["id"]]
    assert sorted(os.listdir(edir)) == sorted(
        e["id"] + s for e in before for s in (".json", ".out"))

    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    after = execs_of(srv, box)
    assert after == before
    plain = execs_of(srv, box, extra=False)
    assert all(set(e) == EXECINFO_KEYS for e in plain)
    one = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, binary["id"])).json()
    assert one == before[0] and one["stderr"] == "err\n" and one["stdout"].startswith("a")

    # an exec running when Boxer dies ends failed, with a message; a new
    # exec is the newest and the history stays bounded
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["sleep", "300"]})
    assert r.status_code == 201 and r.json()["status"] == "running", r.text
    running = r.json()["id"]
    srv.kill9()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    after = execs_of(srv, box)
    assert [e["id"] for e in after] == [timed["id"], last["id"], running]
    assert after[:2] == before[1:]
    cut = after[2]
    assert cut["status"] == "failed" and cut["exit_code"] == 137 and cut["finished_at"], cut
    assert "Boxer restarted" in cut["error_message"], cut
    # the record of the cut exec was rewritten as ended: a second restart
    # answers the same
    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    assert execs_of(srv, box) == after
    # the box serves execs as before; a stopped box still lists its history
    assert exec_wait(srv, box, ["echo", "again"])["stdout"] == "again\n"
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    assert [e["id"] for e in execs_of(srv, box)][-1] != running
    assert len(os.listdir(edir)) == 6
    # a smaller exec_output_bytes at the next start keeps the tail of the
    # output (as the event log does while it runs), marked truncated
    srv.stop()
    srv.config["exec_output_bytes"] = 2
    srv.start()
    kept = {e["id"]: e for e in execs_of(srv, box)}
    tail = kept[last["id"]]["stdout"]
    assert tail and len(tail) <= 2 and "last\n".endswith(tail), kept
    assert kept[last["id"]]["truncated"], kept
    assert api(srv, "DELETE", "/v1/boxes/" + box).status_code == 204
    assert wait_gone(os.path.dirname(edir))


# ---- one server for the rest of the module ----

PYTHON = "python:3.12-slim"


@pytest.fixture(scope="module")
def lserver(registry, tmp_path_factory):
    srv = boxer_server.Server(tmp_path_factory.mktemp("boxlife"), registry=registry).start()
    yield srv
    try:
        srv.stop()
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
    finally:
        boxer_server.unmount_under(srv.home)


@pytest.fixture(scope="module")
def small_box(lserver):
    """A python box with small limits, shared by the tests that only read."""
    r = api(lserver, "POST", "/v1/boxes", json={"image": PYTHON, "disk_size_gb": 1,
                                                "memory_mb": 256, "cpu": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    yield box
    assert api(lserver, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def poll(cond, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(0.1)


def pids_max(box):
    for c in box_cgroups(box):
        p = os.path.join(c, "pids.max")
        if os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    return None


def test_limits_seen_and_enforced_inside(lserver, small_box):
    srv, box = lserver, small_box
    mem = exec_wait(srv, box, ["grep", "MemTotal", "/proc/meminfo"])
    assert abs(int(mem["stdout"].split()[1]) - 256 * 1024) <= 1024, mem
    assert exec_wait(srv, box, ["nproc"])["stdout"] == "1\n"
    # processes: RLIMIT_NPROC inside (gVisor enforces it, root included:
    # a box's root has no CAP_SYS_RESOURCE), the host tasks they need in
    # the box's cgroup (32 + 4 per process, as a run's)
    lim = exec_wait(srv, box, ["grep", "Max processes", "/proc/self/limits"])
    # (box_defaults.pids_limit, 256 by default)
    assert lim["stdout"].split()[2:4] == ["256", "256"], lim
    assert pids_max(box) == str(32 + 4 * 256)
    spawn = "i=0; while [ $i -lt 30 ]; do sleep 3 & i=$((i+1)); done; echo spawned"
    assert exec_wait(srv, box, ["sh", "-c", spawn])["stdout"] == "spawned\n"
    cut = exec_wait(srv, box, ["bash", "-c", "ulimit -u 20; " + spawn])
    assert "fork" in cut["stderr"] and "Resource temporarily unavailable" in cut["stderr"], cut
    # memory: a hog past memory_mb does not get it.  gVisor charges the
    # whole sandbox to the box's cgroup, so the host OOM killer ends the
    # sandbox: the box is then stopped (disk kept) and starts again.
    # (synced: the sandbox is killed, and like any crash that may lose what
    # was still only in gVisor's cache)
    assert exec_wait(srv, box, ["sh", "-c", "echo kept > /root/f; sync"])["exit_code"] == 0
    hog = exec_wait(srv, box, ["python3", "-c", "b = bytearray(400 << 20); print('got it')"])
    assert hog["exit_code"] != 0 and "got it" not in hog["stdout"], hog
    assert wait_status(srv, box, "stopped", timeout=30)["status"] == "stopped"
    assert api(srv, "POST", "/v1/boxes/%s:start" % box).status_code == 200
    assert exec_wait(srv, box, ["cat", "/root/f"])["stdout"] == "kept\n"


def test_disk_full_is_enospc_inside_only(lserver, small_box):
    srv = lserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    disk = os.path.join(srv.home, "boxes", box, "disk.img")
    try:
        full = exec_wait(srv, box, ["dd", "if=/dev/zero", "of=/root/big", "bs=1M", "count=1100"])
        assert full["exit_code"] != 0 and "No space left on device" in full["stderr"], full
        # the host file never outgrows disk_size_gb
        assert os.stat(disk).st_blocks * 512 <= 1 << 30
        # the box, Boxer and other boxes go on
        assert api(srv, "GET", "/healthz").status_code == 200
        assert exec_wait(srv, small_box, ["echo", "fine"])["stdout"] == "fine\n"
        assert exec_wait(srv, box, ["echo", "still"])["stdout"] == "still\n"
        again = exec_wait(srv, box, ["sh", "-c", "rm /root/big; echo x > /root/small; cat /root/small"])
        assert again["stdout"] == "x\n", again
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    assert wait_gone(os.path.dirname(disk))


def raw_post(srv, path, body):
    """Sends the request and closes at once: the client went away."""
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (path.encode(), srv.port, len(data), data))
    s.close()


def test_box_outlives_its_client_and_keeps_its_processes(lserver):
    srv = lserver
    raw_post(srv, "/v1/boxes", {"image": BUSYBOX, "disk_size_gb": 1, "name": "orphan"})
    info = poll(lambda: api(srv, "GET", "/v1/boxes/orphan").status_code == 200 and
                wait_status(srv, "orphan", "running"))
    assert info and info["status"] == "running", info
    box = info["id"]
    try:
        # a daemon started by an exec whose client went away before the end
        raw_post(srv, "/v1/boxes/%s/exec" % box,
                 {"cmd": ["sh", "-c", "sleep 1000 & echo $! > /root/pid; sleep 1"], "wait": True})
        done = poll(lambda: [e for e in execs_of(srv, box) if e["status"] != "running"])
        assert done and done[0]["exit_code"] == 0, done
        pid = exec_wait(srv, box, ["cat", "/root/pid"])["stdout"].strip()
        for _ in range(2):  # still there for the execs after
            alive = exec_wait(srv, box, ["sh", "-c", "kill -0 %s && cat /proc/%s/cmdline" % (pid, pid)])
            assert alive["exit_code"] == 0 and alive["stdout"].startswith("sleep"), alive
        # and ends with the box
        assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
        assert api(srv, "POST", "/v1/boxes/%s:start" % box).status_code == 200
        assert exec_wait(srv, box, ["sh", "-c", "kill -0 %s" % pid])["exit_code"] != 0
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def cycle(srv, i):
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    e = exec_wait(srv, box, ["sh", "-c", "echo %d > /root/n; sleep 100 & cat /root/n" % i])
    assert e["stdout"] == "%d\n" % i, e
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    assert api(srv, "POST", "/v1/boxes/%s:start" % box).status_code == 200
    e = exec_wait(srv, box, ["cat", "/root/n"])
    assert e["stdout"] == "%d\n" % i, e
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    return box


def test_50_cycles_leave_nothing_behind(lserver):
    srv = lserver
    boxes_dir = os.path.join(srv.home, "boxes")
    before = set(os.listdir(boxes_dir))
    cycle(srv, 0)  # warm: the image is pulled, caches are filled
    poll(lambda: not set(os.listdir(boxes_dir)) - before)
    fds = fd_count(srv.proc.pid)
    tasks = len(os.listdir("/proc/%d/task" % srv.proc.pid))
    made = []
    errors = []

    def worker(k):
        try:
            for i in range(25):
                made.append(cycle(srv, k * 100 + i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # two at a time: half the wall time on two cores
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == 50, errors
    # directories go once their background `runsc delete` is done
    # (a box an earlier test removed may still be going: only new ones count)
    assert poll(lambda: not set(os.listdir(boxes_dir)) - before, timeout=60), os.listdir(boxes_dir)
    assert poll(lambda: fd_count(srv.proc.pid) <= fds), (fds, os.listdir("/proc/%d/fd" % srv.proc.pid))
    with open("/proc/self/mountinfo") as f:
        mounts = [m for m in f if any(b in m for b in made)]
    assert mounts == []
    loops = subprocess.run(["losetup", "-a"], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert [l for l in loops.splitlines() if any(b in l for b in made)] == []
    left = []
    for top in os.listdir("/sys/fs/cgroup"):
        for dirpath, dirnames, _ in os.walk(os.path.join("/sys/fs/cgroup", top)):
            left += [d for d in dirnames if d.startswith("box_") and d.split("-")[0] in made]
            if dirpath.count("/") > 12:
                dirnames[:] = []
    assert left == []
    procs = [p for p in processes_naming(boxes_dir) if any(b in p[1] for b in made)]
    assert procs == []
    # the server's own tasks are back to what they were (no thread or child kept)
    assert poll(lambda: len(os.listdir("/proc/%d/task" % srv.proc.pid)) <= tasks)
