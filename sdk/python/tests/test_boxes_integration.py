"""Boxes (/v1) through the SDK against a live server, sync and async: every
call of BoxRun's surface, the error classes of the codes, and the Unix
socket (explicit unix:// URL and discovery of ~/.boxer/boxer.sock).

One box per client flavour is shared by the module where a test allows it;
the lifecycle tests (stop/start/remove/gc) make their own."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT, make_async_client

import boxer
from boxer import (
    AsyncBoxerClient,
    BoxAlreadyRunningError,
    BoxerAPIError,
    BoxerClient,
    BoxerFileNotFoundError,
    BoxHandle,
    BoxInfo,
    BoxNotFoundError,
    BoxNotRunningError,
    BoxRunError,
    ExecInfo,
    InvalidRequestError,
    NameAlreadyExistsError,
    ResourceExceededError,
)

pytestmark = pytest.mark.integration

# Small boxes: the tests share the host with others.
MEM = 128


def gc_until_removed(c: BoxerClient) -> int:
    """gc(older_than=0) counts whole seconds since the stop: poll until the
    box stopped in this second qualifies."""
    deadline = time.monotonic() + 10
    while True:
        n = c.gc(older_than=0)
        if n or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


async def agc_until_removed(c: AsyncBoxerClient) -> int:
    deadline = time.monotonic() + 10
    while True:
        n = await c.gc(older_than=0)
        if n or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.2)


def unique(prefix: str) -> str:
    return f"sdk-{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def shared_box(boxer_url: str) -> Iterator[Tuple[BoxerClient, BoxHandle]]:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, name=unique("shared"), memory_mb=MEM, env={"GREETING": "hello"})
        try:
            yield c, box
        finally:
            box.remove(force=True)


# ---- sync ----


def test_create_returns_running_box_with_boxrun_fields(shared_box: Tuple[BoxerClient, BoxHandle]) -> None:
    c, box = shared_box
    info = box.info
    assert isinstance(info, BoxInfo)
    assert info.id.startswith("box_") and box.id == info.id
    assert info.name is not None and info.name.startswith("sdk-shared-") and box.name == info.name
    assert info.status == "running"
    assert info.image == BUSYBOX_IMAGE and info.memory_mb == MEM
    assert info.workdir == "/root" and info.network is False
    assert info.env == {"GREETING": "hello"}
    assert info.created_at.endswith("Z") and info.started_at is not None and info.stopped_at is None
    assert info.image_digest is None  # Boxer's fields only when asked
    extra = c.get_box(box.id, extra=True)
    assert extra.image_digest is not None and extra.image_digest.startswith("sha256:")
    by_name = c.get_box(info.name)
    assert by_name.id == info.id
    assert info.id in [b.id for b in c.list_boxes()]
    assert info.id in [b.id for b in c.list_boxes(status="running")]
    assert info.id not in [b.id for b in c.list_boxes(status="stopped")]
    assert c.box(info.name).id == info.id
    assert box.refresh().status == "running"


def test_exec_returns_output_in_one_request(shared_box: Tuple[BoxerClient, BoxHandle]) -> None:
    _, box = shared_box
    r = box.exec(["sh", "-c", 'echo "$GREETING $EXTRA"; pwd; echo err >&2'], env={"EXTRA": "world"})
    assert isinstance(r, ExecInfo)
    assert r.id.startswith("exec_") and r.box_id == box.id
    assert (r.status, r.exit_code, r.ok) == ("succeeded", 0, True)
    assert r.stdout == "hello world\n/root\n" and r.stderr == "err\n"
    assert r.cmd == ["sh", "-c", 'echo "$GREETING $EXTRA"; pwd; echo err >&2']
    assert r.finished_at is not None and r.wall_ms is not None and r.truncated is False
    failed = box.exec(["sh", "-c", "exit 3"], workdir="/tmp")
    assert (failed.status, failed.exit_code, failed.ok) == ("failed", 3, False)
    slow = box.exec(["sleep", "30"], timeout_ms=300)
    assert slow.status == "failed" and slow.timed_out is True
    again = box.get_exec(r.id)
    assert again.stdout == r.stdout and again.status == "succeeded"
    ids = [e.id for e in box.list_execs()]
    assert r.id in ids and failed.id in ids


def test_upload_and_download(shared_box: Tuple[BoxerClient, BoxHandle], tmp_path: Path) -> None:
    _, box = shared_box
    src = tmp_path / "in.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)
    box.upload(src, "/root/in.bin")
    assert box.exec(["sh", "-c", "wc -c < /root/in.bin"]).stdout == "300000\n"
    dst = tmp_path / "out.bin"
    box.download("/root/in.bin", dst)
    assert dst.read_bytes() == payload
    box.upload_bytes(b"small\n", "/tmp/small.txt")
    assert box.download_bytes("/tmp/small.txt") == b"small\n"
    with pytest.raises(BoxerFileNotFoundError) as info:
        box.download("/root/missing", tmp_path / "missing")
    assert info.value.code == "FILE_NOT_FOUND" and info.value.status == 404
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ValueError):
        box.upload(src, "relative/path")


def test_errors_carry_status_code_message(shared_box: Tuple[BoxerClient, BoxHandle]) -> None:
    c, box = shared_box
    with pytest.raises(BoxNotFoundError) as nf:
        c.get_box("no-such-box-" + uuid.uuid4().hex[:6])
    assert (nf.value.status, nf.value.code) == (404, "BOX_NOT_FOUND") and nf.value.message
    with pytest.raises(NameAlreadyExistsError) as dup:
        c.create(BUSYBOX_IMAGE, name=box.name, memory_mb=MEM)
    assert dup.value.status == 409
    with pytest.raises(BoxAlreadyRunningError):
        box.remove()
    with pytest.raises(InvalidRequestError) as bad:
        c.create(BUSYBOX_IMAGE, name="Not Valid!", memory_mb=MEM)
    assert bad.value.status == 400 and "name" in bad.value.message
    with pytest.raises(ResourceExceededError) as big:
        c.create(BUSYBOX_IMAGE, cpu=100000)
    assert big.value.code == "RESOURCE_EXCEEDED"
    # BoxRun's spelling of the base class catches them all.
    with pytest.raises(BoxRunError):
        c.get_box("no-such-box")
    assert issubclass(BoxNotFoundError, BoxerAPIError)


def test_lifecycle_stop_start_remove_gc(boxer_url: str) -> None:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, name=unique("life"), memory_mb=MEM)
        try:
            box.exec(["sh", "-c", "echo kept > /root/f"])
            stopped = box.stop()
            assert stopped.status == "stopped" and box.info.status == "stopped"
            assert stopped.stopped_at is not None
            assert box.id in [b.id for b in c.list_boxes(status="stopped")]
            with pytest.raises(BoxNotRunningError):
                box.exec(["true"])
            assert box.start().status == "running"
            assert box.exec(["cat", "/root/f"]).stdout == "kept\n"
            box.stop()
            assert c.gc(older_than=3600) == 0  # stopped just now: kept
            assert c.get_box(box.id).status == "stopped"
            assert gc_until_removed(c) >= 1
            with pytest.raises(BoxNotFoundError):
                box.refresh()
        finally:
            try:
                box.remove(force=True)
            except BoxNotFoundError:
                pass
        other = c.create(BUSYBOX_IMAGE, memory_mb=MEM)
        other.remove(force=True)
        with pytest.raises(BoxNotFoundError):
            c.get_box(other.id)


# ---- async ----


def test_create_with_user(boxer_url: str) -> None:
    """create(user=): every exec of the box runs as that uid:gid; BoxInfo
    says so only with extra=True."""
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, memory_mb=MEM, user="1000:1001")
        try:
            assert box.info.user is None
            assert c.get_box(box.id, extra=True).user == "1000:1001"
            assert box.exec(["sh", "-c", "id -u; id -g"]).stdout == "1000\n1001\n"
        finally:
            box.remove(force=True)
        with pytest.raises(InvalidRequestError):
            c.create(BUSYBOX_IMAGE, memory_mb=MEM, user="nobody")


@pytest.mark.asyncio
async def test_async_create_with_user(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=MEM, user="1000")
        try:
            assert (await c.get_box(box.id, extra=True)).user == "1000:1000"
            assert (await box.exec(["id", "-u"])).stdout == "1000\n"
        finally:
            await box.remove(force=True)


@pytest.mark.asyncio
async def test_async_boxes_every_call(boxer_url: str, tmp_path: Path) -> None:
    async with make_async_client(boxer_url) as c:
        box = await c.create(BUSYBOX_IMAGE, name=unique("async"), memory_mb=MEM, env={"A": "1"},
                             workdir="/tmp")
        assert isinstance(box, boxer.AsyncBoxHandle)
        try:
            assert box.info.status == "running" and box.info.workdir == "/tmp"
            assert (await c.get_box(box.name or "")).id == box.id
            assert box.id in [b.id for b in await c.list_boxes(status="running")]
            assert (await c.box(box.id)).name == box.name
            r = await box.exec(["sh", "-c", 'echo "$A" $B; pwd'], env={"B": "2"})
            assert (r.status, r.exit_code, r.stdout, r.stderr) == ("succeeded", 0, "1 2\n/tmp\n", "")
            assert (await box.get_exec(r.id)).stdout == r.stdout
            assert r.id in [e.id for e in await box.list_execs()]
            # Two execs at once on one box, one client.
            a, b = await asyncio.gather(box.exec(["echo", "a"]), box.exec(["echo", "b"]))
            assert (a.stdout, b.stdout) == ("a\n", "b\n")
            src = tmp_path / "f.txt"
            src.write_bytes(b"async upload\n")
            await box.upload(src, "/root/f.txt")
            await box.upload_bytes(b"bytes\n", "/tmp/g.txt")
            await box.download("/root/f.txt", tmp_path / "back.txt")
            assert (tmp_path / "back.txt").read_bytes() == b"async upload\n"
            assert await box.download_bytes("/tmp/g.txt") == b"bytes\n"
            with pytest.raises(BoxerFileNotFoundError):
                await box.download("/tmp/none", tmp_path / "none")
            assert not (tmp_path / "none").exists()
            with pytest.raises(BoxAlreadyRunningError):
                await box.remove()
            assert (await box.stop()).status == "stopped"
            with pytest.raises(BoxNotRunningError):
                await box.exec(["true"])
            assert (await box.start()).status == "running"
            assert (await box.refresh(extra=True)).image_digest is not None
            # The disk is kept across stop/start (/tmp is a tmpfs, /root is not).
            assert (await box.exec(["cat", "/root/f.txt"])).stdout == "async upload\n"
            await box.stop()
            assert await c.gc(older_than=3600) == 0
            assert await agc_until_removed(c) >= 1
            with pytest.raises(BoxNotFoundError) as nf:
                await c.get_box(box.id)
            assert (nf.value.status, nf.value.code) == (404, "BOX_NOT_FOUND")
        finally:
            try:
                await box.remove(force=True)
            except BoxNotFoundError:
                pass
        with pytest.raises(NameAlreadyExistsError):
            first = await c.create(BUSYBOX_IMAGE, name=unique("dup"), memory_mb=MEM)
            try:
                await c.create(BUSYBOX_IMAGE, name=first.name, memory_mb=MEM)
            finally:
                await first.remove(force=True)


# ---- the Unix socket ----


@pytest.fixture(scope="module")
def unix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server that also listens on a Unix socket; yields its path."""
    helper_dir = Path(__file__).resolve().parents[3] / "tests" / "integration"
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))
    import boxer_server  # type: ignore

    # sun_path holds 107 bytes: a short directory of its own.
    sockdir = tempfile.mkdtemp(prefix="bxs-", dir="/tmp")
    sock = os.path.join(sockdir, "boxer.sock")
    _, stop = boxer_server.start_server(tmp_path_factory.mktemp("unix-server"), config={"listen_unix": sock})
    try:
        yield sock
    finally:
        stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_unix_url_sync(unix_server: str) -> None:
    with BoxerClient("unix://" + unix_server, run_timeout=TEST_RUN_TIMEOUT) as c:
        assert c.base_url == "unix://" + unix_server
        assert c.health() is True
        r = c.run(BUSYBOX_IMAGE, ["echo", "over the socket"])
        assert r.stdout == "over the socket\n"
        box = c.create(BUSYBOX_IMAGE, memory_mb=MEM)
        try:
            assert box.exec(["echo", "box"]).stdout == "box\n"
        finally:
            box.remove(force=True)


