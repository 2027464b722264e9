"""Spine: orchestration overhead of a whole run per phase, and the cost of resume.

Runs demo tasks (``lifeos.demo.prepare``: ``examples/demo`` as a fresh git repository
with keys, one per run) in this process through ``Spine(SpineDeps(...))`` with the
replay provider over ``examples/demo/cassettes/demo.jsonl`` (built from the demo's
``models:`` as ``lifeos demo`` builds it), which answers at once:

* T-1 (lands: design, 3 builder turns, 2 reviewer lenses: 6 agent calls) and T-3 (lands
  after a review asks for a repair: build and review twice, 11 agent calls),
  ``RUNS`` times each, after one T-1 warm-up run (imports, first use of git and
  SQLite) that is shown but not counted; interleaved (a T-1, a T-3 and a crash and
  resume per round) so load on the machine falls on all alike;
* per phase: wall time (``Spine._run_phase`` wrapped per handler; ``hydrate`` is
  ``start()`` up to the first phase, ``loop+finish`` the run reads between phases and
  the final state write), the time inside agent calls (a timing proxy around each
  role's provider) and inside the project's own test commands (``Spine._run_command``
  for the acceptance checks, the native builder's ``run_command`` tool);
  overhead = wall - agent - tests: everything a run costs but the agents and the
  tests (worktree and git, the gate, journal, checkpoints, ledger, evidence, budget);
* resume: T-1 crashes (an exception no handler catches, as a killed process would
  leave it: the run RUNNING) at its third builder call, after the journal holds the
  build's first records (2 model calls, 2 file writes, the test run); then a fresh
  store, providers and ``Spine`` (a new process) time ``Spine.resume(run_id)``. The
  catch-up (resume checks, worktree reuse and checkout, journal records replayed,
  recorded file changes re-applied: resume entry up to the first live agent call) is
  shown apart, with the time in replayed journal reads and in re-applying changes;
  ``RESUME_RUNS`` times.

The project's tests (``python -m pytest -q``, a new interpreter each time) are most
of a run's wall time; they are measured and subtracted, not part of the figure.

``procs`` counts the subprocesses a phase starts besides the test commands (git).

Target: overhead <= 5% of a run whose agent calls take 1 s each, i.e.
overhead / (overhead + calls x 1 s), for both tasks; judged on the best run of each
(as the other benches take the best of their passes), the median printed beside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.agents import native
from lifeos.agents.api import AgentCall, AgentResponse
from lifeos.agents.factory import build_provider, role_spec
from lifeos.clock import SystemClock
from lifeos.config import load_config
from lifeos.demo import prepare
from lifeos.ledger.keys import load_signer, load_verifier
from lifeos.repo import detect_repo
from lifeos.spine import Spine, SpineDeps
from lifeos.spine.model import PhaseEnv
from lifeos.store import open_store

RUNS = int(os.environ.get("LIFEOS_BENCH_SPINE_RUNS", "4"))
RESUME_RUNS = int(os.environ.get("LIFEOS_BENCH_SPINE_RESUME_RUNS", "3"))
CRASH_AT = 3  # the builder call that "crashes" (T-1 has 3)
AGENT_S = 1.0
TARGET = 0.05
ROLES = ("designer", "builder", "reviewer")
# _run_phase gets the phase last finished; the handler runs the next one.
NEXT = {
    "hydrate": "policy",
    "policy": "design",
    "design": "build",
    "build": "review",
    "review": "steward",
    "steward": "close",
}
LABELS = ("hydrate", "policy", "design", "build", "review", "steward", "close", "loop+finish")


class _Crash(BaseException):  # noqa: N818 - not an error the spine handles: a dying process
    """Raised by the provider at the crash point; nothing in the spine catches it."""


@dataclass
class Recorder:
    """Wall, agent and test time per segment of one ``start()`` or ``resume()``."""

    label: str = "hydrate"
    mark: float = 0.0
    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    agent: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    entries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    procs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    testing: bool = False
    calls: int = 0
    first_live: float | None = None
    procs_first_live: int = 0
    replayed: int = 0
    replay_s: float = 0.0
    reapplied: int = 0
    reapply_s: float = 0.0

    def begin(self, label: str) -> None:
        self.label = label
        self.mark = time.perf_counter()

    def switch(self, label: str) -> None:
        now = time.perf_counter()
        self.wall[self.label] += now - self.mark
        self.label, self.mark = label, now

    def overhead(self) -> dict[str, float]:
        return {k: self.wall[k] - self.agent[k] - self.tests[k] for k in self.wall}


_ACTIVE: list[Recorder] = []  # the recorder the native builder's tools report to


@contextmanager
def _instrumented() -> Iterator[None]:
    """Time the native builder's ``run_command`` tool and its replay re-application;
    count the subprocesses a run starts besides the test commands (git, mostly)."""
    run_command = native._Tools.tool_run_command
    reapply = native._Tools.reapply
    popen_init = subprocess.Popen.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if _ACTIVE and not _ACTIVE[-1].testing:
            _ACTIVE[-1].procs[_ACTIVE[-1].label] += 1
        popen_init(self, *args, **kwargs)

    def timed_run_command(self: Any, name: Any) -> Any:
        rec = _ACTIVE[-1]
        rec.testing = True
        start = time.perf_counter()
        try:
            return run_command(self, name)
        finally:
            rec.tests[rec.label] += time.perf_counter() - start
            rec.testing = False

    def timed_reapply(self: Any, changes: Any) -> None:
        rec = _ACTIVE[-1]
        start = time.perf_counter()
        try:
            reapply(self, changes)
        finally:
            rec.reapplied += len(changes)
            rec.reapply_s += time.perf_counter() - start

    native._Tools.tool_run_command = timed_run_command  # type: ignore[method-assign]
    native._Tools.reapply = timed_reapply  # type: ignore[method-assign]
    subprocess.Popen.__init__ = counting_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        native._Tools.tool_run_command = run_command  # type: ignore[method-assign]
        native._Tools.reapply = reapply  # type: ignore[method-assign]
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]


class TimedProvider:
    """Times each call of a provider; raises ``_Crash`` at builder call ``crash_at``."""

    def __init__(self, inner: Any, rec: Recorder, crash_at: int | None = None) -> None:
        self.inner, self.rec, self.crash_at, self.count = inner, rec, crash_at, 0

    def call(self, request: AgentCall) -> AgentResponse:
        self.count += 1
        if self.count == self.crash_at:
            raise _Crash
        start = time.perf_counter()
        if self.rec.first_live is None:
            self.rec.first_live = start
            self.rec.procs_first_live = sum(self.rec.procs.values())
        try:
            return self.inner.call(request)  # type: ignore[no-any-return]
        finally:
            self.rec.agent[self.rec.label] += time.perf_counter() - start
            self.rec.calls += 1


class TimedEnv(PhaseEnv):
    """Times the journal reads of replayed side effects."""

    rec: Recorder

    def once(
        self, call: Callable[[], Any], also: Callable[[Any], None] | None = None
    ) -> tuple[Any, bool]:
        start = time.perf_counter()
        result, replayed = super().once(call, also)
        if replayed:
            self.rec.replayed += 1
            self.rec.replay_s += time.perf_counter() - start
        return result, replayed


class TimedSpine(Spine):
    """The spine with its phases, acceptance checks and journal timed."""

    def __init__(self, deps: SpineDeps, rec: Recorder) -> None:
        super().__init__(deps)
        self.rec = rec

    def _run_phase(self, run_id: str, phase: str, config: dict[str, Any]) -> str:
        self.rec.switch(NEXT.get(phase, phase))
        self.rec.entries[self.rec.label] += 1
        try:
            return super()._run_phase(run_id, phase, config)
        finally:
            self.rec.switch("loop+finish")

    def _run_command(self, cwd: Path, name: str) -> dict[str, Any]:
        self.rec.testing = True
        start = time.perf_counter()
        try:
            return super()._run_command(cwd, name)
        finally:
            self.rec.tests[self.rec.label] += time.perf_counter() - start
            self.rec.testing = False

    def _env(self, run_id: str, phase: str, attempt: int, inputs: Any) -> PhaseEnv:
        env = TimedEnv(self.store, run_id, phase, attempt, inputs)
        env.rec = self.rec
        return env


@dataclass
class Opened:
    spine: TimedSpine
    store: Any
    rec: Recorder


def _open(repo: Path, crash_at: int | None = None) -> Opened:
    """Store, providers (cassette loaded) and spine of ``repo``, as a new process has them."""
    where = detect_repo(repo)
    settings = load_config(repo).data
    store = open_store(where.lifeos_dir, SystemClock())
    rec = Recorder()
    providers = {}
    for role in ROLES:
        name, spec = role_spec(settings["models"], role)
        inner = build_provider(name, spec, os.environ, repo)
        providers[role] = TimedProvider(inner, rec, crash_at if role == "builder" else None)
    deps = SpineDeps(
        repo=where,
        store=store,
        clock=SystemClock(),
        settings=settings,
        provider_for=providers.__getitem__,
        signer=load_signer(where),
        verifier=load_verifier(where),
    )
    return Opened(TimedSpine(deps, rec), store, rec)


@dataclass
class Run:
    rec: Recorder
    wall: float
    calls: int
    state: str


def _run_task(workdir: Path, task: str) -> Run:
    opened = _open(prepare(workdir))
    rec = opened.rec
    _ACTIVE.append(rec)
    try:
        rec.begin("hydrate")
        start = time.perf_counter()
        outcome = opened.spine.start(task)
        wall = time.perf_counter() - start
        rec.switch("-")
    finally:
        _ACTIVE.pop()
        opened.store.close()
    assert outcome.state.value == "LANDED", (task, outcome.state, outcome.reasons)
    assert outcome.agent_calls == rec.calls, (outcome.agent_calls, rec.calls)
    return Run(rec, wall, outcome.agent_calls, outcome.state.value)


@dataclass
class Resumed:
    crashed: Run
    resumed: Run
    catch_up: float


def _crash_and_resume(workdir: Path) -> Resumed:
    repo = prepare(workdir)
    opened = _open(repo, crash_at=CRASH_AT)
    rec = opened.rec
    _ACTIVE.append(rec)
    try:
        rec.begin("hydrate")
        start = time.perf_counter()
        try:
            opened.spine.start("T-1")
            raise AssertionError("the run did not crash")
        except _Crash:
            wall = time.perf_counter() - start
            rec.switch("-")
        runs = opened.store.list_runs()
    finally:
        _ACTIVE.pop()
        opened.store.close()
    assert len(runs) == 1 and str(runs[0]["status"]).upper() == "RUNNING", runs
    run_id = runs[0]["run_id"]
    crashed = Run(rec, wall, rec.calls, "crashed")

    again = _open(repo)
    rec2 = again.rec
    _ACTIVE.append(rec2)
    try:
        rec2.begin("resume")
        start = time.perf_counter()
        outcome = again.spine.resume(run_id)
        wall = time.perf_counter() - start
        rec2.switch("-")
    finally:
        _ACTIVE.pop()
        again.store.close()
    assert outcome.state.value == "LANDED", (outcome.state, outcome.reasons)
    assert rec2.first_live is not None
    resumed = Run(rec2, wall, rec2.calls, outcome.state.value)
    return Resumed(crashed, resumed, rec2.first_live - start)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(overhead: float, calls: int) -> float:
    return overhead / (overhead + calls * AGENT_S)


def _report(task: str, runs: list[Run], warm: Run | None = None) -> float:
    """Print a task's table; return its best ratio."""
    calls = runs[0].calls
    print(
        f"{task}: {runs[0].state}, {calls} agent calls; {len(runs)} runs (fresh repository "
        "each); ms, median of the runs [best]"
    )
    print(
        f"  {'phase':12s} {'wall':>8s} {'agent':>8s} {'tests':>8s} {'overhead':>8s}"
        f" {'[best]':>8s} {'procs':>5s}"
    )
    for label in LABELS:
        if not any(label in r.rec.wall for r in runs):
            continue
        over = [r.rec.overhead().get(label, 0.0) for r in runs]
        times = max(r.rec.entries.get(label, 1) for r in runs)
        name = f"{label} x{times}" if times > 1 else label
        print(
            f"  {name:12s} {_ms(_med([r.rec.wall[label] for r in runs]))}"
            f" {_ms(_med([r.rec.agent[label] for r in runs]))}"
            f" {_ms(_med([r.rec.tests[label] for r in runs]))}"
            f" {_ms(_med(over))} {'[' + f'{min(over) * 1000:.1f}' + ']':>8s}"
            f" {max(r.rec.procs.get(label, 0) for r in runs):5d}"
        )
    totals = [sum(r.rec.overhead().values()) for r in runs]
    print(
        f"  {'total':12s} {_ms(_med([r.wall for r in runs]))}"
        f" {_ms(_med([sum(r.rec.agent.values()) for r in runs]))}"
        f" {_ms(_med([sum(r.rec.tests.values()) for r in runs]))}"
        f" {_ms(_med(totals))} {'[' + f'{min(totals) * 1000:.1f}' + ']':>8s}"
        f" {max(sum(r.rec.procs.values()) for r in runs):5d}"
    )
    if warm is not None:
        warm_over = sum(warm.rec.overhead().values())
        print(
            f"  warm-up run, not counted (first in the process, imports included): "
            f"overhead {warm_over * 1000:.1f} ms"
        )
    best = _ratio(min(totals), calls)
    print(
        f"  overhead / (overhead + {calls} calls x {AGENT_S:g} s): best {best:.2%}, "
        f"median {_ratio(_med(totals), calls):.2%} (target <= {TARGET:.0%})"
    )
    return best


