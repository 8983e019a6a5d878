"""Unit tests: no Boxer server.  HTTP is faked with httpx.MockTransport, except
for the streaming tests, which use a loopback stub server (boxer_testutil)."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hashlib
import io
import json
import os
import socket
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type

import httpx
import pytest
from boxer_testutil import (
    MemoryProbe,
    StubUploadServer,
    closed_port_url,
    multipart_fields,
    write_pseudorandom_file,
)

import boxer
from boxer import (
    AsyncBoxerClient,
    BoxerAPIError,
    BoxerClient,
    BoxerConnectionError,
    BoxerError,
    BoxerOutputLimitError,
    BoxerQueueFullError,
    BoxerTimeoutError,
    ResourceLimits,
    RunResult,
)
from boxer import _core
from boxer._multipart import MultipartUpload

RUN_OK: Dict[str, Any] = {"exec_id": "boxer-1234", "exit_code": 0, "stdout": "hi\n", "stderr": "", "wall_ms": 12}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """MockTransport handler that records requests and answers from a script."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: List[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.responses) > 1:
            return self.responses.pop(0)
        return self.responses[0]

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)


def sync_client(handler: Handler, **kwargs: Any) -> BoxerClient:
    kwargs.setdefault("base_url", "http://boxer.test:8080")
    return BoxerClient(transport=httpx.MockTransport(handler), **kwargs)


def async_client(handler: Handler, **kwargs: Any) -> AsyncBoxerClient:
    kwargs.setdefault("base_url", "http://boxer.test:8080")
    return AsyncBoxerClient(transport=httpx.MockTransport(handler), **kwargs)


# --------------------------------------------------------------------------
# multipart encoding


def test_multipart_bytes_exact_encoding() -> None:
    up = MultipartUpload("workspace/script.py", b"print(1)\n", boundary="XyZ")
    body = b"".join(up.iter_chunks())
    assert body == (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="path"\r\n'
        b"\r\n"
        b"workspace/script.py\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="script.py"\r\n'
        b"Content-Type: application/octet-stream\r\n"
        b"\r\n"
        b"print(1)\n\r\n"
        b"--XyZ--\r\n"
    )
    assert up.content_length == len(body)
    assert up.headers == {
        "Content-Type": "multipart/form-data; boundary=XyZ",
        "Content-Length": str(len(body)),
    }


def test_multipart_parses_with_stdlib_and_path_comes_first() -> None:
    payload = bytes(range(256)) * 10 + b"\r\n--not-the-boundary\r\n"
    up = MultipartUpload("dir/sub/data.bin", payload)
    body = b"".join(up.iter_chunks())
    fields = multipart_fields(up.content_type, body)
    assert fields["__order__"][1] == b"path,file"
    assert fields["path"] == (None, b"dir/sub/data.bin")
    assert fields["file"] == ("data.bin", payload)


def test_multipart_random_boundaries_differ() -> None:
    a = MultipartUpload("a", b"x").boundary
    b = MultipartUpload("a", b"x").boundary
    assert a != b and len(a) >= 32


def test_multipart_filename_cannot_inject_headers() -> None:
    up = MultipartUpload('dir/evil"\r\nX-Injected: 1', b"x", boundary="B")
    body = b"".join(up.iter_chunks())
    file_part = body.split(b"--B\r\n")[2]
    file_headers = file_part.split(b"\r\n\r\n")[0]
    assert file_headers == (
        b'Content-Disposition: form-data; name="file"; filename="evil%22%0D%0AX-Injected: 1"\r\n'
        b"Content-Type: application/octet-stream"
    )
    # The path travels as a part body, where CR/LF are plain data.
    assert multipart_fields(up.content_type, body)["path"][1] == b'dir/evil"\r\nX-Injected: 1'


@pytest.mark.parametrize("boundary", ["", "has space", "x" * 71, "quote\"", "nl\n"])
def test_multipart_rejects_bad_boundary(boundary: str) -> None:
    with pytest.raises(ValueError):
        MultipartUpload("a", b"x", boundary=boundary)


def test_multipart_chunking_is_exact() -> None:
    payload = b"abcdefghij"
    up = MultipartUpload("p", io.BytesIO(payload), boundary="B", chunk_size=3)
    chunks = list(up.iter_chunks())
    assert chunks[1:-1] == [b"abc", b"def", b"ghi", b"j"]
    assert up.content_length == len(b"".join(chunks))


def test_multipart_real_file_from_current_position(tmp_path: Path) -> None:
    f_path = tmp_path / "f.bin"
    f_path.write_bytes(b"0123456789")
    with open(f_path, "rb") as f:
        f.read(4)
        up = MultipartUpload("p/f.bin", f, boundary="B")
        body = b"".join(up.iter_chunks())
    assert multipart_fields(up.content_type, body)["file"][1] == b"456789"
    assert up.content_length == len(body)


def test_multipart_bytesio_size_known_and_position_kept() -> None:
    src = io.BytesIO(b"hello world")
    src.seek(6)
    up = MultipartUpload("p", src, boundary="B")
    assert src.tell() == 6  # sizing must not move the read position
    body = b"".join(up.iter_chunks())
    assert up.content_length == len(body)
    assert multipart_fields(up.content_type, body)["file"][1] == b"world"


class ReadOnly:
    """A file-like object with read() only: size unknowable."""

    def __init__(self, data: bytes, step: int = 5) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, n: int = -1) -> bytes:
        n = min(n, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def test_multipart_unknown_size_streams_without_length() -> None:
    up = MultipartUpload("p", ReadOnly(b"x" * 23), boundary="B")
    assert up.content_length is None
    assert "Content-Length" not in up.headers
    body = b"".join(up.iter_chunks())
    assert multipart_fields(up.content_type, body)["file"][1] == b"x" * 23


def test_multipart_pipe_is_unknown_size() -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"through a pipe")
        os.close(w)
        w = -1
        with os.fdopen(r, "rb") as f:
            r = -1
            up = MultipartUpload("p", f, boundary="B")
            assert up.content_length is None
            body = b"".join(up.iter_chunks())
        assert multipart_fields(up.content_type, body)["file"][1] == b"through a pipe"
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


class LyingSize(io.RawIOBase):
    """Claims (via seek) a size other than what read() delivers."""

    def __init__(self, claimed: int, actual: bytes) -> None:
        self._claimed = claimed
        self._data = actual
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == io.SEEK_END:
            return self._claimed + offset
        self._pos = offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def test_multipart_file_shrinking_aborts() -> None:
    up = MultipartUpload("p", LyingSize(100, b"short"), boundary="B")
    assert up.content_length is not None
    with pytest.raises(BoxerError, match="before its announced size"):
        b"".join(up.iter_chunks())


def test_multipart_file_growing_is_cut_at_announced_size() -> None:
    up = MultipartUpload("p", LyingSize(4, b"0123456789"), boundary="B")
    body = b"".join(up.iter_chunks())
    assert len(body) == up.content_length
    assert multipart_fields(up.content_type, body)["file"][1] == b"0123"


