"""The PostgreSQL backend: migrations, refusing databases that are not ours, schemas,
unreachable servers, the ledger's lock across connections and processes, open_store.

Backend-specific: these tests look at the database with psycopg and at
``PostgresStore._db``. What every backend must do lives in test_store_conformance.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from pgserver import PostgresServer

from lifeos.clock import FixedClock, SystemClock
from lifeos.errors import ReasonCode
from lifeos.ledger.chain import sign_checkpoint, verify_store
from lifeos.ledger.note import Signer
from lifeos.store import Store, StoreError, open_store
from lifeos.store.postgres import MIGRATIONS, PostgresStore, describe_url
from lifeos.store.sqlite import GENESIS_HASH

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ORIGIN = "lifeos/test"


class Database:
    """One test's database: its URL, psycopg queries on it, stores opened on it."""

    def __init__(self, server: PostgresServer, location: Path) -> None:
        self.server = server
        self.url = server.database_url(location)
        self.name = server.database_name(location)
        self.opened: list[PostgresStore] = []

    def sql(self, statement: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.server.execute(self.name, statement, args)

    def open(self, url: str | None = None, clock: Any = None) -> PostgresStore:
        store = PostgresStore(url or self.url, clock or FixedClock(START))
        self.opened.append(store)
        return store

    def tables(self, schema: str = "public") -> list[str]:
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "ORDER BY table_name",
            (schema,),
        )
        return [r[0] for r in rows]


@pytest.fixture
def db(pg_server: PostgresServer, tmp_path: Path) -> Iterator[Database]:
    """An empty database of this test's own on the session's server."""
    database = Database(pg_server, tmp_path)
    try:
        yield database
    finally:
        for store in database.opened:
            store.close()
        pg_server.drop_database(tmp_path)


def _closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- migrations ----------------------------------------------------------------------------


