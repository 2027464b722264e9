"""The SQLite store: one file, WAL mode, ``synchronous=FULL`` by default.

Opening checks that the file is a LifeOS database of a schema this code knows
before writing anything, then applies the missing migrations in order and
records them. Every write runs in a transaction; ``BEGIN IMMEDIATE`` takes the
write lock first, so concurrent writers (other processes) queue on the busy
timeout instead of interleaving — which is what keeps the ledger's chain linear.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from lifeos.canonical import canonical_json, canonical_text, stable_uuid
from lifeos.clock import Clock, iso
from lifeos.journal import JournalKey, JournalRecord
from lifeos.store._rows import artifact_record as _artifact
from lifeos.store._rows import checkpoint_record as _checkpoint
from lifeos.store._rows import run_record as _run
from lifeos.store._rows import task_record as _task
from lifeos.store._rules import (
    APPLICATION,
    FINAL_FAILED,
    FINAL_OK,
    GENESIS_HASH,
    RUN_UPDATABLE,
    TASK_UPDATABLE,
    lease_window,
)
from lifeos.store.base import (
    TASK_STATUSES,
    ArtifactRecord,
    CheckpointRecord,
    ClaimRecord,
    LedgerEntry,
    LedgerRow,
    LedgerScanner,
    LedgerScanRow,
    RunRecord,
    SignedCheckpoint,
    StoreError,
    TaskRecord,
    TimelineEvent,
)

__all__ = ["GENESIS_HASH", "MIGRATIONS", "SQLiteStore"]

_T = TypeVar("_T")

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

_RUN_COLUMNS = (
    "run_id, kind, name, status, previous_status, description, priority, max_cost_usd, "
    "spent_cost_usd, max_loops, loop_count, message_count, config_json, failure_reason, "
    "created_at, updated_at, completed_at, failed_at"
)
_TASK_COLUMNS = (
    "task_id, run_id, task_order, description, context_files, required_artifact_ids, status, "
    "result_artifact_ids, repair_attempt, consumed_tokens, started_at, locked_at, locked_by, "
    "created_at, updated_at, completed_at"
)


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


def _sqlite_errors_as_store_errors(cls: type[_T]) -> type[_T]:
    """Map sqlite3 errors raised by any public method to StoreError, at the boundary.

    (The generator methods map the errors raised while they are iterated themselves.)
    """
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(fn) or inspect.isgeneratorfunction(fn):
            continue

        def wrapped(*args: Any, __fn: Callable[..., Any] = fn, **kwargs: Any) -> Any:
            try:
                return __fn(*args, **kwargs)
            except sqlite3.Error as exc:
                store = args[0]
                raise StoreError(f"{store.path}: {exc}") from None

        functools.update_wrapper(wrapped, fn)
        setattr(cls, name, wrapped)
    return cls


@_sqlite_errors_as_store_errors
class SQLiteStore:
    """The embedded store (``.lifeos/lifeos.db`` by default)."""

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
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a usable LifeOS store: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    # -- housekeeping ------------------------------------------------------------

    def _check_identity(self) -> None:
        tables = {
            r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            return
        if "lifeos_meta" not in tables or "schema_migrations" not in tables:
            raise StoreError(f"{self.path} is not a LifeOS database (no LifeOS tables)")
        app = self._db.execute("SELECT value FROM lifeos_meta WHERE key = 'application'").fetchone()
        if app is None or app[0] != APPLICATION:
            raise StoreError(f"{self.path} is not a LifeOS database")
        version = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}; this LifeOS knows up to "
                f"{len(MIGRATIONS)} — upgrade LifeOS to open it"
            )

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

    def _migrate(self) -> None:
        with self.transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
            for version in range((current or 0) + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if version == 1:
                    self._db.execute(
                        "INSERT INTO lifeos_meta (key, value) VALUES ('application', ?)",
                        (APPLICATION,),
                    )
                self._db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, self.now()),
                )

    def now(self) -> str:
        """The store's clock reading, ISO-8601 UTC."""
        return iso(self.clock.now())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work; nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from None
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise StoreError(f"{self.path}: commit failed: {exc}") from None

    def schema_version(self) -> int:
        """The applied schema version."""
        return int(self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            with self.transaction():
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: write failed: {exc}") from None

    # -- runs and tasks -------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        kind: str,
        name: str,
        *,
        description: str = "",
        config: dict[str, Any] | None = None,
        priority: str | None = None,
        max_cost_usd: float | None = None,
        max_loops: int | None = None,
    ) -> RunRecord:
        """Create a run in status ``running``."""
        now = self.now()
        config_text = canonical_text(config or {})
        with self.transaction():
            if self.get_run(run_id) is not None:
                raise StoreError(f"run {run_id} already exists")
            self._write(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES "
                "(?, ?, ?, 'running', NULL, ?, ?, ?, 0, ?, 0, 0, ?, NULL, ?, ?, NULL, NULL)",
                (
                    run_id,
                    kind,
                    name,
                    description,
                    priority,
                    max_cost_usd,
                    max_loops,
                    config_text,
                    now,
                    now,
                ),
            )
        return RunRecord(
            run_id=run_id,
            kind=kind,
            name=name,
            status="running",
            previous_status=None,
            description=description,
            priority=priority,
            max_cost_usd=max_cost_usd,
            spent_cost_usd=0.0,
            max_loops=max_loops,
            loop_count=0,
            message_count=0,
            config=json.loads(config_text),
            failure_reason=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            failed_at=None,
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        row = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return _run(row) if row else None

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change a run; ``status`` moves ``previous_status`` and the end timestamps."""
        unknown = set(changes) - RUN_UPDATABLE
        if unknown:
            raise StoreError(f"cannot update run field(s) {sorted(unknown)}")
        now = self.now()
        with self.transaction():
            run = self.get_run(run_id)
            if run is None:
                raise StoreError(f"no run {run_id}")
            sets, args = ["updated_at = ?"], [now]
            for key, value in sorted(changes.items()):
                if key == "config":
                    sets.append("config_json = ?")
                    args.append(canonical_text(value))
                else:
                    sets.append(f"{key} = ?")
                    args.append(value)
            status = changes.get("status")
            if status is not None and status != run["status"]:
                sets.append("previous_status = ?")
                args.append(run["status"])
                if status in FINAL_OK:
                    sets.append("completed_at = ?")
                    args.append(now)
                elif status in FINAL_FAILED:
                    sets.append("failed_at = ?")
                    args.append(now)
            self._write(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*args, run_id))
            updated = self.get_run(run_id)
        assert updated is not None
        return updated

    def list_runs(self, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first."""
        rows = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [_run(r) for r in rows]

    def add_task(
        self,
        run_id: str,
        task_id: str,
        description: str,
        *,
        task_order: int = 0,
        context_files: Sequence[str] = (),
    ) -> TaskRecord:
        """Add a pending task to a run."""
        now = self.now()
        with self.transaction():
            self._write(
                f"INSERT INTO mission_tasks ({_TASK_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, '[]', 'pending', '[]', 0, 0, NULL, NULL, NULL, ?, ?, NULL)",
                (
                    task_id,
                    run_id,
                    task_order,
                    description,
                    canonical_text(list(context_files)),
                    now,
                    now,
                ),
            )
            return self._get_task(run_id, task_id)

    def _get_task(self, run_id: str, task_id: str) -> TaskRecord:
        row = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        ).fetchone()
        if row is None:
            raise StoreError(f"no task {task_id} in run {run_id}")
        return _task(row)

    def update_task(self, run_id: str, task_id: str, **changes: Any) -> TaskRecord:
        """Change a task; ``status`` must be one of TASK_STATUSES."""
        unknown = set(changes) - TASK_UPDATABLE
        if unknown:
            raise StoreError(f"cannot update task field(s) {sorted(unknown)}")
        status = changes.get("status")
        if status is not None and status not in TASK_STATUSES:
            raise StoreError(f"task status must be one of {list(TASK_STATUSES)}, not {status!r}")
        now = self.now()
        with self.transaction():
            task = self._get_task(run_id, task_id)
            sets, args = ["updated_at = ?"], [now]
            for key, value in sorted(changes.items()):
                sets.append(f"{key} = ?")
                is_list = key in ("result_artifact_ids", "required_artifact_ids")
                args.append(canonical_text(list(value)) if is_list else value)
            if status == "executing" and task["started_at"] is None:
                sets.append("started_at = ?")
                args.append(now)
            if status in ("approved", "failed_terminal", "skipped"):
                sets.append("completed_at = ?")
                args.append(now)
            self._write(
                f"UPDATE mission_tasks SET {', '.join(sets)} WHERE run_id = ? AND task_id = ?",
                (*args, run_id, task_id),
            )
            return self._get_task(run_id, task_id)

    def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """A run's tasks in order."""
        rows = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = ? "
            "ORDER BY task_order, task_id",
            (run_id,),
        )
        return [_task(r) for r in rows]

    def claim_task(
        self, run_id: str, task_id: str, worker: str, ttl_s: float | None = None
    ) -> bool:
        """Lock a task for ``worker`` (a lease with ``ttl_s``) unless another holds it."""
        if ttl_s is None:
            now, until = self.now(), None
        else:
            now, until = lease_window(self.clock, ttl_s)
        with self.transaction():
            cur = self._write(
                "UPDATE mission_tasks SET "
                "locked_at = CASE WHEN locked_by = ? THEN COALESCE(locked_at, ?) ELSE ? END, "
                "locked_by = ?, lock_expires_at = ?, updated_at = ? "
                "WHERE run_id = ? AND task_id = ? AND (locked_by IS NULL OR locked_by = ? "
                "OR lock_expires_at <= ?)",
                (worker, now, now, worker, until, now, run_id, task_id, worker, now),
            )
            if cur.rowcount != 1:
                self._get_task(run_id, task_id)  # raises when there is no such task
            return cur.rowcount == 1

    # -- claims (leases) --------------------------------------------------------------

    def claim_run(self, run_id: str, owner: str, ttl_s: float) -> bool:
        """Lease the run to ``owner`` unless another owner's lease runs."""
        now, until = lease_window(self.clock, ttl_s)
        with self.transaction():
            cur = self._write(
                "UPDATE runs SET "
                "claimed_at = CASE WHEN claimed_by = ? THEN claimed_at ELSE ? END, "
                "claimed_by = ?, claim_expires_at = ? "
                "WHERE run_id = ? AND (claimed_by IS NULL OR claimed_by = ? "
                "OR claim_expires_at <= ?)",
                (owner, now, owner, until, run_id, owner, now),
            )
            if cur.rowcount != 1:
                self._claimable(run_id, None)
            return cur.rowcount == 1

    def renew_claim(
        self, run_id: str, owner: str, ttl_s: float, task_id: str | None = None
    ) -> bool:
        """Extend ``owner``'s claim; False when ``owner`` does not hold it."""
        now, until = lease_window(self.clock, ttl_s)
        with self.transaction():
            if task_id is None:
                cur = self._write(
                    "UPDATE runs SET claim_expires_at = ? WHERE run_id = ? AND claimed_by = ?",
                    (until, run_id, owner),
                )
            else:
                cur = self._write(
                    "UPDATE mission_tasks SET lock_expires_at = ?, updated_at = ? "
                    "WHERE run_id = ? AND task_id = ? AND locked_by = ?",
                    (until, now, run_id, task_id, owner),
                )
            if cur.rowcount != 1:
                self._claimable(run_id, task_id)
            return cur.rowcount == 1

    def release_claim(self, run_id: str, owner: str, task_id: str | None = None) -> bool:
        """Drop ``owner``'s claim; False when ``owner`` does not hold it."""
        with self.transaction():
            if task_id is None:
                cur = self._write(
                    "UPDATE runs SET claimed_by = NULL, claimed_at = NULL, "
                    "claim_expires_at = NULL WHERE run_id = ? AND claimed_by = ?",
                    (run_id, owner),
                )
            else:
                cur = self._write(
                    "UPDATE mission_tasks SET locked_by = NULL, locked_at = NULL, "
                    "lock_expires_at = NULL, updated_at = ? "
                    "WHERE run_id = ? AND task_id = ? AND locked_by = ?",
                    (self.now(), run_id, task_id, owner),
                )
            if cur.rowcount != 1:
                self._claimable(run_id, task_id)
            return cur.rowcount == 1

    def get_claim(self, run_id: str, task_id: str | None = None) -> ClaimRecord | None:
        """The claim in force on the run (or its task), or None."""
        if task_id is None:
            row = self._db.execute(
                "SELECT claimed_by, claimed_at, claim_expires_at FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT locked_by, COALESCE(locked_at, updated_at), lock_expires_at "
                "FROM mission_tasks "
                "WHERE run_id = ? AND task_id = ?",
                (run_id, task_id),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        if row[2] is not None and row[2] <= self.now():
            return None
        return ClaimRecord(
            run_id=run_id, task_id=task_id, owner=row[0], claimed_at=row[1], expires_at=row[2]
        )

    def _claimable(self, run_id: str, task_id: str | None) -> None:
        """Raise when the run (or its task) does not exist."""
        if task_id is not None:
            self._get_task(run_id, task_id)
        elif self.get_run(run_id) is None:
            raise StoreError(f"no run {run_id}")

    # -- artifacts and timeline ------------------------------------------------------

    def put_artifact(
        self,
        run_id: str,
        file_path: str,
        content: bytes,
        *,
        kind: str = "file",
        mime_type: str = "application/octet-stream",
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Store a new version of ``file_path`` unless the latest has the same content."""
        checksum = hashlib.sha256(content).hexdigest()
        with self.transaction():
            latest = self._db.execute(
                "SELECT * FROM artifacts WHERE run_id = ? AND file_path = ? "
                "ORDER BY version_number DESC LIMIT 1",
                (run_id, file_path),
            ).fetchone()
            if latest is not None and latest["checksum"] == checksum and not latest["is_deleted"]:
                return _artifact(latest)
            version = latest["version_number"] + 1 if latest else 1
            artifact_id = stable_uuid("artifact", run_id, file_path, str(version))
            self._write(
                "INSERT INTO artifacts (artifact_id, run_id, file_path, version_number, "
                "supersedes_id, is_deleted, kind, mime_type, checksum, size_bytes, content, "
                "metadata_json, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                (
                    artifact_id,
                    run_id,
                    file_path,
                    version,
                    latest["artifact_id"] if latest else None,
                    kind,
                    mime_type,
                    checksum,
                    len(content),
                    content,
                    canonical_text(metadata or {}),
                    self.now(),
                ),
            )
            got = self.get_artifact(artifact_id)
        assert got is not None
        return got[0]

    def get_artifact(self, artifact_id: str) -> tuple[ArtifactRecord, bytes] | None:
        """An artifact and its content, or None."""
        row = self._db.execute(
            "SELECT * FROM artifacts WHERE artifact_id = ?", (artifact_id,)
        ).fetchone()
        return (_artifact(row), bytes(row["content"])) if row else None

    def list_artifacts(self, run_id: str, include_deleted: bool = False) -> list[ArtifactRecord]:
        """A run's artifacts by path, then version."""
        rows = self._db.execute(
            "SELECT * FROM artifacts WHERE run_id = ? AND (is_deleted = 0 OR ?) "
            "ORDER BY file_path, version_number",
            (run_id, 1 if include_deleted else 0),
        )
        return [_artifact(r) for r in rows]

    def delete_artifact(self, artifact_id: str) -> None:
        """Mark an artifact deleted; its content stays."""
        cur = self._write(
            "UPDATE artifacts SET is_deleted = 1 WHERE artifact_id = ?", (artifact_id,)
        )
        if cur.rowcount != 1:
            raise StoreError(f"no artifact {artifact_id}")

    def add_event(
        self, run_id: str, task_id: str | None, event_type: str, event: dict[str, Any]
    ) -> TimelineEvent:
        """Append a timeline event with a deterministic UUIDv5 id."""
        created = self.now()
        with self.transaction():
            counter, position = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM timeline_events WHERE run_id = ? AND task_id IS ?), "
                "(SELECT COALESCE(MAX(position), 0) + 1 FROM timeline_events)",
                (run_id, task_id),
            ).fetchone()
            event_id = stable_uuid(
                "timeline",
                run_id,
                "\x00" if task_id is None else task_id,
                event_type,
                created,
                str(counter),
            )
            self._write(
                "INSERT INTO timeline_events (event_id, run_id, task_id, event_type, event_json, "
                "created_at, position) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, run_id, task_id, event_type, canonical_text(event), created, position),
            )
        return TimelineEvent(
            event_id=event_id,
            run_id=run_id,
            task_id=task_id,
            event_type=event_type,
            event=json.loads(canonical_text(event)),
            created_at=created,
        )

    def list_events(
        self, run_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[TimelineEvent]:
        """Events in order, filtered by run and time window."""
        rows = self._db.execute(
            "SELECT * FROM timeline_events WHERE (? IS NULL OR run_id = ?) "
            "AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?) "
            "ORDER BY position",
            (run_id, run_id, since, since, until, until),
        )
        return [
            TimelineEvent(
                event_id=r["event_id"],
                run_id=r["run_id"],
                task_id=r["task_id"],
                event_type=r["event_type"],
                event=json.loads(r["event_json"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    # -- journal and checkpoints ------------------------------------------------------

    def get(self, key: JournalKey) -> JournalRecord | None:
        """The journal record at ``key``, or None."""
        row = self._db.execute(
            "SELECT step_digest, result_json FROM journal "
            "WHERE run_id = ? AND step = ? AND attempt = ? AND call_index = ?",
            tuple(key),
        ).fetchone()
        if row is None:
            return None
        return JournalRecord(step_digest=row[0], result=json.loads(row[1]))

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record a journal entry; a key is written once."""
        with self.transaction():
            if self.get(key) is not None:
                raise StoreError(f"journal key already recorded: {tuple(key)}")
            self._write(
                "INSERT INTO journal (run_id, step, attempt, call_index, step_digest, "
                "result_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    record["step_digest"],
                    canonical_text(record["result"]),
                    self.now(),
                ),
            )

    def journal_keys(self, run_id: str) -> list[JournalKey]:
        """A run's journal keys in order."""
        rows = self._db.execute(
            "SELECT run_id, step, attempt, call_index FROM journal WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        )
        return [JournalKey(*r) for r in rows]

    def put_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Record a checkpoint."""
        c = checkpoint
        self._write(
            "INSERT INTO checkpoints (checkpoint_id, run_id, step_index, step_id, step_digest, "
            "status, state_hash, policy_hash, delta_json, info_json, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c["checkpoint_id"],
                c["run_id"],
                c["step_index"],
                c["step_id"],
                c["step_digest"],
                c["status"],
                c["state_hash"],
                c["policy_hash"],
                canonical_text(c["delta"]),
                canonical_text(c["info"]),
                c["created_at"],
            ),
        )

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        """A checkpoint by id."""
        row = self._db.execute(
            "SELECT * FROM checkpoints WHERE checkpoint_id = ?", (checkpoint_id,)
        ).fetchone()
        return _checkpoint(row) if row else None

    def list_checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """A run's checkpoints in step order."""
        rows = self._db.execute(
            "SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step_index", (run_id,)
        )
        return [_checkpoint(r) for r in rows]

    # -- ledger and nonces --------------------------------------------------------------

    def append_ledger(
        self, type: str, run_id: str | None, payload: dict[str, Any]
    ) -> tuple[LedgerEntry, LedgerRow]:
        """Append an entry after the head (under the write lock)."""
        with self.transaction():
            head = self._db.execute(
                "SELECT seq, leaf_hash FROM ledger ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = head[0] + 1 if head else 0
            entry = LedgerEntry(
                seq=seq,
                ts=self.now(),
                type=type,
                run_id=run_id,
                payload=payload,
                prev_hash=head[1] if head else GENESIS_HASH,
            )
            data = canonical_json(entry)
            leaf = hashlib.sha256(b"\x00" + data).hexdigest()
            self._write(
                "INSERT INTO ledger (seq, entry, leaf_hash, type, run_id) VALUES (?, ?, ?, ?, ?)",
                (seq, data, leaf, type, run_id),
            )
        return entry, LedgerRow(seq=seq, entry=data, leaf_hash=leaf, type=type, run_id=run_id)

    def ledger_size(self) -> int:
        """The number of entries."""
        return int(self._db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])

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

    def ledger_rows_for_run(self, run_id: str) -> list[LedgerRow]:
        """A run's entries in seq order."""
        cur = self._db.execute(
            "SELECT seq, entry, leaf_hash, type, run_id FROM ledger WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            LedgerRow(seq=s, entry=bytes(e), leaf_hash=h, type=t, run_id=r) for s, e, h, t, r in cur
        ]

    def put_signed_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Keep a signed tree head."""
        self._write(
            "INSERT INTO ledger_checkpoints (tree_size, root_hash, note, created_at) "
            "VALUES (?, ?, ?, ?)",
            (
                checkpoint["tree_size"],
                checkpoint["root_hash"],
                checkpoint["note"],
                checkpoint["created_at"],
            ),
        )

    def list_signed_checkpoints(self) -> list[SignedCheckpoint]:
        """Signed tree heads, oldest first."""
        try:
            rows = self._db.execute(
                "SELECT tree_size, root_hash, note, created_at FROM ledger_checkpoints "
                "ORDER BY position"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: signed checkpoints cannot be read: {exc}") from None
        return [
            SignedCheckpoint(tree_size=a, root_hash=b, note=c, created_at=d) for a, b, c, d in rows
        ]

    def consume_nonce(self, nonce: str, source: str) -> bool:
        """Record ``nonce``; False if it was consumed before."""
        with self.transaction():
            if self.nonce_seen(nonce):
                return False
            self._write(
                "INSERT INTO nonces (nonce, source, consumed_at) VALUES (?, ?, ?)",
                (nonce, source, self.now()),
            )
            return True

    def nonce_seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was consumed before."""
        row = self._db.execute("SELECT 1 FROM nonces WHERE nonce = ?", (nonce,)).fetchone()
        return row is not None
