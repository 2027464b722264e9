"""The echo mission: returns its inputs, for checking the dispatch path end to end."""

from __future__ import annotations

from typing import Any

from lifeos.missions.base import BaseMission, MissionContext, MissionResult, MissionType


class EchoMission(BaseMission):
    """Returns its inputs unchanged as outputs."""

    @property
    def mission_type(self) -> MissionType:
        """``echo``."""
        return MissionType.ECHO

    def validate_inputs(self, inputs: dict[str, Any]) -> None:
        """Accepts any object."""

    def run(self, context: MissionContext, inputs: dict[str, Any]) -> MissionResult:
        """Echo ``inputs`` back."""
        return self._make_result(True, outputs=dict(inputs))
