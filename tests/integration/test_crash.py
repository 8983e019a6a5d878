"""Crash safety: Boxer is killed with SIGKILL in the middle of an upload, a
pull (skopeo), an unpack (umoci), the step between unpack and install, a run
and an /output capture, then started again on the same home.  Afterwards no
partial file is visible, no runsc/gofer/sandbox/skopeo/umoci process is left,
no cgroup, mount, network namespace, bundle or temp file remains, the image
cache is consistent, and the next requests succeed.

The moments are hit deterministically: the test waits for the on-disk or
process evidence of the step, freezes the tool with SIGSTOP where the step is
short, and only then kills Boxer."""

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import httpx
import pytest

import boxer_server
import hardening as H

BUSYBOX = "busybox"
PYTHON = "python:3.12-slim"


class Crashy:
    """Servers on one home: start, kill -9, start again."""

    def __init__(self, registry, tmp_path):
        self.registry = registry
        self.dir = tmp_path / "srv"
        self.servers = []
        self.netns_before = H.netns_names()

    @property
    def home(self):
        return os.path.join(str(self.dir), "home")

    def start(self, env=None, config=None):
        s = boxer_server.Server(self.dir, registry=self.registry, env=env, config=config)
        self.servers.append(s)
        s.start()
        return s

    def crash(self, s):
        s.kill9()
        # Boxer's direct children (skopeo, umoci, sync, runsc, a capture)
        # die with it; what runsc started may wait for the next start.
        deadline = time.time() + 10
        while time.time() < deadline:
            direct = [p for p in H.home_processes(self.home)
                      if argv0(p[1]) not in ("runsc-gofer", "runsc-sandbox")]
            if not direct:
                return
            time.sleep(0.1)
        pytest.fail("children outlived a killed Boxer: %s" % direct)

    def restart_clean(self, env=None):
        """Starts again and checks that nothing of the crash is left."""
        s = self.start(env=env)
        left = H.wait_clean(self.home, timeout=20, netns_before=self.netns_before)
        assert left == {}, "left after restart: %s" % left
        assert H.image_cache_problems(self.home) == []
        listed = httpx.get(s.url + "/images").json()
        for img in listed:
            hexd = img["digest"].split(":", 1)[1]
            assert os.path.exists(os.path.join(self.home, "images", "blobs", hexd, "ready"))
        return s

    def cleanup(self):
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                s.stop(check=False)
        for pid, _ in H.home_processes(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        H.unmount_under(self.home)
        H.remove_cgroup_bases(self.home)


@pytest.fixture
def crashy(registry, tmp_path):
    c = Crashy(registry, tmp_path)
    yield c
    c.cleanup()


def run(url, body, timeout=300):
    return httpx.post(url + "/run", json=body, timeout=timeout)


def works(s):
    """The next requests succeed, and leave nothing behind."""
    r = httpx.post(s.url + "/files", data={"path": "after/crash.txt"},
                   files={"file": ("f", b"after the crash\n")})
    assert r.status_code == 200, r.text
    r = run(s.url, {"image": BUSYBOX, "files": ["after/crash.txt"], "persist": True,
                    "cmd": ["sh", "-c", "cat /after/crash.txt; echo out > /output/o"]})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "after the crash\n"
    eid = r.json()["exec_id"]
    assert httpx.get(s.url + "/files", params={"path": "output/%s/o" % eid}).content == b"out\n"
    r = run(s.url, {"image": PYTHON, "cmd": ["python3", "-c", "print(6 * 7)"]})
    assert r.status_code == 200 and r.json()["stdout"] == "42\n", r.text
    left = H.wait_clean(s.home, timeout=20)
    assert left == {}, left


def in_background(fn, *args):
    """Runs a request that the crash will cut off; its outcome is ignored."""
    def go():
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the server is killed under it
            pass
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.005)
    pytest.fail("timed out waiting for %s" % what)


def argv0(cmd):
    """The program name of a home_processes() entry."""
    if cmd.startswith("cwd="):
        cmd = cmd.split(" ", 1)[1]
    elif cmd.startswith("boxer fork: "):
        cmd = cmd[len("boxer fork: "):]
    return os.path.basename(cmd.split(" ", 1)[0])


def tool_pid(home, name):
    for pid, cmd in H.home_processes(home):
        if argv0(cmd) == name:
            return pid
    return None


def pull_dirs(home):
    d = os.path.join(home, "images", "tmp")
    return [os.path.join(d, e) for e in os.listdir(d) if e.startswith("pull-")] \
        if os.path.isdir(d) else []


def no_blobs(home):
    d = os.path.join(home, "images", "blobs")
    return not os.path.isdir(d) or os.listdir(d) == []


# ---- upload ----

