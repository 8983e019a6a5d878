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
    assert "=== agent-box: ok" in text and "'answer': 42" in text, text[-4000:]


def test_sdk_pip_install_offline(tmp_path):
    """`pip install ./sdk/python` needs nothing from the network."""
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    out = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index",
                          os.path.join(boxer_server.REPO, "sdk", "python")],
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import boxer, os; print(boxer.__file__)"], capture_output=True,
                         cwd=str(tmp_path), check=True)
    assert str(venv) in out.stdout.decode()
