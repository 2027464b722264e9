"""Durable storage: the store contract and its backends.

``open_store`` opens the repository's store: ``.lifeos/lifeos.db`` under the main
repository root unless lifeos.yaml's ``store`` (or ``LIFEOS_STORE_URL``) names another
file or a ``postgresql://`` URL. The PostgreSQL backend, and psycopg with it, is
imported only when such a URL is used.
"""

from __future__ import annotations

from pathlib import Path

from lifeos.clock import Clock
from lifeos.store.base import (
    TASK_STATUSES,
    ArtifactRecord,
    CheckpointRecord,
    ClaimRecord,
    LeaseLost,
    LedgerEntry,
    LedgerRow,
    RunRecord,
    SignedCheckpoint,
    Store,
    StoreError,
    TaskRecord,
    TimelineEvent,
)

__all__ = [
    "DB_FILE",
    "POSTGRES_SCHEMES",
    "TASK_STATUSES",
    "ArtifactRecord",
    "CheckpointRecord",
    "ClaimRecord",
    "LeaseLost",
    "LedgerEntry",
    "LedgerRow",
    "RunRecord",
    "SignedCheckpoint",
    "Store",
    "StoreError",
    "TaskRecord",
    "TimelineEvent",
    "ensure_lifeos_dir",
    "open_store",
]

DB_FILE = "lifeos.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")
"""URL schemes that select the PostgreSQL store."""


def ensure_lifeos_dir(lifeos_dir: Path) -> Path:
    """Create ``.lifeos/`` with a .gitignore that ignores everything in it."""
    lifeos_dir.mkdir(parents=True, exist_ok=True)
    ignore = lifeos_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# LifeOS's own files: never committed.\n*\n", encoding="utf-8")
    return lifeos_dir


def open_store(lifeos_dir: Path, clock: Clock, location: str | None = None) -> Store:
    """Open the store: ``location`` or the default file.

    ``location`` is a path (relative to the main root) or a ``postgresql://`` URL.

    Raises:
        StoreError: another URL scheme, psycopg missing, or the store cannot be opened.
    """
    if location and "://" in location:
        scheme = location.split("://")[0]
        if scheme.lower() not in POSTGRES_SCHEMES:
            raise StoreError(f"store {scheme}:// is not supported by this build")
        return _open_postgres(location, clock)
    from lifeos.store.sqlite import SQLiteStore

    path = Path(location) if location else ensure_lifeos_dir(lifeos_dir) / DB_FILE
    if not path.is_absolute():
        path = lifeos_dir.parent / path
        path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path, clock)


def _open_postgres(url: str, clock: Clock) -> Store:
    try:
        from lifeos.store.postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            "the PostgreSQL store needs psycopg: pip install 'lifeos[postgresql]'"
        ) from None
    return PostgresStore(url, clock)
