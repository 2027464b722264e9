"""The spine's phases as missions: design, build, build_with_validation, review,
steward and autonomous_build_cycle.

Each mission drives a spine run (a new one for ``task_id``, or an existing one for
``run_id``) up to its phase and stops there at a mission boundary (the run stays
PAUSED and resumable); ``steward`` and ``autonomous_build_cycle`` carry it to the end.
Everything the spine guarantees — worktree, gate, budget, approvals, journal, evidence
— holds for a run started this way. The CLI refuses ``mission run
autonomous_build_cycle`` in favour of ``lifeos spine run`` (the seeds' deprecation
guard); the mission stays callable for replay and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from lifeos.errors import ReasonCode
from lifeos.missions.base import (
    BaseMission,
    MissionContext,
    MissionResult,
    MissionType,
    MissionValidationError,
)

__all__ = [
    "AutonomousBuildCycleMission",
    "BuildMission",
    "BuildWithValidationMission",
    "DesignMission",
    "ReviewMission",
    "SPINE_FACTORY",
    "StewardMission",
]

SPINE_FACTORY = "spine_factory"
"""``Services.extra`` key of a ``(MissionContext) -> Spine`` factory (tests, the demo);
without one the mission builds the spine for the repository at ``repo_root``."""


def _default_spine(context: MissionContext) -> Any:
    """The spine for the repository at ``context.repo_root``, as the CLI builds it."""
    import os

    from lifeos.clock import SystemClock
    from lifeos.config import load_config
    from lifeos.repo import detect_repo
    from lifeos.spine.setup import repo_spine
    from lifeos.store import open_store

    where = detect_repo(context.repo_root)
    settings = load_config(where.main_root).data
    store = context.services.store if context.services and context.services.store else None
    if store is None:
        store = open_store(where.lifeos_dir, SystemClock(), settings.get("store"))
    return repo_spine(where, store, settings, env=os.environ)


class _SpineMission(BaseMission):
    """Runs a spine run up to ``stop_after`` (None: to the end)."""

    stop_after: ClassVar[str | None]

    def validate_inputs(self, inputs: dict[str, Any]) -> None:
        task, run = inputs.get("task_id"), inputs.get("run_id")
        if (task is None) == (run is None):
            raise MissionValidationError("give exactly one of task_id or run_id")
        for key, value in (("task_id", task), ("run_id", run)):
            if value is not None and (not isinstance(value, str) or not value):
                raise MissionValidationError(f"{key} must be a non-empty string")

    def run(self, context: MissionContext, inputs: dict[str, Any]) -> MissionResult:
        extra = context.services.extra if context.services else {}
        factory: Callable[[MissionContext], Any] = extra.get(SPINE_FACTORY, _default_spine)
        spine = factory(context)
        if inputs.get("run_id"):
            outcome = spine.resume(inputs["run_id"], stop_after=self.stop_after)
        else:
            outcome = spine.start(inputs["task_id"], stop_after=self.stop_after)
        expected = "LANDED" if self.stop_after is None else "PAUSED"
        at_boundary = outcome.state.value == expected and (
            self.stop_after is None or outcome.phase == self.stop_after
        )
        reason = ReasonCode(outcome.reasons[0]) if outcome.reasons else None
        if not at_boundary and reason is None:
            reason = ReasonCode.MISSION_FAILED
        return self._make_result(
            success=at_boundary,
            outputs=outcome.to_dict(),
            executed_steps=[self.mission_type.value],
            error=None if at_boundary else outcome.message,
            evidence={"evidence": outcome.evidence} if outcome.evidence else {},
            reason_code=None if at_boundary else reason,
        )


class DesignMission(_SpineMission):
    """The designer turns the task into a validated BUILD_PACKET."""

    stop_after = "design"

    @property
    def mission_type(self) -> MissionType:
        return MissionType.DESIGN


class BuildMission(_SpineMission):
    """The builder works in the run's worktree; the gated result is committed."""

    stop_after = "build"

    @property
    def mission_type(self) -> MissionType:
        return MissionType.BUILD


class BuildWithValidationMission(_SpineMission):
    """Build, gate and the review's checks: the run stops after review."""

    stop_after = "review"

    @property
    def mission_type(self) -> MissionType:
        return MissionType.BUILD_WITH_VALIDATION


class ReviewMission(_SpineMission):
    """Acceptance checks and the reviewer lenses, synthesised into a REVIEW_PACKET."""

    stop_after = "review"

    @property
    def mission_type(self) -> MissionType:
        return MissionType.REVIEW


class StewardMission(_SpineMission):
    """Commit the approved change with its review packet and evidence: the run lands."""

    stop_after = None

    @property
    def mission_type(self) -> MissionType:
        return MissionType.STEWARD


class AutonomousBuildCycleMission(_SpineMission):
    """Design, build, review and steward in one go (use ``lifeos spine run``)."""

    stop_after = None

    @property
    def mission_type(self) -> MissionType:
        return MissionType.AUTONOMOUS_BUILD_CYCLE
