"""Soak: uploads, downloads, runs (ok, timing out, flooding output), and bad
requests of every kind from 8 concurrent clients for BOXER_SOAK_SECS seconds
(default 90).  Every answer has the expected status and content; between the
start (after a warm-up) and the end the server's descriptor count and
resident memory do not grow (read from /proc); afterwards nothing is left
behind (processes, mounts, cgroups, bundles, temp files)."""

import collections
import json
import os
import random
import socket
import struct
import threading
import time

import httpx
import pytest

import hardening as H
from rawhttp import open_conn

SOAK_SECS = float(os.environ.get("BOXER_SOAK_SECS", "90"))
if H.VALGRIND:
    SOAK_SECS = min(SOAK_SECS, 30.0)
WARMUP_SECS = 12.0
CONCURRENCY = 8
UPLOAD_LIMIT = 1 << 20
OUTPUT_LIMIT = 256 * 1024
# Memory may move a little with the allocator's free lists; a leak of a
# request's buffers over thousands of requests is far above this.
RSS_SLACK_KB = 6 * 1024


@pytest.fixture(scope="module")
def srv(registry):
    yield from H.module_server(registry, "boxer-soak-", config={
        "upload_limit_bytes": UPLOAD_LIMIT, "output_limit_bytes": OUTPUT_LIMIT,
        "max_concurrent_runs": 4, "header_timeout_ms": 3000, "body_timeout_ms": 3000})


class Worker:
    def __init__(self, srv, wid, stats, failures):
        self.srv = srv
        self.url = srv.url
        self.wid = wid
        self.rng = random.Random(wid * 7919)
        self.stats = stats
        self.failures = failures
        self.n = 0
        self.client = httpx.Client(timeout=120)

    def fail(self, op, msg):
        self.failures.append("%s (worker %d): %s" % (op, self.wid, msg[:300]))

    def expect(self, op, r, status):
        if r.status_code != status:
            self.fail(op, "status %d, want %d: %s" % (r.status_code, status, r.text[:200]))
            return False
        if status >= 400:
            try:
                if "error" not in r.json():
                    self.fail(op, "no error field: %s" % r.text[:200])
                    return False
            except ValueError:
                self.fail(op, "not JSON: %r" % r.content[:200])
                return False
        return True

    def path(self, kind):
        self.n += 1
        return "soak/w%d/%s-%d.bin" % (self.wid, kind, self.n)

    # ---- operations ----

    def op_upload_download(self):
        size = self.rng.choice([0, 1, 100, 4096, 65536, 300000, UPLOAD_LIMIT])
        data = self.rng.randbytes(size)
        p = self.path("up")
        r = self.client.post(self.url + "/files", data={"path": p}, files={"file": ("f", data)})
        if not self.expect("upload", r, 200) or r.json() != {"path": p}:
            return
        r = self.client.get(self.url + "/files", params={"path": p})
        if self.expect("download", r, 200) and r.content != data:
            self.fail("download", "content differs (%d vs %d bytes)" % (len(r.content), size))

    def op_run(self):
        p = self.path("in")
        data = ("input %d\n" % self.n).encode()
        r = self.client.post(self.url + "/files", data={"path": p}, files={"file": ("f", data)})
        if not self.expect("upload", r, 200):
            return
        persist = self.rng.random() < 0.5
        token = "tok-%d-%d" % (self.wid, self.n)
        r = self.client.post(self.url + "/run", json={
            "image": "busybox", "files": [p], "persist": persist, "env": ["TOKEN=" + token],
            "cmd": ["sh", "-c", "cat /%s; echo $TOKEN; mkdir -p /output/d; "
                    "echo $TOKEN > /output/d/o" % p]})
        if not self.expect("run", r, 200):
            return
        res = r.json()
        if res["stdout"] != data.decode() + token + "\n" or res["exit_code"] != 0:
            self.fail("run", "unexpected result %s" % json.dumps(res)[:300])
            return
        out = self.client.get(self.url + "/files",
                              params={"path": "output/%s/d/o" % res["exec_id"]})
        inp = self.client.get(self.url + "/files", params={"path": p})
        if persist:
            if self.expect("run output", out, 200) and out.content != (token + "\n").encode():
                self.fail("run output", "content %r" % out.content[:100])
            self.expect("run input kept", inp, 200)
        else:
            self.expect("run output deleted", out, 404)
            self.expect("run input deleted", inp, 404)

    def op_python(self):
        r = self.client.post(self.url + "/run", json={
            "image": "python:3.12-slim",
            "cmd": ["python3", "-c", "import sys; print(sum(range(%d)))" % self.n]})
        if self.expect("python", r, 200) and r.json()["stdout"] != "%d\n" % sum(range(self.n)):
            self.fail("python", r.text[:200])

    def op_timeout(self):
        r = self.client.post(self.url + "/run", json={
            "image": "busybox", "limits": {"wall_clock_secs": 1},
            "cmd": ["sh", "-c", "echo started; sleep 30"]})
        if self.expect("timeout", r, 408):
            body = r.json()
            # Under load the sandbox may not even have started the command
            # within the second.
            if not body.get("timed_out") or body.get("stdout") not in ("", "started\n"):
                self.fail("timeout", r.text[:200])

    def op_flood(self):
        r = self.client.post(self.url + "/run", json={"image": "busybox",
                                                      "cmd": ["sh", "-c", "yes soak"]})
        self.expect("flood", r, 507)

    def op_bad(self):
        kind = self.rng.randrange(13)
        c = self.client
        u = self.url
        if kind == 0:
            self.expect("bad json", c.post(u + "/run", content=b'{"image": "busybox", "cmd": [',
                                              headers={"Content-Type": "application/json"}),
                        400)
        elif kind == 1:
            self.expect("unknown field", c.post(u + "/run", json={"image": "busybox",
                                                                  "cmd": ["x"], "bogus": 1}), 400)
        elif kind == 2:
            self.expect("missing file", c.post(u + "/run", json={
                "image": "busybox", "cmd": ["true"], "files": ["soak/none/%d" % self.n]}), 400)
        elif kind == 3:
            self.expect("bad upload path", c.post(u + "/files", data={"path": "../evil"},
                                                  files={"file": ("f", b"x")}), 400)
        elif kind == 4:
            self.expect("bad download path", c.get(u + "/files", params={"path": "/etc/passwd"}),
                        400)
        elif kind == 5:
            self.expect("absent", c.get(u + "/files", params={"path": "soak/absent"}), 404)
        elif kind == 6:
            self.expect("unknown route", c.get(u + "/nope"), 404)
        elif kind == 7:
            self.expect("wrong method", c.delete(u + "/run"), 405)
        elif kind == 8:
            self.expect("too large", c.post(u + "/files", data={"path": self.path("big")},
                                            files={"file": ("f", b"x" * (UPLOAD_LIMIT + 1))}),
                        413)
        elif kind == 9:
            self.expect("huge header", c.get(u + "/healthz", headers={"X-Big": "v" * 40000}), 431)
        elif kind == 10:
            self.raw("garbage", b"\x16\x03\x01 garbage\r\n\r\n", 400)
        elif kind == 11:
            # An upload cut off by a reset: no answer, nothing stored.
            p = self.path("reset")
            body = (b"--B\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n" + p.encode() +
                    b"\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\""
                    b"\r\n\r\n" + b"r" * 200000)
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(b"POST /files HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; "
                      b"boundary=B\r\nContent-Length: 400000\r\n\r\n" + body)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            self.expect("reset upload absent", c.get(u + "/files", params={"path": p}), 404)
        else:
            # A run whose client leaves: the sandbox is killed, nothing stays.
            body = json.dumps({"image": "busybox", "cmd": ["sleep", "30"]}).encode()
            conn = open_conn(u)
            conn.send(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                      + body)
            time.sleep(self.rng.random() * 0.5)
            conn.close()
        self.stats["bad"] += 1

    def raw(self, op, data, status):
        conn = open_conn(self.url)
        try:
            conn.send(data)
            got = conn.response()[0]
            if got != status:
                self.fail(op, "status %d, want %d" % (got, status))
        except (OSError, ConnectionError) as e:
            self.fail(op, repr(e))
        finally:
            conn.close()

    def op_health(self):
        r = self.client.get(self.url + "/healthz")
        if self.expect("healthz", r, 200) and r.json() != {"ok": True}:
            self.fail("healthz", r.text)

    OPS = [("upload_download", 4), ("run", 4), ("python", 1), ("timeout", 0.5), ("flood", 0.5),
           ("bad", 4), ("health", 1)]

    def loop(self, until):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while time.time() < until:
            name = self.rng.choices(names, weights)[0]
            try:
                getattr(self, "op_" + name)()
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.fail(name, repr(e))
            self.stats[name] += 1
        self.client.close()


