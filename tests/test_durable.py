"""Durable runs: the engine with a SQLite store as its journal and checkpoint recorder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifeos.canonical import canonical_json, sha256_hex
from lifeos.clock import FixedClock
from lifeos.delta import apply_delta
from lifeos.durable import StoreRecorder, run_recorded
from lifeos.engine import (
    Decision,
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import InputError, ReasonCode
from lifeos.journal import JournalKey
from lifeos.ledger.chain import verify_store
from lifeos.services import Services, Tool, ToolRegistry
from lifeos.store.sqlite import SQLiteStore

RUN = "run-durable-1"
BIG_STATE: dict[str, Any] = {"big": list(range(2000)), "blob": "x" * 20_000, "n": 0}


class Counter:
    """A side effect: counts its calls, returns the new count, remembers idempotency keys."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.keys: list[str] = []
        self.fail = fail

    def __call__(self, label: str, idempotency_key: str | None = None) -> int:
        self.calls.append(label)
        if idempotency_key is not None:
            self.keys.append(idempotency_key)
        if self.fail:
            raise RuntimeError(f"tool broke on {label}")
        return len(self.calls)


def services(counter: Counter, takes_key: bool = False) -> Services:
    tool = Tool("bump", counter, required={"label": str}, takes_key=takes_key)
    return Services(tools=ToolRegistry([tool]))


def orchestrator(counter: Counter, policy_hash: str | None = None, **kw: Any) -> Orchestrator:
    return Orchestrator(services=services(counter, **kw), policy_hash=policy_hash)


def runtime(step_id: str, operation: str, **payload: Any) -> StepSpec:
    return StepSpec(step_id, "runtime", {"operation": operation, **payload})


def bump(step_id: str, label: str | None = None) -> StepSpec:
    return runtime(step_id, "tool_invoke", tool="bump", args={"label": label or step_id})


def flow(*steps: StepSpec) -> WorkflowDefinition:
    return WorkflowDefinition(id="wf-durable", steps=list(steps))


