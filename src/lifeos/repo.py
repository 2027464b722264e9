"""Where the user's repository is, found the way git finds it (one git call)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RepoContext", "detect_repo"]

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class RepoContext:
    """The repository root (or the working directory outside git) and its HEAD."""

    root: Path
    head: str | None
    in_git: bool


def detect_repo(cwd: Path) -> RepoContext:
    """Return the repository containing ``cwd``; outside git, ``cwd`` itself."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return RepoContext(cwd, None, False)
    lines = proc.stdout.splitlines()
    if not lines or not lines[0].startswith("/"):
        return RepoContext(cwd, None, False)
    head = lines[1] if len(lines) > 1 and _SHA.match(lines[1]) else None
    return RepoContext(Path(lines[0]), head, True)
