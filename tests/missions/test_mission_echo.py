"""The echo mission returns its inputs, directly and through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifeos.engine import ExecutionContext
from lifeos.missions import EchoMission, MissionContext
from lifeos.missions.base import MissionType
from lifeos.registry import run_mission


def _ctx(tmp_path: Path) -> MissionContext:
    return MissionContext(repo_root=tmp_path, baseline_commit=None, run_id="r1")


@pytest.mark.parametrize(
    "inputs",
    [{}, {"message": "hi"}, {"n": 1, "nested": {"list": [1, 2.5, None, True]}}],
)
def test_echo_returns_inputs(tmp_path: Path, inputs: dict[str, Any]) -> None:
    mission = EchoMission()
    mission.validate_inputs(inputs)
    result = mission.run(_ctx(tmp_path), inputs)
    assert result.success is True
    assert result.mission_type is MissionType.ECHO
    assert result.outputs == inputs
    assert result.reason_code is None
    assert result.error is None


def test_echo_outputs_are_a_copy_of_the_inputs(tmp_path: Path) -> None:
    inputs = {"a": 1}
    result = EchoMission().run(_ctx(tmp_path), inputs)
    inputs["b"] = 2
    assert result.outputs == {"a": 1}


def test_echo_through_run_mission(tmp_path: Path) -> None:
    result = run_mission(
        "echo", ExecutionContext(metadata={"repo_root": str(tmp_path)}), {"message": "hello"}
    )
    assert result.status == "completed"
    assert result.final_state["mission_result"]["outputs"] == {"message": "hello"}
    assert result.final_state["mission_results"]["echo-execute"]["success"] is True
