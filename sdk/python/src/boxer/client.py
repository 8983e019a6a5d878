"""BoxerClient (blocking) and AsyncBoxerClient (asyncio) for the Boxer HTTP API."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import httpx

from . import _core
from ._core import EnvType, LimitsType, PathLike, TimeoutType
from ._multipart import MultipartUpload, UploadData
from .models import RunResult

__all__ = ["BoxerClient", "AsyncBoxerClient"]


class _ClientBase:
    def __init__(
        self,
        base_url: Optional[str],
        timeout: TimeoutType,
        token: Optional[str],
        run_timeout: Optional[float],
    ) -> None:
        self._base_url = _core.resolve_base_url(base_url)
        self._timeout = _core.make_timeout(timeout)
        self._headers = _core.default_headers(_core.resolve_token(token))
        if run_timeout is not None and (
            isinstance(run_timeout, bool) or not isinstance(run_timeout, (int, float)) or run_timeout < 0
        ):
            raise ValueError("run_timeout must be a non-negative number of seconds or None")
        self._run_timeout = run_timeout

    @property
    def base_url(self) -> str:
        """The server URL this client talks to."""
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    def _run_args(
        self, image: str, cmd: Sequence[str], **options: Any
    ) -> Tuple[Dict[str, Any], httpx.Timeout]:
        # options: build_run_body's keyword arguments, passed through as they are
        body = _core.build_run_body(image, cmd, **options)
        timeout = _core.run_request_timeout(self._timeout, self._run_timeout, body.get("limits"))
        return body, timeout


class BoxerClient(_ClientBase):
    """Blocking client for a Boxer server.

    ``base_url`` defaults to ``$BOXER_URL``, else ``http://localhost:8080``.
    ``token`` defaults to ``$BOXER_TOKEN``; when set, every request carries
    ``Authorization: Bearer <token>``.  ``timeout`` (seconds, or an
    ``httpx.Timeout``) bounds connecting and each read/write of ordinary
    requests.  ``run()`` waits for its answer without a read timeout unless
    ``run_timeout`` is given, in which case it waits at most ``run_timeout``
    seconds beyond the run's ``wall_clock_secs``.  ``transport`` replaces the
    HTTP transport (useful for tests with ``httpx.MockTransport``).

    Use it as a context manager, or call ``close()`` when done.  One client
    may be shared by several threads.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        timeout: TimeoutType = _core.DEFAULT_TIMEOUT,
        token: Optional[str] = None,
        *,
        run_timeout: Optional[float] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        super().__init__(base_url, timeout, token, run_timeout)
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=self._timeout,
            headers=self._headers,
            transport=transport,
        )

    def __enter__(self) -> "BoxerClient":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections.  The client is unusable afterwards."""
        self._http.close()

    def _request(self, method: str, path: str, *, upload: bool = False, **kwargs: Any) -> httpx.Response:
        with _core.translate_errors(method, self._base_url + path, upload=upload):
            response = self._http.request(method, path, **kwargs)
        _core.raise_for_status(response)
        return response

    def health(self) -> bool:
        """True when the server reports itself healthy (``GET /healthz``).

        Raises BoxerConnectionError when the server cannot be reached and
        BoxerAPIError when it answers with an error status.
        """
        return _core.parse_health(self._request("GET", "/healthz"))

    def run(
        self,
        image: str,
        cmd: Sequence[str],
        *,
        env: Optional[EnvType] = None,
        cwd: Optional[str] = None,
        limits: Optional[LimitsType] = None,
        files: Optional[Sequence[str]] = None,
        persist: bool = False,
        network: Optional[str] = None,
        egress: Optional[Sequence[str]] = None,
    ) -> RunResult:
        """Run ``cmd`` in a fresh sandbox of ``image`` and return its result.

        - ``env``: ``{"K": "V"}`` or ``["K=V", ...]``.
        - ``cwd``: working directory; when omitted the image's own working
          directory applies.
        - ``limits``: ResourceLimits (or a dict); unset fields take the
          server's defaults.
        - ``files``: store paths (uploaded before) to mount read-only at
          ``/<path>``; a missing one fails the request with 400.
        - ``persist``: keep the input files and the captured ``/output/``
          files (at ``output/<exec_id>/...``) after the run.
        - ``network``: ``"none"`` (server default), ``"sandbox"`` or ``"host"``.
        - ``egress``: with ``network="sandbox"`` only, the destinations this
          run may reach besides DNS: IPv4 addresses or networks, each with an
          optional port (``["203.0.113.0/24:443", "198.51.100.7"]``); ``[]``
          allows DNS only; omitted, the server's rules alone apply.

        A non-zero exit code is returned, not raised.  Raises
        BoxerTimeoutError (wall clock exceeded), BoxerOutputLimitError
        (output over the server's limit), BoxerQueueFullError (server busy),
        BoxerAPIError (other errors) and BoxerConnectionError.
        """
        body, timeout = self._run_args(
            image, cmd, env=env, cwd=cwd, limits=limits, files=files,
            persist=persist, network=network, egress=egress
        )
        return _core.parse_run_result(self._request("POST", "/run", json=body, timeout=timeout))

    def upload_file(self, remote_path: str, data: UploadData) -> str:
        """Store ``data`` at ``remote_path`` in the file store; returns the stored path.

        ``data`` is bytes or a binary file object, read from its current
        position to the end in chunks (never whole into memory).
        """
        upload = MultipartUpload(remote_path, data)
        chunks = upload.iter_chunks()
        try:
            response = self._request("POST", "/files", upload=True, content=chunks, headers=upload.headers)
        finally:
            chunks.close()
        return _core.parse_upload(response)

    def upload_path(self, local_path: PathLike, remote_path: Optional[str] = None) -> List[str]:
        """Upload a file, or a directory recursively; returns the stored paths.

        A file is stored at ``remote_path`` (default: its base name).  For a
        directory, each file is stored at ``<remote_path>/<relative path>``
        (``/``-separated); ``remote_path`` defaults to the directory's name,
        ``""`` stores the files at the top of the store.
        """
        stored = []
        for local, remote in _core.collect_upload_paths(local_path, remote_path):
            with open(local, "rb") as f:
                stored.append(self.upload_file(remote, f))
        return stored

    def download_file(self, path: str) -> bytes:
        """Contents of a stored file, e.g. ``output/<exec_id>/result.json``."""
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        return self._request("GET", "/files", params={"path": path}).content


class AsyncBoxerClient(_ClientBase):
    """asyncio client for a Boxer server; the same API as BoxerClient, awaitable.

    Use ``async with``, or ``await client.close()`` when done.  Many
    concurrent ``run()`` calls may share one client.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        timeout: TimeoutType = _core.DEFAULT_TIMEOUT,
        token: Optional[str] = None,
        *,
        run_timeout: Optional[float] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        super().__init__(base_url, timeout, token, run_timeout)
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout,
            headers=self._headers,
            transport=transport,
        )

    async def __aenter__(self) -> "AsyncBoxerClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pooled connections.  The client is unusable afterwards."""
        await self._http.aclose()

    aclose = close

    async def _request(self, method: str, path: str, *, upload: bool = False, **kwargs: Any) -> httpx.Response:
        with _core.translate_errors(method, self._base_url + path, upload=upload):
            response = await self._http.request(method, path, **kwargs)
        _core.raise_for_status(response)
        return response

    async def health(self) -> bool:
        """See BoxerClient.health."""
        return _core.parse_health(await self._request("GET", "/healthz"))

    async def run(
        self,
        image: str,
        cmd: Sequence[str],
        *,
        env: Optional[EnvType] = None,
        cwd: Optional[str] = None,
        limits: Optional[LimitsType] = None,
        files: Optional[Sequence[str]] = None,
        persist: bool = False,
        network: Optional[str] = None,
        egress: Optional[Sequence[str]] = None,
    ) -> RunResult:
        """See BoxerClient.run."""
        body, timeout = self._run_args(
            image, cmd, env=env, cwd=cwd, limits=limits, files=files,
            persist=persist, network=network, egress=egress
        )
        return _core.parse_run_result(await self._request("POST", "/run", json=body, timeout=timeout))

    async def upload_file(self, remote_path: str, data: UploadData) -> str:
        """See BoxerClient.upload_file.  ``data`` may also be a file object
        whose ``read(n)`` is a coroutine (e.g. aiofiles)."""
        upload = MultipartUpload(remote_path, data)
        chunks = upload.aiter_chunks()
        try:
            response = await self._request(
                "POST", "/files", upload=True, content=chunks, headers=upload.headers
            )
        finally:
            await chunks.aclose()
        return _core.parse_upload(response)

    async def upload_path(self, local_path: PathLike, remote_path: Optional[str] = None) -> List[str]:
        """See BoxerClient.upload_path.  Files are uploaded one after another."""
        stored = []
        for local, remote in _core.collect_upload_paths(local_path, remote_path):
            with open(local, "rb") as f:
                stored.append(await self.upload_file(remote, f))
        return stored

    async def download_file(self, path: str) -> bytes:
        """See BoxerClient.download_file."""
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        return (await self._request("GET", "/files", params={"path": path})).content
