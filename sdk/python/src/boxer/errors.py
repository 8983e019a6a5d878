"""Exceptions raised by the Boxer SDK.

Every failure surfaces as a :class:`BoxerError`.  Errors the server reported
carry its HTTP status (:class:`BoxerAPIError` and subclasses); failures to
reach the server at all are :class:`BoxerConnectionError`.  Exceptions of the
underlying HTTP library never escape; they are kept as ``__cause__`` for
debugging.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = [
    "BoxerError",
    "BoxerAPIError",
    "BoxerTimeoutError",
    "BoxerOutputLimitError",
    "BoxerQueueFullError",
    "BoxerConnectionError",
]


class BoxerError(Exception):
    """Base class of every exception raised by the SDK."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BoxerAPIError(BoxerError):
    """The server answered with an error status.

    ``status_code`` is the HTTP status, ``str(err)`` the server's message and
    ``body`` the decoded JSON error body (``None`` when it was not JSON).
    """

    def __init__(
        self,
        message: str,
        status_code: int,
        body: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body: Optional[Mapping[str, Any]] = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"


class BoxerTimeoutError(BoxerAPIError):
    """The command exceeded its wall-clock limit (HTTP 408).

    The server kills the sandbox and still reports what it captured so far:
    ``exec_id``, ``stdout`` and ``stderr`` hold it when the server sent it
    (``None`` otherwise).
    """

    def __init__(
        self,
        message: str,
        status_code: int = 408,
        body: Optional[Mapping[str, Any]] = None,
        *,
        exec_id: Optional[str] = None,
        stdout: Optional[str] = None,
        stderr: Optional[str] = None,
    ) -> None:
        super().__init__(message, status_code, body)
        self.exec_id = exec_id
        self.stdout = stdout
        self.stderr = stderr


class BoxerOutputLimitError(BoxerAPIError):
    """stdout or stderr grew past the server's ``output_limit_bytes`` (HTTP 507)."""


class BoxerQueueFullError(BoxerAPIError):
    """The server is at capacity (HTTP 503).

    ``retry_after`` is the number of seconds the server asked the client to
    wait (from the ``Retry-After`` header), or ``None`` when it gave none.
    """

    def __init__(
        self,
        message: str,
        status_code: int = 503,
        body: Optional[Mapping[str, Any]] = None,
        *,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, status_code, body)
        self.retry_after = retry_after


class BoxerConnectionError(BoxerError):
    """The server could not be reached, or the connection failed mid-request
    (refused, reset, DNS failure, client-side timeout, ...)."""
