"""Issue 16: the warm pool.  The same run-semantics checks against a
server whose runs hit the pool ("warm") and one without a pool ("cold");
then hits/misses, refill, shutdown cleanup and the crash sweep."""

import json
import os
import re
import time

import httpx
import pytest

import boxer_server
import hardening as H

BUSYBOX = "busybox"
LIMITS = {"cpu_cores": 1, "memory_mb": 256, "pids_limit": 64, "nofile": 256}


def metrics(srv):
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    return {k: float(v) for k, v in re.findall(r"^(boxer_pool_\w+) ([0-9.]+)$", text, re.M)}


def wait_ready(srv, n, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        m = metrics(srv)
        if m.get("boxer_pool_ready") == n:
            return m
        assert time.time() < deadline, ("pool not ready", m, srv.log_text()[-3000:])
        time.sleep(0.05)


# Warm teardowns take 1-2 s (runsc delete): enough slots that a run of
# this module never waits for one (it would then go cold).
POOL_CFG = {"warm_pool": [{"image": BUSYBOX, "count": 2}], "max_pending_teardowns": 16}


@pytest.fixture(scope="module", params=["warm", "cold"])
def path(request, registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("pool-" + request.param)
    srv = boxer_server.Server(d, registry=registry,
                              config=POOL_CFG if request.param == "warm" else None).start()
    srv.kind = request.param
    yield srv
    try:
        boxer_server.stop_and_check(srv)
    finally:
        H.remove_cgroup_bases(srv.home)


def run_once(srv, body):
    """A run; on the warm server it must have been served by the pool."""
    if srv.kind == "warm":
        wait_ready(srv, 2)
        before = metrics(srv)["boxer_pool_hits_total"]
    res = H.ok(srv, dict(body, image=BUSYBOX))
    if srv.kind == "warm":
        assert metrics(srv)["boxer_pool_hits_total"] == before + 1, "not served warm"
    return res


def test_stdout_stderr_exit(path):
    res = run_once(path, {"cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    assert (res["stdout"], res["stderr"], res["exit_code"]) == ("out\n", "err\n", 3)


def test_hostname_is_exec_id(path):
    res = run_once(path, {"cmd": ["hostname"]})
    assert res["stdout"] == res["exec_id"] + "\n"


def test_uid_env_cwd(path):
    res = run_once(path, {"cmd": ["sh", "-c", "id -u; echo $FOO; pwd"], "env": ["FOO=bar"],
                          "cwd": "/tmp"})
    assert res["stdout"].split("\n")[1:3] == ["bar", "/tmp"]
    cold_uid = res["stdout"].split("\n")[0]
    assert cold_uid != "0"


def test_limits_inside(path):
    res = run_once(path, {"cmd": ["sh", "-c", "nproc; grep MemTotal /proc/meminfo; ulimit -n"]})
    lines = res["stdout"].split("\n")
    assert lines[0] == "1", res
    kb = int(lines[1].split()[1])
    assert 200 * 1024 <= kb <= 256 * 1024, lines[1]
    assert lines[2] == "256"


def test_output_capture(path):
    res = run_once(path, {"cmd": ["sh", "-c", "echo hi > /output/a.txt"], "persist": True})
    r = H.download(path, "output/%s/a.txt" % res["exec_id"])
    assert r.status_code == 200 and r.content == b"hi\n"


def test_timeout(path):
    if path.kind == "warm":
        wait_ready(path, 2)
        before = metrics(path)["boxer_pool_hits_total"]
    t0 = time.time()
    r = H.run(path, {"image": BUSYBOX, "cmd": ["sh", "-c", "sleep 30 & sleep 30"],
                     "limits": {"wall_clock_secs": 1}})
    assert time.time() - t0 < 15
    assert r.status_code == 408, r.text
    assert r.json()["exit_code"] == 137
    if path.kind == "warm":
        assert metrics(path)["boxer_pool_hits_total"] == before + 1


def test_oom(path):
    # 64 MiB limit: a pool entry with these limits exists only on "warm"
    # when configured; here the same default-limits sandbox is used and
    # the command eats past its 256 MiB.
    res = run_once(path, {"cmd": ["sh", "-c", "x=a; while true; do x=$x$x; done"]})
    assert res["exit_code"] == 137 and res["oom_killed"] is True, res


def test_accounting(path):
    res = run_once(path, {"cmd": ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"]})
    assert res["cpu_ms"] > 0 and res["memory_peak_bytes"] > 0


def test_cleanup_after_runs(path):
    run_once(path, {"cmd": ["true"]})
    deadline = time.time() + 20
    while True:
        runs = H.run_dirs(path.home)
        # warm: exactly the pool's two sandboxes remain
        want = 2 if path.kind == "warm" else 0
        if path.kind == "warm":
            m = metrics(path)
            ok = m["boxer_pool_ready"] == 2 and len(runs) == 2
        else:
            ok = len(runs) == 0
        if ok:
            break
        assert time.time() < deadline, (runs, want)
        time.sleep(0.1)


def test_client_gone_kills_the_run(path):
    """A client that leaves mid-run: the command is ended (on the warm path
    with the whole sandbox: killing the `runsc exec` client alone would
    leave `sleep 60` running and the run in flight) and everything of the
    run goes well before the sleep would end."""
    if path.kind == "warm":
        wait_ready(path, 2)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(path.url + "/run", json={"image": BUSYBOX, "cmd": ["sleep", "60"]}, timeout=2)
    want = 2 if path.kind == "warm" else 0
    deadline = time.time() + 30
    while True:
        text = httpx.get(path.url + "/metrics").text
        inflight = re.search(r"^boxer_runs_in_flight (\d+)$", text, re.M).group(1)
        pending = re.search(r"^boxer_runs_pending_teardowns (\d+)$", text, re.M).group(1)
        if inflight == "0" and pending == "0" and len(H.run_dirs(path.home)) == want:
            if path.kind == "cold" or metrics(path)["boxer_pool_ready"] == 2:
                break
        assert time.time() < deadline, (inflight, pending, H.run_dirs(path.home))
        time.sleep(0.1)


# ---- pool only ----

def test_hits_misses_and_refill(make_server):
    srv = make_server(config={"warm_pool": [{"image": BUSYBOX, "count": 1}]})
    m = wait_ready(srv, 1)
    assert m["boxer_pool_hits_total"] == 0 and m["boxer_pool_created_total"] == 1
    assert m["boxer_pool_create_seconds_last"] > 0
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})
    m = metrics(srv)
    assert m["boxer_pool_hits_total"] == 1
    # other limits: no sandbox made for them, a miss
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"], "limits": {"memory_mb": 128}})
    assert metrics(srv)["boxer_pool_misses_total"] >= 1
    m = wait_ready(srv, 1)  # refilled
    assert m["boxer_pool_created_total"] == 2
    # the console's /v1/node reports the same pool (the metrics as JSON)
    wp = httpx.get(srv.url + "/v1/node", timeout=10).json()["warm_pool"]
    assert wp == {"entries": 1, "auto_entries": 0, "ready": 1, "creating": 0, "hits": 1,
                  "misses": m["boxer_pool_misses_total"], "created": 2, "failed": 0,
                  "create_ms_last": wp["create_ms_last"]}, wp
    assert wp["create_ms_last"] == round(m["boxer_pool_create_seconds_last"] * 1000), (wp, m)


def test_shutdown_destroys_the_pool(make_server):
    srv = make_server(config={"warm_pool": [{"image": BUSYBOX, "count": 2}]})
    wait_ready(srv, 2)
    assert H.run_dirs(srv.home) and H.home_processes(srv.home)
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


def test_crash_sweeps_the_pool(make_server):
    srv = make_server(config={"warm_pool": [{"image": BUSYBOX, "count": 2}]})
    wait_ready(srv, 2)
    before = set(H.run_dirs(srv.home))
    srv.kill9()
    # the sandboxes outlive a killed Boxer; the next start sweeps them
    srv.config.pop("warm_pool")
    srv.start()
    left = H.wait_clean(srv.home, timeout=30)
    assert left == {}, (left, before)


def test_missing_executable_is_127(path):
    res = run_once(path, {"cmd": ["/nonexistent"]})
    assert res["exit_code"] == 127 and "boxer: " in res["stderr"], res


def test_stdin(path):
    res = run_once(path, {"cmd": ["cat"], "stdin": "hello"})
    assert res["stdout"] == "hello"


def test_network_sandbox_warm(make_server):
    """An entry made with network "sandbox": the run gets its own address
    on the bridge, and the netns goes with the sandbox."""
    netns_before = H.netns_names()
    pid = os.getpid()
    srv = make_server(config={"bridge_name": "bxtpl%04x" % (pid & 0xFFFF),
                              "sandbox_subnet": "10.%d.251.0/24" % (100 + (pid + 33) % 150),
                              "warm_pool": [{"image": BUSYBOX, "count": 1, "network": "sandbox"}]})
    wait_ready(srv, 1)
    # network "none" does not match the entry: cold, a miss
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})
    assert metrics(srv)["boxer_pool_hits_total"] == 0
    res = H.ok(srv, {"image": BUSYBOX, "network": "sandbox",
                     "cmd": ["sh", "-c", "hostname; ip -4 addr | grep -c 'inet 10\\.'"]})
    assert metrics(srv)["boxer_pool_hits_total"] == 1
    assert res["stdout"] == res["exec_id"] + "\n1\n", res
    wait_ready(srv, 1)
    assert srv.stop() == 0
    assert H.leftovers(srv.home, netns_before) == {}


def test_failed_creation_is_retried_not_fatal(make_server):
    """An entry whose image cannot be had: counted as failed, retried later,
    and the server goes on serving (cold) runs."""
    srv = make_server(config={"warm_pool": [{"image": "nosuchimage:latest", "count": 1}]})
    deadline = time.time() + 60
    while metrics(srv).get("boxer_pool_failed_total", 0) < 1:
        assert time.time() < deadline, srv.log_text()[-2000:]
        time.sleep(0.1)
    assert metrics(srv)["boxer_pool_ready"] == 0
    assert H.ok(srv, {"image": BUSYBOX, "cmd": ["echo", "ok"]})["stdout"] == "ok\n"
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


# ---- warm_pool_auto, warm_pool_max_total, tag refresh ----

def test_auto_entry_after_cold_runs(make_server):
    """warm_pool_auto 3: the third cold run of an image (same limits and
    network) gives it an entry of its own; the fourth run is a hit."""
    srv = make_server(config={"warm_pool_auto": 3})
    for _ in range(2):
        H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})
    # other limits: another image key, its streak is its own
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"], "limits": {"memory_mb": 128}})
    m = metrics(srv)
    assert m["boxer_pool_auto_entries"] == 0 and m["boxer_pool_ready"] == 0, m
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})
    m = wait_ready(srv, 1)
    assert m["boxer_pool_auto_entries"] == 1 and m["boxer_pool_auto_created_total"] == 1, m
    assert m["boxer_pool_entries"] == 1 and m["boxer_pool_hits_total"] == 0, m
    res = H.ok(srv, {"image": BUSYBOX, "cmd": ["hostname"]})
    m = metrics(srv)
    assert m["boxer_pool_hits_total"] == 1 and m["boxer_pool_auto_hits_total"] == 1, m
    assert res["stdout"] == res["exec_id"] + "\n"
    wait_ready(srv, 1)  # its replacement
    wp = httpx.get(srv.url + "/v1/node", timeout=10).json()["warm_pool"]
    assert wp["entries"] == 1 and wp["auto_entries"] == 1, wp
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


