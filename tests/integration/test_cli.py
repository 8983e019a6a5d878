"""The command-line client (`boxer run`, `boxer exec`, `boxer box ...`,
`boxer images`, `boxer health`; issue 15) driving a live server: streamed
output, exit statuses (the command's own; 124 timeout; 125 Boxer refused or
unreachable; 2 usage), stdin, env, files, the box lifecycle, discovery
(--url, BOXER_URL, the socket under $HOME, unix:// URLs) and BOXER_TOKEN."""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time

import pytest

import boxer_server

BUSYBOX = "busybox"
ERR_LINE = re.compile(r"^boxer: .+ \(([A-Z0-9_ ]+)\)\n$")


def cli(url, *args, stdin=None, env=None, timeout=120):
    e = dict(os.environ)
    e.pop("BOXER_URL", None)
    e.pop("BOXER_TOKEN", None)
    e.update(env or {})
    argv = [boxer_server.BOXER_BIN] + list(args[:1])
    if url is not None:
        argv += ["--url", url]
    argv += list(args[1:])
    return subprocess.run(argv, input=stdin, capture_output=True, env=e, timeout=timeout)


def cli_box(url, sub, *args, **kw):
    """`boxer box SUB --url URL ARGS...`"""
    e = dict(os.environ)
    e.pop("BOXER_URL", None)
    e.pop("BOXER_TOKEN", None)
    e.update(kw.pop("env", None) or {})
    argv = [boxer_server.BOXER_BIN, "box", sub, "--url", url] + list(args)
    return subprocess.run(argv, capture_output=True, env=e, timeout=120, **kw)


def err_code(p):
    text = p.stderr.decode()
    m = ERR_LINE.match(text)
    assert m, text
    return m.group(1)


