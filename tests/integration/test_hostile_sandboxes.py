"""Hostile sandboxes: commands under real runsc that attack the host through
/output, the store, the inputs, the shared image rootfs and their own
supervision.  Nothing may escape, nothing may be left behind, and the server
keeps answering a well-behaved client meanwhile."""

import hashlib
import os
import stat
import time

import httpx
import pytest

import hardening as H
from hardening import download, ok, run, upload

BUSYBOX = "busybox"
PYTHON = "python:3.12-slim"


@pytest.fixture(scope="module")
def srv(registry):
    yield from H.module_server(registry, "boxer-hsb-")


def sh(script, **kw):
    body = {"image": BUSYBOX, "cmd": ["sh", "-c", script]}
    body.update(kw)
    return body


def clean(srv):
    left = H.wait_clean(srv.home, timeout=20, netns_before=srv.netns_before)
    assert left == {}, left


def captured_tree(srv, eid):
    """{relative path: kind} of what landed in the store for a run."""
    base = os.path.join(srv.home, "files", "output", eid)
    out = {}
    for root, dirs, files in os.walk(base):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            kind = ("dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
                    else "other")
            out[os.path.relpath(p, base)] = kind
    return out


def rootfs_of(srv, ref):
    images = httpx.get(srv.url + "/images").json()
    digest = [i["digest"] for i in images if i["ref"].endswith(ref) or ref in i["ref"]][0]
    return os.path.join(srv.home, "images", "blobs", digest.split(":", 1)[1], "rootfs")


def tree_hash(root):
    """Hash of a whole tree: names, types, modes, owners, sizes, mtimes,
    link targets and file contents."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            h.update(("%s %o %d %d %d %d\n" % (os.path.relpath(p, root), st.st_mode, st.st_uid,
                                                st.st_gid, st.st_size, st.st_mtime_ns)).encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    st = os.lstat(root)
    h.update(("%o %d %d" % (st.st_mode, st.st_uid, st.st_mtime_ns)).encode())
    return h.hexdigest()


# ---- /output ----

def test_output_links_fifos_devices_not_captured(srv):
    res = ok(srv, sh(r"""
cd /output
ln -s /etc/passwd pw; ln -s ../../.. up; ln -s / root; ln -s /proc/self/root procroot
mkdir -p d/e; ln -s ../../../../../../../../etc d/e/etc; ln -s /output d/loop
echo real > real; ln real hard1; mkdir h; ln real h/hard2
echo solo > solo; echo nested > d/e/nested
mkfifo fifo; mkfifo d/fifo
mknod dev c 1 3 2>/dev/null; echo mknod=$?
echo ok
""", persist=True))
    assert "ok" in res["stdout"], res
    eid = res["exec_id"]
    tree = captured_tree(srv, eid)
    assert tree == {"solo": "file", "d": "dir", "d/e": "dir", "d/e/nested": "file"}, tree
    assert download(srv, "output/%s/solo" % eid).content == b"solo\n"
    assert download(srv, "output/%s/d/e/nested" % eid).content == b"nested\n"
    for name in ("pw", "up", "root", "procroot", "real", "hard1", "h/hard2", "fifo", "dev",
                 "d/e/etc", "d/loop"):
        assert download(srv, "output/%s/%s" % (eid, name)).status_code in (400, 404), name
    # A unix socket (and a FIFO, and device nodes) made through python.
    res = ok(srv, {"image": PYTHON, "persist": True, "cmd": ["python3", "-c", r"""
import os, socket, stat
s = socket.socket(socket.AF_UNIX); s.bind("/output/sock")
os.mkfifo("/output/fifo2")
for name, mode in (("null", stat.S_IFCHR | 0o666), ("blk", stat.S_IFBLK | 0o666)):
    try:
        os.mknod("/output/" + name, mode, os.makedev(1, 3))
        print("mknod", name, "worked")
    except OSError as e:
        print("mknod", name, e.errno)
open("/output/plain", "w").write("plain")
print("ok")
"""]})
    assert "ok" in res["stdout"], res
    assert captured_tree(srv, res["exec_id"]) == {"plain": "file"}
    clean(srv)


def test_output_names_newlines_255_bytes_and_deep_paths(srv):
    long = "M" * 255
    dname = "L" * 255
    res = ok(srv, sh(r"""
