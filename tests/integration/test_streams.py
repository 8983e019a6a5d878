"""Exec output streams (issue 14): SSE and NDJSON on .../events, "stream":
true on box execs and on /run; replay, resume, truncation, keepalives,
base64, flow control and flat memory under a large output.  Real runsc,
real images from the local registry."""

import base64
import http.client
import json
import os
import socket
import time

import httpx
import pytest

import boxer_server
import hardening as H

BUSYBOX = "busybox"
LOG_BYTES = 256 << 10
OUTPUT_LIMIT = 1 << 20  # /run's output_limit_bytes here (box execs do not use it)


@pytest.fixture(scope="module")
def srv(registry, tmp_path_factory):
    d = tmp_path_factory.mktemp("streams")
    s = boxer_server.Server(d, config={"exec_output_bytes": LOG_BYTES,
                                       "output_limit_bytes": OUTPUT_LIMIT,
                                       "stream_keepalive_secs": 1},
                            registry=registry).start()
    yield s
    try:
        s.stop()
        assert boxer_server.leftover_processes(s.home) == []
        assert boxer_server.leftover_mounts(s.home) == []
    finally:
        boxer_server.unmount_under(s.home)


@pytest.fixture(scope="module")
def box(srv):
    r = api(srv, "POST", "/v1/boxes", json={"image": BUSYBOX})
    assert r.status_code == 201, r.text
    yield r.json()["id"]
    api(srv, "DELETE", "/v1/boxes/%s?force=true" % r.json()["id"])


def api(srv, method, path, **kw):
    kw.setdefault("timeout", 120)
    return httpx.request(method, srv.url + path, **kw)


def start_exec(srv, box, cmd, **extra):
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json=dict(cmd=cmd, **extra))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_exec(srv, box, eid):
    deadline = time.time() + 60
    while time.time() < deadline:
        info = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, eid)).json()
        if info["status"] != "running":
            return info
        time.sleep(0.05)
    raise AssertionError("exec %s still running" % eid)


def sse_events(lines):
    """Parses SSE lines (text, without newlines) into dicts with event, id,
    data and comments; yields each event at its blank line."""
    ev = {}
    for line in lines:
        line = line.rstrip("\r\n")  # some httpx versions keep the ends
        if line == "":
            if ev:
                yield ev
            ev = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            assert name in ("event", "id", "data"), line
            assert name not in ev, "one %s line per event: %r" % (name, line)
            ev[name] = value
    assert ev == {}, "stream ended inside an event"