def test_run_streams_output_as_it_comes_with_exit_status(server):
    argv = [boxer_server.BOXER_BIN, "run", "--url", server.url, BUSYBOX, "--",
            "sh", "-c", "echo first; echo oops >&2; sleep 2; echo second; exit 3"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = p.stdout.readline()
        # The first line is on the terminal while the command still sleeps.
        assert first == b"first\n"
        assert p.poll() is None
        assert time.monotonic() - t0 < 60
        rest, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rest == b"second\n"
    assert err == b"oops\n"
    assert p.returncode == 3


def test_run_stdin_bytes_env_workdir(server):
    data = bytes(range(256)) * 40
    p = cli(server.url, "run", "--stdin", BUSYBOX, "--", "cat", stdin=data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    p = cli(server.url, "run", "-e", "A=one", "--env", "B=two words", "-w", "/tmp", BUSYBOX,
            "--", "sh", "-c", 'echo "$A|$B|$(pwd)"')
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"one|two words|/tmp\n"
    # Without "--" the command is what follows the image.
    p = cli(server.url, "run", BUSYBOX, "echo", "hi")
    assert (p.returncode, p.stdout) == (0, b"hi\n")


def test_run_file_and_limits(server, tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(b"hello from the host\n")
    p = cli(server.url, "run", "--file", "%s:/workspace/in.txt" % f, "--cpu", "0.5",
            "--memory", "64", "--network", "none", BUSYBOX, "--", "cat", "/workspace/in.txt")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello from the host\n"
    p = cli(server.url, "run", "--file", "%s:/nope" % (tmp_path / "absent"), BUSYBOX, "--", "true")
    assert p.returncode == 125
    assert err_code(p) == "CLIENT_ERROR"


def test_run_large_output_and_output_limit(server):
    # 9 MB of bytes: the result line (with the output again, base64) is over
    # the client's 4 MiB event cap and read for its status and exit code.
    p = cli(server.url, "run", BUSYBOX, "--", "sh", "-c",
            "head -c 9000000 /dev/zero | tr '\\0' x; exit 4")
    assert p.returncode == 4, p.stderr
    assert p.stdout.count(b"x") == len(p.stdout)
    if len(p.stdout) != 9000000:
        # A client slowed by a loaded machine lags the bounded log: the
        # server drops the oldest events and says so, and so does boxer.
        assert re.match(rb"^boxer: \d+ output events were dropped \(TRUNCATED\)\n$", p.stderr), p.stderr
    else:
        assert p.stderr == b""
    # Over output_limit_bytes (10 MiB): Boxer's 507, one line, 125.
    p = cli(server.url, "run", BUSYBOX, "--", "head", "-c", "12000000", "/dev/zero")
    assert p.returncode == 125
    assert err_code(p) == "HTTP 507", p.stderr
    assert "output_limit_bytes" in p.stderr.decode()


def test_run_errors_and_statuses(server):
    # Killed by a signal: 128+N, like a shell.
    p = cli(server.url, "run", BUSYBOX, "--", "sh", "-c", "kill -9 $$")
    assert p.returncode == 137, p.stderr
    # Its own timeout: 124, one line.
    p = cli(server.url, "run", "--timeout", "1", BUSYBOX, "--", "sleep", "30")
    assert p.returncode == 124, p.stderr
    assert err_code(p) == "TIMEOUT"
    # Boxer refuses (bad image reference): 125 naming the server's message.
    p = cli(server.url, "run", "--network", "bogus", BUSYBOX, "--", "true")
    assert p.returncode == 125
    assert err_code(p) == "HTTP 400"
    assert "network" in p.stderr.decode()
    # Usage errors: 2.
    for args in (["run"], ["run", BUSYBOX], ["run", "--cpu", "x", BUSYBOX, "--", "true"],
                 ["run", "--env", "novalue", BUSYBOX, "--", "true"], ["run", "--force", BUSYBOX, "true"]):
        p = cli(server.url, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert err_code(p) == "USAGE"
    p = cli(None, "frobnicate")
    assert p.returncode == 2


def test_unreachable_server_is_125():
    port = boxer_server.free_port()
    for url in ("http://127.0.0.1:%d" % port, "unix:///nonexistent/boxer.sock"):
        for args in (["health"], ["run", BUSYBOX, "--", "true"], ["images"]):
            p = cli(url, *args)
            assert p.returncode == 125, (url, args, p.stderr)
            assert err_code(p) == "UNREACHABLE"
    # A bad URL is a usage error.
    p = cli("ftp://x", "health")
    assert p.returncode == 2


def test_health_and_images(server):
    p = cli(server.url, "health")
    assert p.returncode == 0 and p.stdout.startswith(b"ok "), p
    p = cli(server.url, "health", "--json")
    assert json.loads(p.stdout) == {"ok": True}
    # busybox was pulled by the runs above or now.
    assert cli(server.url, "run", BUSYBOX, "--", "true").returncode == 0
    p = cli(server.url, "images")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0].split()[0] == "REF"
    assert any("busybox" in line for line in lines[1:]), lines
    p = cli(server.url, "images", "--json")
    assert any("busybox" in im["ref"] for im in json.loads(p.stdout))


def test_box_lifecycle(server, tmp_path):
    u = server.url
    name = "cli-%d" % os.getpid()
    p = cli_box(u, "create", "--name", name, "--disk", "1", "-e", "GREETING=hi", BUSYBOX)
    assert p.returncode == 0, p.stderr
    box = p.stdout.decode().strip()
    assert box.startswith("box_")
    try:
        p = cli_box(u, "ls")
        assert p.returncode == 0, p.stderr
        rows = [line.split() for line in p.stdout.decode().splitlines()]
        assert rows[0][:3] == ["ID", "NAME", "STATUS"]
        assert [box, name, "running"] in [r[:3] for r in rows[1:]], rows
        p = cli_box(u, "ls", "--json")
        assert box in [b["id"] for b in json.loads(p.stdout)]
        info = json.loads(cli_box(u, "info", name).stdout)
        assert info["id"] == box and info["status"] == "running"

        # exec: output, env, exit status, stdin; by name or id.
        p = cli(u, "exec", name, "--", "sh", "-c", 'echo "$GREETING"; echo e >&2; exit 5')
        assert (p.returncode, p.stdout, p.stderr) == (5, b"hi\n", b"e\n")
        p = cli_box(u, "exec", "--stdin", box, "--", "wc", "-c", input=b"x" * 1000)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == b"1000"
        p = cli(u, "exec", "--timeout", "1", box, "--", "sleep", "30")
        assert p.returncode == 124 and err_code(p) == "TIMEOUT", p.stderr

        # cp both ways, bytes kept; a directory destination keeps the name.
        src = tmp_path / "blob.bin"
        src.write_bytes(os.urandom(300000))
        p = cli_box(u, "cp", str(src), "%s:/" % box)
        assert p.returncode == 0, p.stderr
        p = cli(u, "exec", box, "--", "sh", "-c", "wc -c < /blob.bin")
        assert p.stdout.strip() == b"300000"
        dst = tmp_path / "back.bin"
        p = cli_box(u, "cp", "%s:/blob.bin" % name, str(dst))
        assert p.returncode == 0, p.stderr
        assert dst.read_bytes() == src.read_bytes()
        p = cli_box(u, "cp", "%s:/tmp/absent" % box, str(tmp_path / "x"))
        assert p.returncode == 125, p.stderr
        assert not (tmp_path / "x").exists()

        # stop, the list filter, start, and exec again.
        p = cli_box(u, "stop", box)
        assert p.returncode == 0, p.stderr
        p = cli_box(u, "ls", "--status", "stopped", "--json")
        assert box in [b["id"] for b in json.loads(p.stdout)]
        p = cli(u, "exec", box, "--", "true")
        assert p.returncode == 125 and err_code(p) == "BOX_NOT_RUNNING", p.stderr
        p = cli_box(u, "start", "--json", box)
        assert json.loads(p.stdout)["status"] == "running", p.stderr
        p = cli(u, "exec", box, "--", "cat", "/blob.bin")
        assert p.returncode == 0 and len(p.stdout) == 300000, (p.returncode, p.stderr)

        # rm refuses a running box without -f.
        p = cli_box(u, "rm", box)
        assert p.returncode == 125 and err_code(p) == "BOX_ALREADY_RUNNING", p.stderr
    finally:
        p = cli_box(u, "rm", "-f", box)
    assert p.returncode == 0, p.stderr
    p = cli_box(u, "info", box)
    assert p.returncode == 125 and err_code(p) == "BOX_NOT_FOUND", p.stderr
    p = cli_box(u, "gc", "--older-than", "0")
    assert p.returncode == 0 and p.stdout.startswith(b"removed "), p.stderr


@pytest.fixture
def sockhome():
    # sun_path holds 107 bytes: pytest's tmp_path can be longer than that.
    d = tempfile.mkdtemp(prefix="bxc-", dir="/tmp")
    os.makedirs(os.path.join(d, ".boxer"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _cli_with_hosts(hosts_file, *argv):
    """boxer ARGV with HOSTS_FILE bind-mounted on /etc/hosts in a mount
    namespace of its own (the machine's /etc/hosts is never touched)."""
    e = dict(os.environ)
    e.pop("BOXER_URL", None)
    e.pop("BOXER_TOKEN", None)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount --bind "$1" /etc/hosts && shift && exec "$@"', "sh", str(hosts_file),
         boxer_server.BOXER_BIN] + list(argv),
        capture_output=True, env=e, timeout=120)


def test_url_host_names_from_etc_hosts(make_server, tmp_path):
    """--url with a host name: the static client looks it up in /etc/hosts
    (no NSS, no DNS); a name not there is one line saying to use an IP
    address, exit 2."""
    srv = make_server(config={"allowed_hosts": ["boxer-cli.test"]})
    hosts = tmp_path / "hosts"
    hosts.write_text("# test hosts\n127.0.0.1\tlocalhost\n"
                     "127.0.0.1   Boxer-CLI.test   boxer-alias  # the server\n"
                     "10.255.255.1 boxer-cli.test\n")  # later lines do not win
    url = "http://boxer-cli.test:%d" % srv.port
    p = _cli_with_hosts(hosts, "health", "--url", url)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "ok " + url
    p = _cli_with_hosts(hosts, "run", "--url", url, BUSYBOX, "--", "echo", "by name")
    assert p.returncode == 0 and p.stdout == b"by name\n", p.stderr
    # the Host header keeps the name: one the server does not allow is refused
    p = _cli_with_hosts(hosts, "images", "--url", "http://boxer-alias:%d" % srv.port)
    assert p.returncode == 125 and ERR_LINE.match(p.stderr.decode()), p.stderr
    p = _cli_with_hosts(hosts, "health", "--url", "http://missing.test:%d" % srv.port)
    assert p.returncode == 2 and err_code(p) == "USAGE", p.stderr
    assert b"missing.test is not in /etc/hosts" in p.stderr and b"use an IP address" in p.stderr
    # IP literals and localhost need no hosts file at all
    empty = tmp_path / "empty"
    empty.write_text("")
    for u in ("http://127.0.0.1:%d" % srv.port, "http://localhost:%d" % srv.port):
        p = _cli_with_hosts(empty, "health", "--url", u)
        assert p.returncode == 0, p.stderr
    p = cli("http://bad_name%zz:1", "health")
    assert p.returncode == 2 and err_code(p) == "USAGE"


def test_discovery_socket_and_token(make_server, sockhome):
    sock = os.path.join(sockhome, ".boxer", "boxer.sock")
    srv = make_server(config={"listen_unix": sock, "auth_tokens": ["s3cret"]})
    tok = {"BOXER_TOKEN": "s3cret"}
    # $HOME/.boxer/boxer.sock is found without --url or BOXER_URL.
    p = cli(None, "health", env=dict(tok, HOME=sockhome))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "ok unix://" + sock
    # BOXER_URL wins over the socket, --url over BOXER_URL.
    p = cli(None, "health", env=dict(tok, HOME=sockhome, BOXER_URL=srv.url))
    assert p.stdout.decode().strip() == "ok http://127.0.0.1:%d" % srv.port
    p = cli("unix://" + sock, "health", env=dict(tok, BOXER_URL="http://127.0.0.1:1"))
    assert p.returncode == 0, p.stderr
    # The token: absent is refused with the server's message (125).
    p = cli("unix://" + sock, "images", env={"HOME": sockhome})
    assert p.returncode == 125
    assert err_code(p) == "HTTP 401"
    p = cli("unix://" + sock, "run", BUSYBOX, "--", "echo", "via socket", env=tok)
    assert (p.returncode, p.stdout) == (0, b"via socket\n"), p.stderr


def _read_until(fd, pattern, deadline):
    buf = b""
    while pattern not in buf:
        left = deadline - time.monotonic()
        assert left > 0, buf[-2000:]
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child is gone
                chunk = b""
            assert chunk, (pattern, buf[-2000:])
            buf += chunk
    return buf


def _set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_exec_it_terminal_through_a_pty(server):
    """`boxer exec -it BOX` on a pseudo-terminal: the shell in the box gets
    the terminal's size, follows a resize (SIGWINCH), echoes what is typed
    and its exit status is boxer's."""
    p = cli_box(server.url, "create", "--disk", "1", BUSYBOX)
    assert p.returncode == 0, p.stderr
    box = p.stdout.decode().strip()
    pid, fd = pty.fork()
    if pid == 0:  # the child: boxer on the pty, as a user's terminal
        try:
            _set_size(0, 30, 100)
            os.execv(boxer_server.BOXER_BIN,
                     [boxer_server.BOXER_BIN, "exec", "-it", "--url", server.url, box])
        finally:
            os._exit(99)
    status = None
    try:
        deadline = time.monotonic() + 90
        _read_until(fd, b"# ", deadline)  # the shell's prompt
        os.write(fd, b"stty size; echo mark-$((6*7))\r")
        out = _read_until(fd, b"mark-42", deadline)
        assert b"30 100" in out, out
        _set_size(fd, 40, 120)  # SIGWINCH to boxer, the pty's foreground
        n = 0
        while True:
            n += 1
            os.write(fd, b"stty size; echo probe-$((%d+1000))\r" % n)
            out = _read_until(fd, b"probe-%d" % (n + 1000), deadline)
            if b"40 120" in out:
                break
            time.sleep(0.2)
        os.write(fd, b"exit 7\r")
        _read_until_exit = time.monotonic() + 60
        while status is None and time.monotonic() < _read_until_exit:
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = st
                break
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
        assert status is not None, "boxer exec -it did not end"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7, status
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        cli_box(server.url, "rm", "-f", box)


def _wait_child(pid, fd, secs):
    """Waits for the pty child, reading (and returning) what it writes."""
    out = b""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        wpid, st = os.waitpid(pid, os.WNOHANG)
        if wpid:
            return st, out
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                pass
    return None, out


def test_exec_it_runs_a_command_through_a_pty(server):
    """`boxer exec -it BOX -- CMD`: the command (not a shell) runs on the
    terminal with the terminal's size, env and workdir from the options;
    what is typed reaches its stdin and its exit status is boxer's."""
    p = cli_box(server.url, "create", "--disk", "1", BUSYBOX)
    assert p.returncode == 0, p.stderr
    box = p.stdout.decode().strip()
    script = ('stty size; echo "ready $GREETING $(pwd)"; read x; '
              'echo "got [$x]"; exit 5')
    pid, fd = pty.fork()
    if pid == 0:
        try:
            _set_size(0, 30, 100)
            os.execv(boxer_server.BOXER_BIN,
                     [boxer_server.BOXER_BIN, "exec", "-it", "--url", server.url,
                      "-e", "GREETING=a&b=c d", "-w", "/tmp", box,
                      "--", "sh", "-c", script])
        finally:
            os._exit(99)
    status = None
    try:
        deadline = time.monotonic() + 90
        out = _read_until(fd, b"ready a&b=c d /tmp", deadline)
        assert b"30 100" in out, out
        os.write(fd, b"typed; $(id) 'q'\r")
        out = _read_until(fd, b"'q']", deadline)
        assert b"got [typed; $(id) 'q']" in out, out
        status, rest = _wait_child(pid, fd, 60)
        assert status is not None, "boxer exec -it did not end"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 5, (status, rest)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    try:
        # Without a terminal on our side the session still runs (no raw
        # mode); argv goes as a list, never through a shell.
        p = cli(server.url, "exec", "-it", box, "--", "echo", "$HOME", "a;b", "",
                stdin=b"")
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"$HOME a;b \r\n", p.stdout
        p = cli(server.url, "exec", "-it", box, "--", "/no/such/program", stdin=b"")
        assert p.returncode == 127, p
        assert b"/no/such/program" in p.stdout
        p = cli(server.url, "exec", "-it", "--user", "1234:55", box, "--", "id", stdin=b"")
        assert p.returncode == 0 and b"uid=1234 gid=55" in p.stdout, p.stdout
        p = cli(server.url, "exec", "-it", box, "--", "x" * 9000, stdin=b"")
        assert p.returncode == 2 and err_code(p) == "USAGE"
        p = cli(server.url, "exec", "-it", "--stdin", box, "--", "cat", stdin=b"")
        assert p.returncode == 2 and err_code(p) == "USAGE"
    finally:
        cli_box(server.url, "rm", "-f", box)


def test_exec_t_runs_on_a_pty_and_it_needs_a_shell_path(server):
    p = cli_box(server.url, "create", "--disk", "1", BUSYBOX)
    assert p.returncode == 0, p.stderr
    box = p.stdout.decode().strip()
    try:
        p = cli(server.url, "exec", "-t", box, "--", "sh", "-c", "test -t 1 && stty size")
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"24 80\r\n"  # not a terminal here: the defaults
        p = cli(server.url, "exec", "-i", box, "--", "cat")
        assert p.returncode == 2 and err_code(p) == "USAGE"
        # The server's refusal of a terminal for a stopped box is one line.
        assert cli_box(server.url, "stop", box).returncode == 0
        p = cli(server.url, "exec", "-it", box)
        assert p.returncode == 125 and err_code(p) == "BOX_NOT_RUNNING", p.stderr
    finally:
        cli_box(server.url, "rm", "-f", box)
