"""The SQLite store: one file, WAL mode, ``synchronous=FULL`` by default.

Opening checks that the file is a LifeOS database of a schema this code knows
before writing anything, then applies the missing migrations in order and
records them. Every write runs in a transaction; ``BEGIN IMMEDIATE`` takes the
write lock first, so concurrent writers (other processes) queue on the busy
timeout instead of interleaving — which is what keeps the ledger's chain linear.

The queries are the shared ones (``_sql``); this module holds SQLite's dialect: the
connection and its pragmas, the migrations, transactions, and the ledger's reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lifeos.clock import Clock
from lifeos.store._rules import GENESIS_HASH
from lifeos.store._sql import SQLStore, store_errors
from lifeos.store.base import LedgerRow, LedgerScanner, LedgerScanRow, StoreError

__all__ = ["GENESIS_HASH", "MIGRATIONS", "SQLiteStore"]

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE lifeos_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
        status TEXT NOT NULL, previous_status TEXT, description TEXT NOT NULL,
        priority TEXT, max_cost_usd REAL, spent_cost_usd REAL NOT NULL DEFAULT 0,
        max_loops INTEGER, loop_count INTEGER NOT NULL DEFAULT 0,
        message_count INTEGER NOT NULL DEFAULT 0, config_json TEXT NOT NULL,
        failure_reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        completed_at TEXT, failed_at TEXT
    );
    CREATE INDEX runs_created ON runs (created_at);
    CREATE TABLE mission_tasks (
        run_id TEXT NOT NULL REFERENCES runs (run_id), task_id TEXT NOT NULL,
        task_order INTEGER NOT NULL, description TEXT NOT NULL,
        context_files TEXT NOT NULL, required_artifact_ids TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'executing', 'review',
            'repair_retry', 'approved', 'failed_terminal', 'skipped')),
        result_artifact_ids TEXT NOT NULL, repair_attempt INTEGER NOT NULL DEFAULT 0,
        consumed_tokens INTEGER NOT NULL DEFAULT 0, started_at TEXT, locked_at TEXT,
        locked_by TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT,
        PRIMARY KEY (run_id, task_id)
    );
    CREATE TABLE artifacts (
        artifact_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, file_path TEXT NOT NULL,
        version_number INTEGER NOT NULL, supersedes_id TEXT, is_deleted INTEGER NOT NULL,
        kind TEXT NOT NULL, mime_type TEXT NOT NULL, checksum TEXT NOT NULL,
        size_bytes INTEGER NOT NULL, content BLOB NOT NULL, metadata_json TEXT NOT NULL,
        created_at TEXT NOT NULL, UNIQUE (run_id, file_path, version_number)
    );
    CREATE TABLE timeline_events (
        event_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT,
        event_type TEXT NOT NULL, event_json TEXT NOT NULL, created_at TEXT NOT NULL,
        position INTEGER NOT NULL
    );
    CREATE INDEX timeline_run ON timeline_events (run_id, position);
    CREATE INDEX timeline_time ON timeline_events (created_at, position);
    CREATE UNIQUE INDEX timeline_position ON timeline_events (position);
    CREATE TABLE checkpoints (
        checkpoint_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_index INTEGER NOT NULL,
        step_id TEXT NOT NULL, step_digest TEXT NOT NULL, status TEXT NOT NULL,
        state_hash TEXT NOT NULL, policy_hash TEXT, delta_json TEXT NOT NULL,
        info_json TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (run_id, step_index)
    );
    CREATE TABLE journal (
        run_id TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,
        call_index INTEGER NOT NULL, step_digest TEXT NOT NULL, result_json TEXT NOT NULL,
        created_at TEXT NOT NULL, PRIMARY KEY (run_id, step, attempt, call_index)
    );
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY, entry BLOB NOT NULL, leaf_hash TEXT NOT NULL,
        type TEXT NOT NULL, run_id TEXT
    );
    CREATE INDEX ledger_run ON ledger (run_id, seq);
    CREATE TABLE ledger_checkpoints (
        tree_size INTEGER NOT NULL, root_hash TEXT NOT NULL, note TEXT NOT NULL,
        created_at TEXT NOT NULL, position INTEGER PRIMARY KEY
    );
    CREATE TABLE nonces (nonce TEXT PRIMARY KEY, source TEXT NOT NULL, consumed_at TEXT NOT NULL);
    """,
    # 2: claims are leases: who holds a run, since and until when; until when for a task.
    """
    ALTER TABLE runs ADD COLUMN claimed_by TEXT;
    ALTER TABLE runs ADD COLUMN claimed_at TEXT;
    ALTER TABLE runs ADD COLUMN claim_expires_at TEXT;
    ALTER TABLE mission_tasks ADD COLUMN lock_expires_at TEXT;
    """,
]

