"""Shared test setup: tier markers and temporary git repositories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier: e2e under tests/e2e, slow if marked, else unit."""
    for item in items:
        path = Path(str(item.fspath))
        if "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)
        elif item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)


GIT_ENV = {
    "GIT_AUTHOR_NAME": "LifeOS Test",
    "GIT_AUTHOR_EMAIL": "test@lifeos.invalid",
    "GIT_COMMITTER_NAME": "LifeOS Test",
    "GIT_COMMITTER_EMAIL": "test@lifeos.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity and return its stdout."""
    env = {**os.environ, **GIT_ENV, "HOME": str(repo)}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for this session (this xdist worker), stopped at its
    end (tests/store/pgserver.py); the test skips, saying why, where there is none."""
    from tests.store.pgserver import start_server

    server = start_server()
    if isinstance(server, str):
        pytest.skip(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A fresh git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("demo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    return repo
