"""Crash a recorded run with SIGKILL at random moments and resume it until it completes.

A child process runs a workflow of tool steps through ``run_recorded`` on a
SQLite store. The tool's side effect is a counter kept in a separate file (read,
+1, write, fsync, rename). The parent kills the child at a random moment, checks
the store (ledger verifies, never shrinks, nothing acknowledged is lost), pins the
ledger with a signed checkpoint, and starts the child again with the same run id.

The window between a side effect and its journal commit cannot be closed by the
engine alone; the tool closes it with the idempotency key the engine hands it
(``Tool(takes_key=True)`` -> ``idempotency_key="run:step:attempt:call"``): the
counter file records the keys it applied, so a call repeated after a crash in that
window is recognised and not applied twice. Every trial must end with the counter
equal to the number of tool steps and every key applied exactly once.

``bench/reliability_crash.py`` runs the same trial many times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lifeos.clock import FixedClock
from lifeos.journal import JournalKey
from lifeos.ledger.chain import sign_checkpoint, verify_store
from lifeos.ledger.note import Signer
from lifeos.store.sqlite import SQLiteStore

RUN_ID = "crash-run"
TOOL_STEPS = ("s1", "s2", "s3", "s4")

CHILD_CODE = r"""
import json, os, signal, sys, time
from pathlib import Path

from lifeos.clock import SystemClock
from lifeos.durable import StoreRecorder, run_recorded
from lifeos.engine import ExecutionContext, Orchestrator, StepSpec, WorkflowDefinition
from lifeos.services import Services, Tool, ToolRegistry
from lifeos.store.sqlite import SQLiteStore

db_path, counter_path, run_id = sys.argv[1:4]
steps = sys.argv[4].split(",")
pause = float(os.environ.get("CRASH_TOOL_SLEEP", "0.025"))
crash_after = os.environ.get("CRASH_AFTER_APPLY", "")
counter = Path(counter_path)


