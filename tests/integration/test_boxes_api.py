"""Boxes API, second slice (issue 13): box_defaults.network, images held by
boxes (pinned by digest), ?status= on the list, /v1/info, /v1/run, box
metrics, and the budget boxes share with /run.  Real runsc, real images
from the local registry."""

import base64
import json
import os
import time

import httpx
import pytest

from test_boxes import BOXINFO_KEYS, BUSYBOX, api, download, exec_wait, upload, wait_status

_PID = os.getpid()
# Own bridge and subnet, named like test_boxes.py's ("bxt" + this pid).
BRIDGE = "bxtc%04x" % (_PID & 0xFFFF)
SUBNET = "10.%d.%d" % (100 + _PID % 150, 150 + _PID % 50)


def extra(srv, box):
    return api(srv, "GET", "/v1/boxes/%s?extra=1" % box).json()


def delete_image(srv, ref):
    return httpx.delete(srv.url + "/images", params={"ref": ref}, timeout=30)


def test_box_defaults_network_applies_when_omitted(make_server):
    srv = make_server(config={"box_defaults": {"network": True, "disk_size_gb": 1},
                              "bridge_name": BRIDGE, "sandbox_subnet": SUBNET + ".0/24"})
    boxes = []
    try:
        for body, want in (({}, True), ({"network": None}, True), ({"network": False}, False)):
            r = api(srv, "POST", "/v1/boxes", json=dict(image=BUSYBOX, **body))
            assert r.status_code == 201, r.text
            boxes.append(r.json()["id"])
            assert r.json()["network"] is want, (body, r.json())
            out = exec_wait(srv, boxes[-1], ["ip", "-4", "addr"])["stdout"]
            assert ((" inet %s." % SUBNET) in out) is want, out
    finally:
        for b in boxes:
            assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204


def test_box_image_pinned_by_digest(make_server, registry):
    """A box holds its image (running or stopped, also across a Boxer
    restart): DELETE /images answers 409, eviction skips it, and a moved tag
    does not change the box's root."""
    tag = "bxpin%d:1" % _PID
    registry.push("busybox:latest", "library/" + tag)
    # every pull evicts every image not in use; a tag is trusted for 1 s
    srv = make_server(config={"tag_refresh_secs": 1, "image_cache_max_bytes": 1,
                              "box_defaults": {"disk_size_gb": 1}})
    r = api(srv, "POST", "/v1/boxes", json={"image": tag})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    digest = extra(srv, box)["image_digest"]
    assert digest.startswith("sha256:")
    blob = os.path.join(srv.home, "images", "blobs", digest[7:])
    r = delete_image(srv, tag)
    assert r.status_code == 409 and "box" in r.json()["error"], r.text
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    r = delete_image(srv, tag)
    assert r.status_code == 409 and "box" in r.json()["error"], r.text
    with open(os.path.join(srv.home, "boxes", box, "box.json")) as f:
        assert json.load(f)["image_digest"] == digest

    srv.stop()
    srv.start()
    # the stopped box still holds its image after the restart
    assert api(srv, "GET", "/v1/boxes/" + box).json()["status"] == "stopped"
    r = delete_image(srv, tag)
    assert r.status_code == 409 and "box" in r.json()["error"], r.text

    # the tag moves; a run pulls the new content (and evicts what is unused)
    registry.push("python:3.12-slim", "library/" + tag)
    time.sleep(1.2)
    r = api(srv, "POST", "/run", json={"image": tag, "cmd": ["python3", "-c", "print(1)"]})
    assert r.status_code == 200 and r.json()["stdout"] == "1\n", r.text
    assert os.path.isdir(blob), "the box's image was evicted"
    r = api(srv, "POST", "/v1/boxes/%s:start" % box)
    assert r.status_code == 200, r.text
    assert extra(srv, box)["image_digest"] == digest
    # busybox content, not python's
    e = exec_wait(srv, box, ["busybox", "true"])
    assert e["exit_code"] == 0, e
    # and after a restart of a running box, the same
    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    assert extra(srv, box)["image_digest"] == digest
    assert exec_wait(srv, box, ["busybox", "true"])["exit_code"] == 0
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    # nothing holds the old content now: the tag (python's) can go
    r = delete_image(srv, tag)
    assert r.status_code == 200, r.text