def get_sse(srv, box, eid, headers=None, query=""):
    with httpx.stream("GET", srv.url + "/v1/boxes/%s/exec/%s/events%s" % (box, eid, query),
                      headers=headers or {}, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("transfer-encoding") == "chunked"
        return list(sse_events(r.iter_lines()))


def check_sse_exit(events, code):
    """The BoxRun shape: log events with consecutive seqs, id == seq, then
    one exit whose data is JSON text; the stream closes after it."""
    logs = [e for e in events if e.get("event") == "log"]
    assert events[-1]["event"] == "exit"
    last = json.loads(events[-1]["data"])
    assert last["stream"] is None and json.loads(last["data"]) == {"exit_code": code}
    seqs = [json.loads(e["data"])["seq"] for e in logs]
    assert [int(e["id"]) for e in logs] == seqs
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
    assert last["seq"] == (seqs[-1] + 1 if seqs else last["seq"])
    return [json.loads(e["data"]) for e in logs]


def text_of(logs, stream):
    return "".join(e["data"] for e in logs if e["stream"] == stream)


def test_sse_order_seq_and_exit(srv, box):
    cmd = ["sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done; exit 3"]
    eid = start_exec(srv, box, cmd)
    # read while it runs: live events, then the exit
    events = get_sse(srv, box, eid)
    logs = check_sse_exit(events, 3)
    assert text_of(logs, "stdout") == "out1\nout2\nout3\n"
    assert text_of(logs, "stderr") == "err1\nerr2\nerr3\n"
    assert {e["stream"] for e in logs} == {"stdout", "stderr"}
    # stdout and stderr interleave in the order they were written
    order = [e["data"].strip() for e in logs]
    assert order.index("out1") < order.index("err1") < order.index("out2") < order.index("out3")
    assert logs[0]["seq"] == 1
    # the same again from the buffer after the end (replay)
    again = check_sse_exit(get_sse(srv, box, eid), 3)
    assert again == logs
    info = wait_exec(srv, box, eid)
    assert info["stdout"] == "out1\nout2\nout3\n" and info["truncated"] is False


def test_resume_after_and_last_event_id(srv, box):
    eid = start_exec(srv, box, ["sh", "-c", "for i in 1 2 3 4 5; do echo l$i; sleep 0.05; done"])
    wait_exec(srv, box, eid)
    logs = check_sse_exit(get_sse(srv, box, eid), 0)
    assert text_of(logs, "stdout") == "l1\nl2\nl3\nl4\nl5\n"
    n = logs[1]["seq"]
    rest = check_sse_exit(get_sse(srv, box, eid, query="?after=%d" % n), 0)
    assert rest == logs[2:]
    rest = check_sse_exit(get_sse(srv, box, eid, headers={"Last-Event-ID": str(n)}), 0)
    assert rest == logs[2:]
    # past the end: only the exit
    assert check_sse_exit(get_sse(srv, box, eid, query="?after=%d" % (logs[-1]["seq"])), 0) == []
    r = api(srv, "GET", "/v1/boxes/%s/exec/%s/events?after=x" % (box, eid))
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST"
    r = api(srv, "GET", "/v1/boxes/%s/exec/exec_nope/events" % box)
    assert r.status_code == 404 and r.json()["code"] == "EXEC_NOT_FOUND"


def ndjson(srv, method, path, **kw):
    with httpx.stream(method, srv.url + path, timeout=60, **kw) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def test_ndjson_events(srv, box):
    eid = start_exec(srv, box, ["sh", "-c", "echo a; echo b >&2; exit 2"])
    evs = ndjson(srv, "GET", "/v1/boxes/%s/exec/%s/events" % (box, eid),
                 headers={"Accept": "application/x-ndjson"})
    assert evs[-1]["type"] == "exit" and evs[-1]["exit_code"] == 2
    assert evs[-1]["status"] == "failed" and evs[-1]["timed_out"] is False
    logs = [e for e in evs if e["type"] == "log"]
    assert all(e["type"] in ("log", "exit", "keepalive") for e in evs)
    assert text_of(logs, "stdout") == "a\n" and text_of(logs, "stderr") == "b\n"


def test_exec_stream_true(srv, box):
    evs = ndjson(srv, "POST", "/v1/boxes/%s/exec" % box,
                 json={"cmd": ["sh", "-c", "echo one; sleep 0.2; echo two"], "stream": True})
    assert evs[0]["type"] == "start" and evs[0]["exec_id"].startswith("exec_")
    logs = [e for e in evs if e["type"] == "log"]
    assert text_of(logs, "stdout") == "one\ntwo\n"
    x = evs[-1]
    assert x["type"] == "exit" and x["exit_code"] == 0 and x["status"] == "succeeded"
    assert x["timed_out"] is False and x["wall_ms"] >= 200
    assert x["seq"] == logs[-1]["seq"] + 1
    # the exec is a record like any other
    info = api(srv, "GET", "/v1/boxes/%s/exec/%s?extra=1" % (box, evs[0]["exec_id"])).json()
    assert info["stdout"] == "one\ntwo\n"
    # a timeout ends the stream with timed_out
    evs = ndjson(srv, "POST", "/v1/boxes/%s/exec" % box,
                 json={"cmd": ["sh", "-c", "echo s; sleep 30"], "stream": True,
                       "timeout_ms": 500})
    assert evs[-1]["type"] == "exit" and evs[-1]["timed_out"] is True
    assert evs[-1]["exit_code"] == 137 and evs[-1]["status"] == "failed"
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "stream": 1})
    assert r.status_code == 400
    r = api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["true"], "encoding": "utf-16"})
    assert r.status_code == 400


