"""The store conformance suite: the Store contract, run against every backend.

Only the contract's methods are used here — no SQL, no backend internals — so a new backend
(PostgreSQL) passes or fails the same tests as SQLite. Backends come from ``conftest.py``.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import io
import json
import re
import threading
import tokenize
import types
import typing
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lifeos.store.base as store_base
from lifeos.canonical import canonical_json
from lifeos.clock import Clock, FixedClock, iso
from lifeos.errors import LifeOSError
from lifeos.journal import Journal, JournalKey, JournalRecord
from lifeos.store import (
    TASK_STATUSES,
    ArtifactRecord,
    CheckpointRecord,
    ClaimRecord,
    LeaseLost,
    LedgerEntry,
    LedgerRow,
    RunRecord,
    SignedCheckpoint,
    Store,
    StoreError,
    TaskRecord,
    TimelineEvent,
)

GENESIS = "0" * 64
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TERMINAL_TASK_STATUSES = frozenset({"approved", "failed_terminal", "skipped"})


class _Backend(Protocol):
    name: str
    schema_version: int

    def open(self, location: Path, clock: Clock) -> Store: ...


class OpenStore(Protocol):
    """The ``store_factory`` fixture (see conftest.py)."""

    backend: _Backend

    def __call__(self, location: Path | None = None, clock: Clock | None = None) -> Store: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leaf_hash(entry: bytes) -> str:
    return hashlib.sha256(b"\x00" + entry).hexdigest()


def new_run(store: Store, run_id: str = "run-1") -> RunRecord:
    return store.create_run(run_id, "mission", "echo", description="a test run")


def checkpoint(run_id: str, step_index: int, **overrides: Any) -> CheckpointRecord:
    record = CheckpointRecord(
        checkpoint_id=f"{run_id}-cp-{step_index}",
        run_id=run_id,
        step_index=step_index,
        step_id=f"step-{step_index}",
        step_digest=sha256_hex(f"spec {step_index}".encode()),
        status="ok",
        state_hash=sha256_hex(f"state {step_index}".encode()),
        policy_hash=None,
        delta=[{"op": "set", "path": ["n"], "value": step_index}],
        info={},
        created_at="2026-01-01T00:00:00.000000Z",
    )
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def signed(tree_size: int) -> SignedCheckpoint:
    return SignedCheckpoint(
        tree_size=tree_size,
        root_hash=sha256_hex(str(tree_size).encode()),
        note=f"lifeos/abc\n{tree_size}\nroot\n\n— lifeos sig{tree_size}\n",
        created_at=f"2026-01-01T00:00:0{tree_size}.000000Z",
    )


# -- the protocol itself --------------------------------------------------------------


def test_store_is_a_store_and_a_journal(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store, Journal)


def test_schema_version_is_the_number_of_migrations(store_factory: OpenStore, store: Store) -> None:
    assert store.schema_version() == store_factory.backend.schema_version
    assert store.schema_version() >= 1


def test_store_error_is_a_lifeos_error() -> None:
    assert issubclass(StoreError, LifeOSError)


# -- runs ---------------------------------------------------------------------------------


def test_create_run_returns_a_running_run_with_defaults(store: Store) -> None:
    run = store.create_run("run-1", "mission", "echo")
    assert run["run_id"] == "run-1"
    assert run["kind"] == "mission"
    assert run["name"] == "echo"
    assert run["status"] == "running"
    assert run["previous_status"] is None
    assert run["description"] == ""
    assert run["config"] == {}
    assert run["priority"] is None
    assert run["max_cost_usd"] is None
    assert run["spent_cost_usd"] == 0
    assert run["max_loops"] is None
    assert run["loop_count"] == 0
    assert run["message_count"] == 0
    assert run["failure_reason"] is None
    assert run["completed_at"] is None
    assert run["failed_at"] is None
    assert ISO_UTC.match(run["created_at"])
    assert run["updated_at"] == run["created_at"]
    assert store.get_run("run-1") == run


def test_create_run_keeps_every_argument(store: Store) -> None:
    config = {"workflow": "wf", "params": {"n": 3, "tags": ["a", "b"]}, "policy_hash": None}
    run = store.create_run(
        "run-1",
        "workflow",
        "wf",
        description="does things",
        config=config,
        priority="P1",
        max_cost_usd=2.5,
        max_loops=4,
    )
    assert run["description"] == "does things"
    assert run["config"] == config
    assert run["priority"] == "P1"
    assert run["max_cost_usd"] == 2.5
    assert run["max_loops"] == 4
    assert store.get_run("run-1") == run


def test_create_run_refuses_an_existing_id(store: Store) -> None:
    first = new_run(store)
    with pytest.raises(StoreError):
        store.create_run("run-1", "workflow", "other")
    assert store.get_run("run-1") == first
    assert len(store.list_runs()) == 1


def test_get_run_of_an_unknown_id_is_none(store: Store) -> None:
    assert store.get_run("nope") is None


def test_update_run_status_moves_previous_status_and_timestamps(store: Store) -> None:
    created = new_run(store)

    paused = store.update_run("run-1", status="paused")
    assert paused["status"] == "paused"
    assert paused["previous_status"] == "running"
    assert paused["completed_at"] is None
    assert paused["failed_at"] is None
    assert paused["updated_at"] > created["updated_at"]

    completed = store.update_run("run-1", status="completed")
    assert completed["status"] == "completed"
    assert completed["previous_status"] == "paused"
    assert completed["completed_at"] is not None
    assert ISO_UTC.match(completed["completed_at"])
    assert completed["failed_at"] is None
    assert completed["created_at"] == created["created_at"]
    assert store.get_run("run-1") == completed


def test_update_run_to_failed_sets_failed_at(store: Store) -> None:
    new_run(store)
    failed = store.update_run("run-1", status="failed", failure_reason="TESTS_FAILED")
    assert failed["status"] == "failed"
    assert failed["previous_status"] == "running"
    assert failed["failure_reason"] == "TESTS_FAILED"
    assert failed["failed_at"] is not None
    assert ISO_UTC.match(failed["failed_at"])
    assert failed["completed_at"] is None


def test_update_run_changes_counters_cost_and_config(store: Store) -> None:
    new_run(store)
    run = store.update_run(
        "run-1",
        spent_cost_usd=0.75,
        loop_count=2,
        message_count=9,
        config={"workflow": "x"},
        description="changed",
    )
    assert run["spent_cost_usd"] == 0.75
    assert run["loop_count"] == 2
    assert run["message_count"] == 9
    assert run["config"] == {"workflow": "x"}
    assert run["description"] == "changed"
    assert run["status"] == "running"
    assert run["previous_status"] is None
    assert store.get_run("run-1") == run


@pytest.mark.parametrize(
    "field", ["kind", "created_at", "completed_at", "previous_status", "nonsense"]
)
def test_update_run_refuses_unknown_fields(store: Store, field: str) -> None:
    before = new_run(store)
    with pytest.raises(StoreError):
        store.update_run("run-1", **{field: "x"})
    assert store.get_run("run-1") == before


def test_update_run_of_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.update_run("nope", status="completed")


def test_list_runs_is_newest_first_and_limited(store: Store) -> None:
    for run_id in ("b", "c", "a", "d"):
        store.create_run(run_id, "mission", "echo")
    assert [r["run_id"] for r in store.list_runs()] == ["d", "a", "c", "b"]
    assert [r["run_id"] for r in store.list_runs(limit=2)] == ["d", "a"]
    assert store.list_runs()[0] == store.get_run("d")


def test_list_runs_is_newest_first_when_timestamps_tie(store_factory: OpenStore) -> None:
    store = store_factory(clock=FixedClock(START, dt.timedelta(0)))
    for run_id in ("a", "b", "c"):
        store.create_run(run_id, "mission", "echo")
    assert [r["run_id"] for r in store.list_runs()] == ["c", "b", "a"]


# -- tasks --------------------------------------------------------------------------------


def test_add_task_is_pending(store: Store) -> None:
    new_run(store)
    task = store.add_task("run-1", "t1", "do it", task_order=3, context_files=["a.py", "b.md"])
    assert task["task_id"] == "t1"
    assert task["run_id"] == "run-1"
    assert task["task_order"] == 3
    assert task["description"] == "do it"
    assert task["context_files"] == ["a.py", "b.md"]
    assert task["required_artifact_ids"] == []
    assert task["result_artifact_ids"] == []
    assert task["status"] == "pending"
    assert task["repair_attempt"] == 0
    assert task["consumed_tokens"] == 0
    assert task["started_at"] is None
    assert task["completed_at"] is None
    assert task["locked_at"] is None
    assert task["locked_by"] is None
    assert ISO_UTC.match(task["created_at"])
    assert store.list_tasks("run-1") == [task]


def test_add_task_refuses_a_duplicate_and_an_unknown_run(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    with pytest.raises(StoreError):
        store.add_task("run-1", "t1", "again")
    with pytest.raises(StoreError):
        store.add_task("no-such-run", "t1", "orphan")
    assert [t["description"] for t in store.list_tasks("run-1")] == ["do it"]
    assert store.list_tasks("no-such-run") == []


def test_list_tasks_is_in_task_order(store: Store) -> None:
    new_run(store)
    new_run(store, "run-2")
    store.add_task("run-1", "c", "third", task_order=2)
    store.add_task("run-1", "a", "first", task_order=0)
    store.add_task("run-1", "b", "second", task_order=1)
    store.add_task("run-2", "z", "elsewhere", task_order=0)
    assert [t["task_id"] for t in store.list_tasks("run-1")] == ["a", "b", "c"]
    assert [t["task_id"] for t in store.list_tasks("run-2")] == ["z"]


def test_update_task_walks_through_every_status(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    started_at: str | None = None
    completed = False
    for status in TASK_STATUSES:
        task = store.update_task("run-1", "t1", status=status)
        assert task["status"] == status
        if status == "executing":
            started_at = task["started_at"]
            assert started_at is not None
        assert task["started_at"] == started_at
        completed = completed or status in TERMINAL_TASK_STATUSES
        assert (task["completed_at"] is not None) == completed
        assert store.list_tasks("run-1") == [task]


@pytest.mark.parametrize("status", TASK_STATUSES)
def test_update_task_to_each_status_from_pending(store: Store, status: str) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    task = store.update_task("run-1", "t1", status=status)
    assert task["status"] == status
    assert (task["started_at"] is not None) == (status == "executing")
    assert (task["completed_at"] is not None) == (status in TERMINAL_TASK_STATUSES)


def test_started_at_is_kept_on_a_second_execution(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    first = store.update_task("run-1", "t1", status="executing")
    store.update_task("run-1", "t1", status="repair_retry")
    again = store.update_task("run-1", "t1", status="executing")
    assert again["started_at"] == first["started_at"]


@pytest.mark.parametrize("status", ["done", "PENDING", "", "completed"])
def test_update_task_refuses_an_invalid_status(store: Store, status: str) -> None:
    new_run(store)
    before = store.add_task("run-1", "t1", "do it")
    with pytest.raises(StoreError):
        store.update_task("run-1", "t1", status=status)
    assert store.list_tasks("run-1") == [before]


@pytest.mark.parametrize(
    "field", ["task_order", "started_at", "completed_at", "locked_at", "nonsense"]
)
def test_update_task_refuses_unknown_fields(store: Store, field: str) -> None:
    new_run(store)
    before = store.add_task("run-1", "t1", "do it")
    with pytest.raises(StoreError):
        store.update_task("run-1", "t1", **{field: "x"})
    assert store.list_tasks("run-1") == [before]


def test_update_task_of_an_unknown_task_is_refused(store: Store) -> None:
    new_run(store)
    with pytest.raises(StoreError):
        store.update_task("run-1", "nope", status="executing")


def test_update_task_repair_attempt_tokens_and_artifacts(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    task = store.update_task(
        "run-1",
        "t1",
        repair_attempt=2,
        consumed_tokens=12345,
        result_artifact_ids=["a1", "a2"],
        required_artifact_ids=["r1"],
    )
    assert task["repair_attempt"] == 2
    assert task["consumed_tokens"] == 12345
    assert task["result_artifact_ids"] == ["a1", "a2"]
    assert task["required_artifact_ids"] == ["r1"]
    assert task["status"] == "pending"
    task = store.update_task("run-1", "t1", repair_attempt=3, consumed_tokens=20000)
    assert task["repair_attempt"] == 3
    assert task["consumed_tokens"] == 20000
    assert task["result_artifact_ids"] == ["a1", "a2"]
    assert store.list_tasks("run-1") == [task]


def test_claim_task_first_worker_wins(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "do it")
    assert store.claim_task("run-1", "t1", "worker-a") is True
    assert store.claim_task("run-1", "t1", "worker-b") is False
    assert store.claim_task("run-1", "t1", "worker-a") is True
    [task] = store.list_tasks("run-1")
    assert task["locked_by"] == "worker-a"
    assert task["locked_at"] is not None
    assert ISO_UTC.match(task["locked_at"])


def test_claims_are_per_task(store: Store) -> None:
    new_run(store)
    store.add_task("run-1", "t1", "one")
    store.add_task("run-1", "t2", "two", task_order=1)
    assert store.claim_task("run-1", "t1", "worker-a") is True
    assert store.claim_task("run-1", "t2", "worker-b") is True
    assert [t["locked_by"] for t in store.list_tasks("run-1")] == ["worker-a", "worker-b"]


# -- claims (leases) --------------------------------------------------------------------------


class ManualClock:
    """A clock that stands still until the test moves it (shared by every owner's store)."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.moment = start

    def now(self) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


def at(seconds: float) -> str:
    """The stored text of START + ``seconds``."""
    return iso(START + dt.timedelta(seconds=seconds))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def leased(store_factory: OpenStore, clock: ManualClock) -> Store:
    """A store on ``clock`` holding run-1 with the tasks t1 and t2, nobody's yet."""
    store = store_factory(clock=clock)
    new_run(store)
    store.add_task("run-1", "t1", "one")
    store.add_task("run-1", "t2", "two", task_order=1)
    return store


def test_a_run_lease_holds_until_it_expires_then_another_owner_takes_it(
    leased: Store, clock: ManualClock
) -> None:
    assert leased.get_claim("run-1") is None
    assert leased.claim_run("run-1", "worker-a", 30) is True
    held = leased.get_claim("run-1")
    assert held == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-a", claimed_at=at(0), expires_at=at(30)
    )
    _assert_record(held, ClaimRecord)

    clock.advance(29.999999)
    assert leased.claim_run("run-1", "worker-b", 30) is False
    assert leased.get_claim("run-1") == held

    clock.advance(0.000001)  # the expiry instant itself is past the lease
    assert leased.get_claim("run-1") is None
    assert leased.claim_run("run-1", "worker-b", 30) is True
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-b", claimed_at=at(30), expires_at=at(60)
    )
    # The first owner lost it: it can neither renew nor release it.
    assert leased.renew_claim("run-1", "worker-a", 30) is False
    assert leased.release_claim("run-1", "worker-a") is False
    assert leased.get_claim("run-1") is not None
    assert leased.get_claim("run-1")["owner"] == "worker-b"  # type: ignore[index]


