#!/usr/bin/env python3
"""Score a batch of generated solutions in Boxer sandboxes, concurrently.

    BOXER_URL=http://localhost:8080 python3 examples/batch-eval/main.py

Each problem's generated solution runs with its reference tests in its own
sandbox, under tight limits.  The outcome is one of:

    pass     exit code 0 and the tests' completion marker printed
    fail     any other completed run (wrong answer, exception, ...)
    timeout  the wall clock ran out (BoxerTimeoutError)
    oom      killed for memory (result.oom_killed, or exit code 137)

It prints pass@1 (one sample per problem: the fraction that passed) and a
table of outcomes.  Every problem declares the outcome a working sandbox must
produce; the script exits 1 when any differs, so CI can run it.
"""

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, Problem  # noqa: E402

from boxer import (  # noqa: E402
    AsyncBoxerClient,
    BoxerError,
    BoxerOutputLimitError,
    BoxerQueueFullError,
    BoxerTimeoutError,
    ResourceLimits,
)

IMAGE = os.environ.get("BOXER_PYTHON_IMAGE", "python:3.12-slim")
CONCURRENCY = int(os.environ.get("BOXER_CONCURRENCY", "4"))
LIMITS = ResourceLimits(cpu_cores=1.0, memory_mb=128, wall_clock_secs=10)
MARKER = "ALL TESTS PASSED"
MAX_QUEUE_RETRIES = 20


async def evaluate(client: AsyncBoxerClient, gate: asyncio.Semaphore, problem: Problem) -> Tuple[str, str]:
    """Run one solution against its tests: (outcome, detail)."""
    program = f"{problem.solution}\n\n{problem.tests}\nprint({MARKER!r})\n"
    async with gate:
        for _ in range(MAX_QUEUE_RETRIES):
            try:
                result = await client.run(IMAGE, ["python3", "-c", program], limits=LIMITS)
            except BoxerTimeoutError:
                return "timeout", f"killed after {LIMITS.wall_clock_secs}s"
            except BoxerOutputLimitError:
                return "fail", "output over the server's limit"
            except BoxerQueueFullError as exc:
                # The server is saturated: wait as asked, then try again.
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
                continue
            except BoxerError as exc:
                return "error", str(exc)
            break
        else:
            return "error", "server stayed busy"

    if result.oom_killed or result.exit_code == 137:
        return "oom", f"exit {result.exit_code}, oom_killed={result.oom_killed}"
    if result.exit_code == 0 and MARKER in result.stdout:
        return "pass", f"{result.wall_ms} ms"
    last_line = (result.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    return "fail", f"exit {result.exit_code}: {last_line[:70]}"


async def main() -> int:
    gate = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()
    async with AsyncBoxerClient() as client:
        print(f"server: {client.base_url}; {len(PROBLEMS)} problems, {CONCURRENCY} at a time")
        try:
            healthy = await client.health()
        except BoxerError as exc:
            print(f"server unreachable: {exc}", file=sys.stderr)
            return 2
        if not healthy:
            print("server unhealthy", file=sys.stderr)
            return 2
        outcomes: List[Tuple[str, str]] = await asyncio.gather(
            *(evaluate(client, gate, p) for p in PROBLEMS)
        )
    elapsed = time.monotonic() - started

    mismatches = 0
    print(f"\n{'problem':<20} {'outcome':<8} {'expected':<8} detail")
    for problem, (outcome, detail) in zip(PROBLEMS, outcomes):
        flag = "" if outcome == problem.expected else "  <-- UNEXPECTED"
        mismatches += outcome != problem.expected
        print(f"{problem.name:<20} {outcome:<8} {problem.expected:<8} {detail}{flag}")

    passed = sum(outcome == "pass" for outcome, _ in outcomes)
    print(f"\npass@1 = {passed}/{len(PROBLEMS)} = {passed / len(PROBLEMS):.3f}  ({elapsed:.1f} s)")
    counts = {k: sum(o == k for o, _ in outcomes) for k in ("pass", "fail", "timeout", "oom", "error")}
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if mismatches:
        print(f"{mismatches} outcome(s) differ from the expected ones", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
