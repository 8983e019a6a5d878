"""run(..., stream=True), stdin= on exec_stream and BoxRun's
run(image, cmd, timeout_ms=..., user=...) (POST /v1/run) against a live
server, sync and async.  Needs a server with streamed /run and /v1/run (issues 13, 14)."""

from __future__ import annotations

import time
import uuid
from typing import Iterator, Tuple

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT, make_async_client

from boxer import BoxerClient, BoxerTimeoutError, BoxHandle, ExecEvent, InvalidRequestError, ResourceLimits

pytestmark = pytest.mark.integration

SCRIPT = "echo one; sleep 0.5; echo two >&2; exit 3"


@pytest.fixture(scope="module")
def client(boxer_url: str) -> Iterator[BoxerClient]:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        yield c


def test_run_stream_sync(client: BoxerClient) -> None:
    t0 = time.monotonic()
    seen = [(time.monotonic() - t0, e) for e in client.run(BUSYBOX_IMAGE, ["sh", "-c", SCRIPT],
                                                             stream=True)]
    events = [e for _, e in seen]
    assert [(e.type, e.stream, e.data) for e in events[:2]] == [
        ("log", "stdout", "one\n"), ("log", "stderr", "two\n")]
    assert [e.type for e in events] == ["log", "log", "result"]
    assert events[1].seq == events[0].seq + 1
    res = events[-1].result
    assert res is not None and events[-1].exit_code == 3
    assert (res.exit_code, res.stdout, res.stderr, res.timed_out) == (3, "one\n", "two\n", False)
    assert all(e.exec_id == res.exec_id for e in events) and res.exec_id.startswith("boxer-")
    # live: the first line came before the sleep ended
    assert seen[1][0] - seen[0][0] >= 0.3, seen
    # stdin, and a timeout raised after the output it let through
    events = list(client.run(BUSYBOX_IMAGE, ["cat"], stdin="fed\n", stream=True))
    assert events[0].data == "fed\n" and events[-1].result is not None
    got = []
    with pytest.raises(BoxerTimeoutError) as info:
        for e in client.run(BUSYBOX_IMAGE, ["sh", "-c", "echo before; sleep 30"], stream=True,
                            limits=ResourceLimits(wall_clock_secs=1)):
            got.append(e.data)
    assert got == ["before\n"] and info.value.stdout == "before\n"


def test_exec_stream_stdin(boxer_url: str, client: BoxerClient) -> None:
    box: BoxHandle = client.create(BUSYBOX_IMAGE, name=f"sdk-rs-{uuid.uuid4().hex[:8]}", memory_mb=128)
    try:
        events = list(box.exec_stream(["sh", "-c", "cat; echo done >&2"], stdin="a\nb\n"))
        assert [(e.stream, e.data) for e in events if e.type == "log"] == [
            ("stdout", "a\nb\n"), ("stderr", "done\n")]
        assert events[-1].type == "exit" and events[-1].exit_code == 0
        out = "".join(e.data for e in box.exec_stream(["wc", "-c"], stdin=b"\x00\xff" * 50_000)
                      if e.type == "log")
        assert out.strip() == "100000"
    finally:
        box.remove(force=True)


def test_run_boxrun_form_sync(client: BoxerClient) -> None:
    r = client.run(BUSYBOX_IMAGE, ["sh", "-c", 'echo "$A"; cat'], env={"A": "b"}, stdin="in\n",
                   timeout_ms=30_000)
    assert (r.exit_code, r.stdout, r.stderr, r.error_message) == (0, "b\nin\n", "", None)
    assert r.exec_id and r.timed_out is False
    r = client.run(BUSYBOX_IMAGE, ["sh", "-c", "echo s; sleep 30"], timeout_ms=700)
    assert (r.exit_code, r.stdout, r.timed_out) == (137, "s\n", True)
    assert r.error_message is not None and "timed out" in r.error_message


ID_SCRIPT = ["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"]


def _ids(stdout: str) -> Tuple[str, str, str]:
    uid, gid, cap = stdout.split("\n")[:3]
    return uid, gid, cap.split()[1]


def test_run_boxrun_form_user_sync(client: BoxerClient) -> None:
    """user= on BoxRun's run: that uid:gid without capabilities; without
    it the run stays root with a box's capabilities (not /run's 65534)."""
    r = client.run(BUSYBOX_IMAGE, ID_SCRIPT, user="1000:1000")
    assert r.exit_code == 0, r
    assert _ids(r.stdout) == ("1000", "1000", "0000000000000000"), r.stdout
    r = client.run(BUSYBOX_IMAGE, ["sh", "-c", "id -u; id -g"], user="7")
    assert (r.exit_code, r.stdout) == (0, "7\n7\n"), r
    r = client.run(BUSYBOX_IMAGE, ID_SCRIPT, timeout_ms=30_000)
    uid, gid, cap = _ids(r.stdout)
    assert (r.exit_code, uid, gid) == (0, "0", "0") and int(cap, 16) != 0, r
    with pytest.raises(InvalidRequestError, match="user"):
        client.run(BUSYBOX_IMAGE, ["true"], user="root")