def test_multipart_rejects_text_and_other_types(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("text")
    with open(p, "r") as f:
        with pytest.raises(TypeError, match="binary mode"):
            MultipartUpload("p", f)
    with pytest.raises(TypeError):
        MultipartUpload("p", "a string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MultipartUpload("p", 42)  # type: ignore[arg-type]


def test_multipart_run_sources(tmp_path: Path) -> None:
    """input_files' sources (the classification MultipartUpload shares):
    a local path (str or PathLike) is sized up front and read when sent;
    a text file, or anything else, is a TypeError naming the path."""
    from boxer._multipart import MultipartRun

    p = tmp_path / "in.bin"
    p.write_bytes(b"12345")
    for local in (str(p), p):
        up = MultipartRun({}, [("x", local)], boundary="B")
        body = b"".join(up.iter_chunks())
        assert up.headers["Content-Length"] == str(len(body)) and b"\r\n\r\n12345\r\n" in body
    with open(p, "r") as f, pytest.raises(TypeError, match=r"input_files: a text file: .*binary mode"):
        MultipartRun({}, [("x", f)])
    with pytest.raises(TypeError, match=r"input_files\['x'\] must be bytes, a local path or a binary "
                                        r"file object, not int"):
        MultipartRun({}, [("x", 42)])
    with pytest.raises(FileNotFoundError):
        MultipartRun({}, [("x", str(tmp_path / "missing"))])
    with pytest.raises(TypeError, match="upload data must be bytes or a binary file object, not PosixPath"):
        MultipartUpload("p", p)


def test_multipart_memoryview_and_bytearray() -> None:
    for data in (bytearray(b"abc"), memoryview(b"xxabcxx")[2:5]):
        up = MultipartUpload("p", data, boundary="B")
        body = b"".join(up.iter_chunks())
        assert multipart_fields(up.content_type, body)["file"][1] == b"abc"
        assert up.content_length == len(body)


@pytest.mark.asyncio
async def test_multipart_async_iteration_with_sync_and_async_readers() -> None:
    class AsyncReader:
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        async def read(self, n: int = -1) -> bytes:
            await asyncio.sleep(0)
            return self._inner.read(min(n, 4))

    for src in (io.BytesIO(b"0123456789"), AsyncReader(b"0123456789"), b"0123456789"):
        up = MultipartUpload("p", src, boundary="B", chunk_size=3)
        body = b"".join([c async for c in up.aiter_chunks()])
        assert multipart_fields(up.content_type, body)["file"][1] == b"0123456789"
        if up.content_length is not None:
            assert up.content_length == len(body)


def test_multipart_sync_iteration_refuses_async_reader() -> None:
    class AsyncReader:
        async def read(self, n: int = -1) -> bytes:
            return b""

    up = MultipartUpload("p", AsyncReader(), boundary="B")
    with pytest.raises(TypeError, match="AsyncBoxerClient"):
        b"".join(up.iter_chunks())


# --------------------------------------------------------------------------
# request bodies: limits, env, run body


def test_resource_limits_serialises_only_set_fields() -> None:
    assert ResourceLimits().to_dict() == {}
    assert ResourceLimits(cpu_cores=0.5, memory_mb=128, wall_clock_secs=10).to_dict() == {
        "cpu_cores": 0.5,
        "memory_mb": 128,
        "wall_clock_secs": 10,
    }
    full = ResourceLimits(cpu_cores=2, memory_mb=64, pids_limit=32, wall_clock_secs=5, nofile=100)
    assert full.to_dict() == {
        "cpu_cores": 2,
        "memory_mb": 64,
        "pids_limit": 32,
        "wall_clock_secs": 5,
        "nofile": 100,
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_mb": True}, {"memory_mb": "128"}, {"memory_mb": 1.5}, {"cpu_cores": "1"}, {"nofile": None, "pids_limit": False}],
)
def test_resource_limits_type_checks(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        ResourceLimits(**kwargs)


def test_env_dict_becomes_list() -> None:
    assert _core.env_to_list({"A": "1", "B": "x=y", "EMPTY": ""}) == ["A=1", "B=x=y", "EMPTY="]
    assert _core.env_to_list(["A=1", "B="]) == ["A=1", "B="]
    assert _core.env_to_list(("A=1",)) == ["A=1"]


@pytest.mark.parametrize(
    "env,exc",
    [
        ({"A=B": "1"}, ValueError),
        ({"": "1"}, ValueError),
        ({"A": 1}, TypeError),
        ({"A": "nul\0"}, ValueError),
        (["NOEQUALS"], ValueError),
        (["=x"], ValueError),
        ("A=1", TypeError),
        ([1], TypeError),
    ],
)
def test_env_rejects_malformed(env: Any, exc: type) -> None:
    with pytest.raises(exc):
        _core.env_to_list(env)


def _body(**kwargs: Any) -> Dict[str, Any]:
    args: Dict[str, Any] = dict(env=None, cwd=None, limits=None, files=None, persist=False, network=None)
    args.update(kwargs)
    return _core.build_run_body("img", ["echo", "hi"], **args)


def test_run_body_inputs_and_return_outputs() -> None:
    body = _body(
        inputs={"a.txt": "h\u00e9", "b.bin": b"\x00\xff", "run.sh": {"content": "x", "mode": 0o755},
                "c.bin": {"content": b"\x01", "mode": 0o600}},
        return_outputs=True,
    )
    assert body["inputs"] == {
        "a.txt": {"content": "h\u00e9", "encoding": "utf8"},
        "b.bin": {"content": "AP8=", "encoding": "base64"},
        "run.sh": {"content": "x", "encoding": "utf8", "mode": 0o755},
        "c.bin": {"content": "AQ==", "encoding": "base64", "mode": 0o600},
    }
    assert body["return_outputs"] is True
    assert "return_outputs" not in _body() and "inputs" not in _body()
    for bad in ({"x": 1}, {"x": {"content": None}}, {"x": {"content": "a", "mode": "644"}}, ["x"]):
        with pytest.raises(TypeError):
            _body(inputs=bad)


def test_run_result_outputs_decoded() -> None:
    from boxer import RunResult

    base = {"exec_id": "e", "exit_code": 0, "stdout": "", "stderr": "", "wall_ms": 1}
    r = RunResult.from_dict(dict(base, outputs={"a/b": "AP8="}, outputs_left=["output/e/c"]))
    assert r.outputs == {"a/b": b"\x00\xff"} and r.outputs_left == ["output/e/c"]
    assert RunResult.from_dict(base).outputs is None
    for bad in ({"outputs": {"a": "!!"}}, {"outputs": ["a"]}, {"outputs_left": "x"}):
        with pytest.raises(ValueError):
            RunResult.from_dict(dict(base, **bad))


def test_run_body_minimal_omits_optional_fields() -> None:
    assert _body() == {"image": "img", "cmd": ["echo", "hi"], "persist": False}


def test_run_body_full() -> None:
    body = _body(
        env={"K": "V"},
        cwd="/app",
        limits=ResourceLimits(memory_mb=64),
        files=["a/b.py"],
        persist=True,
        network="sandbox",
        egress=("203.0.113.0/24:443", "198.51.100.7"),
    )
    assert body == {
        "image": "img",
        "cmd": ["echo", "hi"],
        "env": ["K=V"],
        "cwd": "/app",
        "limits": {"memory_mb": 64},
        "files": ["a/b.py"],
        "persist": True,
        "network": "sandbox",
        "egress": ["203.0.113.0/24:443", "198.51.100.7"],
    }


def test_run_body_egress_optional() -> None:
    # Omitted: no field, as before egress existed; an empty list is kept
    # (it means DNS only).
    assert "egress" not in _body(network="sandbox")
    assert _body(network="sandbox", egress=[])["egress"] == []


def test_run_body_limits_dict_and_empty_limits() -> None:
    assert _body(limits={"memory_mb": 64, "nofile": None})["limits"] == {"memory_mb": 64}
    assert "limits" not in _body(limits=ResourceLimits())


@pytest.mark.parametrize(
    "image,cmd,kwargs,exc",
    [
        ("", ["x"], {}, ValueError),
        ("img", [], {}, ValueError),
        ("img", "echo hi", {}, TypeError),
        ("img", ["echo", 1], {}, TypeError),
        ("img", ["x"], {"files": "a.py"}, TypeError),
        ("img", ["x"], {"limits": 5}, TypeError),
        ("img", ["x"], {"cwd": 5}, TypeError),
        ("img", ["x"], {"egress": "198.51.100.7"}, TypeError),
        ("img", ["x"], {"egress": [443]}, TypeError),
    ],
)
def test_run_body_validation(image: str, cmd: Any, kwargs: Dict[str, Any], exc: type) -> None:
    args: Dict[str, Any] = dict(env=None, cwd=None, limits=None, files=None, persist=False, network=None)
    args.update(kwargs)
    with pytest.raises(exc):
        _core.build_run_body(image, cmd, **args)


# --------------------------------------------------------------------------
# results


def test_run_result_ignores_unknown_and_reads_optional_fields() -> None:
    r = RunResult.from_dict({**RUN_OK, "future_field": {"x": 1}, "cpu_ms": 5, "oom_killed": False})
    assert r == RunResult("boxer-1234", 0, "hi\n", "", 12, cpu_ms=5, oom_killed=False)
    assert r.memory_peak_bytes is None and r.timed_out is None
    assert r.ok
    assert r.output_errors is None


def test_run_result_output_errors() -> None:
    errs = ["/output/pw: symbolic link, not captured"]
    r = RunResult.from_dict({**RUN_OK, "output_errors": errs})
    assert r.output_errors == errs
    for bad in ("x", [1], {"a": "b"}):
        with pytest.raises(ValueError):
            RunResult.from_dict({**RUN_OK, "output_errors": bad})


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in RUN_OK.items() if k != "exit_code"},
        {**RUN_OK, "exit_code": "0"},
        {**RUN_OK, "stdout": None},
        {**RUN_OK, "wall_ms": True},
    ],
)
def test_run_result_rejects_malformed(broken: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RunResult.from_dict(broken)


# --------------------------------------------------------------------------
# client <-> HTTP (MockTransport)


def test_run_request_shape_and_result() -> None:
    rec = Recorder(httpx.Response(200, json={**RUN_OK, "memory_peak_bytes": 1024, "new": 1}))
    with sync_client(rec) as c:
        result = c.run(
            "python:3.12-slim",
            ["python3", "-c", "print('hi')"],
            env={"A": "1"},
            limits=ResourceLimits(wall_clock_secs=3),
            files=["x.py"],
            persist=True,
        )
    assert result.stdout == "hi\n" and result.memory_peak_bytes == 1024
    req = rec.last
    assert req.method == "POST" and req.url == "http://boxer.test:8080/run"
    assert req.headers["content-type"] == "application/json"
    assert rec.last_json() == {
        "image": "python:3.12-slim",
        "cmd": ["python3", "-c", "print('hi')"],
        "env": ["A=1"],
        "limits": {"wall_clock_secs": 3},
        "files": ["x.py"],
        "persist": True,
    }


def test_run_sends_cwd_only_when_given() -> None:
    rec = Recorder(httpx.Response(200, json=RUN_OK))
    with sync_client(rec) as c:
        c.run("img", ["pwd"])
        assert "cwd" not in rec.last_json()
        c.run("img", ["pwd"], cwd="/srv")
        assert rec.last_json()["cwd"] == "/srv"


def test_run_read_timeout_unbounded_by_default_else_wall_clock_plus_margin() -> None:
    rec = Recorder(httpx.Response(200, json=RUN_OK))
    with sync_client(rec, timeout=7) as c:
        c.run("img", ["x"], limits=ResourceLimits(wall_clock_secs=100))
        assert rec.last.extensions["timeout"]["read"] is None
        assert rec.last.extensions["timeout"]["connect"] == 7
        c.health()
        assert rec.last.extensions["timeout"]["read"] == 7
    with sync_client(rec, run_timeout=5) as c:
        c.run("img", ["x"], limits=ResourceLimits(wall_clock_secs=100))
        assert rec.last.extensions["timeout"]["read"] == 105
        c.run("img", ["x"])
        assert rec.last.extensions["timeout"]["read"] == 5


def test_base_url_and_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(httpx.Response(200, json={"ok": True}))
    monkeypatch.setenv("BOXER_URL", "http://from-env.test:9999/")
    monkeypatch.setenv("BOXER_TOKEN", "s3cret")
    with BoxerClient(transport=httpx.MockTransport(rec)) as c:
        assert c.base_url == "http://from-env.test:9999"
        assert c.health() is True
    assert rec.last.url == "http://from-env.test:9999/healthz"
    assert rec.last.headers["authorization"] == "Bearer s3cret"


def test_explicit_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(httpx.Response(200, json={"ok": True}))
    monkeypatch.setenv("BOXER_URL", "http://from-env.test:9999")
    monkeypatch.setenv("BOXER_TOKEN", "env-token")
    with BoxerClient("http://explicit.test:1", token="arg-token", transport=httpx.MockTransport(rec)) as c:
        c.health()
    assert rec.last.url == "http://explicit.test:1/healthz"
    assert rec.last.headers["authorization"] == "Bearer arg-token"


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rec = Recorder(httpx.Response(200, json={"ok": True}))
    monkeypatch.delenv("BOXER_URL", raising=False)
    monkeypatch.delenv("BOXER_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.boxer/boxer.sock there
    with BoxerClient(transport=httpx.MockTransport(rec)) as c:
        c.health()
    assert rec.last.url == "http://127.0.0.1:8080/healthz"
    assert "authorization" not in rec.last.headers
    assert rec.last.headers["user-agent"].startswith("boxer-sdk-python/")


def test_base_url_with_path_prefix() -> None:
    rec = Recorder(httpx.Response(200, content=b"data"))
    with sync_client(rec, base_url="http://proxy.test/boxer/") as c:
        assert c.download_file("output/boxer-1/a b.txt") == b"data"
    assert rec.last.url.path == "/boxer/files"
    assert rec.last.url.params["path"] == "output/boxer-1/a b.txt"


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://x", "http://", "not a url"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError):
        BoxerClient(url)


def test_health_false_when_not_ok() -> None:
    with sync_client(Recorder(httpx.Response(200, json={"ok": False}))) as c:
        assert c.health() is False


def test_upload_file_request(tmp_path: Path) -> None:
    rec = Recorder(httpx.Response(200, json={"path": "workspace/a.py"}))
    src = tmp_path / "a.py"
    src.write_bytes(b"print('a')\n")
    with sync_client(rec) as c, open(src, "rb") as f:
        assert c.upload_file("workspace/a.py", f) == "workspace/a.py"
    req = rec.last
    assert req.method == "POST" and req.url.path == "/files"
    assert req.headers["content-length"] == str(len(req.content))
    assert "transfer-encoding" not in req.headers
    fields = multipart_fields(req.headers["content-type"], req.content)
    assert fields["path"][1] == b"workspace/a.py"
    assert fields["file"] == ("a.py", b"print('a')\n")


def test_upload_path_directory_file_and_prefixes(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "main.py").write_bytes(b"main")
    (root / "pkg" / "__init__.py").write_bytes(b"")
    (root / "pkg" / "deep" / "data.txt").write_bytes(b"data")
    os.mkfifo(root / "pkg" / "fifo")  # must be skipped, not opened (would block)
    os.symlink(root / "main.py", root / "link.py")  # file symlink: followed
    os.symlink(root / "pkg", root / "dirlink")  # dir symlink: not descended

    stored: Dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        fields = multipart_fields(request.headers["content-type"], request.content)
        path = fields["path"][1].decode()
        stored[path] = fields["file"][1]
        return httpx.Response(200, json={"path": path})

    with sync_client(handler) as c:
        got = c.upload_path(root)
        assert got == ["proj/link.py", "proj/main.py", "proj/pkg/__init__.py", "proj/pkg/deep/data.txt"]
        assert stored["proj/pkg/deep/data.txt"] == b"data" and stored["proj/link.py"] == b"main"
        assert c.upload_path(str(root), "ws/x/") == [
            "ws/x/link.py",
            "ws/x/main.py",
            "ws/x/pkg/__init__.py",
            "ws/x/pkg/deep/data.txt",
        ]
        assert c.upload_path(root / "pkg", "")[0] == "__init__.py"
        assert c.upload_path(root / "main.py") == ["main.py"]
        assert c.upload_path(root / "main.py", "a/b/renamed.py") == ["a/b/renamed.py"]
        with pytest.raises(FileNotFoundError):
            c.upload_path(root / "missing")
        with pytest.raises(ValueError):
            c.upload_path(root / "pkg" / "fifo")


def error_response(status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, content=body or b"", headers=headers)


def test_error_408_maps_to_timeout_with_partial_output() -> None:
    body = {"error": "wall clock exceeded", "exec_id": "boxer-9", "stdout": "partial\n", "stderr": "e"}
    with sync_client(Recorder(error_response(408, body))) as c:
        with pytest.raises(BoxerTimeoutError) as info:
            c.run("img", ["sleep", "9"])
    err = info.value
    assert isinstance(err, BoxerAPIError) and isinstance(err, BoxerError)
    assert err.status_code == 408 and str(err) == "wall clock exceeded"
    assert (err.exec_id, err.stdout, err.stderr) == ("boxer-9", "partial\n", "e")
    assert err.body == body


def test_error_408_without_details() -> None:
    with sync_client(Recorder(error_response(408, {"error": "timeout"}))) as c:
        with pytest.raises(BoxerTimeoutError) as info:
            c.run("img", ["x"])
    assert info.value.exec_id is None and info.value.stdout is None


def test_error_507_maps_to_output_limit() -> None:
    with sync_client(Recorder(error_response(507, {"error": "stdout over limit"}))) as c:
        with pytest.raises(BoxerOutputLimitError) as info:
            c.run("img", ["yes"])
    assert info.value.status_code == 507 and isinstance(info.value, BoxerAPIError)


def test_error_503_retry_after_seconds_date_and_absent() -> None:
    when = email.utils.format_datetime(
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30), usegmt=True
    )
    cases: List[Tuple[Dict[str, str], Optional[float]]] = [({"Retry-After": "2"}, 2.0), ({"Retry-After": "0.5"}, 0.5), ({}, None), ({"Retry-After": "soon"}, None)]
    for headers, expected in cases:
        with sync_client(Recorder(error_response(503, {"error": "queue full"}, headers))) as c:
            with pytest.raises(BoxerQueueFullError) as info:
                c.run("img", ["x"])
        assert info.value.status_code == 503 and info.value.retry_after == expected
    with sync_client(Recorder(error_response(503, {"error": "busy"}, {"Retry-After": when}))) as c:
        with pytest.raises(BoxerQueueFullError) as info:
            c.run("img", ["x"])
    assert info.value.retry_after is not None and 20 < info.value.retry_after <= 30


@pytest.mark.parametrize("status", [400, 404, 405, 413, 500])
def test_other_statuses_are_plain_api_errors(status: int) -> None:
    with sync_client(Recorder(error_response(status, {"error": f"oops {status}"}))) as c:
        with pytest.raises(BoxerAPIError) as info:
            c.download_file("a")
    assert type(info.value) is BoxerAPIError
    assert info.value.status_code == status and str(info.value) == f"oops {status}"


def test_non_json_error_body() -> None:
    with sync_client(Recorder(error_response(502, b"<html>Bad Gateway</html>"))) as c:
        with pytest.raises(BoxerAPIError) as info:
            c.health()
    assert info.value.status_code == 502
    assert "502" in str(info.value) and "Bad Gateway" in str(info.value)
    assert info.value.body is None


def test_malformed_success_bodies() -> None:
    with sync_client(Recorder(httpx.Response(200, content=b"not json"))) as c:
        with pytest.raises(BoxerError):
            c.run("img", ["x"])
        with pytest.raises(BoxerError):
            c.upload_file("a", b"x")
    with sync_client(Recorder(httpx.Response(200, json={"exec_id": "x"}))) as c:
        with pytest.raises(BoxerError, match="malformed"):
            c.run("img", ["x"])


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("garbage"),
        httpx.ReadError("reset"),
    ],
)
def test_transport_errors_become_connection_errors(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with sync_client(handler) as c:
        with pytest.raises(BoxerConnectionError) as info:
            c.health()
    assert info.value.__cause__ is exc
    assert not isinstance(info.value, httpx.HTTPError)


def test_upload_write_error_carries_hint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.WriteError("broken pipe")

    with sync_client(handler) as c:
        with pytest.raises(BoxerConnectionError, match="upload_limit_bytes"):
            c.upload_file("a", b"x")


def test_connection_refused_for_real() -> None:
    with BoxerClient(closed_port_url(), timeout=5) as c:
        with pytest.raises(BoxerConnectionError):
            c.health()
        with pytest.raises(BoxerConnectionError):
            c.run("img", ["x"])


@pytest.mark.asyncio
async def test_connection_refused_for_real_async() -> None:
    async with AsyncBoxerClient(closed_port_url(), timeout=5) as c:
        with pytest.raises(BoxerConnectionError):
            await c.health()
        with pytest.raises(BoxerConnectionError):
            await c.upload_file("a", b"x")


def test_read_timeout_for_real() -> None:
    # A listener that accepts and never answers: the client's timeout fires.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        with BoxerClient(f"http://127.0.0.1:{port}", timeout=0.3) as c:
            with pytest.raises(BoxerConnectionError, match="timed out"):
                c.health()


# --------------------------------------------------------------------------
# async client parity (MockTransport)


@pytest.mark.asyncio
async def test_async_every_method() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"ok": True})
        if request.url.path == "/run":
            return httpx.Response(200, json={**RUN_OK, "stdout": json.loads(request.content)["cmd"][-1]})
        if request.url.path == "/files" and request.method == "POST":
            fields = multipart_fields(request.headers["content-type"], request.content)
            assert request.headers["content-length"] == str(len(request.content))
            return httpx.Response(200, json={"path": fields["path"][1].decode()})
        if request.url.path == "/files" and request.method == "GET":
            return httpx.Response(200, content=b"content of " + request.url.params["path"].encode())
        return httpx.Response(404, json={"error": "no route"})

    async with async_client(handler, token="t") as c:
        assert await c.health() is True
        r = await c.run("img", ["echo", "async"], env=["A=1"], cwd="/w")
        assert r.stdout == "async"
        assert await c.upload_file("d/x.bin", b"123") == "d/x.bin"
        assert await c.upload_file("d/y.bin", io.BytesIO(b"456")) == "d/y.bin"
        assert await c.download_file("d/x.bin") == b"content of d/x.bin"


