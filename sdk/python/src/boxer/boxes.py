"""Boxes: long-lived sandboxes driven through the ``/v1`` API.

The names and shapes are those of BoxRun's SDK (``client.create(...)``
returns a handle with ``exec``, ``upload``, ``download``, ``stop``,
``start``, ``remove``, ``refresh``), so code written for it moves over by
changing the import.  Where BoxRun's SDK polls, this one asks once:
``exec`` is a single request that returns when the command has ended, with
its output on the returned :class:`ExecInfo`.
"""

from __future__ import annotations

import json
import os
from base64 import b64decode
import signal as signal_module
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, TypeVar, Union)
from urllib.parse import quote

import httpx

from ._terminal import AsyncTerminal, Terminal, _Session
from ._core import PathLike, StdinType, add_stdin, env_to_list, run_result_of_event
from .errors import BoxerError
from .models import BoxInfo, ExecEvent, ExecInfo

if TYPE_CHECKING:  # pragma: no cover
    from .client import AsyncBoxerClient, BoxerClient

__all__ = ["BoxHandle", "AsyncBoxHandle"]

BoxEnv = Union[Mapping[str, str], Sequence[str]]


_T = TypeVar("_T")

def box_path(id_or_name: str, suffix: str = "") -> str:
    if not isinstance(id_or_name, str) or not id_or_name:
        raise ValueError("box id or name must be a non-empty string")
    return "/v1/boxes/" + quote(id_or_name, safe="") + suffix


def env_to_dict(env: BoxEnv) -> Dict[str, str]:
    """``{"K": "V"}`` or ``["K=V", ...]`` as the JSON object ``/v1`` takes."""
    out: Dict[str, str] = {}
    for item in env_to_list(env):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _opt(body: Dict[str, Any], key: str, value: Any, *types: type) -> None:
    if value is None:
        return
    if isinstance(value, bool) and bool not in types:
        raise TypeError(f"{key} must not be a bool")
    if not isinstance(value, types):
        raise TypeError(f"{key} has the wrong type ({type(value).__name__})")
    body[key] = value


def build_create_body(
    image: str,
    *,
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
    """``POST /v1/boxes`` body; a field left None takes the server's default
    (``box_defaults``: BoxRun's cpu 2, 1024 MB, 8 GB, no network, /root)."""
    if not isinstance(image, str) or not image:
        raise ValueError("image must be a non-empty string")
    body: Dict[str, Any] = {"image": image}
    _opt(body, "name", name, str)
    _opt(body, "cpu", cpu, int, float)
    _opt(body, "memory_mb", memory_mb, int)
    _opt(body, "disk_size_gb", disk_size_gb, int)
    _opt(body, "network", network, bool)
    _opt(body, "workdir", workdir, str)
    _opt(body, "idle_timeout_secs", idle_timeout_secs, int)
    _opt(body, "user", user, str)
    if env is not None:
        body["env"] = env_to_dict(env)
    if volumes is not None:
        if isinstance(volumes, (str, bytes)) or not all(isinstance(v, Mapping) for v in volumes):
            raise TypeError('volumes must be a list of {"host_path", "guest_path", "readonly"} dicts')
        body["volumes"] = [dict(v) for v in volumes]
    return body


def build_exec_body(
    cmd: Sequence[str],
    *,
    env: Optional[BoxEnv],
    timeout_ms: Optional[int],
    workdir: Optional[str],
    stdin: Optional[StdinType] = None,
    stdin_open: bool = False,
) -> Dict[str, Any]:
    if isinstance(cmd, (str, bytes)):
        raise TypeError("cmd must be a list of strings, not a single string")
    cmd_list = list(cmd)
    if not cmd_list or not all(isinstance(c, str) for c in cmd_list):
        raise ValueError("cmd must be a non-empty list of strings")
    body: Dict[str, Any] = {"cmd": cmd_list, "wait": True}
    if env is not None:
        body["env"] = env_to_dict(env)
    _opt(body, "timeout_ms", timeout_ms, int)
    _opt(body, "workdir", workdir, str)
    add_stdin(body, stdin)
    if stdin_open:
        body["stdin_open"] = True
    return body


def stream_base64(encoding: str) -> bool:
    """``encoding=`` of a stream: ``"utf8"`` (the default: output as text,
    bytes that are not UTF-8 replaced by the server) or ``"base64"`` (the
    server sends the bytes as base64; events carry them in ``raw``)."""
    if encoding in ("utf8", "utf-8"):
        return False
    if encoding == "base64":
        return True
    raise ValueError('encoding must be "utf8" or "base64"')


def build_stream_body(
    cmd: Sequence[str],
    *,
    env: Optional[BoxEnv],
    timeout_ms: Optional[int],
    workdir: Optional[str],
    stdin: Optional[StdinType] = None,
    base64: bool = False,
) -> Dict[str, Any]:
    body = build_exec_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin)
    del body["wait"]
    body["stream"] = True
    if base64:
        body["encoding"] = "base64"
    return body