cd /output
printf nl > "$(printf 'new\nline')"
printf tab > "$(printf 'a\tb')"
printf bad > "$(printf 'bad\377name')"
printf utf > "$(printf 'caf\303\251')"
printf long > %(long)s
d=/output; i=0
while [ $i -lt 30 ]; do
  d=$d/%(dname)s
  mkdir "$d" 2>/dev/null || break
  printf "$i" > "$d/f" 2>/dev/null || break
  i=$((i+1))
done
echo levels=$i
""" % {"long": long, "dname": dname}, persist=True))
    eid = res["exec_id"]
    levels = int(res["stdout"].split("levels=")[1])
    assert levels >= 15, res  # deep enough to pass the store's 4096-byte path limit
    tree = captured_tree(srv, eid)
    assert tree.get(long) == "file"
    assert download(srv, "output/%s/%s" % (eid, long)).content == b"long"
    assert download(srv, "output/%s/caf\u00e9" % eid).content == b"utf"
    # Names no store path can express are skipped, not stored unreachable.
    for bad in ("new\nline", "a\tb"):
        assert bad not in tree
    assert not any("bad" in k for k in tree), tree
    # Deep files: kept while output/<exec_id>/<path> fits 4096 bytes.
    prefix = len("output/%s/" % eid)
    deep = [k for k in tree if k.endswith("/f")]
    assert deep, tree
    for k in deep:
        assert prefix + len(k) <= 4096
    longest = max(len(k) for k in deep)
    assert prefix + longest + 256 > 4096, "a file that fits was dropped"
    assert download(srv, "output/%s/%s" % (eid, max(deep, key=len))).status_code == 200
    clean(srv)


def test_100k_tiny_files(srv):
    """As many tiny files as the sandbox can make (its /output is bounded in
    inodes): the first output_files_max are captured, the rest skipped, and
    the server answers other clients quickly all along."""
    with H.Canary(srv.url, every=0.1, timeout=10) as canary:
        t0 = time.time()
        res = ok(srv, sh(r"""
cd /output; mkdir a b
i=0
while [ $i -lt 100000 ]; do
  true > a/f$i 2>/dev/null || break
  i=$((i+1))
done
echo made=$i
""", persist=True, limits={"wall_clock_secs": 600}))
        took = time.time() - t0
    canary.check(max_latency=2.0 * H.SLOW)
    made = int(res["stdout"].split("made=")[1])
    assert made > 10000, res
    eid = res["exec_id"]
    d = os.path.join(srv.home, "files", "output", eid, "a")
    names = os.listdir(d)
    assert len(names) == 10000, len(names)  # output_files_max
    assert download(srv, "output/%s/a/%s" % (eid, names[0])).status_code == 200
    assert H.tmp_entries(srv.home) == []
    print("100k files: made %d, captured %d, %.1fs, canary max %.2fs" % (
        made, len(names), took, canary.max_latency))
    httpx.get(srv.url + "/healthz")
    clean(srv)


# ---- supervision ----

def test_daemon_is_killed_with_the_sandbox(srv):
    t0 = time.time()
    res = ok(srv, sh(r"""
