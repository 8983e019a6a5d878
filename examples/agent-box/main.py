#!/usr/bin/env python3
"""BoxRun's "AI agent pattern" on Boxer: a box that lives across commands.

    BOXER_URL=http://localhost:8080 python3 examples/agent-box/main.py

Creates a box, uploads a script, runs it, downloads what it wrote and removes
the box, with the async client and the method names of BoxRun's SDK (code
written for ``boxrun_sdk`` moves over by changing the import).  Exits 0 when
every step gave the expected result.
"""

import asyncio
import json
import os
import sys
import tempfile

from boxer import AsyncBoxerClient, BoxerError

IMAGE = os.environ.get("BOXER_PYTHON_IMAGE", "python:3.12-slim")

SCRIPT = """\
import json, platform
with open("/root/output.json", "w") as f:
    json.dump({"answer": 6 * 7, "python": platform.python_version()}, f)
print("wrote /root/output.json")
"""


async def agent_task(work: str) -> int:
    # No URL given: $BOXER_URL, else ~/.boxer/boxer.sock, else 127.0.0.1:8080.
    async with AsyncBoxerClient() as client:
        box = await client.create(IMAGE, name=f"agent-{os.getpid()}", memory_mb=256)
        try:
            print(f"box {box.id} ({box.name}) is {box.info.status}")
            version = await box.exec(["python3", "--version"])
            print("exec:", version.exit_code, version.stdout.strip() if version.stdout else "")

            script = os.path.join(work, "script.py")
            with open(script, "w") as f:
                f.write(SCRIPT)
            await box.upload(script, "/root/script.py")

            run = await box.exec(["python3", "/root/script.py"])
            print(f"script: {run.status}, exit {run.exit_code}: {run.stdout!r}")
            if run.exit_code != 0:
                print(run.stderr, file=sys.stderr)
                return 1

            out = os.path.join(work, "output.json")
            await box.download("/root/output.json", out)
            with open(out) as f:
                data = json.load(f)
            print("downloaded:", data)
            return 0 if data["answer"] == 42 else 1
        finally:
            await box.remove(force=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        try:
            return asyncio.run(agent_task(work))
        except BoxerError as exc:
            print(f"failed: [{exc.code}] {exc.message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