class StreamDecoder:
    """NDJSON lines of a streamed exec (DESIGN.md "Streaming") to ExecEvents
    of BoxRun's shape: ``start`` and ``keepalive`` lines are consumed,
    ``log``, ``truncated`` and ``exit`` become events, and so does the
    ``result`` that ends a streamed ``/run`` (raised when it is an error)."""

    def __init__(self, base64: bool = False) -> None:
        self.exec_id: Optional[str] = None
        self.ended = False
        self.base64 = base64  # log data is base64 (the request's "encoding")

    def feed(self, line: str) -> Optional[ExecEvent]:
        line = line.strip()
        if not line:
            return None
        try:
            obj = json.loads(line)
        except ValueError:
            raise BoxerError(f"exec stream: a line is not JSON: {line[:200]!r}") from None
        if not isinstance(obj, dict):
            raise BoxerError(f"exec stream: a line is not a JSON object: {line[:200]!r}")
        kind = obj.get("type")
        seq = obj.get("seq")
        seq_n = seq if isinstance(seq, int) and not isinstance(seq, bool) else -1
        if kind == "start":
            eid = obj.get("exec_id", obj.get("id"))
            self.exec_id = eid if isinstance(eid, str) else None
            return None
        if kind == "log":
            data = obj.get("data")
            stream = obj.get("stream")
            text = data if isinstance(data, str) else ""
            raw: Optional[bytes] = None
            if self.base64:
                try:
                    raw = b64decode(text, validate=True)
                except ValueError:
                    raise BoxerError(f"exec stream: log data is not base64: {text[:200]!r}") from None
                text = raw.decode("utf-8", "replace")
            return ExecEvent("log", text, stream if isinstance(stream, str) else None, seq_n,
                             self.exec_id, raw=raw)
        if kind == "truncated":
            payload = {"dropped": obj.get("dropped"), "first_seq": obj.get("first_seq")}
            return ExecEvent("truncated", json.dumps(payload), None, seq_n, self.exec_id)
        if kind == "exit":
            self.ended = True
            code = obj.get("exit_code")
            code_n = code if isinstance(code, int) and not isinstance(code, bool) else None
            status = obj.get("status")
            timed_out = obj.get("timed_out")
            return ExecEvent(
                "exit",
                json.dumps({"exit_code": code_n}),
                None,
                seq_n,
                self.exec_id,
                exit_code=code_n,
                status=status if isinstance(status, str) else None,
                timed_out=timed_out if isinstance(timed_out, bool) else None,
            )
        if kind == "result":
            self.ended = True
            result = run_result_of_event(obj)
            return ExecEvent("result", json.dumps({"exit_code": result.exit_code}), None, seq_n,
                             self.exec_id or result.exec_id, exit_code=result.exit_code,
                             timed_out=result.timed_out, result=result)
        return None  # keepalive, or a type a newer server added

    def check_response(self, response: httpx.Response) -> None:
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith("application/x-ndjson"):
            raise BoxerError(
                "exec stream: the server answered "
                f"{ctype or 'without a content type'} instead of an NDJSON stream "
                "(a server without exec streaming)"
            )

    def finish(self) -> None:
        if not self.ended:
            raise BoxerError("exec stream: the connection ended before the exit (or result) event")