@pytest.mark.asyncio
async def test_async_upload_path(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "top.txt").write_bytes(b"t")
    (tmp_path / "a" / "b" / "low.txt").write_bytes(b"l")

    def handler(request: httpx.Request) -> httpx.Response:
        fields = multipart_fields(request.headers["content-type"], request.content)
        return httpx.Response(200, json={"path": fields["path"][1].decode()})

    async with async_client(handler) as c:
        assert await c.upload_path(tmp_path / "a", "in") == ["in/b/low.txt", "in/top.txt"]


@pytest.mark.asyncio
async def test_async_error_mapping() -> None:
    cases: List[Tuple[int, Dict[str, str], Dict[str, str], Type[BoxerAPIError]]] = [
        (408, {"error": "t", "stdout": "p"}, {}, BoxerTimeoutError),
        (507, {"error": "big"}, {}, BoxerOutputLimitError),
        (503, {"error": "busy"}, {"Retry-After": "3"}, BoxerQueueFullError),
        (400, {"error": "bad"}, {}, BoxerAPIError),
    ]
    for status, body, headers, cls in cases:
        async with async_client(Recorder(error_response(status, body, headers))) as c:
            with pytest.raises(BoxerAPIError) as info:
                await c.run("img", ["x"])
        assert type(info.value) is cls and info.value.status_code == status


