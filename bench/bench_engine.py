"""Engine step cost: µs per step of a 5-step state-mutation workflow.

Measures: one Orchestrator (constructed once) runs a 5-step workflow of runtime
steps (set, append, calc add, calc mul, set from) on a 5-key state through
``Orchestrator.run_workflow`` many times; the figure is the wall time per step,
including validation and the defensive copies ``run_workflow`` makes per run.

Target: <= 30 µs per step, and LangGraph/LifeOS >= 10x.

Reference: the same five mutations as a LangGraph ``StateGraph`` of five chained
nodes over a dict (TypedDict) state, compiled once and invoked many times in the
same process run. Each node returns its update, the idiomatic LangGraph form.
Both sides are checked to reach the same final state before anything is timed.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

from lifeos.engine import ExecutionContext, Orchestrator, StepSpec, WorkflowDefinition

STEPS = 5
LIFEOS_RUNS = 20_000
LANGGRAPH_RUNS = 2_000
REPEATS = 5
WARMUP_RUNS = 500
TARGET_US_PER_STEP = 30.0
TARGET_RATIO = 10.0

INITIAL_STATE: dict[str, Any] = {
    "a": 2,
    "b": 3,
    "log": [],
    "status": "idle",
    "user": {"name": "bench"},
}
EXPECTED_FINAL: dict[str, Any] = {
    **INITIAL_STATE,
    "log": ["started"],
    "status": "running",
    "total": 5,
    "product": 15,
    "result": 15,
}


def workflow() -> WorkflowDefinition:
    """The five state-mutation steps every step-cost benchmark runs."""
    return WorkflowDefinition(
        id="bench-engine",
        steps=[
            StepSpec("set", "runtime", {"operation": "set", "path": "status", "value": "running"}),
            StepSpec(
                "append", "runtime", {"operation": "append", "path": "log", "value": "started"}
            ),
            StepSpec(
                "add",
                "runtime",
                {
                    "operation": "calc",
                    "path": "total",
                    "op": "add",
                    "args": [{"path": "a"}, {"path": "b"}],
                },
            ),
            StepSpec(
                "mul",
                "runtime",
                {
                    "operation": "calc",
                    "path": "product",
                    "op": "mul",
                    "args": [{"path": "total"}, 3],
                },
            ),
            StepSpec(
                "set-from", "runtime", {"operation": "set", "path": "result", "from": "product"}
            ),
        ],
    )


def _time_runs(call: Callable[[], object], runs: int) -> list[float]:
    """Return µs per step for each of REPEATS timed batches of ``runs`` calls."""
    for _ in range(WARMUP_RUNS):
        call()
    per_step: list[float] = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(runs):
            call()
        elapsed = time.perf_counter_ns() - start
        per_step.append(elapsed / runs / STEPS / 1000.0)
    return per_step


def _lifeos_call() -> Callable[[], object]:
    orchestrator = Orchestrator()
    wf = workflow()
    ctx = ExecutionContext(initial_state=copy.deepcopy(INITIAL_STATE))
    result = orchestrator.run_workflow(wf, ctx)
    if result.status != "completed" or result.final_state != EXPECTED_FINAL:
        raise RuntimeError(f"LifeOS workflow did not run as expected: {result.to_dict()}")

    def call() -> object:
        return orchestrator.run_workflow(wf, ctx)

    return call


def langgraph_graph() -> Any:
    """The same five mutations as a LangGraph StateGraph (not compiled)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        a: int
        b: int
        log: list[str]
        status: str
        user: dict[str, str]
        total: int
        product: int
        result: int

    def set_status(state: State) -> dict[str, Any]:
        return {"status": "running"}

    def append_log(state: State) -> dict[str, Any]:
        return {"log": [*state["log"], "started"]}

    def add(state: State) -> dict[str, Any]:
        return {"total": state["a"] + state["b"]}

    def mul(state: State) -> dict[str, Any]:
        return {"product": state["total"] * 3}

    def set_from(state: State) -> dict[str, Any]:
        return {"result": state["product"]}

    graph = StateGraph(State)
    previous = START
    for name, node in (
        ("set", set_status),
        ("append", append_log),
        ("add", add),
        ("mul", mul),
        ("set-from", set_from),
    ):
        graph.add_node(name, node)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph


def _langgraph_call() -> Callable[[], object]:
    app = langgraph_graph().compile()

    initial = copy.deepcopy(INITIAL_STATE)
    final = app.invoke(initial)
    if dict(final) != EXPECTED_FINAL:
        raise RuntimeError(f"LangGraph workflow did not run as expected: {final}")

    def call() -> object:
        return app.invoke(initial)

    return call


def _summary(label: str, runs: int, per_step: list[float]) -> tuple[float, float]:
    best, median = min(per_step), statistics.median(per_step)
    print(
        f"{label:<10} {runs:>6} runs x {REPEATS} repeats: "
        f"best {best:8.2f} µs/step, median {median:8.2f} µs/step "
        f"({best * STEPS:8.1f} µs/run best)"
    )
    return best, median


def main() -> None:
    print(
        "5-step workflow (set, append, calc add, calc mul, set from), "
        f"{len(INITIAL_STATE)}-key state"
    )
    lifeos_best, lifeos_median = _summary(
        "LifeOS", LIFEOS_RUNS, _time_runs(_lifeos_call(), LIFEOS_RUNS)
    )
    verdict = "meets" if lifeos_best <= TARGET_US_PER_STEP else "MISSES"
    print(f"LifeOS {verdict} the target of <= {TARGET_US_PER_STEP:.0f} µs/step (best)")

    try:
        langgraph_call = _langgraph_call()
    except ImportError as exc:
        print(
            f"LangGraph reference skipped: langgraph is not importable ({exc}); "
            "the 'bench' extra installs it (pip install -e '.[bench]')"
        )
        return
    lg_best, lg_median = _summary(
        "LangGraph", LANGGRAPH_RUNS, _time_runs(langgraph_call, LANGGRAPH_RUNS)
    )
    ratio_best = lg_best / lifeos_best
    ratio_median = lg_median / lifeos_median
    verdict = "meets" if ratio_best >= TARGET_RATIO else "MISSES"
    print(
        f"ratio LangGraph/LifeOS: {ratio_best:.1f}x (best), {ratio_median:.1f}x (median); "
        f"{verdict} the target of >= {TARGET_RATIO:.0f}x"
    )


if __name__ == "__main__":
    main()