def exec_timeout(base: httpx.Timeout, run_timeout: Optional[float], timeout_ms: Optional[int]) -> httpx.Timeout:
    """An exec with ``wait`` answers when the command ends: no read timeout
    unless the client has ``run_timeout`` (then that beyond ``timeout_ms``)."""
    read: Optional[float] = None
    if run_timeout is not None:
        read = float(run_timeout) + (timeout_ms or 0) / 1000.0
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def _parse_one(response: httpx.Response, what: str, from_dict: Callable[[Any], _T], noun: str) -> _T:
    try:
        return from_dict(response.json())
    except ValueError as exc:
        raise BoxerError(f"{what}: malformed {noun}: {exc}") from None


def _parse_list(response: httpx.Response, what: str, from_dict: Callable[[Any], _T],
                noun: str) -> List[_T]:
    try:
        data = response.json()
        if not isinstance(data, list):
            raise ValueError("not a list")
        return [from_dict(d) for d in data]
    except ValueError as exc:
        raise BoxerError(f"{what}: malformed {noun}: {exc}") from None


def parse_box(response: httpx.Response, what: str) -> BoxInfo:
    return _parse_one(response, what, BoxInfo.from_dict, "box info")


def parse_boxes(response: httpx.Response, what: str) -> List[BoxInfo]:
    return _parse_list(response, what, BoxInfo.from_dict, "box list")


def with_status(infos: List[BoxInfo], status: Optional[str]) -> List[BoxInfo]:
    # The filter is applied here too: servers before the ?status= filter
    # answer every box.
    return infos if status is None else [b for b in infos if b.status == status]


def parse_exec(response: httpx.Response, what: str) -> ExecInfo:
    return _parse_one(response, what, ExecInfo.from_dict, "exec info")


def parse_execs(response: httpx.Response, what: str) -> List[ExecInfo]:
    return _parse_list(response, what, ExecInfo.from_dict, "exec list")


def parse_gc(response: httpx.Response) -> int:
    try:
        n = response.json().get("removed")
    except (ValueError, AttributeError):
        n = None
    if not isinstance(n, int) or isinstance(n, bool):
        raise BoxerError("POST /v1/gc: the answer lacks 'removed'")
    return n


def stdin_params(eof: bool, offset: Optional[int]) -> Dict[str, str]:
    params: Dict[str, str] = {}
    if eof:
        params["eof"] = "1"
    if offset is not None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError("offset must be a non-negative int")
        params["offset"] = str(offset)
    return params


def events_params(after: Optional[int]) -> Optional[Dict[str, str]]:
    if after is None:
        return None
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError("after must be a non-negative int")
    return {"after": str(after)}


def stdin_bytes(data: StdinType) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"stdin data must be str or bytes, not {type(data).__name__}")


def parse_offset(response: httpx.Response) -> int:
    try:
        n = response.json().get("offset")
    except (ValueError, AttributeError):
        n = None
    if not isinstance(n, int) or isinstance(n, bool):
        raise BoxerError("POST stdin: the answer lacks 'offset'")
    return n


def signal_name(sig: Union[str, int]) -> str:
    """``"INT"``, ``"SIGINT"`` or ``signal.SIGINT`` / 2 as the server's name."""
    if isinstance(sig, bool):
        raise TypeError("signal must be a name or a number")
    if isinstance(sig, int):
        try:
            return signal_module.Signals(sig).name
        except ValueError:
            raise ValueError(f"unknown signal number {sig}") from None
    if not isinstance(sig, str) or not sig:
        raise TypeError("signal must be a name or a number")
    return sig


