"""The mission registry: mission name -> workflow, and ``run_mission``.

``daily_loop`` and ``run_tests`` come from the builder's templates; other
missions become a single ``operation: mission`` step that runs the mission
class directly. Only missions that really work are registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifeos.builder import MissionSpec, build_workflow
from lifeos.engine import (
    Decision,
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import UnknownMissionError

__all__ = ["MISSION_REGISTRY", "UnknownMissionError", "list_mission_types", "run_mission"]

WorkflowBuilder = Callable[[dict[str, Any] | None], WorkflowDefinition]


def _template(mission_type: str) -> WorkflowBuilder:
    def build(params: dict[str, Any] | None = None) -> WorkflowDefinition:
        return build_workflow(MissionSpec(type=mission_type, params=dict(params or {})))

    build.__doc__ = f"Build the '{mission_type}' workflow from the builder's template."
    return build


def _dispatch(mission_type: str) -> WorkflowBuilder:
    def build(params: dict[str, Any] | None = None) -> WorkflowDefinition:
        sorted_params = dict(sorted((params or {}).items()))
        return WorkflowDefinition(
            id=f"wf-{mission_type}",
            steps=[
                StepSpec(
                    id=f"{mission_type}-execute",
                    kind="runtime",
                    payload={
                        "operation": "mission",
                        "mission_type": mission_type,
                        "params": sorted_params,
                    },
                )
            ],
            metadata={"mission_type": mission_type, "params": sorted_params},
        )

    build.__doc__ = f"Build a one-step workflow that runs the '{mission_type}' mission."
    return build


MISSION_REGISTRY: dict[str, WorkflowBuilder] = {
    "autonomous_build_cycle": _dispatch("autonomous_build_cycle"),
    "build": _dispatch("build"),
    "build_with_validation": _dispatch("build_with_validation"),
    "design": _dispatch("design"),
    "review": _dispatch("review"),
    "steward": _dispatch("steward"),
    "daily_loop": _template("daily_loop"),
    "echo": _dispatch("echo"),
    "run_tests": _template("run_tests"),
}


def list_mission_types() -> list[str]:
    """Return the registered mission names, sorted."""
    return sorted(MISSION_REGISTRY)


def run_mission(
    name: str,
    ctx: ExecutionContext,
    params: dict[str, Any] | None = None,
    *,
    orchestrator: Orchestrator | None = None,
    decisions: Mapping[str, Decision] | None = None,
    run_id: str | None = None,
) -> OrchestrationResult:
    """Build the named mission's workflow and run it.

    Raises:
        UnknownMissionError: ``name`` is not registered (the message lists those that are).
        AntiFailureViolation, EnvelopeViolation: the workflow breaks the limits.
    """
    builder = MISSION_REGISTRY.get(name)
    if builder is None:
        raise UnknownMissionError(
            f"Unknown mission: '{name}'. Available missions: {list_mission_types()}"
        )
    workflow = builder(params)
    return (orchestrator or Orchestrator()).run_workflow(
        workflow, ctx, decisions=decisions, run_id=run_id
    )
