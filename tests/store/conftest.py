"""Store fixtures: every backend behind one factory, so the conformance suite runs on each.

A backend is a :class:`Backend`: a function that opens that backend's store for a
``location`` — the same ``location`` must reach the same stored data, so a test can open a
second store on it — and one that forgets a location's data when the test ends. Every test
that takes ``store_factory`` or ``store`` runs once per backend in :data:`BACKENDS`.

The PostgreSQL backend needs a server: ``pg_server`` starts one per session (per xdist
worker) from the binaries on the machine or uses ``LIFEOS_TEST_PG_URL`` (see
``pgserver.py``), and each location is a database of its own. Without binaries or a URL,
the PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pgserver import PostgresServer

from lifeos.clock import Clock, FixedClock
from lifeos.store import Store
from lifeos.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from lifeos.store.sqlite import SQLiteStore

#: Where :class:`FixedClock` starts unless a test says otherwise.
CLOCK_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _keep(location: Path) -> None:
    """Nothing to forget: the data lives under the test's own tmp_path."""


@dataclass(frozen=True)
class Backend:
    """One store implementation, as the conformance suite sees it."""

    name: str
    """The pytest id: ``sqlite`` or ``postgresql``."""
    open: Callable[[Path, Clock], Store]
    """Open (creating if needed) the store for a location: a directory private to the test."""
    schema_version: int
    """What ``schema_version()`` answers after opening: that backend's number of migrations."""
    forget: Callable[[Path], None] = field(default=_keep)
    """Throw away a location's data once every store on it is closed."""


def _open_sqlite(location: Path, clock: Clock) -> Store:
    location.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(location / "lifeos.db", clock)


def _sqlite(request: pytest.FixtureRequest) -> Backend:
    return Backend("sqlite", _open_sqlite, len(SQLITE_MIGRATIONS))


def postgres_backend(server: PostgresServer) -> Backend:
    """The PostgreSQL backend on ``server``: one database per location."""
    from lifeos.store.postgres import MIGRATIONS, PostgresStore

    def _open(location: Path, clock: Clock) -> Store:
        return PostgresStore(server.database_url(location), clock)

    return Backend("postgresql", _open, len(MIGRATIONS), server.drop_database)


def _postgresql(request: pytest.FixtureRequest) -> Backend:
    return postgres_backend(request.getfixturevalue("pg_server"))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


class StoreFactory:
    """Opens stores of one backend for one test and closes them all when the test ends."""

    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self._tmp_path = tmp_path
        self._opened: list[Store] = []
        self._locations: list[Path] = []
        self._fresh = 0

    def __call__(self, location: Path | None = None, clock: Clock | None = None) -> Store:
        """Open a store at ``location`` (a fresh one when None) with ``clock`` (a FixedClock).

        Two calls with the same ``location`` open the same stored data.
        """
        if location is None:
            self._fresh += 1
            location = self._tmp_path / f"store-{self._fresh}"
        if location not in self._locations:
            self._locations.append(location)
        store = self.backend.open(location, clock or FixedClock(CLOCK_START))
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        """Close every store this factory opened (closing twice is allowed), then forget
        the data of every location."""
        for store in reversed(self._opened):
            store.close()
        self._opened.clear()
        for location in self._locations:
            self.backend.forget(location)
        self._locations.clear()


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory for stores of each backend in turn; everything it opened is closed after."""
    factory = StoreFactory(BACKENDS[request.param](request), tmp_path)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh store with a FixedClock starting at :data:`CLOCK_START`, one second per tick."""
    return store_factory()
