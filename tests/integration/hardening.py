"""Shared helpers of the hardening suites (hostile clients, hostile sandboxes,
crash safety, soak): resource readings of the server from /proc, a canary
client that keeps checking the server answers while a test attacks it, and
checks that nothing of a server's home is left behind (processes, mounts,
cgroups, run directories, temporary files).  Also the per-module server
those suites share and the plain /run and /files calls of every suite that
needs nothing more (test_run, test_limits, test_network too)."""

import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import httpx

import boxer_server


# ---- how the server runs ----

VALGRIND = os.environ.get("BOXER_VALGRIND") == "1"


def _sanitized():
    try:
        out = subprocess.run(["ldd", boxer_server.BOXER_BIN], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"libasan" in out.stdout or b"libubsan" in out.stdout


SANITIZED = _sanitized()
# Resident memory means nothing under valgrind, and ASan keeps freed memory
# in quarantine: memory is only checked on the plain build.
CHECK_RSS = not (VALGRIND or SANITIZED)
# Latency and timing bounds stretch for instrumented servers.
SLOW = 8 if VALGRIND else (2 if SANITIZED else 1)


# ---- the server's resources, from /proc ----

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def settle_fds(pid, want, timeout=15.0):
    """Waits for the fd count to come back to `want`; returns the last count."""
    deadline = time.time() + timeout
    n = fd_count(pid)
    while n > want and time.time() < deadline:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def raise_nofile(want):
    """Lets this (test) process hold `want` descriptors; root may raise the
    hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))


def server_nofile(n):
    """preexec for make_server: the server may hold n descriptors (it raises
    its soft limit to the hard one at start)."""
    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return pre


# ---- a server of the module's own, checked at the end ----

def module_server(registry, prefix, config=None):
    """Generator for a module-scoped fixture (`yield from`): a server of its
    own; at the end it must still run and leave nothing behind (netns
    included), and whatever a failed test left is cleaned up."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    s = boxer_server.Server(tmp, registry=registry, config=config)
    s.start()
    s.netns_before = netns_names()
    yield s
    try:
        assert s.proc.poll() is None, "server died:\n" + s.log_text()[-3000:]
        s.stop()
        assert leftovers(s.home, s.netns_before) == {}
    finally:
        unmount_under(s.home)
        remove_cgroup_bases(s.home)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- plain /run and /files calls ----

def run(srv, body, timeout=300):
    return httpx.post(srv.url + "/run", json=body, timeout=timeout)


def ok(srv, body):
    r = run(srv, body)
    assert r.status_code == 200, r.text
    return r.json()


def upload(srv, path, data):
    r = httpx.post(srv.url + "/files", data={"path": path}, files={"file": ("f", data)})
    assert r.status_code == 200, r.text


def download(srv, path):
    return httpx.get(srv.url + "/files", params={"path": path}, timeout=30)


# ---- a well-behaved client running alongside an attack ----

class Canary:
    """GET /healthz every `every` seconds on fresh connections from a thread;
    records failures and the slowest answer."""

    def __init__(self, url, every=0.1, timeout=5.0):
        self.url = url
        self.every = every
        self.timeout = timeout
        self.failures = []
        self.max_latency = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        with httpx.Client(timeout=self.timeout) as client:
            # At least one probe, however short the test: the last one runs
            # after the attack is over.
            while self.count == 0 or not self._stop.is_set():
                t0 = time.time()
                try:
                    r = client.get(self.url + "/healthz", headers={"Connection": "close"})
                    if r.status_code != 200 or r.json() != {"ok": True}:
                        self.failures.append("status %d %r" % (r.status_code, r.text[:100]))
                except Exception as e:  # noqa: BLE001 - every failure is recorded
                    self.failures.append(repr(e))
                self.max_latency = max(self.max_latency, time.time() - t0)
                self.count += 1
                self._stop.wait(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=30)

    def check(self, max_latency=2.0):
        assert self.count > 0, "canary never ran"
        assert not self.failures, "well-behaved client failed: %s" % self.failures[:5]
        assert self.max_latency < max_latency, \
            "well-behaved client waited %.2fs for /healthz" % self.max_latency


# ---- what a server's home may leave behind ----

def fnv1a32(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def cgroup_bases(home):
    """Every boxer-<fnv1a32(home)> directory under /sys/fs/cgroup (the
    per-home parent of run cgroups, in every hierarchy)."""
    name = "boxer-%08x" % fnv1a32(home)
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if name in dirs:
            found.append(os.path.join(root, name))
            dirs.remove(name)
        # run cgroups sit right under our own cgroup: no need to go deep
        if root.count("/") > 8:
            dirs[:] = []
    return found


def leftover_cgroups(home):
    out = []
    for base in cgroup_bases(home):
        for d in os.listdir(base):
            if os.path.isdir(os.path.join(base, d)):
                out.append(os.path.join(base, d))
    return out


unmount_under = boxer_server.unmount_under


def remove_cgroup_bases(home):
    """Test hygiene: a test home is never used again, so whatever cgroups
    carry its name go (Boxer itself removes its base at a clean exit)."""
    for base in cgroup_bases(home):
        # Run cgroups a failed test left (their processes are gone: a
        # cgroup with processes refuses rmdir), then the base.
        for d in os.listdir(base):
            if os.path.isdir(os.path.join(base, d)):
                try:
                    os.rmdir(os.path.join(base, d))
                except OSError:
                    pass
        try:
            os.rmdir(base)
        except OSError:
            pass


home_processes = boxer_server.leftover_processes


def processes_naming(text, but_delete=False):
    """(pid, command line) of the processes whose command line (NUL-separated,
    as in /proc) holds text; with but_delete, not `runsc delete` (it runs in
    the background after a box stops)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd and not (but_delete and b"\0delete\0" in cmd):
            out.append((int(pid), cmd.replace(b"\0", b" ").decode("utf-8", "replace")))
    return out


def netns_names():
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def tmp_entries(home):
    out = []
    for d in (os.path.join(home, "files", ".tmp"), os.path.join(home, "images", "tmp")):
        if os.path.isdir(d):
            out += [os.path.join(d, e) for e in os.listdir(d)]
    return out


def run_dirs(home):
    d = os.path.join(home, "runs")
    if not os.path.isdir(d):
        return []
    return [e for e in os.listdir(d) if not e.startswith(".")]


def leftovers(home, netns_before=None):
    """Everything a home should not hold once no request is in flight."""
    found = {
        "processes": home_processes(home),
        "mounts": boxer_server.leftover_mounts(home),
        "cgroups": leftover_cgroups(home),
        "run_dirs": run_dirs(home),
        "tmp": tmp_entries(home),
    }
    if netns_before is not None:
        found["netns"] = sorted(netns_names() - netns_before)
    return {k: v for k, v in found.items() if v}


def wait_clean(home, timeout=20.0, netns_before=None):
    deadline = time.time() + timeout
    while True:
        left = leftovers(home, netns_before)
        if not left or time.time() > deadline:
            return left
        time.sleep(0.2)


def image_cache_problems(home):
    """The image cache's on-disk invariants (image.h): no blob without
    `ready`, every ref points at a ready blob, tmp/ empty."""
    problems = []
    images = os.path.join(home, "images")
    blobs = os.path.join(images, "blobs")
    refs = os.path.join(images, "refs")
    for b in os.listdir(blobs) if os.path.isdir(blobs) else []:
        if not os.path.exists(os.path.join(blobs, b, "ready")):
            problems.append("blob without ready: %s" % b)
        elif not os.path.isdir(os.path.join(blobs, b, "rootfs")):
            problems.append("ready blob without rootfs: %s" % b)
    import json
    for r in os.listdir(refs) if os.path.isdir(refs) else []:
        try:
            with open(os.path.join(refs, r)) as f:
                e = json.load(f)
            hexd = e["digest"].split(":", 1)[1]
        except (OSError, ValueError, KeyError, IndexError) as ex:
            problems.append("unreadable ref %s: %r" % (r, ex))
            continue
        if not os.path.exists(os.path.join(blobs, hexd, "ready")):
            problems.append("ref %s points at missing blob %s" % (r, hexd))
    tmp = os.path.join(images, "tmp")
    if os.path.isdir(tmp) and os.listdir(tmp):
        problems.append("images/tmp not empty: %s" % os.listdir(tmp))
    return problems


def hold_connections(port, n, first_bytes=None):
    """Opens n connections to 127.0.0.1:port (sending first_bytes(i) on each
    when given) and returns the sockets."""
    socks = []
    try:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            if first_bytes is not None:
                data = first_bytes(i)
                if data:
                    s.sendall(data)
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