def write_durably(data):
    tmp = counter.with_name(counter.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, counter)
    fd = os.open(counter.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bump(label, idempotency_key):
    time.sleep(pause)
    if counter.exists():
        data = json.loads(counter.read_text(encoding="utf-8"))
    else:
        data = {"count": 0, "applied": {}, "invocations": {}}
    data["invocations"][idempotency_key] = data["invocations"].get(idempotency_key, 0) + 1
    first = idempotency_key not in data["applied"]
    if first:
        data["count"] += 1
        data["applied"][idempotency_key] = data["count"]
    write_durably(data)
    if first and label == crash_after:
        os.kill(os.getpid(), signal.SIGKILL)  # after the side effect, before the journal
    time.sleep(pause)
    return data["applied"][idempotency_key]


store = SQLiteStore(db_path, SystemClock())
real_put = store.put


def put(key, record):
    real_put(key, record)
    print("ack journal", key.step, flush=True)


store.put = put
real_record = StoreRecorder.record


def record(self, checkpoint):
    real_record(self, checkpoint)
    print("ack ledger", self.store.ledger_size(), flush=True)


StoreRecorder.record = record
tools = ToolRegistry([Tool("bump", bump, required={"label": str}, takes_key=True)])
workflow = WorkflowDefinition(
    id="wf-crash",
    steps=[
        *(StepSpec(s, "runtime", {"operation": "tool_invoke", "tool": "bump",
                                  "args": {"label": s}}) for s in steps),
        StepSpec("finish", "runtime", {"operation": "set", "path": "done", "value": True}),
    ],
)
print("ready", flush=True)
result = run_recorded(
    store, Orchestrator(services=Services(tools=tools)), workflow,
    ExecutionContext(initial_state={}), run_id, kind="workflow", name="crash",
)
print("ack ledger", store.ledger_size(), flush=True)
print("result", json.dumps({"status": result.status, "final_state": result.final_state,
                            "reason_code": result.reason_code}, sort_keys=True), flush=True)
store.close()
"""


@dataclass
class Trial:
    """What one trial saw: kills, restarts, the counter file and any broken promise."""

    seed: int
    kills: int = 0
    runs: int = 0
    completed: bool = False
    count: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    invocations: dict[str, int] = field(default_factory=dict)
    ledger_sizes: list[int] = field(default_factory=list)
    verify_failures: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_invocations(self) -> int:
        """The most calls any one idempotency key received (over 1: a crash in the window)."""
        return max(self.invocations.values(), default=0)

    @property
    def repeated_effects(self) -> int:
        """Side effects applied more than once (must be 0)."""
        return self.count - len(TOOL_STEPS)


def _key(step: str) -> str:
    return f"{RUN_ID}:{step}:0:0"


def _wait_for_ready(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> bool:
    """Wait until the child printed ``ready`` (its store is open) or ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.read_bytes().startswith(b"ready\n"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _inspect(trial: Trial, db: Path, signer: Signer, acks: list[str], when: str) -> None:
    """Check the store after a child ended; pin its ledger with a signed checkpoint."""
    if not db.exists():
        return
    store = SQLiteStore(db, FixedClock())
    try:
        report = verify_store(store, signer.verifier())
        if not report.ok:
            trial.verify_failures += 1
            trial.problems.append(f"{when}: ledger verify failed: {report.to_dict()}")
        size = store.ledger_size()
        if trial.ledger_sizes and size < trial.ledger_sizes[-1]:
            trial.problems.append(f"{when}: ledger shrank {trial.ledger_sizes[-1]} -> {size}")
        trial.ledger_sizes.append(size)
        keys = set(store.journal_keys(RUN_ID))
        for line in acks:
            kind, _, what = line.partition(" ")
            if kind == "journal" and JournalKey(RUN_ID, what, 0, 0) not in keys:
                trial.problems.append(f"{when}: acknowledged journal record {what} is lost")
            if kind == "ledger" and int(what) > size:
                trial.problems.append(f"{when}: acknowledged ledger size {what} > {size}")
        if report.ok:
            sign_checkpoint(store, signer)
    finally:
        store.close()


def run_trial(
    workdir: Path,
    seed: int,
    *,
    max_kills: int = 3,
    max_delay: float = 0.3,
    self_kill_step: str | None = None,
    max_runs: int = 25,
) -> Trial:
    """Run the workflow in child processes, killing some at random, until it completes."""
    started = time.perf_counter()
    rng = random.Random(seed)
    trial = Trial(seed=seed)
    workdir.mkdir(parents=True, exist_ok=True)
    db, counter = workdir / "lifeos.db", workdir / "counter.json"
    signer = Signer.generate("lifeos/crash-test")
    env = {**os.environ, "CRASH_TOOL_SLEEP": f"{rng.uniform(0.02, 0.05):.3f}"}
    if self_kill_step:
        env["CRASH_AFTER_APPLY"] = self_kill_step
    kills_left = rng.randint(1, max_kills) if max_kills else 0
    argv = [sys.executable, "-c", CHILD_CODE, str(db), str(counter), RUN_ID, ",".join(TOOL_STEPS)]
    final: dict[str, object] | None = None
    for attempt in range(max_runs):
        trial.runs += 1
        out_path, err_path = workdir / f"run-{attempt}.out", workdir / f"run-{attempt}.err"
        with out_path.open("wb") as out_fh, err_path.open("wb") as err_fh:
            proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out_fh, stderr=err_fh)
        killed = False
        if kills_left > 0:
            if rng.random() < 0.15:  # during start-up: imports, opening, migrating
                time.sleep(rng.uniform(0.0, max_delay))
            elif _wait_for_ready(proc, out_path, 60.0):
                time.sleep(rng.uniform(0.0, max_delay))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed = True
                kills_left -= 1
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            trial.problems.append(f"run {attempt}: the child hung")
        out = out_path.read_text(encoding="utf-8", errors="replace")
        err = err_path.read_text(encoding="utf-8", errors="replace")
        if proc.returncode == -signal.SIGKILL:
            trial.kills += 1
        elif proc.returncode != 0:
            trial.problems.append(f"run {attempt}: exit {proc.returncode}: {err.strip()[-2000:]}")
        lines = out.splitlines()
        acks = [ln.removeprefix("ack ") for ln in lines if ln.startswith("ack ")]
        _inspect(trial, db, signer, acks, f"run {attempt} ({'killed' if killed else 'ran'})")
        results = [ln.removeprefix("result ") for ln in lines if ln.startswith("result ")]
        if results and proc.returncode == 0:
            final = json.loads(results[-1])
            break
    if final is None:
        trial.problems.append(f"no completed run after {trial.runs} runs")
    else:
        trial.completed = final["status"] == "completed"
        if not trial.completed:
            trial.problems.append(f"the run ended {final}")
        expected = {"tool_results": {s: i + 1 for i, s in enumerate(TOOL_STEPS)}, "done": True}
        if final["final_state"] != expected:
            trial.problems.append(f"final state {final['final_state']} != {expected}")
    if counter.exists():
        data = json.loads(counter.read_text(encoding="utf-8"))
        trial.count, trial.applied = data["count"], data["applied"]
        trial.invocations = data["invocations"]
    expected_applied = {_key(s): i + 1 for i, s in enumerate(TOOL_STEPS)}
    if trial.count != len(TOOL_STEPS) or trial.applied != expected_applied:
        trial.problems.append(f"counter {trial.count}, applied {trial.applied}")
    store = SQLiteStore(db, FixedClock())
    try:
        run = store.get_run(RUN_ID)
        if run is None or run["status"] != "completed":
            trial.problems.append(f"stored run: {run}")
        if [c["step_id"] for c in store.list_checkpoints(RUN_ID)] != [*TOOL_STEPS, "finish"]:
            trial.problems.append("checkpoints do not cover every step once")
        if sorted(store.journal_keys(RUN_ID)) != [JournalKey(RUN_ID, s, 0, 0) for s in TOOL_STEPS]:
            trial.problems.append(f"journal keys {store.journal_keys(RUN_ID)}")
        report = verify_store(store, signer.verifier())
        if not report.ok:
            trial.verify_failures += 1
            trial.problems.append(f"final verify: {report.to_dict()}")
    finally:
        store.close()
    trial.seconds = time.perf_counter() - started
    return trial


def test_crash_between_side_effect_and_journal_applies_once(tmp_path: Path) -> None:
    """The tool kills its own process right after applying s2: the replay must not re-apply."""
    trial = run_trial(tmp_path / "window", seed=1, max_kills=0, self_kill_step="s2")
    assert trial.problems == [], trial
    assert trial.kills == 1 and trial.runs == 2, trial
    assert trial.invocations[_key("s2")] == 2, trial  # called again after the crash ...
    assert trial.count == len(TOOL_STEPS)  # ... but applied once
    assert all(trial.invocations[_key(s)] == 1 for s in TOOL_STEPS if s != "s2"), trial


def test_random_sigkills_then_resume(tmp_path: Path) -> None:
    base = random.SystemRandom().randrange(2**32)
    trials = [run_trial(tmp_path / f"trial-{i}", seed=base + i) for i in range(5)]
    for trial in trials:
        assert trial.problems == [], f"seed {trial.seed}: {trial}"
        assert trial.completed and trial.count == len(TOOL_STEPS)
        assert trial.ledger_sizes == sorted(trial.ledger_sizes)
        assert trial.verify_failures == 0
    assert sum(t.kills for t in trials) >= 1, trials
