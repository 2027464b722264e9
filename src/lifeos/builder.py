"""The Tier-2 builder: MissionSpec -> WorkflowDefinition, within the limits by construction.

``build_workflow`` is a pure function: the same spec always gives the same
workflow. Requests beyond the Anti-Failure limits are truncated
deterministically; a template that still breaks them raises
:class:`AntiFailurePlanningError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lifeos.engine import StepSpec, WorkflowDefinition
from lifeos.errors import AntiFailurePlanningError, InputError, UnknownMissionError

__all__ = [
    "MAX_HUMAN_STEPS",
    "MAX_TOTAL_STEPS",
    "AntiFailurePlanningError",
    "MissionSpec",
    "build_workflow",
    "template_types",
]

MAX_TOTAL_STEPS = 5
MAX_HUMAN_STEPS = 2
ALLOWED_KINDS = frozenset({"runtime", "human"})


@dataclass
class MissionSpec:
    """A mission type and its parameters."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)


def _sorted(params: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(params.items())) if params else {}


def _count(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"'{key}' must be a whole number >= 0, not {value!r}")
    return value


def _build_daily_loop(params: dict[str, Any]) -> WorkflowDefinition:
    """Summarise yesterday, rank priorities, a human confirms them, log, archive.

    Default: 4 steps, 1 human. ``requested_steps`` and ``requested_human_steps``
    are truncated to the limits; steps are dropped from the end.
    """
    requested = min(_count(params, "requested_steps", 4), MAX_TOTAL_STEPS)
    human = min(_count(params, "requested_human_steps", 1), MAX_HUMAN_STEPS)
    plan: list[StepSpec] = [
        StepSpec(
            "daily-summarise-yesterday",
            "runtime",
            {"operation": "summarise_entries", "description": "Summarise yesterday's entries"},
        ),
        StepSpec(
            "daily-generate-priorities",
            "runtime",
            {"operation": "rank_priorities", "description": "Generate today's priorities"},
        ),
    ]
    if human >= 1:
        plan.append(
            StepSpec(
                "daily-confirm-priorities", "human", {"description": "Confirm today's priorities"}
            )
        )
    plan.append(
        StepSpec(
            "daily-log-summary",
            "runtime",
            {"operation": "log_summary", "description": "Log daily summary"},
        )
    )
    plan.append(
        StepSpec(
            "daily-archive",
            "runtime",
            {"operation": "archive_entries", "description": "Archive completed items"},
        )
    )
    steps = plan[: max(requested, 1)]
    return WorkflowDefinition(
        id="wf-daily-loop",
        steps=steps,
        metadata={"mission_type": "daily_loop", "params": _sorted(params)},
    )


def _build_run_tests(params: dict[str, Any]) -> WorkflowDefinition:
    """Discover, execute and report a pytest suite: 3 runtime steps."""
    target = params.get("target", ".")
    common = {
        k: v for k, v in params.items() if k in ("target", "pytest_args", "timeout", "python")
    }
    steps = [
        StepSpec(
            "tests-discover",
            "runtime",
            {
                "operation": "mission",
                "mission_type": "run_tests",
                "params": _sorted({**common, "mode": "discover"}),
                "description": f"Discover tests in {target}",
            },
        ),
        StepSpec(
            "tests-execute",
            "runtime",
            {
                "operation": "mission",
                "mission_type": "run_tests",
                "params": _sorted({**common, "mode": "execute"}),
                "description": f"Execute tests for {target}",
            },
        ),
        StepSpec(
            "tests-report",
            "runtime",
            {"operation": "tests_report", "description": "Generate test report"},
        ),
    ]
    return WorkflowDefinition(
        id="wf-run-tests",
        steps=steps,
        metadata={"mission_type": "run_tests", "type": "run_tests", "params": _sorted(params)},
    )


_MISSION_BUILDERS: dict[str, Callable[[dict[str, Any]], WorkflowDefinition]] = {
    "daily_loop": _build_daily_loop,
    "run_tests": _build_run_tests,
}


def template_types() -> list[str]:
    """Return the mission types the builder has templates for, sorted."""
    return sorted(_MISSION_BUILDERS)


def build_workflow(mission: MissionSpec) -> WorkflowDefinition:
    """Build the workflow for ``mission``.

    Raises:
        UnknownMissionError: no template for the type (a ValueError too).
        AntiFailurePlanningError: the template would break the limits.
    """
    builder = _MISSION_BUILDERS.get(mission.type)
    if builder is None:
        raise UnknownMissionError(
            f"Unknown mission type: '{mission.type}'. Supported types: {template_types()}"
        )
    workflow = builder(dict(mission.params))
    _validate_anti_failure(workflow)
    return workflow


def _validate_anti_failure(workflow: WorkflowDefinition) -> None:
    if len(workflow.steps) > MAX_TOTAL_STEPS:
        raise AntiFailurePlanningError(
            f"Workflow has {len(workflow.steps)} steps, exceeds maximum of {MAX_TOTAL_STEPS}"
        )
    human = sum(1 for s in workflow.steps if s.kind == "human")
    if human > MAX_HUMAN_STEPS:
        raise AntiFailurePlanningError(
            f"Workflow has {human} human steps, exceeds maximum of {MAX_HUMAN_STEPS}"
        )
    for step in workflow.steps:
        if step.kind not in ALLOWED_KINDS:
            raise AntiFailurePlanningError(
                f"Step '{step.id}' has invalid kind '{step.kind}'. Allowed: {sorted(ALLOWED_KINDS)}"
            )