trap '' TERM HUP INT
( setsid sh -c 'trap "" TERM HUP INT; while true; do echo tick >> /output/daemon; sleep 0.1; done' & )
( sh -c 'trap "" TERM HUP; sleep 1000' & )
sleep 0.5
echo started
"""))
    assert res["stdout"] == "started\n"
    assert time.time() - t0 < 15 * H.SLOW, "the answer waited for the daemon"
    clean(srv)
    # Nothing of the sandbox lives on, and nothing keeps running that could
    # still write into the store.
    eid = res["exec_id"]
    assert not os.path.exists(os.path.join(srv.home, "files", "output", eid))


def test_closed_stdout_runs_until_the_timeout(srv):
    t0 = time.time()
    r = run(srv, sh("echo before; exec >&- 2>&-; sleep 1000", limits={"wall_clock_secs": 3}))
    assert r.status_code == 408, r.text
    body = r.json()
    assert body["timed_out"] is True and body["stdout"] == "before\n"
    assert time.time() - t0 < 12 * H.SLOW
    clean(srv)


def test_pipes_held_by_a_grandchild_after_exit(srv):
    """The main command exits at once while a background child keeps its
    stdout: the answer comes without waiting for the wall clock."""
    t0 = time.time()
    res = ok(srv, sh("(sleep 1000 &) ; echo main done", limits={"wall_clock_secs": 60}))
    assert res["stdout"] == "main done\n"
    assert time.time() - t0 < 15 * H.SLOW
    clean(srv)


# ---- the store and the inputs ----

def test_unlisted_store_files_are_unreachable(srv):
    marker = "SECRET-%d-MARKER" % os.getpid()
    upload(srv, "secret/a.txt", (marker + "\n").encode())
    upload(srv, "secret/deep/b.txt", (marker + "\n").encode())
    upload(srv, "listed/ok.txt", b"listed\n")
    res = ok(srv, sh(r"""
cat /secret/a.txt /secret/deep/b.txt 2>&1; echo cat=$?
ls -la /secret /listed/.. 2>&1
cat /listed/../secret/a.txt 2>&1
cat /proc/1/root/secret/a.txt 2>&1
for f in $(find / -xdev -type f 2>/dev/null) $(find /listed /output /tmp -type f 2>/dev/null); do
  grep -l "%s" "$f" 2>/dev/null
