"""The services side-effecting operations and missions call, as small protocols.

The engine and missions never reach the world directly: an LLM call goes to
``Services.llm``, a tool call to ``Services.tools``, a subprocess to
``Services.processes``. A service that is not configured makes the step fail
with ``PROVIDER_NOT_CONFIGURED`` — never a silent success.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lifeos.errors import InputError, ReasonCode

if TYPE_CHECKING:
    from lifeos.store.base import Store

__all__ = [
    "LLMClient",
    "ProcessResult",
    "ProcessRunner",
    "Services",
    "SubprocessRunner",
    "Tool",
    "ToolRegistry",
]


@runtime_checkable
class LLMClient(Protocol):
    """Answers one LLM request.

    The request holds ``prompt``, ``model`` and ``role`` (either may be None) and
    ``max_tokens``; the reply holds ``content``, ``call_id``, ``model`` and
    ``usage``. Errors are raised as :class:`lifeos.errors.LifeOSError`.
    """

    def complete(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """Answer ``request``."""
        ...


@dataclass(frozen=True)
class Tool:
    """A named tool with typed arguments: ``required`` and ``optional`` name -> type."""

    name: str
    fn: Callable[..., Any]
    required: Mapping[str, type] = field(default_factory=dict)
    optional: Mapping[str, type] = field(default_factory=dict)
    description: str = ""
    takes_key: bool = False
    """Pass the call's idempotency key as ``idempotency_key="run:step:attempt:call"``."""

    def check_args(self, args: Mapping[str, Any]) -> None:
        """Raise InputError naming the first argument that does not fit."""
        for name in self.required:
            if name not in args:
                raise InputError(f"tool '{self.name}': missing argument '{name}'")
        for name, value in args.items():
            typ_or_none = self.required.get(name) or self.optional.get(name)
            if typ_or_none is None:
                raise InputError(f"tool '{self.name}': unknown argument '{name}'")
            if not _is_instance(value, typ_or_none):
                raise InputError(
                    f"tool '{self.name}': argument '{name}' must be "
                    f"{typ_or_none.__name__}, not {type(value).__name__}"
                )


def _is_instance(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


class ToolRegistry:
    """Tools by name."""

    def __init__(self, tools: Sequence[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``; a name can be registered once."""
        if tool.name in self._tools:
            raise ValueError(f"tool '{tool.name}' is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """Return the tool called ``name``, or None."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Return the tool names, sorted."""
        return sorted(self._tools)


@dataclass(frozen=True)
class ProcessResult:
    """What a finished subprocess left behind."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


@runtime_checkable
class ProcessRunner(Protocol):
    """Runs a command to completion or until its timeout."""

    def run(
        self,
        argv: Sequence[str],
        cwd: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run ``argv`` in ``cwd``; kill its whole process group at ``timeout`` seconds."""
        ...


class SubprocessRunner:
    """A real process runner: a new session per command, killed as a group on timeout."""

    def run(
        self,
        argv: Sequence[str],
        cwd: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run ``argv``; raise InputError (``TESTS_NOT_RUNNABLE``) if it cannot start."""
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise InputError(
                f"cannot start {argv[0]!r}: {exc.strerror or exc}", ReasonCode.TESTS_NOT_RUNNABLE
            ) from exc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            return ProcessResult(proc.returncode, out, err, timed_out=True)
        return ProcessResult(proc.returncode, out, err)


@dataclass
class Services:
    """Everything side-effecting that operations and missions may call."""

    llm: LLMClient | None = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    processes: ProcessRunner = field(default_factory=SubprocessRunner)
    store: Store | None = None
    """The repository's store: timeline, artifacts (the daily loop reads and writes it)."""
    backlog_path: Path | None = None
    """The backlog file (``config/backlog.yaml`` by default), for missions that rank tasks."""
    extra: dict[str, Any] = field(default_factory=dict)
