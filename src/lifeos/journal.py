"""The run journal contract and its in-memory implementation.

Every side-effecting result (a mission, an LLM call, a tool call) is recorded in
the journal before a run moves on. A record is keyed by run id, step id, attempt
and call index; replaying a run looks its records up instead of repeating the
side effect. The durable implementation lives in the store.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, TypedDict, runtime_checkable

__all__ = ["InMemoryJournal", "Journal", "JournalKey", "JournalRecord"]


class JournalKey(NamedTuple):
    """Where a recorded result belongs."""

    run_id: str
    """The run the result belongs to."""
    step: str
    """The step id (engine) or phase name (spine)."""
    attempt: int
    """The attempt of that step, from 0; a retry is a new attempt."""
    call_index: int
    """The side-effecting call's position within the attempt, from 0."""


class JournalRecord(TypedDict):
    """A recorded side-effect result."""

    step_digest: str
    """SHA-256 of the step spec that produced the result; a replay checks it."""
    result: Any
    """The result, as canonical-JSON-able data."""


@runtime_checkable
class Journal(Protocol):
    """Records side-effect results so a replay never repeats them."""

    def get(self, key: JournalKey) -> JournalRecord | None:
        """Return the record at ``key``, or None if nothing was recorded."""
        ...

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record ``record`` at ``key``; committed before this returns."""
        ...


class InMemoryJournal:
    """A journal in a dict: for tests and for runs that need no durability."""

    def __init__(self) -> None:
        self._records: dict[JournalKey, JournalRecord] = {}

    def get(self, key: JournalKey) -> JournalRecord | None:
        """Return the record at ``key``, or None."""
        return self._records.get(key)

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record ``record`` at ``key``; a key is written once."""
        if key in self._records:
            raise ValueError(f"journal key already recorded: {key}")
        self._records[key] = record

    def keys(self, run_id: str | None = None) -> list[JournalKey]:
        """Return the recorded keys in order, optionally for one run only."""
        return sorted(k for k in self._records if run_id is None or k.run_id == run_id)

    def __len__(self) -> int:
        return len(self._records)