def test_kill_during_upload(crashy):
    s = crashy.start()
    data = os.urandom(8 << 20)
    boundary = b"CrashBoundary"
    body = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n"
            b"crash/up.bin\r\n--" + boundary + b"\r\nContent-Disposition: form-data; "
            b"name=\"file\"; filename=\"x\"\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /files HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; "
                 b"boundary=" + boundary + b"\r\nContent-Length: %d\r\n\r\n" % len(body) +
                 body[:3 << 20])
    tmp = os.path.join(s.home, "files", ".tmp")
    wait_for(lambda: any(os.path.getsize(os.path.join(tmp, e)) > (1 << 20)
                         for e in os.listdir(tmp)), 10, "the partial upload on disk")
    crashy.crash(s)
    sock.close()
    assert os.listdir(tmp), "the crash left no partial upload: nothing was tested"
    s = crashy.restart_clean()
    assert httpx.get(s.url + "/files", params={"path": "crash/up.bin"}).status_code == 404
    r = httpx.post(s.url + "/files", data={"path": "crash/up.bin"}, files={"file": ("f", data)},
                   timeout=60)
    assert r.status_code == 200
    assert httpx.get(s.url + "/files", params={"path": "crash/up.bin"}, timeout=60).content == data
    works(s)


# ---- pull and unpack ----

@pytest.mark.parametrize("tool", ["skopeo", "umoci"])
def test_kill_during_pull_tool(crashy, tool):
    """skopeo half way through copying the python image, or umoci half way
    through unpacking it: the tool is frozen there, then Boxer is killed."""
    s = crashy.start()
    in_background(run, s.url, {"image": PYTHON, "cmd": ["true"]})
    if tool == "skopeo":
        def evidence():
            # skopeo streams each blob into dl/layout/oci-put-blob*, then
            # renames it into blobs/: freeze it with a blob half written.
            for d in pull_dirs(s.home):
                layout = os.path.join(d, "dl", "layout")
                for e in os.listdir(layout) if os.path.isdir(layout) else []:
                    if e.startswith("oci-put-blob") and \
                            os.path.getsize(os.path.join(layout, e)) > 0:
                        return tool_pid(s.home, "skopeo")
            return None
    else:
        def evidence():
            for d in pull_dirs(s.home):
                root = os.path.join(d, "rootfs")
                if os.path.isdir(root) and len(os.listdir(root)) > 2:
                    return tool_pid(s.home, "umoci")
            return None
    pid = wait_for(evidence, 120, "%s at work" % tool)
    os.kill(pid, signal.SIGSTOP)
    crashy.crash(s)

    def gone():
        # Killed with Boxer; its exit may take a moment (state D while it
        # lets go of its files), so wait for it, up to 10 s.
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    wait_for(gone, 10, "%s gone with Boxer" % tool)
    assert pull_dirs(crashy.home), "no pull in progress at the crash: nothing was tested"
    s = crashy.restart_clean()
    assert no_blobs(s.home)
    assert httpx.get(s.url + "/images").json() == []
    works(s)
    assert [i["ref"] for i in httpx.get(s.url + "/images").json()] == \
        ["docker.io/library/busybox:latest", "docker.io/library/python:3.12-slim"]


