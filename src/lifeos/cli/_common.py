"""Helpers shared by the command modules: JSON output, repository and config lookup."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from lifeos.config import LoadedConfig
    from lifeos.engine import OrchestrationResult
    from lifeos.repo import RepoContext
    from lifeos.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """Add ``--json``: print machine-readable output (indented, keys sorted)."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (keys sorted).")(fn)


def config_option(fn: F) -> F:
    """Add ``--config PATH`` to a subcommand (the group's ``--config`` works too)."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Read settings from this file instead of lifeos.yaml.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, config_path: str | None = None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if config_path is None and ctx.obj:
            config_path = ctx.obj.get("config_path")
        return fn(*args, config_path=config_path, **kwargs)

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON with sorted keys."""
    from lifeos.canonical import pretty_json

    click.echo(pretty_json(obj))


def repo() -> RepoContext:
    """The repository around the working directory."""
    from lifeos.repo import detect_repo

    return detect_repo(Path.cwd())


def load_settings(root: Path, config_path: str | None) -> LoadedConfig:
    """Load lifeos.yaml (or the ``--config`` file) for ``root``.

    Loaded once per file version: a command that asks several times reads it once, and
    a changed file (or a changed environment) is read again.
    """
    import os

    from lifeos.config import CONFIG_FILE

    path = Path(config_path) if config_path else root / CONFIG_FILE
    try:
        st = path.stat()
        stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LIFEOS_")))
    return _load_settings(root, config_path, stamp, env)


@functools.lru_cache(maxsize=8)
def _load_settings(
    root: Path,
    config_path: str | None,
    stamp: tuple[int, int] | None,
    env: tuple[tuple[str, str], ...],
) -> LoadedConfig:
    from lifeos.config import load_config

    return load_config(root, Path(config_path) if config_path else None, dict(env))


def result_exit_code(result: OrchestrationResult) -> int:
    """The pinned exit code for a run's result."""
    from lifeos.errors import (
        EXIT_BAD_INPUT,
        EXIT_ESCALATED,
        EXIT_FAILED,
        EXIT_OK,
        EXIT_PAUSED,
        INPUT_REASONS,
        ReasonCode,
    )

    if result.status == "completed":
        return EXIT_OK
    if result.status == "paused":
        return EXIT_PAUSED
    if result.status == "escalated":
        return EXIT_ESCALATED
    if result.reason_code and ReasonCode(result.reason_code) in INPUT_REASONS:
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def models_config(where: RepoContext) -> dict[str, Any]:
    """lifeos.yaml's ``models:`` section (empty without a config file)."""
    from lifeos.config import CONFIG_FILE

    if not (where.main_root / CONFIG_FILE).is_file():
        return {}
    models = load_settings(where.main_root, None).data.get("models") or {}
    return dict(models)


def backlog_path(where: RepoContext) -> Path:
    """The backlog file: lifeos.yaml's ``backlog.path`` or ``config/backlog.yaml``."""
    from lifeos.config import CONFIG_FILE

    relative = "config/backlog.yaml"
    if (where.main_root / CONFIG_FILE).is_file():
        relative = str(load_settings(where.main_root, None).data["backlog"]["path"])
    return where.root / relative


def open_repo_store(where: RepoContext | None = None) -> tuple[RepoContext, Store]:
    """The repository and its store (created on first use), with the system clock.

    The store location comes from ``LIFEOS_STORE_URL``/``LIFEOS_STORE`` or lifeos.yaml's
    ``store``; the config file is only read when it exists.
    """
    import os

    from lifeos.clock import SystemClock
    from lifeos.config import CONFIG_FILE
    from lifeos.store import open_store

    where = where or repo()
    location = os.environ.get("LIFEOS_STORE_URL") or os.environ.get("LIFEOS_STORE")
    if location is None and (where.main_root / CONFIG_FILE).is_file():
        location = load_settings(where.main_root, None).data.get("store")
    return where, open_store(where.lifeos_dir, SystemClock(), location)
