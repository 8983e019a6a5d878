"""Integration tests of BoxerClient against a live Boxer server.

The server comes from the ``boxer_url`` fixture (conftest.py): ``$BOXER_URL``,
or one started by tests/integration/boxer_server.py.  See boxer_testutil for
what the tests assume about the server's configuration.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from pathlib import Path

import pytest
from boxer_testutil import (
    BUSYBOX_IMAGE,
    LARGE_UPLOAD_BYTES,
    OUTPUT_LIMIT_BYTES,
    PYTHON_IMAGE,
    STREAMING_PEAK_LIMIT,
    UPLOAD_LIMIT_BYTES,
    OUTPUT_SCRIPT,
    MemoryProbe,
    closed_port_url,
    make_project,
    write_pseudorandom_file,
)

from boxer import (
    BoxerAPIError,
    BoxerClient,
    BoxerConnectionError,
    BoxerOutputLimitError,
    BoxerTimeoutError,
    ResourceLimits,
)

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    """A store prefix no other test (or earlier run) uses."""
    return f"sdk-test/{prefix}-{uuid.uuid4().hex[:12]}"


def test_health(client: BoxerClient) -> None:
    assert client.health() is True


def test_run_hello_world_python(client: BoxerClient) -> None:
    result = client.run(PYTHON_IMAGE, ["python3", "-c", "print('hello world')"])
    assert result.stdout == "hello world\n"
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.exec_id.startswith("boxer-")
    assert isinstance(result.wall_ms, int) and result.wall_ms >= 0


def test_run_hello_world_busybox(client: BoxerClient) -> None:
    result = client.run(BUSYBOX_IMAGE, ["echo", "hello world"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello world\n", "")


def test_exit_code_and_stderr(client: BoxerClient) -> None:
    result = client.run(BUSYBOX_IMAGE, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok


def test_killed_by_signal_reports_128_plus_n(client: BoxerClient) -> None:
    result = client.run(BUSYBOX_IMAGE, ["sh", "-c", "kill -9 $$"])
    assert result.exit_code == 137


def test_env_dict_and_list(client: BoxerClient) -> None:
    script = 'echo "$FOO|$EQ|$EMPTY|"'
    r1 = client.run(BUSYBOX_IMAGE, ["sh", "-c", script], env={"FOO": "bar", "EQ": "a=b", "EMPTY": ""})
    r2 = client.run(BUSYBOX_IMAGE, ["sh", "-c", script], env=["FOO=bar", "EQ=a=b", "EMPTY="])
    assert r1.stdout == r2.stdout == "bar|a=b||\n"


def test_cwd(client: BoxerClient) -> None:
    # The directory holding a mounted input file exists in every image.
    path = client.upload_file(unique("cwd") + "/marker.txt", b"here\n")
    workdir = "/" + path.rsplit("/", 1)[0]
    result = client.run(BUSYBOX_IMAGE, ["sh", "-c", "pwd; cat marker.txt"], cwd=workdir, files=[path])
    assert result.stdout == f"{workdir}\nhere\n"


def test_limits_are_applied(client: BoxerClient) -> None:
    limits = ResourceLimits(cpu_cores=0.5, memory_mb=128, pids_limit=32, wall_clock_secs=20, nofile=128)
    result = client.run(BUSYBOX_IMAGE, ["sh", "-c", "ulimit -n"], limits=limits)
    assert (result.exit_code, result.stdout) == (0, "128\n")


def test_network_none_accepted(client: BoxerClient) -> None:
    result = client.run(BUSYBOX_IMAGE, ["echo", "offline"], network="none")
    assert result.stdout == "offline\n"


def test_egress_reaches_the_server(client: BoxerClient) -> None:
    # The server checks the list: a bad entry is a 400 that names it.
    with pytest.raises(BoxerAPIError) as info:
        client.run(BUSYBOX_IMAGE, ["true"], network="sandbox", egress=["198.51.100.7:0"])
    assert info.value.status_code == 400
    assert "egress[0]" in str(info.value)


def test_wall_clock_timeout_carries_partial_output(client: BoxerClient) -> None:
    code = "import time; print('partial output', flush=True); time.sleep(30); print('never')"
    # Pull the image first so the elapsed-time check below measures the run.
    client.run(PYTHON_IMAGE, ["python3", "-c", "pass"])
    started = time.monotonic()
    with pytest.raises(BoxerTimeoutError) as info:
        client.run(PYTHON_IMAGE, ["python3", "-c", code], limits=ResourceLimits(wall_clock_secs=1))
    elapsed = time.monotonic() - started
    err = info.value
    assert err.status_code == 408
    assert err.stdout is not None and "partial output" in err.stdout
    assert "never" not in err.stdout
    assert err.exec_id is not None and err.exec_id.startswith("boxer-")
    assert elapsed < 20, f"the 1 s wall clock took {elapsed:.1f} s to fire"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_limit(client: BoxerClient, stream: str) -> None:
    size = OUTPUT_LIMIT_BYTES + 2 * 1024 * 1024
    code = f"import sys\nblock = 'x' * 65536\nfor _ in range({size // 65536 + 1}): sys.{stream}.write(block)\n"
    with pytest.raises(BoxerOutputLimitError) as info:
        client.run(PYTHON_IMAGE, ["python3", "-c", code], limits=ResourceLimits(wall_clock_secs=60))
    assert info.value.status_code == 507


def test_run_with_missing_file_is_400(client: BoxerClient) -> None:
    with pytest.raises(BoxerAPIError) as info:
        client.run(BUSYBOX_IMAGE, ["true"], files=[unique("missing") + "/nope.txt"])
    assert type(info.value) is BoxerAPIError
    assert info.value.status_code == 400
    assert str(info.value)


def test_download_missing_is_404(client: BoxerClient) -> None:
    with pytest.raises(BoxerAPIError) as info:
        client.download_file(unique("absent") + "/file.txt")
    assert type(info.value) is BoxerAPIError and info.value.status_code == 404


def test_upload_reserved_output_prefix_is_400(client: BoxerClient) -> None:
    with pytest.raises(BoxerAPIError) as info:
        client.upload_file("output/forged/result.json", b"{}")
    assert info.value.status_code == 400


def test_connection_refused() -> None:
    with BoxerClient(closed_port_url(), timeout=5) as c:
        with pytest.raises(BoxerConnectionError):
            c.health()
        with pytest.raises(BoxerConnectionError):
            c.run(BUSYBOX_IMAGE, ["true"])
        with pytest.raises(BoxerConnectionError):
            c.download_file("x")


def test_upload_bytes_fileobj_and_unsized_stream_then_run(client: BoxerClient, tmp_path: Path) -> None:
    base = unique("upload")
    local = tmp_path / "from_disk.txt"
    local.write_bytes(b"from disk\n")

    class Unsized:  # read() only: sent with chunked transfer encoding
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._src.read(n)

    paths = [client.upload_file(f"{base}/bytes.txt", b"from bytes\n")]
    with open(local, "rb") as f:
        paths.append(client.upload_file(f"{base}/disk.txt", f))
    paths.append(client.upload_file(f"{base}/bytesio.txt", io.BytesIO(b"from bytesio\n")))
    paths.append(client.upload_file(f"{base}/unsized.txt", Unsized(b"from unsized stream\n")))
    assert paths == [f"{base}/{n}" for n in ("bytes.txt", "disk.txt", "bytesio.txt", "unsized.txt")]
    result = client.run(BUSYBOX_IMAGE, ["cat"] + ["/" + p for p in paths], files=paths)
    assert result.stdout == "from bytes\nfrom disk\nfrom bytesio\nfrom unsized stream\n"


def test_input_files_are_read_only(client: BoxerClient) -> None:
    path = client.upload_file(unique("ro") + "/data.txt", b"original\n")
    result = client.run(
        BUSYBOX_IMAGE,
        ["sh", "-c", f"echo changed > /{path}; echo rc=$?; cat /{path}"],
        files=[path],
        persist=True,
    )
    assert "rc=0" not in result.stdout and result.stdout.endswith("original\n")
    assert client.download_file(path) == b"original\n"


def test_upload_path_nested_directory_and_run(client: BoxerClient, tmp_path: Path) -> None:
    make_project(tmp_path / "proj")
    prefix = unique("tree")
    stored = client.upload_path(tmp_path / "proj", prefix)
    assert sorted(stored) == sorted(
        f"{prefix}/{p}"
        for p in (
            "main.py",
            "pkg/__init__.py",
            "pkg/sub/__init__.py",
            "pkg/sub/util.py",
            "data/deep/er/words.txt",
        )
    )
    result = client.run(
        PYTHON_IMAGE,
        ["python3", "-B", f"/{prefix}/main.py"],
        files=stored,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (result.exit_code, result.stdout, result.stderr) == (0, "NESTED FILES WORK!\n", "")


def test_upload_path_single_file(client: BoxerClient, tmp_path: Path) -> None:
    local = tmp_path / "solo.sh"
    local.write_text("echo solo\n")
    remote = unique("single") + "/solo.sh"
    assert client.upload_path(local, remote) == [remote]
    assert client.run(BUSYBOX_IMAGE, ["sh", f"/{remote}"], files=[remote]).stdout == "solo\n"


def test_persist_keeps_outputs_and_inputs(client: BoxerClient) -> None:
    script = client.upload_file(unique("persist") + "/write.py", OUTPUT_SCRIPT.encode())
    result = client.run(PYTHON_IMAGE, ["python3", f"/{script}"], files=[script], persist=True)
    assert result.exit_code == 0, result.stderr
    out = f"output/{result.exec_id}"
    assert json.loads(client.download_file(f"{out}/result.json")) == {"answer": 42}
    assert client.download_file(f"{out}/sub/dir/deep.txt") == b"deep"
    assert client.download_file(script) == OUTPUT_SCRIPT.encode()
    # A persisted input serves another run.
    again = client.run(PYTHON_IMAGE, ["python3", f"/{script}"], files=[script])
    assert again.exit_code == 0


def test_without_persist_inputs_and_outputs_are_deleted(client: BoxerClient) -> None:
    script = client.upload_file(unique("ephemeral") + "/write.py", OUTPUT_SCRIPT.encode())
    result = client.run(PYTHON_IMAGE, ["python3", f"/{script}"], files=[script])
    assert result.exit_code == 0, result.stderr
    for path in (f"output/{result.exec_id}/result.json", script):
        with pytest.raises(BoxerAPIError) as info:
            client.download_file(path)
        assert info.value.status_code == 404, path


def test_large_streamed_upload_memory_stays_flat(client: BoxerClient, tmp_path: Path) -> None:
    src = tmp_path / "large.bin"
    digest = write_pseudorandom_file(src, LARGE_UPLOAD_BYTES)
    remote = unique("large") + "/large.bin"
    with open(src, "rb") as f, MemoryProbe() as mem:
        assert client.upload_file(remote, f) == remote
    assert mem.peak < STREAMING_PEAK_LIMIT, (
        f"client memory peaked at {mem.peak} bytes for a {LARGE_UPLOAD_BYTES}-byte upload"
    )
    # The sandbox sees exactly the bytes we sent.
    result = client.run(BUSYBOX_IMAGE, ["sha256sum", f"/{remote}"], files=[remote], persist=True)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split()[0] == digest
    assert hashlib.sha256(client.download_file(remote)).hexdigest() == digest


def test_upload_over_limit_is_refused(client: BoxerClient, tmp_path: Path) -> None:
    src = tmp_path / "too-big.bin"
    write_pseudorandom_file(src, UPLOAD_LIMIT_BYTES + 1024 * 1024)
    remote = unique("too-big") + "/x.bin"
    with open(src, "rb") as f:
        with pytest.raises((BoxerAPIError, BoxerConnectionError)) as info:
            client.upload_file(remote, f)
    # 413 is the answer; a server that answers before reading the whole body
    # and closes may reset the connection first (the client then cannot see
    # the 413: httpx reads the answer only once the body is sent).
    if isinstance(info.value, BoxerAPIError):
        assert info.value.status_code == 413
    with pytest.raises(BoxerAPIError) as absent:
        client.download_file(remote)
    assert absent.value.status_code == 404  # nothing partial was stored


def test_run_inputs_and_return_outputs(client: BoxerClient) -> None:
    """Stateless run (issue 17): inputs in the request, outputs in the answer."""
    r = client.run(
        BUSYBOX_IMAGE,
        ["sh", "-c", "/w/run.sh; cat /w/a.txt; cp /w/b.bin /output/b.bin"],
        inputs={"w/run.sh": {"content": "#!/bin/sh\necho ran\n", "mode": 0o755},
                "w/a.txt": "text\n", "w/b.bin": bytes(range(256))},
        return_outputs=True,
    )
    assert r.exit_code == 0, r
    assert r.stdout == "ran\ntext\n"
    assert r.outputs == {"b.bin": bytes(range(256))}
    assert r.outputs_left is None


def test_run_input_files_multipart(client: BoxerClient, tmp_path: Path) -> None:
    """Multipart /run (issue 17): files streamed in the run request itself."""
    local = tmp_path / "data.bin"
    local.write_bytes(bytes(range(256)) * 4096)  # 1 MiB from a local path
    with open(local, "rb") as f:
        r = client.run(
            BUSYBOX_IMAGE,
            ["sh", "-c", "/w/run.sh; cat /w/a.txt; md5sum /w/data.bin /w/obj.bin | cut -c1-32; "
             "stat -c %a /w/a.txt; cp /w/data.bin /output/copy.bin"],
            input_files={"w/run.sh": (b"#!/bin/sh\necho ran\n", 0o755), "w/a.txt": b"text\n",
                         "w/data.bin": str(local), "w/obj.bin": f},
            return_outputs=True,
        )
    assert r.exit_code == 0, r
    md5 = hashlib.md5(local.read_bytes()).hexdigest()
    assert r.stdout == "ran\ntext\n%s\n%s\n644\n" % (md5, md5), r.stdout
    assert r.outputs == {"copy.bin": local.read_bytes()}
    # streamed events with the same body
    events = list(client.run(BUSYBOX_IMAGE, ["cat", "/x"], input_files={"x": b"streamed"},
                             stream=True))
    assert events[-1].type == "result" and events[-1].result is not None
    assert events[-1].result.stdout == "streamed"
    # the server's refusals come back as errors
    with pytest.raises(BoxerAPIError) as bad:
        client.run(BUSYBOX_IMAGE, ["true"], input_files={"../x": b"a"})
    assert bad.value.status_code == 400