def test_truncated_is_announced(srv, box):
    # 1 MB through a 256 KiB log, nobody reading: the oldest events go
    eid = start_exec(srv, box, ["sh", "-c", "i=0; while [ $i -lt 16 ]; do "
                                "head -c 65536 /dev/zero | tr '\\0' a; i=$((i+1)); done; echo END"])
    info = wait_exec(srv, box, eid)
    assert info["truncated"] is True
    assert info["stdout"].endswith("aaaaEND\n") and len(info["stdout"]) <= LOG_BYTES
    events = get_sse(srv, box, eid)
    assert events[0]["event"] == "truncated"
    tev = json.loads(events[0]["data"])  # BoxRun's shape: stream, data, seq
    t = json.loads(tev["data"])
    assert tev["stream"] is None and tev["seq"] == t["first_seq"] - 1
    assert t["dropped"] >= 1 and t["first_seq"] == t["dropped"] + 1
    logs = check_sse_exit(events[1:], 0)
    assert logs[0]["seq"] == t["first_seq"]
    assert text_of(logs, "stdout") == info["stdout"]
    # resuming inside the dropped range says so too; after it, nothing is said
    events = get_sse(srv, box, eid, query="?after=1")
    assert events[0]["event"] == "truncated"
    assert json.loads(json.loads(events[0]["data"])["data"])["dropped"] == t["first_seq"] - 2
    events = get_sse(srv, box, eid, query="?after=%d" % t["first_seq"])
    assert events[0]["event"] == "log"
    evs = ndjson(srv, "GET", "/v1/boxes/%s/exec/%s/events" % (box, eid),
                 headers={"Accept": "application/x-ndjson"})
    assert evs[0] == {"type": "truncated", "dropped": t["dropped"], "first_seq": t["first_seq"]}


def test_keepalive_on_silence(srv, box):
    eid = start_exec(srv, box, ["sh", "-c", "sleep 2.5; echo late"])
    events = get_sse(srv, box, eid)
    kinds = [e.get("event") or "comment:" + e["comment"] for e in events]
    assert kinds.count("comment:keepalive") >= 1, kinds
    assert kinds.index("comment:keepalive") < kinds.index("log")
    assert kinds[-1] == "exit"
    evs = ndjson(srv, "POST", "/v1/boxes/%s/exec" % box,
                 json={"cmd": ["sh", "-c", "sleep 2.5; echo late"], "stream": True})
    assert {"type": "keepalive"} in evs


def multipart(fields):
    b = b"----boxerstreamboundary"
    out = b""
    for name, value in fields:
        out += b"--" + b + b"\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\""
        out += (b"; filename=\"f\"" if name == "file" else b"") + b"\r\n\r\n" + value + b"\r\n"
    out += b"--" + b + b"--\r\n"
    return out, "multipart/form-data; boundary=" + b.decode()


