"""`boxer check-host` (issue 17): on this host every check passes; on a
host without runsc (a PATH without it and, in a private mount namespace,
runsc hidden from the default directories the server also searches) the
runsc line says missing with what to do, and the exit status is 1."""

import json
import os
import shutil
import subprocess

import boxer_server

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def write_config(tmp_path, **extra):
    cfg = {"home": str(tmp_path / "home"), "listen_addr": "127.0.0.1:0"}
    cfg.update(extra)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def lines_by_name(out):
    by = {}
    for line in out.splitlines():
        status, rest = line.split(None, 1)
        name, detail = rest.split(": ", 1)
        by[name] = (status, detail)
    return by


def test_this_host_passes(tmp_path):
    cfg = write_config(tmp_path)
    r = subprocess.run([boxer_server.BOXER_BIN, "check-host", "--config", cfg],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    by = lines_by_name(r.stdout)
    assert set(by) == {"config", "runsc", "platform", "cgroups", "loop", "skopeo", "umoci",
                       "nft", "disk"}
    assert all(s == "ok" for s, _ in by.values()), r.stdout
    assert by["config"][1] == cfg
    assert by["runsc"][1].startswith(shutil.which("runsc") + " (runsc version ")
    assert by["platform"][1] == "systrap works"  # the default platform, bookworm-backports' runsc
    assert "hybrid" in by["cgroups"][1] or " v2:" in by["cgroups"][1]
    assert str(tmp_path / "home") in by["disk"][1]
    # the probe's cgroups and runsc root are gone again, and the home is not made
    assert "boxer-check-" not in open("/proc/self/cgroup").read()
    for d in os.listdir("/sys/fs/cgroup"):
        for _root, dirs, _files in os.walk(os.path.join("/sys/fs/cgroup", d)):
            assert not any(x.startswith("boxer-check-") for x in dirs)
            break
    assert not (tmp_path / "home").exists()


def test_without_runsc_reports_missing(tmp_path):
    cfg = write_config(tmp_path)
    # a PATH with the other tools but not runsc
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("skopeo", "umoci", "nft"):
        os.symlink(shutil.which(tool), bindir / tool)
    # runsc in the default directories, hidden under a non-executable file
    hidden = sorted({os.path.realpath(os.path.join(d, "runsc")) for d in DEFAULT_PATH.split(":")
                     if os.path.exists(os.path.join(d, "runsc"))})
    assert hidden, "runsc is expected on this host"
    empty = tmp_path / "not-runsc"
    empty.write_text("")
    script = "".join('%s --bind "$1" %s && ' % (shutil.which("mount"), p) for p in hidden) + \
        'shift && exec "$@"'
    r = subprocess.run([shutil.which("unshare"), "--mount", "--propagation", "private", "--",
                        "/bin/sh", "-c", script, "sh", str(empty),
                        boxer_server.BOXER_BIN, "check-host", "--config", cfg],
                       env={"PATH": str(bindir)}, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    by = lines_by_name(r.stdout)
    status, detail = by["runsc"]
    assert status == "missing"
    assert "not found in PATH" in detail and "fix: install gVisor's runsc" in detail
    assert "platform" not in by  # nothing to probe without runsc
    # the other checks still ran and passed
    for name in ("config", "cgroups", "loop", "skopeo", "umoci", "nft", "disk"):
        assert by[name][0] == "ok", r.stdout
    assert os.access(hidden[0], os.X_OK)  # the host's runsc is untouched


def test_usage_errors(tmp_path):
    r = subprocess.run([boxer_server.BOXER_BIN, "check-host", "extra"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, text=True)
    assert r.returncode == 2 and "usage: boxer check-host" in r.stderr
    r = subprocess.run([boxer_server.BOXER_BIN, "check-host", "--config",
                        str(tmp_path / "absent.json")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, text=True)
    assert r.returncode == 1
    status, detail = lines_by_name(r.stdout)["config"]
    assert status == "missing" and "absent.json" in detail


def test_warnings_do_not_fail(tmp_path):
    # ignore_cgroups and no nft: Boxer starts without limits or network
    # "sandbox", so both are warnings and the exit status stays 0
    cfg = write_config(tmp_path, ignore_cgroups=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("runsc", "skopeo", "umoci"):
        os.symlink(shutil.which(tool), bindir / tool)
    r = subprocess.run([boxer_server.BOXER_BIN, "check-host", "--config", cfg],
                       env={"PATH": str(bindir)}, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    by = lines_by_name(r.stdout)
    assert by["cgroups"][0] == "warn" and "ignore_cgroups" in by["cgroups"][1]
    assert by["nft"][0] == "warn" and "fix: apt-get install nftables" in by["nft"][1]
    assert by["runsc"][0] == "ok" and by["runsc"][1].startswith(str(bindir / "runsc"))
