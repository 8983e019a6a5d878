"""Data types exchanged with the Boxer server."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

__all__ = ["ResourceLimits", "RunResult", "BoxInfo", "ExecInfo", "ExecEvent"]

Number = Union[int, float]


def _check_number(name: str, value: Any, integral: bool) -> None:
    if value is None:
        return
    # bool is an int subclass; True as a memory limit is always a mistake.
    allowed: Tuple[type, ...] = (int,) if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        kind = "an int" if integral else "a number"
        raise TypeError(f"ResourceLimits.{name} must be {kind} or None, not {type(value).__name__}")


@dataclass
class ResourceLimits:
    """Per-run resource limits.

    Every field is optional: a field left as ``None`` is not sent, and the
    server applies its configured default for it.
    """

    cpu_cores: Optional[float] = None
    """CPU bandwidth in cores (0.5 = half a core)."""
    memory_mb: Optional[int] = None
    """Memory limit in MiB; exceeding it gets the command OOM-killed."""
    pids_limit: Optional[int] = None
    """Maximum number of processes/threads."""
    wall_clock_secs: Optional[int] = None
    """Wall-clock limit in seconds; exceeding it raises BoxerTimeoutError."""
    nofile: Optional[int] = None
    """Maximum number of open file descriptors."""

    def __post_init__(self) -> None:
        _check_number("cpu_cores", self.cpu_cores, integral=False)
        _check_number("memory_mb", self.memory_mb, integral=True)
        _check_number("pids_limit", self.pids_limit, integral=True)
        _check_number("wall_clock_secs", self.wall_clock_secs, integral=True)
        _check_number("nofile", self.nofile, integral=True)

    def to_dict(self) -> Dict[str, Number]:
        """The JSON object sent as ``limits``: only the fields that are set."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


@dataclass
class RunResult:
    """Outcome of a completed run (``POST /run`` answered 200).

    A non-zero ``exit_code`` is a normal result, not an exception; a command
    killed by signal N reports 128+N (137 for SIGKILL, e.g. after an OOM kill).
    """

    exec_id: str
    exit_code: int
    stdout: str
    stderr: str
    wall_ms: int
    cpu_ms: Optional[int] = None
    memory_peak_bytes: Optional[int] = None
    oom_killed: Optional[bool] = None
    timed_out: Optional[bool] = None
    #: Entries of /output the server did not capture, one line each naming
    #: the entry and why (a symlink, a hard link, a limit...); None when
    #: everything was captured or the server predates the field.
    output_errors: Optional[List[str]] = None
    #: BoxRun's RunResult field: why the command could not run; None when it
    #: ran (a failure to run is raised as an exception by ``run``).
    error_message: Optional[str] = None
    #: ``return_outputs=True``: the /output files inlined in the answer,
    #: path (relative to /output) -> content; None when not asked for.
    outputs: Optional[Dict[str, bytes]] = None
    #: ``return_outputs=True``: store paths (``output/<exec_id>/...``) of
    #: files past the server's inline limit, kept for ``download_file``.
    outputs_left: Optional[List[str]] = None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunResult":
        """Build a result from the server's JSON, ignoring unknown fields.

        Raises ValueError when a required field is missing or has the wrong
        type.
        """
        required = {
            "exec_id": str,
            "exit_code": int,
            "stdout": str,
            "stderr": str,
            "wall_ms": int,
        }
        optional = {
            "cpu_ms": int,
            "memory_peak_bytes": int,
            "oom_killed": bool,
            "timed_out": bool,
        }
        kwargs: Dict[str, Any] = {}
        for name, typ in required.items():
            if name not in data:
                raise ValueError(f"run result lacks field {name!r}")
            kwargs[name] = _typed(name, data[name], typ)
        for name, typ in optional.items():
            if data.get(name) is not None:
                kwargs[name] = _typed(name, data[name], typ)
        errs = data.get("output_errors")
        if errs is not None:
            if not isinstance(errs, list) or not all(isinstance(e, str) for e in errs):
                raise ValueError("run result field 'output_errors' is not a list of strings")
            kwargs["output_errors"] = list(errs)
        outs = data.get("outputs")
        if outs is not None:
            if not isinstance(outs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in outs.items()
            ):
                raise ValueError("run result field 'outputs' is not an object of strings")
            try:
                kwargs["outputs"] = {k: base64.b64decode(v, validate=True) for k, v in outs.items()}
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"run result field 'outputs' is not base64: {e}") from None
        left = data.get("outputs_left")
        if left is not None:
            if not isinstance(left, list) or not all(isinstance(e, str) for e in left):
                raise ValueError("run result field 'outputs_left' is not a list of strings")
            kwargs["outputs_left"] = list(left)
        return cls(**kwargs)


