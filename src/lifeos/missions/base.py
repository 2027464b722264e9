"""Tier-3 missions: the types, context, result and base class every mission shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeos.errors import (
    MissionError,
    MissionEscalationRequired,
    MissionExecutionError,
    MissionValidationError,
    ReasonCode,
)

if TYPE_CHECKING:
    from lifeos.journal import Journal
    from lifeos.services import Services

__all__ = [
    "BaseMission",
    "MissionContext",
    "MissionError",
    "MissionEscalationRequired",
    "MissionExecutionError",
    "MissionResult",
    "MissionType",
    "MissionValidationError",
]


class MissionType(StrEnum):
    """Every mission type LifeOS knows; unknown types are refused (fail closed)."""

    DESIGN = "design"
    REVIEW = "review"
    BUILD = "build"
    BUILD_WITH_VALIDATION = "build_with_validation"
    STEWARD = "steward"
    AUTONOMOUS_BUILD_CYCLE = "autonomous_build_cycle"
    ECHO = "echo"
    DAILY_LOOP = "daily_loop"
    RUN_TESTS = "run_tests"


@dataclass
class MissionContext:
    """What a mission may use: the repository, the run, and the injected services."""

    repo_root: Path
    baseline_commit: str | None
    run_id: str
    operation_executor: Any | None = None
    journal: Journal | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    services: Services | None = None


@dataclass
class MissionResult:
    """A mission's outcome; ``to_dict()`` is deterministic (timings are kept apart)."""

    success: bool
    mission_type: MissionType
    outputs: dict[str, Any] = field(default_factory=dict)
    executed_steps: list[str] = field(default_factory=list)
    error: str | None = None
    escalation_reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reason_code: str | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with sorted keys."""
        return {
            "error": self.error,
            "escalation_reason": self.escalation_reason,
            "evidence": dict(sorted(self.evidence.items())) if self.evidence else {},
            "executed_steps": list(self.executed_steps),
            "mission_type": self.mission_type.value,
            "outputs": dict(sorted(self.outputs.items())) if self.outputs else {},
            "reason_code": self.reason_code,
            "success": self.success,
        }


class BaseMission(ABC):
    """A unit of Tier-3 work: validate the inputs, then run."""

    @property
    @abstractmethod
    def mission_type(self) -> MissionType:
        """The type this class implements."""

    @abstractmethod
    def validate_inputs(self, inputs: dict[str, Any]) -> None:
        """Raise MissionValidationError for inputs this mission refuses; no side effects."""

    @abstractmethod
    def run(self, context: MissionContext, inputs: dict[str, Any]) -> MissionResult:
        """Do the work; report failure in the result rather than raising."""

    def _make_result(
        self,
        success: bool,
        outputs: dict[str, Any] | None = None,
        executed_steps: list[str] | None = None,
        error: str | None = None,
        escalation_reason: str | None = None,
        evidence: dict[str, Any] | None = None,
        reason_code: ReasonCode | None = None,
    ) -> MissionResult:
        """Build a MissionResult of this mission's type."""
        if not success and reason_code is None:
            reason_code = ReasonCode.MISSION_FAILED
        return MissionResult(
            success=success,
            mission_type=self.mission_type,
            outputs=outputs or {},
            executed_steps=executed_steps or [],
            error=error,
            escalation_reason=escalation_reason,
            evidence=evidence or {},
            reason_code=reason_code.value if reason_code else None,
        )


def failed_result(mission_type: MissionType, exc: BaseException) -> MissionResult:
    """Turn an error raised by a mission into a failed MissionResult."""
    if isinstance(exc, MissionEscalationRequired):
        return MissionResult(
            success=False,
            mission_type=mission_type,
            error=exc.message,
            escalation_reason=exc.escalation_reason,
            evidence=dict(exc.evidence),
            reason_code=ReasonCode.ESCALATION_REQUIRED.value,
        )
    if isinstance(exc, MissionError):
        return MissionResult(
            success=False,
            mission_type=mission_type,
            error=exc.message,
            reason_code=exc.reason.value,
        )
    return MissionResult(
        success=False,
        mission_type=mission_type,
        error=f"Mission execution error: {type(exc).__name__}: {exc}",
        reason_code=ReasonCode.MISSION_FAILED.value,
    )