def test_auto_max_total_and_retire(make_server):
    """Two automatic entries share warm_pool_max_total 1; an entry without a
    hit for warm_pool_auto_idle_secs is retired and its sandbox destroyed."""
    srv = make_server(config={"warm_pool_auto": 1, "warm_pool_auto_idle_secs": 3,
                              "warm_pool_max_total": 1})
    assert metrics(srv)["boxer_pool_max_total"] == 1
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"], "limits": {"memory_mb": 128}})
    m = metrics(srv)
    assert m["boxer_pool_auto_created_total"] == 2, m
    # never more than one sandbox over both entries, until both retire
    deadline = time.time() + 60
    seen_ready = False
    while True:
        m = metrics(srv)
        assert m["boxer_pool_ready"] + m["boxer_pool_creating"] <= 1, m
        seen_ready = seen_ready or m["boxer_pool_ready"] == 1
        if m["boxer_pool_auto_retired_total"] == 2 and m["boxer_pool_ready"] == 0 \
                and m["boxer_pool_creating"] == 0:
            break
        assert time.time() < deadline, (m, srv.log_text()[-3000:])
        time.sleep(0.1)
    assert seen_ready
    assert m["boxer_pool_auto_entries"] == 0 and m["boxer_pool_entries"] == 0, m
    # the retired sandboxes are gone (runsc delete in the background)
    assert H.wait_clean(srv.home, timeout=30) == {}
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


