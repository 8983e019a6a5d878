"""Input and control of execs against a live server (sync and async):
``stdin=`` on run/exec, ``start_exec(stdin_open=True)`` with
``write_stdin``, ``cancel`` and ``signal``.  Needs a server with exec input
(issue 14: stdin, :cancel, /signal)."""

from __future__ import annotations

import time
import uuid
from typing import Iterator, Tuple

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT, make_async_client

from boxer import (
    AsyncBoxHandle,
    BoxerClient,
    BoxHandle,
    ExecAlreadyFinishedError,
    ExecInfo,
    StdinClosedError,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def input_box(boxer_url: str) -> Iterator[Tuple[BoxerClient, BoxHandle]]:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, name=f"sdk-input-{uuid.uuid4().hex[:8]}", memory_mb=128)
        try:
            yield c, box
        finally:
            box.remove(force=True)


def wait_done(box: BoxHandle, exec_id: str) -> ExecInfo:
    deadline = time.monotonic() + 60
    while True:
        info = box.get_exec(exec_id)
        if info.status != "running" or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


async def await_done(box: AsyncBoxHandle, exec_id: str) -> ExecInfo:
    import asyncio

    deadline = time.monotonic() + 60
    while True:
        info = await box.get_exec(exec_id)
        if info.status != "running" or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.05)


def test_stdin_on_run_and_exec(input_box: Tuple[BoxerClient, BoxHandle]) -> None:
    c, box = input_box
    assert c.run(BUSYBOX_IMAGE, ["cat"], stdin="to run\n").stdout == "to run\n"
    r = c.run(BUSYBOX_IMAGE, ["sh", "-c", "od -An -tx1 | tr -d ' \\n'"], stdin=b"\x00\xff\x10")
    assert r.stdout == "00ff10"
    assert box.exec(["wc", "-c"], stdin=b"x" * 100_000).stdout.strip() == "100000"  # type: ignore[union-attr]
    assert box.exec(["cat"], stdin="café\n").stdout == "café\n"


def test_interactive_stdin(input_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = input_box
    e = box.start_exec(["sh", "-c", "while read l; do echo got:$l; done; echo end"], stdin="a\n", stdin_open=True)
    assert e.status == "running"
    assert box.write_stdin(e.id, "b\n") == 4
    # A retried write with the offset it started at is taken once.
    assert box.write_stdin(e.id, "b\n", offset=2) == 4
    assert box.write_stdin(e.id, b"c\n", eof=True) == 6
    done = wait_done(box, e.id)
    assert (done.status, done.stdout) == ("succeeded", "got:a\ngot:b\ngot:c\nend\n")
    with pytest.raises((StdinClosedError, ExecAlreadyFinishedError)):
        box.write_stdin(e.id, "late")


def test_cancel_and_signal(input_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = input_box
    e = box.start_exec(["sleep", "60"])
    canceled = box.cancel(e.id)
    assert canceled.status == "canceled"
    assert wait_done(box, e.id).status == "canceled"
    with pytest.raises(ExecAlreadyFinishedError):
        box.cancel(e.id)
    script = "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.1; done"
    e = box.start_exec(["sh", "-c", script])
    deadline = time.monotonic() + 30
    while box.get_exec(e.id).stdout != "ready\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    box.signal(e.id, "INT")
    done = wait_done(box, e.id)
    assert (done.exit_code, done.stdout) == (5, "ready\ngot INT\n")


@pytest.mark.asyncio
async def test_input_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        assert (await c.run(BUSYBOX_IMAGE, ["cat"], stdin="async\n")).stdout == "async\n"
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            assert (await box.exec(["cat"], stdin=b"in\n")).stdout == "in\n"
            e = await box.start_exec(["cat"], stdin_open=True)
            assert await box.write_stdin(e.id, "x\n", eof=True) == 2
            assert (await await_done(box, e.id)).stdout == "x\n"
            e = await box.start_exec(["sleep", "60"])
            await box.signal(e.id, "TERM")
            done = await await_done(box, e.id)
            assert done.status == "failed" and done.exit_code == 143
            e = await box.start_exec(["sleep", "60"])
            assert (await box.cancel(e.id)).status == "canceled"
        finally:
            await box.remove(force=True)
