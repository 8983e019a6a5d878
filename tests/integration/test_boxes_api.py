"""Boxes API, second slice (issue 13): box_defaults.network, images held by
boxes (pinned by digest), ?status= on the list, /v1/info, /v1/run, box
metrics, and the budget boxes share with /run.  Real runsc, real images
from the local registry."""

import json
import os
import time

import httpx
import pytest

from test_boxes import BUSYBOX, api, exec_wait, wait_status

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