@pytest.mark.asyncio
async def test_async_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with async_client(handler) as c:
        with pytest.raises(BoxerConnectionError):
            await c.download_file("x")


def test_sync_and_async_clients_have_the_same_public_methods() -> None:
    def public(cls: type) -> Set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(BoxerClient) <= public(AsyncBoxerClient)
    assert public(AsyncBoxerClient) - public(BoxerClient) == {"aclose"}
    for name in ("health", "upload_file", "upload_path", "download_file", "close"):
        assert asyncio.iscoroutinefunction(getattr(AsyncBoxerClient, name)), name
    # run is a plain function so that run(..., stream=True) can be an async
    # iterator; without stream it returns a coroutine, awaited as before.
    c = async_client(Recorder(httpx.Response(200, json=RUN_OK)))
    coro = c.run("img", ["x"])
    assert asyncio.iscoroutine(coro)
    coro.close()
    assert hasattr(c.run("img", ["x"], stream=True), "__aiter__")


def test_package_exports() -> None:
    for name in boxer.__all__:
        assert hasattr(boxer, name), name
    assert (Path(boxer.__file__).parent / "py.typed").is_file()


# --------------------------------------------------------------------------
# real sockets: streaming uploads against a loopback stub


STUB_UPLOAD_BYTES = 24 * 1024 * 1024


