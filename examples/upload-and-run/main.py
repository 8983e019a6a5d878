#!/usr/bin/env python3
"""Upload a Python project, run its pytest suite in a Boxer sandbox, and read
the JSON report the run leaves in /output.

    BOXER_URL=http://localhost:8080 python3 examples/upload-and-run/main.py

The project lives in ./project: a small library (textstats/), its tests
(tests/) and a conftest.py that writes a JSON report to the file named by
$BOXER_REPORT.  The image must contain pytest (set BOXER_PYTEST_IMAGE to
choose one; the default is python:3.12-slim).

Exits 0 when every test passed inside the sandbox, non-zero otherwise.
"""

import json
import os
import sys
import uuid
from pathlib import Path

from boxer import BoxerClient, BoxerError, ResourceLimits

IMAGE = os.environ.get("BOXER_PYTEST_IMAGE", "python:3.12-slim")
PROJECT = Path(__file__).resolve().parent / "project"
EXPECTED_TESTS = 10  # tests in project/tests, all expected to pass


def main() -> int:
    # A fresh prefix per run, so concurrent or repeated runs never collide.
    prefix = f"examples/upload-and-run/{uuid.uuid4().hex[:12]}"

    with BoxerClient() as client:
        print(f"server: {client.base_url}")
        try:
            stored = client.upload_path(PROJECT, prefix)
            print(f"uploaded {len(stored)} files under {prefix}/")
            for path in stored:
                print(f"  {path}")

            result = client.run(
                image=IMAGE,
                cmd=["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                cwd=f"/{prefix}",
                files=stored,
                env={"BOXER_REPORT": "/output/report.json", "PYTHONDONTWRITEBYTECODE": "1"},
                limits=ResourceLimits(wall_clock_secs=120, memory_mb=512),
                persist=True,  # keep /output so the report can be downloaded
            )
        except BoxerError as exc:
            print(f"sandbox run failed: {exc}", file=sys.stderr)
            return 2

        print(f"\npytest exited {result.exit_code} in {result.wall_ms} ms; its output:")
        print(result.stdout.rstrip())
        if result.stderr.strip():
            print(result.stderr.rstrip(), file=sys.stderr)
        if "No module named pytest" in result.stderr:
            print(f"\nthe image {IMAGE} has no pytest: set BOXER_PYTEST_IMAGE", file=sys.stderr)
            return 1

        try:
            raw = client.download_file(f"output/{result.exec_id}/report.json")
        except BoxerError as exc:
            print(f"could not download the report: {exc}", file=sys.stderr)
            return 1

    report = json.loads(raw)
    print(f"\nreport (output/{result.exec_id}/report.json):")
    for test in report["tests"]:
        print(f"  {test['outcome']:8} {test['nodeid']}")
    summary = report["summary"]
    print(f"summary: {summary}, pytest exit status {report['exit_status']}")

    if result.exit_code != 0 or report["exit_status"] != 0:
        return 1
    if summary.get("passed", 0) != EXPECTED_TESTS or len(report["tests"]) != EXPECTED_TESTS:
        print(f"expected {EXPECTED_TESTS} passing tests", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
