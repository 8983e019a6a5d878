"""Integration tests of AsyncBoxerClient against a live Boxer server: every
method and every error class, as in test_integration.py, plus concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from pathlib import Path

import pytest
from boxer_testutil import (
    BUSYBOX_IMAGE,
    LARGE_UPLOAD_BYTES,
    OUTPUT_LIMIT_BYTES,
    PYTHON_IMAGE,
    STREAMING_PEAK_LIMIT,
    OUTPUT_SCRIPT,
    MemoryProbe,
    closed_port_url,
    make_async_client,
    make_project,
    write_pseudorandom_file,
)

from boxer import (
    AsyncBoxerClient,
    BoxerAPIError,
    BoxerConnectionError,
    BoxerOutputLimitError,
    BoxerTimeoutError,
    ResourceLimits,
)

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"sdk-test/async-{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.mark.asyncio
async def test_async_health(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        assert await c.health() is True


@pytest.mark.asyncio
async def test_async_run_hello_world_both_images(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        py = await c.run(PYTHON_IMAGE, ["python3", "-c", "print('hello world')"])
        bb = await c.run(BUSYBOX_IMAGE, ["echo", "hello world"])
    for r in (py, bb):
        assert (r.exit_code, r.stdout, r.stderr) == (0, "hello world\n", "")
        assert r.exec_id.startswith("boxer-")
    assert py.exec_id != bb.exec_id


@pytest.mark.asyncio
async def test_async_run_env_cwd_limits(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        path = await c.upload_file(unique("cwd") + "/marker.txt", b"here\n")
        workdir = "/" + path.rsplit("/", 1)[0]
        r = await c.run(
            BUSYBOX_IMAGE,
            ["sh", "-c", 'echo "$GREETING $(pwd) $(cat marker.txt)"; exit 5'],
            env={"GREETING": "hi"},
            cwd=workdir,
            files=[path],
            limits=ResourceLimits(memory_mb=64, wall_clock_secs=20),
        )
    assert (r.exit_code, r.stdout) == (5, f"hi {workdir} here\n")


@pytest.mark.asyncio
async def test_async_concurrent_runs(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        results = await asyncio.gather(
            *(c.run(BUSYBOX_IMAGE, ["sh", "-c", f"echo {i}"]) for i in range(6))
        )
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]
    assert len({r.exec_id for r in results}) == 6


@pytest.mark.asyncio
async def test_async_timeout_error(boxer_url: str) -> None:
    code = "import time; print('partial output', flush=True); time.sleep(30)"
    async with make_async_client(boxer_url) as c:
        with pytest.raises(BoxerTimeoutError) as info:
            await c.run(PYTHON_IMAGE, ["python3", "-c", code], limits=ResourceLimits(wall_clock_secs=1))
    assert info.value.status_code == 408
    assert info.value.stdout is not None and "partial output" in info.value.stdout
    assert info.value.exec_id is not None


@pytest.mark.asyncio
async def test_async_output_limit(boxer_url: str) -> None:
    size = OUTPUT_LIMIT_BYTES + 2 * 1024 * 1024
    async with make_async_client(boxer_url) as c:
        with pytest.raises(BoxerOutputLimitError) as info:
            await c.run(BUSYBOX_IMAGE, ["sh", "-c", f"head -c {size} /dev/zero"])
    assert info.value.status_code == 507


@pytest.mark.asyncio
async def test_async_400_and_404(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as c:
        with pytest.raises(BoxerAPIError) as bad:
            await c.run(BUSYBOX_IMAGE, ["true"], files=[unique("missing") + "/x"])
        with pytest.raises(BoxerAPIError) as absent:
            await c.download_file(unique("absent") + "/x")
    assert type(bad.value) is BoxerAPIError and bad.value.status_code == 400
    assert type(absent.value) is BoxerAPIError and absent.value.status_code == 404


@pytest.mark.asyncio
async def test_async_connection_refused() -> None:
    async with AsyncBoxerClient(closed_port_url(), timeout=5) as c:
        with pytest.raises(BoxerConnectionError):
            await c.health()
        with pytest.raises(BoxerConnectionError):
            await c.run(BUSYBOX_IMAGE, ["true"])


@pytest.mark.asyncio
async def test_async_upload_file_and_download_persisted_output(boxer_url: str, tmp_path: Path) -> None:
    base = unique("files")
    local = tmp_path / "write.py"
    local.write_text(OUTPUT_SCRIPT)
    async with make_async_client(boxer_url) as c:
        with open(local, "rb") as f:
            script = await c.upload_file(f"{base}/write.py", f)
        note = await c.upload_file(f"{base}/note.txt", b"note\n")
        assert (script, note) == (f"{base}/write.py", f"{base}/note.txt")
        r = await c.run(
            PYTHON_IMAGE,
            ["sh", "-c", f"python3 /{script} && cat /{note}"],
            files=[script, note],
            persist=True,
        )
        assert (r.exit_code, r.stdout) == (0, "note\n"), r.stderr
        assert json.loads(await c.download_file(f"output/{r.exec_id}/result.json")) == {"answer": 42}
        assert await c.download_file(f"output/{r.exec_id}/sub/dir/deep.txt") == b"deep"
        assert await c.download_file(note) == b"note\n"


@pytest.mark.asyncio
async def test_async_upload_path_nested_and_run(boxer_url: str, tmp_path: Path) -> None:
    make_project(tmp_path / "proj")
    prefix = unique("tree")
    async with make_async_client(boxer_url) as c:
        stored = await c.upload_path(tmp_path / "proj", prefix)
        assert len(stored) == 5 and all(p.startswith(prefix + "/") for p in stored)
        r = await c.run(PYTHON_IMAGE, ["python3", "-B", f"/{prefix}/main.py"], files=stored)
    assert (r.exit_code, r.stdout) == (0, "NESTED FILES WORK!\n"), r.stderr


@pytest.mark.asyncio
async def test_async_large_streamed_upload_memory_stays_flat(boxer_url: str, tmp_path: Path) -> None:
    src = tmp_path / "large.bin"
    digest = write_pseudorandom_file(src, LARGE_UPLOAD_BYTES)
    remote = unique("large") + "/large.bin"
    async with make_async_client(boxer_url) as c:
        with open(src, "rb") as f, MemoryProbe() as mem:
            assert await c.upload_file(remote, f) == remote
        assert mem.peak < STREAMING_PEAK_LIMIT, f"client memory peaked at {mem.peak} bytes"
        r = await c.run(BUSYBOX_IMAGE, ["sha256sum", f"/{remote}"], files=[remote], persist=True)
        assert r.exit_code == 0, r.stderr
        assert r.stdout.split()[0] == digest
        assert hashlib.sha256(await c.download_file(remote)).hexdigest() == digest


@pytest.mark.asyncio
async def test_async_run_inputs_and_return_outputs(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as client:
        r = await client.run(BUSYBOX_IMAGE, ["sh", "-c", "cp /in/x /output/y"],
                             inputs={"in/x": b"\x00abc"}, return_outputs=True)
    assert r.exit_code == 0 and r.outputs == {"y": b"\x00abc"}, r


@pytest.mark.asyncio
async def test_async_run_input_files_multipart(boxer_url: str) -> None:
    async with make_async_client(boxer_url) as client:
        r = await client.run(BUSYBOX_IMAGE, ["sh", "-c", "/in/x; cp /in/y /output/y"],
                             input_files={"in/x": (b"#!/bin/sh\necho hi\n", 0o700),
                                          "in/y": io.BytesIO(b"\x00abc")},
                             return_outputs=True)
        assert r.exit_code == 0 and r.stdout == "hi\n" and r.outputs == {"y": b"\x00abc"}, r
        events = [e async for e in client.run(BUSYBOX_IMAGE, ["cat", "/z"],
                                              input_files={"z": b"async"}, stream=True)]
        assert events[-1].result is not None and events[-1].result.stdout == "async"
