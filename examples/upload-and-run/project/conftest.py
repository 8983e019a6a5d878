"""Writes a JSON test report when BOXER_REPORT names a file.

pytest-json-report is not assumed to be installed in the sandbox image, so
this conftest collects the outcome of every test itself.  Outside the
sandbox (BOXER_REPORT unset) it does nothing.
"""

import json
import os
import time

_results = []
_started = time.time()


def pytest_runtest_logreport(report):
    # One entry per test: its call phase, or the setup/teardown phase that
    # failed or skipped it.
    if report.when == "call" or report.outcome != "passed":
        entry = {
            "nodeid": report.nodeid,
            "phase": report.when,
            "outcome": report.outcome,
            "duration_s": round(report.duration, 4),
        }
        if report.failed:
            entry["message"] = str(report.longrepr)[-2000:]
        _results.append(entry)


def pytest_collectreport(report):
    if report.failed:
        _results.append(
            {"nodeid": report.nodeid, "phase": "collect", "outcome": "error",
             "message": str(report.longrepr)[-2000:]}
        )


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("BOXER_REPORT")
    if not path:
        return
    summary = {}
    for entry in _results:
        summary[entry["outcome"]] = summary.get(entry["outcome"], 0) + 1
    report = {
        "exit_status": int(exitstatus),
        "duration_s": round(time.time() - _started, 3),
        "summary": summary,
        "tests": _results,
    }
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
