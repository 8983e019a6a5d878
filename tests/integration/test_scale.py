"""Scale-out on one node (issue 17): node ids in box, exec and run ids,
/readyz, the SIGTERM drain, stateless runs (inputs, return_outputs).  Real
runsc, real images from the local registry.  The balancer test is
test_haproxy.py."""

import json
import os
import re
import signal
import subprocess
import threading
import time

import httpx
import pytest

import boxer_server

BUSYBOX = "busybox"
NODE = "node-a7"


@pytest.fixture(scope="module")
def nserver(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    srv = boxer_server.Server(d, config={"node_id": NODE}, registry=registry).start()
    yield srv
    boxer_server.stop_and_check(srv)


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


def run(srv, body, **kw):
    return api(srv, "POST", "/run", json=body, **kw)


def test_node_id_in_ids_info_and_metrics(nserver):
    srv = nserver
    r = run(srv, {"image": BUSYBOX, "cmd": ["hostname"]})
    assert r.status_code == 200, r.text
    eid = r.json()["exec_id"]
    assert re.fullmatch(r"boxer-%s-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                        % NODE, eid), eid
    # still the sandbox's host name (at most 63 bytes with the longest node id)
    assert r.json()["stdout"] == eid + "\n"
    assert api(srv, "GET", "/v1/info").json()["node_id"] == NODE
    m = api(srv, "GET", "/metrics").text
    assert 'boxer_node_info{node_id="%s"} 1\n' % NODE in m

    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    box = r.json()["id"]
    try:
        assert re.fullmatch(r"box_%s_[0-9a-f]{16}" % NODE, box), box
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["echo", "hi"], "wait": True})
        assert r.status_code == 200, r.text
        assert re.fullmatch(r"exec_%s_[0-9a-f]{16}" % NODE, r.json()["id"]), r.json()
        assert api(srv, "GET", "/v1/boxes/%s/exec/%s" % (box, r.json()["id"])).status_code == 200
    finally:
        assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % box).status_code == 204


def test_old_box_ids_still_load(make_server):
    """A record written before node ids (box_<16 hex>) loads, starts and
    runs execs after an upgrade."""
    srv = make_server(config={"node_id": "n1"})
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1})
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    assert api(srv, "POST", "/v1/boxes/%s:stop" % new).status_code == 200
    srv.stop()
    old = "box_0123456789abcdef"
    bdir = os.path.join(srv.home, "boxes")
    os.rename(os.path.join(bdir, new), os.path.join(bdir, old))
    rec_path = os.path.join(bdir, old, "box.json")
    with open(rec_path) as f:
        rec = json.load(f)
    rec["id"] = old
    with open(rec_path, "w") as f:
        json.dump(rec, f)
    srv.start()
    assert api(srv, "GET", "/v1/boxes/" + old).json()["status"] == "stopped"
    assert api(srv, "POST", "/v1/boxes/%s:start" % old).status_code == 200
    r = api(srv, "POST", "/v1/boxes/%s/exec" % old, json={"cmd": ["echo", "ok"], "wait": True})
    assert r.status_code == 200 and r.json()["stdout"] == "ok\n", r.text
    assert api(srv, "DELETE", "/v1/boxes/%s?force=true" % old).status_code == 204


@pytest.mark.parametrize("bad", ["Node_1", "a.b", "-x", "x" * 25, ""])
def test_bad_node_id_refused_at_start(tmp_path, bad):
    cfg = {"home": str(tmp_path / "home"), "listen_addr": "127.0.0.1:%d" % boxer_server.free_port(),
           "node_id": bad}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    out = subprocess.run([boxer_server.BOXER_BIN, "--config", str(p)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30)
    assert out.returncode != 0
    assert b"node_id" in out.stdout, out.stdout