# ---- one server for the cheap checks of this module ----

@pytest.fixture(scope="module")
def aserver(registry, tmp_path_factory):
    import boxer_server
    d = tmp_path_factory.mktemp("boxesapi")
    srv = boxer_server.Server(d, config={"box_defaults": {"disk_size_gb": 1},
                                         "max_limits": {"cpu_cores": 2, "memory_mb": 2048,
                                                        "wall_clock_secs": 120},
                                         "max_disk_size_gb": 4,
                                         "bridge_name": BRIDGE + "m",
                                         "sandbox_subnet": "10.%d.%d.0/24"
                                         % (100 + _PID % 150, 100 + _PID % 50)},
                              registry=registry).start()
    yield srv
    try:
        srv.stop()
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
    finally:
        boxer_server.unmount_under(srv.home)


def ids(srv, query=""):
    r = api(srv, "GET", "/v1/boxes" + query)
    assert r.status_code == 200, r.text
    return [b["id"] for b in r.json()]


def test_list_boxes_by_status(aserver):
    srv = aserver
    made = []
    try:
        for _ in range(2):
            r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        running, stopped = made
        assert api(srv, "POST", "/v1/boxes/%s:stop" % stopped).status_code == 200
        assert running in ids(srv, "?status=running") and stopped not in ids(srv, "?status=running")
        assert ids(srv, "?status=stopped") == [stopped]
        assert set(made) <= set(ids(srv)) and set(made) <= set(ids(srv, "?status="))
        assert ids(srv, "?status=error") == [] and ids(srv, "?status=creating") == []
        r = api(srv, "GET", "/v1/boxes?status=stopped&extra=1")
        assert [b["id"] for b in r.json()] == [stopped] and "image_digest" in r.json()[0]
        for bad in ("bogus", "RUNNING", "running%00", "x" * 40):
            r = api(srv, "GET", "/v1/boxes?status=" + bad)
            assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (bad, r.text)
            assert "status" in r.json()["message"]
    finally:
        for b in made:
            assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s" % name)


def test_info_and_box_metrics(aserver):
    srv = aserver
    info = api(srv, "GET", "/v1/info").json()
    assert info["max_cpu"] == 2 and info["max_memory_mb"] == 2048, info
    assert info["version"] and info["limits"]["max_disk_size_gb"] == 4
    before_boxes = info["boxes"]
    m0 = api(srv, "GET", "/metrics").text
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "memory_mb": 128})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        info = api(srv, "GET", "/v1/info").json()
        assert info["boxes"]["running"] == before_boxes["running"] + 1
        assert info["boxes"]["total"] == before_boxes["total"] + 1
        assert info["budget"]["boxes_memory_mb"] >= 128
        m1 = api(srv, "GET", "/metrics").text
        assert metric(m1, 'boxer_boxes{status="running"}') == \
            metric(m0, 'boxer_boxes{status="running"}') + 1
        assert exec_wait(srv, box, ["true"])["exit_code"] == 0
        assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
        m2 = api(srv, "GET", "/metrics").text
        for name, delta in (("boxer_box_starts_total", 1), ("boxer_box_stops_total", 1),
                            ("boxer_box_execs_started_total", 1),
                            ("boxer_box_execs_finished_total", 1)):
            assert metric(m2, name) == metric(m0, name) + delta, name
        assert metric(m2, "boxer_box_execs_running") == 0
        assert metric(m2, 'boxer_boxes{status="stopped"}') == \
            metric(m0, 'boxer_boxes{status="stopped"}') + 1
        info = api(srv, "GET", "/v1/info").json()
        assert info["boxes"]["stopped"] == before_boxes["stopped"] + 1
        assert info["budget"]["boxes_memory_mb"] == 0
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204
    assert "get" in api(srv, "GET", "/swagger/openapi.json").json()["paths"]["/v1/info"]


EXTRAS = ("image_digest", "disk_used_bytes", "last_active_at", "node")


