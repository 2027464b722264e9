"""The PostgreSQL store: many workers on many machines sharing one queue and one ledger.

Selected by a ``postgresql://`` URL (``store:`` in lifeos.yaml without credentials, or
``LIFEOS_STORE_URL``). Opening connects, checks that the schema (the URL's search path,
``public`` by default) holds a LifeOS store of a version this code knows or nothing at
all, then applies the missing migrations in order and records them — under a
transaction-scoped advisory lock, so workers starting together migrate once.

Every read-modify-write runs in one READ COMMITTED transaction and locks what it
reads: the ledger's append takes a transaction-scoped advisory lock, so appends from
every connection queue and each one sees the head its predecessor committed — seq and
the prev-hash chain never fork. Claims are single conditional ``UPDATE``s: of owners
claiming at once, the row lock lets exactly one through. Expected refusals (an existing
id, a journal key written twice) are found without a failing statement, so they leave an
enclosing transaction usable, as on SQLite. Times and text order are the store's own
(timestamps from the injected clock, compared as text under the ``C`` collation), never
the server's.

psycopg is imported only here, and this module only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row, tuple_row

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

if TYPE_CHECKING:
    from psycopg.rows import DictRow

__all__ = ["MIGRATIONS", "PostgresStore", "describe_url"]

_T = TypeVar("_T")

MIGRATIONS: list[str] = [
    # 1: the initial schema: SQLite's migrations 1 and 2 in PostgreSQL's types. Text that
    # is ordered or compared carries the C collation, so order never depends on the
    # server's locale; ``position`` columns keep insertion order where SQLite has rowid.
    """
    CREATE TABLE lifeos_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
        status TEXT NOT NULL, previous_status TEXT, description TEXT NOT NULL,
        priority TEXT, max_cost_usd DOUBLE PRECISION,
        spent_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        max_loops BIGINT, loop_count BIGINT NOT NULL DEFAULT 0,
        message_count BIGINT NOT NULL DEFAULT 0, config_json TEXT NOT NULL,
        failure_reason TEXT, created_at TEXT COLLATE "C" NOT NULL, updated_at TEXT NOT NULL,
        completed_at TEXT, failed_at TEXT,
        claimed_by TEXT, claimed_at TEXT, claim_expires_at TEXT COLLATE "C",
        position BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
    );
    CREATE INDEX runs_created ON runs (created_at, position);
    CREATE TABLE mission_tasks (
        run_id TEXT NOT NULL REFERENCES runs (run_id), task_id TEXT COLLATE "C" NOT NULL,
        task_order BIGINT NOT NULL, description TEXT NOT NULL,
        context_files TEXT NOT NULL, required_artifact_ids TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'executing', 'review',
            'repair_retry', 'approved', 'failed_terminal', 'skipped')),
        result_artifact_ids TEXT NOT NULL, repair_attempt BIGINT NOT NULL DEFAULT 0,
        consumed_tokens BIGINT NOT NULL DEFAULT 0, started_at TEXT, locked_at TEXT,
        locked_by TEXT, lock_expires_at TEXT COLLATE "C",
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, completed_at TEXT,
        PRIMARY KEY (run_id, task_id)
    );
    CREATE TABLE artifacts (
        artifact_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, file_path TEXT COLLATE "C" NOT NULL,
        version_number BIGINT NOT NULL, supersedes_id TEXT, is_deleted BOOLEAN NOT NULL,
        kind TEXT NOT NULL, mime_type TEXT NOT NULL, checksum TEXT NOT NULL,
        size_bytes BIGINT NOT NULL, content BYTEA NOT NULL, metadata_json TEXT NOT NULL,
        created_at TEXT NOT NULL, UNIQUE (run_id, file_path, version_number)
    );
    CREATE TABLE timeline_events (
        event_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT,
        event_type TEXT NOT NULL, event_json TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        position BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
    );
    CREATE INDEX timeline_run ON timeline_events (run_id, position);
    CREATE INDEX timeline_time ON timeline_events (created_at, position);
    CREATE TABLE checkpoints (
        checkpoint_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_index BIGINT NOT NULL,
        step_id TEXT NOT NULL, step_digest TEXT NOT NULL, status TEXT NOT NULL,
        state_hash TEXT NOT NULL, policy_hash TEXT, delta_json TEXT NOT NULL,
        info_json TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (run_id, step_index)
    );
    CREATE TABLE journal (
        run_id TEXT NOT NULL, step TEXT NOT NULL, attempt BIGINT NOT NULL,
        call_index BIGINT NOT NULL, step_digest TEXT NOT NULL, result_json TEXT NOT NULL,
        created_at TEXT NOT NULL, position BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        PRIMARY KEY (run_id, step, attempt, call_index)
    );
    CREATE INDEX journal_run ON journal (run_id, position);
    CREATE TABLE ledger (
        seq BIGINT PRIMARY KEY, entry BYTEA NOT NULL, leaf_hash TEXT NOT NULL,
        type TEXT NOT NULL, run_id TEXT
    );
    CREATE INDEX ledger_run ON ledger (run_id, seq);
    CREATE TABLE ledger_checkpoints (
        tree_size BIGINT NOT NULL, root_hash TEXT NOT NULL, note TEXT NOT NULL,
        created_at TEXT NOT NULL, position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    );
    CREATE TABLE nonces (nonce TEXT PRIMARY KEY, source TEXT NOT NULL, consumed_at TEXT NOT NULL);
    """,
]


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for ``parts`` (stable across machines).

    Advisory locks belong to the database; the parts start with the schema's name, so
    stores in two schemas of one database never wait for each other.
    """
    digest = hashlib.sha256(("lifeos\x1f" + "\x1f".join(parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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

_SCAN_SQL = (
    "SELECT seq, entry, convert_to(leaf_hash, 'UTF8'), type, run_id FROM ledger "
    "WHERE seq >= %s AND seq < %s ORDER BY seq LIMIT %s"
)
_SCAN_BATCH = 512
"""Rows per ``ledger_scan`` batch, as the SQLite store's (see there for why)."""
_SCAN_PAGE = 8 * _SCAN_BATCH
"""Rows per query: the scan pages through the ledger by seq, so it holds no cursor open."""
_NO_END = 2**63 - 1
_CONNECT_TIMEOUT_S = 10
"""How long opening waits for an unreachable server, unless the URL says."""


def describe_url(url: str) -> str:
    """``url`` without its user, password or options: what messages may name.

    Raises:
        StoreError: ``url`` is not a PostgreSQL connection URL.
    """
    params = _params(url)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{host}{port}/{params.get('dbname', '')}"


def _params(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise StoreError(f"not a usable PostgreSQL URL: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The first line of a psycopg error: libpq adds hints on the lines after it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text.removeprefix("connection failed: ")


def _connect(url: str, where: str, *, dicts: bool) -> psycopg.Connection[Any]:
    params = _params(url)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = _CONNECT_TIMEOUT_S
    if "application_name" not in params:
        extra["application_name"] = "lifeos"
    try:
        db: psycopg.Connection[Any] = psycopg.connect(
            url, autocommit=True, row_factory=dict_row if dicts else tuple_row, **extra
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach the PostgreSQL store {where}: {_reason(exc)}") from None
    return db


def _scan_ledger(
    db: psycopg.Connection[Any], start: int, end: int | None, where: str
) -> Iterator[list[LedgerScanRow]]:
    """``ledger_scan`` over ``db``: pages of rows by seq, yielded in batches."""
    stop = _NO_END if end is None else end
    try:
        with db.cursor(row_factory=tuple_row) as cur:
            while start < stop:
                cur.execute(_SCAN_SQL, (start, stop, _SCAN_PAGE))
                rows: list[LedgerScanRow] = cur.fetchall()
                for i in range(0, len(rows), _SCAN_BATCH):
                    yield rows[i : i + _SCAN_BATCH]
                if len(rows) < _SCAN_PAGE:
                    return
                start = rows[-1][0] + 1
    except psycopg.Error as exc:
        raise StoreError(f"{where}: the ledger cannot be read: {_reason(exc)}") from None


class _LedgerScanner:
    """``PostgresStore.ledger_scan`` over a read-only connection of its own, per call.

    It holds only the URL, so it pickles, and it never touches the connection of the
    store it came from: a forked process can use it safely.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, start: int, end: int | None) -> Iterator[list[LedgerScanRow]]:
        """Batches of the rows with ``start <= seq < end`` (to the last one when None)."""
        where = describe_url(self.url)
        db = _connect(self.url, where, dicts=False)
        try:
            db.execute("SET default_transaction_read_only = on")
            yield from _scan_ledger(db, start, end, where)
        except psycopg.Error as exc:
            raise StoreError(f"{where}: the ledger cannot be read: {_reason(exc)}") from None
        finally:
            db.close()


def _psycopg_errors_as_store_errors(cls: type[_T]) -> type[_T]:
    """Map psycopg errors raised by any public method to StoreError, at the boundary.

    (The generator methods map the errors raised while they are iterated themselves.)
    """
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(fn) or inspect.isgeneratorfunction(fn):
            continue

        def wrapped(*args: Any, __fn: Callable[..., Any] = fn, **kwargs: Any) -> Any:
            try:
                return __fn(*args, **kwargs)
            except psycopg.Error as exc:
                store = args[0]
                raise StoreError(f"{store.where}: {_reason(exc)}") from None

        functools.update_wrapper(wrapped, fn)
        setattr(cls, name, wrapped)
    return cls


@_psycopg_errors_as_store_errors
class PostgresStore:
    """The shared store: a PostgreSQL database named by a ``postgresql://`` URL."""

    def __init__(self, url: str, clock: Clock) -> None:
        """Connect to the database at ``url`` and bring its schema up to date.

        The URL may carry credentials (it comes from ``LIFEOS_STORE_URL``); messages name
        it without them. libpq's own variables (``PGPASSWORD``, ``~/.pgpass``) apply too.

        Raises:
            StoreError: the server cannot be reached or refuses the login, the schema
                holds something that is not a LifeOS store or a newer one; nothing written.
        """
        self.url = url
        self.where = describe_url(url)
        self.clock = clock
        self._depth = 0
        self._db: psycopg.Connection[DictRow] = _connect(url, self.where, dicts=True)
        try:
            self.schema = self._current_schema()
            self._migrate()
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"{self.where}: not a usable LifeOS store: {_reason(exc)}") from None
        except BaseException:
            self._db.close()
            raise

    # -- housekeeping ------------------------------------------------------------

    def _current_schema(self) -> str:
        row = self._db.execute("SELECT current_schema() AS name").fetchone()
        if row is None or row["name"] is None:
            raise StoreError(
                f"{self.where}: no schema of the search path exists to keep the store in "
                "(create it, or name another with options=-csearch_path=NAME)"
            )
        return str(row["name"])

    def _migrate(self) -> None:
        with self.transaction():
            self._lock("migrations")  # stores opening a new database together migrate once
            self._check_identity()
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            current = self._version()
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                if version == 1:
                    self._db.execute(
                        "INSERT INTO lifeos_meta (key, value) VALUES ('application', %s)",
                        (APPLICATION,),
                    )
                self._db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, self.now()),
                )

    def _check_identity(self) -> None:
        tables = {
            r["table_name"]
            for r in self._db.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
        if not tables:
            return
        if "lifeos_meta" not in tables or "schema_migrations" not in tables:
            raise StoreError(
                f"{self.where} (schema {self.schema}) is not a LifeOS database (no LifeOS tables)"
            )
        app = self._db.execute("SELECT value FROM lifeos_meta WHERE key = 'application'").fetchone()
        if app is None or app["value"] != APPLICATION:
            raise StoreError(f"{self.where} (schema {self.schema}) is not a LifeOS database")
        version = self._version()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.where} has schema version {version}; this LifeOS knows up to "
                f"{len(MIGRATIONS)} — upgrade LifeOS to open it"
            )

    def _version(self) -> int:
        row = self._db.execute("SELECT MAX(version) AS v FROM schema_migrations").fetchone()
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
        try:
            self._db.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot start a transaction: {_reason(exc)}") from None
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        if self._db.info.transaction_status == pq.TransactionStatus.INERROR:
            # A statement failed and its error was caught inside: PostgreSQL has already
            # abandoned the transaction, and COMMIT would quietly roll it back.
            self._rollback()
            raise StoreError(
                f"{self.where}: a statement failed inside the transaction; nothing was committed"
            )
        try:
            self._db.execute("COMMIT")
        except psycopg.Error as exc:
            self._rollback()
            raise StoreError(f"{self.where}: commit failed: {_reason(exc)}") from None

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is gone: the server rolls back on its own

    def schema_version(self) -> int:
        """The applied schema version."""
        return self._version()

    def close(self) -> None:
        """Close the connection (closing twice is allowed)."""
        self._db.close()

    def _q(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[DictRow]:
        return self._db.execute(sql, args)

    def _lock(self, *parts: str) -> None:
        """Hold an advisory lock on ``parts`` until the current transaction ends."""
        self._q("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.schema, *parts),))

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
        row = self._q(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES "
            "(%s, %s, %s, 'running', NULL, %s, %s, %s, 0, %s, 0, 0, %s, NULL, %s, %s, NULL, "
            f"NULL) ON CONFLICT (run_id) DO NOTHING RETURNING {_RUN_COLUMNS}",
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
        ).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} already exists")
        return _run(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        row = self._q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return _run(row) if row else None

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change a run; ``status`` moves ``previous_status`` and the end timestamps."""
        unknown = set(changes) - RUN_UPDATABLE
        if unknown:
            raise StoreError(f"cannot update run field(s) {sorted(unknown)}")
        now = self.now()
        with self.transaction():
            row = self._q(
                "SELECT status FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id}")
            sets, args = ["updated_at = %s"], [now]
            for key, value in sorted(changes.items()):
                if key == "config":
                    sets.append("config_json = %s")
                    args.append(canonical_text(value))
                else:
                    sets.append(f"{key} = %s")
                    args.append(value)
            status = changes.get("status")
            if status is not None and status != row["status"]:
                sets.append("previous_status = %s")
                args.append(row["status"])
                if status in FINAL_OK:
                    sets.append("completed_at = %s")
                    args.append(now)
                elif status in FINAL_FAILED:
                    sets.append("failed_at = %s")
                    args.append(now)
            updated = self._q(
                f"UPDATE runs SET {', '.join(sets)} WHERE run_id = %s RETURNING {_RUN_COLUMNS}",
                (*args, run_id),
            ).fetchone()
        assert updated is not None
        return _run(updated)

    def list_runs(self, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first."""
        rows = self._q(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, position DESC LIMIT %s",
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
            if self._q("SELECT 1 FROM runs WHERE run_id = %s", (run_id,)).fetchone() is None:
                raise StoreError(f"no run {run_id}")
            row = self._q(
                f"INSERT INTO mission_tasks ({_TASK_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, '[]', 'pending', '[]', 0, 0, NULL, NULL, NULL, %s, %s, "
                f"NULL) ON CONFLICT (run_id, task_id) DO NOTHING RETURNING {_TASK_COLUMNS}",
                (
                    task_id,
                    run_id,
                    task_order,
                    description,
                    canonical_text(list(context_files)),
                    now,
                    now,
                ),
            ).fetchone()
        if row is None:
            raise StoreError(f"task {task_id} already exists in run {run_id}")
        return _task(row)

    def _get_task(self, run_id: str, task_id: str, *, for_update: bool = False) -> TaskRecord:
        row = self._q(
            f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = %s AND task_id = %s"
            + (" FOR UPDATE" if for_update else ""),
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
            task = self._get_task(run_id, task_id, for_update=True)
            sets, args = ["updated_at = %s"], [now]
            for key, value in sorted(changes.items()):
                sets.append(f"{key} = %s")
                is_list = key in ("result_artifact_ids", "required_artifact_ids")
                args.append(canonical_text(list(value)) if is_list else value)
            if status == "executing" and task["started_at"] is None:
                sets.append("started_at = %s")
                args.append(now)
            if status in ("approved", "failed_terminal", "skipped"):
                sets.append("completed_at = %s")
                args.append(now)
            row = self._q(
                f"UPDATE mission_tasks SET {', '.join(sets)} WHERE run_id = %s AND task_id = %s "
                f"RETURNING {_TASK_COLUMNS}",
                (*args, run_id, task_id),
            ).fetchone()
        assert row is not None
        return _task(row)

    def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """A run's tasks in order."""
        rows = self._q(
            f"SELECT {_TASK_COLUMNS} FROM mission_tasks WHERE run_id = %s "
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
            cur = self._q(
                "UPDATE mission_tasks SET "
                "locked_at = CASE WHEN locked_by = %s THEN COALESCE(locked_at, %s) ELSE %s END, "
                "locked_by = %s, lock_expires_at = %s, updated_at = %s "
                "WHERE run_id = %s AND task_id = %s AND (locked_by IS NULL OR locked_by = %s "
                "OR lock_expires_at <= %s)",
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
            # One statement: a second claimant waits on the row lock, then re-checks the
            # condition against the winner's committed row and matches nothing.
            cur = self._q(
                "UPDATE runs SET "
                "claimed_at = CASE WHEN claimed_by = %s THEN claimed_at ELSE %s END, "
                "claimed_by = %s, claim_expires_at = %s "
                "WHERE run_id = %s AND (claimed_by IS NULL OR claimed_by = %s "
                "OR claim_expires_at <= %s)",
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
                cur = self._q(
                    "UPDATE runs SET claim_expires_at = %s WHERE run_id = %s AND claimed_by = %s",
                    (until, run_id, owner),
                )
            else:
                cur = self._q(
                    "UPDATE mission_tasks SET lock_expires_at = %s, updated_at = %s "
                    "WHERE run_id = %s AND task_id = %s AND locked_by = %s",
                    (until, now, run_id, task_id, owner),
                )
            if cur.rowcount != 1:
                self._claimable(run_id, task_id)
            return cur.rowcount == 1

    def release_claim(self, run_id: str, owner: str, task_id: str | None = None) -> bool:
        """Drop ``owner``'s claim; False when ``owner`` does not hold it."""
        with self.transaction():
            if task_id is None:
                cur = self._q(
                    "UPDATE runs SET claimed_by = NULL, claimed_at = NULL, "
                    "claim_expires_at = NULL WHERE run_id = %s AND claimed_by = %s",
                    (run_id, owner),
                )
            else:
                cur = self._q(
                    "UPDATE mission_tasks SET locked_by = NULL, locked_at = NULL, "
                    "lock_expires_at = NULL, updated_at = %s "
                    "WHERE run_id = %s AND task_id = %s AND locked_by = %s",
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
                "FROM runs WHERE run_id = %s",
                (run_id,),
            ).fetchone()
        else:
            row = self._q(
                "SELECT locked_by AS owner, COALESCE(locked_at, updated_at) AS since, "
                "lock_expires_at AS until FROM mission_tasks WHERE run_id = %s AND task_id = %s",
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

    def _claimable(self, run_id: str, task_id: str | None) -> None:
        """Raise when the run (or its task) does not exist."""
        if task_id is not None:
            self._get_task(run_id, task_id)
        elif self._q("SELECT 1 FROM runs WHERE run_id = %s", (run_id,)).fetchone() is None:
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
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = %s AND file_path = %s "
                "ORDER BY version_number DESC LIMIT 1",
                (run_id, file_path),
            ).fetchone()
            if latest is not None and latest["checksum"] == checksum and not latest["is_deleted"]:
                return _artifact(latest)
            version = latest["version_number"] + 1 if latest else 1
            row = self._q(
                "INSERT INTO artifacts (artifact_id, run_id, file_path, version_number, "
                "supersedes_id, is_deleted, kind, mime_type, checksum, size_bytes, content, "
                "metadata_json, created_at) "
                "VALUES (%s, %s, %s, %s, %s, false, %s, %s, %s, %s, %s, %s, %s) "
                f"RETURNING {_ARTIFACT_COLUMNS}",
                (
                    stable_uuid("artifact", run_id, file_path, str(version)),
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
            ).fetchone()
        assert row is not None
        return _artifact(row)

    def get_artifact(self, artifact_id: str) -> tuple[ArtifactRecord, bytes] | None:
        """An artifact and its content, or None."""
        row = self._q(
            f"SELECT {_ARTIFACT_COLUMNS}, content FROM artifacts WHERE artifact_id = %s",
            (artifact_id,),
        ).fetchone()
        return (_artifact(row), bytes(row["content"])) if row else None

    def list_artifacts(self, run_id: str, include_deleted: bool = False) -> list[ArtifactRecord]:
        """A run's artifacts by path, then version."""
        rows = self._q(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = %s "
            + ("" if include_deleted else "AND NOT is_deleted ")
            + "ORDER BY file_path, version_number",
            (run_id,),
        )
        return [_artifact(r) for r in rows]

    def delete_artifact(self, artifact_id: str) -> None:
        """Mark an artifact deleted; its content stays."""
        cur = self._q(
            "UPDATE artifacts SET is_deleted = true WHERE artifact_id = %s", (artifact_id,)
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
            row = self._q(
                "SELECT COUNT(*) AS n FROM timeline_events "
                "WHERE run_id = %s AND task_id IS NOT DISTINCT FROM %s",
                (run_id, task_id),
            ).fetchone()
            counter = row["n"] if row else 0
            event_id = stable_uuid(
                "timeline",
                run_id,
                "\x00" if task_id is None else task_id,
                event_type,
                created,
                str(counter),
            )
            self._q(
                "INSERT INTO timeline_events (event_id, run_id, task_id, event_type, event_json, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
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
            ("run_id = %s", run_id),
            ("created_at >= %s", since),
            ("created_at < %s", until),
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
        row = self._q(
            "SELECT step_digest, result_json FROM journal "
            "WHERE run_id = %s AND step = %s AND attempt = %s AND call_index = %s",
            tuple(key),
        ).fetchone()
        if row is None:
            return None
        return JournalRecord(step_digest=row["step_digest"], result=json.loads(row["result_json"]))

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record a journal entry; a key is written once."""
        cur = self._q(
            "INSERT INTO journal (run_id, step, attempt, call_index, step_digest, "
            "result_json, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, step, attempt, call_index) DO NOTHING",
            (*key, record["step_digest"], canonical_text(record["result"]), self.now()),
        )
        if cur.rowcount != 1:
            raise StoreError(f"journal key already recorded: {tuple(key)}")

    def journal_keys(self, run_id: str) -> list[JournalKey]:
        """A run's journal keys in order."""
        rows = self._q(
            "SELECT run_id, step, attempt, call_index FROM journal WHERE run_id = %s "
            "ORDER BY position",
            (run_id,),
        )
        return [JournalKey(r["run_id"], r["step"], r["attempt"], r["call_index"]) for r in rows]

    def put_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Record a checkpoint; its id and its (run, step index) are written once."""
        c = checkpoint
        cur = self._q(
            f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE checkpoint_id = %s",
            (checkpoint_id,),
        ).fetchone()
        return _checkpoint(row) if row else None

    def list_checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """A run's checkpoints in step order."""
        rows = self._q(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE run_id = %s ORDER BY step_index",
            (run_id,),
        )
        return [_checkpoint(r) for r in rows]

    # -- ledger and nonces --------------------------------------------------------------

    def append_ledger(
        self, type: str, run_id: str | None, payload: dict[str, Any]
    ) -> tuple[LedgerEntry, LedgerRow]:
        """Append an entry after the head, under the ledger's advisory lock."""
        with self.transaction():
            # Two statements, not one: a READ COMMITTED statement reads the snapshot taken
            # when it starts, so the head must be read by a statement that starts after
            # the lock is granted — then it sees what the previous holder committed.
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
            self._q(
                "INSERT INTO ledger (seq, entry, leaf_hash, type, run_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (seq, data, leaf, type, run_id),
            )
        return entry, LedgerRow(seq=seq, entry=data, leaf_hash=leaf, type=type, run_id=run_id)

    def ledger_size(self) -> int:
        """The number of entries."""
        row = self._q("SELECT COUNT(*) AS n FROM ledger").fetchone()
        return int(row["n"]) if row else 0

    def ledger_rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        """Entries with ``start <= seq < end`` in seq order."""
        for batch in _scan_ledger(self._db, start, end, self.where):
            for seq, entry, leaf, type_, run_id in batch:
                yield LedgerRow(
                    seq=seq, entry=entry, leaf_hash=leaf.decode("utf-8"), type=type_, run_id=run_id
                )

    def ledger_scan(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[Sequence[LedgerScanRow]]:
        """Batches of ``(seq, entry, leaf_hash, type, run_id)`` tuples in seq order."""
        yield from _scan_ledger(self._db, start, end, self.where)

    def ledger_scanner(self) -> LedgerScanner | None:
        """A scanner that opens a read-only connection of its own per call."""
        return _LedgerScanner(self.url)

    def ledger_rows_for_run(self, run_id: str) -> list[LedgerRow]:
        """A run's entries in seq order."""
        rows = self._q(
            "SELECT seq, entry, leaf_hash, type, run_id FROM ledger WHERE run_id = %s ORDER BY seq",
            (run_id,),
        )
        return [
            LedgerRow(
                seq=r["seq"],
                entry=r["entry"],
                leaf_hash=r["leaf_hash"],
                type=r["type"],
                run_id=r["run_id"],
            )
            for r in rows
        ]

    def put_signed_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Keep a signed tree head."""
        self._q(
            "INSERT INTO ledger_checkpoints (tree_size, root_hash, note, created_at) "
            "VALUES (%s, %s, %s, %s)",
            (
                checkpoint["tree_size"],
                checkpoint["root_hash"],
                checkpoint["note"],
                checkpoint["created_at"],
            ),
        )

    def list_signed_checkpoints(self) -> list[SignedCheckpoint]:
        """Signed tree heads, oldest first."""
        rows = self._q(
            "SELECT tree_size, root_hash, note, created_at FROM ledger_checkpoints "
            "ORDER BY position"
        )
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
        cur = self._q(
            "INSERT INTO nonces (nonce, source, consumed_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (nonce) DO NOTHING",
            (nonce, source, self.now()),
        )
        return cur.rowcount == 1

    def nonce_seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was consumed before."""
        return self._q("SELECT 1 FROM nonces WHERE nonce = %s", (nonce,)).fetchone() is not None
