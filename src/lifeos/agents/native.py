"""The native builder: a tool-use loop over any configured chat model.

The model gets six file tools, all confined to the worktree:

* ``list_files(path=".")`` — git-tracked and untracked, non-ignored files under ``path``.
* ``read_file(path)`` — a UTF-8 text file, at most ``max_read_bytes`` of it.
* ``write_file(path, content)`` — create or replace a file.
* ``apply_patch(patch)`` — a unified diff, applied with ``git apply``.
* ``delete_file(path)`` — remove a file.
* ``run_command(name)`` — one of the commands named in ``lifeos.yaml`` ``commands:``, run by
  name as an argv (never a shell string) in the worktree, with a timeout and an environment
  without secrets.

Every path argument goes through the gate's path-safety rules
(:func:`~lifeos.policy.paths.unsafe_reason`: no absolute path, ``..``, ``.git``, ...) and
must resolve, symlinks included, inside the worktree; the tools never write, patch or
delete through a symlink. A refused or failed tool call is an error *result* the model
sees (``{"ok": false, "error": "PATH_UNSAFE", "message": ...}``), never an exception.

Journaling. Each model call and each tool call is one side effect run through ``once``
(the engine's :meth:`~lifeos.engine.StepEnv.once`), so a resumed run replays them from the
journal instead of repeating them. The records are JSON:

* a model call: ``{"kind": "model_call", "turn", "request_sha256", "response"}`` where
  ``response`` is :func:`response_to_dict` of the answer and ``request_sha256`` the digest
  of the request (a replay whose request differs raises ``NONDETERMINISM``);
* a tool call: ``{"kind": "tool_call", "turn", "id", "name", "result", "changes"}`` where
  ``result`` is the JSON the model is shown and ``changes`` lists what the tool did to the
  worktree: ``{"path", "content", "encoding": "utf-8"|"base64", "executable"}`` for a file
  written or patched, ``{"path", "deleted": true}`` for a file removed.

On replay the recorded ``changes`` are written again (idempotently), so the worktree is
rebuilt even in a fresh checkout; reads and commands are not re-run. ``before_call`` and
``after_call`` run inside the model call's side effect, so they see only live calls; an
accounting failure in ``after_call`` leaves the call unrecorded and stops the run.

Deterministic: nothing reads a clock or randomness; tool-call ids come from the model.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lifeos.agents.api import AgentCall, AgentProvider, AgentResponse, ToolCall, Usage
from lifeos.canonical import sha256_hex
from lifeos.errors import InputError, LifeOSError, ReasonCode
from lifeos.fsutil import atomic_write
from lifeos.policy.paths import unsafe_reason
from lifeos.procs import stop_group

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "NativeBuildResult",
    "NativeBuilderConfig",
    "NativeBuilderError",
    "Once",
    "response_from_dict",
    "response_to_dict",
    "run_native_builder",
    "tool_schemas",
]

Once = Callable[[Callable[[], Any]], tuple[Any, bool]]
"""Runs a side effect once: returns its (possibly replayed) result and whether it was replayed."""

Status = Literal["done", "turns_exhausted"]

_BASE_ENV = ("PATH", "HOME", "LANG")
_GIT_TIMEOUT_S = 60.0
_SPECIAL_MODE = re.compile(
    r"^(?:new file mode|new mode|old mode|deleted file mode|index [0-9a-fA-F]+\.\.[0-9a-fA-F]+)"
    r" (120000|160000)\s*$",
    re.MULTILINE,
)
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}

DEFAULT_SYSTEM_PROMPT = (
    "You are the builder in a LifeOS run. You work in a git worktree through tools only: "
    "list_files, read_file, write_file, apply_patch (a unified diff), delete_file and "
    "run_command (one of the configured commands, by name). Paths are relative to the "
    "worktree root, with '/' separators; absolute paths, '..', '.git' and symlinks out of "
    "the worktree are refused. Read before you change a file, keep changes small and "
    "focused, and run the tests when a test command is available. When the task is done, "
    "answer without calling a tool and give a short summary of what you changed."
)


class NativeBuilderError(LifeOSError):
    """The native builder cannot go on: a journal that does not fit the run, a bad worktree."""

    default_reason = ReasonCode.NONDETERMINISM


# -- configuration ---------------------------------------------------------------------


def _argv(name: str, command: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(command, str):
        argv = tuple(shlex.split(command))  # split like a shell, never run by one
    else:
        argv = tuple(command)
        if not all(isinstance(part, str) for part in argv):
            raise InputError(f"commands.{name}: every argument should be a string")
    if not argv:
        raise InputError(f"commands.{name}: an empty command")
    return argv


@dataclass(frozen=True)
class NativeBuilderConfig:
    """Limits and allowed commands of a native build."""

    max_turns: int = 20
    """Model calls at most; the run stops with ``turns_exhausted`` after the last one."""
    commands: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Command name -> argv (``lifeos.yaml`` ``commands:``); a string is split like a shell
    would split it but never run by one. Only these run, by name."""
    command_timeout_s: float = 120.0
    max_read_bytes: int = 200_000
    max_output_chars: int = 20_000
    """Command output longer than this keeps its head and tail."""
    max_tokens: int | None = None
    """``max_tokens`` of every model call (None: the provider's default)."""
    env_allowlist: Sequence[str] = ()
    """Environment variables passed to commands besides PATH, HOME and LANG."""
    max_list_entries: int = 5_000
    """Paths ``list_files`` returns at most."""

    def __post_init__(self) -> None:
        commands = {
            str(name): _argv(str(name), argv) for name, argv in sorted(self.commands.items())
        }
        object.__setattr__(self, "commands", commands)
        object.__setattr__(self, "env_allowlist", tuple(self.env_allowlist))
        for name in ("max_turns", "max_read_bytes", "max_output_chars", "max_list_entries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"native builder: {name} should be a positive integer")
        if self.command_timeout_s <= 0:
            raise InputError("native builder: command_timeout_s should be positive")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InputError("native builder: max_tokens should be a positive integer")


def _function(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_PATH = {"type": "string", "description": "A path relative to the worktree root."}


def tool_schemas(config: NativeBuilderConfig) -> list[dict[str, Any]]:
    """The tools in the OpenAI ``{"type": "function", "function": {...}}`` form.

    ``run_command`` is offered only when commands are configured; its ``name`` is an enum
    of their names.
    """
    tools = [
        _function(
            "list_files",
            "List the files under a directory of the worktree (tracked and untracked, "
            "not ignored), sorted, relative to the worktree root.",
            {"path": {**_PATH, "description": "A directory (default: the root, '.')."}},
            [],
        ),
        _function(
            "read_file",
            f"Read a UTF-8 text file (at most {config.max_read_bytes} bytes).",
            {"path": _PATH},
            ["path"],
        ),
        _function(
            "write_file",
            "Create or replace a file with the given content (parent folders are created).",
            {"path": _PATH, "content": {"type": "string", "description": "The whole file."}},
            ["path", "content"],
        ),
        _function(
            "apply_patch",
            "Apply a unified diff (as `git diff` prints it, paths prefixed a/ and b/) "
            "to the worktree.",
            {"patch": {"type": "string", "description": "The unified diff."}},
            ["patch"],
        ),
        _function("delete_file", "Delete a file.", {"path": _PATH}, ["path"]),
    ]
    if config.commands:
        names = sorted(config.commands)
        described = "; ".join(f"{n}: {shlex.join(config.commands[n])}" for n in names)
        tools.append(
            _function(
                "run_command",
                "Run one of the allowed commands in the worktree and return its exit code "
                f"and output (timeout {config.command_timeout_s:g}s). Allowed: {described}.",
                {"name": {"type": "string", "enum": names, "description": "The command."}},
                ["name"],
            )
        )
    return tools


# -- responses as JSON -----------------------------------------------------------------


def response_to_dict(response: AgentResponse) -> dict[str, Any]:
    """An :class:`AgentResponse` as a JSON-able dict (its raw body left out)."""
    return response.to_dict()


def response_from_dict(data: Mapping[str, Any]) -> AgentResponse:
    """The inverse of :func:`response_to_dict`."""
    calls = tuple(
        ToolCall(id=str(c.get("id") or ""), name=str(c["name"]), arguments=str(c["arguments"]))
        for c in data.get("tool_calls") or ()
    )
    finish = data.get("finish_reason")
    latency = data.get("latency_ms")
    return AgentResponse(
        content=str(data.get("content") or ""),
        tool_calls=calls,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=Usage.from_dict(data.get("usage") or {}),
        call_id=str(data.get("call_id") or ""),
        model=str(data.get("model") or ""),
        latency_ms=float(latency) if isinstance(latency, int | float) else None,
    )


# -- the result ------------------------------------------------------------------------


@dataclass(frozen=True)
class NativeBuildResult:
    """What a native build did."""

    status: Status
    """``done`` (the model answered without a tool call) or ``turns_exhausted``."""
    summary: str
    """The model's last answer."""
    turns: int
    model_calls: int
    tool_calls: tuple[Mapping[str, Any], ...]
    """One ``{name, ok, path?, paths?, command?, error?}`` per tool call, in order."""
    files_written: tuple[str, ...]
    """Paths the build left written (created, replaced or patched), sorted."""
    files_deleted: tuple[str, ...] = ()
    """Paths the build left deleted, sorted."""
    input_tokens: int | None = None
    """Summed over every call; None when any call's usage was unavailable."""
    output_tokens: int | None = None
    cost_usd: float | None = None
    """Summed over every call; None when any call's cost was unavailable."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; equal builds give equal dicts."""
        return {
            "files_deleted": list(self.files_deleted),
            "files_written": list(self.files_written),
            "model_calls": self.model_calls,
            "status": self.status,
            "summary": self.summary,
            "tool_calls": [dict(sorted(t.items())) for t in self.tool_calls],
            "turns": self.turns,
            "usage": {
                "cost_usd": self.cost_usd,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
            },
        }


# -- the tools -------------------------------------------------------------------------


class _Refused(Exception):  # noqa: N818 - becomes an error result, not raised out
    """A tool call refused; becomes ``{"ok": false, "error": code, "message": message}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message, **extra}


def _git_env() -> dict[str, str]:
    """The environment for LifeOS's own git calls: no GIT_* overrides from outside."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


def _set_executable(path: Path, executable: bool) -> None:
    mode = path.stat().st_mode & 0o7777
    wanted = mode | ((mode & 0o444) >> 2) if executable else mode & ~0o111
    if wanted != mode:
        os.chmod(path, wanted)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parents created), keeping an existing file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.is_file() else None
    atomic_write(path, data)
    if mode is not None:
        os.chmod(path, mode)


def _change(root: Path, rel: str) -> dict[str, Any]:
    """The recorded change for ``rel`` as it is now: its content, or deleted."""
    path = root / rel
    if not os.path.lexists(path):
        return {"deleted": True, "path": rel}
    data = path.read_bytes()
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return {"content": content, "encoding": encoding, "executable": _executable(path), "path": rel}


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to about ``limit`` characters, keeping its head and tail."""
    if len(text) <= limit:
        return text, False
    head = limit // 2
    tail = limit - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[... {omitted} characters omitted ...]\n{text[-tail:]}", True


def _unquote(text: str) -> str:
    """A path as git writes it: C-quoted (``"a/caf\\303\\251"``) or plain up to a tab."""
    if not text.startswith('"'):
        return text.split("\t", 1)[0].rstrip("\r")
    out = bytearray()
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            break
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "0123" and re.fullmatch(r"[0-7]{3}", text[i + 1 : i + 4]):
                out.append(int(text[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_C_ESCAPES.get(nxt, ord(nxt) if nxt.isascii() else 63))
            i += 2
            continue
        out.extend(char.encode("utf-8", "surrogateescape"))
        i += 1
    return os.fsdecode(bytes(out))


def _header_paths(patch: str, prefix: str) -> list[str]:
    """The paths on the patch's header lines that start with ``prefix``."""
    return [
        _unquote(line[len(prefix) :])
        for line in patch.splitlines()
        if line.startswith(prefix) and len(line) > len(prefix)
    ]


class _Tools:
    """The tools over one worktree; each returns ``(result, changes)``."""

    def __init__(self, root: Path, config: NativeBuilderConfig) -> None:
        self.root = root
        self.config = config

    # -- paths ---------------------------------------------------------------------------

    def resolve(self, raw: Any, *, write: bool = False) -> tuple[Path, str]:
        """The real path and worktree-relative path of ``raw``; refused when unsafe."""
        if not isinstance(raw, str) or not raw:
            raise _Refused("INVALID_ARGUMENTS", "'path' should be a non-empty string")
        reason = unsafe_reason(raw)
        if reason is not None:
            raise _Refused(ReasonCode.PATH_UNSAFE.value, f"{raw!r}: {reason}")
        target = self.root / raw
        try:
            real = target.resolve()
        except (OSError, RuntimeError):
            raise _Refused(
                ReasonCode.PATH_UNSAFE.value, f"{raw!r} cannot be resolved (a symlink loop?)"
            ) from None
        if real == self.root:
            raise _Refused(ReasonCode.PATH_UNSAFE.value, f"{raw!r} is the worktree itself")
        if not real.is_relative_to(self.root):
            raise _Refused(
                ReasonCode.PATH_UNSAFE.value, f"{raw!r} resolves outside the worktree (symlink)"
            )
        rel = real.relative_to(self.root).as_posix()
        reason = unsafe_reason(rel)
        if reason is not None:
            raise _Refused(ReasonCode.PATH_UNSAFE.value, f"{raw!r} resolves to {rel!r}: {reason}")
        if write and target.is_symlink():
            raise _Refused(
                ReasonCode.SYMLINK_BLOCKED.value, f"{raw!r} is a symlink; it is not written"
            )
        return real, rel

    # -- dispatch ------------------------------------------------------------------------

    def run(self, name: str, arguments: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run tool ``name`` with the model's JSON ``arguments``."""
        spec = _SIGNATURES.get(name)
        if spec is None or (name == "run_command" and not self.config.commands):
            known = ", ".join(sorted(n for n in _SIGNATURES if self._offered(n)))
            return _error(
                ReasonCode.UNKNOWN_TOOL.value, f"no tool {name!r}; the tools are {known}"
            ), []
        required, optional = spec
        try:
            args = json.loads(arguments or "{}")
        except (json.JSONDecodeError, TypeError) as exc:
            return _error("INVALID_ARGUMENTS", f"the arguments are not JSON: {exc}"), []
        if not isinstance(args, dict):
            return _error("INVALID_ARGUMENTS", "the arguments should be a JSON object"), []
        missing = [k for k in required if k not in args]
        extra = sorted(k for k in args if k not in required and k not in optional)
        if missing or extra:
            expected = ", ".join([*required, *(f"{k}?" for k in optional)]) or "none"
            what = "missing " + ", ".join(missing) if missing else "unknown " + ", ".join(extra)
            return _error("INVALID_ARGUMENTS", f"{what} (arguments: {expected})"), []
        try:
            return getattr(self, f"tool_{name}")(**args)  # type: ignore[no-any-return]
        except _Refused as refused:
            return _error(refused.code, refused.message), []
        except OSError as exc:
            # strerror only: the exception's text would name absolute paths
            return _error("IO_ERROR", f"{name}: {exc.strerror or type(exc).__name__}"), []
        except subprocess.SubprocessError as exc:  # git itself hung
            return _error("TOOL_FAILED", f"{name}: {type(exc).__name__}"), []

    def _offered(self, name: str) -> bool:
        return name != "run_command" or bool(self.config.commands)

    # -- the tools -----------------------------------------------------------------------

    def tool_list_files(self, path: Any = ".") -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if isinstance(path, str) and path.endswith("/") and path != "/":
            path = path[:-1]
        if path in (".", ""):
            real, rel = self.root, "."
        else:
            real, rel = self.resolve(path)
        if not real.exists():
            raise _Refused("NOT_FOUND", f"{rel!r} does not exist")
        files = self._listing(rel)
        limit = self.config.max_list_entries
        result = {"files": files[:limit], "ok": True, "path": rel, "truncated": len(files) > limit}
        return result, []

    def _listing(self, rel: str) -> list[str]:
        argv = ["git", "--literal-pathspecs", "-c", "core.quotepath=off", "ls-files", "-z"]
        argv += ["--cached", "--others", "--exclude-standard", "--", rel]
        proc = subprocess.run(
            argv,
            cwd=self.root,
            env=_git_env(),
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
        if proc.returncode == 0:
            names = {os.fsdecode(n) for n in proc.stdout.split(b"\0") if n}
        else:  # not a git repository: walk it
            names = set()
            base = self.root if rel == "." else self.root / rel
            if base.is_file():
                names.add(rel)
            for folder, dirs, filenames in os.walk(base):
                dirs[:] = [d for d in dirs if d != ".git"]
                for filename in filenames:
                    names.add((Path(folder) / filename).relative_to(self.root).as_posix())
        return sorted(
            n for n in names if unsafe_reason(n) is None and os.path.lexists(self.root / n)
        )

    def tool_read_file(self, path: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        real, rel = self.resolve(path)
        if not real.exists():
            raise _Refused("NOT_FOUND", f"{rel!r} does not exist")
        if not real.is_file():
            raise _Refused("NOT_A_FILE", f"{rel!r} is not a file")
        limit = self.config.max_read_bytes
        with open(real, "rb") as fh:
            data = fh.read(limit + 1)
        size = real.stat().st_size
        truncated = len(data) > limit
        data = data[:limit]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not truncated or exc.start < len(data) - 3:
                raise _Refused("NOT_TEXT", f"{rel!r} is not UTF-8 text") from None
            text = data[: exc.start].decode("utf-8")  # cut inside the last character
        result = {"bytes": size, "content": text, "ok": True, "path": rel, "truncated": truncated}
        return result, []

    def tool_write_file(
        self, path: Any, content: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not isinstance(content, str):
            raise _Refused("INVALID_ARGUMENTS", "'content' should be a string")
        real, rel = self.resolve(path, write=True)
        if real.exists() and not real.is_file():
            raise _Refused("NOT_A_FILE", f"{rel!r} is not a file")
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused("INVALID_ARGUMENTS", "'content' is not valid Unicode") from None
        created = not real.exists()
        _write_bytes(real, data)
        result = {"bytes": len(data), "created": created, "ok": True, "path": rel}
        return result, [_change(self.root, rel)]

    def tool_delete_file(self, path: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        real, rel = self.resolve(path, write=True)
        if not os.path.lexists(real):
            raise _Refused("NOT_FOUND", f"{rel!r} does not exist")
        if not real.is_file():
            raise _Refused("NOT_A_FILE", f"{rel!r} is not a file")
        real.unlink()
        return {"deleted": True, "ok": True, "path": rel}, [_change(self.root, rel)]

    def tool_apply_patch(self, patch: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not isinstance(patch, str) or not patch.strip():
            raise _Refused("INVALID_ARGUMENTS", "'patch' should be a non-empty unified diff")
        if not patch.endswith("\n"):
            patch += "\n"
        special = _SPECIAL_MODE.search(patch)
        if special is not None:
            code = "SYMLINK_BLOCKED" if special.group(1) == "120000" else "SUBMODULE_BLOCKED"
            raise _Refused(code, "the patch makes a symlink or a submodule; only files may change")
        strip = self._strip_level(patch)
        proc = self._git_apply(patch, strip, "--numstat", "-z")
        if proc.returncode != 0:
            raise _Refused("PATCH_FAILED", self._apply_error(proc))
        # numstat names each file once (a rename's new name); renamed and copied-from
        # paths come from the extended headers.
        targets = self._numstat_paths(proc.stdout)
        renamed = _header_paths(patch, "rename from ")
        sources = _header_paths(patch, "copy from ")
        if not targets:
            raise _Refused("PATCH_FAILED", "the patch changes no file")
        for raw in [*targets, *renamed, *sources]:
            _, rel = self.resolve(raw, write=True)
            if rel != raw:
                raise _Refused(
                    ReasonCode.PATH_UNSAFE.value, f"{raw!r} goes through a symlink ({rel!r})"
                )
        changed = {*targets, *renamed}  # a copy's source is only read
        before = {rel: os.path.lexists(self.root / rel) for rel in changed}
        proc = self._git_apply(patch, strip)
        if proc.returncode != 0:
            # Already applied (a run resumed after a crash mid-patch): the same result.
            reverse = self._git_apply(patch, strip, "--reverse", "--check")
            if reverse.returncode != 0:
                raise _Refused("PATCH_FAILED", self._apply_error(proc))
        changes = [_change(self.root, rel) for rel in sorted(changed)]
        files = []
        for change in changes:
            rel = change["path"]
            if change.get("deleted"):
                status = "deleted"
            else:
                status = "modified" if before[rel] else "added"
            files.append({"path": rel, "status": status})
        return {"files": files, "ok": True}, changes

    @staticmethod
    def _strip_level(patch: str) -> int:
        """1 for git-style patches (``a/`` and ``b/`` prefixes), else 0."""
        if re.search(r"^diff --git ", patch, re.MULTILINE):
            return 1
        lines = patch.splitlines()
        names = [
            _unquote(line[4:])
            for old, new in itertools.pairwise(lines)
            if old.startswith("--- ") and new.startswith("+++ ")
            for line in (old, new)
        ]
        names = [n for n in names if n != "/dev/null"]
        return 1 if names and all(n.startswith(("a/", "b/")) for n in names) else 0

    def _git_apply(self, patch: str, strip: int, *extra: str) -> subprocess.CompletedProcess[bytes]:
        argv = ["git", "apply", "--whitespace=nowarn", "--recount", f"-p{strip}", *extra, "-"]
        return subprocess.run(
            argv,
            cwd=self.root,
            env=_git_env(),
            input=patch.encode("utf-8", "surrogateescape"),
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )

    @staticmethod
    def _apply_error(proc: subprocess.CompletedProcess[bytes]) -> str:
        text = proc.stderr.decode("utf-8", "replace").strip() or "git apply failed"
        return _truncate(text, 2_000)[0]

    @staticmethod
    def _numstat_paths(out: bytes) -> list[str]:
        """The paths ``git apply --numstat -z`` names (both sides of a rename or copy)."""
        fields = out.split(b"\0")
        paths: list[str] = []
        i = 0
        while i < len(fields):
            item = fields[i]
            i += 1
            if not item:
                continue
            parts = item.split(b"\t", 2)
            if len(parts) == 3 and parts[2]:
                paths.append(os.fsdecode(parts[2]))
            elif len(parts) == 3:  # a rename or copy: old and new follow
                paths.extend(os.fsdecode(p) for p in fields[i : i + 2])
                i += 2
        return paths

    def tool_run_command(self, name: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        commands = self.config.commands
        if not isinstance(name, str) or name not in commands:
            allowed = ", ".join(sorted(commands)) or "none"
            raise _Refused("UNKNOWN_COMMAND", f"no command {name!r}; allowed: {allowed}")
        argv = list(commands[name])
        env = {
            key: os.environ[key]
            for key in (*_BASE_ENV, *self.config.env_allowlist)
            if key in os.environ
        }
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise _Refused(
                "COMMAND_NOT_RUNNABLE",
                f"{name}: cannot run {argv[0]!r}: {exc.strerror or type(exc).__name__}",
            ) from None
        timed_out = False
        try:
            raw, _ = proc.communicate(timeout=self.config.command_timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            raw = stop_group(proc) or b""
        output, truncated = _truncate(raw.decode("utf-8", "replace"), self.config.max_output_chars)
        code = proc.returncode
        result: dict[str, Any] = {
            "argv": argv,
            "command": name,
            "exit_code": code,
            "ok": code == 0 and not timed_out,
            "output": output,
            "timed_out": timed_out,
            "truncated": truncated,
        }
        if timed_out:
            result["error"] = "COMMAND_TIMEOUT"
            result["message"] = f"{name} ran past {self.config.command_timeout_s:g}s"
        elif code != 0:
            result["error"] = "COMMAND_FAILED"
            result["message"] = f"{name} exited with {code}"
        return result, []

    # -- replay --------------------------------------------------------------------------

    def reapply(self, changes: Sequence[Mapping[str, Any]]) -> None:
        """Write recorded ``changes`` again (idempotent); an unsafe one is refused."""
        for change in changes:
            try:
                real, rel = self.resolve(change.get("path"), write=True)
            except _Refused as refused:
                raise NativeBuilderError(
                    f"journal: a recorded change is unsafe: {refused.message}",
                    ReasonCode.PATH_UNSAFE,
                ) from None
            if change.get("deleted"):
                if os.path.lexists(real):
                    real.unlink()
                continue
            content = str(change.get("content", ""))
            if change.get("encoding") == "base64":
                data = base64.b64decode(content)
            else:
                data = content.encode("utf-8")
            if real.exists() and not real.is_file():
                raise NativeBuilderError(
                    f"journal: cannot rebuild {rel!r}: it is not a file", ReasonCode.PATH_UNSAFE
                )
            if not real.exists() or real.read_bytes() != data:
                _write_bytes(real, data)
            _set_executable(real, bool(change.get("executable")))


_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "list_files": ((), ("path",)),
    "read_file": (("path",), ()),
    "write_file": (("path", "content"), ()),
    "apply_patch": (("patch",), ()),
    "delete_file": (("path",), ()),
    "run_command": (("name",), ()),
}
"""Each tool's required and optional arguments."""


# -- the loop --------------------------------------------------------------------------


def _run_now(call: Callable[[], Any]) -> tuple[Any, bool]:
    return call(), False


def _tool_message_content(result: Mapping[str, Any]) -> str:
    return json.dumps(result, sort_keys=True, ensure_ascii=False)


def _summary(name: str, arguments: str, result: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "ok": bool(result.get("ok"))}
    if not entry["ok"]:
        entry["error"] = result.get("error")
    if isinstance(result.get("path"), str):
        entry["path"] = result["path"]
    elif isinstance(result.get("files"), list) and name == "apply_patch":
        entry["paths"] = [f["path"] for f in result["files"]]
    else:
        try:
            args = json.loads(arguments)
        except (json.JSONDecodeError, TypeError):
            args = None
        if isinstance(args, dict) and isinstance(args.get("path"), str):
            entry["path"] = args["path"]
    if name == "run_command" and isinstance(result.get("command"), str):
        entry["command"] = result["command"]
    return entry


class _Totals:
    """Usage summed over the calls; a figure becomes None once a call lacks it."""

    def __init__(self) -> None:
        self.input: int | None = 0
        self.output: int | None = 0
        self.cost: float | None = 0.0

    def add(self, usage: Usage) -> None:
        if not usage.available or usage.input_tokens is None or usage.output_tokens is None:
            self.input = self.output = None
        elif self.input is not None and self.output is not None:
            self.input += usage.input_tokens
            self.output += usage.output_tokens
        if usage.cost_usd is None:
            self.cost = None
        elif self.cost is not None:
            self.cost = round(self.cost + usage.cost_usd, 10)


def _expect(record: Any, kind: str, **fields: Any) -> Mapping[str, Any]:
    """``record`` when it is a ``kind`` record with ``fields``; NONDETERMINISM otherwise."""
    if not isinstance(record, Mapping) or record.get("kind") != kind:
        got = record.get("kind") if isinstance(record, Mapping) else type(record).__name__
        raise NativeBuilderError(
            f"journal: expected a {kind} record here, found {got!r}; the run differs from "
            "the one recorded"
        )
    for name, value in fields.items():
        if record.get(name) != value:
            raise NativeBuilderError(
                f"journal: the recorded {kind} has {name}={record.get(name)!r}, this run "
                f"{value!r}; the run differs from the one recorded"
            )
    return record


def run_native_builder(
    provider: AgentProvider,
    worktree: Path,
    instructions: str,
    *,
    config: NativeBuilderConfig,
    once: Once | None = None,
    before_call: Callable[[AgentCall], None] | None = None,
    after_call: Callable[[AgentResponse], None] | None = None,
    system_prompt: str | None = None,
    model: str | None = None,
    role: str = "builder",
) -> NativeBuildResult:
    """Let the model build in ``worktree`` with the file tools until it is done.

    Args:
        provider: The chat model.
        worktree: The worktree every tool is confined to.
        instructions: The task, sent as the user message.
        config: Turns, commands and limits.
        once: Runs one side effect once per run (``StepEnv.once``); each model call and
            each tool call is one. None runs everything.
        before_call: Called before every live model call (a budget check); what it raises
            stops the run, with no call made.
        after_call: Called after every live model call with its response (usage
            accounting), before the call is recorded.
        system_prompt: The system message (:data:`DEFAULT_SYSTEM_PROMPT` when None).
        model: The model to ask for (None: the provider's).
        role: The configured role the calls are made for.

    Returns:
        ``done`` with the model's final answer, or ``turns_exhausted`` after
        ``config.max_turns`` model calls (the last one's tool calls are still run).

    Raises:
        NativeBuilderError: A replayed record does not fit this run (``NONDETERMINISM``) or
            holds an unsafe path (``PATH_UNSAFE``).
        InputError: ``worktree`` is not a directory.
        AgentError: The provider failed (nothing is recorded for that call).
    """
    if not worktree.is_dir():
        raise InputError(f"{worktree}: the worktree is not a directory")
    root = worktree.resolve()
    tools = _Tools(root, config)
    run_once: Once = once if once is not None else _run_now
    schemas = tool_schemas(config)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": instructions},
    ]
    totals = _Totals()
    summaries: list[dict[str, Any]] = []
    final: dict[str, bool] = {}  # path -> written (True) or deleted (False)
    status: Status = "turns_exhausted"
    summary = ""
    turns = 0

    for turn in range(1, config.max_turns + 1):
        call = AgentCall(
            messages=tuple(messages),
            model=model,
            role=role,
            max_tokens=config.max_tokens,
            tools=schemas,
        )
        digest = sha256_hex(
            {
                "max_tokens": call.max_tokens,
                "messages": list(call.messages),
                "model": model,
                "role": role,
                "tools": schemas,
            }
        )
        record, _ = run_once(_model_call(provider, call, turn, digest, before_call, after_call))
        record = _expect(record, "model_call", turn=turn, request_sha256=digest)
        response = response_from_dict(record["response"])
        turns = turn
        totals.add(response.usage)
        summary = response.content
        if not response.tool_calls:
            status = "done"
            break
        ids = [t.id or f"call_{turn}_{i}" for i, t in enumerate(response.tool_calls)]
        messages.append(
            {
                "role": "assistant",
                "content": response.content or None,
                "tool_calls": [
                    {
                        "id": tool_id,
                        "type": "function",
                        "function": {"name": t.name, "arguments": t.arguments},
                    }
                    for tool_id, t in zip(ids, response.tool_calls, strict=True)
                ],
            }
        )
        for tool_id, tool_call in zip(ids, response.tool_calls, strict=True):
            record, replayed = run_once(_tool_call(tools, tool_call, tool_id, turn))
            record = _expect(record, "tool_call", turn=turn, id=tool_id, name=tool_call.name)
            changes = list(record.get("changes") or [])
            if replayed:
                tools.reapply(changes)
            for change in changes:
                final[str(change["path"])] = not change.get("deleted")
            result = record.get("result") or {}
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": tool_id,
                    "content": _tool_message_content(result),
                }
            )
            summaries.append(_summary(tool_call.name, tool_call.arguments, result))

    return NativeBuildResult(
        status=status,
        summary=summary,
        turns=turns,
        model_calls=turns,
        tool_calls=tuple(summaries),
        files_written=tuple(sorted(p for p, written in final.items() if written)),
        files_deleted=tuple(sorted(p for p, written in final.items() if not written)),
        input_tokens=totals.input,
        output_tokens=totals.output,
        cost_usd=totals.cost,
    )


def _model_call(
    provider: AgentProvider,
    call: AgentCall,
    turn: int,
    digest: str,
    before_call: Callable[[AgentCall], None] | None,
    after_call: Callable[[AgentResponse], None] | None,
) -> Callable[[], dict[str, Any]]:
    def live() -> dict[str, Any]:
        if before_call is not None:
            before_call(call)
        response = provider.call(call)
        if after_call is not None:
            after_call(response)
        return {
            "kind": "model_call",
            "request_sha256": digest,
            "response": response_to_dict(response),
            "turn": turn,
        }

    return live


def _tool_call(
    tools: _Tools, tool_call: ToolCall, tool_id: str, turn: int
) -> Callable[[], dict[str, Any]]:
    def live() -> dict[str, Any]:
        result, changes = tools.run(tool_call.name, tool_call.arguments)
        return {
            "changes": changes,
            "id": tool_id,
            "kind": "tool_call",
            "name": tool_call.name,
            "result": result,
            "turn": turn,
        }

    return live
