"""Store fixtures: every backend behind one factory, so the conformance suite runs on each.

To add a backend (PostgreSQL), write an ``_open_<name>(location, clock)`` function that opens
that backend's store for ``location`` — the same ``location`` must reach the same stored data,
so a test can open a second store on it — and add a :class:`Backend` to :data:`BACKENDS`.
Every test that takes ``store_factory`` or ``store`` then runs once per backend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifeos.clock import Clock, FixedClock
from lifeos.store import Store
from lifeos.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from lifeos.store.sqlite import SQLiteStore

#: Where :class:`FixedClock` starts unless a test says otherwise.
CLOCK_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Backend:
    """One store implementation, as the conformance suite sees it."""

    name: str
    """The pytest id: ``sqlite``, later ``postgresql``."""
    open: Callable[[Path, Clock], Store]
    """Open (creating if needed) the store for a location: a directory private to the test."""
    schema_version: int
    """What ``schema_version()`` answers after opening: that backend's number of migrations."""


def _open_sqlite(location: Path, clock: Clock) -> Store:
    location.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(location / "lifeos.db", clock)


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend("sqlite", _open_sqlite, len(SQLITE_MIGRATIONS)),
    # "postgresql": Backend("postgresql", _open_postgresql, len(POSTGRES_MIGRATIONS)),
}


class StoreFactory:
    """Opens stores of one backend for one test and closes them all when the test ends."""

    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self._tmp_path = tmp_path
        self._opened: list[Store] = []
        self._fresh = 0

    def __call__(self, location: Path | None = None, clock: Clock | None = None) -> Store:
        """Open a store at ``location`` (a fresh one when None) with ``clock`` (a FixedClock).

        Two calls with the same ``location`` open the same stored data.
        """
        if location is None:
            self._fresh += 1
            location = self._tmp_path / f"store-{self._fresh}"
        store = self.backend.open(location, clock or FixedClock(CLOCK_START))
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        """Close every store this factory opened (closing twice is allowed)."""
        for store in reversed(self._opened):
            store.close()
        self._opened.clear()


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory for stores of each backend in turn; everything it opened is closed after."""
    factory = StoreFactory(BACKENDS[request.param], tmp_path)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh store with a FixedClock starting at :data:`CLOCK_START`, one second per tick."""
    return store_factory()