def test_streamed_upload_has_content_length_and_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    file_sha = write_pseudorandom_file(src, STUB_UPLOAD_BYTES)
    with StubUploadServer() as stub, BoxerClient(stub.url) as c, open(src, "rb") as f:
        with MemoryProbe() as mem:
            assert c.upload_file("big/big.bin", f) == "stub/stored"
    req = stub.requests[-1]
    assert req["headers"].get("Transfer-Encoding") is None
    assert int(req["headers"]["Content-Length"]) == req["body_len"]
    assert mem.peak < 6 * 1024 * 1024, f"client traced {mem.peak} bytes for a {STUB_UPLOAD_BYTES}-byte upload"
    # The bytes arrived intact: re-encode locally with the same boundary and
    # compare length and digest.
    boundary = req["headers"]["Content-Type"].split("boundary=")[1]
    expected = hashlib.sha256()
    with open(src, "rb") as f:
        again = MultipartUpload("big/big.bin", f, boundary=boundary)
        assert again.content_length == req["body_len"]
        for chunk in again.iter_chunks():
            expected.update(chunk)
    assert req["body_sha256"] == expected.hexdigest()
    # And the file part really is the file (independent of the encoder).
    with open(src, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == file_sha


@pytest.mark.asyncio
async def test_async_streamed_upload_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    write_pseudorandom_file(src, STUB_UPLOAD_BYTES)
    with StubUploadServer() as stub:
        async with AsyncBoxerClient(stub.url) as c:
            with open(src, "rb") as f:
                with MemoryProbe() as mem:
                    assert await c.upload_file("big/big.bin", f) == "stub/stored"
    req = stub.requests[-1]
    assert int(req["headers"]["Content-Length"]) == req["body_len"] > STUB_UPLOAD_BYTES
    assert req["headers"].get("Transfer-Encoding") is None
    assert mem.peak < 6 * 1024 * 1024, f"client traced {mem.peak} bytes"


def test_unknown_size_upload_is_chunked_on_the_wire() -> None:
    with StubUploadServer(keep_bodies=True) as stub, BoxerClient(stub.url) as c:
        c.upload_file("p/q.txt", ReadOnly(b"y" * 1000, step=100))
    req = stub.requests[-1]
    assert req["headers"].get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in req["headers"]
    fields = multipart_fields(req["headers"]["Content-Type"], req["body"])
    assert fields["file"] == ("q.txt", b"y" * 1000)


def test_bytes_upload_on_the_wire() -> None:
    with StubUploadServer(keep_bodies=True) as stub, BoxerClient(stub.url) as c:
        c.upload_file("r.bin", b"\x00\x01" * 1000)
    req = stub.requests[-1]
    assert int(req["headers"]["Content-Length"]) == len(req["body"])
    assert multipart_fields(req["headers"]["Content-Type"], req["body"])["file"][1] == b"\x00\x01" * 1000



# ---- connection discovery (issue 15) ----


def test_default_socket_is_used_when_it_exists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BOXER_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".boxer").mkdir()
    sock_path = str(tmp_path / ".boxer" / "boxer.sock")
    # A regular file at the path is not a socket: ignored.
    Path(sock_path).write_text("x")
    assert BoxerClient().base_url == "http://127.0.0.1:8080"
    os.unlink(sock_path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(sock_path)
        with BoxerClient() as c:
            assert c.base_url == "unix://" + sock_path
            assert c._uds == sock_path
        # BOXER_URL wins over the socket.
        monkeypatch.setenv("BOXER_URL", "http://env.test:1")
        assert BoxerClient().base_url == "http://env.test:1"
    finally:
        s.close()


def test_unix_url_forms() -> None:
    conn = _core.resolve_connection("unix:///run/boxer.sock")
    assert (conn.url, conn.http_base, conn.uds) == ("unix:///run/boxer.sock", "http://localhost", "/run/boxer.sock")
    assert _core.resolve_connection("unix:/run/b.sock").uds == "/run/b.sock"
    for bad in ("unix://relative.sock", "unix:", "unix:///a\0b"):
        with pytest.raises(ValueError):
            _core.resolve_connection(bad)


@pytest.mark.parametrize(
    "status,code,cls,also",
    [
        (404, "BOX_NOT_FOUND", boxer.BoxNotFoundError, BoxerAPIError),
        (404, "EXEC_NOT_FOUND", boxer.ExecNotFoundError, BoxerAPIError),
        (404, "FILE_NOT_FOUND", boxer.BoxerFileNotFoundError, BoxerAPIError),
        (409, "BOX_NOT_RUNNING", boxer.BoxNotRunningError, BoxerAPIError),
        (409, "BOX_ALREADY_RUNNING", boxer.BoxAlreadyRunningError, BoxerAPIError),
        (409, "EXEC_ALREADY_FINISHED", boxer.ExecAlreadyFinishedError, BoxerAPIError),
        (409, "NAME_ALREADY_EXISTS", boxer.NameAlreadyExistsError, BoxerAPIError),
        (400, "INVALID_REQUEST", boxer.InvalidRequestError, BoxerAPIError),
        (400, "RESOURCE_EXCEEDED", boxer.ResourceExceededError, BoxerAPIError),
        (503, "RESOURCE_EXCEEDED", boxer.NodeFullError, BoxerQueueFullError),
        (502, "IMAGE_PULL_FAILED", boxer.ImagePullFailedError, BoxerAPIError),
        (409, "CANCELED", boxer.CanceledError, BoxerAPIError),
        (500, "RUNTIME_ERROR", boxer.BoxerRuntimeError, BoxerAPIError),
        (408, "TIMEOUT", BoxerTimeoutError, BoxerAPIError),
        (503, None, BoxerQueueFullError, BoxerAPIError),
        (507, None, BoxerOutputLimitError, BoxerAPIError),
        (418, "SOMETHING_NEW", BoxerAPIError, BoxerError),
    ],
)
def test_v1_error_codes_map_to_classes(status: int, code: Optional[str], cls: Type[BaseException], also: Type[BaseException]) -> None:
    body: Dict[str, Any] = {"message": "the message", "error": "the message"}
    if code:
        body["code"] = code
    rec = Recorder(httpx.Response(status, json=body, headers={"Retry-After": "2"}))
    with sync_client(rec) as c:
        with pytest.raises(cls) as info:
            c.get_box("b1")
    err = info.value
    assert isinstance(err, also) and isinstance(err, boxer.BoxRunError)
    assert type(err) is cls
    assert isinstance(err, BoxerAPIError)
    assert (err.status, err.status_code, err.code, err.message) == (status, status, code, "the message")
    if isinstance(err, BoxerQueueFullError):
        assert err.retry_after == 2


def test_v1_message_only_body() -> None:
    rec = Recorder(httpx.Response(404, json={"code": "BOX_NOT_FOUND", "message": "no box x"}))
    with sync_client(rec) as c:
        with pytest.raises(boxer.BoxNotFoundError, match="no box x"):
            c.get_box("x")


def test_box_info_tolerates_unknown_and_missing_fields() -> None:
    info = boxer.BoxInfo.from_dict({"id": "box_1", "status": "running", "image": "busybox", "new_field": 1})
    assert info.id == "box_1" and info.name is None and info.boxlite_id is None and info.node is None
    with pytest.raises(ValueError):
        boxer.BoxInfo.from_dict({"status": "running"})
    e = boxer.ExecInfo.from_dict({"id": "exec_1", "box_id": "box_1", "status": "succeeded", "exit_code": 0})
    assert e.ok and e.stdout is None


def test_create_body_and_exec_body() -> None:
    rec = Recorder(
        httpx.Response(201, json={"id": "box_1", "status": "running", "image": "img", "name": "n"}),
        httpx.Response(200, json={"id": "exec_1", "box_id": "box_1", "status": "succeeded", "exit_code": 0,
                                  "stdout": "hi\n", "stderr": ""}),
    )
    with sync_client(rec) as c:
        box = c.create("img", name="n", cpu=0.5, memory_mb=256, network=False, env=["A=1"],
                       volumes=[{"host_path": "/h", "guest_path": "/g", "readonly": True}])
        assert json.loads(rec.last.content) == {
            "image": "img", "name": "n", "cpu": 0.5, "memory_mb": 256, "network": False, "env": {"A": "1"},
            "volumes": [{"host_path": "/h", "guest_path": "/g", "readonly": True}]}
        assert rec.last.extensions["timeout"]["read"] is None
        r = box.exec(["echo", "hi"], env={"B": "2"}, timeout_ms=5000)
        assert json.loads(rec.last.content) == {"cmd": ["echo", "hi"], "wait": True, "env": {"B": "2"},
                                                "timeout_ms": 5000}
        assert rec.last.url.path == "/v1/boxes/box_1/exec"
        assert r.stdout == "hi\n"
        c.create("img", user="1000:1001")
        assert json.loads(rec.last.content) == {"image": "img", "user": "1000:1001"}
        with pytest.raises(TypeError):
            c.create("img", memory_mb=True)
        with pytest.raises(TypeError):
            c.create("img", user=1000)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            box.exec("echo hi")
        with pytest.raises(ValueError):
            c.list_boxes(status="paused")


# ---- exec_stream: NDJSON to ExecEvents (the wire format of DESIGN.md "Streaming") ----

NDJSON_EXEC = (
    b'{"type":"start","exec_id":"exec_1","id":"exec_1"}\n'
    b'{"type":"log","stream":"stdout","data":"one\\n","seq":0}\n'
    b'{"type":"keepalive"}\n'
    b'{"type":"log","stream":"stderr","data":"oops\\n","seq":1}\n'
    b'{"type":"exit","exit_code":3,"status":"failed","timed_out":false,"wall_ms":5,"seq":2}\n'
)
BOX_JSON: Dict[str, Any] = {"id": "box_1", "status": "running", "image": "img"}


def test_exec_stream_events_sync() -> None:
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(200, content=NDJSON_EXEC, headers={"Content-Type": "application/x-ndjson"}),
    )
    with sync_client(rec) as c:
        box = c.create("img")
        events = list(box.exec_stream(["sh", "-c", "x"], env={"A": "1"}))
    body = json.loads(rec.last.content)
    assert body == {"cmd": ["sh", "-c", "x"], "stream": True, "env": {"A": "1"}}
    assert [(e.type, e.stream, e.data, e.seq) for e in events] == [
        ("log", "stdout", "one\n", 0),
        ("log", "stderr", "oops\n", 1),
        ("exit", None, '{"exit_code": 3}', 2),
    ]
    assert all(e.exec_id == "exec_1" for e in events)
    assert (events[-1].exit_code, events[-1].status, events[-1].timed_out) == (3, "failed", False)


