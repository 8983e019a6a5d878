"""Python SDK for Boxer, a sandboxed container execution service.

    from boxer import BoxerClient

    with BoxerClient("http://localhost:8080") as client:
        result = client.run("python:3.12-slim", ["python3", "-c", "print('hi')"])
        print(result.stdout)
"""

from ._version import __version__
from .client import AsyncBoxerClient, BoxerClient
from .errors import (
    BoxerAPIError,
    BoxerConnectionError,
    BoxerError,
    BoxerOutputLimitError,
    BoxerQueueFullError,
    BoxerTimeoutError,
)
from .models import ResourceLimits, RunResult

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
]
