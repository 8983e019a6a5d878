"""Image cache end to end: pulls through the docker.io mirror (the local test
registry), one pull for concurrent runs, cache hits with the registry down,
pull failures, GET/DELETE /images, LRU eviction and the pull timeout."""

import concurrent.futures
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import tempfile
import threading
import time

import httpx
import pytest

import hardening as H


BUSYBOX = "busybox"
BUSYBOX_REF = "docker.io/library/busybox:latest"
PYTHON_REF = "docker.io/library/python:3.12-slim"


def run(srv, image, cmd=("true",), timeout=180):
    return httpx.post(srv.url + "/run", json={"image": image, "cmd": list(cmd)}, timeout=timeout)


def run_ok(srv, image, cmd=("true",)):
    r = run(srv, image, cmd)
    assert r.status_code == 200, r.text
    return r.json()


def list_images(srv):
    r = httpx.get(srv.url + "/images", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def delete_image(srv, ref):
    return httpx.delete(srv.url + "/images", params={"ref": ref}, timeout=30)


def pulls(srv):
    """Completed pulls, from the server log (one line per pull)."""
    return len(re.findall(r"image: pulled ", srv.log_text()))


def blobs(srv):
    return sorted(os.listdir(os.path.join(srv.home, "images", "blobs")))


def test_concurrent_runs_share_one_pull_then_list_and_delete(make_server):
    srv = make_server()
    assert list_images(srv) == []

    def one(i):
        return run(srv, BUSYBOX, ["echo", "run-%d" % i])

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(one, range(4)))
    for i, r in enumerate(results):
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "run-%d\n" % i
    assert pulls(srv) == 1

    imgs = list_images(srv)
    assert len(imgs) == 1
    img = imgs[0]
    assert img["ref"] == BUSYBOX_REF
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", img["digest"])
    assert img["size_bytes"] > 100000
    assert abs(img["last_used"] - time.time()) < 300
    assert blobs(srv) == [img["digest"][7:]]

    # A second run is a cache hit.
    run_ok(srv, BUSYBOX, ["true"])
    assert pulls(srv) == 1

    r = delete_image(srv, "busybox:latest")
    assert r.status_code == 200, r.text
    assert list_images(srv) == []
    assert blobs(srv) == []
    r = delete_image(srv, "busybox")
    assert r.status_code == 404
    assert "not found" in r.json()["error"]

    # Deleted means pulled again next time.
    run_ok(srv, BUSYBOX, ["true"])
    assert pulls(srv) == 2


def test_cached_image_runs_with_registry_down(make_server, registry):
    srv = make_server()
    run_ok(srv, BUSYBOX, ["true"])
    srv.stop()
    registry.stop()
    try:
        srv.start()  # same home: the cache survives a restart
        res = run_ok(srv, BUSYBOX, ["echo", "offline"])
        assert res["stdout"] == "offline\n"
        assert pulls(srv) == 1
    finally:
        registry.start()


def test_missing_image_500_then_pushed_succeeds(make_server, registry):
    srv = make_server()
    name = "late-%d-%d" % (os.getpid(), int(time.time()))
    r = run(srv, name)
    assert r.status_code == 500
    err = r.json()["error"]
    assert "docker.io/library/%s:latest" % name in err
    assert "manifest unknown" in err, err
    assert list_images(srv) == []
    assert os.listdir(os.path.join(srv.home, "images", "tmp")) == []

    registry.push("busybox:latest", "library/%s:latest" % name)
    run_ok(srv, name)
    assert [i["ref"] for i in list_images(srv)] == ["docker.io/library/%s:latest" % name]


def test_delete_in_use_409(make_server):
    srv = make_server()
    run_ok(srv, BUSYBOX, ["true"])
    out = {}

    def long_run():
        out["r"] = run(srv, BUSYBOX, ["sleep", "4"])

    t = threading.Thread(target=long_run)
    t.start()
    try:
        deadline = time.time() + 30
        while not any(i.get("in_use") for i in list_images(srv)):
            assert time.time() < deadline, "the run never took the image"
            time.sleep(0.05)
        r = delete_image(srv, BUSYBOX)
        assert r.status_code == 409, r.text
        assert "in use" in r.json()["error"]
    finally:
        t.join()
    assert out["r"].status_code == 200, out["r"].text
    r = delete_image(srv, BUSYBOX)
    assert r.status_code == 200, r.text


def test_delete_bad_requests(server):
    assert delete_image(server, "Not/A..Ref").status_code == 400
    r = httpx.delete(server.url + "/images", timeout=30)
    assert r.status_code == 400
    assert "ref" in r.json()["error"]


def test_lru_eviction(make_server):
    # Any positive limit below two images: after each pull, everything not
    # in use and not just pulled goes.
    srv = make_server(config={"image_cache_max_bytes": 1})
    run_ok(srv, BUSYBOX, ["true"])
    assert [i["ref"] for i in list_images(srv)] == [BUSYBOX_REF]
    run_ok(srv, "python:3.12-slim", ["python3", "-c", "print(1)"])
    assert [i["ref"] for i in list_images(srv)] == [PYTHON_REF]
    assert len(blobs(srv)) == 1
    assert "evicted sha256:" in srv.log_text()