def test_migrations_are_applied_and_recorded(db: Database) -> None:
    store = db.open()
    assert store.schema_version() == len(MIGRATIONS)
    versions = db.sql("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    assert db.sql("SELECT key, value FROM lifeos_meta") == [("application", "lifeos")]
    assert "ledger" in db.tables() and "runs" in db.tables()


def test_reopening_keeps_data_and_does_not_migrate_again(db: Database) -> None:
    with closing(db.open()) as first:
        first.create_run("run-1", "mission", "echo")
        first.append_ledger("run.started", "run-1", {"n": 1})
    migrations = db.sql("SELECT version, applied_at FROM schema_migrations")
    later = FixedClock(START + dt.timedelta(days=30))
    with closing(db.open(clock=later)) as second:
        assert second.schema_version() == len(MIGRATIONS)
        run = second.get_run("run-1")
        assert run is not None and run["name"] == "echo"
        entry, _ = second.append_ledger("run.finished", "run-1", {})
        assert entry["seq"] == 1
    assert db.sql("SELECT version, applied_at FROM schema_migrations") == migrations


def test_stores_opening_a_new_database_at_once_migrate_it_once(db: Database) -> None:
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def opener() -> None:
        try:
            barrier.wait(timeout=30)
            opened.append(PostgresStore(db.url, FixedClock(START)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    db.opened.extend(opened)
    assert not errors, errors
    assert len(opened) == 6
    assert db.sql("SELECT COUNT(*) FROM schema_migrations") == [(len(MIGRATIONS),)]
    assert db.sql("SELECT COUNT(*) FROM lifeos_meta") == [(1,)]


# -- databases that are not ours --------------------------------------------------------------


def _snapshot(db: Database) -> tuple[list[str], list[tuple[Any, ...]]]:
    return db.tables(), db.sql("SELECT name FROM customers ORDER BY id")


def test_someone_elses_database_is_refused_untouched(db: Database) -> None:
    db.sql("CREATE TABLE customers (id SERIAL PRIMARY KEY, name TEXT)")
    db.sql("INSERT INTO customers (name) VALUES ('ada'), ('grace')")
    before = _snapshot(db)
    with pytest.raises(StoreError, match="not a LifeOS database") as info:
        db.open()
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE
    assert info.value.exit_code == 2
    assert _snapshot(db) == before
    assert before[0] == ["customers"]


@pytest.mark.parametrize(
    "statements",
    [
        ["CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)"],
        [
            "CREATE TABLE lifeos_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)",
            "INSERT INTO lifeos_meta VALUES ('application', 'somebody-else')",
        ],
        [
            "CREATE TABLE lifeos_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)",
        ],
    ],
    ids=["schema-migrations-only", "other-application", "no-application"],
)
def test_lookalike_databases_are_refused_untouched(db: Database, statements: list[str]) -> None:
    for statement in statements:
        db.sql(statement)
    tables = db.tables()
    with pytest.raises(StoreError, match="not a LifeOS database"):
        db.open()
    assert db.tables() == tables
    assert db.sql("SELECT COUNT(*) FROM schema_migrations") == [(0,)]


def test_a_newer_schema_is_refused_untouched(db: Database) -> None:
    db.open().close()
    newer = len(MIGRATIONS) + 1
    db.sql("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, 'later')", (newer,))
    with pytest.raises(StoreError, match=f"schema version {newer}") as info:
        db.open()
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE
    assert db.sql("SELECT MAX(version) FROM schema_migrations") == [(newer,)]


def test_the_store_keeps_to_the_schema_its_url_names(db: Database) -> None:
    db.sql("CREATE SCHEMA team_a")
    db.sql("CREATE SCHEMA team_b")
    a = db.open(f"{db.url}?options=-csearch_path%3Dteam_a")
    b = db.open(f"{db.url}?options=-csearch_path%3Dteam_b")
    a.append_ledger("e", None, {"team": "a"})
    with a.transaction():
        a.append_ledger("e", None, {"team": "a"})  # holds team_a's ledger lock
        other = threading.Thread(target=b.append_ledger, args=("e", None, {"team": "b"}))
        other.start()
        other.join(timeout=60)
        assert not other.is_alive(), "team_b's append waited for team_a's lock"
    assert (a.ledger_size(), b.ledger_size()) == (2, 1)
    assert db.sql("SELECT COUNT(*) FROM team_a.ledger") == [(2,)]
    assert db.tables("public") == []
    [row] = b.ledger_rows()
    assert json.loads(row["entry"])["prev_hash"] == GENESIS_HASH


def test_a_search_path_naming_no_schema_is_refused(db: Database) -> None:
    with pytest.raises(StoreError, match="no schema of the search path exists"):
        db.open(f"{db.url}?options=-csearch_path%3Dnot_there")
    assert db.tables("public") == []


# -- failures are StoreErrors, on one line ---------------------------------------------------


def test_an_unreachable_server_is_a_one_line_store_error() -> None:
    port = _closed_port()
    url = f"postgresql://someone:s3cret@127.0.0.1:{port}/lifeos"
    with pytest.raises(StoreError) as info:
        PostgresStore(url, FixedClock(START))
    error = info.value
    assert error.reason == ReasonCode.STORE_UNAVAILABLE
    assert error.exit_code == 2
    line = error.one_line()
    assert "\n" not in line
    assert line.startswith(
        f"cannot reach the PostgreSQL store postgresql://127.0.0.1:{port}/lifeos"
    )
    assert "refused" in line.lower()
    assert line.endswith("[STORE_UNAVAILABLE]")
    assert "s3cret" not in line and "someone" not in line


def test_an_unknown_database_is_a_store_error(pg_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="does not exist") as info:
        PostgresStore(pg_server.url("lifeos_no_such_database"), FixedClock(START))
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db.example:5433/lifeos", "postgresql://db.example:5433/lifeos"),
        (
            "postgres://db.example/lifeos?password=pw&sslmode=require",
            "postgresql://db.example/lifeos",
        ),
        ("postgresql:///lifeos", "postgresql://localhost/lifeos"),
    ],
)
def test_messages_name_the_server_without_credentials(url: str, shown: str) -> None:
    assert describe_url(url) == shown


def test_a_malformed_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a usable PostgreSQL URL"):
        PostgresStore("postgresql://h/db?no_such_option=1", FixedClock(START))


def test_a_failed_statement_inside_a_transaction_commits_nothing(db: Database) -> None:
    store = db.open()
    with pytest.raises(StoreError, match="nothing was committed"), store.transaction():
        store.create_run("run-x", "mission", "echo")
        store.append_ledger("run.started", "run-x", {})
        with pytest.raises(StoreError):
            store.update_run("run-x", loop_count="many")  # the server refuses the value
    assert store.get_run("run-x") is None
    assert store.ledger_size() == 0
    store.create_run("run-x", "mission", "echo")  # the store is usable again
    assert store.append_ledger("run.started", "run-x", {})[0]["seq"] == 0


def test_a_lost_connection_is_a_store_error(db: Database) -> None:
    store = db.open()
    store.create_run("run-1", "mission", "echo")
    pid = store._db.info.backend_pid
    db.sql("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError) as info:
        store.get_run("run-1")
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE
    with pytest.raises(StoreError):
        list(store.ledger_rows())


# -- the ledger's lock ------------------------------------------------------------------------


def _waiting_on_a_lock(db: Database, pid: int) -> bool:
    rows = db.sql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    return rows == [("Lock",)]


def test_an_append_waits_for_an_open_transaction_then_chains_after_it(db: Database) -> None:
    first = db.open()
    second = db.open()
    appended: list[Any] = []
    with first.transaction():
        head, _ = first.append_ledger("first", None, {})
        waiter = threading.Thread(
            target=lambda: appended.append(second.append_ledger("second", None, {}))
        )
        waiter.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(db, second._db.info.backend_pid):
            assert time.monotonic() < deadline, "the second append never waited"
            time.sleep(0.01)
        assert waiter.is_alive() and appended == []
    waiter.join(timeout=30)
    [(entry, row)] = appended
    assert (head["seq"], entry["seq"]) == (0, 1)
    assert entry["prev_hash"] == next(iter(first.ledger_rows(0, 1)))["leaf_hash"]
    assert [r["type"] for r in second.ledger_rows()] == ["first", "second"]


def test_damaged_rows_are_read_as_stored_and_verification_names_them(db: Database) -> None:
    store = db.open()
    for i in range(3):
        store.append_ledger("e", "run-1", {"i": i})
    db.sql("UPDATE ledger SET leaf_hash = 'é-not-a-digest' WHERE seq = 1")
    rows = list(store.ledger_rows())
    assert rows[1]["leaf_hash"] == "é-not-a-digest"
    scanned = [row for batch in store.ledger_scan() for row in batch]
    assert scanned[1][2] == "é-not-a-digest".encode()
    report = verify_store(store, None)
    assert not report.ok
    assert (report.first_bad_seq, report.reason_code) == (1, ReasonCode.LEDGER_TAMPERED.value)


WORKERS = 4
APPENDS = 500


def _append_worker(url: str, worker: int, appends: int, barrier: Barrier) -> None:
    """Runs in a child process: open a store of its own and append ``appends`` entries."""
    store = PostgresStore(url, SystemClock())
    try:
        barrier.wait(timeout=60)
        for n in range(appends):
            store.append_ledger("load.test", f"run-{worker}", {"worker": worker, "n": n})
    finally:
        store.close()


@pytest.mark.slow
def test_concurrent_processes_append_one_linear_chain(db: Database) -> None:
    PostgresStore(db.url, SystemClock()).close()  # migrated before the race
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    processes = [
        ctx.Process(target=_append_worker, args=(db.url, i, APPENDS, barrier))
        for i in range(WORKERS)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * WORKERS
    print(f"{WORKERS} processes x {APPENDS} appends: {time.perf_counter() - started:.2f}s")

    store = db.open(clock=SystemClock())
    signer = Signer.generate(ORIGIN)
    sign_checkpoint(store, signer)
    report = verify_store(store, signer.verifier(), ORIGIN)
    assert report.ok, report
    assert report.size == WORKERS * APPENDS
    assert report.checkpoints == 1

    rows = list(store.ledger_rows())
    assert [row["seq"] for row in rows] == list(range(WORKERS * APPENDS))
    previous = GENESIS_HASH
    seen: Counter[tuple[int, int]] = Counter()
    for row in rows:
        assert row["leaf_hash"] == hashlib.sha256(b"\x00" + row["entry"]).hexdigest()
        entry = json.loads(row["entry"])
        assert entry["seq"] == row["seq"]
        assert entry["prev_hash"] == previous
        previous = row["leaf_hash"]
        seen[(entry["payload"]["worker"], entry["payload"]["n"])] += 1
    assert seen == Counter({(w, n): 1 for w in range(WORKERS) for n in range(APPENDS)})
    for worker in range(WORKERS):
        own = store.ledger_rows_for_run(f"run-{worker}")
        ns = [json.loads(r["entry"])["payload"]["n"] for r in own]
        assert ns == list(range(APPENDS)), worker


# -- open_store --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_opens_a_postgresql_url(db: Database, tmp_path: Path, scheme: str) -> None:
    url = db.url.replace("postgresql://", f"{scheme}://", 1)
    lifeos_dir = tmp_path / "repo" / ".lifeos"
    with closing(open_store(lifeos_dir, FixedClock(START), url)) as store:
        assert isinstance(store, PostgresStore) and isinstance(store, Store)
        store.append_ledger("e", None, {})
    assert not lifeos_dir.exists()  # nothing written beside the repository
    assert db.sql("SELECT COUNT(*) FROM ledger") == [(1,)]


def test_open_store_without_psycopg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "lifeos.store.postgres")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(StoreError, match=r"pip install 'lifeos\[postgresql\]'") as info:
        open_store(tmp_path / ".lifeos", FixedClock(START), "postgresql://db.invalid/lifeos")
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE


def test_psycopg_is_imported_only_for_a_postgresql_store() -> None:
    script = (
        "import sys, contextlib, io\n"
        "from lifeos.cli import main\n"
        "import lifeos.store\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_every_store_method_maps_driver_errors(db: Database) -> None:
    """The public methods are wrapped: no psycopg exception escapes a closed store."""
    store = db.open()
    store.close()
    calls: list[Callable[[], Any]] = [
        lambda: store.get_run("x"),
        lambda: store.create_run("x", "mission", "echo"),
        lambda: store.append_ledger("e", None, {}),
        lambda: store.claim_run("x", "w", 10),
        lambda: store.get_claim("x"),
        lambda: store.ledger_size(),
        lambda: list(store.ledger_scan()),
        lambda: store.consume_nonce("n", "s"),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            call()
