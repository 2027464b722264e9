"""The store contract in SQL, once: the queries and record mapping every backend shares.

:class:`SQLStore` implements :class:`~lifeos.store.base.Store` against a small dialect
interface; a backend (``sqlite``, ``postgres``) fills in only what really differs:

- ``_q(sql, args)`` runs one statement written with ``?`` placeholders and returns its
  cursor, whose rows are indexed by column name (the PostgreSQL backend turns ``?`` into
  ``%s``, once per statement text); ``_write`` does the same for a write (SQLite gives a
  write outside a transaction one of its own, which takes the write lock first).
- ``_begin``, ``_commit`` and ``_abort`` start, end and roll back the outermost
  transaction; :meth:`SQLStore.transaction` nests the inner ones into it.
- ``_lock(*parts)`` serialises writers on a name until the transaction ends, taken before
  reading what a write extends (the ledger's head, a run's timeline counter, a file's
  versions): an advisory lock on PostgreSQL; nothing on SQLite, whose ``BEGIN IMMEDIATE``
  already holds the database's one write lock.
- a few fragments and statements: ``_FOR_UPDATE`` (the row lock of a read-modify-write),
  ``_INSERTION_ORDER`` (the column that keeps the order rows were written in),
  ``_RETURNING`` (whether a write can return the row it wrote), ``_TABLES_SQL``,
  ``_INSERT_EVENT_SQL`` and ``_MIGRATIONS``.
- ``_DRIVER_ERROR`` and ``_reason(exc)``: the driver's errors, mapped to
  :class:`~lifeos.store.base.StoreError` at the public boundary by :func:`store_errors`.
- the ledger's reads (``ledger_rows``, ``ledger_scan``, ``ledger_scanner``), which each
  backend walks its own way.

The statements are what both databases accept (SQLite 3.24 or later): expected refusals
(an existing id, a journal key or checkpoint written twice, a nonce seen before) are
``ON CONFLICT DO NOTHING`` and a row count, never a failing statement, so they leave an
enclosing transaction usable on either. Nothing here imports a database driver.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, TypeVar

from lifeos.canonical import canonical_json, canonical_text, stable_uuid
from lifeos.clock import Clock, iso
from lifeos.journal import JournalKey, JournalRecord
from lifeos.store._rows import (
    Row,
    artifact_record,
    checkpoint_record,
    event_record,
    run_record,
    task_record,
)
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
    LeaseLost,
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

__all__ = ["Cursor", "SQLStore", "store_errors"]

_S = TypeVar("_S", bound="SQLStore")

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
_ARTIFACT_COLUMNS = (
    "artifact_id, run_id, file_path, version_number, supersedes_id, is_deleted, kind, "
    "mime_type, checksum, size_bytes, metadata_json, created_at"
)
_CHECKPOINT_COLUMNS = (
    "checkpoint_id, run_id, step_index, step_id, step_digest, status, state_hash, "
    "policy_hash, delta_json, info_json, created_at"
)
_GET_RUN = f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?"
_GET_TASK = f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = ? AND task_id = ?"
_GET_ARTIFACT = f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE artifact_id = ?"
_TASK_LISTS = ("result_artifact_ids", "required_artifact_ids")
_TASK_FINAL = ("approved", "failed_terminal", "skipped")


def _assignments(values: dict[str, Any]) -> str:
    """The ``SET`` list of an ``UPDATE`` of ``values``' columns, in their order."""
    return ", ".join(f"{column} = ?" for column in values)


class Cursor(Protocol):
    """What a backend's ``_q`` returns: the rows of one statement and how many it wrote."""

    @property
    def rowcount(self) -> int:
        """Rows the statement inserted, updated or deleted."""
        ...

    def fetchone(self) -> Any:
        """The next row (indexed by column name), or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows, one at a time."""
        ...