def test_pool_follows_a_moved_tag(make_server, registry):
    """A tag that moves (checked every tag_refresh_secs): ready sandboxes of
    the old digest are destroyed and remade; the next pooled run sees the
    new content."""
    tag = "bxpoolmv%d:1" % os.getpid()
    registry.push("busybox:latest", "library/" + tag)
    srv = make_server(config={"tag_refresh_secs": 1, "max_pending_teardowns": 8,
                              "warm_pool": [{"image": tag, "count": 1}]})
    probe = {"image": tag, "cmd": ["sh", "-c", "command -v python3 || echo none"]}
    wait_ready(srv, 1)
    assert H.ok(srv, probe)["stdout"] == "none\n"
    wait_ready(srv, 1)
    registry.push("python:3.12-slim", "library/" + tag)
    deadline = time.time() + 180
    while True:
        m = metrics(srv)
        if m["boxer_pool_refreshed_total"] >= 1 and m["boxer_pool_ready"] == 1:
            break
        assert time.time() < deadline, (m, srv.log_text()[-3000:])
        time.sleep(0.1)
    hits = m["boxer_pool_hits_total"]
    res = H.ok(srv, probe)
    assert metrics(srv)["boxer_pool_hits_total"] == hits + 1
    assert res["stdout"].strip().endswith("python3"), res
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


