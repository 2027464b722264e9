"""Scenarios (sequences of mission runs), suites (sequences of scenarios), and their result.

Within a scenario each run starts from the state the previous run ended with,
unless the run gives its own ``state``. A :class:`TestRunResult` is
deterministic: the same suite gives the same ``to_dict()`` and the same hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.canonical import sha256_hex
from lifeos.engine import Decision, ExecutionContext, Orchestrator, WorkflowDefinition
from lifeos.errors import INPUT_REASONS, ReasonCode
from lifeos.harness.expectations import Expectation, ExpectationResult, evaluate

__all__ = ["MissionRun", "RunOutcome", "Scenario", "Suite", "TestRunResult", "run_suite"]

# Result paths that show a run expects to stop; such a run may end on bad input.
_OUTCOME_PATHS = ("status", "success", "reason_code", "error_message", "failed_step_id")


@dataclass
class MissionRun:
    """One mission or inline workflow to run, and what to expect of its result."""

    workflow: WorkflowDefinition
    label: str
    state: dict[str, Any] | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)
    expect: list[Expectation] = field(default_factory=list)
    line: int | None = None


@dataclass
class Scenario:
    """A named sequence of runs sharing state."""

    name: str
    runs: list[MissionRun]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """A named sequence of scenarios."""

    name: str
    scenarios: list[Scenario]
    base_dir: Path = field(default_factory=lambda: Path("."))


@dataclass
class RunOutcome:
    """A run's status, its result's hash and its expectations' verdicts."""

    scenario: str
    index: int
    label: str
    workflow_id: str
    status: str
    reason_code: str | None
    error_message: str | None
    result_hash: str
    checks: list[ExpectationResult]

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return {
            "error_message": self.error_message,
            "expectations": [c.to_dict() for c in self.checks],
            "index": self.index,
            "label": self.label,
            "passed": self.passed,
            "reason_code": self.reason_code,
            "result_hash": self.result_hash,
            "status": self.status,
            "workflow_id": self.workflow_id,
        }


@dataclass
class TestRunResult:
    """Every run of a suite; ``hash`` is stable across identical runs."""

    __test__ = False  # not a pytest test class

    suite: str
    outcomes: list[RunOutcome]
    bad_input: str | None = None
    """Why the file counts as bad input although it validated (a run stopped on bad input)."""
    bad_reason: str | None = None
    """The reason code of that stop."""

    @property
    def passed(self) -> bool:
        """True when every expectation of every run held."""
        return self.bad_input is None and all(o.passed for o in self.outcomes)

    def _body(self) -> dict[str, Any]:
        scenarios: dict[str, list[dict[str, Any]]] = {}
        for o in self.outcomes:
            scenarios.setdefault(o.scenario, []).append(o.to_dict())
        checks = [c for o in self.outcomes for c in o.checks]
        return {
            "bad_input": self.bad_input,
            "passed": self.passed,
            "scenarios": [
                {"name": name, "passed": all(r["passed"] for r in runs), "runs": runs}
                for name, runs in scenarios.items()
            ],
            "suite": self.suite,
            "totals": {
                "expectations": len(checks),
                "failed": sum(1 for c in checks if not c.passed),
                "runs": len(self.outcomes),
                "scenarios": len(scenarios),
            },
        }

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical result."""
        return sha256_hex(self._body())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict including the hash."""
        return {**self._body(), "hash": self.hash}


def run_suite(suite: Suite, orchestrator: Orchestrator | None = None) -> TestRunResult:
    """Run every scenario of ``suite`` and check its expectations."""
    orch = orchestrator or Orchestrator()
    outcomes: list[RunOutcome] = []
    bad_input: str | None = None
    bad_reason: str | None = None
    metadata = {"repo_root": str(suite.base_dir)}
    for scenario in suite.scenarios:
        state = scenario.state
        for index, run in enumerate(scenario.runs):
            initial = run.state if run.state is not None else state
            result = orch.run_workflow(
                run.workflow,
                ExecutionContext(initial_state=initial, metadata=metadata),
                decisions=run.decisions,
            )
            as_dict = result.to_dict()
            checks = [evaluate(e, as_dict) for e in run.expect]
            outcomes.append(
                RunOutcome(
                    scenario=scenario.name,
                    index=index,
                    label=run.label,
                    workflow_id=result.id,
                    status=result.status,
                    reason_code=result.reason_code,
                    error_message=result.error_message,
                    result_hash=sha256_hex(as_dict),
                    checks=checks,
                )
            )
            if (
                bad_input is None
                and result.reason_code is not None
                and ReasonCode(result.reason_code) in INPUT_REASONS
                and not any(e.path.split(".")[0] in _OUTCOME_PATHS for e in run.expect)
            ):
                where = f" (line {run.line})" if run.line else ""
                bad_input = f"scenario '{scenario.name}' run {index}{where}: {result.error_message}"
                bad_reason = result.reason_code
            state = result.final_state
    return TestRunResult(suite.name, outcomes, bad_input, bad_reason)