def store_errors(cls: type[_S]) -> type[_S]:
    """Map the driver's errors raised by any public method of ``cls`` to StoreError.

    Wraps the methods ``cls`` defines and those it inherits from :class:`SQLStore`; the
    message names the store (``where``) and the driver's reason. (The generator methods
    map the errors raised while they are iterated themselves.)
    """
    error = cls._DRIVER_ERROR
    methods: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        methods.update(vars(klass))
    for name, fn in methods.items():
        if name.startswith("_") or not inspect.isfunction(fn) or inspect.isgeneratorfunction(fn):
            continue

        def wrapped(*args: Any, __fn: Callable[..., Any] = fn, **kwargs: Any) -> Any:
            try:
                return __fn(*args, **kwargs)
            except error as exc:
                store = args[0]
                raise StoreError(f"{store.where}: {store._reason(exc)}") from None

        functools.update_wrapper(wrapped, fn)
        setattr(cls, name, wrapped)
    return cls


class SQLStore(ABC):
    """The store contract on a SQL database; a backend supplies the dialect."""

    _DRIVER_ERROR: ClassVar[type[Exception]]
    """The root of the driver's errors."""
    _MIGRATIONS: ClassVar[Sequence[str]]
    """The backend's migrations: index + 1 is the schema version each one brings."""
    _TABLES_SQL: ClassVar[str]
    """Lists the tables where the store lives, as a column ``name``."""
    _INSERT_EVENT_SQL: ClassVar[str]
    """Inserts a timeline event from ``(event_id, run_id, task_id, event_type, event_json,
    created_at)``, giving it the next position."""
    _FOR_UPDATE: ClassVar[str]
    """Appended to a read whose row the transaction goes on to change."""
    _INSERTION_ORDER: ClassVar[str]
    """The column of ``runs`` and ``journal`` that orders rows as they were written."""
    _RETURNING: ClassVar[bool]
    """Whether a write can return the row it wrote (``RETURNING``)."""

    clock: Clock
    where: str
    """How messages name the store: its file, or its URL without credentials."""
    _depth: int
    """How many transactions are open, the outermost included."""
    _fence: tuple[str, str] | None = None
    """``(run_id, owner)`` while :meth:`fenced`: the claim every transaction checks."""

    # -- the dialect ---------------------------------------------------------------

    @abstractmethod
    def _q(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """Run one statement with ``?`` placeholders."""

    @abstractmethod
    def _write(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """Run one writing statement with ``?`` placeholders."""

    @abstractmethod
    def _begin(self) -> None:
        """Start the outermost transaction."""

    @abstractmethod
    def _commit(self) -> None:
        """Commit the outermost transaction, or roll it back and raise StoreError."""

    @abstractmethod
    def _abort(self) -> None:
        """Roll back the outermost transaction (an exception is on its way out)."""

    @abstractmethod
    def _lock(self, *parts: str) -> None:
        """Hold off other writers on ``parts`` until the current transaction ends."""

    @staticmethod
    @abstractmethod
    def _reason(exc: BaseException) -> str:
        """What a driver error says, for a message."""

    def _described(self) -> str:
        """How a refusal to open names the store."""
        return self.where

    # -- housekeeping ------------------------------------------------------------

    def _check_identity(self) -> None:
        """Refuse a database that holds something other than a LifeOS store we know."""
        tables = {r["name"] for r in self._q(self._TABLES_SQL)}
        if not tables:
            return
        if "lifeos_meta" not in tables or "schema_migrations" not in tables:
            raise StoreError(f"{self._described()} is not a LifeOS database (no LifeOS tables)")
        app = self._q("SELECT value FROM lifeos_meta WHERE key = 'application'").fetchone()
        if app is None or app["value"] != APPLICATION:
            raise StoreError(f"{self._described()} is not a LifeOS database")
        version = self._version()
        if version > len(self._MIGRATIONS):
            raise StoreError(
                f"{self.where} has schema version {version}; this LifeOS knows up to "
                f"{len(self._MIGRATIONS)} — upgrade LifeOS to open it"
            )

    def _apply_migrations(self) -> None:
        """Apply the missing migrations in order and record them (inside a transaction)."""
        self._q(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for version in range(self._version() + 1, len(self._MIGRATIONS) + 1):
            for statement in self._MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    self._q(statement)
            if version == 1:
                self._q(
                    "INSERT INTO lifeos_meta (key, value) VALUES ('application', ?)",
                    (APPLICATION,),
                )
            self._q(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, self.now()),
            )

    def _version(self) -> int:
        row = self._q("SELECT MAX(version) AS v FROM schema_migrations").fetchone()
        return int(row["v"]) if row and row["v"] is not None else 0

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
        self._begin()
        self._depth = 1
        try:
            if self._fence is not None:
                self._check_fence(*self._fence)
            yield
        except BaseException:
            self._depth = 0
            self._abort()
            raise
        self._depth = 0
        self._commit()

    def schema_version(self) -> int:
        """The applied schema version."""
        return self._version()

    def _written_row(
        self, sql: str, args: Sequence[Any], columns: str, get: str, key: Sequence[Any]
    ) -> Row | None:
        """Run the one-row write ``sql``; then ``columns`` of the row it wrote, or None.

        ``get`` reads the row back by ``key`` where the dialect cannot return it.
        """
        if self._RETURNING:
            row: Row | None = self._write(f"{sql} RETURNING {columns}", args).fetchone()
            return row
        with self.transaction():
            if self._write(sql, args).rowcount != 1:
                return None
            row = self._q(get, key).fetchone()
            return row

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
        """Create a run in status ``running``; an existing id is an error."""
        now = self.now()
        row = self._written_row(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES "
            "(?, ?, ?, 'running', NULL, ?, ?, ?, 0, ?, 0, 0, ?, NULL, ?, ?, NULL, NULL) "
            "ON CONFLICT (run_id) DO NOTHING",
            (
                run_id,
                kind,
                name,
                description,
                priority,
                max_cost_usd,
                max_loops,
                canonical_text(config or {}),
                now,
                now,
            ),
            _RUN_COLUMNS,
            _GET_RUN,
            (run_id,),
        )
        if row is None:
            raise StoreError(f"run {run_id} already exists")
        return run_record(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        row = self._q(_GET_RUN, (run_id,)).fetchone()
        return run_record(row) if row else None

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change a run; ``status`` moves ``previous_status`` and the end timestamps."""
        unknown = set(changes) - RUN_UPDATABLE
        if unknown:
            raise StoreError(f"cannot update run field(s) {sorted(unknown)}")
        now = self.now()
        with self.transaction():
            row = self._q(
                f"SELECT status FROM runs WHERE run_id = ?{self._FOR_UPDATE}", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id}")
            values: dict[str, Any] = {"updated_at": now}
            for key, value in sorted(changes.items()):
                if key == "config":
                    values["config_json"] = canonical_text(value)
                else:
                    values[key] = value
            status = changes.get("status")
            if status is not None and status != row["status"]:
                values["previous_status"] = row["status"]
                if status in FINAL_OK:
                    values["completed_at"] = now
                elif status in FINAL_FAILED:
                    values["failed_at"] = now
            updated = self._written_row(
                f"UPDATE runs SET {_assignments(values)} WHERE run_id = ?",
                (*values.values(), run_id),
                _RUN_COLUMNS,
                _GET_RUN,
                (run_id,),
            )
        assert updated is not None
        return run_record(updated)

    def list_runs(self, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first."""
        rows = self._q(
            f"SELECT {_RUN_COLUMNS} FROM runs "
            f"ORDER BY created_at DESC, {self._INSERTION_ORDER} DESC LIMIT ?",
            (limit,),
        )
        return [run_record(r) for r in rows]

    def add_task(
        self,
        run_id: str,
        task_id: str,
        description: str,
        *,
        task_order: int = 0,
        context_files: Sequence[str] = (),
    ) -> TaskRecord:
        """Add a pending task to a run; an unknown run or an existing task is an error."""
        now = self.now()
        with self.transaction():
            if self._q("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no run {run_id}")
            row = self._written_row(
                f"INSERT INTO mission_tasks ({_TASK_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, '[]', 'pending', '[]', 0, 0, NULL, NULL, NULL, ?, ?, NULL) "
                "ON CONFLICT (run_id, task_id) DO NOTHING",
                (
                    task_id,
                    run_id,
                    task_order,
                    description,
                    canonical_text(list(context_files)),
                    now,
                    now,
                ),
                _TASK_COLUMNS,
                _GET_TASK,
                (run_id, task_id),
            )
        if row is None:
            raise StoreError(f"task {task_id} already exists in run {run_id}")
        return task_record(row)

    def _get_task(self, run_id: str, task_id: str, *, for_update: bool = False) -> TaskRecord:
        row = self._q(
            _GET_TASK + (self._FOR_UPDATE if for_update else ""), (run_id, task_id)
        ).fetchone()
        if row is None:
            raise StoreError(f"no task {task_id} in run {run_id}")
        return task_record(row)

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
            task = self._get_task(run_id, task_id, for_update=True)
            values: dict[str, Any] = {"updated_at": now}
            for key, value in sorted(changes.items()):
                values[key] = canonical_text(list(value)) if key in _TASK_LISTS else value
            if status == "executing" and task["started_at"] is None:
                values["started_at"] = now
            if status in _TASK_FINAL:
                values["completed_at"] = now
            row = self._written_row(
                f"UPDATE mission_tasks SET {_assignments(values)} WHERE run_id = ? AND task_id = ?",
                (*values.values(), run_id, task_id),
                _TASK_COLUMNS,
                _GET_TASK,
                (run_id, task_id),
            )
        assert row is not None
        return task_record(row)

    def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """A run's tasks in order."""
        rows = self._q(
            f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = ? "
            "ORDER BY task_order, task_id",
            (run_id,),
        )
        return [task_record(r) for r in rows]

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
            # One statement: a second claimant waits for the write (or row) lock, then
            # checks the condition against the winner's committed row and matches nothing.
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
            row = self._q(
                "SELECT claimed_by AS owner, claimed_at AS since, claim_expires_at AS until "
                "FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        else:
            row = self._q(
                "SELECT locked_by AS owner, COALESCE(locked_at, updated_at) AS since, "
                "lock_expires_at AS until FROM mission_tasks WHERE run_id = ? AND task_id = ?",
                (run_id, task_id),
            ).fetchone()
        if row is None or row["owner"] is None:
            return None
        if row["until"] is not None and row["until"] <= self.now():
            return None
        return ClaimRecord(
            run_id=run_id,
            task_id=task_id,
            owner=row["owner"],
            claimed_at=row["since"],
            expires_at=row["until"],
        )

    @contextmanager
    def fenced(self, run_id: str, owner: str) -> Iterator[None]:
        """Every transaction in the block checks ``owner``'s claim first (see Store)."""
        if self._fence is not None:
            raise StoreError(f"{self.where}: already fenced for {self._fence[1]}")
        self._fence = (run_id, owner)
        try:
            yield
        finally:
            self._fence = None

    def _check_fence(self, run_id: str, owner: str) -> None:
        """Raise LeaseLost unless ``owner``'s claim on the run is in force; the run's row
        stays locked (PostgreSQL) or the database's (SQLite) until the transaction ends,
        so the claim cannot pass to another before this transaction commits."""
        row = self._q(
            f"SELECT claimed_by, claim_expires_at FROM runs WHERE run_id = ?{self._FOR_UPDATE}",
            (run_id,),
        ).fetchone()
        if row is None or row["claimed_by"] != owner:
            holder = "nobody" if row is None or row["claimed_by"] is None else row["claimed_by"]
            raise LeaseLost(f"run {run_id}: {owner} no longer holds it ({holder} does)")
        until = row["claim_expires_at"]
        if until is not None and until <= self.now():
            raise LeaseLost(f"run {run_id}: {owner}'s lease ran out at {until}")

    def _claimable(self, run_id: str, task_id: str | None) -> None:
        """Raise when the run (or its task) does not exist."""
        if task_id is not None:
            self._get_task(run_id, task_id)
        elif self._q("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
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
            self._lock("artifact", run_id, file_path)
            latest = self._q(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? AND file_path = ? "
                "ORDER BY version_number DESC LIMIT 1",
                (run_id, file_path),
            ).fetchone()
            if latest is not None and latest["checksum"] == checksum and not latest["is_deleted"]:
                return artifact_record(latest)
            version = latest["version_number"] + 1 if latest else 1
            artifact_id = stable_uuid("artifact", run_id, file_path, str(version))
            row = self._written_row(
                "INSERT INTO artifacts (artifact_id, run_id, file_path, version_number, "
                "supersedes_id, is_deleted, kind, mime_type, checksum, size_bytes, content, "
                "metadata_json, created_at) VALUES (?, ?, ?, ?, ?, FALSE, ?, ?, ?, ?, ?, ?, ?)",
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
                _ARTIFACT_COLUMNS,
                _GET_ARTIFACT,
                (artifact_id,),
            )
        assert row is not None
        return artifact_record(row)

    def get_artifact(self, artifact_id: str) -> tuple[ArtifactRecord, bytes] | None:
        """An artifact and its content, or None."""
        row = self._q(
            f"SELECT {_ARTIFACT_COLUMNS}, content FROM artifacts WHERE artifact_id = ?",
            (artifact_id,),
        ).fetchone()
        return (artifact_record(row), bytes(row["content"])) if row else None

    def list_artifacts(self, run_id: str, include_deleted: bool = False) -> list[ArtifactRecord]:
        """A run's artifacts by path, then version."""
        rows = self._q(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? "
            + ("" if include_deleted else "AND NOT is_deleted ")
            + "ORDER BY file_path, version_number",
            (run_id,),
        )
        return [artifact_record(r) for r in rows]

    def delete_artifact(self, artifact_id: str) -> None:
        """Mark an artifact deleted; its content stays."""
        cur = self._write(
            "UPDATE artifacts SET is_deleted = TRUE WHERE artifact_id = ?", (artifact_id,)
        )
        if cur.rowcount != 1:
            raise StoreError(f"no artifact {artifact_id}")

    def add_event(
        self, run_id: str, task_id: str | None, event_type: str, event: dict[str, Any]
    ) -> TimelineEvent:
        """Append a timeline event with a deterministic UUIDv5 id."""
        created = self.now()
        event_text = canonical_text(event)
        with self.transaction():
            self._lock("timeline", run_id)  # the counter below is the run's, per task
            if task_id is None:
                row = self._q(
                    "SELECT COUNT(*) AS n FROM timeline_events "
                    "WHERE run_id = ? AND task_id IS NULL",
                    (run_id,),
                ).fetchone()
            else:
                row = self._q(
                    "SELECT COUNT(*) AS n FROM timeline_events WHERE run_id = ? AND task_id = ?",
                    (run_id, task_id),
                ).fetchone()
            event_id = stable_uuid(
                "timeline",
                run_id,
                "\x00" if task_id is None else task_id,
                event_type,
                created,
                str(row["n"]),
            )
            self._write(
                self._INSERT_EVENT_SQL,
                (event_id, run_id, task_id, event_type, event_text, created),
            )
        return TimelineEvent(
            event_id=event_id,
            run_id=run_id,
            task_id=task_id,
            event_type=event_type,
            event=json.loads(event_text),
            created_at=created,
        )

    def list_events(
        self, run_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[TimelineEvent]:
        """Events in order, filtered by run and time window."""
        where, args = [], []
        for clause, value in (
            ("run_id = ?", run_id),
            ("created_at >= ?", since),
            ("created_at < ?", until),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._q(
            "SELECT event_id, run_id, task_id, event_type, event_json, created_at "
            "FROM timeline_events "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY position",
            args,
        )
        return [event_record(r) for r in rows]

    # -- journal and checkpoints ------------------------------------------------------

    def get(self, key: JournalKey) -> JournalRecord | None:
        """The journal record at ``key``, or None."""
        row = self._q(
            "SELECT step_digest, result_json FROM journal "
            "WHERE run_id = ? AND step = ? AND attempt = ? AND call_index = ?",
            tuple(key),
        ).fetchone()
        if row is None:
            return None
        return JournalRecord(step_digest=row["step_digest"], result=json.loads(row["result_json"]))

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record a journal entry; a key is written once."""
        cur = self._write(
            "INSERT INTO journal (run_id, step, attempt, call_index, step_digest, "
            "result_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, step, attempt, call_index) DO NOTHING",
            (*key, record["step_digest"], canonical_text(record["result"]), self.now()),
        )
        if cur.rowcount != 1:
            raise StoreError(f"journal key already recorded: {tuple(key)}")

    def journal_keys(self, run_id: str) -> list[JournalKey]:
        """A run's journal keys in order."""
        rows = self._q(
            "SELECT run_id, step, attempt, call_index FROM journal WHERE run_id = ? "
            f"ORDER BY {self._INSERTION_ORDER}",
            (run_id,),
        )
        return [JournalKey(r["run_id"], r["step"], r["attempt"], r["call_index"]) for r in rows]

    def put_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Record a checkpoint; its id and its (run, step index) are written once."""
        c = checkpoint
        cur = self._write(
            f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        if cur.rowcount != 1:
            raise StoreError(
                f"checkpoint {c['checkpoint_id']} (run {c['run_id']}, step {c['step_index']}) "
                "is already recorded"
            )

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        """A checkpoint by id."""
        row = self._q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE checkpoint_id = ?",
            (checkpoint_id,),
        ).fetchone()
        return checkpoint_record(row) if row else None

    def list_checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """A run's checkpoints in step order."""
        rows = self._q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE run_id = ? ORDER BY step_index",
            (run_id,),
        )
        return [checkpoint_record(r) for r in rows]

    # -- ledger and nonces --------------------------------------------------------------

    def append_ledger(
        self, type: str, run_id: str | None, payload: dict[str, Any]
    ) -> tuple[LedgerEntry, LedgerRow]:
        """Append an entry after the head, serialised across writers (``_lock``)."""
        with self.transaction():
            # Two statements, not one: under READ COMMITTED a statement reads the snapshot
            # taken when it starts, so the head must be read by a statement that starts
            # after the lock is granted — then it sees what the previous holder committed.
            self._lock("ledger")
            head = self._q("SELECT seq, leaf_hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
            seq = head["seq"] + 1 if head else 0
            entry = LedgerEntry(
                seq=seq,
                ts=self.now(),
                type=type,
                run_id=run_id,
                payload=payload,
                prev_hash=head["leaf_hash"] if head else GENESIS_HASH,
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
        return int(self._q("SELECT COUNT(*) AS n FROM ledger").fetchone()["n"])

    @abstractmethod
    def ledger_rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        """Entries with ``start <= seq < end`` in seq order."""

    @abstractmethod
    def ledger_scan(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[Sequence[LedgerScanRow]]:
        """Batches of ``(seq, entry, leaf_hash, type, run_id)`` tuples in seq order."""

    @abstractmethod
    def ledger_scanner(self) -> LedgerScanner | None:
        """A scanner that opens a read-only connection of its own per call."""

    def ledger_rows_for_run(self, run_id: str) -> list[LedgerRow]:
        """A run's entries in seq order."""
        rows = self._q(
            "SELECT seq, entry, leaf_hash, type, run_id FROM ledger WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            LedgerRow(
                seq=r["seq"],
                entry=bytes(r["entry"]),
                leaf_hash=r["leaf_hash"],
                type=r["type"],
                run_id=r["run_id"],
            )
            for r in rows
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
            rows = self._q(
                "SELECT tree_size, root_hash, note, created_at FROM ledger_checkpoints "
                "ORDER BY position"
            ).fetchall()
        except self._DRIVER_ERROR as exc:
            raise StoreError(
                f"{self.where}: signed checkpoints cannot be read: {self._reason(exc)}"
            ) from None
        return [
            SignedCheckpoint(
                tree_size=r["tree_size"],
                root_hash=r["root_hash"],
                note=r["note"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def consume_nonce(self, nonce: str, source: str) -> bool:
        """Record ``nonce``; False if it was consumed before."""
        cur = self._write(
            "INSERT INTO nonces (nonce, source, consumed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (nonce) DO NOTHING",
            (nonce, source, self.now()),
        )
        return cur.rowcount == 1

    def nonce_seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was consumed before."""
        return self._q("SELECT 1 FROM nonces WHERE nonce = ?", (nonce,)).fetchone() is not None
