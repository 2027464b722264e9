"""What an external agent changed in a worktree, as journal data, and back.

An external coding agent edits the worktree itself, so its journal record must carry
the edits: after the call, every path ``git status`` lists (untracked files included,
ignored ones not) is captured with its content (or as deleted, or as a symlink); a
replay writes exactly those back, so a resumed run rebuilds the worktree without
running the agent again. Paths are checked with the gate's path-safety rules on the way
back in.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lifeos.errors import InputError, ReasonCode
from lifeos.fsutil import atomic_write
from lifeos.policy.paths import unsafe_reason

__all__ = ["apply_changes", "capture_changes"]


def _status_paths(worktree: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"})
    settings = (
        "core.quotePath=false",
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        "core.untrackedCache=false",
    )
    proc = subprocess.run(
        [
            "git",
            *(arg for setting in settings for arg in ("-c", setting)),
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
        ],
        cwd=worktree,
        env=env,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InputError(
            f"{worktree}: cannot read what the agent changed: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}",
            ReasonCode.GIT_FAILED,
        )
    entries = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted({e[3:] for e in entries if len(e) > 3})


def capture_changes(worktree: Path) -> list[dict[str, Any]]:
    """Every changed path of ``worktree`` with what it now holds, sorted by path."""
    out: list[dict[str, Any]] = []
    for rel in _status_paths(worktree):
        path = worktree / rel
        if path.is_symlink():
            out.append({"path": rel, "symlink": os.readlink(path)})
        elif path.is_file():
            out.append(
                {
                    "path": rel,
                    "content_b64": base64.b64encode(path.read_bytes()).decode("ascii"),
                    "executable": os.access(path, os.X_OK),
                }
            )
        elif not path.exists():
            out.append({"path": rel, "deleted": True})
    return out


def apply_changes(worktree: Path, changes: Iterable[Mapping[str, Any]]) -> None:
    """Write recorded changes back into ``worktree`` (idempotent).

    Raises:
        InputError: a recorded path is unsafe (PATH_UNSAFE) — the journal is not trusted
            to point outside the worktree.
    """
    root = worktree.resolve()
    for change in changes:
        rel = str(change["path"])
        reason = unsafe_reason(rel)
        target = (worktree / rel).resolve() if reason is None else None
        if target is None or not target.is_relative_to(root) or target == root:
            raise InputError(
                f"recorded change to {rel!r} is outside the worktree ({reason or 'escapes'})",
                ReasonCode.PATH_UNSAFE,
            )
        path = worktree / rel
        if change.get("deleted"):
            if path.is_symlink() or path.is_file():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            path.unlink()
        if "symlink" in change:
            path.symlink_to(str(change["symlink"]))
            continue
        atomic_write(path, base64.b64decode(str(change["content_b64"])))
        path.chmod(0o755 if change.get("executable") else 0o644)
