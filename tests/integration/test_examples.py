"""The SDK examples, run for real against a live server (they exit non-zero
on unexpected results)."""

import os
import subprocess

import boxer_server


def test_examples_run_all(server):
    env = dict(os.environ, BOXER_URL=server.url, PYTHON="/usr/bin/python3")
    out = subprocess.run(["bash", os.path.join(boxer_server.REPO, "examples", "run-all.sh")],
                         env=env, capture_output=True, timeout=900)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    assert out.returncode == 0, text[-4000:]
    assert "pass@1" in text, text[-4000:]
