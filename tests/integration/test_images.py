"""Image cache end to end: pulls through the docker.io mirror (the local test
registry), one pull for concurrent runs, cache hits with the registry down,
pull failures, GET/DELETE /images, LRU eviction and the pull timeout."""

import concurrent.futures
import os
import re
import threading
import time

import httpx


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


def processes_mentioning(text):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            out.append((int(pid), cmd))
    return out


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


def test_pull_timeout_kills_skopeo(make_server, tmp_path):
    # A skopeo that hangs for one repository; everything else is the real one.
    bindir = tmp_path / "bin"
    bindir.mkdir()
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
    while processes_mentioning(str(wrapper)):
        assert time.time() < deadline, processes_mentioning(str(wrapper))
        time.sleep(0.1)
    assert os.listdir(os.path.join(srv.home, "images", "tmp")) == []
    # The server still pulls other images.
    run_ok(srv, BUSYBOX, ["true"])