@pytest.mark.asyncio
async def test_exec_stream_events_async() -> None:
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(200, content=NDJSON_EXEC, headers={"Content-Type": "application/x-ndjson"}),
    )
    async with AsyncBoxerClient("http://boxer.test:8080", transport=httpx.MockTransport(rec)) as c:
        box = await c.create("img")
        events = [e async for e in box.exec_stream(["true"])]
    assert [e.type for e in events] == ["log", "log", "exit"]
    assert events[-1].exit_code == 3


def test_exec_stream_refuses_a_non_stream_answer_and_a_cut_stream() -> None:
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(201, json={"id": "exec_1", "box_id": "box_1", "status": "running"}),
    )
    with sync_client(rec) as c:
        box = c.create("img")
        with pytest.raises(BoxerError, match="NDJSON"):
            list(box.exec_stream(["true"]))
    cut = NDJSON_EXEC.rsplit(b"\n", 2)[0] + b"\n"
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(200, content=cut, headers={"Content-Type": "application/x-ndjson"}),
    )
    with sync_client(rec) as c:
        box = c.create("img")
        with pytest.raises(BoxerError, match="before the exit"):
            list(box.exec_stream(["true"]))
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(409, json={"code": "BOX_NOT_RUNNING", "message": "box is stopped"}),
    )
    with sync_client(rec) as c:
        box = c.create("img")
        with pytest.raises(boxer.BoxNotRunningError):
            list(box.exec_stream(["true"]))


