"""A terminal in a box: the WebSocket of ``GET /v1/boxes/{id}/attach``.

RFC 6455, client side, written out here (httpx speaks no WebSocket and the
SDK keeps its single dependency): the upgrade request, masked frames to the
server, unmasked frames from it.  Binary frames carry terminal bytes both
ways; text frames carry JSON control messages (``resize`` from us, ``exit``
from the server, then a close).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
from types import TracebackType
from typing import Dict, List, Optional, Sequence, Tuple, Type
from urllib.parse import urlencode

import httpx

from . import _core
from .errors import BoxerConnectionError, BoxerError

__all__ = ["Terminal", "AsyncTerminal"]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 16 << 20
MAX_HEAD = 65536


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, key)
    return head + key + masked


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


class FrameDecoder:
    """Server frames from a byte stream; reassembles fragmented messages."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._frag_op: Optional[int] = None
        self._frag: bytearray = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next(self) -> Optional[Tuple[int, bytes]]:
        """The next complete message (opcode, payload), or None for more bytes."""
        while True:
            if len(self.buf) < 2:
                return None
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise BoxerError("terminal: the server sent a masked frame")
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return None
                n, off = struct.unpack(">H", bytes(self.buf[2:4]))[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return None
                n, off = struct.unpack(">Q", bytes(self.buf[2:10]))[0], 10
            if n > MAX_MESSAGE:
                raise BoxerError("terminal: frame too large")
            if len(self.buf) < off + n:
                return None
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            fin, op = b0 & 0x80, b0 & 0x0F
            if op >= 0x8:  # control frames are never fragmented
                return op, payload
            if op != OP_CONT:
                self._frag_op, self._frag = op, bytearray()
            elif self._frag_op is None:
                raise BoxerError("terminal: continuation without a message")
            self._frag += payload
            if len(self._frag) > MAX_MESSAGE:
                raise BoxerError("terminal: message too large")
            if fin:
                assert self._frag_op is not None
                msg = (self._frag_op, bytes(self._frag))
                self._frag_op, self._frag = None, bytearray()
                return msg


class _Session:
    """State shared by both terminals: the handshake and message handling."""

    def __init__(self, http_base: str, uds: Optional[str], headers: Dict[str, str], path: str,
                 query: Sequence[Tuple[str, str]]) -> None:
        url = httpx.URL(http_base)
        self.uds = uds
        self.host = url.host
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        prefix = url.path.rstrip("/")
        self.target = prefix + path + ("?" + urlencode(query) if query else "")
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        host_header = self.host if url.port is None else f"{self.host}:{url.port}"
        if ":" in self.host and not self.host.startswith("["):
            host_header = f"[{self.host}]" + (f":{url.port}" if url.port else "")
        lines = [f"GET {self.target} HTTP/1.1", f"Host: {host_header}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key}", "Sec-WebSocket-Version: 13"]
        for k, v in headers.items():
            if k.lower() not in ("accept", "host"):
                lines.append(f"{k}: {v}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.decoder = FrameDecoder()
        self.exit_code: Optional[int] = None
        self.closed = False
        self.what = f"GET {self.target}"

    def check_head(self, head: bytes, body: bytes) -> None:
        """Raises the server's error unless the head is a valid 101."""
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise BoxerError(f"{self.what}: not an HTTP answer: {lines[0][:100]!r}") from None
        hdrs: List[Tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                hdrs.append((name.strip(), value.strip()))
        if status != 101:
            _core.raise_for_status(httpx.Response(status, headers=hdrs, content=body))
            raise BoxerError(f"{self.what}: HTTP {status} instead of a WebSocket upgrade")
        accept = base64.b64encode(hashlib.sha1((self.key + _GUID).encode()).digest()).decode()
        got = {k.lower(): v for k, v in hdrs}
        if got.get("sec-websocket-accept") != accept:
            raise BoxerError(f"{self.what}: bad Sec-WebSocket-Accept")

    @staticmethod
    def split_head(buf: bytes) -> Optional[Tuple[bytes, bytes]]:
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            if len(buf) > MAX_HEAD:
                raise BoxerError("terminal: answer head too large")
            return None
        return buf[:i], buf[i + 4:]

    @staticmethod
    def content_length(head: bytes) -> int:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    return min(int(value.strip()), 1 << 20)
                except ValueError:
                    return 0
        return 0

    def handle(self, op: int, payload: bytes) -> Tuple[Optional[bytes], Optional[bytes]]:
        """(terminal output or None, frame to send back or None)."""
        if op == OP_BINARY:
            return payload, None
        if op == OP_TEXT:
            try:
                msg = json.loads(payload.decode("utf-8"))
            except ValueError:
                return None, None
            if isinstance(msg, dict) and msg.get("type") == "exit":
                code = msg.get("code")
                self.exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            return None, None
        if op == OP_PING:
            return None, encode_frame(OP_PONG, payload)
        if op == OP_CLOSE:
            reply = None if self.closed else encode_frame(OP_CLOSE, payload[:2])
            self.closed = True
            return None, reply
        return None, None


def resize_frame(cols: int, rows: int) -> bytes:
    for name, v in (("cols", cols), ("rows", rows)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
            raise ValueError(f"{name} must be an int from 1 to 1000")
    return encode_frame(OP_TEXT, json.dumps({"type": "resize", "cols": cols, "rows": rows}).encode())


def _data(data: "bytes | str") -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError("data must be bytes or str")


class Terminal:
    """A shell on a terminal in a box (blocking).  From ``box.attach()``.

    ``send(data)`` types bytes (or text), ``recv()`` returns the next output
    bytes (``b""`` once the session ended; ``exit_code`` then holds the
    shell's status when the server sent it), ``resize(cols, rows)``,
    ``close()``.  A context manager.
    """

    def __init__(self, session: _Session, sock: socket.socket, leftover: bytes, timeout: Optional[float]) -> None:
        self._s = session
        self._sock = sock
        self._timeout = timeout
        self._s.decoder.feed(leftover)

    @classmethod
    def open(cls, session: _Session, connect_timeout: Optional[float], timeout: Optional[float]) -> "Terminal":
        try:
            if session.uds is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(connect_timeout)
                sock.connect(session.uds)
            else:
                sock = socket.create_connection((session.host, session.port), timeout=connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if session.tls:
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=session.host)
        except OSError as exc:
            raise BoxerConnectionError(f"{session.what}: {exc}") from exc
        try:
            sock.settimeout(connect_timeout)
            sock.sendall(session.request)
            buf = b""
            split = None
            while split is None:
                chunk = sock.recv(65536)
                if not chunk:
                    raise BoxerConnectionError(f"{session.what}: connection closed during the handshake")
                buf += chunk
                split = session.split_head(buf)
            head, rest = split
            if not head.startswith(b"HTTP/1.1 101"):
                want = session.content_length(head)
                while len(rest) < want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            session.check_head(head, rest)
        except OSError as exc:
            sock.close()
            raise BoxerConnectionError(f"{session.what}: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return cls(session, sock, rest, timeout)

    @property
    def exit_code(self) -> Optional[int]:
        """The shell's exit status, once the server reported it."""
        return self._s.exit_code

    @property
    def closed(self) -> bool:
        return self._s.closed

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.sendall(frame)
        except OSError as exc:
            raise BoxerConnectionError(f"terminal: {exc}") from exc

    def send(self, data: "bytes | str") -> None:
        """Type ``data`` into the terminal."""
        if self._s.closed:
            raise BoxerError("terminal: the session has ended")
        self._send(encode_frame(OP_BINARY, _data(data)))

    def resize(self, cols: int, rows: int) -> None:
        """Change the terminal's size (the shell gets SIGWINCH)."""
        self._send(resize_frame(cols, rows))

    def recv(self, timeout: Optional[float] = -1.0) -> bytes:
        """The next output bytes; ``b""`` once the session has ended.
        ``timeout`` in seconds (default: the client's ``timeout``; None:
        wait as long as it takes); BoxerConnectionError when it passes."""
        wait = self._timeout if timeout is not None and timeout < 0 else timeout
        while True:
            msg = self._s.decoder.next()
            if msg is not None:
                out, reply = self._s.handle(*msg)
                if reply is not None:
                    try:
                        self._sock.sendall(reply)
                    except OSError:
                        pass
                if out is not None:
                    return out
                if self._s.closed:
                    return b""
                continue
            if self._s.closed:
                return b""
            try:
                self._sock.settimeout(wait)
                chunk = self._sock.recv(65536)
            except socket.timeout as exc:
                raise BoxerConnectionError("terminal: no output within the timeout") from exc
            except OSError as exc:
                raise BoxerConnectionError(f"terminal: {exc}") from exc
            if not chunk:
                self._s.closed = True
                return b""
            self._s.decoder.feed(chunk)

    def read_until(self, marker: "bytes | str", timeout: Optional[float] = -1.0) -> bytes:
        """Output up to and including ``marker`` (or to the end of the session)."""
        want = _data(marker)
        out = b""
        while want not in out:
            chunk = self.recv(timeout)
            if not chunk:
                break
            out += chunk
        return out

    def close(self) -> None:
        """End the session (the shell reads EOF and leaves)."""
        if not self._s.closed:
            self._s.closed = True
            try:
                self._sock.sendall(encode_frame(OP_CLOSE, struct.pack(">H", 1000)))
            except OSError:
                pass
        self._sock.close()

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()


class AsyncTerminal:
    """The asyncio :class:`Terminal`: ``await send/recv/resize/close``;
    ``async with``."""

    def __init__(self, session: _Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 leftover: bytes, timeout: Optional[float]) -> None:
        self._s = session
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._s.decoder.feed(leftover)

    @classmethod
    async def open(cls, session: _Session, connect_timeout: Optional[float],
                   timeout: Optional[float]) -> "AsyncTerminal":
        try:
            if session.uds is not None:
                conn = asyncio.open_unix_connection(session.uds)
            else:
                ctx = ssl.create_default_context() if session.tls else None
                conn = asyncio.open_connection(session.host, session.port, ssl=ctx,
                                               server_hostname=session.host if ctx else None)
            reader, writer = await asyncio.wait_for(conn, connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise BoxerConnectionError(f"{session.what}: {exc or type(exc).__name__}") from exc
        try:
            writer.write(session.request)
            await writer.drain()
            buf = b""
            split = None
            while split is None:
                chunk = await asyncio.wait_for(reader.read(65536), connect_timeout)
                if not chunk:
                    raise BoxerConnectionError(f"{session.what}: connection closed during the handshake")
                buf += chunk
                split = session.split_head(buf)
            head, rest = split
            if not head.startswith(b"HTTP/1.1 101"):
                want = session.content_length(head)
                while len(rest) < want:
                    chunk = await asyncio.wait_for(reader.read(65536), connect_timeout)
                    if not chunk:
                        break
                    rest += chunk
            session.check_head(head, rest)
        except (OSError, asyncio.TimeoutError) as exc:
            writer.close()
            raise BoxerConnectionError(f"{session.what}: {exc or type(exc).__name__}") from exc
        except BaseException:
            writer.close()
            raise
        return cls(session, reader, writer, rest, timeout)

    @property
    def exit_code(self) -> Optional[int]:
        return self._s.exit_code

    @property
    def closed(self) -> bool:
        return self._s.closed

    async def _send(self, frame: bytes) -> None:
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except OSError as exc:
            raise BoxerConnectionError(f"terminal: {exc}") from exc

    async def send(self, data: "bytes | str") -> None:
        """See Terminal.send."""
        if self._s.closed:
            raise BoxerError("terminal: the session has ended")
        await self._send(encode_frame(OP_BINARY, _data(data)))

    async def resize(self, cols: int, rows: int) -> None:
        """See Terminal.resize."""
        await self._send(resize_frame(cols, rows))

    async def recv(self, timeout: Optional[float] = -1.0) -> bytes:
        """See Terminal.recv."""
        wait = self._timeout if timeout is not None and timeout < 0 else timeout
        while True:
            msg = self._s.decoder.next()
            if msg is not None:
                out, reply = self._s.handle(*msg)
                if reply is not None:
                    try:
                        self._writer.write(reply)
                    except OSError:
                        pass
                if out is not None:
                    return out
                if self._s.closed:
                    return b""
                continue
            if self._s.closed:
                return b""
            try:
                chunk = await asyncio.wait_for(self._reader.read(65536), wait)
            except asyncio.TimeoutError as exc:
                raise BoxerConnectionError("terminal: no output within the timeout") from exc
            except OSError as exc:
                raise BoxerConnectionError(f"terminal: {exc}") from exc
            if not chunk:
                self._s.closed = True
                return b""
            self._s.decoder.feed(chunk)

    async def read_until(self, marker: "bytes | str", timeout: Optional[float] = -1.0) -> bytes:
        """See Terminal.read_until."""
        want = _data(marker)
        out = b""
        while want not in out:
            chunk = await self.recv(timeout)
            if not chunk:
                break
            out += chunk
        return out

    async def close(self) -> None:
        """See Terminal.close."""
        if not self._s.closed:
            self._s.closed = True
            try:
                self._writer.write(encode_frame(OP_CLOSE, struct.pack(">H", 1000)))
                await self._writer.drain()
            except OSError:
                pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass

    async def __aenter__(self) -> "AsyncTerminal":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()
