"""Issue 16: boxes made in advance (warm_pool entries of kind "box").  A
matching POST /v1/boxes adopts one (a hit, seen in /metrics) and the box
behaves as a cold one; a non-matching create is a miss; boxes made in
advance are not listed, not restarted, and leave nothing after a
shutdown or a kill -9.  Real runsc, images from the local registry."""

import os
import re
import time

import httpx
import pytest

import boxer_server
import hardening as H
from test_boxes import (BUSYBOX, api, box_cgroups, exec_wait, loop_devices, processes_naming,
                        wait_gone, wait_status)

POOL = {"warm_pool": [{"kind": "box", "image": BUSYBOX, "count": 1, "disk_size_gb": 1,
                       "limits": {"memory_mb": 256}}]}


def metrics(srv):
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    return {k: float(v) for k, v in re.findall(r"^(boxer_box_pool_\w+|boxer_boxes\w*) ([0-9.]+)$",
                                                text, re.M)}


def wait_ready(srv, n, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        m = metrics(srv)
        if m.get("boxer_box_pool_ready") == n and m.get("boxer_box_pool_creating") == 0:
            return m
        assert time.time() < deadline, ("box pool not ready", m, srv.log_text()[-3000:])
        time.sleep(0.05)


def box_dirs(srv):
    d = os.path.join(srv.home, "boxes")
    return sorted(e for e in os.listdir(d) if e.startswith("box_")) if os.path.isdir(d) else []


@pytest.fixture(scope="module")
def psrv(registry, tmp_path_factory):
    srv = boxer_server.Server(tmp_path_factory.mktemp("boxpool"), config=POOL,
                              registry=registry).start()
    yield srv
    try:
        boxer_server.stop_and_check(srv)
    finally:
        H.remove_cgroup_bases(srv.home)


def observe(srv, box):
    """What a box shows of itself: the same for an adopted and a cold box
    (the id differs, so hostname is compared with it)."""
    e = exec_wait(srv, box, ["sh", "-c", "hostname; id -u; echo $GREETING; pwd; nproc; "
                                         "grep MemTotal /proc/meminfo; cat /proc/1/cmdline; echo; "
                                         "grep -c : /proc/net/dev"])
    assert e["exit_code"] == 0, e
    lines = e["stdout"].split("\n")
    assert lines[0] == box, (lines, box)
    kb = int(lines[5].split()[1])
    assert 200 * 1024 <= kb <= 256 * 1024, lines[5]
    return lines[1:5] + [lines[6], lines[7]]


def test_adopted_box_behaves_as_a_cold_one(psrv):
    srv = psrv
    m = wait_ready(srv, 1)
    assert m["boxer_box_pool_hits_total"] == 0 and m["boxer_box_pool_created_total"] == 1
    assert m["boxer_box_pool_create_seconds_last"] > 0
    # made in advance: a directory with a disk, but no record, not a box
    (pre,) = box_dirs(srv)
    assert not os.path.exists(os.path.join(srv.home, "boxes", pre, "box.json"))
    assert os.path.exists(os.path.join(srv.home, "boxes", pre, "disk.img"))
    assert api(srv, "GET", "/v1/boxes").json() == []
    assert api(srv, "GET", "/v1/boxes/" + pre).status_code == 404
    body = {"image": BUSYBOX, "disk_size_gb": 1, "memory_mb": 256, "name": "warm",
            "env": {"GREETING": "hello"}, "workdir": "/tmp"}
    r = api(srv, "POST", "/v1/boxes", json=body)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["id"] == pre and info["status"] == "running" and info["name"] == "warm", info
    assert info["workdir"] == "/tmp" and info["env"] == {"GREETING": "hello"}, info
    m = metrics(srv)
    assert m["boxer_box_pool_hits_total"] == 1, m
    assert os.path.exists(os.path.join(srv.home, "boxes", pre, "box.json"))
    assert [b["id"] for b in api(srv, "GET", "/v1/boxes").json()] == [pre]
    assert api(srv, "GET", "/v1/boxes/warm").json()["id"] == pre

    # a cold box of other limits (disk 2 GB): a miss
    cold_body = dict(body, name="cold", disk_size_gb=2)
    r = api(srv, "POST", "/v1/boxes", json=cold_body)
    assert r.status_code == 201, r.text
    cold = r.json()["id"]
    assert cold != pre and metrics(srv)["boxer_box_pool_misses_total"] >= 1
    assert metrics(srv)["boxer_box_pool_hits_total"] == 1

    warm_seen, cold_seen = observe(srv, pre), observe(srv, cold)
    assert warm_seen == cold_seen, (warm_seen, cold_seen)
    assert warm_seen[:3] == ["0", "hello", "/tmp"], warm_seen
    # the exec's own env and user override the box's, as for a cold box
    e = exec_wait(srv, pre, ["sh", "-c", "echo $GREETING; id -u"], env={"GREETING": "bye"},
                  user="1000")
    assert e["stdout"] == "bye\n1000\n", e

    # the disk persists across stop/start
    assert exec_wait(srv, pre, ["sh", "-c", "echo v1 > /root/f"])["exit_code"] == 0
    assert api(srv, "POST", "/v1/boxes/%s:stop" % pre).status_code == 200
    assert api(srv, "POST", "/v1/boxes/%s:start" % pre).status_code == 200
    assert exec_wait(srv, pre, ["cat", "/root/f"])["stdout"] == "v1\n"
    assert exec_wait(srv, pre, ["hostname"])["stdout"] == pre + "\n"

    # the replacement was made in the background
    m = wait_ready(srv, 1)
    assert m["boxer_box_pool_created_total"] == 2, m
    assert len(box_dirs(srv)) == 3  # adopted, cold, the replacement

    # delete leaves nothing of the adopted box
    for box in (pre, cold):
        bdir = os.path.join(srv.home, "boxes", box)
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
        assert wait_gone(bdir)
        assert box_cgroups(box) == []
        assert loop_devices(os.path.join(bdir, "disk.img")) == ""
        deadline = time.time() + 20
        while processes_naming(box) and time.time() < deadline:
            time.sleep(0.2)
        assert processes_naming(box) == []
    assert api(srv, "GET", "/v1/boxes").json() == []


def test_non_matching_creates_go_cold(psrv):
    srv = psrv
    m = wait_ready(srv, 1)
    (pre,) = box_dirs(srv)
    misses = m["boxer_box_pool_misses_total"]
    # volumes are bind mounts fixed at create; other memory: no pooled box
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1,
                                            "memory_mb": 128})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    m = metrics(srv)
    assert box != pre and m["boxer_box_pool_misses_total"] == misses + 1, m
    assert m["boxer_box_pool_ready"] == 1 and m["boxer_box_pool_hits_total"] == 1
    # a workdir the image lacks must be made before the sandbox starts
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1,
                                            "memory_mb": 256, "workdir": "/srv/app"})
    assert r.status_code == 201, r.text
    box2 = r.json()["id"]
    assert box2 != pre and metrics(srv)["boxer_box_pool_misses_total"] == misses + 2
    assert exec_wait(srv, box2, ["pwd"])["stdout"] == "/srv/app\n"
    for b in (box, box2):
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204


