"""What the end-to-end tests share: the installed ``lifeos`` command and git, run in a
temporary repository, and the user's checkout as a value to compare before and after."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import GIT_ENV

from lifeos.policy.gitread import LIFEOS_OWNED

LIFEOS = str(Path(sys.executable).parent / "lifeos")


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``lifeos`` process: this one's without LIFEOS_* overrides,
    this interpreter's bin first on PATH (the demo's checks run ``python``), pytest
    plugins not auto-loaded by the projects' own tests, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEOS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return {**env, **(extra or {})}


def lifeos(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``lifeos ARGS`` in ``cwd``; a traceback on stderr fails the test."""
    proc = subprocess.run(
        [LIFEOS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=run_env(env),
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; its stdout, stripped."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


def checkout_state(repo: Path) -> tuple[str, str, dict[str, bytes]]:
    """HEAD, status and every file's bytes of the user's checkout, LifeOS-owned paths
    (``LIFEOS_OWNED``) aside."""

    def owned(rel: str) -> bool:
        return any(rel == p or rel.startswith(f"{p}/") for p in LIFEOS_OWNED)

    files = {
        rel: p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file()
        and ".git" not in p.parts
        and not owned(rel := p.relative_to(repo).as_posix())
    }
    excludes = [f":(exclude){p}" for p in LIFEOS_OWNED]
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--", ".", *excludes)
    return git(repo, "rev-parse", "HEAD"), status, files


def one_line_error(proc: Any, code: int, reason: str) -> None:
    """The command failed with exit ``code`` and one ``lifeos: error: ... [REASON]`` line."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), proc.stderr
    assert "Traceback" not in proc.stderr
