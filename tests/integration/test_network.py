"""Network modes of POST /run: none, sandbox and host, with the sandbox
isolation rules, against real runsc and the real kernel.

No packet leaves this machine: the "remote host" is a network namespace the
test creates, joined to the host by a veth whose host end is the host's
"LAN" (198.51.100.x/30, a documentation range).  Behind it, on the lab's
loopback: "internet" addresses (203.0.113.x, another documentation range,
one network of which is put in blocked_egress), one address in each private
range Boxer blocks by default (10/8, 172.16/12, 192.168/16, 100.64/10,
198.18/15), a DNS address, and 169.254.169.254 for "metadata"; the host
routes each of them only into that namespace, and every sandbox fetch of a
lab address first checks that the kernel routes it there.  The DNS
addresses in the config are served (HTTP on port 53) but never queried as
DNS.

Names, subnets and lab addresses are derived from the pid, so two suites
running at once on one host do not collide; the one fixed address,
169.254.169.254, is routed only while a host-wide lock is held.
"""

import concurrent.futures
import contextlib
import fcntl
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import httpx
import pytest

import boxer_server
from hardening import ok, run

PYTHON = "python:3.12-slim"
BUSYBOX = "busybox"

PID = os.getpid()
SUFFIX = "%04x" % (PID & 0xFFFF)
NET16 = "10.%d" % (100 + PID % 150)  # this run's 10.X.0.0/16


def subnet(k):
    return "%s.%d.0/24" % (NET16, k)