_SCAN_SQL = (
    "SELECT seq, entry, CAST(leaf_hash AS BLOB), type, run_id FROM ledger "
    "WHERE seq >= ? AND seq < ? ORDER BY seq"
)
_SCAN_BATCH = 512
"""Rows per ``ledger_scan`` batch: enough that the per-batch work vanishes, few enough that
a batch (about 0.3 MB of rows) is still in the CPU cache while the caller walks it (8192-row
batches made ``ledger verify`` a tenth slower, and their read alone a third)."""
_NO_END = 2**63 - 1


def _scan_ledger(
    db: sqlite3.Connection, start: int, end: int | None, where: Path
) -> Iterator[list[LedgerScanRow]]:
    """``ledger_scan`` over ``db``: a bounded range of seqs, plain tuples, in batches."""
    cur = db.cursor()
    cur.row_factory = None
    try:
        cur.execute(_SCAN_SQL, (start, _NO_END if end is None else end))
        while batch := cur.fetchmany(_SCAN_BATCH):
            yield batch
    except sqlite3.Error as exc:
        raise StoreError(f"{where}: the ledger cannot be read: {exc}") from None
    finally:
        cur.close()


class _LedgerScanner:
    """``SQLiteStore.ledger_scan`` over a read-only connection of its own, per call.

    It holds only the file's path, so it pickles, and it never touches the connection
    of the store it came from: a forked process can use it safely.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    def __call__(self, start: int, end: int | None) -> Iterator[list[LedgerScanRow]]:
        """Batches of the rows with ``start <= seq < end`` (to the last one when None)."""
        try:
            db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        try:
            yield from _scan_ledger(db, start, end, self.path)
        finally:
            db.close()


@store_errors
class SQLiteStore(SQLStore):
    """The embedded store (``.lifeos/lifeos.db`` by default)."""

    _DRIVER_ERROR = sqlite3.Error
    _MIGRATIONS = MIGRATIONS
    _TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table'"
    _INSERT_EVENT_SQL = (
        "INSERT INTO timeline_events (event_id, run_id, task_id, event_type, event_json, "
        "created_at, position) VALUES (?, ?, ?, ?, ?, ?, "
        "(SELECT COALESCE(MAX(position), 0) + 1 FROM timeline_events))"
    )
    _FOR_UPDATE = ""  # BEGIN IMMEDIATE already holds the write lock
    _INSERTION_ORDER = "rowid"
    _RETURNING = False  # RETURNING needs SQLite 3.35

    def __init__(
        self,
        path: Path | str,
        clock: Clock,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 60.0,
    ) -> None:
        """Open (creating if needed) the store at ``path``.

        Raises:
            StoreError: not a LifeOS database, a newer schema, or unreadable; nothing written.
        """
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        self.path = Path(path)
        self.where = str(self.path)
        self.clock = clock
        self._depth = 0
        try:
            self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._check_identity()
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._set_wal(busy_timeout_s)
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys = ON")
            with self.transaction():
                self._apply_migrations()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a usable LifeOS store: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    # -- the dialect ---------------------------------------------------------------

    def _set_wal(self, timeout_s: float) -> None:
        # Switching a new file to WAL needs the write lock and does not wait on the busy
        # handler, so wait here, up to the busy timeout, for whoever holds it.
        import time

        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _q(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            with self.transaction():
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: write failed: {exc}") from None

    def _begin(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from None

    def _commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StoreError(f"{self.path}: commit failed: {exc}") from None

    def _abort(self) -> None:
        self._db.execute("ROLLBACK")

    def _lock(self, *parts: str) -> None:
        """Nothing to take: ``BEGIN IMMEDIATE`` holds the database's one write lock."""

    @staticmethod
    def _reason(exc: BaseException) -> str:
        return str(exc)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # -- the ledger's reads --------------------------------------------------------------

    def ledger_rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        """Entries with ``start <= seq < end`` in seq order."""
        cur = self._db.cursor()
        cur.row_factory = None
        try:
            cur.execute(
                "SELECT seq, entry, leaf_hash, type, run_id FROM ledger "
                "WHERE seq >= ? AND seq < ? ORDER BY seq",
                (start, _NO_END if end is None else end),
            )
            for seq, entry, leaf, type_, run_id in cur:
                yield LedgerRow(
                    seq=seq, entry=bytes(entry), leaf_hash=leaf, type=type_, run_id=run_id
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: the ledger cannot be read: {exc}") from None
        finally:
            cur.close()

    def ledger_scan(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[Sequence[LedgerScanRow]]:
        """Batches of ``(seq, entry, leaf_hash, type, run_id)`` tuples in seq order."""
        yield from _scan_ledger(self._db, start, end, self.path)

    def ledger_scanner(self) -> LedgerScanner | None:
        """A scanner with its own read-only connection; None for an in-memory store."""
        if str(self.path) in ("", ":memory:") or str(self.path).startswith("file:"):
            return None
        return _LedgerScanner(self.path)
