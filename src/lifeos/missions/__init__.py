"""Tier-3 missions: the registry of mission classes and the one way to run them.

Only missions that really work are in :data:`MISSION_TYPES`; a type that is
known but not available yet, or unknown altogether, is refused (fail closed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeos.errors import (
    MissionError,
    MissionEscalationRequired,
    MissionExecutionError,
    MissionValidationError,
    ReasonCode,
    UnknownMissionError,
)
from lifeos.missions.base import (
    BaseMission,
    MissionContext,
    MissionResult,
    MissionType,
    failed_result,
)
from lifeos.missions.daily_loop import DailyLoopMission
from lifeos.missions.echo import EchoMission
from lifeos.missions.run_tests import RunTestsMission
from lifeos.missions.spine_missions import (
    AutonomousBuildCycleMission,
    BuildMission,
    BuildWithValidationMission,
    DesignMission,
    ReviewMission,
    StewardMission,
)

if TYPE_CHECKING:
    from lifeos.engine import StepEnv

__all__ = [
    "MISSION_TYPES",
    "AutonomousBuildCycleMission",
    "BaseMission",
    "BuildMission",
    "BuildWithValidationMission",
    "DesignMission",
    "ReviewMission",
    "StewardMission",
    "DailyLoopMission",
    "EchoMission",
    "MissionContext",
    "MissionError",
    "MissionEscalationRequired",
    "MissionExecutionError",
    "MissionResult",
    "MissionType",
    "MissionValidationError",
    "RunTestsMission",
    "execute_mission",
    "get_mission_class",
]

MISSION_TYPES: dict[MissionType, type[BaseMission]] = {
    MissionType.AUTONOMOUS_BUILD_CYCLE: AutonomousBuildCycleMission,
    MissionType.BUILD: BuildMission,
    MissionType.BUILD_WITH_VALIDATION: BuildWithValidationMission,
    MissionType.DESIGN: DesignMission,
    MissionType.REVIEW: ReviewMission,
    MissionType.STEWARD: StewardMission,
    MissionType.DAILY_LOOP: DailyLoopMission,
    MissionType.ECHO: EchoMission,
    MissionType.RUN_TESTS: RunTestsMission,
}


def get_mission_class(mission_type: str) -> type[BaseMission]:
    """Return the class implementing ``mission_type``.

    Raises:
        UnknownMissionError: the type is unknown, or known but not available yet.
    """
    available = sorted(t.value for t in MISSION_TYPES)
    try:
        mt = MissionType(mission_type)
    except ValueError:
        raise UnknownMissionError(
            f"Unknown mission type: '{mission_type}'. Valid types: {available}"
        ) from None
    cls = MISSION_TYPES.get(mt)
    if cls is None:
        raise UnknownMissionError(
            f"Mission type '{mission_type}' is not available in this build. "
            f"Available types: {available}",
            ReasonCode.MISSION_UNAVAILABLE,
        )
    return cls


def execute_mission(mission_type: str, env: StepEnv, inputs: dict[str, Any]) -> MissionResult:
    """Instantiate and run a mission for an engine step; errors become failed results."""
    mt = MissionType(mission_type)
    meta = env.metadata
    context = MissionContext(
        repo_root=Path(str(meta.get("repo_root", "."))),
        baseline_commit=meta.get("baseline_commit"),
        run_id=env.run_id,
        journal=env.journal,
        metadata={"step_id": env.step.id, "workflow_id": env.workflow.id},
        services=env.services,
    )
    try:
        mission = get_mission_class(mission_type)()
        mission.validate_inputs(inputs)
        return mission.run(context, inputs)
    except Exception as exc:  # every mission error is a failed result, never a crash
        return failed_result(mt, exc)
