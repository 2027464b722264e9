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
    """The work tree's top level (a linked worktree's own root inside a worktree)."""
    head: str | None
    """HEAD's commit id, or None before the first commit or outside git."""
    in_git: bool
    """Whether the directory is inside a git work tree."""
    main_root: Path
    """The main repository's root, shared by all its worktrees; LifeOS's store lives here."""

    @property
    def lifeos_dir(self) -> Path:
        """``.lifeos/`` at the main repository root (``./.lifeos`` outside git)."""
        return self.main_root / ".lifeos"


def detect_repo(cwd: Path) -> RepoContext:
    """Return the repository containing ``cwd``; outside git, ``cwd`` itself."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--git-common-dir", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return RepoContext(cwd, None, False, cwd)
    lines = proc.stdout.splitlines()
    if len(lines) < 2 or not lines[0].startswith("/"):
        return RepoContext(cwd, None, False, cwd)
    root = Path(lines[0])
    common = Path(lines[1])
    if not common.is_absolute():
        common = (root / common).resolve()
    main_root = common.parent if common.name == ".git" else root
    head = lines[2] if len(lines) > 2 and _SHA.match(lines[2]) else None
    return RepoContext(root, head, True, main_root)
