"""Exceptions raised by the Boxer SDK.

Every failure surfaces as a :class:`BoxerError`.  Errors the server reported
carry its HTTP status (:class:`BoxerAPIError` and subclasses); failures to
reach the server at all are :class:`BoxerConnectionError`.  Exceptions of the
underlying HTTP library never escape; they are kept as ``__cause__`` for
debugging.

Every error carries ``status`` (HTTP status, ``None`` when the server was not
reached), ``code`` (the server's code such as ``BOX_NOT_FOUND``, ``None`` when
it gave none) and ``message``.  Each code of the Boxes API has its own
subclass of :class:`BoxerAPIError` (:class:`BoxNotFoundError`, ...).  The
status classes of the original API stay what they were: a 408 is always a
:class:`BoxerTimeoutError` (code ``TIMEOUT`` on ``/v1``), a 503 always a
:class:`BoxerQueueFullError` (on ``/v1`` also a :class:`ResourceExceededError`
when the code says so) and a 507 always a :class:`BoxerOutputLimitError`.

``BoxRunError`` is an alias of :class:`BoxerError`, so code written for
BoxRun's SDK (``except BoxRunError as e: e.code, e.message``) works unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Type

__all__ = [
    "BoxerError",
    "BoxRunError",
    "BoxerAPIError",
    "BoxerTimeoutError",
    "BoxerOutputLimitError",
    "BoxerQueueFullError",
    "BoxerConnectionError",
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
    "error_class_for",
]


class BoxerError(Exception):
    """Base class of every exception raised by the SDK."""

    #: The server's error code (``BOX_NOT_FOUND``, ...), None when it gave none.
    code: Optional[str] = None
    #: The HTTP status, None when no answer was received.
    status: Optional[int] = None

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
        self.status = status_code
        self.body: Optional[Mapping[str, Any]] = body
        code = body.get("code") if body is not None else None
        self.code = code if isinstance(code, str) and code else None

    def __repr__(self) -> str:
        code = f", code={self.code!r}" if self.code else ""
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code}{code})"


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


BoxRunError = BoxerError


class BoxNotFoundError(BoxerAPIError):
    """``BOX_NOT_FOUND`` (404): no box has that id or name."""


class ExecNotFoundError(BoxerAPIError):
    """``EXEC_NOT_FOUND`` (404)."""


class BoxerFileNotFoundError(BoxerAPIError):
    """``FILE_NOT_FOUND`` (404): the path does not exist in the box."""


class BoxNotRunningError(BoxerAPIError):
    """``BOX_NOT_RUNNING`` (409): the box is stopped."""


class BoxAlreadyRunningError(BoxerAPIError):
    """``BOX_ALREADY_RUNNING`` (409): start of a running box, or remove of a
    running box without ``force``."""


class ExecAlreadyFinishedError(BoxerAPIError):
    """``EXEC_ALREADY_FINISHED`` (409)."""


class NameAlreadyExistsError(BoxerAPIError):
    """``NAME_ALREADY_EXISTS`` (409)."""


class InvalidRequestError(BoxerAPIError):
    """``INVALID_REQUEST`` (400): a field failed validation; the message names it."""


class ResourceExceededError(BoxerAPIError):
    """``RESOURCE_EXCEEDED``: over ``max_limits`` (400), or the node is full
    (503, then raised as :class:`NodeFullError`)."""


class NodeFullError(BoxerQueueFullError, ResourceExceededError):
    """``RESOURCE_EXCEEDED`` with 503: no room for the box now; retry after
    ``retry_after`` seconds."""


class ImagePullFailedError(BoxerAPIError):
    """``IMAGE_PULL_FAILED`` (502)."""


class CanceledError(BoxerAPIError):
    """``CANCELED`` (409)."""


class StdinClosedError(BoxerAPIError):
    """``STDIN_CLOSED`` (409): the exec has no open stdin (no
    ``stdin_open``, or after ``eof``)."""


class StdinBufferFullError(BoxerAPIError):
    """``STDIN_BUFFER_FULL`` (429): the command has not read enough of its
    input yet; nothing was taken: resend with the same offset later."""


class StdinOffsetGapError(BoxerAPIError):
    """``STDIN_OFFSET_GAP`` (409): the offset is past what the exec received."""


class BoxerRuntimeError(BoxerAPIError):
    """``RUNTIME_ERROR`` (500)."""


_BY_CODE = {
    "BOX_NOT_FOUND": BoxNotFoundError,
    "EXEC_NOT_FOUND": ExecNotFoundError,
    "FILE_NOT_FOUND": BoxerFileNotFoundError,
    "BOX_NOT_RUNNING": BoxNotRunningError,
    "BOX_ALREADY_RUNNING": BoxAlreadyRunningError,
    "EXEC_ALREADY_FINISHED": ExecAlreadyFinishedError,
    "NAME_ALREADY_EXISTS": NameAlreadyExistsError,
    "INVALID_REQUEST": InvalidRequestError,
    "RESOURCE_EXCEEDED": ResourceExceededError,
    "IMAGE_PULL_FAILED": ImagePullFailedError,
    "CANCELED": CanceledError,
    "RUNTIME_ERROR": BoxerRuntimeError,
    "STDIN_CLOSED": StdinClosedError,
    "STDIN_BUFFER_FULL": StdinBufferFullError,
    "STDIN_OFFSET_GAP": StdinOffsetGapError,
}


def error_class_for(status: int, code: Optional[str]) -> Type[BoxerAPIError]:
    """The class an error answer is raised as.  The status classes win where
    they exist (old ``except`` clauses keep catching what they caught); a
    503 ``RESOURCE_EXCEEDED`` is both."""
    if status == 408:
        return BoxerTimeoutError
    if status == 507:
        return BoxerOutputLimitError
    if status == 503:
        return NodeFullError if code == "RESOURCE_EXCEEDED" else BoxerQueueFullError
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    return BoxerAPIError
