"""box.exec_stream() against a live server (sync and async): the NDJSON
stream of a box exec as BoxRun-shaped ExecEvents, arriving while the
command runs.  Needs a server with exec streaming (issue 14)."""

from __future__ import annotations

import time
import uuid
from typing import Iterator, Tuple

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT, make_async_client

from boxer import BoxerClient, BoxHandle, BoxNotFoundError

pytestmark = pytest.mark.integration

SCRIPT = "echo one; sleep 0.5; echo two >&2; exit 4"


@pytest.fixture(scope="module")
def stream_box(boxer_url: str) -> Iterator[Tuple[BoxerClient, BoxHandle]]:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, name=f"sdk-stream-{uuid.uuid4().hex[:8]}", memory_mb=128)
        try:
            yield c, box
        finally:
            box.remove(force=True)


def test_exec_stream_sync_live_events(stream_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = stream_box
    t0 = time.monotonic()
    seen = []
    for event in box.exec_stream(["sh", "-c", SCRIPT]):
        seen.append((time.monotonic() - t0, event))
    events = [e for _, e in seen]
    assert [e.type for e in events] == ["log", "log", "exit"]
    assert (events[0].stream, events[0].data) == ("stdout", "one\n")
    assert (events[1].stream, events[1].data) == ("stderr", "two\n")
    assert [e.seq for e in events] == [events[0].seq, events[0].seq + 1, events[0].seq + 2]
    last = events[-1]
    assert last.data == '{"exit_code": 4}' and last.stream is None
    assert (last.exit_code, last.status, last.timed_out) == (4, "failed", False)
    assert last.exec_id is not None and all(e.exec_id == last.exec_id for e in events)
    # Live: the first line came before the sleep ended, not with the exit.
    assert seen[2][0] - seen[0][0] >= 0.3, seen
    assert box.get_exec(last.exec_id).stdout == "one\n"


def test_exec_stream_sync_timeout_and_early_exit(stream_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = stream_box
    events = list(box.exec_stream(["sh", "-c", "echo s; sleep 30"], timeout_ms=500))
    assert events[0].data == "s\n"
    assert events[-1].type == "exit" and events[-1].timed_out is True
    # Leaving the loop early closes the stream; the box goes on serving.
    for event in box.exec_stream(["sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.2; done"]):
        assert event.data == "1\n"
        break
    assert box.exec(["echo", "still here"]).stdout == "still here\n"


@pytest.mark.asyncio
async def test_exec_stream_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            events = [e async for e in box.exec_stream(["sh", "-c", SCRIPT], env={"X": "y"})]
            assert [(e.type, e.stream, e.data) for e in events[:2]] == [
                ("log", "stdout", "one\n"), ("log", "stderr", "two\n")]
            assert events[-1].type == "exit" and events[-1].exit_code == 4
            got = [e.data async for e in box.exec_stream(["sh", "-c", 'echo "$X"'], env={"X": "y"})
                   if e.type == "log"]
            assert got == ["y\n"]
        finally:
            await box.remove(force=True)
        with pytest.raises(BoxNotFoundError):
            async for _ in box.exec_stream(["true"]):
                pass


def test_events_replay_and_after(stream_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = stream_box
    events = list(box.exec_stream(["sh", "-c", "echo a; echo b; echo c >&2"]))
    eid = events[0].exec_id
    assert eid is not None
    replay = list(box.events(eid))
    assert [(e.type, e.stream, e.data) for e in replay] == [(e.type, e.stream, e.data) for e in events]
    later = list(box.events(eid, after=events[0].seq))
    assert [(e.seq, e.data) for e in later] == [(e.seq, e.data) for e in events[1:]]
    assert later[-1].type == "exit" and later[-1].exit_code == 0


@pytest.mark.asyncio
async def test_events_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            first = [e async for e in box.exec_stream(["sh", "-c", "echo x; exit 2"])]
            eid = first[0].exec_id
            assert eid is not None
            replay = [e async for e in box.events(eid)]
            assert [e.data for e in replay] == [e.data for e in first]
            assert replay[-1].exit_code == 2
        finally:
            await box.remove(force=True)