def test_stdin_cancel_signal_requests() -> None:
    exec_running: Dict[str, Any] = {"id": "exec_1", "box_id": "box_1", "status": "running"}
    rec = Recorder(
        httpx.Response(201, json=BOX_JSON),
        httpx.Response(201, json=exec_running),
        httpx.Response(200, json={"offset": 3}),
        httpx.Response(200, json={"ok": True}),
        httpx.Response(200, json=dict(exec_running, status="canceled", exit_code=137)),
        httpx.Response(200, json=RUN_OK),
    )
    with sync_client(rec) as c:
        box = c.create("img")
        e = box.start_exec(["cat"], stdin=b"\x00\xff", stdin_open=True)
        assert e.status == "running"
        assert json.loads(rec.last.content) == {"cmd": ["cat"], "stdin_b64": "AP8=", "stdin_open": True}
        assert box.write_stdin(e.id, "abc", eof=True, offset=2) == 3
        assert rec.last.url.path == "/v1/boxes/box_1/exec/exec_1/stdin"
        assert dict(rec.last.url.params) == {"eof": "1", "offset": "2"} and rec.last.content == b"abc"
        box.signal(e.id, 2)
        assert rec.last.url.path.endswith("/signal") and json.loads(rec.last.content) == {"signal": "SIGINT"}
        assert box.cancel(e.id).status == "canceled"
        assert rec.last.url.path == "/v1/boxes/box_1/exec/exec_1:cancel"
        c.run("img", ["cat"], stdin="text in")
        assert json.loads(rec.last.content)["stdin"] == "text in"
        with pytest.raises(TypeError):
            c.run("img", ["cat"], stdin=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            box.signal(e.id, 999)


def test_stdin_error_codes() -> None:
    for code, status, cls in (("STDIN_CLOSED", 409, boxer.StdinClosedError),
                              ("STDIN_BUFFER_FULL", 429, boxer.StdinBufferFullError),
                              ("STDIN_OFFSET_GAP", 409, boxer.StdinOffsetGapError)):
        rec = Recorder(httpx.Response(201, json=BOX_JSON), httpx.Response(status, json={"code": code, "message": "m"}))
        with sync_client(rec) as c:
            box = c.create("img")
            with pytest.raises(cls):
                box.write_stdin("exec_1", b"x")


# ---- terminal frames ----


def test_ws_frames_roundtrip_fragments_and_control() -> None:
    from boxer import _terminal as t

    def server_frame(op: int, payload: bytes, fin: bool = True) -> bytes:
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | op])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + n.to_bytes(2, "big")
        else:
            head += bytes([127]) + n.to_bytes(8, "big")
        return head + payload

    d = t.FrameDecoder()
    big = os.urandom(70000)
    stream = (server_frame(0x2, b"ab", fin=False) + server_frame(0x9, b"p") + server_frame(0x0, b"cd")
              + server_frame(0x2, big) + server_frame(0x1, b'{"type":"exit","code":4}'))
    for i in range(0, len(stream), 7):  # byte dribble
        d.feed(stream[i:i + 7])
    msgs = []
    while True:
        m = d.next()
        if m is None:
            break
        msgs.append(m)
    assert msgs == [(0x9, b"p"), (0x2, b"abcd"), (0x2, big), (0x1, b'{"type":"exit","code":4}')]
    # Client frames are masked and decode back to the payload.
    for payload in (b"", b"x" * 125, b"y" * 5000, os.urandom(70000)):
        f = t.encode_frame(0x2, payload)
        assert f[0] == 0x82 and f[1] & 0x80
        n = f[1] & 0x7F
        off = 2 if n < 126 else 4 if n == 126 else 10
        key, body = f[off:off + 4], f[off + 4:]
        assert bytes(b ^ key[i & 3] for i, b in enumerate(body)) == payload
    s = t._Session("http://h.test:1", None, {}, "/v1/boxes/b/attach", {"cols": "80"})
    out, reply = s.handle(0x9, b"hi")
    assert out is None and reply is not None and reply[0] == 0x8A
    s.handle(0x1, b'{"type":"exit","code":4}')
    assert s.exit_code == 4
    _, reply = s.handle(0x8, b"\x03\xe8")
    assert s.closed and reply is not None and reply[0] == 0x88
    with pytest.raises(BoxerError):
        bad = t.FrameDecoder()
        bad.feed(bytes([0x82, 0x81, 0, 0, 0, 0, 0]))
        bad.next()


# --------------------------------------------------------------------------
# run(stream=True) and BoxRun's run(timeout_ms=...) (MockTransport)


def ndjson(*events: Dict[str, Any]) -> httpx.Response:
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    return httpx.Response(200, content=body, headers={"Content-Type": "application/x-ndjson"})


STREAM_START = {"type": "start", "exec_id": "boxer-1"}


def test_run_stream_events_and_result() -> None:
    rec = Recorder(ndjson(STREAM_START, {"type": "log", "stream": "stdout", "data": "hi\n", "seq": 1},
                          {"type": "keepalive"},
                          {"type": "result", "status": 200, **RUN_OK}))
    with sync_client(rec) as c:
        events = list(c.run("busybox", ["echo", "hi"], stream=True, stdin="x"))
    assert rec.last_json()["stream"] is True and rec.last_json()["stdin"] == "x"
    assert rec.last.url == "http://boxer.test:8080/run"
    assert [(e.type, e.data, e.exec_id) for e in events] == [
        ("log", "hi\n", "boxer-1"), ("result", '{"exit_code": 0}', "boxer-1")]
    res = events[-1].result
    assert isinstance(res, RunResult) and res.stdout == RUN_OK["stdout"]


@pytest.mark.parametrize("status,exc", [(408, BoxerTimeoutError), (507, BoxerOutputLimitError),
                                        (500, BoxerAPIError)])
def test_run_stream_error_result_raises(status: int, exc: Type[BaseException]) -> None:
    result = {"type": "result", "status": status, "error": "why", "exec_id": "boxer-1"}
    if status == 408:
        result.update(stdout="so far", stderr="", exit_code=137, wall_ms=5, timed_out=True)
    rec = Recorder(ndjson(STREAM_START, {"type": "log", "stream": "stdout", "data": "so far",
                                         "seq": 1}, result))
    seen: List[str] = []
    with sync_client(rec) as c, pytest.raises(exc) as info:
        for e in c.run("busybox", ["x"], stream=True):
            seen.append(e.data)
    assert seen == ["so far"] and str(info.value) == "why"
    assert isinstance(info.value, BoxerAPIError) and info.value.status_code == status
    if status == 408:
        assert isinstance(info.value, BoxerTimeoutError) and info.value.stdout == "so far"


def test_run_stream_cut_before_result() -> None:
    rec = Recorder(ndjson(STREAM_START, {"type": "log", "stream": "stdout", "data": "a", "seq": 1}))
    with sync_client(rec) as c, pytest.raises(BoxerError, match="before the exit"):
        list(c.run("busybox", ["x"], stream=True))


def test_run_boxrun_form_goes_to_v1_run() -> None:
    rec = Recorder(httpx.Response(200, json={"exit_code": 137, "stdout": "a", "stderr": "",
                                             "error_message": "timed out (timeout_ms exceeded)",
                                             "exec_id": "boxer-2", "wall_ms": 9, "timed_out": True}))
    with sync_client(rec) as c:
        r = c.run("busybox", ["sleep", "9"], env={"A": "1"}, timeout_ms=500, disk_size_gb=1,
                  volumes=[], stdin=b"\xff")
    assert rec.last.url == "http://boxer.test:8080/v1/run?extra=1"
    assert rec.last_json() == {"image": "busybox", "cmd": ["sleep", "9"], "env": {"A": "1"},
                               "timeout_ms": 500, "disk_size_gb": 1, "volumes": [],
                               "stdin_b64": "/w=="}
    assert (r.exit_code, r.timed_out, r.exec_id) == (137, True, "boxer-2")
    assert r.error_message == "timed out (timeout_ms exceeded)"
    rec = Recorder(httpx.Response(200, json={"exit_code": None, "stdout": "", "stderr": "",
                                             "error_message": "stdout or stderr exceeded", "exec_id": "e",
                                             "wall_ms": 1, "timed_out": False}))
    with sync_client(rec) as c, pytest.raises(BoxerOutputLimitError, match="exceeded"):
        c.run("busybox", ["yes"], timeout_ms=1000)