def exec_path(box_id: str, exec_id: str, suffix: str = "") -> str:
    if not isinstance(exec_id, str) or not exec_id:
        raise ValueError("exec id must be a non-empty string")
    return box_path(box_id, "/exec/" + quote(exec_id, safe="") + suffix)


def attach_query(shell: Optional[str], cols: int, rows: int, term: Optional[str],
                 cmd: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None,
                 workdir: Optional[str] = None, user: Optional[str] = None) -> List[Tuple[str, str]]:
    for name, v in (("cols", cols), ("rows", rows)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
            raise ValueError(f"{name} must be an int from 1 to 1000")
    query = [("cols", str(cols)), ("rows", str(rows))]
    if shell is not None:
        if cmd is not None:
            raise ValueError("give either shell or cmd, not both")
        query.append(("shell", shell))
    if term is not None:
        query.append(("term", term))
    if cmd is not None:
        # one cmd= per argv element: the server runs the list as given,
        # never through a shell
        if isinstance(cmd, (str, bytes)) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise TypeError("cmd must be a non-empty list of strings")
        query += [("cmd", a) for a in cmd]
    for k, val in (env or {}).items():
        if not isinstance(k, str) or not isinstance(val, str) or not k or "=" in k:
            raise ValueError("env must map names (without '=') to strings")
        query.append(("env", f"{k}={val}"))
    if workdir is not None:
        query.append(("workdir", workdir))
    if user is not None:
        query.append(("user", user))
    return query


def extra_params(extra: bool) -> Optional[Dict[str, str]]:
    return {"extra": "1"} if extra else None


class _HandleBase:
    def __init__(self, info: BoxInfo) -> None:
        self.info = info

    @property
    def id(self) -> str:
        """The box id (``box_...``)."""
        return self.info.id

    @property
    def name(self) -> Optional[str]:
        return self.info.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, status={self.info.status!r})"


