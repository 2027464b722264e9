"""Durable storage: the store contract and its backends.

``open_store`` opens the repository's store: ``.lifeos/lifeos.db`` under the main
repository root unless lifeos.yaml's ``store`` names another file.
"""

from __future__ import annotations

from pathlib import Path

from lifeos.clock import Clock
from lifeos.store.base import (
    TASK_STATUSES,
    ArtifactRecord,
    CheckpointRecord,
    ClaimRecord,
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
    "TASK_STATUSES",
    "ArtifactRecord",
    "CheckpointRecord",
    "ClaimRecord",
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


def ensure_lifeos_dir(lifeos_dir: Path) -> Path:
    """Create ``.lifeos/`` with a .gitignore that ignores everything in it."""
    lifeos_dir.mkdir(parents=True, exist_ok=True)
    ignore = lifeos_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# LifeOS's own files: never committed.\n*\n", encoding="utf-8")
    return lifeos_dir


def open_store(lifeos_dir: Path, clock: Clock, location: str | None = None) -> Store:
    """Open the store: ``location`` (a path, relative to the main root) or the default file."""
    from lifeos.store.sqlite import SQLiteStore

    if location and "://" in location:
        raise StoreError(f"store {location.split('://')[0]}:// is not supported by this build")
    path = Path(location) if location else ensure_lifeos_dir(lifeos_dir) / DB_FILE
    if not path.is_absolute():
        path = lifeos_dir.parent / path
        path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path, clock)
