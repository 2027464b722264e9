"""The workers' activities over a real spine: a copy of the demo project, its agents the
replay provider answering from the demo's cassette, a real store, git and gate.

Temporal's ``ActivityEnvironment`` stands in for a worker (it gives the activity its
context: attempt number, heartbeats), so no server is needed here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from lifeos.clock import SystemClock
from lifeos.config import load_config
from lifeos.demo import prepare
from lifeos.repo import detect_repo
from lifeos.spine import Spine
from lifeos.spine.setup import repo_spine
from lifeos.store import open_store
from lifeos.temporal.activities import SpineActivities


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the demo's acceptance check runs `python -m pytest` in the worktree
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return prepare(tmp_path)


def opener(repo: Path) -> Callable[[Callable[[str], None]], Any]:
    where = detect_repo(repo)

    @contextmanager
    def open_spine(progress: Callable[[str], None]) -> Iterator[Spine]:
        store = open_store(where.lifeos_dir, SystemClock())
        try:
            settings = load_config(repo).data
            yield repo_spine(where, store, settings, env=dict(os.environ), progress=progress)
        finally:
            store.close()

    return open_spine


def hydrate(repo: Path, task: str) -> str:
    with opener(repo)(lambda _line: None) as spine:
        return spine.hydrate(task, engine={"kind": "temporal", "address": "127.0.0.1:1"})


def ledger_types(repo: Path, run_id: str) -> list[str]:
    with opener(repo)(lambda _line: None) as spine:
        rows = spine.store.ledger_rows_for_run(run_id)
        return [json.loads(r["entry"])["type"] for r in rows]


def test_each_step_is_one_phase_and_the_run_lands(demo: Path) -> None:
    lines: list[str] = []
    renewing: list[Any] = []  # the stores the heartbeat threads renewed the lease from

    @contextmanager
    def lease_store() -> Iterator[Any]:
        store = open_store(detect_repo(demo).lifeos_dir, SystemClock())
        renewing.append(store)
        try:
            yield store
        finally:
            store.close()

    acts = SpineActivities(
        opener(demo), open_store=lease_store, say=lines.append, heartbeat_every_s=0.01
    )
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    run_id = hydrate(demo, "T-1")
    results = []
    while not results or results[-1]["outcome"] is None:
        results.append(env.run(acts.step, {"run_id": run_id, "recovering": False}))
        assert len(results) <= 8
    # policy, design, build, review, steward, close; then the step that lands the run
    assert len(results) == 7
    final = results[-1]["outcome"]
    assert final["state"] == "LANDED" and final["run_id"] == run_id
    # every step reports its own calls: designer 1, builder 3 turns, reviewers 2
    assert [r["agent_calls"] for r in results] == [0, 1, 3, 2, 0, 0, 0]
    assert all(r["replayed_calls"] == 0 for r in results)
    assert beats, "a phase that runs the project's tests outlasts 10 ms without a heartbeat"
    assert len(renewing) == len(results)  # one store for each step's lease, not a spine
    assert any("build (attempt 1)" in line for line in lines)
    assert ledger_types(demo, run_id).count("spine.landed") == 1


def test_a_later_attempt_replays_the_phase_as_a_recovery(demo: Path) -> None:
    lines: list[str] = []
    acts = SpineActivities(opener(demo), say=lines.append)
    env = ActivityEnvironment()
    run_id = hydrate(demo, "T-1")
    for _ in range(2):  # policy, design
        env.run(acts.step, {"run_id": run_id})
    first = env.run(acts.step, {"run_id": run_id})  # build
    assert first["agent_calls"] == 3
    # the build again, as a second attempt would: with the record put back at design,
    # every call is answered from the journal (a killed worker's retry)
    with opener(demo)(lambda _line: None) as spine:
        run = spine.store.get_run(run_id)
        assert run is not None
        config = {**run["config"], "phase": "design"}
        spine.store.update_run(run_id, config=config)
    env.info = dataclasses.replace(env.info, attempt=2)
    again = env.run(acts.step, {"run_id": run_id})
    assert (again["agent_calls"], again["replayed_calls"]) == (0, 3)
    assert any("recovering (attempt 2)" in line for line in lines)


def test_a_decision_is_recorded_once_and_a_refusal_is_an_answer(demo: Path) -> None:
    acts = SpineActivities(opener(demo))
    env = ActivityEnvironment()
    run_id = hydrate(demo, "T-4")  # approvals: [before_steward]
    result: dict[str, Any] = {"outcome": None}
    while result["outcome"] is None:
        result = env.run(acts.step, {"run_id": run_id})
    assert result["outcome"]["state"] == "PAUSED" and result["approval"] == "before_steward"
    config = demo / "lifeos.yaml"
    original = config.read_text()
    config.write_text(original.replace("profile: code", "profile: seed-v2"))
    decision = {"run_id": run_id, "point": "before_steward", "approved": True, "note": "ok"}
    refused = env.run(acts.decide, decision)
    assert refused["refused"]["reason"] == "POLICY_HASH_MISMATCH"
    config.write_text(original)
    assert env.run(acts.decide, decision) == {"refused": None}
    # a retry of an attempt that recorded the decision records nothing more
    assert env.run(acts.decide, decision) == {"refused": None}
    assert ledger_types(demo, run_id).count("spine.decision") == 1
    steps = [env.run(acts.step, {"run_id": run_id})["outcome"] for _ in range(3)]
    assert steps[:2] == [None, None]  # steward, close
    assert steps[2]["state"] == "LANDED"


def test_the_cli_loads_no_temporal_code_until_a_command_needs_it() -> None:
    import subprocess

    code = (
        "import sys, lifeos.cli.spine, lifeos.cli.worker, lifeos.temporal; "
        "print(sorted(m for m in sys.modules if m.startswith('temporalio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_phase_holds_the_run_lease_and_waits_for_another_holder(demo: Path) -> None:
    from temporalio.exceptions import ApplicationError

    run_id = hydrate(demo, "T-1")
    holders: list[Any] = []

    def say(line: str) -> None:  # the spine's progress, while the phase runs
        with opener(demo)(lambda _line: None) as spine:
            holders.append(spine.store.get_claim(run_id))

    acts = SpineActivities(opener(demo), say=say, heartbeat_every_s=0.01)
    env = ActivityEnvironment()
    with opener(demo)(lambda _line: None) as spine:
        assert spine.store.claim_run(run_id, "someone-else", 60)
    with pytest.raises(ApplicationError) as held:
        env.run(acts.step, {"run_id": run_id})
    assert held.value.type == "RUN_CLAIMED" and "someone-else" in held.value.message
    assert not held.value.non_retryable  # Temporal tries again later
    with opener(demo)(lambda _line: None) as spine:
        assert spine.store.get_run(run_id)["config"]["phase"] == "hydrate"  # nothing ran
        assert spine.store.release_claim(run_id, "someone-else")
    holders.clear()
    env.run(acts.step, {"run_id": run_id})
    assert holders and all(h is not None and h["owner"].startswith("temporal:") for h in holders)
    with opener(demo)(lambda _line: None) as spine:
        assert spine.store.get_claim(run_id) is None  # released when the phase ended


def test_a_phase_whose_lease_passed_to_another_writes_nothing(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease runs out mid-phase (no heartbeat renews it here, and Temporal never
    cancels the attempt) and another driver takes the run: the phase's next write is
    refused with LEASE_LOST, so the run, its checkpoints and its ledger stay as the
    other driver found them; Temporal may try the phase again."""
    import time

    from lifeos.store import LeaseLost
    from lifeos.temporal import contract

    run_id = hydrate(demo, "T-1")
    for _ in range(2):  # policy, design
        ActivityEnvironment().run(SpineActivities(opener(demo)).step, {"run_id": run_id})
    monkeypatch.setattr(contract, "LEASE_TTL_S", 0.2)
    taken: list[tuple[Any, ...]] = []
    lines: list[str] = []

    def say(line: str) -> None:  # the build's first line, before its first agent call
        lines.append(line)
        if "build (attempt" in line and not taken:
            time.sleep(0.3)  # past the lease
            with opener(demo)(lambda _line: None) as spine:
                store = spine.store
                assert store.claim_run(run_id, "thief", 60)
                run = store.get_run(run_id)
                taken.append((run, store.list_checkpoints(run_id), store.ledger_size()))

    with opener(demo)(lambda _line: None) as spine:
        journaled = spine.store.journal_keys(run_id)
    acts = SpineActivities(opener(demo), say=say, heartbeat_every_s=60)
    with pytest.raises(LeaseLost) as lost:
        ActivityEnvironment().run(acts.step, {"run_id": run_id})
    assert lost.value.reason.value == "LEASE_LOST" and "thief" in lost.value.message
    assert taken, "the policy phase reported no progress"
    with opener(demo)(lambda _line: None) as spine:
        store = spine.store
        after = (store.get_run(run_id), store.list_checkpoints(run_id), store.ledger_size())
        assert after == taken[0]
        assert after[0]["config"]["phase"] == "design"
        assert store.journal_keys(run_id) == journaled  # the build's calls: none recorded
        assert store.get_claim(run_id)["owner"] == "thief"  # type: ignore[index]
    assert any("ended without a result: LeaseLost" in line for line in lines), lines
