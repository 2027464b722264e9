"""Checkpoint size over a 1 MB state, and the cost of resuming a 1,000-step run.

Measures, in a temporary ``SQLiteStore``:

1. Checkpoint size: 100 steps over a ~1 MB state (1,000 keys of ~1 KB strings
   under ``blob`` plus a few small keys): 20 runs of a 5-step workflow through
   ``Orchestrator(journal=store, recorder=StoreRecorder(store))``, each run
   starting from the previous run's final state; every step changes one small
   key (calc add, set from, append, calc mul, calc add). The figure is the bytes
   of the checkpoint rows: ``delta_json + info_json + state_hash + step_digest +
   policy_hash``, summed over the ``checkpoints`` table (the whole row, with ids,
   run id and timestamp, and the ledger entries are printed beside it).
2. Resume: a run with 1,000 checkpoints (each committed with its ledger entry by
   ``StoreRecorder.record``) and 1,000 journal records (``store.put``), built
   directly because the engine caps a workflow at 5 steps. The figure is what a
   resume does with them on a freshly opened store: ``StoreRecorder.load``,
   ``lifeos.delta.apply_delta`` of every checkpoint's delta from the initial
   state, and ``store.get`` of every journal record. The state-hash check
   ``Orchestrator._replay`` makes after each delta (``sha256_hex(state)``) is
   timed separately and shown with and without.

Target: 100 checkpoints over a 1 MB state <= 1.5 MB in total; resume of a
1,000-step run <= 100 ms.

Reference: the canonical JSON size of the 1 MB state itself (what one full-state
snapshot per step would cost: 100 of them), measured in the same run. Resume has
an absolute target only; opening the store is timed and printed beside it.
"""

from __future__ import annotations