def test_pool_gives_way_to_a_run_that_needs_its_budget(make_server):
    """Ready sandboxes hold budget, but never keep a run out: a run that
    needs the memory they hold makes the pool delete them, runs, and the
    pool is refilled after."""
    srv = make_server(config={"total_memory_mb": 512,
                              "warm_pool": [{"image": BUSYBOX, "count": 1}]})
    wait_ready(srv, 1)
    res = H.run(srv, {"image": BUSYBOX, "cmd": ["echo", "big"],
                      "limits": {"memory_mb": 512}}, timeout=60)
    assert res.status_code == 200 and res.json()["stdout"] == "big\n", res.text
    assert metrics(srv)["boxer_pool_yielded_total"] == 1
    wait_ready(srv, 1)
    assert srv.stop() == 0
    assert H.leftovers(srv.home) == {}


def test_runs_with_inputs_go_cold(make_server):
    # inputs (JSON or multipart, issue 17) are bind mounts made with the
    # bundle: a warm sandbox has none, so such a run must not take one
    srv = make_server(config={"warm_pool": [{"image": BUSYBOX, "count": 1}]})
    wait_ready(srv, 1)
    res = H.ok(srv, {"image": BUSYBOX, "cmd": ["cat", "/in/x"], "inputs": {"in/x": {"content": "abc"}}})
    assert res["stdout"] == "abc"
    body = (b'--b\r\nContent-Disposition: form-data; name="request"\r\n\r\n' +
            json.dumps({"image": BUSYBOX, "cmd": ["cat", "/in/y"]}).encode() +
            b'\r\n--b\r\nContent-Disposition: form-data; name="in/y"\r\n\r\nxyz\r\n--b--\r\n')
    r = httpx.post(srv.url + "/run", content=body, timeout=120,
                   headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 200 and r.json()["stdout"] == "xyz", r.text
    assert metrics(srv)["boxer_pool_hits_total"] == 0