class BoxHandle(_HandleBase):
    """A box of a :class:`BoxerClient`; from ``client.create()`` or ``client.box()``.

    ``info`` is the :class:`BoxInfo` of the last answer; ``refresh()``
    fetches it again.
    """

    def __init__(self, client: "BoxerClient", info: BoxInfo) -> None:
        super().__init__(info)
        self._client = client

    def exec(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
    ) -> ExecInfo:
        """Run ``cmd`` in the box and wait for it to end.  ``stdin``: its
        input (str or bytes), then end of file.

        One request (``"wait": true``); the returned ExecInfo carries
        ``exit_code`` and the output (``stdout``, ``stderr``, ``truncated``
        past the server's ``exec_output_bytes``).  A non-zero exit or a
        timeout is a ``failed`` status, not an exception.
        """
        body = build_exec_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin)
        c = self._client
        timeout = exec_timeout(c._timeout, c._run_timeout, timeout_ms)
        r = c._request("POST", box_path(self.id, "/exec"), json=body, timeout=timeout)
        return parse_exec(r, "POST exec")

    def exec_stream(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
        encoding: str = "utf8",
    ) -> Iterator[ExecEvent]:
        """Run ``cmd`` and yield its output as it comes, as ExecEvents
        (``log`` events, then one ``exit``).  One request: the server's NDJSON
        stream (``"stream": true``); the command stalls while the reader
        does not read.  Leaving the loop early closes the connection (the
        command goes on running).  ``stdin``: its input (str as text, bytes
        as base64), then end of file.  ``encoding="base64"``: the output
        comes as base64 and each ``log`` event carries its exact bytes in
        ``raw`` (``data`` their UTF-8 reading)."""
        b64 = stream_base64(encoding)
        body = build_stream_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin,
                                 base64=b64)
        c = self._client
        timeout = exec_timeout(c._timeout, c._run_timeout, timeout_ms)
        return c._stream_events("POST", box_path(self.id, "/exec"), body, timeout, base64=b64)

    def start_exec(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
        stdin_open: bool = False,
    ) -> ExecInfo:
        """Start ``cmd`` and return at once (status ``running``).  With
        ``stdin_open=True`` its input stays open for ``write_stdin`` until
        ``eof=True``; follow it with ``get_exec`` (or ``events`` where the
        server streams), stop it with ``cancel`` or ``signal``."""
        body = build_exec_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin,
                               stdin_open=stdin_open)
        del body["wait"]
        r = self._client._request("POST", box_path(self.id, "/exec"), json=body)
        return parse_exec(r, "POST exec")

    def events(self, exec_id: str, *, after: Optional[int] = None) -> Iterator[ExecEvent]:
        """The events of an exec, past ones first (only those after seq
        ``after`` when given), then live ones until its ``exit``."""
        c = self._client
        return c._stream_events("GET", exec_path(self.id, exec_id, "/events"), None,
                                exec_timeout(c._timeout, c._run_timeout, None), events_params(after))

    def write_stdin(self, exec_id: str, data: StdinType, *, eof: bool = False,
                    offset: Optional[int] = None) -> int:
        """Append ``data`` to the input of a ``stdin_open`` exec; ``eof=True``
        closes it after.  ``offset`` (where ``data`` starts in the exec's
        input) makes a retry idempotent.  Returns the bytes received so far.
        StdinBufferFullError (429) when the command has not read enough yet:
        resend with the same offset after ``retry_after``."""
        r = self._client._request(
            "POST", exec_path(self.id, exec_id, "/stdin"), content=stdin_bytes(data),
            params=stdin_params(eof, offset), headers={"Content-Type": "application/octet-stream"},
        )
        return parse_offset(r)

    def cancel(self, exec_id: str) -> ExecInfo:
        """Kill the exec (its process group) and return its ExecInfo
        (status ``canceled``).  ExecAlreadyFinishedError once it has ended."""
        r = self._client._request("POST", exec_path(self.id, exec_id, ":cancel"))
        return parse_exec(r, "POST :cancel")

    def signal(self, exec_id: str, sig: Union[str, int]) -> None:
        """Send a signal (``"INT"``, ``"SIGTERM"``, ``signal.SIGUSR1``, ...) to
        the exec's process group."""
        self._client._request("POST", exec_path(self.id, exec_id, "/signal"), json={"signal": signal_name(sig)})

    def attach(self, *, shell: Optional[str] = None, cols: int = 80, rows: int = 24,
               term: Optional[str] = None, cmd: Optional[Sequence[str]] = None,
               env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
               user: Optional[str] = None) -> Terminal:
        """A shell on a terminal in the box (WebSocket ``/attach``): a
        Terminal with ``send``, ``recv``, ``resize``, ``close``.  ``shell``
        defaults to the server's (``/bin/bash``, else ``/bin/sh``); ``term``
        to ``xterm-256color``.  ``cmd=["python3"]`` runs that command on the
        terminal instead of a shell (argv as given, no shell; 127 when the
        box lacks it); ``env``, ``workdir`` and ``user`` (``"uid[:gid]"``)
        apply to either.  ``recv()`` waits at most the client's ``timeout``
        unless told otherwise."""
        c = self._client
        session = _Session(c._http_base, c._uds, c._headers, box_path(self.id, "/attach"),
                           attach_query(shell, cols, rows, term, cmd, env, workdir, user))
        return Terminal.open(session, c._timeout.connect, c._timeout.read)

    def get_exec(self, exec_id: str) -> ExecInfo:
        """An exec of this box, with its output (Boxer's fields)."""
        r = self._client._request(
            "GET", box_path(self.id, "/exec/" + quote(exec_id, safe="")), params={"extra": "1"}
        )
        return parse_exec(r, "GET exec")

    def list_execs(self, *, extra: bool = False) -> List[ExecInfo]:
        """The execs the box keeps (newest last)."""
        r = self._client._request("GET", box_path(self.id, "/execs"), params=extra_params(extra))
        return parse_execs(r, "GET execs")

    def upload(self, local_path: PathLike, dest_path: str) -> None:
        """Copy a local file to ``dest_path`` (absolute) in the box."""
        with open(os.fspath(local_path), "rb") as f:
            self._client._box_upload(self.id, f, dest_path)

    def upload_bytes(self, data: bytes, dest_path: str) -> None:
        """Write ``data`` to ``dest_path`` (absolute) in the box."""
        self._client._box_upload(self.id, data, dest_path)

    def download(self, remote_path: str, local_path: PathLike) -> None:
        """Copy ``remote_path`` from the box to ``local_path`` (streamed; a
        partial file is removed when the transfer fails)."""
        self._client._box_download(self.id, remote_path, local_path)

    def download_bytes(self, remote_path: str) -> bytes:
        """Contents of ``remote_path`` in the box."""
        r = self._client._request(
            "POST", box_path(self.id, "/files/download"), json={"path": remote_path}
        )
        return r.content

    def stop(self) -> BoxInfo:
        """Stop the box (its disk is kept); returns and stores the new info."""
        c = self._client
        self.info = parse_box(c._request("POST", box_path(self.id, ":stop"), timeout=c._long_timeout()), "stop")
        return self.info

    def start(self) -> BoxInfo:
        """Start a stopped box again."""
        c = self._client
        self.info = parse_box(c._request("POST", box_path(self.id, ":start"), timeout=c._long_timeout()), "start")
        return self.info

    def remove(self, force: bool = False) -> None:
        """Remove the box and its disk; a running box needs ``force=True``
        (else BoxAlreadyRunningError)."""
        c = self._client
        params = {"force": "true"} if force else None
        c._request("DELETE", box_path(self.id), params=params, timeout=c._long_timeout())

    def refresh(self, *, extra: bool = False) -> BoxInfo:
        """Fetch the box's info again (``self.info`` is updated)."""
        self.info = self._client.get_box(self.id, extra=extra)
        return self.info


