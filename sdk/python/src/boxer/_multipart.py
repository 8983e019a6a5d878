"""Streaming multipart/form-data encoders for ``POST /files`` and the
multipart ``POST /run`` (MultipartRun: a ``request`` part, then files).

httpx's own ``files=`` support is not used: depending on the httpx version it
may read the whole file to compute a length, and it always orders parts the
way the caller's dict does.  This encoder yields the body chunk by chunk, so an
upload of any size holds at most one chunk in memory, and it knows the total
length up front whenever the source's size is knowable, so the request is sent
with ``Content-Length`` instead of chunked transfer encoding.

The ``path`` part always precedes the ``file`` part, so a server that streams
the upload to disk knows the destination before the content arrives.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import posixpath
import re
import secrets
import stat
from typing import Any, AsyncGenerator, Dict, Generator, NamedTuple, Optional, Tuple, Union

from .errors import BoxerError

__all__ = ["MultipartUpload", "MultipartRun", "InputFile", "UploadData", "CHUNK_SIZE"]

CHUNK_SIZE = 256 * 1024

# Anything with a read(n) method returning bytes (or, for the async client,
# an awaitable of bytes).
UploadData = Union[bytes, bytearray, memoryview, Any]

# RFC 2046 bchars, minus space so the boundary never needs quoting.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}")


def _quote_header_value(value: str) -> str:
    # A quoted-string in Content-Disposition: percent-encode the characters
    # that would end the string or the header line (as browsers do), so a
    # remote path cannot inject header lines into the part.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _remaining_size(fileobj: Any) -> Optional[int]:
    """Bytes left to read from ``fileobj``, or None when unknowable."""
    fd: Optional[int] = None
    fileno = getattr(fileobj, "fileno", None)
    if callable(fileno):
        try:
            result = fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            result = None
        if isinstance(result, int):
            fd = result
        elif inspect.iscoroutine(result):
            result.close()
    tell = getattr(fileobj, "tell", None)
    if fd is not None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None  # pipe, socket, character device: stream it chunked
        pos = _sync_call(tell)
        if pos is None:
            return None
        return max(st.st_size - pos, 0)
    seekable = getattr(fileobj, "seekable", None)
    seek = getattr(fileobj, "seek", None)
    if not (callable(seekable) and callable(seek)):
        return None
    try:
        can_seek = seekable()
    except (OSError, ValueError):
        return None
    if can_seek is not True:
        if inspect.iscoroutine(can_seek):
            can_seek.close()
        return None
    pos = _sync_call(tell)
    if pos is None:
        return None
    try:
        end = seek(0, io.SEEK_END)
    finally:
        seek(pos, io.SEEK_SET)
    if not isinstance(end, int):
        return None
    return max(end - pos, 0)


def _sync_call(func: Any) -> Optional[int]:
    """Call a tell()-like method; None if absent, failing or asynchronous."""
    if not callable(func):
        return None
    try:
        value = func()
    except (OSError, ValueError):
        return None
    if inspect.iscoroutine(value):
        value.close()
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_bytes(block: Any) -> bytes:
    if isinstance(block, bytes):
        return block
    if isinstance(block, (bytearray, memoryview)):
        return bytes(block)
    if isinstance(block, str):
        raise TypeError("upload source returned str: open the file in binary mode ('rb')")
    if block is None:
        # Non-blocking raw files return None when no data is ready.
        raise TypeError("upload source returned None: non-blocking file objects are not supported")
    raise TypeError(f"upload source returned {type(block).__name__}, expected bytes")


class _Source(NamedTuple):
    """Where a part's bytes come from: exactly one of ``view`` (in memory),
    ``file`` (a file object, read from its position) and ``local`` (a
    path, opened when the body is sent); ``size`` None when unknowable."""

    view: Optional[memoryview]
    file: Any
    local: Optional[str]
    size: Optional[int]


def _classify_source(source: Any, *, paths: bool, what: str, text_what: str) -> _Source:
    """Classify an upload's or an input file's source: bytes-like, a local
    path (str or os.PathLike, only with ``paths``; sized now) or a binary
    file object.  ``what`` names the source in the TypeError of anything
    else, ``text_what`` in that of a text file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        return _Source(view, None, None, view.nbytes)
    if paths and isinstance(source, (str, os.PathLike)):
        local = os.fspath(source)
        return _Source(None, None, local, os.stat(local).st_size)
    if callable(getattr(source, "read", None)):
        if isinstance(source, io.TextIOBase):
            raise TypeError(f"{text_what}: open it in binary mode ('rb')")
        return _Source(None, source, None, _remaining_size(source))
    expected = "bytes, a local path or a binary file object" if paths else "bytes or a binary file object"
    raise TypeError(f"{what} must be {expected}, not {type(source).__name__}")