BRIDGE = "bxtbr" + SUFFIX
SUBNET = subnet(0)
GATEWAY = NET16 + ".0.1"
LAB_NS = "bxt-remote-" + SUFFIX
LAB_VETH = "bxtr" + SUFFIX
_K = PID % 64
LAB_HOST_IP = "198.51.100.%d" % (4 * _K + 1)  # the host's end: its "LAN" 198.51.100.x/30
LAN_PEER = "198.51.100.%d" % (4 * _K + 2)  # the lab's end, on that LAN
_Q = PID % 60
REMOTE_NET = "203.0.113.%d/31" % (2 * _Q + 2)
REMOTE_IP = "203.0.113.%d" % (2 * _Q + 2)  # "the internet"
OTHER_IP = "203.0.113.%d" % (2 * _Q + 3)
BLOCKED_NET = "203.0.113.%d/30" % (128 + 4 * (PID % 32))
BLOCKED_IP = "203.0.113.%d" % (128 + 4 * (PID % 32) + 1)
PRIVATE_IPS = ["10.%d.%d.1" % (250 + PID % 6, (PID // 6) % 256),  # above NET16's 10.100-249
               "172.%d.%d.1" % (16 + PID % 16, (PID >> 4) % 256),
               "192.168.%d.1" % (PID % 256),
               "100.%d.%d.1" % (64 + PID % 64, (PID >> 6) % 256),
               "198.18.%d.1" % (PID % 256)]
DNS = ["192.168.%d.53" % (PID % 256), "192.168.%d.54" % (PID % 256)]
METADATA_IP = "169.254.169.254"
METADATA_LOCK = "/run/lock/boxer-test-metadata.lock"
PORT = 8080
PORT2 = 8081  # a second lab port, for per-port egress rules
DNAT_PORT = 20000 + PID % 10000
DNAT_TABLE = "bxt_dnat_" + SUFFIX

FETCH = r"""
import sys, threading, time, urllib.request
timeout, urls = float(sys.argv[1]), sys.argv[2:]
out = [None] * len(urls)
def one(i):
    t = time.time()
    try:
        r = urllib.request.urlopen(urls[i], timeout=timeout)
        res = "OK %d %s" % (r.status, r.read().decode().strip())
    except Exception as e:
        res = "FAIL %s %s" % (type(e).__name__, str(e)[:200])
    out[i] = "%s secs %.2f" % (res, time.time() - t)
ts = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
for t in ts:
    t.start()
for t in ts:
    t.join()
for line in out:
    print(line)
"""


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


# The default bridge belongs to whichever Boxer with a default config came
# first (the session server, or a server of another suite running at the
# same time), and another run of this module may be under way: what they
# own comes and goes independently of this module.
DEFAULT_BRIDGE = "boxer0"


def not_ours(name):
    return name == DEFAULT_BRIDGE or (name.startswith("bxt") and SUFFIX not in name)


def snapshot():
    """What this module must leave as it found it."""
    links = sorted(l["ifname"] for l in json.loads(sh("ip", "-j", "link").stdout)
                   if not not_ours(l["ifname"])
                   and not (l.get("ifalias", "").startswith("boxer:")
                            and not_ours(l["ifalias"].split(":")[1])))
    netns = sorted(n for n in (l.split()[0] for l in sh("ip", "netns", "list").stdout.splitlines()
                               if l.strip())
                   if not (n.startswith("bxt-") and SUFFIX not in n))
    tables, cur = [], None
    for line in sh("nft", "list", "ruleset").stdout.splitlines():
        if line.startswith("table "):
            cur = [line]
            tables.append(cur)
        elif cur is not None:
            cur.append(line)
    ruleset = sorted("\n".join(t) for t in tables
                     if not (t[0].split()[2].startswith("boxer_")
                             and not_ours(t[0].split()[2][len("boxer_"):])))
    return links, netns, ruleset


def links_tagged(prefix):
    return [l["ifname"] for l in json.loads(sh("ip", "-j", "link").stdout)
            if l.get("ifalias", "").startswith(prefix)]


def link_exists(name):
    return sh("ip", "link", "show", name, check=False).returncode == 0


def nft_tables():
    return sh("nft", "list", "tables").stdout


def assert_routed_to_lab(addr):
    """Refuses to let a sandbox send to a lab address unless the kernel
    routes it into the lab namespace (never out of the machine)."""
    out = sh("ip", "route", "get", addr).stdout
    assert ("dev %s " % LAB_VETH) in out, "lab route for %s missing: %s" % (addr, out)


def host_fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def fetch_all_in_sandbox(srv, urls, network="sandbox", timeout=5):
    """Fetches the URLs concurrently in one run; one result line each."""
    body = {"image": PYTHON, "cmd": ["python3", "-c", FETCH, str(timeout)] + list(urls)}
    if network is not None:
        body["network"] = network
    res = ok(srv, body)
    assert res["exit_code"] == 0, res
    lines = res["stdout"].splitlines()
    assert len(lines) == len(urls), res
    return lines


def fetch_in_sandbox(srv, url, network="sandbox", timeout=5):
    return fetch_all_in_sandbox(srv, [url], network, timeout)[0]


class HostServer:
    """A small HTTP server in the test process (host network namespace)."""

    def __init__(self, addr, body=b"host-secret"):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((addr, 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def before(server):
    # The session server (default config, bridge boxer0) is up first, so
    # its bridge and tables are in both snapshots.
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.fail("%s is required for the network tests (iproute2, nftables)" % tool)
    return snapshot()


@pytest.fixture(scope="module")
def lab(before):
    """The "remote host" namespace and its routes; removed even on failure."""
    d = tempfile.mkdtemp(prefix="boxer-netlab-")
    www = os.path.join(d, "www")
    os.makedirs(www)
    with open(os.path.join(www, "hello.txt"), "w") as f:
        f.write("hello-from-remote\n")
    log = open(os.path.join(d, "http.log"), "w")
    procs = []
    try:
        sh("ip", "netns", "add", LAB_NS)
        sh("ip", "link", "add", LAB_VETH, "type", "veth", "peer", "name", "eth0", "netns", LAB_NS)
        sh("ip", "addr", "add", LAB_HOST_IP + "/30", "dev", LAB_VETH)
        sh("ip", "link", "set", LAB_VETH, "up")
        sh("ip", "-n", LAB_NS, "addr", "add", LAN_PEER + "/30", "dev", "eth0")
        for a in [REMOTE_IP, OTHER_IP, BLOCKED_IP, METADATA_IP] + PRIVATE_IPS + DNS:
            sh("ip", "-n", LAB_NS, "addr", "add", a + "/32", "dev", "lo")
        sh("ip", "-n", LAB_NS, "link", "set", "eth0", "up")
        sh("ip", "-n", LAB_NS, "link", "set", "lo", "up")
        for net in [REMOTE_NET, BLOCKED_NET] + [a + "/32" for a in PRIVATE_IPS + DNS]:
            sh("ip", "route", "add", net, "via", LAN_PEER, "dev", LAB_VETH)
        for a in [LAN_PEER, REMOTE_IP, OTHER_IP, BLOCKED_IP] + PRIVATE_IPS + DNS:
            assert_routed_to_lab(a)
        # Port 53 of the DNS addresses (HTTP, enough to see it is reachable)
        # and a second port everywhere.
        for port, bind in ((PORT, "0.0.0.0"), (PORT2, "0.0.0.0"), (53, DNS[0])):
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", LAB_NS, "python3", "-u", "-m", "http.server", str(port),
                 "--bind", bind, "--directory", www], stdout=log, stderr=log,
                start_new_session=True))
        deadline = time.time() + 20
        for url in ("http://%s:%d/hello.txt" % (REMOTE_IP, PORT),
                    "http://%s:%d/hello.txt" % (REMOTE_IP, PORT2),
                    "http://%s:53/hello.txt" % DNS[0]):
            while True:
                try:
                    assert host_fetch(url) == "hello-from-remote"
                    break
                except OSError:
                    assert time.time() < deadline, "lab HTTP server did not start"
                    time.sleep(0.1)
        yield {"dir": d, "www": www, "log": os.path.join(d, "http.log")}
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        # Deleting the veth removes the routes through it.
        sh("ip", "link", "del", LAB_VETH, check=False)
        sh("ip", "netns", "del", LAB_NS, check=False)
        shutil.rmtree(d, ignore_errors=True)
    # Every server of this module (sbx depends on lab, so it is gone) and
    # the lab itself left nothing behind.
    deadline = time.time() + 10
    while snapshot() != before and time.time() < deadline:
        time.sleep(0.2)
    links, netns, ruleset = snapshot()
    assert links == before[0]
    assert netns == before[1]
    assert ruleset == before[2]


@pytest.fixture(scope="module")
def sbx(registry, lab, before):
    """A Boxer with the sandbox network on its own bridge and subnet."""
    tmp = tempfile.mkdtemp(prefix="boxer-net-")
    srv = boxer_server.Server(tmp, registry=registry, config={
        "bridge_name": BRIDGE, "sandbox_subnet": SUBNET, "dns_servers": DNS,
        "blocked_egress": [BLOCKED_NET]})
    try:
        srv.start()
        assert "network sandbox: bridge %s" % BRIDGE in srv.log_text(), srv.log_text()
        yield srv
        srv.stop()
        # A clean stop removes the bridge, the tables and every veth.
        assert not link_exists(BRIDGE)
        assert links_tagged("boxer:%s" % BRIDGE) == []
        assert "boxer_%s" % BRIDGE not in nft_tables()
        assert boxer_server.leftover_processes(srv.home) == []
        assert boxer_server.leftover_mounts(srv.home) == []
    finally:
        srv.stop(check=False)
        subprocess.run(["umount", "-R", "-l", srv.home], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def assert_run_state_clean(srv):
    deadline = time.time() + 10
    while True:
        runs = [r for r in os.listdir(os.path.join(srv.home, "runs")) if not r.startswith(".")]
        veths = links_tagged("boxer:%s:" % BRIDGE)
        if not runs and not veths and not boxer_server.leftover_mounts(srv.home):
            return
        assert time.time() < deadline, (runs, veths)
        time.sleep(0.1)


# ---- sandbox ----

def test_sandbox_fetches_from_remote_host(sbx, lab):
    assert_routed_to_lab(REMOTE_IP)
    out = fetch_in_sandbox(sbx, "http://%s:%d/hello.txt" % (REMOTE_IP, PORT))
    assert out.startswith("OK 200 hello-from-remote"), out
    assert_run_state_clean(sbx)


def test_none_cannot_reach_remote_host(sbx, lab):
    assert_routed_to_lab(REMOTE_IP)
    for network in ("none", None):  # None: the default
        out = fetch_in_sandbox(sbx, "http://%s:%d/hello.txt" % (REMOTE_IP, PORT), network)
        assert out.startswith("FAIL"), out


def test_none_loopback_works(sbx):
    prog = ("import http.server, threading, urllib.request\n"
            "s = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
            "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
            "r = urllib.request.urlopen('http://127.0.0.1:%d/' % s.server_address[1], timeout=5)\n"
            "print(r.status)\n")
    for network in ("none", "sandbox"):
        res = ok(sbx, {"image": PYTHON, "network": network, "cwd": "/tmp",
                       "cmd": ["python3", "-c", prog]})
        assert res["stdout"] == "200\n", res


def test_sandbox_cannot_reach_host_addresses(sbx):
    """Not the bridge address, not Boxer's own port, not any other host
    address; each server is shown to answer from the host first."""
    servers = [HostServer(GATEWAY), HostServer("0.0.0.0")]
    try:
        own = sh("ip", "-4", "-o", "addr", "show", "scope", "global").stdout.split()
        host_addrs = [w.split("/")[0] for i, w in enumerate(own) if own[i - 1] == "inet"
                      and not w.startswith(NET16 + ".")]
        targets = [(GATEWAY, servers[0].port), (GATEWAY, servers[1].port),
                   (GATEWAY, sbx.port)]
        for a in host_addrs:
            if sh("ip", "route", "get", a).stdout.startswith("local "):
                targets.append((a, servers[1].port))
        urls = ["http://%s:%d/" % t for t in targets]
        for url, (addr, port) in zip(urls, targets):
            if port != sbx.port:
                assert host_fetch(url) == "host-secret"
        outs = fetch_all_in_sandbox(sbx, urls, timeout=3)
        for url, out in zip(urls, outs):
            assert out.startswith("FAIL"), (url, out)
    finally:
        for s in servers:
            s.close()


@contextlib.contextmanager
def metadata_route():
    """169.254.169.254 routed into this module's lab, one suite at a time."""
    os.makedirs(os.path.dirname(METADATA_LOCK), exist_ok=True)
    with open(METADATA_LOCK, "w") as lock:
        deadline = time.time() + 300
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.time() < deadline, "metadata route lock busy"
                time.sleep(0.2)
        try:
            sh("ip", "route", "add", METADATA_IP + "/32", "via", LAN_PEER, "dev", LAB_VETH)
            yield
        finally:
            sh("ip", "route", "del", METADATA_IP + "/32", "via", LAN_PEER, "dev", LAB_VETH,
               check=False)


def test_sandbox_cannot_reach_metadata_or_blocked_egress(sbx, lab):
    with metadata_route():
        urls = []
        for addr in (METADATA_IP, BLOCKED_IP):
            assert_routed_to_lab(addr)
            urls.append("http://%s:%d/hello.txt" % (addr, PORT))
            # The lab answers on it (from the host) ...
            assert host_fetch(urls[-1]) == "hello-from-remote"
        # ... but a sandbox is refused at once (reject, not a timeout), while
        # the lab's other address works from the same run.
        outs = fetch_all_in_sandbox(sbx, urls + ["http://%s:%d/hello.txt" % (REMOTE_IP, PORT)],
                                    timeout=10)
    for out in outs[:2]:
        assert out.startswith("FAIL"), outs
        assert float(out.split("secs ")[1]) < 5, outs
    assert outs[2].startswith("OK 200"), outs


def url(addr, port=PORT):
    return "http://%s:%d/hello.txt" % (addr, port)


def assert_refused(outs, urls):
    """Each fetch failed, and at once (rejected, not a timeout: fetches
    that must be refused get 8 s)."""
    for u, out in zip(urls, outs):
        assert out.startswith("FAIL"), (u, out)
        assert float(out.split("secs ")[1]) < 4, (u, out)


def test_private_networks_and_lan_blocked_by_default(sbx, lab):
    """Each private range and the host's LAN answer the host but are
    refused to a sandbox by default; DNS addresses pass on port 53 only."""
    private = [url(a) for a in PRIVATE_IPS + [LAN_PEER]]
    for u in private + [url(DNS[0], 53), url(DNS[0])]:
        assert host_fetch(u) == "hello-from-remote"
    outs = fetch_all_in_sandbox(sbx, private + [url(DNS[0]), url(DNS[0], 53), url(REMOTE_IP)],
                                timeout=8)
    assert_refused(outs[:-2], private + [url(DNS[0])])
    assert outs[-2].startswith("OK 200"), outs  # DNS server, port 53
    assert outs[-1].startswith("OK 200"), outs  # the internet


def test_allow_private_egress(make_server, lab):
    srv = make_server({"bridge_name": "bxtpe" + SUFFIX, "sandbox_subnet": subnet(7),
                       "allow_private_egress": True})
    assert "private networks allowed" in srv.log_text()
    hs = HostServer("0.0.0.0")
    try:
        urls = [url(a) for a in PRIVATE_IPS + [LAN_PEER, REMOTE_IP]]
        host = "http://%s:%d/" % (LAB_HOST_IP, hs.port)
        assert host_fetch(host) == "host-secret"
        outs = fetch_all_in_sandbox(srv, urls + [host], timeout=3)
    finally:
        hs.close()
    for u, out in zip(urls, outs):
        assert out.startswith("OK 200 hello-from-remote"), (u, out)
    # The host's own addresses stay out of reach.
    assert outs[-1].startswith("FAIL"), outs


@contextlib.contextmanager
def dnat_table(addrs):
    """A table of our own that publishes DNAT_PORT of the given host
    addresses on the lab's port, the way Docker publishes a container port
    (prerouting for other hosts, output for the host itself).  Removed even
    when the test fails."""
    a = ", ".join(addrs)
    script = ("table ip %s {\n"
              "  chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
              "    fib daddr type local tcp dport %d dnat to %s:%d\n  }\n"
              "  chain out { type nat hook output priority -100; policy accept;\n"
              "    ip daddr { %s } tcp dport %d dnat to %s:%d\n  }\n"
              "}\n" % (DNAT_TABLE, DNAT_PORT, REMOTE_IP, PORT, a, DNAT_PORT, REMOTE_IP, PORT))
    try:
        r = subprocess.run(["nft", "-f", "-"], input=script, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        assert r.returncode == 0, r.stdout
        yield
    finally:
        sh("nft", "delete", "table", "ip", DNAT_TABLE, check=False)
    assert DNAT_TABLE not in nft_tables()


def test_dnat_to_host_address_is_blocked(sbx, lab):
    """A port published by DNAT on a host address (the bridge's .1, the
    host's LAN address) forwards to the lab: it answers the host, but a
    sandbox is dropped before the rewrite, while it still reaches the lab
    directly."""
    targets = [GATEWAY, LAB_HOST_IP]
    with dnat_table(targets):
        urls = [url(a, DNAT_PORT) for a in targets]
        for u in urls:
            assert host_fetch(u) == "hello-from-remote", u
        outs = fetch_all_in_sandbox(sbx, urls + [url(REMOTE_IP)], timeout=3)
    for u, out in zip(urls, outs):
        assert out.startswith("FAIL"), (u, out)
    assert outs[-1].startswith("OK 200"), outs


# ---- per-run egress allow-list ----

def egress_run(srv, egress, urls, timeout=8):
    body = {"image": PYTHON, "network": "sandbox", "cmd": ["python3", "-c", FETCH, str(timeout)]
            + list(urls)}
    if egress is not None:
        body["egress"] = egress
    res = ok(srv, body)
    assert res["exit_code"] == 0, res
    return res["stdout"].splitlines()


def run_rules(bridge=BRIDGE):
    """The per-run part of a bridge's tables."""
    inet = sh("nft", "list", "table", "inet", "boxer_" + bridge).stdout
    br = sh("nft", "list", "table", "bridge", "boxer_" + bridge).stdout
    chains = [l.split()[1] for l in inet.splitlines() if l.strip().startswith("chain run_")]
    elems = [l for l in (inet + br).splitlines()
             if "jump run_" in l or re.search(r'"bxv[0-9a-f]', l)]
    return chains, elems


def assert_no_run_rules(bridge=BRIDGE):
    """Removed by the same child that deletes the veth, just after it."""
    deadline = time.time() + 10
    while run_rules(bridge) != ([], []) and time.time() < deadline:
        time.sleep(0.1)
    assert run_rules(bridge) == ([], [])


def test_egress_allow_list(sbx, lab):
    all_urls = [url(REMOTE_IP), url(REMOTE_IP, PORT2), url(OTHER_IP), url(DNS[0], 53)]
    # Without a list every one answers ...
    outs = egress_run(sbx, None, all_urls)
    assert all(o.startswith("OK 200") for o in outs), outs
    # ... with one, only the address and port listed, and DNS.
    outs = egress_run(sbx, ["%s:%d" % (REMOTE_IP, PORT)], all_urls)
    assert outs[0].startswith("OK 200"), outs
    assert_refused(outs[1:3], all_urls[1:3])
    assert outs[3].startswith("OK 200"), outs
    # A network without a port: every port of it.
    outs = egress_run(sbx, [REMOTE_NET], all_urls)
    assert all(o.startswith("OK 200") for o in outs), outs
    # An empty list: DNS only.
    outs = egress_run(sbx, [], all_urls)
    assert_refused(outs[:3], all_urls[:3])
    assert outs[3].startswith("OK 200"), outs
    # A list narrows, never widens: blocked and private stay blocked.
    outs = egress_run(sbx, [BLOCKED_NET, PRIVATE_IPS[0], LAN_PEER + ":%d" % PORT],
                      [url(BLOCKED_IP), url(PRIVATE_IPS[0]), url(LAN_PEER)])
    assert_refused(outs, [BLOCKED_IP, PRIVATE_IPS[0], LAN_PEER])
    # Every run took its rules away with it.
    assert_run_state_clean(sbx)
    assert_no_run_rules()


def test_egress_rules_live_only_while_the_run_does(sbx, lab):
    tag = "e%d" % os.getpid()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(run, sbx, {"image": PYTHON, "network": "sandbox",
                                   "egress": ["%s:%d" % (REMOTE_IP, PORT)],
                                   "cmd": ["python3", "-c", SERVE_AND_WAIT, tag, REMOTE_IP]})
        try:
            ip = registered(lab, tag)
            chains, elems = run_rules()
            octets = [int(x) for x in ip.split(".")]
            key = "run_%02x%02x%02x%02x" % tuple(octets)
            assert chains == [key], (chains, ip)
            assert any(ip in e for e in elems), elems
            # Another run at the same time is not restricted by it.
            out = fetch_in_sandbox(sbx, url(OTHER_IP))
            assert out.startswith("OK 200"), out
        finally:
            with open(os.path.join(lab["www"], "stop-" + tag), "w") as f:
                f.write("stop\n")
        r = fut.result(timeout=120)
    assert r.status_code == 200, r.text
    assert_run_state_clean(sbx)
    assert_no_run_rules()


@pytest.mark.parametrize("body,words", [
    ({"network": "sandbox", "egress": ["203.0.113.0/33"]}, ["egress[0]", "203.0.113.0/33"]),
    ({"network": "sandbox", "egress": ["198.51.100.7", "198.51.100.7:0"]},
     ["egress[1]", "198.51.100.7:0"]),
    ({"network": "sandbox", "egress": ["example.com:443"]}, ["egress[0]", "example.com:443"]),
    ({"network": "sandbox", "egress": ["198.51.100.1/24"]}, ["egress[0]"]),
    ({"network": "sandbox", "egress": ["1.2.3.4\u0000:80"]}, ["egress[0]"]),
    ({"network": "sandbox", "egress": [443]}, ["egress[0]"]),
    ({"network": "sandbox", "egress": "198.51.100.7"}, ["egress"]),
    ({"network": "sandbox", "egress": ["198.51.100.%d" % i for i in range(17)]},
     ["egress", "max_egress_rules"]),
    ({"network": "none", "egress": ["198.51.100.7"]}, ["egress", "sandbox"]),
    ({"egress": []}, ["egress", "sandbox"]),
])
def test_bad_egress_is_400(sbx, body, words):
    r = run(sbx, dict({"image": BUSYBOX, "cmd": ["true"]}, **body))
    assert r.status_code == 400, r.text
    for w in words:
        assert w in r.json()["error"], (w, r.text)


SERVE_AND_WAIT = r"""
import http.server, socket, sys, threading, time, urllib.request
tag, remote = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((remote, 9))
ip = s.getsockname()[0]
s.close()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"sandbox")
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
def get(path):
    try:
        urllib.request.urlopen("http://%s:8080/%s" % (remote, path), timeout=3)
        return True
    except Exception:
        return False
get("register-%s-%s" % (tag, ip))
deadline = time.time() + 60
while time.time() < deadline and not get("stop-" + tag):
    time.sleep(0.2)
print(ip)
"""


def registered(lab, tag, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(lab["log"]) as f:
            for line in f:
                marker = "GET /register-%s-" % tag
                if marker in line:
                    return line.split(marker)[1].split()[0]
        time.sleep(0.1)
    raise AssertionError("sandbox %s never registered" % tag)


def test_sandbox_cannot_reach_another_sandbox(sbx, lab):
    assert_routed_to_lab(REMOTE_IP)
    tag = "a%d" % os.getpid()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(run, sbx, {"image": PYTHON, "network": "sandbox",
                                   "cmd": ["python3", "-c", SERVE_AND_WAIT, tag, REMOTE_IP]})
        try:
            ip = registered(lab, tag)
            assert ip.startswith(NET16 + ".0.") and ip != GATEWAY
            # The sandbox's server answers the host ...
            assert host_fetch("http://%s:8000/" % ip) == "sandbox"
            # ... but not another sandbox.
            out = fetch_in_sandbox(sbx, "http://%s:8000/" % ip, timeout=3)
            assert out.startswith("FAIL"), out
        finally:
            with open(os.path.join(lab["www"], "stop-" + tag), "w") as f:
                f.write("stop\n")
        r = fut.result(timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["stdout"].strip() == ip


def test_concurrent_runs_get_distinct_addresses(sbx, lab):
    n = 4
    tags = ["c%d-%d" % (os.getpid(), i) for i in range(n)]
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        futs = [ex.submit(run, sbx, {"image": PYTHON, "network": "sandbox",
                                     "cmd": ["python3", "-c", SERVE_AND_WAIT, t, REMOTE_IP]})
                for t in tags]
        try:
            # All registered means all were alive at the same time.
            ips = [registered(lab, t) for t in tags]
        finally:
            for t in tags:
                with open(os.path.join(lab["www"], "stop-" + t), "w") as f:
                    f.write("stop\n")
        results = [f.result(timeout=120) for f in futs]
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert len(set(ips)) == n, ips
    assert all(ip.startswith(NET16 + ".0.") and ip not in (NET16 + ".0.0", GATEWAY, NET16 + ".0.255")
               for ip in ips), ips
    assert_run_state_clean(sbx)


def test_resolv_conf_from_config(sbx):
    res = ok(sbx, {"image": BUSYBOX, "network": "sandbox", "cmd": ["cat", "/etc/resolv.conf"]})
    lines = [l for l in res["stdout"].splitlines() if not l.startswith("#")]
    assert lines == ["nameserver %s" % d for d in DNS], res["stdout"]
    # Read-only for the sandbox.
    res = ok(sbx, {"image": BUSYBOX, "network": "sandbox",
                   "cmd": ["sh", "-c", "echo x >> /etc/resolv.conf; echo rc=$?"]})
    assert "rc=0" not in res["stdout"]


def test_sandbox_without_dns_servers(make_server):
    srv = make_server({"bridge_name": "bxtnd" + SUFFIX, "sandbox_subnet": subnet(1)})
    res = ok(srv, {"image": BUSYBOX, "network": "sandbox", "cmd": ["cat", "/etc/resolv.conf"]})
    assert "nameserver" not in res["stdout"]
    assert "no dns_servers" in res["stdout"]
    srv.stop()
    assert not link_exists("bxtnd" + SUFFIX)


DNS_PROBE = r"""
import socket, sys
host = sys.argv[1]
for port in (53, 5353):
    try:
        c = socket.create_connection((host, port), timeout=3)
        print("tcp", port, c.recv(16).decode())
        c.close()
    except OSError as e:
        print("tcp", port, "FAIL", type(e).__name__)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    try:
        u.sendto(b"q", (host, port))
        print("udp", port, u.recvfrom(16)[0].decode())
    except OSError as e:
        print("udp", port, "FAIL", type(e).__name__)
    u.close()
"""


def test_dns_on_the_host_is_the_one_exception(make_server):
    """A dns_servers address that is the host's: port 53 (TCP and UDP)
    passes, any other port of the same address does not."""
    net = subnet(6)
    gw = NET16 + ".6.1"
    srv = make_server({"bridge_name": "bxtdn" + SUFFIX, "sandbox_subnet": net,
                       "dns_servers": [gw]})
    socks, stop = [], threading.Event()

    def serve_tcp(ls, word):
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            c.sendall(word)
            c.close()

    def serve_udp(us, word):
        us.settimeout(0.2)
        while not stop.is_set():
            try:
                _, peer = us.recvfrom(16)
            except OSError:
                continue
            us.sendto(word, peer)

    threads = []
    try:
        for port in (53, 5353):
            word = b"dns" if port == 53 else b"other"
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((gw, port))
            ls.listen(8)
            us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            us.bind((gw, port))
            socks += [ls, us]
            threads += [threading.Thread(target=serve_tcp, args=(ls, word), daemon=True),
                        threading.Thread(target=serve_udp, args=(us, word), daemon=True)]
        for t in threads:
            t.start()
        res = ok(srv, {"image": PYTHON, "network": "sandbox",
                       "cmd": ["python3", "-c", DNS_PROBE, gw]})
        assert res["stdout"].splitlines() == [
            "tcp 53 dns", "udp 53 dns", "tcp 5353 FAIL TimeoutError",
            "udp 5353 FAIL TimeoutError"], res
    finally:
        stop.set()
        for t in threads:
            t.join()
        for x in socks:
            x.close()
    srv.stop()


def test_sandbox_ipv4_only(sbx):
    res = ok(sbx, {"image": PYTHON, "network": "sandbox", "cmd": [
        "python3", "-c",
        "import socket\n"
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.connect(('2001:db8::1', 9)); print('v6', s.getsockname()[0])\n"
        "except OSError as e:\n"
        "    print('no-v6', e.errno)\n"]})
    assert res["stdout"].startswith("no-v6"), res


def test_runs_leave_no_network_state(sbx, lab):
    assert_routed_to_lab(REMOTE_IP)
    for _ in range(3):
        out = fetch_in_sandbox(sbx, "http://%s:%d/hello.txt" % (REMOTE_IP, PORT))
        assert out.startswith("OK"), out
    # A run that times out is torn down too.
    r = run(sbx, {"image": BUSYBOX, "network": "sandbox", "cmd": ["sleep", "60"],
                  "limits": {"wall_clock_secs": 2}})
    assert r.status_code == 408
    assert_run_state_clean(sbx)


def test_client_gone_tears_network_down(sbx):
    """A client that disconnects mid-run: the sandbox is killed and its
    netns, veth, egress rules and address are released."""
    body = json.dumps({"image": BUSYBOX, "network": "sandbox", "cmd": ["sleep", "60"],
                       "egress": [REMOTE_IP]}).encode()
    s = socket.create_connection(("127.0.0.1", sbx.port))
    try:
        s.sendall(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.time() + 60
        while not links_tagged("boxer:%s:" % BRIDGE):
            assert time.time() < deadline, sbx.log_text()
            time.sleep(0.1)
        assert len(run_rules()[0]) == 1
    finally:
        s.close()
    assert_run_state_clean(sbx)
    assert_no_run_rules()


# ---- start-up, sweep, refusal ----

def test_crash_leftovers_swept_at_start(make_server, lab):
    bridge = "bxtcr" + SUFFIX
    cfg = {"bridge_name": bridge, "sandbox_subnet": subnet(2)}
    srv = make_server(cfg)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(run, srv, {"image": BUSYBOX, "network": "sandbox",
                                   "egress": ["%s:%d" % (OTHER_IP, PORT)],
                                   "cmd": ["sleep", "60"]})
        deadline = time.time() + 60
        while not links_tagged("boxer:%s:" % bridge):
            assert time.time() < deadline, srv.log_text()
            time.sleep(0.1)
        assert len(run_rules(bridge)[0]) == 1
        srv.kill9()
        try:
            fut.result(timeout=30)
        except httpx.HTTPError:
            pass
    assert link_exists(bridge)
    assert "boxer_%s" % bridge in nft_tables()
    srv.start()
    assert links_tagged("boxer:%s:" % bridge) == []
    assert run_rules(bridge) == ([], [])
    assert_routed_to_lab(REMOTE_IP)
    out = fetch_in_sandbox(srv, "http://%s:%d/hello.txt" % (REMOTE_IP, PORT))
    assert out.startswith("OK 200"), out
    srv.stop()
    assert not link_exists(bridge)
    assert "boxer_%s" % bridge not in nft_tables()


def test_sandbox_refused_without_nft(make_server):
    # /usr/sbin (nft) not in PATH; runsc, skopeo and umoci are in /usr/bin.
    srv = make_server({"bridge_name": "bxtnn" + SUFFIX, "sandbox_subnet": subnet(3)},
                      env={"PATH": "/usr/bin:/bin"})
    r = run(srv, {"image": BUSYBOX, "network": "sandbox", "cmd": ["true"]})
    assert r.status_code == 500, r.text
    assert "nft" in r.json()["error"] and "nftables" in r.json()["error"]
    res = ok(srv, {"image": BUSYBOX, "network": "none", "cmd": ["echo", "fine"]})
    assert res["stdout"] == "fine\n"
    assert not link_exists("bxtnn" + SUFFIX)


def test_second_boxer_on_same_bridge_refuses_sandbox(sbx, make_server):
    srv = make_server({"bridge_name": BRIDGE, "sandbox_subnet": subnet(4)})
    r = run(srv, {"image": BUSYBOX, "network": "sandbox", "cmd": ["true"]})
    assert r.status_code == 500 and "another Boxer" in r.json()["error"], r.text
    srv.stop()
    # Its stop must not have touched the first one's bridge.
    assert link_exists(BRIDGE)
    res = ok(sbx, {"image": BUSYBOX, "network": "sandbox", "cmd": ["true"]})
    assert res["exit_code"] == 0


def test_overlapping_subnet_refuses_sandbox(sbx, make_server):
    srv = make_server({"bridge_name": "bxtov" + SUFFIX, "sandbox_subnet": NET16 + ".0.0/16"})
    r = run(srv, {"image": BUSYBOX, "network": "sandbox", "cmd": ["true"]})
    assert r.status_code == 500 and "overlaps" in r.json()["error"], r.text
    srv.stop()
    assert not link_exists("bxtov" + SUFFIX)


@pytest.mark.parametrize("cfg,word", [
    ({"sandbox_subnet": "10.88.0.1/16"}, "sandbox_subnet"),
    ({"sandbox_subnet": "10.88.0.0/31"}, "sandbox_subnet"),
    ({"bridge_name": "bad name"}, "bridge_name"),
    ({"bridge_name": "x" * 16}, "bridge_name"),
    ({"dns_servers": ["8.8.8.8.8"]}, "dns_servers"),
    ({"blocked_egress": ["10.0.0.1/8"]}, "blocked_egress"),
])
def test_bad_network_config_stops_start(make_server, cfg, word):
    srv = make_server(cfg, start=False)
    with pytest.raises(RuntimeError):
        srv.start()
    assert word in srv.log_text()


# ---- host ----

def test_host_refused_by_default(server):
    r = run(server, {"image": BUSYBOX, "network": "host", "cmd": ["true"]})
    assert r.status_code == 400
    assert "allow_host_network" in r.json()["error"]


def test_host_network_when_allowed(make_server):
    hs = HostServer("127.0.0.1", b"on-host-loopback")
    try:
        srv = make_server({"allow_host_network": True, "bridge_name": "bxtho" + SUFFIX,
                           "sandbox_subnet": subnet(5)})
        out = fetch_in_sandbox(srv, "http://127.0.0.1:%d/" % hs.port, network="host")
        assert out.startswith("OK 200 on-host-loopback"), out
        # The same loopback address is the sandbox's own in the other modes.
        out = fetch_in_sandbox(srv, "http://127.0.0.1:%d/" % hs.port, network="none",
                               timeout=3)
        assert out.startswith("FAIL"), out
    finally:
        hs.close()


def test_openapi_documents_egress(server):
    doc = httpx.get(server.url + "/swagger/openapi.json").json()
    egress = doc["components"]["schemas"]["RunRequest"]["properties"]["egress"]
    assert egress["type"] == "array" and egress["items"]["type"] == "string"