def test_claiming_again_extends_the_lease_and_keeps_when_it_was_taken(
    leased: Store, clock: ManualClock
) -> None:
    assert leased.claim_run("run-1", "worker-a", 10) is True
    clock.advance(8)
    assert leased.claim_run("run-1", "worker-a", 10) is True
    clock.advance(8)  # 16 s after the first claim: past the first lease, within the second
    assert leased.claim_run("run-1", "worker-b", 10) is False
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-a", claimed_at=at(0), expires_at=at(18)
    )


def test_renewing_extends_only_the_holders_lease(leased: Store, clock: ManualClock) -> None:
    assert leased.renew_claim("run-1", "worker-a", 10) is False  # never claimed
    assert leased.claim_run("run-1", "worker-a", 10) is True
    clock.advance(9)
    assert leased.renew_claim("run-1", "worker-b", 10) is False
    assert leased.renew_claim("run-1", "worker-a", 10) is True
    clock.advance(9)
    assert leased.claim_run("run-1", "worker-b", 10) is False
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-a", claimed_at=at(0), expires_at=at(19)
    )


def test_an_expired_lease_nobody_took_is_still_the_holders_to_renew(
    leased: Store, clock: ManualClock
) -> None:
    assert leased.claim_run("run-1", "worker-a", 10) is True
    clock.advance(60)
    assert leased.get_claim("run-1") is None
    assert leased.renew_claim("run-1", "worker-a", 10) is True
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-a", claimed_at=at(0), expires_at=at(70)
    )
    assert leased.claim_run("run-1", "worker-b", 10) is False


