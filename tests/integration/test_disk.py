"""Disk bounds (issue 11 item 11): the free-disk floor (min_free_disk_percent)
and the store cap (store_max_bytes) stop uploads, /output captures and image
pulls with 507 and a message that says which bound.

The floor is made reachable with a home on a small tmpfs mounted by the
test (and always unmounted)."""

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawhttp import PendingSocket, connect  # noqa: E402

BUSYBOX = "busybox"


@pytest.fixture
def tmpfs_home(make_server, tmp_path):
    """make(size_mb, config): a server whose home is a fresh tmpfs."""
    mounted = []

    def make(size_mb, config):
        home = tmp_path / ("srv%d" % len(mounted)) / "home"
        os.makedirs(home)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb,
                        "tmpfs", str(home)], check=True)
        mounted.append(str(home))
        return make_server(config=config)

    yield make
    for home in mounted:
        subprocess.run(["umount", "-l", home], stderr=subprocess.DEVNULL)


class Answer:
    def __init__(self, status, body):
        self.status_code = status
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def upload(srv, path, data):
    """A multipart upload over a raw socket: the server answers 507 before
    the body is all sent, and a client library would only see the broken
    pipe, not the answer."""
    b = b"----boxertestboundary"
    body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="path"\r\n\r\n' +
            path.encode() + b"\r\n--" + b +
            b'\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + b + b"--\r\n")
    s = PendingSocket(connect(srv.url, timeout=60))
    try:
        s.send(b"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
               b"boundary=" + b + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            s.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, payload = s.response()
        return Answer(status, payload)
    finally:
        s.sock.close()


def test_upload_and_capture_stop_at_free_disk_floor(tmpfs_home):
    srv = tmpfs_home(64, {"min_free_disk_percent": 50,
                          "upload_limit_bytes": 64 << 20})
    # The image first, while there is room (the pull is checked too).
    r = httpx.post(srv.url + "/run", json={"image": BUSYBOX, "cmd": ["true"]}, timeout=120)
    assert r.status_code == 200, r.text
    r = upload(srv, "big.bin", b"x" * (40 << 20))
    assert r.status_code == 507, r.text
    assert "min_free_disk_percent" in r.json()["error"]
    assert upload(srv, "small.txt", b"fine").status_code == 200
    assert not os.listdir(os.path.join(srv.home, "files", ".tmp"))
    r = httpx.post(srv.url + "/run", timeout=120, json={
        "image": BUSYBOX, "persist": True,
        "cmd": ["sh", "-c", "dd if=/dev/zero of=/output/big bs=1M count=40 2>/dev/null; echo ok"]})
    assert r.status_code == 507, r.text
    assert "capturing /output" in r.json()["error"]
    assert "min_free_disk_percent" in r.json()["error"]
    # What the failed capture wrote is gone again.
    eid = r.json()["exec_id"]
    out = os.path.join(srv.home, "files", "output", eid)
    deadline = time.time() + 15
    while os.path.exists(out):
        assert time.time() < deadline, os.listdir(out)
        time.sleep(0.1)
    srv.stop()


def test_pull_stops_at_free_disk_floor(tmpfs_home):
    # An empty 64 MiB home is 100% free; busybox's download takes it below 99%.
    srv = tmpfs_home(64, {"min_free_disk_percent": 99})
    r = httpx.post(srv.url + "/run", json={"image": BUSYBOX, "cmd": ["true"]}, timeout=120)
    assert r.status_code == 507, r.text
    assert "pulling" in r.json()["error"] and "min_free_disk_percent" in r.json()["error"]
    tmp = os.path.join(srv.home, "images", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    # Already below the floor: the next pull fails at its start.
    r = httpx.post(srv.url + "/run", json={"image": "python:3.12-slim", "cmd": ["true"]},
                   timeout=120)
    assert r.status_code == 507, r.text
    srv.stop()


def test_store_max_bytes(make_server):
    srv = make_server(config={"store_max_bytes": 1 << 20})
    assert upload(srv, "a.bin", b"a" * (600 << 10)).status_code == 200
    r = upload(srv, "b.bin", b"b" * (600 << 10))
    assert r.status_code == 507, r.text
    assert "store_max_bytes" in r.json()["error"]
    # A small one still fits.
    assert upload(srv, "c.txt", b"c" * 1000).status_code == 200
    r = httpx.post(srv.url + "/run", timeout=120, json={
        "image": BUSYBOX, "persist": True,
        "cmd": ["sh", "-c", "dd if=/dev/zero of=/output/big bs=1k count=600 2>/dev/null"]})
    assert r.status_code == 507, r.text
    assert "store_max_bytes" in r.json()["error"]
    text = httpx.get(srv.url + "/metrics").text
    line = [ln for ln in text.splitlines() if ln.startswith("boxer_store_bytes ")][0]
    assert int(line.split()[1]) == (600 << 10) + 1000
    srv.stop()


def store_metric(srv, name):
    text = httpx.get(srv.url + "/metrics").text
    return int([ln for ln in text.splitlines() if ln.startswith(name + " ")][0].split()[1])


def test_metrics_store_totals_are_counters(make_server):
    """GET /metrics no longer walks the store (item 15): a file put there
    behind Boxer's back is not seen until the start-up count."""
    srv = make_server()
    assert upload(srv, "m/a.txt", b"12345").status_code == 200
    assert store_metric(srv, "boxer_store_files") == 1
    assert store_metric(srv, "boxer_store_bytes") == 5
    with open(os.path.join(srv.home, "files", "behind.txt"), "wb") as f:
        f.write(b"x" * 100)
    assert store_metric(srv, "boxer_store_files") == 1
    assert upload(srv, "m/a.txt", b"123").status_code == 200  # replaced
    assert store_metric(srv, "boxer_store_bytes") == 3
    srv.stop()
    srv.start()
    assert store_metric(srv, "boxer_store_files") == 2
    assert store_metric(srv, "boxer_store_bytes") == 103
    srv.stop()
