"""Helpers shared by the SDK tests (imported after conftest put src/ on sys.path)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from boxer import AsyncBoxerClient

# Images the integration tests run.  The server must be able to pull them
# (in this project's test setup: from the local test registry).
PYTHON_IMAGE = os.environ.get("BOXER_TEST_PYTHON_IMAGE", "python:3.12-slim")
BUSYBOX_IMAGE = os.environ.get("BOXER_TEST_BUSYBOX_IMAGE", "busybox")

# What the integration tests assume about the server's configuration.
OUTPUT_LIMIT_BYTES = int(os.environ.get("BOXER_TEST_OUTPUT_LIMIT", str(10 * 1024 * 1024)))
UPLOAD_LIMIT_BYTES = int(os.environ.get("BOXER_TEST_UPLOAD_LIMIT", str(64 * 1024 * 1024)))
LARGE_UPLOAD_BYTES = 50 * 1024 * 1024

# Ceiling on the client's traced memory while streaming LARGE_UPLOAD_BYTES.
# One chunk is 256 KiB; a few copies of it in flight is normal.
STREAMING_PEAK_LIMIT = 8 * 1024 * 1024

# Upper bound on waiting for one /run answer in tests (beyond wall_clock_secs),
# so a wedged server fails the test instead of hanging the suite.
TEST_RUN_TIMEOUT = float(os.environ.get("BOXER_TEST_RUN_TIMEOUT", "300"))


def make_async_client(url: str) -> AsyncBoxerClient:
    """Async tests build their client inline (no async fixtures: those need
    pytest_asyncio.fixture in strict mode, which differs across versions)."""
    return AsyncBoxerClient(url, run_timeout=TEST_RUN_TIMEOUT)


def closed_port_url() -> str:
    """URL of a loopback port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def write_pseudorandom_file(path: Path, size: int) -> str:
    """Write ``size`` incompressible-looking bytes without holding them in
    memory; returns their sha256 hex digest."""
    digest = hashlib.sha256()
    block = 1024 * 1024
    seed = hashlib.sha256(path.name.encode()).digest()
    written = 0
    counter = 0
    with open(path, "wb") as f:
        while written < size:
            # Each 1 MiB block differs (counter-keyed), so a server or
            # transport that mixed blocks up would change the digest.
            unit = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
            chunk = (unit * (block // len(unit)))[: min(block, size - written)]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            counter += 1
    return digest.hexdigest()


class MemoryProbe:
    """tracemalloc peak over a block: ``with MemoryProbe() as m: ...; m.peak``."""

    def __init__(self) -> None:
        self.peak = 0
        self._was_tracing = False

    def __enter__(self) -> "MemoryProbe":
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: Any) -> None:
        current, peak = tracemalloc.get_traced_memory()
        self.peak = max(peak - self._base, 0)
        if not self._was_tracing:
            tracemalloc.stop()


class StubUploadServer:
    """A loopback HTTP server that accepts ``POST /files`` and consumes the
    body in small reads, hashing it, so tests can exercise the real socket
    path of uploads (framing, Content-Length, memory) without a Boxer server.

    Each request is recorded as a dict: headers, body_sha256, body_len and,
    when ``keep_bodies`` is set, the raw body.
    """

    def __init__(self, keep_bodies: bool = False) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.keep_bodies = keep_bodies
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _chunks(self) -> Iterator[bytes]:
                te = self.headers.get("Transfer-Encoding", "")
                if te.lower() == "chunked":
                    while True:
                        size_line = self.rfile.readline(1024).split(b";")[0].strip()
                        size = int(size_line, 16)
                        if size == 0:
                            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                                pass
                            return
                        left = size
                        while left:
                            data = self.rfile.read(min(left, 65536))
                            if not data:
                                raise ConnectionError("short chunk")
                            left -= len(data)
                            yield data
                        self.rfile.readline(1024)
                else:
                    left = int(self.headers.get("Content-Length", "0"))
                    while left:
                        data = self.rfile.read(min(left, 65536))
                        if not data:
                            raise ConnectionError("short body")
                        left -= len(data)
                        yield data

            def do_POST(self) -> None:
                digest = hashlib.sha256()
                length = 0
                kept = bytearray()
                for data in self._chunks():
                    digest.update(data)
                    length += len(data)
                    if outer.keep_bodies:
                        kept += data
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body_sha256": digest.hexdigest(),
                        "body_len": length,
                        "body": bytes(kept) if outer.keep_bodies else None,
                    }
                )
                answer = json.dumps({"path": "stub/stored"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> "StubUploadServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def multipart_fields(content_type: str, body: bytes) -> Dict[str, Tuple[Optional[str], bytes]]:
    """Parse a multipart/form-data body with the standard library's email
    parser (an implementation independent of the SDK's encoder): field name
    -> (filename, content).  Also returns the order in ``__order__``."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart(), "body is not multipart"
    fields: Dict[str, Tuple[Optional[str], bytes]] = {}
    order = []
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (None if filename is None else str(filename), payload or b"")
        order.append(str(name))
    fields["__order__"] = (None, ",".join(order).encode())
    return fields


OUTPUT_SCRIPT = (
    "import json, os\n"
    "os.makedirs('/output/sub/dir', exist_ok=True)\n"
    "with open('/output/result.json', 'w') as f:\n"
    "    json.dump({'answer': 42}, f)\n"
    "with open('/output/sub/dir/deep.txt', 'w') as f:\n"
    "    f.write('deep')\n"
)


def make_project(root: Path) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "data" / "deep" / "er").mkdir(parents=True)
    (root / "main.py").write_text(
        "import os, sys\n"
        "here = os.path.dirname(os.path.abspath(__file__))\n"
        "sys.path.insert(0, here)\n"
        "from pkg.sub.util import shout\n"
        "with open(os.path.join(here, 'data', 'deep', 'er', 'words.txt')) as f:\n"
        "    print(shout(f.read().strip()))\n"
    )
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "util.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    (root / "data" / "deep" / "er" / "words.txt").write_text("nested files work\n")
