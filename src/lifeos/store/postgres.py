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

The queries are the shared ones (``_sql``); this module holds PostgreSQL's dialect: the
connection, the migrations, transactions, advisory locks, errors and the ledger's reads.
psycopg is imported only here, and this module only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row, tuple_row

from lifeos.clock import Clock
from lifeos.store._sql import SQLStore, store_errors
from lifeos.store.base import LedgerRow, LedgerScanner, LedgerScanRow, StoreError

if TYPE_CHECKING:
    from psycopg.rows import DictRow

__all__ = ["MIGRATIONS", "PostgresStore", "describe_url"]

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


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """``sql`` in psycopg's placeholders: ``?`` becomes ``%s``, a literal ``%`` ``%%``.

    The shared statements hold ``?`` only as placeholders (never in a literal).
    """
    return sql.replace("%", "%%").replace("?", "%s")


@store_errors
class PostgresStore(SQLStore):
    """The shared store: a PostgreSQL database named by a ``postgresql://`` URL."""

    _DRIVER_ERROR = psycopg.Error
    _MIGRATIONS = MIGRATIONS
    _TABLES_SQL = (
        "SELECT table_name AS name FROM information_schema.tables "
        "WHERE table_schema = current_schema()"
    )
    _INSERT_EVENT_SQL = (
        "INSERT INTO timeline_events (event_id, run_id, task_id, event_type, event_json, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)"
    )
    _FOR_UPDATE = " FOR UPDATE"
    _INSERTION_ORDER = "position"
    _RETURNING = True

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
            with self.transaction():
                self._lock("migrations")  # stores opening a new database together migrate once
                self._check_identity()
                self._apply_migrations()
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"{self.where}: not a usable LifeOS store: {_reason(exc)}") from None
        except BaseException:
            self._db.close()
            raise

    # -- the dialect ---------------------------------------------------------------

    def _current_schema(self) -> str:
        row = self._db.execute("SELECT current_schema() AS name").fetchone()
        if row is None or row["name"] is None:
            raise StoreError(
                f"{self.where}: no schema of the search path exists to keep the store in "
                "(create it, or name another with options=-csearch_path=NAME)"
            )
        return str(row["name"])

    def _described(self) -> str:
        return f"{self.where} (schema {self.schema})"

    def _q(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[DictRow]:
        return self._db.execute(_placeholders(sql), args)

    def _write(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[DictRow]:
        if self._fence is not None and not self._depth:  # fenced: checked, in one unit
            with self.transaction():
                return self._db.execute(_placeholders(sql), args)
        return self._db.execute(_placeholders(sql), args)

    def _begin(self) -> None:
        try:
            self._db.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: cannot start a transaction: {_reason(exc)}") from None

    def _commit(self) -> None:
        if self._db.info.transaction_status == pq.TransactionStatus.INERROR:
            # A statement failed and its error was caught inside: PostgreSQL has already
            # abandoned the transaction, and COMMIT would quietly roll it back.
            self._abort()
            raise StoreError(
                f"{self.where}: a statement failed inside the transaction; nothing was committed"
            )
        try:
            self._db.execute("COMMIT")
        except psycopg.Error as exc:
            self._abort()
            raise StoreError(f"{self.where}: commit failed: {_reason(exc)}") from None

    def _abort(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is gone: the server rolls back on its own

    def _lock(self, *parts: str) -> None:
        """Hold an advisory lock on ``parts`` until the current transaction ends."""
        self._q("SELECT pg_advisory_xact_lock(?)", (_lock_key(self.schema, *parts),))

    @staticmethod
    def _reason(exc: BaseException) -> str:
        return _reason(exc)

    def close(self) -> None:
        """Close the connection (closing twice is allowed)."""
        self._db.close()

    # -- the ledger's reads --------------------------------------------------------------

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
