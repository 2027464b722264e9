"""Changes an external agent made in a worktree: captured as journal data, written back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lifeos.errors import InputError
from lifeos.spine.changes import apply_changes, capture_changes


def _repo(path: Path) -> Path:
    path.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / "keep.txt").write_text("keep\n")
    (path / "gone.txt").write_text("gone\n")
    (path / ".gitignore").write_text("*.log\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=path, check=True, env=env)
    return path


def _edit(repo: Path) -> None:
    (repo / "gone.txt").unlink()
    (repo / "keep.txt").write_text("changed\n")
    (repo / "src").mkdir()
    (repo / "src" / "new.py").write_bytes(b"x = '\xc3\xa9'\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("keep.txt")
    (repo / "noise.log").write_text("ignored\n")


def test_capture_then_apply_rebuilds_the_same_files(tmp_path: Path) -> None:
    first = _repo(tmp_path / "a")
    _edit(first)
    changes = capture_changes(first)
    assert [c["path"] for c in changes] == ["gone.txt", "keep.txt", "link", "run.sh", "src/new.py"]
    assert {"path": "gone.txt", "deleted": True} in changes
    second = _repo(tmp_path / "b")
    apply_changes(second, changes)
    apply_changes(second, changes)  # idempotent: a replay after a replay
    assert capture_changes(second) == changes
    assert (second / "src/new.py").read_bytes() == b"x = '\xc3\xa9'\n"
    assert os.access(second / "run.sh", os.X_OK) and not os.access(second / "keep.txt", os.X_OK)
    assert os.readlink(second / "link") == "keep.txt"
    assert not (second / "noise.log").exists()  # ignored files are not the agent's work


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", ".git/config", "a/../../x"])
def test_a_recorded_change_outside_the_worktree_is_refused(tmp_path: Path, path: str) -> None:
    repo = _repo(tmp_path / "r")
    with pytest.raises(InputError) as info:
        apply_changes(repo, [{"path": path, "content_b64": "eA==", "executable": False}])
    assert info.value.reason.value == "PATH_UNSAFE"
    assert not (tmp_path / "escape.txt").exists()


def test_a_recorded_change_through_a_symlinked_folder_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "out").symlink_to(outside)
    with pytest.raises(InputError):
        apply_changes(repo, [{"path": "out/x.txt", "content_b64": "eA==", "executable": False}])
    assert not (outside / "x.txt").exists()