def test_releasing_frees_the_run_at_once(leased: Store, clock: ManualClock) -> None:
    assert leased.claim_run("run-1", "worker-a", 3600) is True
    assert leased.release_claim("run-1", "worker-b") is False
    assert leased.get_claim("run-1") is not None
    assert leased.release_claim("run-1", "worker-a") is True
    assert leased.get_claim("run-1") is None
    assert leased.release_claim("run-1", "worker-a") is False  # nothing left to release
    assert leased.renew_claim("run-1", "worker-a", 10) is False
    assert leased.claim_run("run-1", "worker-b", 10) is True
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-b", claimed_at=at(0), expires_at=at(10)
    )


def test_a_claim_is_not_a_change_to_the_run(leased: Store, clock: ManualClock) -> None:
    before = leased.get_run("run-1")
    clock.advance(5)
    assert leased.claim_run("run-1", "worker-a", 10) is True
    assert leased.renew_claim("run-1", "worker-a", 10) is True
    assert leased.get_run("run-1") == before
    assert leased.list_runs() == [before]
    assert leased.release_claim("run-1", "worker-a") is True
    assert leased.get_run("run-1") == before


KEY = JournalKey("run-1", "build", 0, 0)


def _writes(store: Store) -> list[Any]:
    """What the fencing tests write: a run change, a journal entry, a ledger entry."""
    return [
        store.update_run("run-1", status="running", config={"phase": "build"}),
        store.put(KEY, JournalRecord(step_digest="d", result="r")),
        store.append_ledger("spine.phase", "run-1", {"phase": "build"}),
    ]


def test_a_fenced_store_writes_while_its_claim_holds(leased: Store, clock: ManualClock) -> None:
    assert leased.claim_run("run-1", "worker-a", 10) is True
    with leased.fenced("run-1", "worker-a"):
        with leased.transaction():  # nested transactions check once, at the outermost
            leased.add_task("run-1", "t3", "three", task_order=2)
            clock.advance(5)
            assert leased.renew_claim("run-1", "worker-a", 10) is True
        clock.advance(9)  # within the renewed lease
        _writes(leased)
    assert leased.journal_keys("run-1") == [KEY]
    assert leased.ledger_size() == 1