def test_box_info_extras(aserver):
    srv = aserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        plain = api(srv, "GET", "/v1/boxes/%s" % box).json()
        assert not set(EXTRAS) & set(plain), plain
        assert not set(EXTRAS) & set(api(srv, "GET", "/v1/boxes").json()[0])
        x0 = extra(srv, box)
        assert x0["node"] == api(srv, "GET", "/v1/info").json()["node_id"] and x0["node"]
        used0 = x0["disk_used_bytes"]
        assert isinstance(used0, int) and 0 < used0 < 1 << 30, x0
        t0 = x0["last_active_at"]
        assert t0 and t0.endswith("Z"), x0
        # last_active_at has second resolution: let the clock pass it.
        while time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) <= t0:
            time.sleep(0.1)
        res = exec_wait(srv, box, ["dd", "if=/dev/urandom", "of=/root/big", "bs=1M",
                                   "count=20", "conv=fsync"])
        assert res["exit_code"] == 0, res
        x1 = extra(srv, box)
        assert x1["last_active_at"] > t0, (t0, x1)
        assert x1["disk_used_bytes"] >= used0 + 20 * (1 << 20), (used0, x1)
        # A stopped box still has both (a stat of its image, no mount).
        assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
        x2 = extra(srv, box)
        assert x2["disk_used_bytes"] >= x1["disk_used_bytes"] and x2["last_active_at"]
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def outcomes(srv):
    text = api(srv, "GET", "/metrics").text
    got = {o: metric(text, 'boxer_box_execs_total{outcome="%s"}' % o)
           for o in ("succeeded", "failed", "timed_out", "canceled")}
    got["count"] = metric(text, "boxer_box_exec_duration_seconds_count")
    got["le1"] = metric(text, 'boxer_box_exec_duration_seconds_bucket{le="1"}')
    got["inf"] = metric(text, 'boxer_box_exec_duration_seconds_bucket{le="+Inf"}')
    got["sum"] = metric(text, "boxer_box_exec_duration_seconds_sum")
    return got