def _report_resume(results: list[Resumed]) -> None:
    print(
        f"resume: T-1 crashed at builder call {CRASH_AT} of 3, then Spine.resume in a fresh "
        f"store and spine; {len(results)} runs, ms, median [best]"
    )
    crashed = [sum(r.crashed.rec.overhead().values()) for r in results]
    resumed = [sum(r.resumed.rec.overhead().values()) for r in results]
    catch_up = [r.catch_up for r in results]
    res = results[0].resumed.rec
    print(
        f"  crashed run up to the crash: wall {_ms(_med([r.crashed.wall for r in results]))}"
        f"  overhead {_ms(_med(crashed))} [{min(crashed) * 1000:.1f}]"
    )
    print(
        f"  Spine.resume:               wall {_ms(_med([r.resumed.wall for r in results]))}"
        f"  agent {_ms(_med([sum(r.resumed.rec.agent.values()) for r in results]))}"
        f" ({res.calls} live calls)"
        f"  tests {_ms(_med([sum(r.resumed.rec.tests.values()) for r in results]))}"
        f"  overhead {_ms(_med(resumed))} [{min(resumed) * 1000:.1f}]"
    )
    print(
        f"    catch-up (checks, worktree reuse + checkout, {res.replayed} journal records "
        f"replayed, {res.reapplied} file changes re-applied, {res.procs_first_live} "
        f"subprocesses): {_med(catch_up) * 1000:.1f} [{min(catch_up) * 1000:.1f}]"
    )
    journal = _med([r.resumed.rec.replay_s for r in results])
    reapply = _med([r.resumed.rec.reapply_s for r in results])
    print(
        f"      of which replayed journal reads {journal * 1000:.1f}, "
        f"re-applying file changes {reapply * 1000:.1f}"
    )
    rest = [o - c for o, c in zip(resumed, catch_up, strict=True)]
    print(
        f"    the remaining work (build on, review, steward, close): "
        f"{_med(rest) * 1000:.1f} [{min(rest) * 1000:.1f}]"
    )