def test_base64_is_byte_exact(srv, box):
    data = bytes(range(256)) * 512 + os.urandom(100003) + b"\xe2\x82"  # a cut UTF-8 tail too
    body, ct = multipart([("dest", b"/root/bin.dat"), ("file", data)])
    r = api(srv, "POST", "/v1/boxes/%s/files/upload" % box, content=body,
            headers={"Content-Type": ct})
    assert r.status_code == 200, r.text
    evs = ndjson(srv, "POST", "/v1/boxes/%s/exec" % box,
                 json={"cmd": ["cat", "/root/bin.dat"], "stream": True, "encoding": "base64"})
    got = b"".join(base64.b64decode(e["data"]) for e in evs if e["type"] == "log")
    assert got == data
    # the events of the same exec come in base64 too
    events = get_sse(srv, box, evs[0]["exec_id"])
    got = b"".join(base64.b64decode(json.loads(e["data"])["data"]) for e in events
                   if e.get("event") == "log")
    assert got == data
    # text mode: invalid bytes become U+FFFD, valid text stays
    evs = ndjson(srv, "POST", "/v1/boxes/%s/exec" % box,
                 json={"cmd": ["printf", "caf\\303\\251 \\377!"], "stream": True})
    assert text_of([e for e in evs if e["type"] == "log"], "stdout") == "café \ufffd!"


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_output_streams_with_flat_rss(srv, box):
    # 100 MB; a tenth under valgrind, which runs the server ~30 times slower
    total = 100_000_000 // (10 if H.VALGRIND else 1)
    pid = srv.proc.pid
    base = vm_rss_kb(pid)
    peak = base
    got = 0
    t0 = time.time()
    # http.client: httpx's line splitting is far slower than Boxer here
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60 * H.SLOW)
    conn.request("POST", "/v1/boxes/%s/exec" % box,
                 body=json.dumps({"cmd": ["head", "-c", str(total), "/dev/zero"], "stream": True,
                                  "encoding": "base64"}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    n = 0
    last = None
    while True:
        line = r.readline()
        if not line:
            break
        ev = json.loads(line)
        if ev["type"] == "log":
            got += len(base64.b64decode(ev["data"]))
        last = ev
        n += 1
        if n % 200 == 0:
            peak = max(peak, vm_rss_kb(pid))
    conn.close()
    assert last["type"] == "exit" and last["exit_code"] == 0
    assert got == total
    took = time.time() - t0
    print("%d MB streamed in %.1f s, RSS %d kB -> peak %d kB" % (total // 10**6, took, base, peak))
    # bounded by the log, the answer buffers and the pipe reads, not the output
    if H.CHECK_RSS:
        assert peak - base < 40 * 1024, (base, peak)
    assert took < 30 * H.SLOW


def test_slow_reader_blocks_the_command(srv, box):
    """While the client does not read, the command stalls on its writes;
    it goes on once the client reads again."""
    # 400 x 64 KiB: far more than the socket buffers, the answer's piece,
    # the log's lag bound and the pipe hold together (a few MB)
    script = ("i=0; while [ $i -lt 400 ]; do head -c 65536 /dev/zero; i=$((i+1)); "
              "echo $i > /tmp/progress; done")

    def progress():
        r = api(srv, "POST", "/v1/boxes/%s/exec" % box,
                json={"cmd": ["sh", "-c", "cat /tmp/progress 2>/dev/null || echo 0"],
                      "wait": True})
        return int(r.json()["stdout"].strip() or 0)

    api(srv, "POST", "/v1/boxes/%s/exec" % box, json={"cmd": ["rm", "-f", "/tmp/progress"],
                                                     "wait": True})
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    body = json.dumps({"cmd": ["sh", "-c", script], "stream": True,
                       "encoding": "base64"}).encode()
    sock.sendall(b"POST /v1/boxes/%s/exec HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (box.encode(), len(body), body))
    try:
        # not reading: the progress stops well before the end
        prev, stable_since = -1, time.time()
        deadline = time.time() + 30
        while time.time() < deadline:
            p = progress()
            if p != prev:
                prev, stable_since = p, time.time()
            elif time.time() - stable_since > 1.5:
                break
            time.sleep(0.2)
        assert 0 < prev < 400, prev
        time.sleep(1)
        assert progress() == prev
        # reading again: it runs to the end
        buf = b""
        sock.settimeout(60)
        while not buf.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(1 << 20)
            assert chunk, "closed before the end"
            buf += chunk[-64:] if len(buf) > 64 else chunk
            buf = buf[-64:]
        assert progress() == 400
    finally:
        sock.close()


def run_stream(srv, body):
    with httpx.stream("POST", srv.url + "/run", json=dict(body, stream=True), timeout=120) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def test_run_stream_start_log_result(srv):
    body = {"image": BUSYBOX, "cmd": ["sh", "-c", "echo one; echo oops >&2; sleep 0.3; echo two"]}
    evs = run_stream(srv, body)
    assert evs[0]["type"] == "start" and evs[0]["exec_id"].startswith("boxer-")
    logs = [e for e in evs if e["type"] == "log"]
    assert text_of(logs, "stdout") == "one\ntwo\n" and text_of(logs, "stderr") == "oops\n"
    assert [e["seq"] for e in logs] == list(range(1, len(logs) + 1))
    res = evs[-1]
    assert res["type"] == "result" and res["status"] == 200
    # every field of the plain answer, with the same values
    plain = httpx.post(srv.url + "/run", json=body, timeout=120).json()
    assert set(res) - {"type", "status"} == set(plain)
    assert res["exec_id"] == evs[0]["exec_id"]
    assert (res["exit_code"], res["stdout"], res["stderr"], res["timed_out"]) == \
        (0, "one\ntwo\n", "oops\n", False)
    assert res["wall_ms"] >= 300
    # base64
    evs = run_stream(srv, {"image": BUSYBOX, "cmd": ["printf", "\\377\\000a"],
                           "encoding": "base64"})
    got = b"".join(base64.b64decode(e["data"]) for e in evs if e["type"] == "log")
    assert got == b"\xff\x00a"


def test_run_stream_timeout_and_output_limit(srv):
    evs = run_stream(srv, {"image": BUSYBOX, "cmd": ["sh", "-c", "echo before; sleep 30"],
                           "limits": {"wall_clock_secs": 1}})
    assert evs[0]["type"] == "start"
    assert text_of([e for e in evs if e["type"] == "log"], "stdout") == "before\n"
    res = evs[-1]
    assert res["type"] == "result" and res["status"] == 408 and res["timed_out"] is True
    assert res["error"] == "wall clock limit exceeded" and res["stdout"] == "before\n"


def run_dir_gone(srv, exec_id, secs=30):
    """The run's directory goes in the teardown after the answer (issue
    16), a moment after the end: poll for it."""
    run_dir = os.path.join(srv.home, "runs", exec_id)
    deadline = time.time() + secs * H.SLOW
    while time.time() < deadline and os.path.exists(run_dir):
        time.sleep(0.1)
    return not os.path.exists(run_dir)


def test_run_stream_output_limit(srv):
    """Over output_limit_bytes: the stream ends with a 507 result (the status
    line is already 200), in the plain answer's shape, and the run is gone."""
    body = {"image": BUSYBOX, "cmd": ["sh", "-c", "echo before >&2; yes xxxxxxxxxxxxxxx"],
            "limits": {"wall_clock_secs": 60}}
    evs = run_stream(srv, body)
    assert evs[0]["type"] == "start"
    assert [e["type"] for e in evs[1:-1]] == ["log"] * (len(evs) - 2)
    logs = evs[1:-1]
    assert [e["seq"] for e in logs] == list(range(1, len(logs) + 1))
    out = text_of(logs, "stdout")
    # the log shows what the limit let through plus the read that crossed
    # it (64 KiB pieces), nothing read after: all of it "yes" lines
    assert OUTPUT_LIMIT <= len(out) <= OUTPUT_LIMIT + 65536, len(out)
    assert set(out) == {"x", "\n"}
    assert text_of(logs, "stderr") == "before\n"
    res = evs[-1]
    plain = httpx.post(srv.url + "/run", json=body, timeout=120)
    assert plain.status_code == 507, plain.text
    assert res == dict(plain.json(), type="result", status=507,
                       exec_id=evs[0]["exec_id"]), res
    assert res["error"] == "stdout or stderr exceeded output_limit_bytes"
    assert run_dir_gone(srv, res["exec_id"])
    assert not any(res["exec_id"] in str(p) for p in boxer_server.leftover_processes(srv.home))


def test_run_stream_client_gone_cancels(srv):
    """A streamed run whose client leaves is killed and cleaned up."""
    sock = socket.create_connection(("127.0.0.1", srv.port))
    body = json.dumps({"image": BUSYBOX, "cmd": ["sh", "-c", "echo up; sleep 60"],
                       "stream": True}).encode()
    sock.sendall(b"POST /run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    buf = b""
    sock.settimeout(60)
    while b'"type":"log"' not in buf:
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk
    exec_id = json.loads(buf[buf.index(b'{"type":"start"'):].split(b"\n")[0])["exec_id"]
    assert boxer_server.leftover_processes(srv.home) != []
    sock.close()
    deadline = time.time() + 30
    while time.time() < deadline and any(exec_id in p for p in
                                         map(str, boxer_server.leftover_processes(srv.home))):
        time.sleep(0.1)
    assert not any(exec_id in str(p) for p in boxer_server.leftover_processes(srv.home))
    assert run_dir_gone(srv, exec_id)


def raw_request(srv, head):
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.settimeout(30 * H.SLOW)
    sock.sendall(head)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def test_events_over_http10_and_head(srv, box):
    eid = start_exec(srv, box, ["sh", "-c", "echo ten"])
    wait_exec(srv, box, eid)
    path = b"/v1/boxes/%s/exec/%s/events" % (box.encode(), eid.encode())
    # HTTP/1.0 knows no chunks: the raw events, ended by the close
    data = raw_request(srv, b"GET " + path + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding" not in head
    assert b"Content-Length" not in head and b"Connection: close" in head
    events = list(sse_events(body.decode().split("\n")[:-1]))
    assert check_sse_exit(events, 0)[0]["data"] == "ten\n"
    # HEAD: the head of the stream, no body
    data = raw_request(srv, b"HEAD " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Connection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n")
    assert b"text/event-stream" in data


def test_streams_wait_for_the_answer_buffer(make_server):
    """answer_buffer_max_bytes at its floor holds two 32 KiB pieces: four
    streams at once take turns (waiting, not failing), each byte-exact."""
    import threading
    s = make_server(config={"answer_buffer_max_bytes": 65536})
    try:
        r = api(s, "POST", "/v1/boxes", json={"image": BUSYBOX})
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        size = 2 << 20
        results = {}

        def one(i):
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60 * H.SLOW)
            conn.request("POST", "/v1/boxes/%s/exec" % bid, headers={"Content-Type": "application/json"},
                         body=json.dumps({"cmd": ["sh", "-c", "head -c %d /dev/urandom | tee /tmp/o%d" % (size, i)],
                                          "stream": True, "encoding": "base64"}))
            resp = conn.getresponse()
            got, last = b"", None
            for line in resp:
                ev = json.loads(line)
                if ev["type"] == "log":
                    got += base64.b64decode(ev["data"])
                last = ev
            conn.close()
            results[i] = (got, last)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * H.SLOW)
        assert len(results) == 4
        for i, (got, last) in results.items():
            assert last["type"] == "exit" and last["exit_code"] == 0, last
            assert len(got) == size
            r = api(s, "POST", "/v1/boxes/%s/files/download" % bid, json={"path": "/tmp/o%d" % i})
            assert r.status_code == 200 and r.content == got
        assert api(s, "DELETE", "/v1/boxes/%s?force=true" % bid).status_code == 204
        assert s.stop() == 0
        assert boxer_server.leftover_processes(s.home) == []
        assert boxer_server.leftover_mounts(s.home) == []
    finally:
        boxer_server.unmount_under(s.home)