def test_exec_outcome_metrics(aserver):
    srv = aserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        m0 = outcomes(srv)
        assert exec_wait(srv, box, ["true"])["status"] == "succeeded"
        # a tty exec ends in box_term.c: counted as well
        e = exec_wait(srv, box, ["true"], tty={"rows": 24, "cols": 80})
        assert e["status"] == "succeeded", e
        assert exec_wait(srv, box, ["false"])["status"] == "failed"
        e = exec_wait(srv, box, ["sleep", "30"], timeout_ms=1500)
        assert e["status"] == "failed" and e["exit_code"] == 137, e
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["sleep", "1000"]})
        assert r.status_code == 201, r.text
        eid = r.json()["id"]
        assert api(srv, "POST", "/v1/boxes/%s/exec/%s:cancel" % (box, eid)).status_code == 200
        # The outcome is counted when the exec has ended (finished_at),
        # not when its status turns "canceled" at the cancel itself.
        deadline = time.time() + 20
        while api(srv, "GET", "/v1/boxes/%s/exec/%s" % (box, eid)).json()["finished_at"] is None:
            assert time.time() < deadline
            time.sleep(0.1)
        m1 = outcomes(srv)
        delta = {k: m1[k] - m0[k] for k in m0}
        assert delta["succeeded"] == 2 and delta["failed"] == 1, delta
        assert delta["timed_out"] == 1 and delta["canceled"] == 1, delta
        assert delta["count"] == 5 and delta["inf"] == 5, delta
        # the timed out exec took at least its 1.5 s: not in the 1 s bucket
        assert 1 <= delta["le1"] <= 4 and delta["sum"] >= 1.5, delta
        # file transfers are not execs
        assert upload(srv, box, "/root/f", b"x").status_code == 200
        assert download(srv, box, "/root/f").content == b"x"
        assert outcomes(srv)["count"] == m1["count"]
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def test_box_user_and_last_active_survive_restart(make_server):
    """A box's "user" (uid[:gid]) is the default of its execs (an exec's
    own user overrides it), in box.json and BoxInfo ?extra=1 only; bad
    values are 400.  It and last_active_at survive a Boxer restart (clean:
    a file transfer's touch is kept; kill -9: an exec's end is)."""
    srv = make_server(config={"box_defaults": {"disk_size_gb": 1}})
    for bad in ("root", "", "1:", ":1", "-1", "4294967295", "1:2:3", " 1", 1000, ["1"]):
        r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "user": bad})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (bad, r.text)
        assert "user" in r.json()["message"], (bad, r.text)
    assert api(srv, "GET", "/v1/boxes").json() == []
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "user": "1000:1001"})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    assert set(r.json()) == BOXINFO_KEYS, r.json()  # BoxRun's keys only
    assert extra(srv, box)["user"] == "1000:1001"
    assert exec_wait(srv, box, ["sh", "-c", "id -u; id -g"])["stdout"] == "1000\n1001\n"
    assert exec_wait(srv, box, ["id", "-u"], user="0")["stdout"] == "0\n"
    assert exec_wait(srv, box, ["id", "-u"], user="7")["stdout"] == "7\n"
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "user": "x"})
    assert r.status_code == 400, r.text
    with open(os.path.join(srv.home, "boxes", box, "box.json")) as f:
        assert json.load(f)["user"] == "1000:1001"
    # a box without "user" is root, and says null
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    rootbox = r.json()["id"]
    assert extra(srv, rootbox)["user"] is None
    assert exec_wait(srv, rootbox, ["id", "-u"])["stdout"] == "0\n"
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % rootbox).status_code == 204

    # last activity: a file transfer (not an exec record) a second later
    time.sleep(1.1)
    assert upload(srv, box, "/tmp/f", b"x").status_code == 200
    last = extra(srv, box)["last_active_at"]
    assert last is not None
    srv.stop()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    info = extra(srv, box)
    assert info["last_active_at"] == last, (last, info)
    assert info["user"] == "1000:1001", info
    assert exec_wait(srv, box, ["id", "-u"])["stdout"] == "1000\n"
    # kill -9: the last exec's end is kept (its record), no box.json write
    last = extra(srv, box)["last_active_at"]
    srv.kill9()
    srv.start()
    assert wait_status(srv, box, "running")["status"] == "running"
    assert extra(srv, box)["last_active_at"] == last
    # a stopped box keeps it too
    assert api(srv, "POST", "/v1/boxes/%s:stop" % box).status_code == 200
    srv.stop()
    srv.start()
    info = extra(srv, box)
    assert info["status"] == "stopped" and info["last_active_at"] == last, (last, info)
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def exec_counters(srv):
    text = api(srv, "GET", "/metrics").text
    return {k: metric(text, "boxer_box_execs_%s" % k)
            for k in ("started_total", "finished_total", "running")}


def test_tty_execs_counted_like_execs(aserver):
    """A tty exec counts in execs_started as it does in execs_finished and
    by outcome (it ends in box_term.c): started = finished + running."""
    srv = aserver
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        c0, m0 = exec_counters(srv), outcomes(srv)
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box,
                json={"cmd": ["sleep", "3"], "tty": {"rows": 24, "cols": 80}})
        assert r.status_code == 201, r.text
        c1 = exec_counters(srv)
        assert c1["started_total"] - c0["started_total"] == 1, (c0, c1)
        assert c1["running"] - c0["running"] == 1, (c0, c1)
        assert c1["finished_total"] == c0["finished_total"], (c0, c1)
        e = exec_wait(srv, box, ["true"], tty={"rows": 24, "cols": 80})
        assert e["status"] == "succeeded", e
        deadline = time.time() + 30
        while exec_counters(srv)["running"] != c0["running"]:
            assert time.time() < deadline
            time.sleep(0.1)
        c2, m2 = exec_counters(srv), outcomes(srv)
        assert c2["started_total"] - c0["started_total"] == 2, (c0, c2)
        assert c2["finished_total"] - c0["finished_total"] == 2, (c0, c2)
        assert c2["running"] == c0["running"], (c0, c2)
        assert m2["count"] - m0["count"] == 2, (m0, m2)
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def v1run(srv, body, query=""):
    return api(srv, "POST", "/v1/run" + query, json=body)


