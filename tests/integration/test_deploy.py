"""The deployment files (issue 17) checked without a cluster: the systemd
unit parses and lets Boxer drain; the kustomize base renders, and the
rendered objects keep the invariants the design depends on (node ids from
pod names, ports, probes, privileges, volumes, the HAProxy routing); both
HAProxy configurations parse and share one frontend.  No Kubernetes
cluster runs here."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

import boxer_server

REPO = boxer_server.REPO
DEPLOY = os.path.join(REPO, "deploy")


def unit_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def test_systemd_unit(tmp_path):
    unit = os.path.join(DEPLOY, "systemd", "boxer.service")
    f = unit_fields(unit)
    assert f["KillMode"] == ["mixed"]  # SIGTERM to Boxer alone: it drains
    assert f["KillSignal"] == ["SIGTERM"]
    assert f["Delegate"] == ["yes"]
    assert int(f["LimitNOFILE"][0]) >= 65536
    cfg = json.load(open(os.path.join(DEPLOY, "kubernetes", "config.json")))
    assert int(f["TimeoutStopSec"][0]) > cfg["drain_timeout_secs"] + cfg["box_stop_grace_secs"]
    assert "/healthz" in f["ExecStartPost"][0]
    # parses (systemd-analyze), with the binary where it was built
    text = open(unit).read().replace("/usr/local/bin/boxer", boxer_server.BOXER_BIN)
    text = re.sub(r"(?m)^Documentation=.*\n", "", text)
    copy = tmp_path / "boxer.service"
    copy.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout.decode()


def frontend(text):
    return text[text.index("frontend boxer\n"):text.index("\nbackend boxer_pool")].strip()


def servers(text, backend):
    block = text[text.index("\nbackend %s\n" % backend) + 1:]
    block = block[:block.index("\n\n")] if "\n\n" in block else block
    return re.findall(r"(?m)^    server (\S+) (\S+)", block)


@pytest.mark.parametrize("cfg", ["haproxy/haproxy.cfg", "kubernetes/haproxy.cfg"])
def test_haproxy_configs_parse(cfg):
    r = subprocess.run(["haproxy", "-c", "-f", os.path.join(DEPLOY, cfg)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout.decode()
    text = open(os.path.join(DEPLOY, cfg)).read()
    pool = servers(text, "boxer_pool")
    assert len(pool) >= 2
    for name, addr in pool:
        # each pool server has its own backend with the same address
        assert servers(text, "node_" + name) == [(name, addr)]
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,23}", name)  # a node_id


def test_kustomize_base_renders():
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (Debian: kubernetes-client) is needed to render the base"
    r = subprocess.run([kubectl, "kustomize", os.path.join(DEPLOY, "kubernetes")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    objs = [o for o in yaml.safe_load_all(r.stdout) if o]
    by = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0]
           if o["kind"] == "ConfigMap" else o["metadata"]["name"]): o for o in objs}

    sts = by[("StatefulSet", "boxer")]
    svc = by[("Service", "boxer")]
    pod = sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    # a headless Service names every pod, ready or not (box routing)
    assert sts["spec"]["serviceName"] == "boxer"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    (c,) = pod["containers"]
    assert c["securityContext"]["privileged"] is True
    assert c["ports"][0]["containerPort"] == 8080
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["dev"]["hostPath"]["path"] == "/dev" and mounts["dev"] == "/dev"
    assert "emptyDir" in vols["home"] or "hostPath" in vols["home"]

    # Boxer's config: the pod name is the node id (no node_id given), the
    # home is the volume, it listens on the container port, with a token
    cm = by[("ConfigMap", "boxer-config")]
    cfg = json.loads(cm["data"]["config.json"])
    assert "node_id" not in cfg
    assert mounts["home"] == cfg["home"]
    assert cfg["listen_addr"] == ":8080" and cfg["allow_unauthenticated"] is False
    assert any(e["name"] == "BOXER_TOKEN" for e in c["env"])
    assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert c["args"] == ["--config", mounts["config"] + "/config.json"]
    assert pod["terminationGracePeriodSeconds"] > cfg["drain_timeout_secs"] + \
        cfg["box_stop_grace_secs"]
    # requests hold max_concurrent_runs runs at the default 1 core
    assert int(c["resources"]["requests"]["cpu"]) >= cfg["max_concurrent_runs"]

    # HAProxy: one pool server and one node backend per pod, by DNS name
    hcm = by[("ConfigMap", "boxer-haproxy")]
    text = hcm["data"]["haproxy.cfg"]
    pods = ["boxer-%d" % i for i in range(sts["spec"]["replicas"])]
    assert servers(text, "boxer_pool") == [(p, "%s.boxer:8080" % p) for p in pods]
    for p in pods:
        assert servers(text, "node_" + p) == [(p, "%s.boxer:8080" % p)]
    deploy_cfg = open(os.path.join(DEPLOY, "haproxy", "haproxy.cfg")).read()
    assert frontend(text) == frontend(deploy_cfg)
    hap = by[("Deployment", "boxer-haproxy")]["spec"]["template"]["spec"]
    assert hap["volumes"][0]["configMap"]["name"] == hcm["metadata"]["name"]

    pdb = by[("PodDisruptionBudget", "boxer")]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


def make_install(*args):
    """`make install` of the binary under test (-o: never rebuilt here),
    free of the variables of a make that may be running the suite."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DESTDIR", "PREFIX")}
    r = subprocess.run(["make", "-s", "-C", REPO, "-o", boxer_server.BOXER_BIN,
                        "BIN=" + boxer_server.BOXER_BIN, "install"] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert r.returncode == 0, r.stdout.decode()


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_make_install_destdir(tmp_path):
    dest = tmp_path / "dest"
    make_install("DESTDIR=" + str(dest), "PREFIX=/usr")
    assert tree(dest) == ["etc/boxer/config.json", "lib/systemd/system/boxer.service",
                          "usr/bin/boxer", "usr/share/man/man1/boxer.1"]
    unit = str(dest / "lib/systemd/system/boxer.service")
    f = unit_fields(unit)
    assert f["ExecStart"] == ["/usr/bin/boxer --config /etc/boxer/config.json"]
    assert f["ExecStartPre"] == ["/usr/bin/boxer check-host --config /etc/boxer/config.json"]
    assert os.stat(unit).st_mode & 0o777 == 0o644
    assert os.stat(dest / "usr/bin/boxer").st_mode & 0o777 == 0o755
    # the default configuration listens on the loopback only, where the
    # unit's readiness check looks
    conf = dest / "etc/boxer/config.json"
    cfg = json.loads(conf.read_text())
    assert cfg["listen_addr"] == "127.0.0.1:8080" and cfg["listen_unix"] == ""
    assert cfg["home"] == "/var/lib/boxer" and "auth_tokens" not in cfg
    assert "http://127.0.0.1:8080/healthz" in f["ExecStartPost"][0]
    assert os.stat(conf).st_mode & 0o777 == 0o640
    # a second install keeps the operator's configuration
    conf.write_text('{"listen_addr": "127.0.0.1:9000"}\n')
    make_install("DESTDIR=" + str(dest), "PREFIX=/usr")
    assert conf.read_text() == '{"listen_addr": "127.0.0.1:9000"}\n'


def test_installed_unit_verifies_and_its_check_passes(tmp_path):
    # installed where it runs from (no DESTDIR), every location moved into
    # tmp_path: systemd-analyze checks the commands exist
    root = tmp_path / "root"
    make_install("PREFIX=%s/usr" % root, "SYSCONFDIR=%s/etc" % root,
                 "SYSTEMDUNITDIR=%s/lib/systemd/system" % root)
    unit = root / "lib/systemd/system/boxer.service"
    f = unit_fields(str(unit))
    assert f["ExecStart"] == ["%s/usr/bin/boxer --config %s/etc/boxer/config.json" % (root, root)]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, r.stdout.decode()
    # the unit's ExecStartPre as written, with the installed configuration
    # (home /var/lib/boxer: only its free space is looked at)
    r = subprocess.run(f["ExecStartPre"][0].split(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120, text=True)
    assert r.returncode == 0, r.stdout
    assert r.stdout.splitlines()[0] == "ok      config: %s/etc/boxer/config.json" % root