def test_a_fenced_write_after_the_claim_passed_on_writes_nothing(
    store_factory: OpenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Worker A stalls past its lease; worker B (its own connection) takes the run. A,
    awake, is refused every write, with LEASE_LOST, and nothing of it lands."""
    location = tmp_path / "shared"
    stalled, taker = store_factory(location, clock), store_factory(location, clock)
    new_run(stalled)
    assert stalled.claim_run("run-1", "worker-a", 10) is True
    before = (stalled.get_run("run-1"), stalled.ledger_size())
    with stalled.fenced("run-1", "worker-a"):
        clock.advance(11)
        assert taker.claim_run("run-1", "worker-b", 10) is True
        for write in (
            lambda: stalled.update_run("run-1", status="failed"),
            lambda: stalled.put(KEY, JournalRecord(step_digest="d", result="r")),
            lambda: stalled.append_ledger("spine.phase", "run-1", {"phase": "build"}),
            lambda: stalled.add_task("run-1", "t9", "nine"),
        ):
            with pytest.raises(LeaseLost) as lost:
                write()
            assert lost.value.reason.value == "LEASE_LOST"
            assert "worker-b" in lost.value.message
    assert (taker.get_run("run-1"), taker.ledger_size()) == before
    assert taker.journal_keys("run-1") == [] and taker.list_tasks("run-1") == []
    # Unfenced, the store writes again (the fence is the driver's, not the store's).
    assert stalled.update_run("run-1", status="failed")["status"] == "failed"


@pytest.mark.parametrize("how", ["expired", "released", "never claimed"])
def test_a_fenced_store_without_a_claim_in_force_writes_nothing(
    leased: Store, clock: ManualClock, how: str
) -> None:
    if how != "never claimed":
        assert leased.claim_run("run-1", "worker-a", 10) is True
    if how == "released":
        assert leased.release_claim("run-1", "worker-a") is True
    with leased.fenced("run-1", "worker-a"):
        if how == "expired":
            clock.advance(10)  # a lease that ends now is over
        with pytest.raises(LeaseLost):
            _writes(leased)
        with pytest.raises(LeaseLost), leased.transaction():
            pass
    assert leased.ledger_size() == 0 and leased.journal_keys("run-1") == []


def test_fences_do_not_nest(leased: Store) -> None:
    with leased.fenced("run-1", "worker-a"):
        with pytest.raises(StoreError), leased.fenced("run-1", "worker-b"):
            pass


def test_claims_of_unknown_runs_and_tasks_are_refused(leased: Store) -> None:
    with pytest.raises(StoreError):
        leased.claim_run("nope", "worker-a", 10)
    with pytest.raises(StoreError):
        leased.renew_claim("nope", "worker-a", 10)
    with pytest.raises(StoreError):
        leased.release_claim("nope", "worker-a")
    with pytest.raises(StoreError):
        leased.claim_task("run-1", "nope", "worker-a", 10)
    with pytest.raises(StoreError):
        leased.renew_claim("run-1", "worker-a", 10, task_id="nope")
    with pytest.raises(StoreError):
        leased.release_claim("run-1", "worker-a", task_id="nope")
    assert leased.get_claim("nope") is None
    assert leased.get_claim("run-1", "nope") is None
    assert leased.get_run("nope") is None


@pytest.mark.parametrize("ttl_s", [0, -1, float("nan"), float("inf"), 10**12, True, "10"])
def test_a_lease_needs_a_positive_finite_ttl(leased: Store, ttl_s: Any) -> None:
    with pytest.raises(StoreError):
        leased.claim_run("run-1", "worker-a", ttl_s)
    with pytest.raises(StoreError):
        leased.claim_task("run-1", "t1", "worker-a", ttl_s)
    assert leased.get_claim("run-1") is None
    assert leased.get_claim("run-1", "t1") is None
    assert leased.claim_run("run-1", "worker-a", 10) is True
    with pytest.raises(StoreError):
        leased.renew_claim("run-1", "worker-a", ttl_s)
    assert leased.get_claim("run-1") == ClaimRecord(
        run_id="run-1", task_id=None, owner="worker-a", claimed_at=at(0), expires_at=at(10)
    )


def test_a_task_lease_expires_and_names_its_holder(leased: Store, clock: ManualClock) -> None:
    assert leased.claim_task("run-1", "t1", "worker-a", ttl_s=20) is True
    assert leased.get_claim("run-1", "t1") == ClaimRecord(
        run_id="run-1", task_id="t1", owner="worker-a", claimed_at=at(0), expires_at=at(20)
    )
    clock.advance(19)
    assert leased.claim_task("run-1", "t1", "worker-b", ttl_s=20) is False
    assert leased.claim_task("run-1", "t1", "worker-b") is False
    clock.advance(1)
    assert leased.get_claim("run-1", "t1") is None
    assert leased.claim_task("run-1", "t1", "worker-b", ttl_s=20) is True
    t1, t2 = leased.list_tasks("run-1")
    assert (t1["locked_by"], t1["locked_at"]) == ("worker-b", at(20))
    assert (t2["locked_by"], t2["locked_at"]) == (None, None)
    assert leased.renew_claim("run-1", "worker-a", 20, task_id="t1") is False
    assert leased.renew_claim("run-1", "worker-b", 30, task_id="t1") is True
    assert leased.get_claim("run-1", "t1") == ClaimRecord(
        run_id="run-1", task_id="t1", owner="worker-b", claimed_at=at(20), expires_at=at(50)
    )


def test_a_task_lock_without_a_ttl_holds_until_released(leased: Store, clock: ManualClock) -> None:
    assert leased.claim_task("run-1", "t1", "worker-a") is True
    clock.advance(10 * 365 * 86400)
    assert leased.claim_task("run-1", "t1", "worker-b", ttl_s=10) is False
    assert leased.get_claim("run-1", "t1") == ClaimRecord(
        run_id="run-1", task_id="t1", owner="worker-a", claimed_at=at(0), expires_at=None
    )
    assert leased.release_claim("run-1", "worker-b", task_id="t1") is False
    assert leased.release_claim("run-1", "worker-a", task_id="t1") is True
    [t1, _] = leased.list_tasks("run-1")
    assert (t1["locked_by"], t1["locked_at"]) == (None, None)
    assert leased.get_claim("run-1", "t1") is None
    assert leased.claim_task("run-1", "t1", "worker-b") is True


def test_run_and_task_claims_are_independent(leased: Store) -> None:
    assert leased.claim_run("run-1", "worker-a", 10) is True
    assert leased.claim_task("run-1", "t1", "worker-b", ttl_s=10) is True
    assert leased.claim_task("run-1", "t2", "worker-c", ttl_s=10) is True
    assert leased.release_claim("run-1", "worker-b") is False  # b holds t1, not the run
    assert leased.release_claim("run-1", "worker-a", task_id="t1") is False
    owners = [leased.get_claim("run-1", task) for task in (None, "t1", "t2")]
    assert [c["owner"] if c else None for c in owners] == ["worker-a", "worker-b", "worker-c"]


def test_a_lease_is_seen_by_every_store_on_the_location(
    store_factory: OpenStore, clock: ManualClock, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    one = store_factory(location, clock)
    new_run(one)
    two = store_factory(location, clock)
    assert one.claim_run("run-1", "worker-a", 10) is True
    assert two.claim_run("run-1", "worker-b", 10) is False
    assert two.get_claim("run-1") == one.get_claim("run-1")
    clock.advance(10)
    assert two.claim_run("run-1", "worker-b", 10) is True
    assert one.renew_claim("run-1", "worker-a", 10) is False


def test_a_claim_in_a_rolled_back_transaction_is_not_taken(leased: Store) -> None:
    with pytest.raises(Boom), leased.transaction():
        assert leased.claim_run("run-1", "worker-a", 10) is True
        assert leased.claim_task("run-1", "t1", "worker-a", ttl_s=10) is True
        raise Boom
    assert leased.get_claim("run-1") is None
    assert leased.get_claim("run-1", "t1") is None
    assert leased.claim_run("run-1", "worker-b", 10) is True


RACE_ROUNDS = 12
RACE_OWNERS = 4


def _race(
    store_factory: OpenStore, location: Path, claim: Callable[[Store, int, str], bool]
) -> list[list[str]]:
    """Every owner, on a store of its own, claims the same thing in each round at once.

    Returns the winners of each round.
    """
    barrier = threading.Barrier(RACE_OWNERS)
    won: list[list[str]] = [[] for _ in range(RACE_ROUNDS)]
    errors: list[BaseException] = []

    def owner(name: str) -> None:
        try:
            store = store_factory.backend.open(location, FixedClock(START))
            try:
                for round_ in range(RACE_ROUNDS):
                    barrier.wait(timeout=60)
                    if claim(store, round_, name):
                        won[round_].append(name)
            finally:
                store.close()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=owner, args=(f"worker-{i}",)) for i in range(RACE_OWNERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return won


def test_of_owners_claiming_a_run_at_once_exactly_one_wins(
    store_factory: OpenStore, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    setup = store_factory(location)
    for round_ in range(RACE_ROUNDS):
        new_run(setup, f"run-{round_}")
    won = _race(store_factory, location, lambda s, r, name: s.claim_run(f"run-{r}", name, 600))
    assert [len(winners) for winners in won] == [1] * RACE_ROUNDS, won
    for round_, [winner] in enumerate(won):
        claim = setup.get_claim(f"run-{round_}")
        assert claim is not None and claim["owner"] == winner


def test_of_owners_claiming_a_task_at_once_exactly_one_wins(
    store_factory: OpenStore, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    setup = store_factory(location)
    new_run(setup)
    for round_ in range(RACE_ROUNDS):
        setup.add_task("run-1", f"t{round_}", "race", task_order=round_)
    won = _race(
        store_factory,
        location,
        lambda s, r, name: s.claim_task("run-1", f"t{r}", name, ttl_s=600),
    )
    assert [len(winners) for winners in won] == [1] * RACE_ROUNDS, won
    assert [t["locked_by"] for t in setup.list_tasks("run-1")] == [w[0] for w in won]


# -- artifacts ------------------------------------------------------------------------------


def test_put_artifact_is_content_addressed(store: Store) -> None:
    content = b"hello\x00world\n"
    record = store.put_artifact(
        "run-1",
        "evidence/report.json",
        content,
        kind="evidence",
        mime_type="application/json",
        metadata={"phase": "review"},
    )
    assert record["checksum"] == sha256_hex(content)
    assert record["size_bytes"] == len(content)
    assert record["version_number"] == 1
    assert record["supersedes_id"] is None
    assert record["is_deleted"] is False
    assert record["kind"] == "evidence"
    assert record["mime_type"] == "application/json"
    assert record["metadata"] == {"phase": "review"}
    assert record["run_id"] == "run-1"
    assert record["file_path"] == "evidence/report.json"
    assert store.get_artifact(record["artifact_id"]) == (record, content)


def test_put_artifact_defaults(store: Store) -> None:
    record = store.put_artifact("run-1", "a.bin", b"")
    assert record["kind"] == "file"
    assert record["mime_type"] == "application/octet-stream"
    assert record["metadata"] == {}
    assert record["checksum"] == sha256_hex(b"")
    assert record["size_bytes"] == 0
    assert store.get_artifact(record["artifact_id"]) == (record, b"")


def test_identical_content_returns_the_same_record(store: Store) -> None:
    first = store.put_artifact("run-1", "a.txt", b"same")
    again = store.put_artifact("run-1", "a.txt", b"same")
    assert again == first
    assert store.list_artifacts("run-1") == [first]


def test_new_content_is_a_new_version_superseding_the_last(store: Store) -> None:
    v1 = store.put_artifact("run-1", "a.txt", b"one")
    v2 = store.put_artifact("run-1", "a.txt", b"two")
    assert v2["version_number"] == 2
    assert v2["supersedes_id"] == v1["artifact_id"]
    assert v2["artifact_id"] != v1["artifact_id"]
    assert v2["checksum"] == sha256_hex(b"two")
    v3 = store.put_artifact("run-1", "a.txt", b"three")
    assert v3["version_number"] == 3
    assert v3["supersedes_id"] == v2["artifact_id"]
    assert store.put_artifact("run-1", "a.txt", b"three") == v3
    assert store.list_artifacts("run-1") == [v1, v2, v3]
    assert store.get_artifact(v1["artifact_id"]) == (v1, b"one")
    assert store.get_artifact(v2["artifact_id"]) == (v2, b"two")


def test_versions_are_per_run_and_path(store: Store) -> None:
    a = store.put_artifact("run-1", "a.txt", b"x")
    b = store.put_artifact("run-1", "b.txt", b"x")
    other = store.put_artifact("run-2", "a.txt", b"x")
    assert [r["version_number"] for r in (a, b, other)] == [1, 1, 1]
    assert len({a["artifact_id"], b["artifact_id"], other["artifact_id"]}) == 3
    assert store.list_artifacts("run-1") == [a, b]
    assert store.list_artifacts("run-2") == [other]


def test_list_artifacts_is_by_path_then_version(store: Store) -> None:
    z1 = store.put_artifact("run-1", "z.txt", b"1")
    a1 = store.put_artifact("run-1", "a.txt", b"1")
    z2 = store.put_artifact("run-1", "z.txt", b"2")
    a2 = store.put_artifact("run-1", "a.txt", b"2")
    assert store.list_artifacts("run-1") == [a1, a2, z1, z2]


def test_text_is_ordered_by_code_point_whatever_the_locale(store: Store) -> None:
    # A linguistic collation (a server's en_US or ICU locale) orders these differently.
    names = ["b.txt", "B.txt", "_x", "a-b", "a.txt", "ab", "A", "é", "Z"]
    records = {name: store.put_artifact("run-1", name, name.encode()) for name in names}
    assert [r["file_path"] for r in store.list_artifacts("run-1")] == sorted(names)
    new_run(store)
    for name in names:
        store.add_task("run-1", name, "same order")
    assert [t["task_id"] for t in store.list_tasks("run-1")] == sorted(names)
    assert store.list_artifacts("run-1") == [records[name] for name in sorted(names)]


def test_soft_delete_hides_but_keeps_the_content(store: Store) -> None:
    keep = store.put_artifact("run-1", "keep.txt", b"keep")
    gone = store.put_artifact("run-1", "gone.txt", b"gone")
    store.delete_artifact(gone["artifact_id"])
    assert store.list_artifacts("run-1") == [keep]
    listed = store.list_artifacts("run-1", include_deleted=True)
    assert [r["artifact_id"] for r in listed] == [gone["artifact_id"], keep["artifact_id"]]
    assert listed[0]["is_deleted"] is True
    got = store.get_artifact(gone["artifact_id"])
    assert got is not None
    record, content = got
    assert content == b"gone"
    assert record["is_deleted"] is True
    assert record["checksum"] == sha256_hex(b"gone")


def test_delete_unknown_artifact_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.delete_artifact("no-such-artifact")


def test_get_unknown_artifact_is_none(store: Store) -> None:
    assert store.get_artifact("no-such-artifact") is None


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=st.binary(max_size=2048), second=st.binary(max_size=2048))
def test_artifact_content_round_trips(store: Store, first: bytes, second: bytes) -> None:
    path = f"p/{sha256_hex(first + b'|' + second)}.bin"
    one = store.put_artifact("run-h", path, first)
    assert one["checksum"] == sha256_hex(first)
    assert one["size_bytes"] == len(first)
    assert store.get_artifact(one["artifact_id"]) == (one, first)
    two = store.put_artifact("run-h", path, second)
    if second == first:
        assert two == one
    else:
        assert two["version_number"] == one["version_number"] + 1
        assert two["supersedes_id"] == one["artifact_id"]
        assert store.get_artifact(two["artifact_id"]) == (two, second)


# -- timeline ---------------------------------------------------------------------------------


def _record_timeline(store: Store) -> list[TimelineEvent]:
    return [
        store.add_event("run-1", None, "run.started", {"n": 1}),
        store.add_event("run-1", "t1", "task.started", {}),
        store.add_event("run-1", "t1", "task.note", {"text": "x", "list": [1, 2]}),
        store.add_event("run-2", None, "run.started", {"n": 2}),
        store.add_event("run-1", "t1", "task.note", {"text": "y"}),
    ]


def test_add_event_returns_what_list_events_returns(store: Store) -> None:
    events = _record_timeline(store)
    assert store.list_events() == events
    first = events[0]
    assert first["run_id"] == "run-1"
    assert first["task_id"] is None
    assert first["event_type"] == "run.started"
    assert first["event"] == {"n": 1}
    assert ISO_UTC.match(first["created_at"])
    assert events[1]["task_id"] == "t1"


def test_event_ids_are_uuid5(store: Store) -> None:
    for event in _record_timeline(store):
        assert uuid.UUID(event["event_id"]).version == 5


def test_event_ids_are_deterministic(store_factory: OpenStore) -> None:
    one = store_factory(clock=FixedClock(START))
    two = store_factory(clock=FixedClock(START))
    events_one = _record_timeline(one)
    events_two = _record_timeline(two)
    assert [e["event_id"] for e in events_one] == [e["event_id"] for e in events_two]
    assert events_one == events_two
    assert one.list_events() == two.list_events()
    assert len({e["event_id"] for e in events_one}) == len(events_one)


def test_event_ids_depend_on_the_time(store_factory: OpenStore) -> None:
    one = store_factory(clock=FixedClock(START))
    later = store_factory(clock=FixedClock(START + dt.timedelta(days=1)))
    ids_one = {e["event_id"] for e in _record_timeline(one)}
    ids_later = {e["event_id"] for e in _record_timeline(later)}
    assert ids_one.isdisjoint(ids_later)


def test_same_type_events_at_the_same_instant_get_distinct_ids(
    store_factory: OpenStore,
) -> None:
    store = store_factory(clock=FixedClock(START, dt.timedelta(0)))
    events = [store.add_event("run-1", "t1", "task.note", {"i": i}) for i in range(5)]
    events += [store.add_event("run-1", None, "task.note", {"i": i}) for i in range(3)]
    assert len({e["created_at"] for e in events}) == 1
    assert len({e["event_id"] for e in events}) == len(events)
    assert store.list_events() == events


def test_list_events_filters_by_run(store: Store) -> None:
    events = _record_timeline(store)
    assert store.list_events(run_id="run-1") == [events[i] for i in (0, 1, 2, 4)]
    assert store.list_events(run_id="run-2") == [events[3]]
    assert store.list_events(run_id="run-3") == []


def test_list_events_filters_by_time_window(store: Store) -> None:
    events = _record_timeline(store)
    times = [e["created_at"] for e in events]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert store.list_events(since=times[1]) == events[1:]
    assert store.list_events(until=times[3]) == events[:3]
    assert store.list_events(since=times[1], until=times[3]) == events[1:3]
    assert store.list_events(since=times[2], until=times[2]) == []
    assert store.list_events(run_id="run-1", since=times[1], until=times[4]) == events[1:3]
    assert store.list_events(since="2999-01-01T00:00:00.000000Z") == []
    assert store.list_events(until="2000-01-01T00:00:00.000000Z") == []


# -- journal --------------------------------------------------------------------------------


def test_journal_get_and_put(store: Store) -> None:
    key = JournalKey("run-1", "build", 0, 0)
    assert store.get(key) is None
    record = JournalRecord(step_digest="d" * 64, result={"ok": True, "files": ["a", "b"], "n": 2})
    store.put(key, record)
    assert store.get(key) == record
    assert store.get(JournalKey("run-1", "build", 0, 1)) is None
    assert store.get(JournalKey("run-1", "build", 1, 0)) is None
    assert store.get(JournalKey("run-2", "build", 0, 0)) is None


@pytest.mark.parametrize("result", [None, 0, 1.5, "text", [1, "two", None], {"a": {"b": []}}])
def test_journal_results_of_every_json_type_round_trip(store: Store, result: Any) -> None:
    key = JournalKey("run-1", "s", 0, 0)
    store.put(key, JournalRecord(step_digest="d", result=result))
    assert store.get(key) == JournalRecord(step_digest="d", result=result)


def test_journal_put_twice_is_refused(store: Store) -> None:
    key = JournalKey("run-1", "build", 0, 0)
    store.put(key, JournalRecord(step_digest="d1", result=1))
    with pytest.raises(StoreError):
        store.put(key, JournalRecord(step_digest="d2", result=2))
    assert store.get(key) == JournalRecord(step_digest="d1", result=1)


def test_journal_keys_are_in_recorded_order(store: Store) -> None:
    keys = [
        JournalKey("run-1", "hydrate", 0, 0),
        JournalKey("run-1", "design", 0, 0),
        JournalKey("run-1", "design", 0, 1),
        JournalKey("run-1", "build", 0, 0),
        JournalKey("run-1", "build", 1, 0),
        JournalKey("run-1", "build", 1, 1),
    ]
    for i, key in enumerate(keys):
        store.put(key, JournalRecord(step_digest="d", result=i))
    store.put(JournalKey("run-2", "other", 0, 0), JournalRecord(step_digest="d", result=None))
    got = store.journal_keys("run-1")
    assert got == keys
    assert all(isinstance(k, JournalKey) for k in got)
    assert store.journal_keys("run-2") == [JournalKey("run-2", "other", 0, 0)]
    assert store.journal_keys("run-3") == []


def test_journal_keys_are_in_recorded_order_when_timestamps_tie(
    store_factory: OpenStore,
) -> None:
    store = store_factory(clock=FixedClock(START, dt.timedelta(0)))
    keys = [JournalKey("run-1", "zeta", 0, 0), JournalKey("run-1", "alpha", 0, 0)]
    for key in keys:
        store.put(key, JournalRecord(step_digest="d", result=None))
    assert store.journal_keys("run-1") == keys


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_round_trip_in_step_order(store: Store) -> None:
    cps = [
        checkpoint(
            "run-1",
            2,
            status="paused",
            policy_hash="p" * 64,
            delta=[{"op": "add", "path": ["a", 0], "value": {"x": [1, 2.5, None, True]}}],
            info={"decision": "approve", "reason": None, "by": "alice"},
        ),
        checkpoint("run-1", 0),
        checkpoint("run-1", 1, status="failed", info={"reason": "STEP_FAILED", "message": "é"}),
        checkpoint("run-2", 0),
    ]
    for cp in cps:
        store.put_checkpoint(cp)
    assert store.list_checkpoints("run-1") == [cps[1], cps[2], cps[0]]
    assert store.list_checkpoints("run-2") == [cps[3]]
    assert store.list_checkpoints("run-3") == []
    for cp in cps:
        assert store.get_checkpoint(cp["checkpoint_id"]) == cp


def test_get_unknown_checkpoint_is_none(store: Store) -> None:
    assert store.get_checkpoint("nope") is None


def test_checkpoint_id_is_unique(store: Store) -> None:
    store.put_checkpoint(checkpoint("run-1", 0))
    with pytest.raises(StoreError):
        store.put_checkpoint(checkpoint("run-1", 1, checkpoint_id="run-1-cp-0"))
    assert store.list_checkpoints("run-1") == [checkpoint("run-1", 0)]


# -- ledger ---------------------------------------------------------------------------------


def test_append_ledger_chains_from_genesis(store: Store) -> None:
    appended = [
        store.append_ledger("run.started", "run-1", {"n": 0}),
        store.append_ledger("budget.changed", None, {"cap": 2.5}),
        store.append_ledger("run.finished", "run-1", {"status": "completed", "list": [1, "x"]}),
    ]
    previous = GENESIS
    for seq, (entry, row) in enumerate(appended):
        assert entry["seq"] == seq
        assert row["seq"] == seq
        assert entry["prev_hash"] == previous
        assert ISO_UTC.match(entry["ts"])
        assert type(row["entry"]) is bytes
        assert row["entry"] == canonical_json(entry)
        assert row["leaf_hash"] == leaf_hash(row["entry"])
        assert json.loads(row["entry"]) == entry
        previous = row["leaf_hash"]
    first, _ = appended[0]
    assert first == LedgerEntry(
        seq=0,
        ts=first["ts"],
        type="run.started",
        run_id="run-1",
        payload={"n": 0},
        prev_hash=GENESIS,
    )
    assert appended[1][0]["run_id"] is None


def test_ledger_rows_and_size(store: Store) -> None:
    assert store.ledger_size() == 0
    assert list(store.ledger_rows()) == []
    rows = [store.append_ledger("e", None, {"i": i})[1] for i in range(6)]
    assert store.ledger_size() == 6
    assert list(store.ledger_rows()) == rows
    assert list(store.ledger_rows(2)) == rows[2:]
    assert list(store.ledger_rows(2, 4)) == rows[2:4]
    assert list(store.ledger_rows(0, 1)) == rows[:1]
    assert list(store.ledger_rows(end=3)) == rows[:3]
    assert list(store.ledger_rows(3, 3)) == []
    assert list(store.ledger_rows(5, 100)) == rows[5:]
    assert list(store.ledger_rows(6)) == []


def test_ledger_rows_for_run(store: Store) -> None:
    rows = [
        store.append_ledger("e", run_id, {"i": i})[1]
        for i, run_id in enumerate(["run-1", None, "run-2", "run-1", "run-2", "run-1"])
    ]
    assert store.ledger_rows_for_run("run-1") == [rows[0], rows[3], rows[5]]
    assert store.ledger_rows_for_run("run-2") == [rows[2], rows[4]]
    assert store.ledger_rows_for_run("run-3") == []


def _scan_rows(store: Store, start: int = 0, end: int | None = None) -> list[Any]:
    batches = list(store.ledger_scan(start, end))
    assert all(len(batch) > 0 for batch in batches)
    return [row for batch in batches for row in batch]


def _as_scan_row(row: LedgerRow) -> tuple[Any, ...]:
    return (row["seq"], row["entry"], row["leaf_hash"].encode(), row["type"], row["run_id"])


def test_ledger_scan_gives_the_rows_as_plain_tuples(store: Store) -> None:
    assert _scan_rows(store) == []
    for i, run_id in enumerate(["run-1", None, "run-2", "run-1", None, "run-é"]):
        store.append_ledger("e" if i % 2 else "run.started", run_id, {"i": i})
    rows = [_as_scan_row(r) for r in store.ledger_rows()]
    scanned = _scan_rows(store)
    assert scanned == rows
    for row in scanned:
        assert type(row) is tuple and len(row) == 5
        assert [type(v) for v in row[:4]] == [int, bytes, bytes, str]
        assert row[4] is None or type(row[4]) is str
    for start, end in [(2, None), (2, 4), (0, 1), (0, 3), (3, 3), (5, 100), (6, None), (4, 2)]:
        assert _scan_rows(store, start, end) == rows[start:end], (start, end)


def test_ledger_scan_of_many_rows_comes_in_batches(store: Store) -> None:
    with store.transaction():
        for i in range(3000):
            store.append_ledger("e", f"run-{i % 7}", {"i": i})
    batches = list(store.ledger_scan(100, 2900))
    assert all(len(batch) > 0 for batch in batches)
    assert [row[0] for batch in batches for row in batch] == list(range(100, 2900))
    assert [_as_scan_row(r) for r in store.ledger_rows(100, 2900)] == [
        row for batch in batches for row in batch
    ]


def _scan_elsewhere(scanner: Any, start: int, end: int | None) -> list[Any]:
    return [row for batch in scanner(start, end) for row in batch]


def test_ledger_scanner_reads_in_another_process(store: Store) -> None:
    import multiprocessing

    for i in range(5):
        store.append_ledger("e", f"run-{i % 2}", {"i": i})
    scanner = store.ledger_scanner()
    if scanner is None:  # allowed: verification then stays in one process
        return
    rows = _scan_rows(store)
    assert _scan_elsewhere(scanner, 0, None) == rows
    assert _scan_elsewhere(scanner, 1, 3) == rows[1:3]
    store.append_ledger("e", None, {"i": 5})  # a scanner reads what is committed when called
    rows = _scan_rows(store)
    with multiprocessing.get_context("fork").Pool(1) as pool:  # pickles the scanner
        assert pool.apply(_scan_elsewhere, (scanner, 2, None)) == rows[2:]


def test_ledger_is_deterministic_under_a_fixed_clock(store_factory: OpenStore) -> None:
    one = store_factory(clock=FixedClock(START))
    two = store_factory(clock=FixedClock(START))
    for s in (one, two):
        for i in range(3):
            s.append_ledger("e", "run-1", {"i": i})
    assert list(one.ledger_rows()) == list(two.ledger_rows())


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payload=st.dictionaries(_text, _json_values, max_size=5))
def test_ledger_payloads_round_trip(store: Store, payload: dict[str, Any]) -> None:
    size = store.ledger_size()
    entry, row = store.append_ledger("prop", "run-p", payload)
    assert entry["seq"] == size
    assert row["entry"] == canonical_json(entry)
    assert row["leaf_hash"] == leaf_hash(row["entry"])
    assert json.loads(row["entry"])["payload"] == payload
    [stored] = store.ledger_rows(size, size + 1)
    assert stored == row
    if size:
        [previous] = store.ledger_rows(size - 1, size)
        assert entry["prev_hash"] == previous["leaf_hash"]


def test_signed_checkpoints_round_trip_oldest_first(store: Store) -> None:
    assert store.list_signed_checkpoints() == []
    heads = [signed(3), signed(1), signed(7)]
    for head in heads:
        store.put_signed_checkpoint(head)
    assert store.list_signed_checkpoints() == heads


# -- nonces ---------------------------------------------------------------------------------


def test_consume_nonce_once(store: Store) -> None:
    assert store.consume_nonce("n-1", "bridge") is True
    assert store.consume_nonce("n-1", "bridge") is False
    assert store.consume_nonce("n-1", "another-source") is False
    assert store.consume_nonce("n-2", "bridge") is True


def test_nonce_seen_is_read_only(store: Store) -> None:
    assert store.nonce_seen("n-1") is False
    assert store.nonce_seen("n-1") is False
    assert store.consume_nonce("n-1", "bridge") is True
    assert store.nonce_seen("n-1") is True
    assert store.nonce_seen("n-2") is False


# -- transactions -----------------------------------------------------------------------------


class Boom(Exception):
    """Raised inside a transaction to abandon it."""


def _write_everything(store: Store, tag: str) -> None:
    store.create_run(f"run-{tag}", "mission", "echo")
    store.add_task(f"run-{tag}", "t1", "do it")
    store.update_run(f"run-{tag}", status="paused")
    store.put_artifact(f"run-{tag}", "a.txt", tag.encode())
    store.add_event(f"run-{tag}", None, "run.started", {})
    store.put(JournalKey(f"run-{tag}", "s", 0, 0), JournalRecord(step_digest="d", result=tag))
    store.put_checkpoint(checkpoint(f"run-{tag}", 0))
    store.append_ledger("run.started", f"run-{tag}", {"tag": tag})
    store.put_signed_checkpoint(signed(1))
    store.consume_nonce(f"nonce-{tag}", "bridge")


def _assert_nothing_written(store: Store, tag: str) -> None:
    run_id = f"run-{tag}"
    assert store.get_run(run_id) is None
    assert store.list_runs() == []
    assert store.list_tasks(run_id) == []
    assert store.list_artifacts(run_id, include_deleted=True) == []
    assert store.list_events() == []
    assert store.get(JournalKey(run_id, "s", 0, 0)) is None
    assert store.journal_keys(run_id) == []
    assert store.list_checkpoints(run_id) == []
    assert store.ledger_size() == 0
    assert list(store.ledger_rows()) == []
    assert store.ledger_rows_for_run(run_id) == []
    assert store.list_signed_checkpoints() == []
    assert store.nonce_seen(f"nonce-{tag}") is False


def test_transaction_commits_on_success(store: Store) -> None:
    with store.transaction():
        _write_everything(store, "x")
    assert store.get_run("run-x") is not None
    assert store.ledger_size() == 1
    assert store.nonce_seen("nonce-x") is True


def test_exception_rolls_back_every_write(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        _write_everything(store, "x")
        assert store.get_run("run-x") is not None  # visible inside the transaction
        raise Boom
    _assert_nothing_written(store, "x")


def test_exception_rolls_back_writes_of_nested_transactions(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            _write_everything(store, "x")
        with store.transaction(), store.transaction():
            store.append_ledger("deeper", None, {})
        raise Boom
    _assert_nothing_written(store, "x")


def test_exception_in_a_nested_transaction_rolls_back_the_outer_one(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        store.create_run("run-outer", "mission", "echo")
        with store.transaction():
            _write_everything(store, "x")
            raise Boom
    assert store.get_run("run-outer") is None
    _assert_nothing_written(store, "x")


def test_store_is_usable_after_a_rollback(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        store.append_ledger("lost", None, {})
        store.consume_nonce("n", "bridge")
        raise Boom
    entry, _ = store.append_ledger("kept", None, {})
    assert entry["seq"] == 0
    assert entry["prev_hash"] == GENESIS
    assert store.consume_nonce("n", "bridge") is True
    with store.transaction():
        store.create_run("run-after", "mission", "echo")
    assert store.get_run("run-after") is not None


def test_a_store_error_inside_a_transaction_rolls_it_back(store: Store) -> None:
    new_run(store)
    with pytest.raises(StoreError), store.transaction():
        store.append_ledger("lost", None, {})
        new_run(store)  # the id exists: refused
    assert store.ledger_size() == 0


def test_nested_transactions_commit_only_at_the_outer_exit(
    store_factory: OpenStore, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    writer = store_factory(location)
    reader = store_factory(location)
    with writer.transaction():
        with writer.transaction():
            writer.create_run("run-1", "mission", "echo")
            writer.append_ledger("run.started", "run-1", {})
        assert writer.get_run("run-1") is not None
        assert reader.get_run("run-1") is None
        assert reader.ledger_size() == 0
        with writer.transaction():
            writer.consume_nonce("n", "bridge")
        assert reader.nonce_seen("n") is False
    assert reader.get_run("run-1") is not None
    assert reader.ledger_size() == 1
    assert reader.nonce_seen("n") is True


def test_a_write_outside_a_transaction_is_visible_at_once(
    store_factory: OpenStore, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    writer = store_factory(location)
    reader = store_factory(location)
    writer.put(JournalKey("run-1", "s", 0, 0), JournalRecord(step_digest="d", result=1))
    assert reader.get(JournalKey("run-1", "s", 0, 0)) == JournalRecord(step_digest="d", result=1)
    writer.append_ledger("e", None, {})
    assert reader.ledger_size() == 1


def test_a_second_store_on_the_same_location_sees_the_data(
    store_factory: OpenStore, tmp_path: Path
) -> None:
    location = tmp_path / "shared"
    first = store_factory(location)
    _write_everything(first, "x")
    first.close()
    second = store_factory(location, clock=FixedClock(START + dt.timedelta(days=1)))
    assert second.get_run("run-x") is not None
    assert second.ledger_size() == 1
    entry, _ = second.append_ledger("e", None, {})
    assert entry["seq"] == 1
    assert entry["prev_hash"] == next(iter(second.ledger_rows(0, 1)))["leaf_hash"]


# -- no dialect leaks out ---------------------------------------------------------------------


def _contract_code_and_comments() -> tuple[str, str]:
    """base.py's code without docstrings, and its comments."""
    source = Path(store_base.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [
                stmt
                for stmt in body
                if not (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                )
            ]
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    comments = [
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    return ast.unparse(tree), "\n".join(comments)


def test_contract_leaks_no_sql_dialect() -> None:
    source = Path(store_base.__file__).read_text(encoding="utf-8")
    for term in ("rowid", "insert or"):
        assert term not in source.lower(), term
    code, comments = _contract_code_and_comments()
    assert "class Store(Protocol)" in code  # the stripping kept the code
    for term in ("rowid", "insert or", "sqlite", "sqlite3", "select ", "pragma"):
        assert term not in code.lower(), term
        assert term not in comments.lower(), term


# -- records hold plain values ----------------------------------------------------------------


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the record field annotation ``hint``, with exact JSON types."""
    if hint is Any:
        return _plain(value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return type(value) is list and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return type(value) is dict and all(
            type(k) is str and _matches(v, args[1]) for k, v in value.items()
        )
    if hint is float:
        return type(value) in (int, float)
    return type(value) is hint


def _plain(value: Any) -> bool:
    """Only JSON types: dict with str keys, list, str, int, float, bool, None."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _assert_record(record: Any, record_type: Any) -> None:
    assert type(record) is dict, f"{record_type.__name__} is a {type(record).__name__}"
    hints = typing.get_type_hints(record_type)
    assert set(record) == set(hints), record_type.__name__
    for field, hint in hints.items():
        assert _matches(record[field], hint), (record_type.__name__, field, record[field])


def test_every_record_holds_only_plain_values(store: Store) -> None:
    _write_everything(store, "x")
    run = store.create_run(
        "run-full", "workflow", "wf", config={"a": [1]}, priority="P2", max_cost_usd=1.0
    )
    store.update_run("run-full", status="completed", spent_cost_usd=0.5, max_loops=3)
    task = store.add_task("run-full", "t", "task", context_files=["f.py"])
    store.update_task("run-full", "t", status="approved", result_artifact_ids=["a"])
    store.claim_task("run-full", "t", "w")
    artifact = store.put_artifact("run-full", "f.txt", b"data", metadata={"k": {"n": 1}})
    store.delete_artifact(artifact["artifact_id"])
    event = store.add_event("run-full", "t", "task.note", {"x": [1.5, None]})

    records: list[tuple[Any, Any]] = [(run, RunRecord), (task, TaskRecord)]
    records += [(r, RunRecord) for r in store.list_runs()]
    records += [(store.get_run("run-full"), RunRecord)]
    records += [(t, TaskRecord) for t in store.list_tasks("run-full") + store.list_tasks("run-x")]
    records += [(artifact, ArtifactRecord), (event, TimelineEvent)]
    for run_id in ("run-full", "run-x"):
        for a in store.list_artifacts(run_id, include_deleted=True):
            records.append((a, ArtifactRecord))
            got = store.get_artifact(a["artifact_id"])
            assert got is not None
            assert type(got) is tuple and type(got[1]) is bytes
            records.append((got[0], ArtifactRecord))
    records += [(e, TimelineEvent) for e in store.list_events()]
    records += [(c, CheckpointRecord) for c in store.list_checkpoints("run-x")]
    records += [(store.get_checkpoint("run-x-cp-0"), CheckpointRecord)]
    records += [(store.get(JournalKey("run-x", "s", 0, 0)), JournalRecord)]
    entry, row = store.append_ledger("e", "run-full", {"k": [1, {"z": None}]})
    records += [(entry, LedgerEntry), (row, LedgerRow)]
    records += [(r, LedgerRow) for r in store.ledger_rows()]
    records += [(r, LedgerRow) for r in store.ledger_rows_for_run("run-full")]
    records += [(s, SignedCheckpoint) for s in store.list_signed_checkpoints()]

    for record, record_type in records:
        _assert_record(record, record_type)

    keys = store.journal_keys("run-x")
    assert keys and all(type(k) is JournalKey for k in keys)
    assert all(type(k.run_id) is str and type(k.attempt) is int for k in keys)
    assert type(store.ledger_size()) is int
    assert type(store.schema_version()) is int
    assert type(store.nonce_seen("nonce-x")) is bool
    assert type(store.claim_task("run-full", "t", "w")) is bool
    assert type(store.consume_nonce("again", "s")) is bool
