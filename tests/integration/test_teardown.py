"""Issue 16: teardown off the critical path.  The answer goes out once the
result and the captured outputs are final; the netns, cgroup, mounts and
run dir go afterwards, at most max_pending_teardowns at a time (admission
waits for a slot), and a crash in between is swept at the next start."""

import concurrent.futures
import os
import re
import time

import httpx

import hardening as H

BUSYBOX = "busybox"
# Each Boxer on the host needs its own bridge and subnet (other suites and
# other checkouts run beside this one).
_PID = os.getpid()
SUFFIX = "%04x" % (_PID & 0xFFFF)
NET16 = "10.%d" % (100 + (_PID + 77) % 150)


def net_cfg(k):
    return {"bridge_name": "bxttd%d%s" % (k, SUFFIX), "sandbox_subnet": "%s.%d.0/24" % (NET16, 200 + k)}


def metric(srv, name):
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, "%s not in /metrics" % name
    return int(m.group(1))


def wait_metric(srv, name, want, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        v = metric(srv, name)
        if v == want or time.time() > deadline:
            return v
        time.sleep(0.05)


def test_burst_with_one_teardown_slot(make_server):
    """Six runs at once, four slots, one teardown slot: every run answers
    correctly (a finished teardown admits the next run), outputs captured
    before the answer are there, and nothing is left afterwards."""
    netns_before = H.netns_names()
    srv = make_server(config=dict(net_cfg(1), max_pending_teardowns=1, max_concurrent_runs=4))
    assert metric(srv, "boxer_runs_pending_teardowns") == 0
    bodies = []
    for i in range(6):
        b = {"image": BUSYBOX, "persist": True,
             "cmd": ["sh", "-c", "echo run%d; echo out%d > /output/o.txt" % (i, i)]}
        if i % 2 == 0:
            b["network"] = "sandbox"
        bodies.append(b)
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda b: H.ok(srv, b), bodies))
    for i, res in enumerate(results):
        assert res["exit_code"] == 0 and res["stdout"] == "run%d\n" % i, res
        r = H.download(srv, "output/%s/o.txt" % res["exec_id"])
        assert r.status_code == 200 and r.content == b"out%d\n" % i
        assert res["cpu_ms"] >= 0 and res["memory_peak_bytes"] > 0
    assert wait_metric(srv, "boxer_runs_pending_teardowns", 0) == 0
    assert H.wait_clean(srv.home, netns_before=netns_before) == {}


def test_crash_right_after_an_answer_is_swept(make_server):
    """Boxer killed while answered runs may still be tearing down: the next
    start on the same home removes whatever was left."""
    netns_before = H.netns_names()
    cfg = dict(net_cfg(2), max_pending_teardowns=2)
    srv = make_server(config=cfg)
    H.ok(srv, {"image": BUSYBOX, "cmd": ["true"]})  # the image is cached
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(H.ok, srv, {"image": BUSYBOX, "network": "sandbox",
                                      "cmd": ["sh", "-c", "echo x > /output/x"]})
                for _ in range(2)]
        for f in futs:
            assert f.result()["exit_code"] == 0
    srv.kill9()  # at once: the teardowns of both runs may be under way
    srv.start()
    left = H.wait_clean(srv.home, netns_before=netns_before)
    assert left == {}, left
    assert H.ok(srv, {"image": BUSYBOX, "cmd": ["echo", "ok"]})["stdout"] == "ok\n"
    assert H.wait_clean(srv.home, netns_before=netns_before) == {}
