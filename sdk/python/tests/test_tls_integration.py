"""The SDK over https and wss.  Boxer itself has no TLS listener: TLS ends
at a proxy in front of it.  Here a real HAProxy terminates TLS (a
self-signed certificate made with openssl for 127.0.0.1, trusted through
SSL_CERT_FILE) and forwards to a live Boxer; the SDK's plain requests and
its terminal WebSocket (wss://, sync and async) go through it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from boxer_testutil import BUSYBOX_IMAGE, TEST_RUN_TIMEOUT

from boxer import (AsyncBoxerClient, BoxerClient, BoxerConnectionError, BoxerError, BoxHandle,
                   BoxInfo)

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def tls_url(boxer_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not boxer_url.startswith("http://"):
        pytest.fail(f"the TLS test fronts a TCP server, not {boxer_url}", pytrace=False)
    d = tmp_path_factory.mktemp("tls")
    key, crt, pem = d / "key.pem", d / "crt.pem", d / "haproxy.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    backend = boxer_url[len("http://"):].rstrip("/")
    port = _free_port()
    cfg = d / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 200
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout tunnel 120s
frontend tls
    bind 127.0.0.1:{port} ssl crt {pem}
    default_backend boxer
backend boxer
    server b1 {backend}
""")
    subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], check=True)
    log = open(d / "haproxy.log", "ab")
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (d / "haproxy.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not listen"
                time.sleep(0.05)
        old = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(crt)  # httpx and ssl.create_default_context
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            if old is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = old
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_https_and_wss_sync(tls_url: str) -> None:
    with BoxerClient(tls_url, timeout=30, run_timeout=TEST_RUN_TIMEOUT) as c:
        assert c.health() is True
        box = c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            assert box.exec(["echo", "over tls"]).stdout == "over tls\n"
            with box.attach(cmd=["sh", "-c", "stty size; read x; echo got-$x; exit 8"],
                            cols=66, rows=11) as t:
                assert b"11 66" in t.read_until("11 66", timeout=20)
                t.send("wss\n")
                assert b"got-wss" in t.read_until("got-wss", timeout=20)
                while t.recv(timeout=20):
                    pass
                assert t.exit_code == 8
        finally:
            box.remove(force=True)


@pytest.mark.asyncio
async def test_https_and_wss_async(tls_url: str) -> None:
    async with AsyncBoxerClient(tls_url, timeout=30, run_timeout=TEST_RUN_TIMEOUT) as c:
        assert await c.health() is True
        box = await c.create(BUSYBOX_IMAGE, memory_mb=128)
        try:
            async with await box.attach(shell="/bin/sh") as t:
                await t.send(b"echo AS''YNC-TLS; exit 4\n")
                assert b"ASYNC-TLS" in await t.read_until(b"ASYNC-TLS\r\n", timeout=20)
                while await t.recv(timeout=20):
                    pass
                assert t.exit_code == 4
        finally:
            await box.remove(force=True)


def test_untrusted_certificate_is_refused(tls_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the certificate trusted, neither path talks to the proxy."""
    monkeypatch.delenv("SSL_CERT_FILE")
    with BoxerClient(tls_url, timeout=10) as c:
        with pytest.raises(BoxerConnectionError):
            c.health()
        # the terminal's own TLS handshake fails before any request is sent
        h = BoxHandle(c, BoxInfo.from_dict({"id": "box_x", "name": "x", "status": "running",
                                            "image": "busybox"}))
        with pytest.raises(BoxerError):
            h.attach(cmd=["true"])