class MultipartUpload:
    """One ``POST /files`` body: a ``path`` field and a ``file`` part
    (``path_field="dest"`` for a box upload).

    ``data`` is a bytes-like object or a binary file object (anything with
    ``read(n)``).  A file object is read from its current position to its
    end, lazily, ``chunk_size`` bytes at a time.
    """

    def __init__(
        self,
        remote_path: str,
        data: UploadData,
        *,
        boundary: Optional[str] = None,
        chunk_size: int = CHUNK_SIZE,
        path_field: str = "path",
    ) -> None:
        if not isinstance(remote_path, str):
            raise TypeError("remote_path must be a str")
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if boundary is None:
            # 128 random bits: the chance that file content contains the
            # delimiter line is negligible, so content is never scanned.
            boundary = "boxer-" + secrets.token_hex(16)
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        self.boundary = boundary
        self.chunk_size = chunk_size

        src = _classify_source(data, paths=False, what="upload data",
                               text_what="upload source is a text file")
        self._view: Optional[memoryview] = src.view
        self._file: Any = src.file
        self._payload_size: Optional[int] = src.size

        filename = posixpath.basename(remote_path.rstrip("/")) or "file"
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{path_field}"\r\n'
            "\r\n"
        ).encode("ascii") + remote_path.encode("utf-8") + (
            f"\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quote_header_value(filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n"
            "\r\n"
        ).encode("utf-8")
        self._tail = f"\r\n--{boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> Optional[int]:
        """Total body length, or None when the source's size is unknown."""
        if self._payload_size is None:
            return None
        return len(self._head) + self._payload_size + len(self._tail)

    @property
    def headers(self) -> Dict[str, str]:
        headers = {"Content-Type": self.content_type}
        length = self.content_length
        if length is not None:
            headers["Content-Length"] = str(length)
        return headers

    def _want(self, remaining: Optional[int]) -> int:
        return self.chunk_size if remaining is None else min(self.chunk_size, remaining)

    def _account(self, block: Any, remaining: Optional[int]) -> Tuple[bytes, Optional[int], bool]:
        """Check one block read from the file: (data, remaining, done)."""
        return _account(block, remaining)

    def _view_chunks(self) -> Generator[bytes, None, None]:
        """An in-memory payload in chunk_size pieces."""
        assert self._view is not None
        for start in range(0, self._view.nbytes, self.chunk_size):
            yield bytes(self._view[start : start + self.chunk_size])

    def iter_chunks(self) -> Generator[bytes, None, None]:
        """The body as a synchronous iterator of chunks."""
        yield self._head
        if self._view is not None:
            yield from self._view_chunks()
        else:
            remaining = self._payload_size
            while remaining is None or remaining > 0:
                block = self._file.read(self._want(remaining))
                if inspect.isawaitable(block):
                    if inspect.iscoroutine(block):
                        block.close()
                    raise TypeError("upload source has an async read(): use AsyncBoxerClient")
                data, remaining, done = self._account(block, remaining)
                if done:
                    break
                yield data
        yield self._tail

    async def aiter_chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as an asynchronous iterator of chunks.

        Accepts file objects whose ``read`` is synchronous (read inline: one
        chunk of a local file is a short read) or asynchronous (awaited).
        """
        yield self._head
        if self._view is not None:
            for chunk in self._view_chunks():
                yield chunk
        else:
            remaining = self._payload_size
            while remaining is None or remaining > 0:
                block = self._file.read(self._want(remaining))
                if inspect.isawaitable(block):
                    block = await block
                data, remaining, done = self._account(block, remaining)
                if done:
                    break
                yield data
        yield self._tail


# A multipart /run's file: bytes, a local path (str or os.PathLike), or a
# binary file object; with its permission bits as (source, mode).
InputFile = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", Any]


class _RunFile:
    """One file part of a multipart ``POST /run``: its head and its source."""

    def __init__(self, remote_path: str, source: Any, boundary: str) -> None:
        if not isinstance(remote_path, str) or not remote_path:
            raise ValueError("input_files: each path must be a non-empty str")
        if any(c in remote_path for c in '"\r\n'):
            # the part name is the path: it must survive as a quoted-string
            raise ValueError(f"input_files: path {remote_path!r} has a quote or a line break")
        # a local path is opened when the body is sent (and closed after)
        src = _classify_source(source, paths=True, what=f"input_files[{remote_path!r}]",
                               text_what="input_files: a text file")
        self.view: Optional[memoryview] = src.view
        self.file: Any = src.file
        self.local: Optional[str] = src.local
        self.size: Optional[int] = src.size
        self.head = (
            f"--{boundary}\r\n".encode("ascii")
            + b'Content-Disposition: form-data; name="' + remote_path.encode("utf-8")
            + b'"; filename="' + _quote_header_value(posixpath.basename(remote_path) or "file").encode("utf-8")
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )


class MultipartRun:
    """A multipart ``POST /run`` body: the ``request`` part (the /run JSON)
    first, then one part per file, named by the path it is mounted at.
    Files are read ``chunk_size`` bytes at a time, never whole; the total
    length is known (``Content-Length``) whenever every file's size is."""

    def __init__(
        self,
        request: Dict[str, Any],
        files: "list[Tuple[str, Any]]",
        *,
        boundary: Optional[str] = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if boundary is None:
            boundary = "boxer-" + secrets.token_hex(16)
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        self.boundary = boundary
        self.chunk_size = chunk_size
        self._files = [_RunFile(p, s, boundary) for p, s in files]
        self._head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="request"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode("ascii") + json.dumps(request).encode("utf-8") + b"\r\n"
        self._tail = f"--{boundary}--\r\n".encode("ascii")

    @property
    def headers(self) -> Dict[str, str]:
        headers = {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}
        total = len(self._head) + len(self._tail)
        for f in self._files:
            if f.size is None:
                return headers  # chunked transfer encoding
            total += len(f.head) + f.size + 2
        headers["Content-Length"] = str(total)
        return headers

    def _read(self, f: _RunFile, src: Any) -> Generator[bytes, None, None]:
        remaining = f.size
        while remaining is None or remaining > 0:
            want = self.chunk_size if remaining is None else min(self.chunk_size, remaining)
            block = src.read(want)
            if inspect.isawaitable(block):
                if inspect.iscoroutine(block):
                    block.close()
                raise TypeError("input_files: a file with an async read(): use AsyncBoxerClient")
            data, remaining, done = _account(block, remaining)
            if done:
                return
            yield data

    def iter_chunks(self) -> Generator[bytes, None, None]:
        """The body as a synchronous iterator of chunks."""
        yield self._head
        for f in self._files:
            yield f.head
            if f.view is not None:
                for start in range(0, f.view.nbytes, self.chunk_size):
                    yield bytes(f.view[start : start + self.chunk_size])
            elif f.local is not None:
                with open(f.local, "rb") as src:
                    yield from self._read(f, src)
            else:
                yield from self._read(f, f.file)
            yield b"\r\n"
        yield self._tail

    async def aiter_chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as an asynchronous iterator of chunks (file objects whose
        ``read`` is synchronous are read inline, async ones awaited)."""
        yield self._head
        for f in self._files:
            yield f.head
            if f.view is not None:
                for start in range(0, f.view.nbytes, self.chunk_size):
                    yield bytes(f.view[start : start + self.chunk_size])
            elif f.local is not None:
                with open(f.local, "rb") as src:
                    for chunk in self._read(f, src):
                        yield chunk
            else:
                remaining = f.size
                while remaining is None or remaining > 0:
                    want = self.chunk_size if remaining is None else min(self.chunk_size, remaining)
                    block = f.file.read(want)
                    if inspect.isawaitable(block):
                        block = await block
                    data, remaining, done = _account(block, remaining)
                    if done:
                        break
                    yield data
            yield b"\r\n"
        yield self._tail


def _account(block: Any, remaining: Optional[int]) -> Tuple[bytes, Optional[int], bool]:
    """One block read from a file: (data, remaining, done).  A file that
    shrank below the size announced in Content-Length aborts the request:
    sending fewer bytes would leave the server waiting for the rest.  A
    file that grew sends only what was announced."""
    data = _as_bytes(block)
    if not data:
        if remaining:
            raise BoxerError(
                f"upload source ended {remaining} bytes before its announced size "
                "(was the file truncated during the upload?)"
            )
        return data, remaining, True
    if remaining is not None:
        data = data[:remaining]
        remaining -= len(data)
    return data, remaining, False