def _typed(name: str, value: Any, typ: type) -> Any:
    if typ is int:
        # JSON numbers may come back as 12.0 from some encoders; accept
        # integral floats, refuse bools and anything fractional.
        if isinstance(value, bool):
            raise ValueError(f"run result field {name!r} is not an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ValueError(f"run result field {name!r} is not an integer")
        return value
    if not isinstance(value, typ):
        raise ValueError(f"run result field {name!r} is not a {typ.__name__}")
    return value


def _fields_from(cls: Any, data: Mapping[str, Any], what: str, required: Tuple[str, ...]) -> Dict[str, Any]:
    """Keyword arguments for dataclass ``cls`` from a server answer: unknown
    keys are ignored (a newer server may add some), missing ones are None,
    the ``required`` ones must be present."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    for name in required:
        if data.get(name) is None:
            raise ValueError(f"{what} lacks field {name!r}")
    return {f.name: data.get(f.name) for f in dataclasses.fields(cls)}


@dataclass
class BoxInfo:
    """A box as the server describes it (BoxRun's fields, in its order).

    The fields from image_digest on are Boxer's own and only filled when asked for
    (``extra=True``); they are None otherwise.
    """

    id: str
    name: Optional[str]
    status: str  # "creating", "running", "stopped", "error"
    image: str
    cpu: float
    memory_mb: int
    disk_size_gb: int
    network: bool
    workdir: str
    env: Optional[Dict[str, str]]
    volumes: Optional[List[Dict[str, Any]]]
    boxlite_id: Optional[str]  # BoxRun's; Boxer has none (always None)
    error_code: Optional[str]
    error_message: Optional[str]
    created_at: str
    started_at: Optional[str]
    stopped_at: Optional[str]
    image_digest: Optional[str] = None
    disk_used_bytes: Optional[int] = None
    idle_timeout_secs: Optional[int] = None
    last_active_at: Optional[str] = None
    node: Optional[str] = None
    user: Optional[str] = None  # "uid:gid" given at create; None: root

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BoxInfo":
        return cls(**_fields_from(cls, data, "box info", ("id", "status")))


@dataclass
class ExecInfo:
    """One command run in a box (BoxRun's fields, in its order).

    ``status`` is ``running``, ``succeeded`` (exit code 0), ``failed`` (any
    other exit, a timeout or a start failure) or ``canceled``.  The fields
    after ``finished_at`` are Boxer's: ``box.exec()`` fills them (the output
    comes back with the one request), other calls only with ``extra=True``.
    """

    id: str
    box_id: str
    status: str
    cmd: List[str]
    env: Optional[Dict[str, str]]
    workdir: Optional[str]
    timeout_ms: Optional[int]
    exit_code: Optional[int]
    error_message: Optional[str]
    created_at: str
    finished_at: Optional[str]
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    wall_ms: Optional[int] = None
    timed_out: Optional[bool] = None
    truncated: Optional[bool] = None

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExecInfo":
        return cls(**_fields_from(cls, data, "exec info", ("id", "box_id", "status")))


@dataclass
class ExecEvent:
    """One event of an exec's output stream (BoxRun's shape): ``type`` is
    ``log`` (``data`` is output text of ``stream`` stdout/stderr) or
    ``exit`` (``data`` is JSON text ``{"exit_code": N}``, the last event).
    A streamed ``client.run`` ends with ``result`` instead of ``exit``
    (``data`` the same JSON text, ``result`` the RunResult).
    Boxer adds ``truncated`` (``data`` is JSON text ``{"dropped": n,
    "first_seq": m}``: output the server no longer had) and the fields
    after ``seq``."""

    type: str
    data: str
    stream: Optional[str]
    seq: int
    #: Boxer's: the exec these events belong to (known from the stream's
    #: first line).
    exec_id: Optional[str] = None
    #: Boxer's, on the ``exit`` event: the exit code, ``succeeded`` /
    #: ``failed`` / ``canceled``, whether the timeout killed it.
    exit_code: Optional[int] = None
    status: Optional[str] = None
    timed_out: Optional[bool] = None
    #: Boxer's, on the ``result`` event that ends a streamed ``client.run``
    #: (``run(..., stream=True)``): the run's result, as ``run`` returns it.
    result: Optional[RunResult] = None
    #: Boxer's, on ``log`` events of a stream asked for with
    #: ``encoding="base64"``: the output bytes exactly as the command wrote
    #: them (``data`` is then these bytes decoded as UTF-8 with U+FFFD for
    #: what is not); ``None`` with the default ``encoding="utf8"``.
    raw: Optional[bytes] = None