def test_pool_boxes_not_restarted_and_swept(make_server):
    srv = make_server(config=dict(POOL, warm_pool=[dict(POOL["warm_pool"][0], count=2)]))
    wait_ready(srv, 2)
    made = box_dirs(srv)
    assert len(made) == 2 and api(srv, "GET", "/v1/boxes").json() == []
    # shutdown: deleted, disks included
    assert srv.stop() == 0
    assert box_dirs(srv) == [] and H.leftovers(srv.home) == {}, H.leftovers(srv.home)
    for b in made:
        assert box_cgroups(b) == [] and processes_naming(b) == []
    # kill -9: the next start (without a pool) sweeps them and starts nothing
    srv.start()
    wait_ready(srv, 2)
    made = box_dirs(srv)
    srv.kill9()
    srv.config.pop("warm_pool")
    srv.start()
    assert api(srv, "GET", "/v1/boxes").json() == []
    assert box_dirs(srv) == []
    left = H.wait_clean(srv.home, timeout=30)
    assert left == {}, left
    for b in made:
        assert box_cgroups(b) == []
        assert processes_naming(b, but_delete=True) == []
        assert loop_devices(os.path.join(srv.home, "boxes", b, "disk.img")) == ""
    assert srv.stop() == 0


def test_pool_boxes_give_way_to_runs_and_boxes(make_server):
    # two boxes made in advance hold 512 of 700 MB: a run or a box of
    # 256 MB only fits when one of them gives way
    srv = make_server(config=dict(POOL, total_memory_mb=700,
                                  warm_pool=[dict(POOL["warm_pool"][0], count=2)]))
    wait_ready(srv, 2)
    res = H.ok(srv, {"image": BUSYBOX, "cmd": ["echo", "ran"], "limits": {"memory_mb": 256}})
    assert res["stdout"] == "ran\n", res
    assert metrics(srv)["boxer_box_pool_yielded_total"] == 1
    wait_ready(srv, 2)  # refilled once the run is done
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1,
                                            "memory_mb": 300})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    m = metrics(srv)
    assert m["boxer_box_pool_hits_total"] == 0 and m["boxer_box_pool_yielded_total"] == 2, m
    assert exec_wait(srv, box, ["true"])["exit_code"] == 0
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    assert srv.stop() == 0
    assert box_dirs(srv) == [] and H.leftovers(srv.home) == {}, H.leftovers(srv.home)


