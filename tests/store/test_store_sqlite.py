"""The SQLite backend: pragmas, reopening, refusing files that are not ours, open_store.

Backend-specific: these tests may look at the file with the stdlib ``sqlite3`` and at
``SQLiteStore._db``. What every backend must do lives in test_store_conformance.py.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from lifeos.clock import FixedClock
from lifeos.errors import ReasonCode
from lifeos.store import DB_FILE, Store, StoreError, open_store
from lifeos.store.sqlite import MIGRATIONS, SQLiteStore

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

OpenSQLite = Callable[..., SQLiteStore]


@pytest.fixture
def open_sqlite() -> Iterator[OpenSQLite]:
    """Open SQLiteStores (same arguments as SQLiteStore) and close them all afterwards."""
    opened: list[SQLiteStore] = []

    def _open(path: Path, clock: FixedClock | None = None, **kwargs: object) -> SQLiteStore:
        store = SQLiteStore(path, clock or FixedClock(START), **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_wal_mode_is_set_in_the_file(tmp_path: Path, open_sqlite: OpenSQLite) -> None:
    path = tmp_path / "lifeos.db"
    open_sqlite(path)
    assert _query(path, "PRAGMA journal_mode") == [("wal",)]


def test_synchronous_is_full_by_default(tmp_path: Path, open_sqlite: OpenSQLite) -> None:
    store = open_sqlite(tmp_path / "lifeos.db")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_synchronous_can_be_chosen(tmp_path: Path, open_sqlite: OpenSQLite) -> None:
    store = open_sqlite(tmp_path / "lifeos.db", synchronous="normal")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_an_unknown_synchronous_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    with pytest.raises(StoreError, match="synchronous"):
        SQLiteStore(path, FixedClock(START), synchronous="SOMETIMES")
    assert not path.exists()


def test_schema_version_is_the_number_of_migrations(
    tmp_path: Path, open_sqlite: OpenSQLite
) -> None:
    path = tmp_path / "lifeos.db"
    store = open_sqlite(path)
    assert store.schema_version() == len(MIGRATIONS)
    versions = _query(path, "SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    assert _query(path, "SELECT key, value FROM lifeos_meta") == [("application", "lifeos")]


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    with closing(SQLiteStore(path, FixedClock(START))) as first:
        first.create_run("run-1", "mission", "echo")
        first.append_ledger("run.started", "run-1", {"n": 1})
    migrations = _query(path, "SELECT version, applied_at FROM schema_migrations")
    assert len(migrations) == len(MIGRATIONS)

    later = FixedClock(START + dt.timedelta(days=30))
    with closing(SQLiteStore(path, later)) as second:
        assert second.schema_version() == len(MIGRATIONS)
        run = second.get_run("run-1")
        assert run is not None and run["name"] == "echo"
        assert second.ledger_size() == 1
        entry, _ = second.append_ledger("run.finished", "run-1", {})
        assert entry["seq"] == 1
    assert _query(path, "SELECT version, applied_at FROM schema_migrations") == migrations
    assert _query(path, "SELECT key, value FROM lifeos_meta") == [("application", "lifeos")]


@pytest.mark.parametrize("size", [100, 4096, 70_000])
def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path, size: int) -> None:
    path = tmp_path / "lifeos.db"
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    with pytest.raises(StoreError) as info:
        SQLiteStore(path, FixedClock(START))
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE
    assert info.value.exit_code == 2
    assert path.read_bytes() == data
    assert _siblings(path) == ["lifeos.db"]


def _foreign_database(path: Path) -> bytes:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO customers (name) VALUES ('ada'), ('grace')")
        db.commit()
    return path.read_bytes()


def test_someone_elses_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    data = _foreign_database(path)
    with pytest.raises(StoreError, match="not a LifeOS database"):
        SQLiteStore(path, FixedClock(START))
    assert path.read_bytes() == data
    assert _siblings(path) == ["theirs.db"]  # no -wal, -shm or -journal file
    assert _query(path, "PRAGMA journal_mode") == [("delete",)]


@pytest.mark.parametrize(
    "tables",
    [
        # Rails keeps a schema_migrations table too.
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
def test_lookalike_databases_are_refused_untouched(tmp_path: Path, tables: list[str]) -> None:
    path = tmp_path / "lookalike.db"
    with closing(sqlite3.connect(path)) as db:
        for sql in tables:
            db.execute(sql)
        db.commit()
    data = path.read_bytes()
    with pytest.raises(StoreError, match="not a LifeOS database"):
        SQLiteStore(path, FixedClock(START))
    assert path.read_bytes() == data
    assert _siblings(path) == ["lookalike.db"]


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    SQLiteStore(path, FixedClock(START)).close()
    newer = len(MIGRATIONS) + 1
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')", (newer,)
        )
        db.commit()
    data = path.read_bytes()
    siblings = _siblings(path)
    with pytest.raises(StoreError, match=f"schema version {newer}") as info:
        SQLiteStore(path, FixedClock(START))
    assert info.value.reason == ReasonCode.STORE_UNAVAILABLE
    assert path.read_bytes() == data
    assert _siblings(path) == siblings
    assert _query(path, "SELECT MAX(version) FROM schema_migrations") == [(newer,)]


def test_open_store_creates_the_lifeos_dir_and_its_gitignore(tmp_path: Path) -> None:
    lifeos_dir = tmp_path / "repo" / ".lifeos"
    with closing(open_store(lifeos_dir, FixedClock(START))) as store:
        assert isinstance(store, Store)
        store.create_run("run-1", "mission", "echo")
    ignore = lifeos_dir / ".gitignore"
    assert ignore.is_file()
    assert "*" in ignore.read_text(encoding="utf-8").splitlines()
    assert (lifeos_dir / DB_FILE).is_file()
    with closing(open_store(lifeos_dir, FixedClock(START))) as again:
        assert again.get_run("run-1") is not None


def test_open_store_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    lifeos_dir = tmp_path / ".lifeos"
    lifeos_dir.mkdir()
    (lifeos_dir / ".gitignore").write_text("mine\n", encoding="utf-8")
    with closing(open_store(lifeos_dir, FixedClock(START))):
        pass
    assert (lifeos_dir / ".gitignore").read_text(encoding="utf-8") == "mine\n"


def test_open_store_at_a_location_relative_to_the_main_root(tmp_path: Path) -> None:
    lifeos_dir = tmp_path / ".lifeos"
    with closing(open_store(lifeos_dir, FixedClock(START), "var/state/lifeos.db")) as store:
        store.append_ledger("e", None, {})
    assert (tmp_path / "var" / "state" / "lifeos.db").is_file()


def test_open_store_refuses_a_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not supported"):
        open_store(tmp_path / ".lifeos", FixedClock(START), "mysql://db.invalid/lifeos")


def test_store_error_exit_code_and_reason() -> None:
    error = StoreError("cannot open")
    assert error.exit_code == 2
    assert error.reason == ReasonCode.STORE_UNAVAILABLE
    assert error.one_line() == "cannot open [STORE_UNAVAILABLE]"