@pytest.mark.parametrize("kwargs", [{"stream": True}, {"limits": {"cpu_cores": 1}}, {"cwd": "/"},
                                    {"files": ["a"]}, {"persist": True}, {"egress": []}])
def test_run_boxrun_form_refuses_run_only_arguments(kwargs: Dict[str, Any]) -> None:
    rec = Recorder(httpx.Response(500))
    with sync_client(rec) as c, pytest.raises(ValueError):
        c.run("busybox", ["true"], timeout_ms=1000, **kwargs)
    assert rec.requests == []


def test_run_user_goes_to_v1_run_only_when_given() -> None:
    rec = Recorder(httpx.Response(200, json={**RUN_OK, "error_message": None}))
    with sync_client(rec) as c:
        c.run("busybox", ["id", "-u"], user="1000:1000")
        assert rec.last.url == "http://boxer.test:8080/v1/run?extra=1"
        assert rec.last_json() == {"image": "busybox", "cmd": ["id", "-u"], "user": "1000:1000"}
        rec.responses = [httpx.Response(200, json={**RUN_OK, "error_message": None})]
        c.run("busybox", ["true"], timeout_ms=5)
        assert "user" not in rec.last_json()
        rec.responses = [httpx.Response(200, json=RUN_OK)]
        c.run("busybox", ["true"])
        assert rec.last.url == "http://boxer.test:8080/run" and "user" not in rec.last_json()
        n = len(rec.requests)
        bad: Any
        for bad in (1000, b"1000", True):
            with pytest.raises(TypeError):
                c.run("busybox", ["true"], user=bad)
        kwargs: Dict[str, Any]
        for kwargs in ({"stream": True}, {"cwd": "/"}, {"input_files": {"x": b""}}):
            with pytest.raises(ValueError):
                c.run("busybox", ["true"], user="1", **kwargs)
        assert len(rec.requests) == n


@pytest.mark.asyncio
async def test_async_run_stream_and_boxrun_form() -> None:
    rec = Recorder(ndjson(STREAM_START, {"type": "log", "stream": "stderr", "data": "e", "seq": 1},
                          {"type": "result", "status": 200, **RUN_OK}))
    async with async_client(rec) as c:
        events = [e async for e in c.run("busybox", ["x"], stream=True)]
        assert [e.type for e in events] == ["log", "result"] and events[0].stream == "stderr"
        assert events[1].result is not None and events[1].result.exec_id == RUN_OK["exec_id"]
        rec.responses = [httpx.Response(200, json=RUN_OK)]
        assert (await c.run("busybox", ["x"])).stdout == RUN_OK["stdout"]
        assert rec.last.url == "http://boxer.test:8080/run"
        rec.responses = [httpx.Response(200, json={**RUN_OK, "error_message": None})]
        assert (await c.run("busybox", ["x"], timeout_ms=5)).exit_code == RUN_OK["exit_code"]
        assert rec.last.url == "http://boxer.test:8080/v1/run?extra=1"
        assert (await c.run("busybox", ["x"], user="7")).exit_code == RUN_OK["exit_code"]
        assert rec.last.url == "http://boxer.test:8080/v1/run?extra=1"
        assert rec.last_json() == {"image": "busybox", "cmd": ["x"], "user": "7"}


def test_attach_query_command_params() -> None:
    from urllib.parse import parse_qsl, urlencode

    from boxer.boxes import attach_query
    q = attach_query(None, 80, 24, None, ["sh", "-c", "echo $HOME; a&b=c", ""],
                     {"K": "v=1&x"}, "/tmp", "1:2")
    # repeated cmd values in order, each one argv element after the round trip
    back = parse_qsl(urlencode(q), keep_blank_values=True)
    assert [v for k, v in back if k == "cmd"] == ["sh", "-c", "echo $HOME; a&b=c", ""]
    assert ("env", "K=v=1&x") in back and ("workdir", "/tmp") in back and ("user", "1:2") in back
    assert attach_query("/bin/sh", 80, 24, "vt100") == [
        ("cols", "80"), ("rows", "24"), ("shell", "/bin/sh"), ("term", "vt100")]
    with pytest.raises(ValueError):
        attach_query("/bin/sh", 80, 24, None, ["sh"])
    for bad in ("sh", [], [1], b"sh"):
        with pytest.raises(TypeError):
            attach_query(None, 80, 24, None, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        attach_query(None, 80, 24, None, ["sh"], {"A=B": "x"})


def test_stream_encoding_and_base64_events() -> None:
    import base64 as b64

    from boxer.boxes import StreamDecoder, build_stream_body, stream_base64
    assert stream_base64("utf8") is False and stream_base64("utf-8") is False
    assert stream_base64("base64") is True
    with pytest.raises(ValueError):
        stream_base64("latin-1")
    assert build_stream_body(["x"], env=None, timeout_ms=None, workdir=None,
                             base64=True)["encoding"] == "base64"
    assert "encoding" not in build_stream_body(["x"], env=None, timeout_ms=None, workdir=None)
    d = StreamDecoder(True)
    raw = b"\xff\x00ok"
    ev = d.feed(json.dumps({"type": "log", "stream": "stdout", "seq": 1,
                            "data": b64.b64encode(raw).decode()}))
    assert ev is not None and ev.raw == raw and ev.data == "\ufffd\x00ok"
    with pytest.raises(BoxerError):
        d.feed('{"type": "log", "stream": "stdout", "seq": 2, "data": "%%%"}')
    ev = StreamDecoder().feed('{"type": "log", "stream": "stdout", "seq": 1, "data": "text"}')
    assert ev is not None and ev.raw is None and ev.data == "text"


def test_multipart_run_body() -> None:
    """input_files: the request part first, each file part named by its
    path, Content-Length exact; (source, mode) puts the mode in inputs."""
    from boxer._multipart import MultipartRun

    up = MultipartRun({"image": "i", "cmd": ["c"]}, [("a/b", b"x" * 10), ("c", io.BytesIO(b"yz"))],
                      boundary="BND", chunk_size=3)
    body = b"".join(up.iter_chunks())
    assert up.headers["Content-Length"] == str(len(body))
    assert body.startswith(b'--BND\r\nContent-Disposition: form-data; name="request"\r\n')
    assert b'name="a/b"; filename="b"\r\nContent-Type: application/octet-stream\r\n\r\n' + b"x" * 10 \
        + b"\r\n--BND\r\n" in body
    assert body.endswith(b"yz\r\n--BND--\r\n")
    with pytest.raises(ValueError):
        MultipartRun({}, [('a"b', b"")])
    seen: Dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["ct"] = request.headers["content-type"]
        seen["body"] = request.read()
        return httpx.Response(200, json={"exec_id": "e", "exit_code": 0, "stdout": "", "stderr": "",
                                         "wall_ms": 1, "timed_out": False})

    with BoxerClient("http://boxer.test", transport=httpx.MockTransport(handler)) as c:
        c.run("busybox", ["true"], input_files={"run.sh": (b"#!", 0o755)})
    assert seen["ct"].startswith("multipart/form-data; boundary=boxer-")
    req = seen["body"].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
    assert json.loads(req)["inputs"] == {"run.sh": {"part": True, "mode": 0o755}}
    with pytest.raises(ValueError):
        c.run("busybox", ["true"], input_files={"x": b""}, timeout_ms=5)
