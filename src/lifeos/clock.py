"""Clocks, injected: engine and store code never read the time themselves."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FixedClock", "SystemClock", "iso"]


@runtime_checkable
class Clock(Protocol):
    """Tells the current UTC time."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


def iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with microseconds and a Z: ``2026-11-21T22:37:56.000000Z``."""
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class SystemClock:
    """The machine's clock; used only at the edges (the CLI, workers)."""

    def now(self) -> dt.datetime:
        """The current UTC time."""
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock for tests and replays: starts at ``start`` and ticks ``step`` per reading."""

    def __init__(
        self,
        start: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        step: dt.timedelta = dt.timedelta(seconds=1),
    ) -> None:
        self._next = start
        self._step = step

    def now(self) -> dt.datetime:
        """The next tick."""
        moment = self._next
        self._next = moment + self._step
        return moment
