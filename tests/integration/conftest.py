import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boxer_server  # noqa: E402


def _require_tools():
    # A missing dependency fails the run loudly: tests never skip.
    missing = [t for t in ("runsc", "skopeo", "umoci", "docker-registry", "curl")
               if shutil.which(t) is None and not os.path.exists("/usr/bin/" + t)]
    if missing:
        pytest.exit("missing test dependencies: %s (run scripts/install-deps.sh)" % missing, 3)
    if not os.path.exists(boxer_server.BOXER_BIN):
        pytest.exit("server binary %s not built" % boxer_server.BOXER_BIN, 3)


@pytest.fixture(scope="session")
def registry():
    _require_tools()
    return boxer_server.ensure_registry()


@pytest.fixture(scope="session")
def server(registry):
    tmp = tempfile.mkdtemp(prefix="boxer-it-")
    srv = boxer_server.Server(tmp, registry=registry).start()
    yield srv
    try:
        boxer_server.stop_and_check(srv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def make_server(registry, tmp_path):
    """Factory for servers with their own config; all stopped at the end."""
    started = []

    def make(config=None, env=None, with_registry=True, start=True, preexec=None):
        d = tmp_path / ("srv%d" % len(started))
        srv = boxer_server.Server(d, config=config, registry=registry if with_registry else None,
                                  env=env, preexec=preexec)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in started:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop(check=False)
        boxer_server.unmount_under(srv.home)