def test_v1_run_root_writable_bounded(make_server):
    """/v1/run is a fresh box for one command: root with the box capability
    set (Docker's minus NET_RAW) on a writable root, bounded (here
    v1_run_root_mb 16: ENOSPC past it), "user" picks another uid; /run
    stays nobody without capabilities; nothing is left after either."""
    import boxer_server
    from test_run import assert_clean
    srv = make_server(config={"v1_run_root_mb": 16})
    r = v1run(srv, {"image": BUSYBOX, "cmd": [
        "sh", "-c", "id -u; id -g; echo pkg > /usr/bin/newtool && cat /usr/bin/newtool; "
        "grep -E '^Cap(Eff|Bnd)' /proc/self/status"]})
    assert r.status_code == 200, r.text
    out = r.json()["stdout"].split("\n")
    assert out[:3] == ["0", "0", "pkg"], r.text
    # Docker's default set minus NET_RAW (bit 13) is 0xa80405fb
    assert out[3].split() == ["CapEff:", "00000000a80405fb"], r.text
    assert out[4].split() == ["CapBnd:", "00000000a80405fb"], r.text
    assert_clean(srv)
    # the bound: ENOSPC inside, the command goes on
    r = v1run(srv, {"image": BUSYBOX, "cmd": [
        "sh", "-c", "dd if=/dev/zero of=/usr/big bs=1M count=64; echo rc=$?; "
        "echo small > /usr/small; echo rc2=$?"]})
    assert r.status_code == 200, r.text
    assert "No space left on device" in r.json()["stderr"], r.text
    assert "rc=1" in r.json()["stdout"], r.text
    assert r.json()["exit_code"] == 0, r.text
    assert_clean(srv)
    # "user": another uid[:gid] (no capabilities, the root's files not its own)
    r = v1run(srv, {"image": BUSYBOX, "user": "1000:1001", "cmd": [
        "sh", "-c", "id -u; id -g; grep CapEff /proc/self/status; touch /usr/x || echo denied"]})
    assert r.status_code == 200, r.text
    out = r.json()["stdout"].split("\n")
    assert out[:2] == ["1000", "1001"] and out[2].split()[1] == "0000000000000000", r.text
    assert out[3] == "denied", r.text
    r = v1run(srv, {"image": BUSYBOX, "user": "7", "cmd": ["sh", "-c", "id -u; id -g"]})
    assert r.status_code == 200 and r.json()["stdout"] == "7\n7\n", r.text
    for bad in ("root", "", "1:", ":1", "-1", "4294967295", "1:2:3", 5, None):
        r = v1run(srv, {"image": BUSYBOX, "cmd": ["true"], "user": bad})
        if bad is None:
            assert r.status_code == 200, r.text
            continue
        assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST", (bad, r.text)
        assert "user" in r.json()["message"], (bad, r.text)
    # /run is unchanged: nobody, no capabilities, a read-only root
    r = api(srv, "POST", "/run", json={"image": BUSYBOX, "cmd": [
        "sh", "-c", "id -u; grep CapEff /proc/self/status; touch /usr/x 2>/dev/null || echo ro"]})
    assert r.status_code == 200, r.text
    out = r.json()["stdout"].split("\n")
    assert out[0] == "65534" and out[1].split()[1] == "0000000000000000" and out[2] == "ro", r.text
    assert_clean(srv)
    assert boxer_server.leftover_mounts(srv.home) == []


