"""BoxerClient (blocking) and AsyncBoxerClient (asyncio) for the Boxer HTTP API."""

from __future__ import annotations

import contextlib
import os
from types import TracebackType
from typing import (Any, AsyncIterator, Coroutine, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple,
                    Type, Union, overload)

import httpx

from . import _core, boxes
from ._core import EnvType, LimitsType, PathLike, StdinType, TimeoutType
from ._multipart import MultipartRun, MultipartUpload, UploadData
from .boxes import AsyncBoxHandle, BoxEnv, BoxHandle
from .models import BoxInfo, ExecEvent, RunResult

__all__ = ["BoxerClient", "AsyncBoxerClient"]


class _ClientBase:
    def __init__(
        self,
        base_url: Optional[str],
        timeout: TimeoutType,
        token: Optional[str],
        run_timeout: Optional[float],
    ) -> None:
        conn = _core.resolve_connection(base_url)
        self._base_url = conn.url
        self._http_base = conn.http_base
        self._uds = conn.uds
        self._timeout = _core.make_timeout(timeout)
        self._headers = _core.default_headers(_core.resolve_token(token))
        if run_timeout is not None and (
            isinstance(run_timeout, bool) or not isinstance(run_timeout, (int, float)) or run_timeout < 0
        ):
            raise ValueError("run_timeout must be a non-negative number of seconds or None")
        self._run_timeout = run_timeout

    @property
    def base_url(self) -> str:
        """The server URL this client talks to (``unix:///path`` for a socket)."""
        return self._base_url

    def _long_timeout(self) -> httpx.Timeout:
        # Box create/start/stop/remove wait for the box (a pull, a stop
        # grace): like /run, no read timeout unless run_timeout is set.
        return _core.run_request_timeout(self._timeout, self._run_timeout, None)

    @staticmethod
    def _create_body(
        image: str,
        name: Optional[str],
        cpu: Optional[float],
        memory_mb: Optional[int],
        disk_size_gb: Optional[int],
        network: Optional[bool],
        workdir: Optional[str],
        env: Optional[BoxEnv],
        volumes: Optional[Sequence[Mapping[str, Any]]],
        idle_timeout_secs: Optional[int],
        user: Optional[str] = None,
    ) -> Dict[str, Any]:
        return boxes.build_create_body(
            image,
            name=name,
            cpu=cpu,
            memory_mb=memory_mb,
            disk_size_gb=disk_size_gb,
            network=network,
            workdir=workdir,
            env=env,
            volumes=volumes,
            idle_timeout_secs=idle_timeout_secs,
            user=user,
        )

    @staticmethod
    def _list_params(status: Optional[str], extra: bool) -> Dict[str, str]:
        params: Dict[str, str] = {}
        if status is not None:
            if status not in ("running", "stopped"):
                raise ValueError('status must be "running", "stopped" or None')
            params["status"] = status
        if extra:
            params["extra"] = "1"
        return params

    @staticmethod
    def _gc_body(older_than: int) -> Dict[str, Any]:
        if isinstance(older_than, bool) or not isinstance(older_than, int) or older_than < 0:
            raise ValueError("older_than must be a non-negative number of seconds")
        return {"older_than": older_than}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    def _run_args(
        self, image: str, cmd: Sequence[str], **options: Any
    ) -> Tuple[Dict[str, Any], httpx.Timeout]:
        # options: build_run_body's keyword arguments, passed through as they are
        body = _core.build_run_body(image, cmd, **options)
        timeout = _core.run_request_timeout(self._timeout, self._run_timeout, body.get("limits"))
        return body, timeout

    def _run_request(
        self,
        image: str,
        cmd: Sequence[str],
        *,
        env: Optional[EnvType],
        cwd: Optional[str],
        limits: Optional[LimitsType],
        files: Optional[Sequence[str]],
        persist: bool,
        network: Optional[str],
        egress: Optional[Sequence[str]],
        stdin: Optional[StdinType],
        stream: bool,
        timeout_ms: Optional[int],
        disk_size_gb: Optional[int],
        volumes: Optional[Sequence[Mapping[str, Any]]],
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Tuple[str, Dict[str, Any], httpx.Timeout]:
        """(path, body, timeout) of a run: ``/run``, or BoxRun's ``/v1/run``
        when one of its own arguments (timeout_ms, disk_size_gb, volumes,
        user) is given."""
        if boxes.stream_base64(encoding) and not stream:
            raise ValueError('encoding="base64" is for stream=True (the events\' raw bytes)')
        if timeout_ms is None and disk_size_gb is None and volumes is None and user is None:
            body, timeout = self._run_args(
                image, cmd, env=env, cwd=cwd, limits=limits, files=files,
                persist=persist, network=network, egress=egress, stdin=stdin,
                inputs=inputs, return_outputs=return_outputs
            )
            if stream:
                body["stream"] = True
                if boxes.stream_base64(encoding):
                    body["encoding"] = "base64"
            for remote, source in (input_files or {}).items():
                if isinstance(source, tuple):
                    # (source, mode): the mode travels in the request part
                    if len(source) != 2 or isinstance(source[1], bool) or not isinstance(source[1], int):
                        raise ValueError(f"input_files[{remote!r}]: a tuple must be (source, mode)")
                    body.setdefault("inputs", {})[remote] = {"part": True, "mode": source[1]}
            return "/run", body, timeout
        if input_files is not None:
            raise ValueError("input_files needs POST /run: not with timeout_ms, disk_size_gb, volumes "
                             "or user")
        if stream:
            raise ValueError("stream=True streams POST /run, which takes limits= rather than "
                             "BoxRun's timeout_ms, disk_size_gb, volumes and user")
        if (cwd is not None or limits is not None or files is not None or persist
                or egress is not None or inputs is not None or return_outputs):
            raise ValueError("timeout_ms, disk_size_gb, volumes and user are BoxRun's run (POST /v1/run), "
                             "which takes no cwd, limits, files, persist, egress, inputs or "
                             "return_outputs")
        body = _core.build_v1_run_body(image, cmd, env=env, network=network, stdin=stdin,
                                       timeout_ms=timeout_ms, disk_size_gb=disk_size_gb,
                                       volumes=volumes, user=user)
        wall = {"wall_clock_secs": (timeout_ms or 0) / 1000.0}
        return "/v1/run", body, _core.run_request_timeout(self._timeout, self._run_timeout, wall)


def _run_upload(body: Dict[str, Any], input_files: Optional[Mapping[str, Any]]) -> Optional[MultipartRun]:
    """The multipart body of a run with ``input_files`` (None without)."""
    if input_files is None:
        return None
    if not isinstance(input_files, Mapping):
        raise TypeError("input_files must be a mapping {path: bytes, local path or file}")
    return MultipartRun(body, [(p, s[0] if isinstance(s, tuple) else s) for p, s in input_files.items()])


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
        if transport is None and self._uds is not None:
            transport = httpx.HTTPTransport(uds=self._uds)
        self._http = httpx.Client(
            base_url=self._http_base,
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

    def info(self) -> Dict[str, Any]:
        """``GET /v1/info``: BoxRun's ``max_cpu``, ``max_memory_mb`` and ours
        (version, node_id, box counts, limits, budget)."""
        return _core.parse_object(self._request("GET", "/v1/info"), "GET /v1/info")

    def node(self) -> Dict[str, Any]:
        """``GET /v1/node``: what the web console's node page shows (runsc,
        limits, budget, runs, warm pool, recent samples)."""
        return _core.parse_object(self._request("GET", "/v1/node"), "GET /v1/node")

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: Literal[False] = False,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> RunResult: ...

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: Literal[True],
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Iterator[ExecEvent]: ...

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: bool,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Union[RunResult, Iterator[ExecEvent]]: ...

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
        stdin: Optional[StdinType] = None,
        stream: bool = False,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Union[RunResult, Iterator[ExecEvent]]:
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
        - ``stdin``: the command's input (str sent as text, bytes as base64),
          then end of file; omitted, the command reads ``/dev/null``.

        - ``stream=True``: return an iterator of ExecEvents as the command
          runs (one request, the server's NDJSON stream): ``log`` events,
          then one ``result`` event whose ``.result`` is the RunResult.  A
          timeout or output limit raises at the end, as without streaming.
          Leaving the loop early closes the connection, which cancels the run.
          With ``encoding="base64"`` the output comes as base64 and each
          ``log`` event carries its exact bytes in ``raw``.
        - ``timeout_ms``, ``disk_size_gb``, ``volumes``, ``user``: BoxRun's
          ``client.run(image, cmd, timeout_ms=...)``, sent to ``POST
          /v1/run`` (with ``env``, ``network``, ``stdin``; not with ``cwd``,
          ``limits``, ``files``, ``persist``, ``egress`` or ``stream``).  As
          in BoxRun, a timeout is then a result (exit code 137,
          ``timed_out``, ``error_message``), not an exception.  The command
          runs as root with a box's capabilities on a writable root, or with
          ``user`` (``"uid"`` or ``"uid:gid"``, numeric; gid defaults to
          uid) as that user without capabilities.  (``POST /run`` always
          runs as uid 65534.)
        - ``inputs``: files carried in the request (``{"path": "text" |
          bytes | {"content", "mode"}}``), mounted read-only at ``/<path>``;
          ``return_outputs=True``: the ``/output`` files come back in
          ``RunResult.outputs`` (issue 17).
        - ``input_files``: ``{"path": bytes | local path | binary file |
          (any of those, mode)}``: sent as a multipart ``POST /run``, each
          file streamed (never whole in memory, no base64) and mounted
          read-only at ``/<path>`` like ``inputs`` (default mode 0644).

        A non-zero exit code is returned, not raised.  Raises
        BoxerTimeoutError (wall clock exceeded), BoxerOutputLimitError
        (output over the server's limit), BoxerQueueFullError (server busy),
        BoxerAPIError (other errors) and BoxerConnectionError.
        """
        path, body, timeout = self._run_request(
            image, cmd, env=env, cwd=cwd, limits=limits, files=files, persist=persist,
            network=network, egress=egress, stdin=stdin, stream=stream, timeout_ms=timeout_ms,
            disk_size_gb=disk_size_gb, volumes=volumes,
            inputs=inputs, return_outputs=return_outputs, encoding=encoding, input_files=input_files,
            user=user,
        )
        upload = _run_upload(body, input_files)
        if stream:
            return self._stream_events("POST", path, body, timeout,
                                       base64=boxes.stream_base64(encoding), upload=upload)
        if path == "/v1/run":
            return _core.parse_v1_run_result(
                self._request("POST", path, params={"extra": "1"}, json=body, timeout=timeout))
        if upload is not None:
            chunks = upload.iter_chunks()
            try:
                return _core.parse_run_result(self._request(
                    "POST", path, upload=True, content=chunks, headers=upload.headers, timeout=timeout))
            finally:
                chunks.close()
        return _core.parse_run_result(self._request("POST", path, json=body, timeout=timeout))

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

    # ---- boxes (/v1), BoxRun's names ----

    def create(
        self,
        image: str,
        *,
        name: Optional[str] = None,
        cpu: Optional[float] = None,
        memory_mb: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        network: Optional[bool] = None,
        workdir: Optional[str] = None,
        env: Optional[BoxEnv] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        idle_timeout_secs: Optional[int] = None,
        user: Optional[str] = None,
    ) -> BoxHandle:
        """Create a box of ``image`` and return a handle once it runs.

        Fields left None take the server's ``box_defaults`` (BoxRun's: 2
        CPUs, 1024 MB, 8 GB disk, no network, workdir ``/root``).
        ``volumes``: ``[{"host_path": ..., "guest_path": ..., "readonly":
        bool}]`` (host paths must lie under the server's ``volume_roots``).
        ``idle_timeout_secs`` (Boxer's): stop the box after this long without
        an exec.  ``user`` (Boxer's): ``"uid"`` or ``"uid:gid"``, the user
        every exec of the box runs as unless the exec gives its own (default
        root).  Raises NameAlreadyExistsError, ResourceExceededError,
        ImagePullFailedError, InvalidRequestError, ...
        """
        body = self._create_body(image, name, cpu, memory_mb, disk_size_gb, network, workdir, env, volumes,
                                 idle_timeout_secs, user)
        r = self._request("POST", "/v1/boxes", json=body, timeout=self._long_timeout())
        return BoxHandle(self, boxes.parse_box(r, "POST /v1/boxes"))

    def box(self, id_or_name: str) -> BoxHandle:
        """A handle to an existing box (BoxNotFoundError when there is none)."""
        return BoxHandle(self, self.get_box(id_or_name))

    def get_box(self, id_or_name: str, *, extra: bool = False) -> BoxInfo:
        """Info about a box by id or name; ``extra=True`` adds Boxer's fields."""
        r = self._request("GET", boxes.box_path(id_or_name), params=boxes.extra_params(extra))
        return boxes.parse_box(r, "GET box")

    def list_boxes(self, status: Optional[str] = None, *, extra: bool = False) -> List[BoxInfo]:
        """Every box, or those with ``status`` ``"running"`` / ``"stopped"``."""
        r = self._request("GET", "/v1/boxes", params=self._list_params(status, extra))
        return boxes.with_status(boxes.parse_boxes(r, "GET /v1/boxes"), status)

    def gc(self, older_than: int = 3600) -> int:
        """Remove the boxes stopped more than ``older_than`` seconds ago
        (0: every stopped box); returns how many were removed."""
        r = self._request("POST", "/v1/gc", json=self._gc_body(older_than), timeout=self._long_timeout())
        return boxes.parse_gc(r)

    def _box_upload(self, box_id: str, data: UploadData, dest_path: str) -> None:
        if not isinstance(dest_path, str) or not dest_path.startswith("/"):
            raise ValueError("dest_path must be an absolute path in the box")
        upload = MultipartUpload(dest_path, data, path_field="dest")
        chunks = upload.iter_chunks()
        try:
            self._request("POST", boxes.box_path(box_id, "/files/upload"), upload=True, content=chunks,
                          headers=upload.headers)
        finally:
            chunks.close()

    def _stream_events(
        self, method: str, path: str, body: Optional[Dict[str, Any]], timeout: httpx.Timeout,
        params: Optional[Dict[str, str]] = None, base64: bool = False,
        upload: Optional[MultipartRun] = None,
    ) -> Iterator[ExecEvent]:
        decoder = boxes.StreamDecoder(base64)
        send: Dict[str, Any] = {"json": body, "headers": {"Accept": "application/x-ndjson"}}
        if upload is not None:
            send = {"content": upload.iter_chunks(),
                    "headers": dict(upload.headers, Accept="application/x-ndjson")}
        with _core.translate_errors(method, self._base_url + path, upload=upload is not None):
            with self._http.stream(method, path, timeout=timeout, params=params, **send) as response:
                if response.status_code >= 300:
                    response.read()
                    _core.raise_for_status(response)
                decoder.check_response(response)
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
                        if event.type in ("exit", "result"):
                            return
                decoder.finish()

    def _box_download(self, box_id: str, remote_path: str, local_path: PathLike) -> None:
        path = boxes.box_path(box_id, "/files/download")
        local = os.fspath(local_path)
        done = False
        with _core.translate_errors("POST", self._base_url + path):
            with self._http.stream("POST", path, json={"path": remote_path}) as response:
                if response.status_code >= 300:
                    response.read()
                    _core.raise_for_status(response)
                try:
                    with open(local, "wb") as f:
                        for chunk in response.iter_bytes():
                            f.write(chunk)
                    done = True
                finally:
                    if not done:
                        with contextlib.suppress(OSError):
                            os.unlink(local)


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
        if transport is None and self._uds is not None:
            transport = httpx.AsyncHTTPTransport(uds=self._uds)
        self._http = httpx.AsyncClient(
            base_url=self._http_base,
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

    async def info(self) -> Dict[str, Any]:
        """See BoxerClient.info."""
        return _core.parse_object(await self._request("GET", "/v1/info"), "GET /v1/info")

    async def node(self) -> Dict[str, Any]:
        """See BoxerClient.node."""
        return _core.parse_object(await self._request("GET", "/v1/node"), "GET /v1/node")

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: Literal[False] = False,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Coroutine[Any, Any, RunResult]: ...

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: Literal[True],
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> AsyncIterator[ExecEvent]: ...

    @overload
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
        stdin: Optional[StdinType] = None,
        stream: bool,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Union[Coroutine[Any, Any, RunResult], AsyncIterator[ExecEvent]]: ...

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
        stdin: Optional[StdinType] = None,
        stream: bool = False,
        timeout_ms: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        encoding: str = "utf8",
        input_files: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
    ) -> Union[Coroutine[Any, Any, RunResult], AsyncIterator[ExecEvent]]:
        """See BoxerClient.run: ``await client.run(...)``, or with
        ``stream=True`` ``async for event in client.run(..., stream=True)``.
        ``input_files`` may also hold file objects whose ``read(n)`` is a
        coroutine (e.g. aiofiles)."""
        path, body, timeout = self._run_request(
            image, cmd, env=env, cwd=cwd, limits=limits, files=files, persist=persist,
            network=network, egress=egress, stdin=stdin, stream=stream, timeout_ms=timeout_ms,
            disk_size_gb=disk_size_gb, volumes=volumes,
            inputs=inputs, return_outputs=return_outputs, encoding=encoding, input_files=input_files,
            user=user,
        )
        upload = _run_upload(body, input_files)
        if stream:
            return self._stream_events("POST", path, body, timeout,
                                       base64=boxes.stream_base64(encoding), upload=upload)
        return self._run_once(path, body, timeout, upload)

    async def _run_once(self, path: str, body: Dict[str, Any], timeout: httpx.Timeout,
                        upload: Optional[MultipartRun] = None) -> RunResult:
        if upload is not None:
            chunks = upload.aiter_chunks()
            try:
                return _core.parse_run_result(await self._request(
                    "POST", path, upload=True, content=chunks, headers=upload.headers, timeout=timeout))
            finally:
                await chunks.aclose()
        if path == "/v1/run":
            return _core.parse_v1_run_result(
                await self._request("POST", path, params={"extra": "1"}, json=body, timeout=timeout))
        return _core.parse_run_result(await self._request("POST", path, json=body, timeout=timeout))

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

    # ---- boxes (/v1), BoxRun's names ----

    async def create(
        self,
        image: str,
        *,
        name: Optional[str] = None,
        cpu: Optional[float] = None,
        memory_mb: Optional[int] = None,
        disk_size_gb: Optional[int] = None,
        network: Optional[bool] = None,
        workdir: Optional[str] = None,
        env: Optional[BoxEnv] = None,
        volumes: Optional[Sequence[Mapping[str, Any]]] = None,
        inputs: Optional[Mapping[str, Any]] = None,
        return_outputs: bool = False,
        idle_timeout_secs: Optional[int] = None,
        user: Optional[str] = None,
    ) -> AsyncBoxHandle:
        """See BoxerClient.create."""
        body = self._create_body(image, name, cpu, memory_mb, disk_size_gb, network, workdir, env, volumes,
                                 idle_timeout_secs, user)
        r = await self._request("POST", "/v1/boxes", json=body, timeout=self._long_timeout())
        return AsyncBoxHandle(self, boxes.parse_box(r, "POST /v1/boxes"))

    async def box(self, id_or_name: str) -> AsyncBoxHandle:
        """See BoxerClient.box."""
        return AsyncBoxHandle(self, await self.get_box(id_or_name))

    async def get_box(self, id_or_name: str, *, extra: bool = False) -> BoxInfo:
        """See BoxerClient.get_box."""
        r = await self._request("GET", boxes.box_path(id_or_name), params=boxes.extra_params(extra))
        return boxes.parse_box(r, "GET box")

    async def list_boxes(self, status: Optional[str] = None, *, extra: bool = False) -> List[BoxInfo]:
        """See BoxerClient.list_boxes."""
        r = await self._request("GET", "/v1/boxes", params=self._list_params(status, extra))
        return boxes.with_status(boxes.parse_boxes(r, "GET /v1/boxes"), status)

    async def gc(self, older_than: int = 3600) -> int:
        """See BoxerClient.gc."""
        r = await self._request("POST", "/v1/gc", json=self._gc_body(older_than), timeout=self._long_timeout())
        return boxes.parse_gc(r)

    async def _box_upload(self, box_id: str, data: UploadData, dest_path: str) -> None:
        if not isinstance(dest_path, str) or not dest_path.startswith("/"):
            raise ValueError("dest_path must be an absolute path in the box")
        upload = MultipartUpload(dest_path, data, path_field="dest")
        chunks = upload.aiter_chunks()
        try:
            await self._request("POST", boxes.box_path(box_id, "/files/upload"), upload=True, content=chunks,
                                headers=upload.headers)
        finally:
            await chunks.aclose()

    async def _stream_events(
        self, method: str, path: str, body: Optional[Dict[str, Any]], timeout: httpx.Timeout,
        params: Optional[Dict[str, str]] = None, base64: bool = False,
        upload: Optional[MultipartRun] = None,
    ) -> AsyncIterator[ExecEvent]:
        decoder = boxes.StreamDecoder(base64)
        send: Dict[str, Any] = {"json": body, "headers": {"Accept": "application/x-ndjson"}}
        if upload is not None:
            send = {"content": upload.aiter_chunks(),
                    "headers": dict(upload.headers, Accept="application/x-ndjson")}
        with _core.translate_errors(method, self._base_url + path, upload=upload is not None):
            async with self._http.stream(method, path, timeout=timeout, params=params,
                                         **send) as response:
                if response.status_code >= 300:
                    await response.aread()
                    _core.raise_for_status(response)
                decoder.check_response(response)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
                        if event.type in ("exit", "result"):
                            return
                decoder.finish()

    async def _box_download(self, box_id: str, remote_path: str, local_path: PathLike) -> None:
        path = boxes.box_path(box_id, "/files/download")
        local = os.fspath(local_path)
        done = False
        with _core.translate_errors("POST", self._base_url + path):
            async with self._http.stream("POST", path, json={"path": remote_path}) as response:
                if response.status_code >= 300:
                    await response.aread()
                    _core.raise_for_status(response)
                try:
                    with open(local, "wb") as f:
                        async for chunk in response.aiter_bytes():
                            f.write(chunk)
                    done = True
                finally:
                    if not done:
                        with contextlib.suppress(OSError):
                            os.unlink(local)
