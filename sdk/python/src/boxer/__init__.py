"""Python SDK for Boxer, a sandboxed container execution service.

    from boxer import BoxerClient

    with BoxerClient("http://localhost:8080") as client:
        result = client.run("python:3.12-slim", ["python3", "-c", "print('hi')"])
        print(result.stdout)

        box = client.create("python:3.12-slim", name="dev")   # BoxRun's names
        print(box.exec(["python3", "-c", "print(42)"]).stdout)
        box.remove(force=True)
"""

from ._version import __version__
from ._terminal import AsyncTerminal, Terminal
from .boxes import AsyncBoxHandle, BoxHandle
from .client import AsyncBoxerClient, BoxerClient
from .errors import (
    BoxAlreadyRunningError,
    BoxerAPIError,
    BoxerConnectionError,
    BoxerError,
    BoxerFileNotFoundError,
    BoxerOutputLimitError,
    BoxerQueueFullError,
    BoxerRuntimeError,
    BoxerTimeoutError,
    BoxNotFoundError,
    BoxNotRunningError,
    BoxRunError,
    CanceledError,
    ExecAlreadyFinishedError,
    ExecNotFoundError,
    ImagePullFailedError,
    InvalidRequestError,
    NameAlreadyExistsError,
    NodeFullError,
    ResourceExceededError,
    StdinBufferFullError,
    StdinClosedError,
    StdinOffsetGapError,
)
from .models import BoxInfo, ExecEvent, ExecInfo, ResourceLimits, RunResult

__all__ = [
    "__version__",
    "BoxerClient",
    "AsyncBoxerClient",
    "ResourceLimits",
    "RunResult",
    "BoxerError",
    "BoxerAPIError",
    "BoxerTimeoutError",
    "BoxerOutputLimitError",
    "BoxerQueueFullError",
    "BoxerConnectionError",
    "BoxHandle",
    "AsyncBoxHandle",
    "Terminal",
    "AsyncTerminal",
    "BoxInfo",
    "ExecInfo",
    "ExecEvent",
    "BoxRunError",
    "BoxNotFoundError",
    "ExecNotFoundError",
    "BoxerFileNotFoundError",
    "BoxNotRunningError",
    "BoxAlreadyRunningError",
    "ExecAlreadyFinishedError",
    "NameAlreadyExistsError",
    "InvalidRequestError",
    "ResourceExceededError",
    "NodeFullError",
    "ImagePullFailedError",
    "CanceledError",
    "BoxerRuntimeError",
    "StdinClosedError",
    "StdinBufferFullError",
    "StdinOffsetGapError",
]
