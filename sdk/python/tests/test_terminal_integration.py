"""box.attach(): a shell on a terminal in a box over the WebSocket
/v1/boxes/{id}/attach, sync and async.  Needs a server with terminals
(issue 14)."""

from __future__ import annotations

import uuid
from typing import Iterator, Tuple

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT, make_async_client

from boxer import BoxerClient, BoxHandle, BoxNotFoundError, BoxNotRunningError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def term_box(boxer_url: str) -> Iterator[Tuple[BoxerClient, BoxHandle]]:
    with BoxerClient(boxer_url, timeout=30, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, name=f"sdk-term-{uuid.uuid4().hex[:8]}", memory_mb=128)
        try:
            yield c, box
        finally:
            box.remove(force=True)


def test_attach_shell_size_resize_exit(term_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = term_box
    with box.attach(shell="/bin/sh", cols=100, rows=30) as t:
        # The terminal echoes the input line: the markers are built by the shell.
        t.send("stty size; echo $TERM; echo MA''RK1\n")
        out = t.read_until("MARK1\r\n", timeout=20)
        assert b"30 100" in out and b"xterm-256color" in out
        t.resize(120, 40)
        t.send("stty size; echo MA''RK2\n")
        assert b"40 120" in t.read_until("MARK2\r\n", timeout=20)
        t.send("exit 7\n")
        while t.recv(timeout=20):
            pass
        assert t.closed and t.exit_code == 7


def test_attach_errors(term_box: Tuple[BoxerClient, BoxHandle], boxer_url: str) -> None:
    c, box = term_box
    with pytest.raises(ValueError):
        box.attach(cols=0)
    ghost = BoxHandle(c, box.info)
    ghost.info = c.get_box(box.id)
    ghost.info.id = "box_doesnotexist"
    with pytest.raises(BoxNotFoundError):
        ghost.attach()


@pytest.mark.asyncio
async def test_attach_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            async with await box.attach(term="vt100", cols=90, rows=20) as t:
                await t.send(b"echo $TERM; stty size; echo DO''NE\n")
                out = await t.read_until(b"DONE\r\n", timeout=20)
                assert b"vt100" in out and b"20 90" in out
                await t.send("exit 3\n")
                while await t.recv(timeout=20):
                    pass
                assert t.exit_code == 3
            await box.stop()
            with pytest.raises(BoxNotRunningError):
                await box.attach()
        finally:
            await box.remove(force=True)


def test_attach_command_sync(term_box: Tuple[BoxerClient, BoxHandle]) -> None:
    """cmd= runs that argv on the terminal (no shell between), with env,
    workdir and user; typed input reaches it; its exit status comes back."""
    _, box = term_box
    script = 'stty size; echo "E=$K W=$(pwd) U=$(id -u):$(id -g) A=$0"; read x; echo "got:$x"; exit 4'
    with box.attach(cmd=["sh", "-c", script, "a b;$(c)&d"], env={"K": "v&w=1"},
                    workdir="/tmp", user="42:43", cols=70, rows=15) as t:
        out = t.read_until("A=a b;$(c)&d\r\n", timeout=20)
        assert b"15 70" in out and b"E=v&w=1 W=/tmp U=42:43" in out, out
        t.send("hello there\n")
        assert b"got:hello there" in t.read_until("got:hello there", timeout=20)
        while t.recv(timeout=20):
            pass
        assert t.closed and t.exit_code == 4
    with box.attach(cmd=["/no/such/program"]) as t:
        while t.recv(timeout=20):
            pass
        assert t.exit_code == 127
    with pytest.raises(ValueError):
        box.attach(shell="/bin/sh", cmd=["sh"])
    with pytest.raises(TypeError):
        box.attach(cmd="sh")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        box.attach(cmd=[])


@pytest.mark.asyncio
async def test_attach_command_async(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            async with await box.attach(cmd=["cat"], cols=50, rows=10) as t:
                await t.send(b"ping-1\n")
                # the terminal echoes the line, then cat writes it back
                out = await t.read_until(b"ping-1\r\nping-1\r\n", timeout=20)
                assert out.count(b"ping-1") == 2, out
                await t.send(b"\x04")  # ^D at a line start: cat reads EOF
                while await t.recv(timeout=20):
                    pass
                assert t.exit_code == 0
        finally:
            await box.remove(force=True)