class AsyncBoxHandle(_HandleBase):
    """A box of an :class:`AsyncBoxerClient`; the same methods as
    :class:`BoxHandle`, awaitable."""

    def __init__(self, client: "AsyncBoxerClient", info: BoxInfo) -> None:
        super().__init__(info)
        self._client = client

    async def exec(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
    ) -> ExecInfo:
        """See BoxHandle.exec."""
        body = build_exec_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin)
        c = self._client
        timeout = exec_timeout(c._timeout, c._run_timeout, timeout_ms)
        r = await c._request("POST", box_path(self.id, "/exec"), json=body, timeout=timeout)
        return parse_exec(r, "POST exec")

    def exec_stream(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
        encoding: str = "utf8",
    ) -> AsyncIterator[ExecEvent]:
        """See BoxHandle.exec_stream (``async for event in box.exec_stream(...)``)."""
        b64 = stream_base64(encoding)
        body = build_stream_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin,
                                 base64=b64)
        c = self._client
        timeout = exec_timeout(c._timeout, c._run_timeout, timeout_ms)
        return c._stream_events("POST", box_path(self.id, "/exec"), body, timeout, base64=b64)

    async def start_exec(
        self,
        cmd: Sequence[str],
        *,
        env: Optional[BoxEnv] = None,
        timeout_ms: Optional[int] = None,
        workdir: Optional[str] = None,
        stdin: Optional[StdinType] = None,
        stdin_open: bool = False,
    ) -> ExecInfo:
        """See BoxHandle.start_exec."""
        body = build_exec_body(cmd, env=env, timeout_ms=timeout_ms, workdir=workdir, stdin=stdin,
                               stdin_open=stdin_open)
        del body["wait"]
        r = await self._client._request("POST", box_path(self.id, "/exec"), json=body)
        return parse_exec(r, "POST exec")

    def events(self, exec_id: str, *, after: Optional[int] = None) -> AsyncIterator[ExecEvent]:
        """See BoxHandle.events."""
        c = self._client
        return c._stream_events("GET", exec_path(self.id, exec_id, "/events"), None,
                                exec_timeout(c._timeout, c._run_timeout, None), events_params(after))

    async def write_stdin(self, exec_id: str, data: StdinType, *, eof: bool = False,
                          offset: Optional[int] = None) -> int:
        """See BoxHandle.write_stdin."""
        r = await self._client._request(
            "POST", exec_path(self.id, exec_id, "/stdin"), content=stdin_bytes(data),
            params=stdin_params(eof, offset), headers={"Content-Type": "application/octet-stream"},
        )
        return parse_offset(r)

    async def cancel(self, exec_id: str) -> ExecInfo:
        """See BoxHandle.cancel."""
        r = await self._client._request("POST", exec_path(self.id, exec_id, ":cancel"))
        return parse_exec(r, "POST :cancel")

    async def signal(self, exec_id: str, sig: Union[str, int]) -> None:
        """See BoxHandle.signal."""
        await self._client._request("POST", exec_path(self.id, exec_id, "/signal"),
                                    json={"signal": signal_name(sig)})

    async def attach(self, *, shell: Optional[str] = None, cols: int = 80, rows: int = 24,
                     term: Optional[str] = None, cmd: Optional[Sequence[str]] = None,
                     env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
                     user: Optional[str] = None) -> AsyncTerminal:
        """See BoxHandle.attach."""
        c = self._client
        session = _Session(c._http_base, c._uds, c._headers, box_path(self.id, "/attach"),
                           attach_query(shell, cols, rows, term, cmd, env, workdir, user))
        return await AsyncTerminal.open(session, c._timeout.connect, c._timeout.read)

    async def get_exec(self, exec_id: str) -> ExecInfo:
        """See BoxHandle.get_exec."""
        r = await self._client._request(
            "GET", box_path(self.id, "/exec/" + quote(exec_id, safe="")), params={"extra": "1"}
        )
        return parse_exec(r, "GET exec")

    async def list_execs(self, *, extra: bool = False) -> List[ExecInfo]:
        """See BoxHandle.list_execs."""
        r = await self._client._request("GET", box_path(self.id, "/execs"), params=extra_params(extra))
        return parse_execs(r, "GET execs")

    async def upload(self, local_path: PathLike, dest_path: str) -> None:
        """See BoxHandle.upload."""
        with open(os.fspath(local_path), "rb") as f:
            await self._client._box_upload(self.id, f, dest_path)

    async def upload_bytes(self, data: bytes, dest_path: str) -> None:
        """See BoxHandle.upload_bytes."""
        await self._client._box_upload(self.id, data, dest_path)

    async def download(self, remote_path: str, local_path: PathLike) -> None:
        """See BoxHandle.download."""
        await self._client._box_download(self.id, remote_path, local_path)

    async def download_bytes(self, remote_path: str) -> bytes:
        """See BoxHandle.download_bytes."""
        r = await self._client._request(
            "POST", box_path(self.id, "/files/download"), json={"path": remote_path}
        )
        return r.content

    async def stop(self) -> BoxInfo:
        """See BoxHandle.stop."""
        c = self._client
        r = await c._request("POST", box_path(self.id, ":stop"), timeout=c._long_timeout())
        self.info = parse_box(r, "stop")
        return self.info

    async def start(self) -> BoxInfo:
        """See BoxHandle.start."""
        c = self._client
        r = await c._request("POST", box_path(self.id, ":start"), timeout=c._long_timeout())
        self.info = parse_box(r, "start")
        return self.info

    async def remove(self, force: bool = False) -> None:
        """See BoxHandle.remove."""
        c = self._client
        params = {"force": "true"} if force else None
        await c._request("DELETE", box_path(self.id), params=params, timeout=c._long_timeout())

    async def refresh(self, *, extra: bool = False) -> BoxInfo:
        """See BoxHandle.refresh."""
        self.info = await self._client.get_box(self.id, extra=extra)
        return self.info