def test_network_box_adopted(make_server):
    from test_boxes import BRIDGE, SUBNET
    netns_before = H.netns_names()
    entry = dict(POOL["warm_pool"][0], network="sandbox")
    srv = make_server(config={"warm_pool": [entry], "bridge_name": BRIDGE,
                              "sandbox_subnet": SUBNET + ".0/24"})
    wait_ready(srv, 1)
    (pre,) = box_dirs(srv)
    body = {"image": BUSYBOX, "disk_size_gb": 1, "memory_mb": 256, "network": True}
    # network false does not match a network entry
    r = api(srv, "POST", "/v1/boxes", json=dict(body, network=False))
    assert r.status_code == 201 and r.json()["id"] != pre, r.text
    assert metrics(srv)["boxer_box_pool_misses_total"] == 1
    r = api(srv, "POST", "/v1/boxes", json=body)
    assert r.status_code == 201 and r.json()["id"] == pre, r.text
    assert r.json()["network"] is True
    cold = api(srv, "POST", "/v1/boxes", json=dict(body, memory_mb=200)).json()["id"]
    cmd = ["sh", "-c", "grep -c : /proc/net/dev; ip -4 -o addr show 2>/dev/null | grep -c inet"]
    warm_out = exec_wait(srv, pre, cmd)["stdout"]
    assert warm_out == exec_wait(srv, cold, cmd)["stdout"], warm_out
    assert int(warm_out.split()[0]) >= 2  # lo and the sandbox's interface
    assert srv.stop() == 0
    srv.config.pop("warm_pool")
    srv.start()
    for b in (pre, cold):  # restarted as boxes (restart_boxes)
        assert wait_status(srv, b, "running")["status"] == "running"
        assert exec_wait(srv, b, ["hostname"])["stdout"] == b + "\n"
    ids = sorted(b["id"] for b in api(srv, "GET", "/v1/boxes").json())
    assert len(ids) == 3 and pre in ids and cold in ids
    for b in ids:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204
    assert srv.stop() == 0
    left = H.wait_clean(srv.home, timeout=30, netns_before=netns_before)
    assert left == {}, left
