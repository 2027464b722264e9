"""The spine's states, phases, and its journaled side effects."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from lifeos.canonical import copy_json, sha256_hex, stable_uuid
from lifeos.errors import (
    EXIT_BLOCKED,
    EXIT_BUDGET,
    EXIT_ESCALATED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    LifeOSError,
    ReasonCode,
)
from lifeos.journal import Journal, JournalKey, JournalRecord

__all__ = [
    "EXIT_FOR_STATE",
    "PHASES",
    "PhaseEnv",
    "SpineState",
    "SpineStop",
]

PHASES = ("hydrate", "policy", "design", "build", "review", "steward", "close")


class SpineState(StrEnum):
    """Where a spine run stands; every state but RUNNING is where a run stops."""

    RUNNING = "RUNNING"
    LANDED = "LANDED"
    BLOCKED = "BLOCKED"
    FAILED = "FAILED"
    PAUSED = "PAUSED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    ESCALATED = "ESCALATED"


EXIT_FOR_STATE = {
    SpineState.LANDED: EXIT_OK,
    SpineState.FAILED: EXIT_FAILED,
    SpineState.BLOCKED: EXIT_BLOCKED,
    SpineState.PAUSED: EXIT_PAUSED,
    SpineState.BUDGET_EXCEEDED: EXIT_BUDGET,
    SpineState.ESCALATED: EXIT_ESCALATED,
    SpineState.RUNNING: EXIT_FAILED,
}


class SpineStop(Exception):
    """Ends the run in ``state`` with ``reasons`` (raised inside a phase)."""

    def __init__(self, state: SpineState, reasons: list[str], message: str) -> None:
        super().__init__(message)
        self.state = state
        self.reasons = reasons
        self.message = message

    @classmethod
    def from_error(cls, exc: LifeOSError) -> SpineStop:
        """The stop a LifeOS error means: budget, escalation, or a failure."""
        state = SpineState.FAILED
        if exc.reason is ReasonCode.BUDGET_EXCEEDED:
            state = SpineState.BUDGET_EXCEEDED
        elif exc.reason is ReasonCode.ESCALATION_REQUIRED:
            state = SpineState.ESCALATED
        return cls(state, [exc.reason.value], str(exc))


class PhaseEnv:
    """Runs one phase attempt's side effects once each, through the run's journal.

    Keys are (run id, phase, attempt, call index), so the calls of a phase must come
    in the same order on a replay; a record made under other phase inputs (its digest
    differs) stops the run with NONDETERMINISM instead of being reused.
    """

    def __init__(
        self, journal: Journal, run_id: str, phase: str, attempt: int, inputs: Any
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.phase = phase
        self.attempt = attempt
        self.digest = sha256_hex({"phase": phase, "attempt": attempt, "inputs": inputs})
        self.calls = 0
        self.replayed_calls = 0
        self.current_key: str | None = None
        """While a call runs for the first time: its idempotency key (the same on every
        attempt, resumes included), which agent calls carry to their provider."""

    def once(
        self, call: Callable[[], Any], also: Callable[[Any], None] | None = None
    ) -> tuple[Any, bool]:
        """Run ``call`` unless its result is journaled; return (result, replayed).

        ``also`` runs with a first call's result in the same transaction as its record.
        """
        key = JournalKey(self.run_id, self.phase, self.attempt, self.calls)
        self.calls += 1
        record = self.journal.get(key)
        if record is not None:
            if record["step_digest"] != self.digest:
                raise SpineStop(
                    SpineState.FAILED,
                    [ReasonCode.NONDETERMINISM.value],
                    f"phase {self.phase} (attempt {self.attempt}) changed since it was "
                    f"recorded for run {self.run_id}",
                )
            self.replayed_calls += 1
            return copy_json(record["result"]), True
        # the phase's inputs are in the key: a resumed phase asked other questions
        # (another reviewer list, say) must not be answered from the earlier ones
        self.current_key = stable_uuid("lifeos.call", *map(str, key), self.digest)
        try:
            result = call()
        finally:
            self.current_key = None
        entry: JournalRecord = {"step_digest": self.digest, "result": copy_json(result)}
        transaction = getattr(self.journal, "transaction", None)
        if transaction is not None:
            with transaction():
                self.journal.put(key, entry)
                if also is not None:
                    also(result)
        else:
            self.journal.put(key, entry)
            if also is not None:
                also(result)
        return result, False

    def native_once(self, call: Callable[[], Any]) -> tuple[Any, bool]:
        """``once`` in the shape the native builder takes."""
        return self.once(call)