def test_v1_run(aserver):
    srv = aserver
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo out; echo $A >&2; "
                                              "echo w > /tmp/new && cat /tmp/new; exit 3"],
                    "env": {"A": "from-env"}, "volumes": [], "disk_size_gb": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"exit_code": 3, "stdout": "out\nw\n", "stderr": "from-env\n",
                        "error_message": None}
    # cpu and memory reach the sandbox
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "nproc; grep MemTotal /proc/meminfo"],
                    "cpu": 1, "memory_mb": 64}, "?extra=1")
    assert r.status_code == 200, r.text
    out = r.json()["stdout"].split("\n")
    assert out[0] == "1", out
    assert int(out[1].split()[1]) <= 64 * 1024, out
    assert r.json()["timed_out"] is False and r.json()["exec_id"]
    # timeout_ms, in ms
    t0 = time.time()
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["sleep", "30"], "timeout_ms": 700}, "?extra=1")
    assert r.status_code == 200, r.text
    assert r.json()["exit_code"] == 137 and "timed out" in r.json()["error_message"], r.text
    assert r.json()["timed_out"] is True and time.time() - t0 < 15
    # network: false is loopback only, true the sandbox network
    for net, want in ((False, 1), ("none", 1), (True, 2), ("sandbox", 2)):
        r = v1run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "ip -4 -o addr | wc -l"],
                        "network": net})
        assert r.status_code == 200 and r.json()["stdout"].strip() == str(want), (net, r.text)
    # refusals, in /v1's error shape
    for body, status, code, word in (
            ({"cmd": ["true"]}, 400, "INVALID_REQUEST", "image"),
            ({"image": BUSYBOX}, 400, "INVALID_REQUEST", "cmd"),
            ({"image": BUSYBOX, "cmd": []}, 400, "INVALID_REQUEST", "cmd"),
            ({"image": BUSYBOX, "cmd": ["true"], "limits": {}}, 400, "INVALID_REQUEST", "limits"),
            ({"image": BUSYBOX, "cmd": ["true"], "cpu": 3}, 400, "RESOURCE_EXCEEDED", "cpu"),
            ({"image": BUSYBOX, "cmd": ["true"], "memory_mb": 4096}, 400, "RESOURCE_EXCEEDED",
             "memory_mb"),
            ({"image": BUSYBOX, "cmd": ["true"], "timeout_ms": 121000}, 400,
             "RESOURCE_EXCEEDED", "timeout_ms"),
            ({"image": BUSYBOX, "cmd": ["true"], "disk_size_gb": 5}, 400, "RESOURCE_EXCEEDED",
             "disk_size_gb"),
            ({"image": BUSYBOX, "cmd": ["true"], "network": "host"}, 400, "INVALID_REQUEST",
             "network"),
            ({"image": BUSYBOX, "cmd": ["true"], "env": {"A": 1}}, 400, "INVALID_REQUEST", "env"),
            ({"image": BUSYBOX, "cmd": ["true"],
              "volumes": [{"host_path": "/tmp", "guest_path": "/x"}]}, 400, "INVALID_REQUEST",
             "volumes"),
            ({"image": "nosuchimage%d:1" % _PID, "cmd": ["true"]}, 502, "IMAGE_PULL_FAILED", ""),
    ):
        r = v1run(srv, body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["code"] == code and word in r.json()["message"], (body, r.text)
        assert r.json()["error"] == r.json()["message"]
    r = api(srv, "POST", "/v1/run", content=b'{"image":"busybox","cmd":["true"]}',
            headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["code"] == "INVALID_REQUEST", r.text
    assert "post" in api(srv, "GET", "/swagger/openapi.json").json()["paths"]["/v1/run"]


def test_v1_run_stdin(aserver):
    """stdin / stdin_b64 on /v1/run as on /run (issue 14): delivered, then
    closed; a stdin larger than /run's 4 MiB body part is accepted (the body
    limit grows by stdin_limit_bytes as /run's does)."""
    srv = aserver
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["cat"], "stdin": "line 1\nline 2\n"})
    assert r.status_code == 200, r.text
    assert r.json() == {"exit_code": 0, "stdout": "line 1\nline 2\n", "stderr": "",
                        "error_message": None}
    raw = bytes(range(256)) * 4
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "od -An -tx1 -v | tr -d ' \\n'"],
                    "stdin_b64": base64.b64encode(raw).decode()})
    assert r.status_code == 200 and r.json()["stdout"] == raw.hex(), r.text
    big = "y" * (5 << 20)
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["wc", "-c"], "stdin": big})
    assert r.status_code == 200 and r.json()["stdout"].strip() == str(len(big)), r.text[:300]
    # no stdin: the command sees end of input at once
    r = v1run(srv, {"image": BUSYBOX, "cmd": ["cat"], "timeout_ms": 20000})
    assert r.status_code == 200 and r.json()["stdout"] == "", r.text
    for body, status, word in (
            ({"stdin": "a", "stdin_b64": "YQ=="}, 400, "not both"),
            ({"stdin": 1}, 400, "stdin must be a string"),
            ({"stdin_b64": "!!!"}, 400, "not valid base64"),
            ({"stdin": "z" * ((10 << 20) + 1)}, 413, "stdin_limit_bytes")):
        r = v1run(srv, dict(body, image=BUSYBOX, cmd=["cat"]))
        assert r.status_code == status, r.text[:300]
        assert r.json()["code"] == "INVALID_REQUEST" and word in r.json()["message"], r.text