@pytest.mark.asyncio
async def test_unix_url_async(unix_server: str) -> None:
    async with AsyncBoxerClient("unix://" + unix_server, run_timeout=TEST_RUN_TIMEOUT) as c:
        assert await c.health() is True
        r = await c.run(BUSYBOX_IMAGE, ["echo", "async socket"])
        assert r.stdout == "async socket\n"
        assert isinstance(await c.list_boxes(), list)


def test_attach_over_unix_socket_sync(unix_server: str) -> None:
    """The terminal's WebSocket over the Unix socket: a shell and a command."""
    with BoxerClient("unix://" + unix_server, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = c.create(BUSYBOX_IMAGE, memory_mb=MEM)
        try:
            with box.attach(shell="/bin/sh", cols=81, rows=21) as t:
                t.send("stty size; echo UN''IX\n")
                assert b"21 81" in t.read_until("UNIX\r\n", timeout=20)
                t.send("exit 2\n")
                while t.recv(timeout=20):
                    pass
                assert t.exit_code == 2
            with box.attach(cmd=["sh", "-c", "read x; echo got-$x; exit 9"]) as t:
                t.send("typed\n")
                assert b"got-typed" in t.read_until("got-typed", timeout=20)
                while t.recv(timeout=20):
                    pass
                assert t.exit_code == 9
        finally:
            box.remove(force=True)


@pytest.mark.asyncio
async def test_attach_over_unix_socket_async(unix_server: str) -> None:
    async with AsyncBoxerClient("unix://" + unix_server, run_timeout=TEST_RUN_TIMEOUT) as c:
        box = await c.create(BUSYBOX_IMAGE, memory_mb=MEM)
        try:
            async with await box.attach(cmd=["sh", "-c", "stty size; read x; exit $x"],
                                        cols=77, rows=17) as t:
                assert b"17 77" in await t.read_until(b"17 77", timeout=20)
                await t.send(b"5\n")
                while await t.recv(timeout=20):
                    pass
                assert t.exit_code == 5
        finally:
            await box.remove(force=True)


def test_default_socket_discovery(unix_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without BOXER_URL the client uses ~/.boxer/boxer.sock when it exists
    (here a symlink to the test server's socket)."""
    monkeypatch.delenv("BOXER_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".boxer").mkdir()
    os.symlink(unix_server, tmp_path / ".boxer" / "boxer.sock")
    with BoxerClient() as c:
        assert c.base_url == "unix://" + str(tmp_path / ".boxer" / "boxer.sock")
        assert c.health() is True
    os.unlink(tmp_path / ".boxer" / "boxer.sock")
    with BoxerClient() as c:
        assert c.base_url == "http://127.0.0.1:8080"


def test_token_over_unix_socket(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    helper_dir = Path(__file__).resolve().parents[3] / "tests" / "integration"
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))
    import boxer_server  # type: ignore

    sockdir = tempfile.mkdtemp(prefix="bxt-", dir="/tmp")
    sock = os.path.join(sockdir, "boxer.sock")
    _, stop = boxer_server.start_server(tmp_path_factory.mktemp("token-server"), with_registry=False,
                                        config={"listen_unix": sock, "auth_tokens": ["tok-1"]})
    try:
        monkeypatch.delenv("BOXER_TOKEN", raising=False)
        with BoxerClient("unix://" + sock) as c:
            with pytest.raises(BoxerAPIError) as info:
                c.list_boxes()
            assert info.value.status == 401
        monkeypatch.setenv("BOXER_TOKEN", "tok-1")
        with BoxerClient("unix://" + sock) as c:
            assert c.list_boxes() == []
    finally:
        stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_info_and_node_sync_and_async(shared_box: Tuple[BoxerClient, BoxHandle], boxer_url: str) -> None:
    client, _ = shared_box
    info = client.info()
    assert info["max_cpu"] > 0 and info["max_memory_mb"] > 0 and info["node_id"]
    node = client.node()
    assert node["version"] == info["version"] and "samples" in node

    async def both() -> Tuple[dict, dict]:
        async with make_async_client(boxer_url) as ac:
            return await ac.info(), await ac.node()

    ainfo, anode = asyncio.run(both())
    assert ainfo["node_id"] == info["node_id"] and anode["version"] == node["version"]