def test_kill_between_unpack_and_install(crashy, tmp_path):
    """The rootfs is fully unpacked, `sync -f` (the last step before the
    install) never returns: a wrapper named sync first in PATH blocks."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "sync-started"
    wrapper = bindir / "sync"
    wrapper.write_text("#!/usr/bin/python3\nimport time\nopen(%r, 'w').write('x')\n"
                       "time.sleep(600)\n" % str(marker))
    wrapper.chmod(0o755)
    env = {"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))}
    s = crashy.start(env=env)
    in_background(run, s.url, {"image": BUSYBOX, "cmd": ["true"]})
    wait_for(lambda: marker.exists(), 120, "the unpacked image waiting for sync")
    rootfs = [os.path.join(d, "rootfs") for d in pull_dirs(s.home)]
    assert rootfs and os.path.isdir(os.path.join(rootfs[0], "bin")), "not unpacked yet"
    crashy.crash(s)
    s = crashy.restart_clean()
    assert no_blobs(s.home)
    works(s)


def test_kill_with_a_cached_image_in_use(crashy):
    """Runs in flight on a cached image when Boxer dies: the cache stays
    whole and usable."""
    s = crashy.start()
    assert run(s.url, {"image": BUSYBOX, "cmd": ["true"]}).status_code == 200
    before = httpx.get(s.url + "/images").json()
    for _ in range(3):
        in_background(run, s.url, {"image": BUSYBOX, "cmd": ["sleep", "60"]})
    wait_for(lambda: len(H.run_dirs(s.home)) == 3, 60, "three runs")
    crashy.crash(s)
    s = crashy.restart_clean()
    after = httpx.get(s.url + "/images").json()
    assert [(i["ref"], i["digest"]) for i in after] == [(i["ref"], i["digest"]) for i in before]
    assert all(not i["in_use"] for i in after)
    works(s)


# ---- runs ----

def test_kill_during_run(crashy):
    s = crashy.start()
    assert run(s.url, {"image": BUSYBOX, "cmd": ["true"]}).status_code == 200
    r = httpx.post(s.url + "/files", data={"path": "in/keep.txt"}, files={"file": ("f", b"in\n")})
    assert r.status_code == 200
    in_background(run, s.url, {"image": BUSYBOX, "files": ["in/keep.txt"],
                               "cmd": ["sh", "-c", "echo x > /output/a; sleep 120"]})

    def running():
        procs = H.home_processes(s.home)
        return (any("runsc" in c for _, c in procs) and H.leftover_cgroups(s.home)
                and H.run_dirs(s.home) and boxer_server.leftover_mounts(s.home))

    wait_for(running, 60, "the sandbox, its cgroup, bundle and mounts")
    time.sleep(1.0)  # the command itself is running
    before = H.leftovers(s.home)
    crashy.crash(s)
    # What the run had, proven present at the crash: processes, cgroups,
    # the bundle, the mounts (output tmpfs, rootfs overlay, input binds).
    assert {"processes", "cgroups", "run_dirs", "mounts"} <= set(before), before
    s = crashy.restart_clean()
    # The input was not deleted: the run never answered.
    assert httpx.get(s.url + "/files", params={"path": "in/keep.txt"}).content == b"in\n"
    works(s)


def test_kill_during_output_capture(crashy):
    s = crashy.start()
    assert run(s.url, {"image": BUSYBOX, "cmd": ["true"]}).status_code == 200
    in_background(run, s.url, {"image": BUSYBOX, "persist": True, "cmd": ["sh", "-c",
                  "i=0; while [ $i -lt 4000 ]; do echo file-$i > /output/f$i; i=$((i+1)); done"]})
    out = os.path.join(s.home, "files", "output")

    def capturing():
        for e in os.listdir(out) if os.path.isdir(out) else []:
            if len(os.listdir(os.path.join(out, e))) > 100:
                return e
        return None

    eid = wait_for(capturing, 120, "the capture under way")
    crashy.crash(s)
    captured = os.listdir(os.path.join(out, eid))
    assert 0 < len(captured) < 4000, "the capture was not cut off: nothing was tested"
    s = crashy.restart_clean()
    # Whatever was captured is whole: every file has its full content.
    for name in os.listdir(os.path.join(out, eid)):
        p = os.path.join(out, eid, name)
        assert stat.S_ISREG(os.lstat(p).st_mode)
        with open(p) as f:
            assert f.read() == "file-%s\n" % name[1:], name
    works(s)


def test_kill_twice_in_a_row(crashy):
    """A crash during the recovery of a crash still recovers."""
    s = crashy.start()
    assert run(s.url, {"image": BUSYBOX, "cmd": ["true"]}).status_code == 200
    for _ in range(2):
        in_background(run, s.url, {"image": BUSYBOX, "cmd": ["sleep", "60"]})
    wait_for(lambda: any("runsc" in c for _, c in H.home_processes(s.home)), 60, "a sandbox")
    time.sleep(0.5)
    crashy.crash(s)
    s = crashy.start()
    crashy.crash(s)
    s = crashy.restart_clean()
    works(s)
    assert json.loads(json.dumps(httpx.get(s.url + "/images").json()))


def test_restart_after_crash_with_300_leftover_mounts(crashy):
    """A crash can leave far more than 256 mounts below runs/ (an /output
    tmpfs, the overlay's tmpfs and the rootfs overlay per run, overmounts
    after crashes during recovery).  The next start unmounts until none is
    left instead of stopping at a fixed count and then refusing "to remove
    across a mount" (issue 11, item 14)."""
    s = crashy.start()
    s.stop()
    runs = os.path.join(crashy.home, "runs")
    made = []

    def mount_tmpfs(path):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs", path],
                       check=True)
        made.append(path)

    try:
        for i in range(100):
            # What a run dir looks like (run.c: <home>/runs/boxer-<uuid>),
            # with its three mount points.
            d = os.path.join(runs, "boxer-%08x-0000-4000-8000-00000000%04x" % (i, i))
            for sub in ("output", "ovl", "rootfs"):
                mount_tmpfs(os.path.join(d, sub))
        # Inside another mount, and stacked twice on one mount point.
        mount_tmpfs(os.path.join(runs, "boxer-%08x-0000-4000-8000-000000000000" % 0, "ovl",
                                 "upper"))
        mount_tmpfs(os.path.join(runs, "boxer-%08x-0000-4000-8000-000000000001" % 1, "output"))
        # mountinfo escapes a space and a backslash in a mount point (\040, \134).
        mount_tmpfs(os.path.join(runs, "stale run\\x", "output"))
        # A run's network namespace is a file bind mount (net.c).
        ns = os.path.join(runs, "boxer-%08x-0000-4000-8000-000000000002" % 2, "netns")
        open(ns, "w").close()
        subprocess.run(["mount", "--bind", "/proc/self/ns/net", ns], check=True)
        made.append(ns)
        assert len(made) == 304
        assert len(boxer_server.leftover_mounts(crashy.home)) == 304
        s = crashy.start()
        assert boxer_server.leftover_mounts(crashy.home) == []
        assert H.run_dirs(crashy.home) == []
        assert "refusing" not in s.log_text()
        r = run(s.url, {"image": BUSYBOX, "cmd": ["echo", "after"]})
        assert r.status_code == 200 and r.json()["stdout"] == "after\n", r.text
        left = H.wait_clean(s.home, timeout=20)
        assert left == {}, left
    finally:
        for p in reversed(made):
            subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)