def soak(srv, secs, seed_base, stats, failures):
    workers = [Worker(srv, seed_base + i, stats, failures) for i in range(CONCURRENCY)]
    until = time.time() + secs
    threads = [threading.Thread(target=w.loop, args=(until,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(secs + 600)
    assert not any(t.is_alive() for t in threads), "a client hung"


def quiet_readings(srv):
    """fd count and RSS once nothing is in flight any more."""
    left = H.wait_clean(srv.home, timeout=30 * H.SLOW, netns_before=srv.netns_before)
    assert left == {}, left
    time.sleep(1.5)  # the sweep closes idle connections' leftovers, trims memory
    return H.fd_count(srv.proc.pid), H.rss_kb(srv.proc.pid)


def test_soak(srv):
    stats = collections.Counter()
    failures = []
    # Warm-up: every path once at concurrency, so first-use allocations
    # (image cache, buffers grown to their working size) are in the baseline.
    soak(srv, WARMUP_SECS, 100, stats, failures)
    assert failures == [], failures[:10]
    fds0, rss0 = quiet_readings(srv)
    stats.clear()
    t0 = time.time()
    with H.Canary(srv.url, every=0.5, timeout=10 * H.SLOW) as canary:
        soak(srv, SOAK_SECS, 0, stats, failures)
    took = time.time() - t0
    fds1, rss1 = quiet_readings(srv)
    print("\nsoak: %.0fs, %d operations %s; fds %d -> %d, RSS %d -> %d kB; health max %.2fs" % (
        took, sum(stats.values()), dict(stats), fds0, fds1, rss0, rss1, canary.max_latency))
    assert failures == [], "%d failures, first: %s" % (len(failures), failures[:10])
    assert stats["run"] > 0 and stats["upload_download"] > 0 and stats["bad"] > 0
    canary.check(max_latency=5.0 * H.SLOW)
    assert fds1 <= fds0, "descriptors grew from %d to %d" % (fds0, fds1)
    if H.CHECK_RSS:
        assert rss1 <= rss0 + RSS_SLACK_KB, "RSS grew from %d to %d kB" % (rss0, rss1)
    assert H.image_cache_problems(srv.home) == []
    # Only what was meant to stay: persisted outputs hold files, nothing else.
    out = os.path.join(srv.home, "files", "output")
    for eid in os.listdir(out) if os.path.isdir(out) else []:
        assert os.listdir(os.path.join(out, eid)) == ["d"], eid