@pytest.fixture
def public_bindir():
    """A directory for tool wrappers that skopeo can run: it runs as uid
    65534, in a mount namespace where /tmp is its own directory, so
    pytest's tmp_path (below /tmp, 0700) is out of its reach."""
    d = tempfile.mkdtemp(prefix="boxer-test-bin-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_pull_timeout_kills_skopeo(make_server, public_bindir):
    # A skopeo that hangs for one repository; everything else is the real one.
    bindir = public_bindir
    wrapper = bindir / "skopeo"
    wrapper.write_text("#!/bin/sh\n"
                       "case \"$*\" in *library/slowimage*) sleep 120; exit 1;; esac\n"
                       "exec /usr/bin/skopeo \"$@\"\n")
    wrapper.chmod(0o755)
    srv = make_server(config={"pull_timeout_secs": 1},
                      env={"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))})
    t0 = time.time()
    r = run(srv, "slowimage")
    assert r.status_code == 500
    assert "image pull timed out" in r.json()["error"]
    assert time.time() - t0 < 15
    deadline = time.time() + 10
    while H.processes_naming(str(wrapper)):
        assert time.time() < deadline, H.processes_naming(str(wrapper))
        time.sleep(0.1)
    assert os.listdir(os.path.join(srv.home, "images", "tmp")) == []
    # The server still pulls other images.
    run_ok(srv, BUSYBOX, ["true"])


# ---- pull bounds: concurrency, cancellation, size, privileges ----

def tool_children(srv, name):
    """Live direct children of the server named name (skopeo, umoci)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        rest = st.rsplit(")", 1)[1].split()
        if comm == name and int(rest[1]) == srv.proc.pid and rest[0] != "Z":
            out.append(int(pid))
    return out


def wait_until(cond, timeout, what):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


@contextlib.contextmanager
def registry_frozen(registry):
    """The registry stopped (SIGSTOP): connections are accepted by the
    kernel and never answered, so pulls hang in skopeo until it goes on."""
    with open(os.path.join(registry.dir, "registry.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def raw_run(port, image):
    """A /run request on a socket the test can drop."""
    body = json.dumps({"image": image, "cmd": ["true"]}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /run HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (port, len(body), body))
    return s


def pull_tmp(srv):
    return os.listdir(os.path.join(srv.home, "images", "tmp"))


def test_pulls_wait_for_max_concurrent_pulls(make_server, registry):
    for i in range(5):
        registry.push("busybox:latest", "library/cap%d:latest" % i)
    srv = make_server(config={"max_concurrent_pulls": 2})
    results = {}

    def one(i):
        results[i] = run(srv, "cap%d" % i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    with registry_frozen(registry):
        for t in threads:
            t.start()
        wait_until(lambda: len(tool_children(srv, "skopeo")) >= 2, 30, "two skopeo")
        wait_until(lambda: srv.log_text().count("max_concurrent_pulls 2 running") >= 3, 30,
                   "three queued pulls")
        peak = 0
        end = time.time() + 2
        while time.time() < end:
            peak = max(peak, len(tool_children(srv, "skopeo")))
            time.sleep(0.02)
        assert peak == 2
    for t in threads:
        t.join(180)
    assert sorted(r.status_code for r in results.values()) == [200] * 5, \
        [r.text for r in results.values()]
    assert pulls(srv) == 5
    # The waiting pulls started in the order they arrived.
    log = srv.log_text()
    waited = re.findall(r"pull of (\S+) waits:", log)
    started = re.findall(r"pull of (\S+) starts after waiting", log)
    assert len(waited) == 3 and started == waited, log


def test_disconnected_runs_stop_their_pulls(make_server, registry):
    for i in range(4):
        registry.push("busybox:latest", "library/gone%d:latest" % i)
    srv = make_server(config={"max_concurrent_pulls": 2})
    with registry_frozen(registry):
        socks = [raw_run(srv.port, "gone%d" % (i % 4)) for i in range(20)]
        wait_until(lambda: len(tool_children(srv, "skopeo")) >= 2, 30, "skopeo at work")
        for s in socks:
            s.close()
        deadline = time.time() + 5
        while tool_children(srv, "skopeo"):
            assert time.time() < deadline, "skopeo left after every client went: %s" % \
                tool_children(srv, "skopeo")
            time.sleep(0.05)
        assert wait_until(lambda: not pull_tmp(srv), 5, "partial files removed") is not None
        assert "cancelled: no request waits for it any more" in srv.log_text()
        left = H.wait_clean(srv.home, timeout=10)
        assert left == {}, left
    assert blobs(srv) == []
    # The slots are free again.
    run_ok(srv, "gone1")


def test_image_max_bytes_download(make_server):
    srv = make_server(config={"image_max_bytes": 1 << 20})
    t0 = time.time()
    r = run(srv, PYTHON_REF)
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert "image_max_bytes (1048576 bytes)" in err and "download" in err, err
    assert time.time() - t0 < 60
    assert pull_tmp(srv) == [] and blobs(srv) == []
    assert list_images(srv) == []
    assert tool_children(srv, "skopeo") == []


def test_image_max_bytes_unpacked(make_server):
    # busybox: about 1.1 MB to download, about 2.3 MB unpacked.
    limit = 1600 * 1024
    srv = make_server(config={"image_max_bytes": limit})
    r = run(srv, BUSYBOX)
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert "image_max_bytes (%d bytes)" % limit in err and "unpacked" in err, err
    assert pull_tmp(srv) == [] and blobs(srv) == []
    assert list_images(srv) == []


def test_pull_tools_unprivileged_and_in_cgroups(make_server, registry, tmp_path):
    # umoci (root: it sets file ownership) reports where it runs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    rec = tmp_path / "umoci"
    wrapper = bindir / "umoci"
    wrapper.write_text("#!/bin/sh\n"
                       "cat /proc/self/cgroup > %s.cgroup\n"
                       "cat /proc/self/limits > %s.limits\n"
                       "id -u > %s.uid\n"
                       "exec /usr/bin/umoci \"$@\"\n" % (rec, rec, rec))
    wrapper.chmod(0o755)
    srv = make_server(config={"pull_memory_mb": 300, "pull_pids_limit": 100,
                              "image_max_bytes": 1 << 30},
                      env={"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))})
    base = H.cgroup_bases(srv.home)
    assert base, "no cgroup base for this home"
    result = {}
    t = threading.Thread(target=lambda: result.update(r=run(srv, BUSYBOX)))
    with registry_frozen(registry):
        t.start()
        pid = wait_until(lambda: tool_children(srv, "skopeo"), 30, "skopeo")[0]
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines())
        assert status["Uid"].split() == ["65534"] * 4
        assert status["Gid"].split() == ["65534"] * 4
        assert status["Groups"].split() == []
        assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt")
        with open("/proc/%d/limits" % pid) as f:
            assert re.search(r"Max file size\s+1073741824\s+1073741824", f.read())
        with open("/proc/%d/cgroup" % pid) as f:
            cg = {line.split(":")[1]: line.split(":")[2] for line in f.read().splitlines()}
        name = H.cgroup_bases(srv.home)[0].rsplit("/", 1)[1]
        for ctrl in ("memory", "pids"):
            assert "/%s/pull-" % name in cg[ctrl] and cg[ctrl].endswith("-skopeo"), cg
        leaf = cg["memory"].rsplit("/", 1)[1]
        mem = [b for b in base if "/memory/" in b or "/memory," in b or ",memory" in b]
        pids = [b for b in base if "/pids/" in b or ",pids" in b]
        assert mem and pids, base
        with open(os.path.join(mem[0], leaf, "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 300 << 20
        with open(os.path.join(pids[0], leaf, "pids.max")) as f:
            assert f.read().strip() == "100"
    t.join(180)
    assert result["r"].status_code == 200, result["r"].text
    cg = open(str(rec) + ".cgroup").read()
    for ctrl in ("memory", "pids"):
        line = [x for x in cg.splitlines() if x.split(":")[1] == ctrl][0]
        assert "/pull-" in line and line.endswith("-umoci"), cg
    assert re.search(r"Max file size\s+1073741824\s+1073741824", open(str(rec) + ".limits").read())
    assert open(str(rec) + ".uid").read().strip() == "0"
    # The pull cgroups are gone with their tools.
    assert wait_until(lambda: H.leftover_cgroups(srv.home) == [], 10, "pull cgroups removed")


def test_registry_auth_file_reaches_unprivileged_skopeo(make_server, public_bindir, tmp_path):
    # The auth file is root's alone (0600 in a 0700 directory); skopeo, as
    # uid 65534, still gets its content and accepts it.
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir(mode=0o700)
    auth = secret_dir / "auth.json"
    content = '{"auths": {"registry.invalid": {"auth": "dXNlcjpwYXNz"}}}\n'
    auth.write_text(content)
    auth.chmod(0o600)
    expected = public_bindir / "expected-auth"
    expected.write_text(content)
    expected.chmod(0o644)
    wrapper = public_bindir / "skopeo"
    wrapper.write_text("#!/bin/sh\n"
                       "case \"$*\" in *'--authfile auth.json'*) ;; "
                       "*) echo \"no --authfile auth.json in: $*\" >&2; exit 1;; esac\n"
                       "cmp -s auth.json %s || { echo \"auth.json unreadable or wrong as "
                       "uid $(id -u)\" >&2; exit 1; }\n"
                       "exec /usr/bin/skopeo \"$@\"\n" % expected)
    wrapper.chmod(0o755)
    srv = make_server(config={"registry_auth_file": str(auth)},
                      env={"PATH": "%s:%s" % (public_bindir,
                                              os.environ.get("PATH", "/usr/bin:/bin"))})
    r = run(srv, BUSYBOX)
    assert r.status_code == 200, r.text
    assert pull_tmp(srv) == []
    assert "dXNlcjpwYXNz" not in srv.log_text()