done
echo scan done
cat /listed/ok.txt
""" % marker, files=["listed/ok.txt"], persist=True))
    out = res["stdout"]
    assert "scan done" in out and "listed\n" in out, res
    assert marker not in out, out
    # Nothing inside even names where the store is on the host.
    res = ok(srv, sh("cat /proc/self/mountinfo /proc/mounts; ls -la /listed; env",
                     files=["listed/ok.txt"], persist=True))
    assert "listed" in res["stdout"]
    assert srv.home not in res["stdout"], res["stdout"]
    assert download(srv, "secret/a.txt").content == (marker + "\n").encode()
    clean(srv)


def test_inputs_and_rootfs_are_read_only(srv):
    upload(srv, "ro/data.txt", b"original\n")
    ok(srv, sh("true"))  # the image is pulled
    rootfs = rootfs_of(srv, BUSYBOX)
    before = tree_hash(rootfs)
    # Directories anyone could write to in the image: only the read-only
    # mount protects them.
    writable = []
    for dirpath, dirs, _ in os.walk(rootfs):
        for d in dirs:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p) and os.stat(p).st_mode & 0o002:
                writable.append("/" + os.path.relpath(p, rootfs))
    attempts = [
        "echo x >> /ro/data.txt", "echo x > /ro/data.txt", "rm -f /ro/data.txt",
        "mv /ro/data.txt /ro/moved", "chmod 777 /ro/data.txt", "touch /ro/data.txt",
        "ln -s x /ro/newlink", "truncate -s 0 /ro/data.txt", "mkdir /ro/sub",
        "echo x > /bin/evil", "echo x >> /bin/busybox", "rm -f /bin/sh", "chmod 777 /bin",
        "mkdir /newdir", "touch /etc/passwd", "mv /etc /etc2", "ln -s / /lnk",
        "mount -o remount,rw / 2>/dev/null", "echo x > /etc/evil",
    ] + ["echo x > %s/evil-w" % d for d in writable if not d.startswith(("/tmp", "/output"))]
    script = "\n".join("( %s ) 2>/dev/null; echo \"rc=$? %s\"" % (a, a.replace('"', "'"))
                       for a in attempts)
    res = ok(srv, sh(script, files=["ro/data.txt"], persist=True))
    lines = [ln for ln in res["stdout"].splitlines() if ln.startswith("rc=")]
    assert len(lines) == len(attempts), res
    succeeded = [ln for ln in lines if ln.startswith("rc=0 ")]
    assert succeeded == [], succeeded
    assert tree_hash(rootfs) == before, "the shared busybox rootfs changed"
    assert download(srv, "ro/data.txt").content == b"original\n"
    clean(srv)


def test_listed_paths_do_not_leak_into_the_image(srv):
    """runsc creates the mount point of every listed file in the rootfs it
    is given: those must never reach the image's shared rootfs, or one
    request could plant files (an empty /usr/local/bin/python3 shadowing the
    real one) in every later run of the image."""
    upload(srv, "usr/local/bin/python3", b"#!/bin/sh\necho planted\n")
    upload(srv, "plant/dir/file", b"x")
    res = ok(srv, {"image": PYTHON, "files": ["usr/local/bin/python3", "plant/dir/file"],
                   "persist": True, "cmd": ["sh", "-c", "ls /plant/dir; sh /usr/local/bin/python3"]})
    assert res["stdout"] == "file\nplanted\n", res
    res = ok(srv, {"image": PYTHON, "cmd": ["sh", "-c",
                                            "ls -d /plant /usr/local/bin/python3 /output 2>&1; "
                                            "python3 -c 'print(40 + 2)'"]})
    lines = res["stdout"].splitlines()
    assert lines[-1] == "42", res  # the real python3, not a planted empty file
    assert "/plant" not in lines and "/usr/local/bin/python3" not in lines, res
    rootfs = rootfs_of(srv, PYTHON)
    for p in ("plant", "usr/local/bin/python3", "output"):
        assert not os.path.lexists(os.path.join(rootfs, p)), p
    clean(srv)


TRY_WRITE = r"""
import os
hits, tried = [], 0
skip = ("/proc", "/sys", "/dev", "/tmp", "/output")
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
    targets = [(os.path.join(root, ".boxer-probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)]
    targets += [(os.path.join(root, f), os.O_WRONLY | os.O_APPEND) for f in files]
    for path, flags in targets:
        tried += 1
        try:
            os.close(os.open(path, flags | os.O_NOFOLLOW, 0o644))
            hits.append(path)
        except OSError:
            pass
for p in ("/ro/data.txt", "/usr/bin", "/etc/passwd", "/usr/lib"):
    for name, op in (("utime", lambda: os.utime(p, (0, 0))),
                     ("chmod", lambda: os.chmod(p, 0o777)),
                     ("chown", lambda: os.chown(p, 65534, 65534)),
                     ("xattr", lambda: os.setxattr(p, "user.boxer", b"x")),
                     ("rename", lambda: os.rename(p, p + ".moved")),
                     ("link", lambda: os.link(p, p + ".link")),
                     ("tmpfile", lambda: os.close(os.open(p if os.path.isdir(p) else "/usr",
                                                          os.O_TMPFILE | os.O_WRONLY)))):
        tried += 1
        try:
            op()
            hits.append(name + " " + p)
        except OSError:
            pass
print("tried", tried)
print("hits", hits)
"""


def test_nothing_in_a_big_rootfs_is_writable(srv):
    """Every directory and file of the python image, tried from inside: no
    write succeeds, and the shared rootfs is unchanged afterwards."""
    upload(srv, "ro/data.txt", b"original\n")
    upload(srv, "ro/try.py", TRY_WRITE.encode())
    ok(srv, {"image": PYTHON, "cmd": ["true"]})
    rootfs = rootfs_of(srv, PYTHON)
    before = tree_hash(rootfs)
    res = ok(srv, {"image": PYTHON, "cmd": ["python3", "/ro/try.py"],
                   "files": ["ro/data.txt", "ro/try.py"], "persist": True})
    lines = res["stdout"].splitlines()
    assert lines[-1] == "hits []", res
    assert int(lines[0].split()[1]) > 1000, res  # it really walked the image
    assert tree_hash(rootfs) == before, "the shared python rootfs changed"
    assert download(srv, "ro/data.txt").content == b"original\n"
    clean(srv)


def test_argv_at_the_limit(srv):
    """4096 arguments (the limit) of 95 bytes each reach the command intact."""
    args = ["a%04d" % i + "x" * 90 for i in range(4092)]
    res = ok(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", 'echo $#; for a; do l=$a; done; echo $l',
                                             "sh"] + args})
    assert res["stdout"].splitlines() == ["4092", args[-1]]
    clean(srv)
