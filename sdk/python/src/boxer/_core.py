"""Logic shared by the synchronous and asynchronous clients.

Everything here is I/O-free except ``collect_upload_paths`` (which walks the
local file system): request bodies are built and responses decoded here, so
both clients behave identically by construction.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.utils
import math
import os
import posixpath
import stat
from typing import Any, Dict, Iterator, List, Mapping, NoReturn, Optional, Sequence, Tuple, Union

import httpx

from ._version import __version__
from .errors import (
    BoxerConnectionError,
    BoxerError,
    BoxerOutputLimitError,
    BoxerQueueFullError,
    BoxerTimeoutError,
    error_class_for,
)
from .models import ResourceLimits, RunResult

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_SOCKET = "~/.boxer/boxer.sock"
DEFAULT_TIMEOUT = 30.0
# What the HTTP layer is given for a Unix-socket server: Boxer wants a
# loopback Host on the socket (its DNS-rebinding rule).
UNIX_HTTP_BASE = "http://localhost"

EnvType = Union[Mapping[str, str], Sequence[str]]
LimitsType = Union[ResourceLimits, Mapping[str, Any]]
TimeoutType = Union[float, int, httpx.Timeout, None]
PathLike = Union[str, "os.PathLike[str]"]
StdinType = Union[str, bytes, bytearray, memoryview]

UPLOAD_RESET_HINT = (
    "the server closed the connection while the upload was being sent; "
    "this is what happens when a file exceeds the server's upload_limit_bytes"
)


class Connection:
    """Where a client connects: ``url`` as the user named it (shown in
    messages and ``client.base_url``), ``http_base`` for the HTTP layer,
    ``uds`` the Unix socket path or None for TCP."""

    def __init__(self, url: str, http_base: str, uds: Optional[str]) -> None:
        self.url = url
        self.http_base = http_base
        self.uds = uds


def default_socket_path() -> str:
    return os.path.expanduser(DEFAULT_SOCKET)


def resolve_connection(base_url: Optional[str]) -> Connection:
    """``base_url``, else ``$BOXER_URL``, else ``~/.boxer/boxer.sock`` when it
    exists, else ``http://127.0.0.1:8080``.  ``unix:///path/to.sock`` names
    a Unix socket."""
    if base_url is None:
        base_url = os.environ.get("BOXER_URL") or None
    if base_url is None:
        sock = default_socket_path()
        try:
            is_sock = stat.S_ISSOCK(os.stat(sock).st_mode)
        except OSError:
            is_sock = False
        base_url = "unix://" + sock if is_sock else DEFAULT_BASE_URL
    if not isinstance(base_url, str):
        raise TypeError("base_url must be a str")
    if base_url.startswith("unix:"):
        path = base_url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/") or "\0" in path:
            raise ValueError(f"invalid Boxer URL {base_url!r}: expected unix:///absolute/path.sock")
        return Connection("unix://" + path, UNIX_HTTP_BASE, path)
    url = resolve_base_url(base_url)
    return Connection(url, url, None)


def resolve_base_url(base_url: Optional[str]) -> str:
    if base_url is None:
        base_url = os.environ.get("BOXER_URL") or DEFAULT_BASE_URL
    if not isinstance(base_url, str):
        raise TypeError("base_url must be a str")
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ValueError(f"invalid Boxer URL {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"invalid Boxer URL {base_url!r}: expected http://host[:port]")
    return base_url.rstrip("/")


def resolve_token(token: Optional[str]) -> Optional[str]:
    if token is None:
        token = os.environ.get("BOXER_TOKEN") or None
    if token is not None and not isinstance(token, str):
        raise TypeError("token must be a str")
    if token is not None and any(c in token for c in "\r\n\0"):
        raise ValueError("token must not contain control characters")
    return token


def make_timeout(timeout: TimeoutType) -> httpx.Timeout:
    """The client's timeout for ordinary requests.

    A number bounds connecting, each read and each write.  Waiting for a free
    pooled connection is not bounded: with many concurrent runs in flight a
    request legitimately waits for one to finish.
    """
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError("timeout must be a number of seconds, an httpx.Timeout or None")
    return httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=None)


def default_headers(token: Optional[str]) -> Dict[str, str]:
    headers = {"User-Agent": f"boxer-sdk-python/{__version__}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def run_request_timeout(
    base: httpx.Timeout, run_timeout: Optional[float], limits: Optional[Mapping[str, Any]]
) -> httpx.Timeout:
    """The timeout of one ``POST /run``.

    The answer arrives only when the command has finished, which takes up to
    its wall-clock limit plus the time to pull the image on first use, so the
    read timeout is unbounded by default (the server enforces the wall clock).
    With ``run_timeout`` set it is ``run_timeout`` seconds on top of the
    request's ``wall_clock_secs``.
    """
    read: Optional[float] = None
    if run_timeout is not None:
        wall = 0.0
        if limits is not None:
            value = limits.get("wall_clock_secs")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                wall = float(value)
        read = float(run_timeout) + wall
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def env_to_list(env: EnvType) -> List[str]:
    """Normalise ``env`` (a mapping or a list of ``"K=V"``) to ``["K=V", ...]``."""
    if isinstance(env, Mapping):
        out = []
        for key, value in env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("env keys and values must be str")
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"invalid environment variable name {key!r}")
            if "\0" in value:
                raise ValueError(f"environment variable {key!r} contains a NUL byte")
            out.append(f"{key}={value}")
        return out
    if isinstance(env, (str, bytes)):
        raise TypeError('env must be a dict or a list of "K=V" strings, not a single string')
    out = []
    for item in env:
        if not isinstance(item, str):
            raise TypeError('env list items must be "K=V" strings')
        if "=" not in item or item.startswith("=") or "\0" in item:
            raise ValueError(f'invalid env entry {item!r}: expected "K=V"')
        out.append(item)
    return out


def limits_to_dict(limits: LimitsType) -> Dict[str, Any]:
    if isinstance(limits, ResourceLimits):
        return limits.to_dict()
    if isinstance(limits, Mapping):
        return {str(k): v for k, v in limits.items() if v is not None}
    raise TypeError("limits must be a ResourceLimits or a dict")


def _str_list(name: str, value: Sequence[str]) -> List[str]:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} items must be str, not {type(item).__name__}")
    return items


def build_run_body(
    image: str,
    cmd: Sequence[str],
    *,
    env: Optional[EnvType],
    cwd: Optional[str],
    limits: Optional[LimitsType],
    files: Optional[Sequence[str]],
    persist: bool,
    network: Optional[str],
    egress: Optional[Sequence[str]] = None,
    stdin: Optional[StdinType] = None,
    inputs: Optional[Mapping[str, Any]] = None,
    return_outputs: bool = False,
) -> Dict[str, Any]:
    """The JSON body of ``POST /run``; optional fields only when given."""
    if not isinstance(image, str) or not image:
        raise ValueError("image must be a non-empty string")
    cmd_list = _str_list("cmd", cmd)
    if not cmd_list:
        raise ValueError("cmd must not be empty")
    body: Dict[str, Any] = {"image": image, "cmd": cmd_list}
    if env is not None:
        body["env"] = env_to_list(env)
    if cwd is not None:
        if not isinstance(cwd, str):
            raise TypeError("cwd must be a str")
        body["cwd"] = cwd
    if files is not None:
        body["files"] = _str_list("files", files)
    if limits is not None:
        limits_dict = limits_to_dict(limits)
        if limits_dict:
            body["limits"] = limits_dict
    if network is not None:
        if not isinstance(network, str):
            raise TypeError("network must be a str")
        body["network"] = network
    if egress is not None:
        # The server checks each entry (400 naming it); only the shape here.
        body["egress"] = _str_list("egress", egress)
    body["persist"] = bool(persist)
    add_stdin(body, stdin)
    if inputs is not None:
        body["inputs"] = inputs_to_dict(inputs)
    if return_outputs:
        body["return_outputs"] = True
    return body


def inputs_to_dict(inputs: Mapping[str, Any]) -> Dict[str, Any]:
    """``inputs`` of ``run``: path -> str (sent as UTF-8 text), bytes (sent
    as base64) or a dict of the wire form (``{"content", "encoding",
    "mode"}``) with ``content`` str or bytes."""
    if not isinstance(inputs, Mapping):
        raise TypeError("inputs must be a mapping of path to str, bytes or dict")
    out: Dict[str, Any] = {}
    for path, value in inputs.items():
        if not isinstance(path, str) or not path:
            raise TypeError("inputs keys must be non-empty str paths")
        entry: Dict[str, Any]
        if isinstance(value, Mapping):
            entry = dict(value)
            content = entry.get("content")
        else:
            entry = {}
            content = value
        if isinstance(content, str):
            entry["content"] = content
            entry.setdefault("encoding", "utf8")
        elif isinstance(content, (bytes, bytearray, memoryview)):
            entry["content"] = base64.b64encode(bytes(content)).decode("ascii")
            entry["encoding"] = "base64"
        else:
            raise TypeError(f"inputs[{path!r}] content must be str or bytes")
        if "mode" in entry and (not isinstance(entry["mode"], int) or isinstance(entry["mode"], bool)):
            raise TypeError(f"inputs[{path!r}] mode must be an int (e.g. 0o755)")
        out[path] = entry
    return out


def add_stdin(body: Dict[str, Any], stdin: Optional[StdinType]) -> None:
    """``stdin``: text goes as ``"stdin"``, bytes as ``"stdin_b64"``."""
    if stdin is None:
        return
    if isinstance(stdin, str):
        body["stdin"] = stdin
    elif isinstance(stdin, (bytes, bytearray, memoryview)):
        body["stdin_b64"] = base64.b64encode(bytes(stdin)).decode("ascii")
    else:
        raise TypeError(f"stdin must be str or bytes, not {type(stdin).__name__}")


def build_v1_run_body(
    image: str,
    cmd: Sequence[str],
    *,
    env: Optional[EnvType],
    network: Optional[str],
    stdin: Optional[StdinType],
    timeout_ms: Optional[int],
    disk_size_gb: Optional[int],
    volumes: Optional[Sequence[Mapping[str, Any]]],
    user: Optional[str] = None,
) -> Dict[str, Any]:
    """The JSON body of BoxRun's ``POST /v1/run``; optional fields only when given."""
    if not isinstance(image, str) or not image:
        raise ValueError("image must be a non-empty string")
    cmd_list = _str_list("cmd", cmd)
    if not cmd_list:
        raise ValueError("cmd must not be empty")
    body: Dict[str, Any] = {"image": image, "cmd": cmd_list}
    if env is not None:
        body["env"] = dict(item.split("=", 1) for item in env_to_list(env))
    if network is not None:
        if not isinstance(network, str):
            raise TypeError("network must be a str")
        body["network"] = network
    for name, value in (("timeout_ms", timeout_ms), ("disk_size_gb", disk_size_gb)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int")
            body[name] = value
    if volumes is not None:
        if isinstance(volumes, (str, bytes)) or not all(isinstance(v, Mapping) for v in volumes):
            raise TypeError("volumes must be a list of dicts")
        body["volumes"] = [dict(v) for v in volumes]
    if user is not None:
        # "uid" or "uid:gid", numeric: the server checks the form (400)
        if not isinstance(user, str):
            raise TypeError('user must be a str "uid" or "uid:gid"')
        body["user"] = user
    add_stdin(body, stdin)
    return body


def parse_v1_run_result(response: httpx.Response) -> RunResult:
    """``POST /v1/run?extra=1``'s answer as a RunResult: a timeout is a
    result (exit code 137, ``timed_out``, ``error_message``) as in BoxRun;
    output over the server's limit (exit code null) raises
    BoxerOutputLimitError as ``/run``'s 507 does."""
    data = _json_object(response, "POST /v1/run")
    msg = data.get("error_message")
    if data.get("exit_code") is None:
        raise BoxerOutputLimitError(msg if isinstance(msg, str) and msg else "no exit code", 507, data)
    try:
        result = RunResult.from_dict(data)
    except ValueError as exc:
        raise BoxerError(f"POST /v1/run: malformed result: {exc}") from None
    result.error_message = msg if isinstance(msg, str) else None
    return result


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def _opt_str(body: Optional[Mapping[str, Any]], key: str) -> Optional[str]:
    if body is None:
        return None
    value = body.get(key)
    return value if isinstance(value, str) else None


def raise_for_status(response: httpx.Response) -> None:
    """Turn an error response into the matching BoxerAPIError subclass."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body: Optional[Dict[str, Any]] = None
    message: Optional[str] = None
    try:
        data = response.json()
    except ValueError:  # not JSON, or not UTF-8
        data = None
    if isinstance(data, dict):
        body = data
        for key in ("error", "message"):
            err = data.get(key)
            if isinstance(err, str) and err:
                message = err
                break
    if message is None:
        try:
            text = response.text.strip()
        except (UnicodeDecodeError, LookupError):
            text = ""
        message = f"HTTP {status} {response.reason_phrase}".rstrip()
        if text:
            message += f": {text[:300]}"
    raise_api_error(status, body, message, response.headers.get("Retry-After"))


def raise_api_error(
    status: int, body: Optional[Dict[str, Any]], message: str, retry_after: Optional[str] = None
) -> NoReturn:
    """Raise the BoxerAPIError subclass for an error status and its body."""
    code = body.get("code") if body is not None else None
    cls = error_class_for(status, code if isinstance(code, str) else None)
    if issubclass(cls, BoxerTimeoutError):
        raise cls(
            message,
            status,
            body,
            exec_id=_opt_str(body, "exec_id"),
            stdout=_opt_str(body, "stdout"),
            stderr=_opt_str(body, "stderr"),
        )
    if issubclass(cls, BoxerQueueFullError):
        raise cls(message, status, body, retry_after=parse_retry_after(retry_after))
    raise cls(message, status, body)


def _json_object(response: httpx.Response, what: str) -> Dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BoxerError(f"{what}: the server's answer is not a JSON object")
    return data


def parse_object(response: httpx.Response, what: str) -> Dict[str, Any]:
    """A JSON object answer, as a dict."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise BoxerError(f"{what}: the answer is not a JSON object")
    return data


def parse_health(response: httpx.Response) -> bool:
    return _json_object(response, "GET /healthz").get("ok") is True


def parse_run_result(response: httpx.Response) -> RunResult:
    data = _json_object(response, "POST /run")
    try:
        return RunResult.from_dict(data)
    except ValueError as exc:
        raise BoxerError(f"POST /run: malformed result: {exc}") from None


def run_result_of_event(event: Mapping[str, Any]) -> RunResult:
    """The ``result`` event that ends a streamed ``POST /run``: every field
    of the plain answer plus ``status``, the HTTP status the answer would
    have had (the stream's own is already 200).  A non-200 one raises what
    ``run`` raises for that answer (BoxerTimeoutError with the output so
    far, BoxerOutputLimitError, ...)."""
    body = {k: v for k, v in event.items() if k not in ("type", "status")}
    status = event.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise BoxerError("POST /run stream: the result event lacks its status")
    if status != 200:
        err = body.get("error")
        raise_api_error(status, body, err if isinstance(err, str) and err else f"HTTP {status}")
    try:
        return RunResult.from_dict(body)
    except ValueError as exc:
        raise BoxerError(f"POST /run stream: malformed result: {exc}") from None


def parse_upload(response: httpx.Response) -> str:
    path = _json_object(response, "POST /files").get("path")
    if not isinstance(path, str):
        raise BoxerError("POST /files: the server's answer lacks the stored path")
    return path


@contextlib.contextmanager
def translate_errors(method: str, url: str, *, upload: bool = False) -> Iterator[None]:
    """Re-raise httpx's exceptions as BoxerConnectionError / BoxerError."""
    what = f"{method} {url}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise BoxerConnectionError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        if upload and isinstance(exc, (httpx.WriteError, httpx.RemoteProtocolError)):
            detail += f" ({UPLOAD_RESET_HINT})"
        raise BoxerConnectionError(f"{what}: {detail}") from exc
    except httpx.HTTPError as exc:
        raise BoxerError(f"{what}: {exc or type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise BoxerError(f"{what}: invalid URL: {exc}") from exc


def collect_upload_paths(local_path: PathLike, remote_path: Optional[str]) -> List[Tuple[str, str]]:
    """(local file, remote path) pairs for ``upload_path``.

    A file maps to ``remote_path`` (default: its base name).  A directory is
    walked recursively; each regular file maps to ``<prefix>/<relative path>``
    with ``/`` separators, where the prefix is ``remote_path`` (default: the
    directory's own name; ``""`` for none).  Symbolic links to files are
    followed, symbolic links to directories are not descended into, and
    special files (FIFOs, sockets, devices) are skipped.
    """
    local = os.fspath(local_path)
    if remote_path is not None and not isinstance(remote_path, str):
        raise TypeError("remote_path must be a str")
    st = os.stat(local)
    default_name = os.path.basename(os.path.abspath(local))
    if stat.S_ISREG(st.st_mode):
        return [(local, remote_path if remote_path is not None else default_name)]
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{local} is neither a regular file nor a directory")
    prefix = (remote_path if remote_path is not None else default_name).rstrip("/")
    pairs: List[Tuple[str, str]] = []
    for root, dirs, names in os.walk(local):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            if not stat.S_ISREG(os.stat(full).st_mode):
                continue
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            pairs.append((full, posixpath.join(prefix, rel) if prefix else rel))
    pairs.sort(key=lambda pair: pair[1])
    return pairs