import copy
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lifeos.canonical import canonical_json, sha256_hex
from lifeos.clock import SystemClock
from lifeos.delta import apply_delta, diff
from lifeos.durable import StoreRecorder
from lifeos.engine import (
    ExecutionContext,
    Orchestrator,
    StepCheckpoint,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.journal import JournalKey
from lifeos.store.sqlite import SQLiteStore

SIZE_RUNS = 20
STEPS = 5
BLOB_KEYS = 1_000
BLOB_VALUE_BYTES = 1_000
TARGET_SIZE_BYTES = 1_500_000
RESUME_STEPS = 1_000
RESUME_REPEATS = 10
TARGET_RESUME_MS = 100.0


# -- checkpoint size -----------------------------------------------------------------


def _big_state() -> dict[str, Any]:
    blob = {f"k{i:04d}": f"{i:04d}" + "x" * (BLOB_VALUE_BYTES - 4) for i in range(BLOB_KEYS)}
    return {"blob": blob, "counter": 0, "double": 0, "last": 0, "log": []}


def _size_workflow() -> WorkflowDefinition:
    def add(step_id: str) -> StepSpec:
        return StepSpec(
            step_id,
            "runtime",
            {"operation": "calc", "path": "counter", "op": "add", "args": [{"path": "counter"}, 1]},
        )

    return WorkflowDefinition(
        id="bench-checkpoint-size",
        steps=[
            add("count"),
            StepSpec("last", "runtime", {"operation": "set", "path": "last", "from": "counter"}),
            StepSpec("log", "runtime", {"operation": "append", "path": "log", "from": "counter"}),
            StepSpec(
                "double",
                "runtime",
                {
                    "operation": "calc",
                    "path": "double",
                    "op": "mul",
                    "args": [{"path": "counter"}, 2],
                },
            ),
            add("count-again"),
        ],
    )


def _checkpoint_size(directory: Path) -> None:
    store = SQLiteStore(directory / "size.db", SystemClock())
    try:
        orchestrator = Orchestrator(journal=store, recorder=StoreRecorder(store))
        workflow = _size_workflow()
        state = _big_state()
        state_bytes = len(canonical_json(state))
        start = time.perf_counter()
        for run in range(SIZE_RUNS):
            result = orchestrator.run_workflow(
                workflow, ExecutionContext(initial_state=state), run_id=f"size-{run}"
            )
            if result.status != "completed":
                raise RuntimeError(f"run {run} did not complete: {result.to_dict()}")
            state = result.final_state
        elapsed = time.perf_counter() - start
        if state["counter"] != 2 * SIZE_RUNS or len(state["log"]) != SIZE_RUNS:
            raise RuntimeError(f"unexpected final state: counter {state['counter']}")
    finally:
        store.close()
    db = sqlite3.connect(str(directory / "size.db"))
    try:
        count, delta, info, hashes, whole = db.execute(
            "SELECT COUNT(*), SUM(length(CAST(delta_json AS BLOB))), "
            "SUM(length(CAST(info_json AS BLOB))), "
            "SUM(length(state_hash) + length(step_digest) + COALESCE(length(policy_hash), 0)), "
            "SUM(length(checkpoint_id) + length(run_id) + 8 + length(step_id) "
            "+ length(step_digest) + length(status) + length(state_hash) "
            "+ COALESCE(length(policy_hash), 0) + length(CAST(delta_json AS BLOB)) "
            "+ length(CAST(info_json AS BLOB)) + length(created_at)) FROM checkpoints"
        ).fetchone()
        ledger = db.execute("SELECT COUNT(*), SUM(length(entry)) FROM ledger").fetchone()
    finally:
        db.close()
    total = delta + info + hashes
    steps = SIZE_RUNS * STEPS
    print(
        f"checkpoint size: {SIZE_RUNS} runs x {STEPS} steps over a "
        f"{state_bytes / 1e6:.2f} MB state (canonical JSON), one small key changed per step"
    )
    print(
        f"  {count} checkpoint rows: delta_json {delta:,} B + info_json {info:,} B + "
        f"hash columns {hashes:,} B = {total:,} B ({total / count:.0f} B/checkpoint); "
        f"whole rows ~{whole:,} B; their {ledger[0]} ledger entries {ledger[1]:,} B"
    )
    verdict = "meets" if total <= TARGET_SIZE_BYTES else "MISSES"
    print(
        f"  {total / 1e6:.4f} MB in total ({verdict} the target of <= "
        f"{TARGET_SIZE_BYTES / 1e6:.1f} MB); a full snapshot per step would be "
        f"{state_bytes * steps / 1e6:.0f} MB ({state_bytes * steps / total:,.0f}x more)"
    )
    print(
        f"  (for information: the 100 steps took {elapsed * 1000 / steps:.1f} ms/step with "
        "synchronous=FULL, a 1 MB state hashed, diffed and copied per step)"
    )


# -- resume ----------------------------------------------------------------------------


def _resume_state() -> dict[str, Any]:
    return {"a": 2, "b": 3, "log": [], "status": "idle", "user": {"name": "bench"}}


def _mutate(state: dict[str, Any], i: int) -> None:
    """Step i does what step i % 5 of the engine bench workflow does."""
    kind = i % 5
    if kind == 0:
        state["status"] = f"running-{i}"
    elif kind == 1:
        state["log"].append(f"step-{i}")
    elif kind == 2:
        state["total"] = state["a"] + state["b"] + i
    elif kind == 3:
        state["product"] = state["total"] * 3
    else:
        state["result"] = state["product"]


def _build_resume_run(path: Path, run_id: str) -> dict[str, Any]:
    """1,000 checkpoints and journal records for ``run_id``; returns the final state."""
    store = SQLiteStore(path, SystemClock(), synchronous="OFF")
    recorder = StoreRecorder(store)
    state = _resume_state()
    try:
        with store.transaction():
            store.create_run(run_id, "workflow", "bench-resume")
            for i in range(RESUME_STEPS):
                step_id = f"step-{i:04d}"
                digest = sha256_hex({"id": step_id, "kind": "runtime", "payload": {"i": i}})
                prev = copy.deepcopy(state)
                _mutate(state, i)
                store.put(
                    JournalKey(run_id, step_id, 0, 0),
                    {
                        "step_digest": digest,
                        "result": {"exit_code": 0, "stdout": f"step {i} ok\n", "tokens": 128},
                    },
                )
                recorder.record(
                    StepCheckpoint(
                        run_id=run_id,
                        index=i,
                        step_id=step_id,
                        step_digest=digest,
                        status="ok",
                        state_hash=sha256_hex(state),
                        policy_hash=None,
                        delta=diff(prev, state),
                        info={},
                    )
                )
    finally:
        store.close()
    return state


def _resume_once(path: Path, run_id: str, final: dict[str, Any]) -> dict[str, float]:
    """One resume's phases, in ms, on a freshly opened store."""
    ns = time.perf_counter_ns
    t0 = ns()
    store = SQLiteStore(path, SystemClock())
    try:
        t1 = ns()
        checkpoints = StoreRecorder(store).load(run_id)
        t2 = ns()
        state = _resume_state()
        apply_ns = hash_ns = 0
        for cp in checkpoints:
            a = ns()
            state = apply_delta(state, cp.delta)
            b = ns()
            if sha256_hex(state) != cp.state_hash:
                raise RuntimeError(f"state after {cp.step_id} does not match its checkpoint")
            hash_ns += ns() - b
            apply_ns += b - a
        t3 = ns()
        for cp in checkpoints:
            if store.get(JournalKey(run_id, cp.step_id, 0, 0)) is None:
                raise RuntimeError(f"no journal record for {cp.step_id}")
        t4 = ns()
    finally:
        store.close()
    if len(checkpoints) != RESUME_STEPS or state != final:
        raise RuntimeError("the resumed state is not the run's final state")
    return {
        "open": (t1 - t0) / 1e6,
        "load": (t2 - t1) / 1e6,
        "apply": apply_ns / 1e6,
        "hash": hash_ns / 1e6,
        "journal": (t4 - t3) / 1e6,
    }


def _resume(directory: Path) -> None:
    path = directory / "resume.db"
    run_id = "bench-resume-1000"
    start = time.perf_counter()
    final = _build_resume_run(path, run_id)
    build = time.perf_counter() - start
    samples = [_resume_once(path, run_id, final) for _ in range(RESUME_REPEATS)]
    print(
        f"resume: a run with {RESUME_STEPS:,} checkpoints and {RESUME_STEPS:,} journal records "
        f"(built in {build:.2f} s), {RESUME_REPEATS} resumes, each on a freshly opened store:"
    )
    for phase, label in (
        ("open", "open the store (not counted)"),
        ("load", "StoreRecorder.load"),
        ("apply", "apply_delta x 1,000"),
        ("journal", "store.get x 1,000"),
        ("hash", "state-hash check x 1,000"),
    ):
        values = [s[phase] for s in samples]
        print(
            f"  {label:<30} best {min(values):7.2f} ms, median {statistics.median(values):7.2f} ms"
        )
    core = [s["load"] + s["apply"] + s["journal"] for s in samples]
    full = [c + s["hash"] for c, s in zip(core, samples, strict=True)]
    best, median = min(core), statistics.median(core)
    verdict = "meets" if median <= TARGET_RESUME_MS else "MISSES"
    print(
        f"  load + apply + journal reads:  best {best:7.2f} ms, median {median:7.2f} ms "
        f"({verdict} the target of <= {TARGET_RESUME_MS:.0f} ms, median)"
    )
    verdict = "meets" if statistics.median(full) <= TARGET_RESUME_MS else "MISSES"
    print(
        f"  with the state-hash check:     best {min(full):7.2f} ms, median "
        f"{statistics.median(full):7.2f} ms ({verdict} the target, median)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lifeos-bench-checkpoints-") as tmp:
        _checkpoint_size(Path(tmp))
        _resume(Path(tmp))


if __name__ == "__main__":
    main()