@pytest.mark.asyncio
async def test_run_boxrun_form_user_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        r = await c.run(BUSYBOX_IMAGE, ID_SCRIPT, user="1000:1001")
        assert r.exit_code == 0, r
        assert _ids(r.stdout) == ("1000", "1001", "0000000000000000"), r.stdout
        r = await c.run(BUSYBOX_IMAGE, ["sh", "-c", "id -u; id -g"], timeout_ms=30_000)
        assert (r.exit_code, r.stdout) == (0, "0\n0\n"), r


@pytest.mark.asyncio
async def test_run_stream_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        events = [e async for e in c.run(BUSYBOX_IMAGE, ["sh", "-c", SCRIPT], stream=True)]
        assert [e.type for e in events] == ["log", "log", "result"]
        res = events[-1].result
        assert res is not None and (res.exit_code, res.stdout) == (3, "one\n")
        assert (await c.run(BUSYBOX_IMAGE, ["cat"], stdin="plain\n")).stdout == "plain\n"
        r = await c.run(BUSYBOX_IMAGE, ["cat"], stdin=b"v1\n", timeout_ms=30_000)
        assert (r.stdout, r.error_message) == ("v1\n", None)
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            got = [e.data async for e in box.exec_stream(["cat"], stdin="x\n") if e.type == "log"]
            assert got == ["x\n"]
        finally:
            await box.remove(force=True)


# ---- encoding="base64": the output's exact bytes ----

# Bytes that are not UTF-8 (and a NUL, a CR and a split multi-byte
# character): with the default encoding the server replaces what is not
# UTF-8; with base64 they arrive exactly.
ODD = b"\x00\xff\xfe bin \r\n \xe2\x82" + bytes(range(256))
ODD_SCRIPT = ["sh", "-c", "cat; printf '\\377e' >&2"]


def _raw(events: "list[ExecEvent]", stream: str) -> bytes:
    out = b""
    for e in events:
        if e.type == "log" and e.stream == stream:
            assert isinstance(e.raw, bytes)
            assert e.data == e.raw.decode("utf-8", "replace")
            out += e.raw
    return out


def test_encoding_base64_sync(client: BoxerClient) -> None:
    events = list(client.run(BUSYBOX_IMAGE, ODD_SCRIPT, stdin=ODD, stream=True, encoding="base64"))
    assert _raw(events, "stdout") == ODD and _raw(events, "stderr") == b"\xffe"
    assert events[-1].type == "result" and events[-1].exit_code == 0
    # the default keeps text (and no raw)
    events = list(client.run(BUSYBOX_IMAGE, ["echo", "hi"], stream=True))
    assert events[0].data == "hi\n" and events[0].raw is None
    box = client.create(BUSYBOX_IMAGE, memory_mb=128)
    try:
        events = list(box.exec_stream(ODD_SCRIPT, stdin=ODD, encoding="base64"))
        assert _raw(events, "stdout") == ODD and _raw(events, "stderr") == b"\xffe"
        assert events[-1].type == "exit" and events[-1].exit_code == 0
        text = list(box.exec_stream(["printf", "\\377x"]))
        assert text[0].raw is None and text[0].data == "\ufffdx"
        with pytest.raises(ValueError):
            box.exec_stream(["true"], encoding="latin-1")
    finally:
        box.remove(force=True)
    with pytest.raises(ValueError):
        client.run(BUSYBOX_IMAGE, ["true"], encoding="base64")  # only with stream=True


@pytest.mark.asyncio
async def test_encoding_base64_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        events = [e async for e in c.run(BUSYBOX_IMAGE, ODD_SCRIPT, stdin=ODD, stream=True,
                                               encoding="base64")]
        assert _raw(events, "stdout") == ODD and _raw(events, "stderr") == b"\xffe"
        assert events[-1].result is not None and events[-1].result.exit_code == 0
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            events = [e async for e in box.exec_stream(ODD_SCRIPT, stdin=ODD,
                                                             encoding="base64")]
            assert _raw(events, "stdout") == ODD and _raw(events, "stderr") == b"\xffe"
            assert events[-1].exit_code == 0
        finally:
            await box.remove(force=True)