def box_pids_max(box_id):
    """pids.max of the box's cgroup (the pids hierarchy, v1 or v2)."""
    import test_boxes
    for d in test_boxes.box_cgroups(box_id):
        p = os.path.join(d, "pids.max")
        if os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    raise AssertionError("no pids cgroup for %s" % box_id)


def test_boxes_share_the_run_budget(make_server):
    import threading
    srv = make_server(config={"total_memory_mb": 1200, "total_pids": 1400,
                              "max_limits": {"memory_mb": 1024, "pids_limit": 64},
                              "box_defaults": {"disk_size_gb": 1, "memory_mb": 1024,
                                               "pids_limit": 100}})
    # a running box holds its memory_mb: a /run that does not fit beside it waits
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    big = r.json()["id"]
    # its cgroup: box_defaults.pids_limit counted as /run counts (32 + 4 x 100)
    assert box_pids_max(big) == "432"
    info = api(srv, "GET", "/v1/info").json()
    assert info["budget"]["boxes_memory_mb"] == 1024 and info["budget"]["boxes_pids"] == 432
    out = {}

    def run():
        out["r"] = api(srv, "POST", "/run", json={"image": BUSYBOX, "cmd": ["echo", "ran"],
                                                  "limits": {"memory_mb": 256}})

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.time() + 30
        while api(srv, "GET", "/v1/info").json()["budget"]["runs_queued"] != 1:
            assert time.time() < deadline and "r" not in out, out
            time.sleep(0.1)
        time.sleep(1)
        assert "r" not in out, "the run did not wait for the box's memory"
        # stopping the box gives the memory back: the run starts
        assert api(srv, "POST", "/v1/boxes/%s:stop" % big).status_code == 200
        t.join(60)
        assert out["r"].status_code == 200 and out["r"].json()["stdout"] == "ran\n", out
    finally:
        t.join(60)
    info = api(srv, "GET", "/v1/info").json()
    assert info["budget"]["boxes_memory_mb"] == 0 and info["budget"]["runs_memory_mb"] == 0

    # a run in flight holds its memory: a box that does not fit beside it is 503
    t = threading.Thread(target=lambda: out.update(r=api(
        srv, "POST", "/run", json={"image": BUSYBOX, "cmd": ["sleep", "5"],
                                   "limits": {"memory_mb": 256}})))
    t.start()
    try:
        deadline = time.time() + 30
        while api(srv, "GET", "/v1/info").json()["budget"]["runs_memory_mb"] != 256:
            assert time.time() < deadline
            time.sleep(0.05)
        r = api(srv, "POST", "/v1/boxes/%s:start" % big)
        assert r.status_code == 503 and r.json()["code"] == "RESOURCE_EXCEEDED", r.text
        assert "total_memory_mb" in r.json()["message"] and int(r.headers["Retry-After"]) > 0
    finally:
        t.join(60)
    assert out["r"].status_code == 200, out["r"].text

    # pids: three boxes of 432 host tasks fit 1400, a fourth does not
    small = []
    try:
        for _ in range(3):
            r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "memory_mb": 64})
            assert r.status_code == 201, r.text
            small.append(r.json()["id"])
        assert api(srv, "GET", "/v1/info").json()["budget"]["boxes_pids"] == 3 * 432
        r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "memory_mb": 64})
        assert r.status_code == 503 and "total_pids" in r.json()["message"], r.text
    finally:
        for b in small + [big]:
            assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % b).status_code == 204
