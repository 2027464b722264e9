"""The test harness: scenarios, suites and expectations over mission runs, from YAML."""

from __future__ import annotations

from lifeos.harness.expectations import OPERATORS, Expectation, ExpectationResult, evaluate
from lifeos.harness.loader import load_suite, load_suite_file
from lifeos.harness.suite import (
    MissionRun,
    RunOutcome,
    Scenario,
    Suite,
    TestRunResult,
    run_suite,
)

__all__ = [
    "OPERATORS",
    "Expectation",
    "ExpectationResult",
    "MissionRun",
    "RunOutcome",
    "Scenario",
    "Suite",
    "TestRunResult",
    "evaluate",
    "load_suite",
    "load_suite_file",
    "run_suite",
]
