"""Shared fixtures.

The SDK under test is the one in this source tree (``src/`` is put first on
``sys.path``), not whatever ``boxer`` may be installed.

Integration tests request the ``boxer_url`` fixture.  It uses ``$BOXER_URL``
when set; otherwise it starts a server with the repository's helper
``tests/integration/boxer_server.py`` (``start_server(tmpdir, config=...)
-> (url, stop)``; ``config`` overrides server settings, here
upload_limit_bytes).  When neither works the tests ERROR: nothing is skipped.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SDK_DIR = TESTS_DIR.parent
REPO_ROOT = SDK_DIR.parent.parent
sys.path.insert(0, str(SDK_DIR / "src"))

from boxer import BoxerClient, BoxerError  # noqa: E402
from boxer_testutil import TEST_RUN_TIMEOUT, UPLOAD_LIMIT_BYTES  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # Without pytest-asyncio, pytest merely warns and SKIPS async tests.
    names = {getattr(p, "__name__", "") for p in config.pluginmanager.get_plugins()}
    if not any(n.startswith("pytest_asyncio") for n in names):
        raise pytest.UsageError(
            "pytest-asyncio is required (Debian: python3-pytest-asyncio); "
            "without it the async tests would be skipped"
        )


def _start_repo_server(tmpdir: Path) -> "tuple[str, Optional[Callable[[], None]]]":
    helper_dir = REPO_ROOT / "tests" / "integration"
    helper = helper_dir / "boxer_server.py"
    if not helper.is_file():
        pytest.fail(
            f"BOXER_URL is not set and {helper} does not exist, so no Boxer server can be "
            "started: set BOXER_URL=http://host:port of a running server",
            pytrace=False,
        )
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))
    try:
        import boxer_server  # type: ignore
    except Exception as exc:  # any import failure is a test error, never a skip
        pytest.fail(f"cannot import {helper}: {exc!r}", pytrace=False)
    start = boxer_server.start_server
    # The large-upload tests need upload_limit_bytes above the default 10 MiB;
    # pass it when the helper takes a config override.
    if "config" in inspect.signature(start).parameters:
        url, stop = start(tmpdir, config={"upload_limit_bytes": UPLOAD_LIMIT_BYTES})
    else:
        url, stop = start(tmpdir)
    return str(url), stop


@pytest.fixture(scope="session")
def boxer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("BOXER_URL")
    stop: Optional[Callable[[], None]] = None
    if not url:
        url, stop = _start_repo_server(tmp_path_factory.mktemp("boxer-server"))
    try:
        try:
            with BoxerClient(url, timeout=10) as client:
                healthy = client.health()
        except BoxerError as exc:
            pytest.fail(f"Boxer server at {url} is not reachable: {exc}", pytrace=False)
        if not healthy:
            pytest.fail(f"Boxer server at {url} reports itself unhealthy", pytrace=False)
        yield url
    finally:
        if stop is not None:
            stop()


@pytest.fixture
def client(boxer_url: str) -> Iterator[BoxerClient]:
    with BoxerClient(boxer_url, run_timeout=TEST_RUN_TIMEOUT) as c:
        yield c