def standard(label: str = "bump") -> WorkflowDefinition:
    """set -> tool -> human -> set."""
    return flow(
        runtime("prepare", "set", path="prepared", value=True),
        bump("bump", label),
        StepSpec("approve", "human", {"description": "ship it?"}),
        runtime("finish", "set", path="done", value="yes"),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lifeos.db"


@pytest.fixture
def open_store(db_path: Path) -> Iterator[Any]:
    """Open the store at ``db_path`` (again and again, like separate processes); close all."""
    opened: list[SQLiteStore] = []

    def _open() -> SQLiteStore:
        store = SQLiteStore(db_path, FixedClock())
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def go(
    store: SQLiteStore,
    orch: Orchestrator,
    wf: WorkflowDefinition,
    state: dict[str, Any] | None = None,
    decisions: dict[str, Decision] | None = None,
    run_id: str = RUN,
) -> OrchestrationResult:
    return run_recorded(
        store,
        orch,
        wf,
        ExecutionContext(initial_state=dict(BIG_STATE if state is None else state)),
        run_id,
        kind="workflow",
        name=wf.id,
        decisions=decisions,
    )


def ledger_types(store: SQLiteStore, run_id: str = RUN) -> list[str]:
    return [json.loads(r["entry"])["type"] for r in store.ledger_rows_for_run(run_id)]


# -- pause, resume, no repeated side effect --------------------------------------------


def test_pause_then_resume_completes_without_calling_the_tool_again(open_store: Any) -> None:
    first = Counter()
    store = open_store()
    paused = go(store, orchestrator(first), standard())
    assert paused.status == "paused" and paused.waiting_step_id == "approve"
    assert first.calls == ["bump"]
    assert store.get_run(RUN)["status"] == "paused"  # type: ignore[index]
    store.close()

    second = Counter()
    store = open_store()  # a new process: nothing in memory survives
    done = go(store, orchestrator(second), standard(), decisions={"approve": Decision.approve()})
    assert done.status == "completed" and done.success
    assert second.calls == []
    assert done.final_state["tool_results"] == {"bump": 1}
    assert done.final_state["prepared"] is True and done.final_state["done"] == "yes"
    assert [s.id for s in done.executed_steps] == ["prepare", "bump", "approve", "finish"]
    assert done.receipt["decisions"][0]["decision"] == "approve"
    run = store.get_run(RUN)
    assert run is not None and run["status"] == "completed" and run["completed_at"]
    assert [c["status"] for c in store.list_checkpoints(RUN)] == ["ok", "ok", "approved", "ok"]


def test_resuming_without_a_decision_stays_paused(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    go(store, orchestrator(counter), standard())
    again = go(store, orchestrator(counter), standard())
    assert again.status == "paused" and again.waiting_step_id == "approve"
    assert counter.calls == ["bump"]
    assert len(store.list_checkpoints(RUN)) == 2


def test_resuming_a_completed_run_changes_nothing(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    wf = flow(runtime("prepare", "set", path="p", value=1), bump("bump"))
    first = go(store, orchestrator(counter), wf)
    checkpoints = store.list_checkpoints(RUN)
    again = go(store, orchestrator(counter), wf)
    assert again.status == "completed"
    assert again.to_dict() == first.to_dict()
    assert counter.calls == ["bump"]
    assert store.list_checkpoints(RUN) == checkpoints


def test_resume_under_another_kind_or_name_is_refused(open_store: Any) -> None:
    store = open_store()
    go(store, orchestrator(Counter()), standard())
    with pytest.raises(InputError, match="not a mission"):
        run_recorded(
            store,
            orchestrator(Counter()),
            standard(),
            ExecutionContext(initial_state=dict(BIG_STATE)),
            RUN,
            kind="mission",
            name="echo",
        )


# -- checkpoints hold deltas -----------------------------------------------------------


def test_checkpoints_hold_deltas_not_the_whole_state(open_store: Any) -> None:
    store = open_store()
    result = go(
        store, orchestrator(Counter()), standard(), decisions={"approve": Decision.approve()}
    )
    assert result.status == "completed"
    cps = store.list_checkpoints(RUN)
    assert [c["step_id"] for c in cps] == ["prepare", "bump", "approve", "finish"]
    assert cps[0]["delta"] == [{"op": "set", "path": ["prepared"], "value": True}]
    assert cps[1]["delta"] == [{"op": "set", "path": ["tool_results"], "value": {"bump": 1}}]
    assert cps[2]["delta"] == []
    assert cps[3]["delta"] == [{"op": "set", "path": ["done"], "value": "yes"}]
    state_size = len(canonical_json(BIG_STATE))
    for cp in cps:
        assert len(canonical_json(cp["delta"])) < 200 < state_size
        assert "big" not in json.dumps(cp["delta"])
    # Replaying the deltas from the initial state rebuilds every recorded state hash.
    state: dict[str, Any] = json.loads(json.dumps(BIG_STATE))
    for cp in cps:
        state = apply_delta(state, cp["delta"])
        assert sha256_hex(state) == cp["state_hash"]
    assert state == result.final_state
    assert cps[2]["info"]["decision"] == "approve"
    assert StoreRecorder(store).load(RUN)[1].delta == cps[1]["delta"]


def test_a_change_equality_misses_is_checkpointed_and_resumes(open_store: Any) -> None:
    """1 -> true and 0.0 -> -0.0 inside an object: == finds them equal, canonical JSON not."""
    store = open_store()
    wf = flow(
        runtime("flip", "set", path="x.a", value=True),
        runtime("sign", "set", path="x.b", value=-0.0),
        StepSpec("approve", "human", {"description": "ok?"}),
        runtime("finish", "set", path="done", value=1),
    )
    state = {"x": {"a": 1, "b": 0.0}}
    paused = go(store, orchestrator(Counter()), wf, state=state)
    assert paused.status == "paused"
    deltas = [c["delta"] for c in store.list_checkpoints(RUN)]
    assert canonical_json(deltas) == canonical_json(
        [
            [{"op": "set", "path": ["x", "a"], "value": True}],
            [{"op": "set", "path": ["x", "b"], "value": -0.0}],
        ]
    )
    result = go(
        store, orchestrator(Counter()), wf, state=state, decisions={"approve": Decision.approve()}
    )
    assert result.status == "completed", result.error_message
    expected = {"x": {"a": True, "b": -0.0}, "done": 1}
    assert canonical_json(result.final_state) == canonical_json(expected)


# -- refusing to resume something else ------------------------------------------------


def test_changed_step_spec_on_resume_is_nondeterminism(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    go(store, orchestrator(counter), standard("bump"))
    result = go(
        store,
        orchestrator(counter),
        standard("a different label"),
        decisions={"approve": Decision.approve()},
    )
    assert result.status == "failed"
    assert result.reason_code == ReasonCode.NONDETERMINISM.value
    assert "bump" in (result.error_message or "")
    assert counter.calls == ["bump"]
    assert store.get_run(RUN)["failure_reason"] == "NONDETERMINISM"  # type: ignore[index]


def test_extra_checkpoint_beyond_a_shorter_workflow_is_nondeterminism(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    go(store, orchestrator(counter), standard())
    shorter = flow(runtime("prepare", "set", path="prepared", value=True))
    result = go(store, orchestrator(counter), shorter)
    assert result.reason_code == ReasonCode.NONDETERMINISM.value
    assert counter.calls == ["bump"]


def test_different_initial_state_on_resume_is_nondeterminism(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    go(store, orchestrator(counter), standard())
    result = go(
        store,
        orchestrator(counter),
        standard(),
        state={**BIG_STATE, "n": 1},
        decisions={"approve": Decision.approve()},
    )
    assert result.status == "failed"
    assert result.reason_code == ReasonCode.NONDETERMINISM.value
    assert counter.calls == ["bump"]


def test_changed_policy_hash_on_resume_is_refused(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    paused = go(store, orchestrator(counter, policy_hash="a"), standard())
    assert paused.status == "paused"
    assert {c["policy_hash"] for c in store.list_checkpoints(RUN)} == {"a"}
    result = go(
        store,
        orchestrator(counter, policy_hash="b"),
        standard(),
        decisions={"approve": Decision.approve()},
    )
    assert result.status == "failed"
    assert result.reason_code == ReasonCode.POLICY_HASH_MISMATCH.value
    assert counter.calls == ["bump"]
    assert len(store.list_checkpoints(RUN)) == 2
    # The same policy resumes fine.
    ok = go(
        store,
        orchestrator(counter, policy_hash="a"),
        standard(),
        decisions={"approve": Decision.approve()},
    )
    assert ok.status == "completed" and counter.calls == ["bump"]


# -- a failed run stays failed -----------------------------------------------------------


def test_failed_run_resumed_returns_the_same_failure_without_rerunning(open_store: Any) -> None:
    broken = Counter(fail=True)
    store = open_store()
    wf = flow(runtime("prepare", "set", path="p", value=1), bump("bump"), bump("after"))
    first = go(store, orchestrator(broken), wf)
    assert first.status == "failed" and first.failed_step_id == "bump"
    assert first.reason_code == ReasonCode.PROVIDER_ERROR.value
    assert broken.calls == ["bump"]
    entries = store.ledger_size()
    checkpoints = store.list_checkpoints(RUN)

    healthy = Counter()
    again = go(store, orchestrator(healthy), wf)
    assert healthy.calls == []
    assert again.status == "failed" and again.failed_step_id == "bump"
    assert again.reason_code == first.reason_code
    assert again.error_message == first.error_message
    assert again.to_dict() == first.to_dict()
    assert store.list_checkpoints(RUN) == checkpoints
    # A finished run replays from its checkpoints: no step ran, nothing was appended.
    assert store.ledger_size() == entries


def test_rejected_run_replays_the_same_receipt(open_store: Any) -> None:
    store = open_store()
    reject = {"approve": Decision.reject("not now")}
    first = go(store, orchestrator(Counter()), standard(), decisions=reject)
    assert first.status == "failed"
    assert first.reason_code == ReasonCode.HUMAN_REJECTED.value
    again = go(store, orchestrator(Counter()), standard(), decisions=reject)
    assert again.to_dict() == first.to_dict()
    assert again.receipt["decisions"] == [
        {"actor": "human", "decision": "reject", "note": "not now", "step_id": "approve"}
    ]


def test_fail_operation_failure_is_replayed(open_store: Any) -> None:
    store = open_store()
    wf = flow(runtime("boom", "fail", reason="no"), runtime("never", "set", path="x", value=1))
    first = go(store, orchestrator(Counter()), wf)
    again = go(store, orchestrator(Counter()), wf)
    assert first.reason_code == again.reason_code == ReasonCode.STEP_FAILED.value
    assert again.to_dict() == first.to_dict()
    assert [c["step_id"] for c in store.list_checkpoints(RUN)] == ["boom"]


# -- ledger entries --------------------------------------------------------------------------


def test_ledger_entries_per_run(open_store: Any) -> None:
    store = open_store()
    go(store, orchestrator(Counter()), standard())
    assert ledger_types(store) == ["run.started", "step", "step", "run.paused"]
    go(store, orchestrator(Counter()), standard(), decisions={"approve": Decision.approve()})
    assert ledger_types(store) == [
        "run.started",
        "step",
        "step",
        "run.paused",
        "run.resumed",
        "step",
        "step",
        "run.finished",
    ]
    entries = [json.loads(r["entry"]) for r in store.ledger_rows_for_run(RUN)]
    steps = [e["payload"] for e in entries if e["type"] == "step"]
    cps = store.list_checkpoints(RUN)
    assert [s["step_id"] for s in steps] == [c["step_id"] for c in cps]
    assert [s["checkpoint_id"] for s in steps] == [c["checkpoint_id"] for c in cps]
    assert [s["state_hash"] for s in steps] == [c["state_hash"] for c in cps]
    assert entries[3]["payload"]["waiting_step_id"] == "approve"
    assert entries[-1]["payload"] == {"status": "completed", "steps": 4}
    assert all(e["run_id"] == RUN for e in entries)
    assert verify_store(store, None).ok


def test_failed_step_ledger_entry_carries_its_reason(open_store: Any) -> None:
    store = open_store()
    go(store, orchestrator(Counter()), flow(runtime("boom", "fail", reason="no")))
    entries = [json.loads(r["entry"]) for r in store.ledger_rows_for_run(RUN)]
    assert [e["type"] for e in entries] == ["run.started", "step", "run.finished"]
    assert entries[1]["payload"]["reason_code"] == "STEP_FAILED"
    assert entries[1]["payload"]["status"] == "failed"
    assert entries[2]["payload"]["reason_code"] == "STEP_FAILED"


# -- one transaction per step ----------------------------------------------------------------


class LedgerDown(Exception):
    pass


def test_checkpoint_and_ledger_entry_commit_together(
    open_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = Counter()
    store = open_store()
    real_append = store.append_ledger
    seen: list[str] = []

    def flaky_append(type: str, run_id: str | None, payload: dict[str, Any]) -> Any:
        seen.append(type)
        if type == "step" and payload.get("step_id") == "bump":
            raise LedgerDown("the disk filled up")
        return real_append(type, run_id, payload)

    monkeypatch.setattr(store, "append_ledger", flaky_append)
    with pytest.raises(LedgerDown):
        go(store, orchestrator(counter), standard())
    assert seen == ["run.started", "step", "step"]
    # The bump step's checkpoint was rolled back with its ledger entry.
    assert [c["step_id"] for c in store.list_checkpoints(RUN)] == ["prepare"]
    assert ledger_types(store) == ["run.started", "step"]
    # Its side effect was journalled before the checkpoint was attempted.
    assert store.journal_keys(RUN) == [JournalKey(RUN, "bump", 0, 0)]
    assert counter.calls == ["bump"]
    monkeypatch.undo()
    store.close()

    store = open_store()
    result = go(store, orchestrator(counter), standard(), decisions={"approve": Decision.approve()})
    assert result.status == "completed"
    assert counter.calls == ["bump"]  # the step was redone from the journal
    assert [c["step_id"] for c in store.list_checkpoints(RUN)] == [
        "prepare",
        "bump",
        "approve",
        "finish",
    ]
    assert ledger_types(store) == [
        "run.started",
        "step",
        "run.resumed",
        "step",
        "step",
        "step",
        "run.finished",
    ]
    assert verify_store(store, None).ok


def test_failed_checkpoint_of_a_pure_step_is_redone(
    open_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store()
    real_append = store.append_ledger

    def flaky_append(type: str, run_id: str | None, payload: dict[str, Any]) -> Any:
        if type == "step" and payload.get("step_id") == "prepare":
            raise LedgerDown("no")
        return real_append(type, run_id, payload)

    monkeypatch.setattr(store, "append_ledger", flaky_append)
    with pytest.raises(LedgerDown):
        go(store, orchestrator(Counter()), standard())
    assert store.list_checkpoints(RUN) == []
    monkeypatch.undo()
    result = go(store, orchestrator(Counter()), standard())
    assert result.status == "paused"
    assert [c["step_id"] for c in store.list_checkpoints(RUN)] == ["prepare", "bump"]


# -- idempotency keys ------------------------------------------------------------------------


def test_journal_keys_are_run_step_attempt_call_index(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    wf = flow(bump("one"), runtime("mid", "set", path="m", value=1), bump("two"))
    result = go(store, orchestrator(counter, takes_key=True), wf)
    assert result.status == "completed"
    assert store.journal_keys(RUN) == [JournalKey(RUN, "one", 0, 0), JournalKey(RUN, "two", 0, 0)]
    assert counter.keys == [f"{RUN}:one:0:0", f"{RUN}:two:0:0"]
    record = store.get(JournalKey(RUN, "one", 0, 0))
    assert record is not None and record["result"] == 1
    assert record["step_digest"] == sha256_hex(wf.steps[0].to_dict())
    assert store.get(JournalKey(RUN, "mid", 0, 0)) is None


def test_journalled_result_is_replayed_when_the_checkpoint_is_missing(open_store: Any) -> None:
    """A crash after the journal commit but before the checkpoint: the result is reused."""
    counter = Counter()
    store = open_store()
    wf = flow(bump("one"))
    store.put(
        JournalKey(RUN, "one", 0, 0),
        {"step_digest": sha256_hex(wf.steps[0].to_dict()), "result": 41},
    )
    result = go(store, orchestrator(counter), wf)
    assert result.status == "completed"
    assert counter.calls == []
    assert result.final_state["tool_results"] == {"one": 41}


def test_journal_record_for_another_spec_is_nondeterminism(open_store: Any) -> None:
    counter = Counter()
    store = open_store()
    store.put(JournalKey(RUN, "one", 0, 0), {"step_digest": "0" * 64, "result": 41})
    result = go(store, orchestrator(counter), flow(bump("one")))
    assert result.status == "failed"
    assert result.reason_code == ReasonCode.NONDETERMINISM.value
    assert counter.calls == []