def main() -> int:
    # The demo's checks run `python`: the interpreter LifeOS runs on (as `lifeos demo`).
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old_path}"
    ratios = []
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPU(s) at the start")
    try:
        with _instrumented(), tempfile.TemporaryDirectory(prefix="lifeos-bench-spine-") as tmp:
            count = 0

            def workdir() -> Path:
                nonlocal count
                count += 1
                path = Path(tmp) / f"w{count}"
                path.mkdir()
                return path

            warm = _run_task(workdir(), "T-1")
            # Interleaved, one of each per round, so load on the machine falls on all alike.
            t1: list[Run] = []
            t3: list[Run] = []
            resumed: list[Resumed] = []
            for i in range(max(RUNS, RESUME_RUNS)):
                if i < RUNS:
                    t1.append(_run_task(workdir(), "T-1"))
                    t3.append(_run_task(workdir(), "T-3"))
                if i < RESUME_RUNS:
                    resumed.append(_crash_and_resume(workdir()))
        ratios.append(_report("T-1", t1, warm))
        ratios.append(_report("T-3", t3))
        _report_resume(resumed)
    finally:
        os.environ["PATH"] = old_path
    ok = all(r <= TARGET for r in ratios)
    print(
        f"{'PASS' if ok else 'MISS'}: overhead <= {TARGET:.0%} of a run with 1 s agent calls "
        f"(best run of each task: {', '.join(f'{r:.2%}' for r in ratios)})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
