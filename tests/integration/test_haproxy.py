"""Two real Boxer nodes on loopback behind a real HAProxy (issue 17), with
the configuration derived from deploy/haproxy/haproxy.cfg: runs spread
over the nodes, requests naming a box (or a run's outputs) reach its node,
a draining node loses no run and stops getting new ones, a killed node
leaves the other serving.  Network "none" only: the nodes need no bridge."""

import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import httpx
import pytest

import boxer_server

REPO = boxer_server.REPO
DEPLOY_CFG = os.path.join(REPO, "deploy", "haproxy", "haproxy.cfg")
BUSYBOX = "busybox"
NODES = ("n1", "n2")


def node_of(exec_id):
    m = re.fullmatch(r"boxer-([a-z0-9-]+)-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", exec_id)
    assert m, exec_id
    return m.group(1)


class HAProxy:
    def __init__(self, tmpdir, nodes):
        self.dir = str(tmpdir)
        self.port = boxer_server.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        # a short path: a Unix socket's name is at most 107 bytes
        self.sockdir = tempfile.mkdtemp(prefix="bxhap-")
        self.sock = os.path.join(self.sockdir, "s")
        with open(DEPLOY_CFG) as f:
            text = f.read()
        # the deploy file's two example nodes become ours, on loopback
        for (example, addr), (name, srv) in zip((("node-a", "10.0.0.11:8080"),
                                                 ("node-b", "10.0.0.12:8080")), nodes):
            assert example in text and addr in text
            text = text.replace(example, name).replace(addr, "127.0.0.1:%d" % srv.port)
        assert "    bind :8080\n" in text
        text = text.replace("    bind :8080\n", "    bind 127.0.0.1:%d\n" % self.port)
        text = text.replace("global\n", "global\n    stats socket %s mode 600 level admin\n"
                            % self.sock, 1)
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.proc = None

    def start(self):
        subprocess.run(["haproxy", "-c", "-q", "-f", self.cfg], check=True)
        self.log = open(os.path.join(self.dir, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def status(self):
        """{(backend, server): "UP"/"DOWN"/...} from the stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(head, line.split(",")))
            if row["svname"] not in ("FRONTEND", "BACKEND"):
                out[(row["pxname"], row["svname"])] = row["status"].split(" ")[0]
        return out

    def wait_status(self, want, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                st = self.status()
            except OSError:  # not listening yet
                time.sleep(0.1)
                continue
            if all(st.get(k) == v for k, v in want.items()):
                return
            time.sleep(0.1)
        raise AssertionError("haproxy states %s, want %s" % (self.status(), want))


def start_cluster(make_server, tmp_path, extra=None):
    nodes = [(name, make_server(config=dict({"node_id": name, "drain_timeout_secs": 30,
                                             "max_connections_per_ip": 4096},
                                            **(extra or {}).get(name, {}))))
             for name in NODES]
    hap = HAProxy(tmp_path, nodes).start()
    try:
        hap.wait_status({("boxer_pool", n): "UP" for n in NODES})
    except BaseException:
        hap.stop()
        raise
    return hap, dict(nodes)


@pytest.fixture
def cluster(make_server, tmp_path):
    hap, nodes = start_cluster(make_server, tmp_path)
    try:
        yield hap, nodes
    finally:
        hap.stop()


def test_full_node_overflow_goes_elsewhere(make_server, tmp_path):
    """n1 takes one run and queues none: the rest of a burst, refused by n1
    with 503, is retried on n2 by HAProxy; no client sees an error."""
    hap, nodes = start_cluster(make_server, tmp_path,
                               {"n1": {"max_concurrent_runs": 1, "max_queued_runs": 0}})
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            rs = list(ex.map(lambda i: run(hap.url, ["sh", "-c", "sleep 1; echo %d" % i]),
                             range(6)))
        assert [r.status_code for r in rs] == [200] * 6, [r.text for r in rs]
        assert [r.json()["stdout"] for r in rs] == ["%d\n" % i for i in range(6)]
        on = [node_of(r.json()["exec_id"]) for r in rs]
        assert on.count("n1") <= 1 and on.count("n2") >= 5, on
        # n1 did refuse some (503 to HAProxy, never to the client)
        m = httpx.get(nodes["n1"].url + "/metrics").text
        assert re.search(r'boxer_http_requests_total\{route="/run",status="503"\} [1-9]', m), m
    finally:
        hap.stop()


def run(url, cmd, **kw):
    body = {"image": BUSYBOX, "cmd": cmd}
    body.update(kw)
    return httpx.post(url + "/run", json=body, timeout=120)


def test_balancer(cluster):
    hap, nodes = cluster
    url = hap.url

    # runs spread over both nodes (leastconn with runs in flight)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(lambda i: run(url, ["sh", "-c", "sleep 0.5; echo %d" % i]), range(8)))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    assert [r.json()["stdout"] for r in rs] == ["%d\n" % i for i in range(8)]
    assert {node_of(r.json()["exec_id"]) for r in rs} == set(NODES)

    # a run's kept outputs are fetched from its node through the balancer
    r = run(url, ["sh", "-c", "echo kept > /output/k.txt"], persist=True)
    eid = r.json()["exec_id"]
    for _ in range(4):
        g = httpx.get(url + "/files", params={"path": "output/%s/k.txt" % eid})
        assert g.status_code == 200 and g.content == b"kept\n", g.text

    # boxes: every request naming a box reaches the node in its id
    # creates one after another (leastconn round-robins equal loads) until
    # each node has a box
    boxes = []
    while len({b.split("_")[1] for b in boxes}) < len(NODES):
        assert len(boxes) < 4, boxes
        r = httpx.post(url + "/v1/boxes", json={"image": BUSYBOX, "disk_size_gb": 1}, timeout=120)
        assert r.status_code == 201, r.text
        boxes.append(r.json()["id"])
    by_node = {}
    for box in boxes:
        node = re.fullmatch(r"box_([a-z0-9-]+)_[0-9a-f]{16}", box).group(1)
        by_node.setdefault(node, []).append(box)
        other = [n for n in NODES if n != node][0]
        assert httpx.get(nodes[node].url + "/v1/boxes/" + box).status_code == 200
        assert httpx.get(nodes[other].url + "/v1/boxes/" + box).status_code == 404
        for _ in range(3):  # never the other node
            e = httpx.post(url + "/v1/boxes/%s/exec" % box,
                           json={"cmd": ["echo", box], "wait": True}, timeout=120)
            assert e.status_code == 200 and e.json()["stdout"] == box + "\n", e.text
            assert httpx.get(url + "/v1/boxes/%s/exec/%s" % (box, e.json()["id"])).status_code == 200
        assert httpx.post(url + "/v1/boxes/%s:stop" % box, timeout=120).status_code == 200
        assert httpx.get(url + "/v1/boxes/" + box).json()["status"] == "stopped"
        assert httpx.post(url + "/v1/boxes/%s:start" % box, timeout=120).status_code == 200
        assert httpx.delete(url + "/v1/boxes/" + box, params={"force": "true"},
                            timeout=120).status_code == 204
        assert httpx.get(nodes[node].url + "/v1/boxes/" + box).status_code == 404
    assert set(by_node) == set(NODES), by_node
    # a box id naming no node of this balancer: the pool answers 404
    assert httpx.get(url + "/v1/boxes/box_nowhere_0123456789abcdef").status_code == 404

    # drain n1: runs in flight on it finish; new ones go to n2 only
    n1 = nodes["n1"]
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        first = [ex.submit(run, url, ["sh", "-c", "sleep 2; echo first"]) for _ in range(4)]
        deadline = time.time() + 20
        while "boxer_runs_in_flight 0\n" in httpx.get(n1.url + "/metrics").text:
            assert time.time() < deadline, "no run reached n1"
            time.sleep(0.05)
        n1.proc.send_signal(signal.SIGTERM)
        # once n1 has seen the signal (before, a run is still work it accepts)
        while httpx.get(n1.url + "/readyz").status_code != 503:
            assert time.time() < deadline, "n1 never drained"
            time.sleep(0.02)
        later = [ex.submit(run, url, ["echo", "later"]) for _ in range(6)]
        first = [f.result() for f in first]
        later = [f.result() for f in later]
    assert all(r.status_code == 200 and r.json()["stdout"] == "first\n" for r in first), \
        [r.text for r in first]
    assert "n1" in {node_of(r.json()["exec_id"]) for r in first}
    assert all(r.status_code == 200 and r.json()["stdout"] == "later\n" for r in later), \
        [r.text for r in later]
    assert {node_of(r.json()["exec_id"]) for r in later} == {"n2"}
    assert n1.proc.wait(timeout=40) == 0
    hap.wait_status({("boxer_pool", "n1"): "DOWN", ("boxer_pool", "n2"): "UP"})

    # n1 back; then kill n2 outright: n1 serves everything
    n1.log.close()
    n1.start()
    hap.wait_status({("boxer_pool", "n1"): "UP"})
    nodes["n2"].kill9()
    rs = [run(url, ["echo", "still"]) for _ in range(4)]
    assert all(r.status_code == 200 and r.json()["stdout"] == "still\n" for r in rs), \
        [r.text for r in rs]
    assert {node_of(r.json()["exec_id"]) for r in rs} == {"n1"}
