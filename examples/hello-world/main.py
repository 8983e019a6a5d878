#!/usr/bin/env python3
"""Hello world in a Boxer sandbox: the smallest complete use of the SDK.

    BOXER_URL=http://localhost:8080 python3 examples/hello-world/main.py

Exits 0 when the sandbox printed "hello world", non-zero otherwise, so CI
can run it as a smoke test.
"""

import os
import sys

from boxer import BoxerClient, BoxerError

IMAGE = os.environ.get("BOXER_PYTHON_IMAGE", "python:3.12-slim")


def main() -> int:
    # No URL given: the client uses $BOXER_URL, else http://localhost:8080.
    with BoxerClient() as client:
        print(f"server: {client.base_url}")
        try:
            result = client.run(
                image=IMAGE,
                cmd=["python3", "-c", "print('hello world')"],
            )
        except BoxerError as exc:
            print(f"run failed: {exc}", file=sys.stderr)
            return 2

    print(f"exec_id:   {result.exec_id}")
    print(f"exit_code: {result.exit_code}")
    print(f"wall_ms:   {result.wall_ms}")
    print(f"stdout:    {result.stdout!r}")
    print(f"stderr:    {result.stderr!r}")

    if result.exit_code != 0 or result.stdout != "hello world\n":
        print("unexpected result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
