"""Starts real Boxer servers and the local test registry for integration tests.

Nothing here is mocked: the server is the built binary (BOXER_BIN, default
./boxer), the registry is Debian's docker-registry on 127.0.0.1 holding the
images built by tests/images/build.sh from Debian packages.

BOXER_VALGRIND=1 runs every server under valgrind (memcheck, full leak check);
stop() then fails when valgrind reported an error or a leak.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOXER_BIN = os.environ.get("BOXER_BIN", os.path.join(REPO, "boxer"))
IMAGE_CACHE = os.environ.get("BOXER_TEST_IMAGE_CACHE", "/var/cache/boxer-test-images")

_registry = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30.0, proc=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before %s answered" % (proc.returncode, url))
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise RuntimeError("%s did not answer within %ss: %s" % (url, timeout, last))


def wait_unix(path, timeout=30.0, proc=None):
    """Waits until GET /healthz answers on the Unix socket at path."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before %s answered" % (proc.returncode, path))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(path)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError("%s did not answer within %ss: %s" % (path, timeout, last))


class Registry:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="boxer-registry-")
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.addr
        self.running = False

    def start(self):
        subprocess.run(["bash", os.path.join(REPO, "tests/registry.sh"), "start", self.dir,
                        str(self.port)], check=True)
        self.running = True

    def stop(self):
        if self.running:
            subprocess.run(["bash", os.path.join(REPO, "tests/registry.sh"), "stop", self.dir,
                            str(self.port)], check=True)
            self.running = False

    def push_images(self):
        out = subprocess.run(["bash", os.path.join(REPO, "tests/images/build.sh"), IMAGE_CACHE],
                             check=True, stdout=subprocess.PIPE)
        self.layouts = out.stdout.decode().strip().splitlines()[-1]
        subprocess.run(["bash", os.path.join(REPO, "tests/images/push.sh"), IMAGE_CACHE,
                        self.addr], check=True)

    def push(self, src, dst_ref):
        """Copies a built image ("busybox:latest" or "python:3.12-slim") to
        another repository:tag in the registry."""
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                        "--dest-tls-verify=false", "oci:%s/%s" % (self.layouts, src),
                        "docker://%s/%s" % (self.addr, dst_ref)], check=True)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def ensure_registry():
    """One registry per test process, with the test images pushed."""
    global _registry
    if _registry is None:
        reg = Registry()
        reg.start()
        atexit.register(reg.cleanup)
        reg.push_images()
        _registry = reg
    if not _registry.running:
        _registry.start()
    return _registry


class Server:
    def __init__(self, tmpdir, config=None, registry=None, env=None, preexec=None):
        self.tmpdir = str(tmpdir)
        self.home = os.path.join(self.tmpdir, "home")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.registry = registry
        cfg = {
            "home": self.home,
            "listen_addr": "127.0.0.1:%d" % self.port,
            "max_concurrent_runs": 8,
            "defaults": {"wall_clock_secs": 60},
        }
        if registry is not None:
            cfg["registry_mirrors"] = {"docker.io": registry.url}
            cfg["insecure_registries"] = [registry.addr]
        if config:
            for k, v in config.items():
                if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                    cfg[k] = dict(cfg[k], **v)
                else:
                    cfg[k] = v
        self.config = cfg
        self.config_path = os.path.join(self.tmpdir, "config.json")
        self.log_path = os.path.join(self.tmpdir, "boxer.log")
        self.env = env
        self.preexec = preexec
        self.proc = None
        self.valgrind = os.environ.get("BOXER_VALGRIND") == "1"

    def start(self):
        os.makedirs(self.tmpdir, exist_ok=True)
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        argv = [BOXER_BIN, "--config", self.config_path]
        if self.valgrind:
            self.vg_log = os.path.join(self.tmpdir, "valgrind.log")
            argv = ["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                    "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
                    "--child-silent-after-fork=yes", "--trace-children=no",
                    "--log-file=" + self.vg_log] + argv
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=self.preexec)
        timeout = 120 if self.valgrind else 30
        if self.config.get("listen_addr") == "":
            # Unix socket only (listen_unix): nothing answers on the port.
            wait_unix(self.config["listen_unix"], timeout=timeout, proc=self.proc)
        else:
            wait_http(self.url + "/healthz", timeout=timeout, proc=self.proc)
        return self

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self, check=True):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.log.close()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=120 if self.valgrind else 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.log.close()
        if check:
            if self.valgrind:
                with open(self.vg_log) as f:
                    vg = f.read()
                assert rc == 0, "server under valgrind exited %s:\n%s" % (rc, vg[-6000:])
            else:
                assert rc == 0, "server exited %s:\n%s" % (rc, self.log_text()[-4000:])
        return rc


def start_server(tmpdir, config=None, with_registry=True, env=None):
    """Starts a Boxer with the test registry as docker.io mirror.

    Returns (url, stop) where stop() stops the server (checking a clean exit).
    """
    reg = ensure_registry() if with_registry else None
    srv = Server(tmpdir, config=config, registry=reg, env=env).start()
    return srv.url, srv.stop


def cgroup_base_name(home):
    """boxer-<fnv1a32(home)>: the directory that holds this home's run and
    pull cgroups (boxer.c names it so)."""
    h = 2166136261
    for c in home.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return "boxer-%08x" % h


def leftover_processes(home):
    """Processes started for this home: their command line or their working
    directory names it (runsc, gofer, sandbox, skopeo, umoci, wrappers),
    they sit in one of its cgroups (skopeo, which sees only its own
    directory, under another name), or
    they are forks of a Boxer of this home (an /output capture).  The Boxer
    servers themselves (children of this test process, possibly under
    valgrind) and this process are not counted."""
    config = os.path.join(os.path.dirname(home), "config.json")
    me = os.getpid()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        # (No filtering on "pytest" in the command line: pytest's own
        # temporary directories, where homes often live, contain it.)
        if BOXER_BIN in cmd:
            if config in cmd and ppid != me:
                out.append((int(pid), "boxer fork: " + cmd))
            continue
        if home in cmd:
            out.append((int(pid), cmd))
            continue
        try:
            with open("/proc/%s/cgroup" % pid) as f:
                if "/%s/" % cgroup_base_name(home) in f.read():
                    out.append((int(pid), cmd))
                    continue
        except OSError:
            pass
        try:
            cwd = os.readlink("/proc/%s/cwd" % pid)
        except OSError:
            continue
        if cwd == home or cwd.startswith(home + "/"):
            out.append((int(pid), "cwd=%s %s" % (cwd, cmd)))
    return out


def unmount_under(path):
    """Test hygiene after a failure: lazily unmounts everything mounted at
    or below path, deepest first (`umount -R` needs path itself to be a
    mount point, which a home is not)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    points = [p for p in points if p == path or p.startswith(path + "/")]
    for p in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)


def stop_and_check(srv):
    """A fixture's teardown: stops srv, then no process and no mount of its
    home may be left (whatever is gets unmounted all the same)."""
    try:
        srv.stop()
        assert leftover_processes(srv.home) == []
        assert leftover_mounts(srv.home) == []
    finally:
        unmount_under(srv.home)


def leftover_mounts(home):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if home in line]
