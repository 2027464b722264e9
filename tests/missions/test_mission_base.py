"""Mission types, results, the mission registry and the error-to-result mapping."""

from __future__ import annotations

import json

import pytest

from lifeos.errors import (
    MissionError,
    MissionEscalationRequired,
    MissionExecutionError,
    MissionValidationError,
    ReasonCode,
    UnknownMissionError,
)
from lifeos.missions import (
    MISSION_TYPES,
    DailyLoopMission,
    EchoMission,
    RunTestsMission,
    get_mission_class,
)
from lifeos.missions.base import MissionResult, MissionType, failed_result


def _result() -> MissionResult:
    return MissionResult(
        success=True,
        mission_type=MissionType.ECHO,
        outputs={"zeta": 1, "alpha": 2},
        executed_steps=["b", "a"],
        evidence={"y": 1, "x": 2},
        timings={"duration_s": 1.5},
    )


def test_to_dict_has_sorted_keys_at_every_level() -> None:
    d = _result().to_dict()
    assert list(d) == sorted(d)
    assert list(d["outputs"]) == ["alpha", "zeta"]
    assert list(d["evidence"]) == ["x", "y"]
    # the order of executed steps is meaningful and kept
    assert d["executed_steps"] == ["b", "a"]
    assert d["mission_type"] == "echo"


def test_to_dict_is_deterministic_and_leaves_out_timings() -> None:
    a, b = _result(), _result()
    b.timings["duration_s"] = 99.0
    assert a.to_dict() == b.to_dict()
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert "timings" not in a.to_dict()
    assert a == b  # timings do not take part in equality


def test_to_dict_copies_its_containers() -> None:
    r = _result()
    d = r.to_dict()
    d["outputs"]["alpha"] = 100
    d["executed_steps"].append("c")
    assert r.outputs["alpha"] == 2
    assert r.executed_steps == ["b", "a"]


def test_empty_result_to_dict() -> None:
    d = MissionResult(success=False, mission_type=MissionType.RUN_TESTS).to_dict()
    assert d == {
        "error": None,
        "escalation_reason": None,
        "evidence": {},
        "executed_steps": [],
        "mission_type": "run_tests",
        "outputs": {},
        "reason_code": None,
        "success": False,
    }


def test_mission_type_values() -> None:
    assert {t.value for t in MissionType} == {
        "design",
        "review",
        "build",
        "build_with_validation",
        "steward",
        "autonomous_build_cycle",
        "echo",
        "daily_loop",
        "run_tests",
    }
    assert MissionType("echo") is MissionType.ECHO
    assert MissionType.DAILY_LOOP == "daily_loop"


@pytest.mark.parametrize(
    ("name", "cls"),
    [("echo", EchoMission), ("daily_loop", DailyLoopMission), ("run_tests", RunTestsMission)],
)
def test_get_mission_class_for_available_types(name: str, cls: type) -> None:
    assert get_mission_class(name) is cls
    assert cls().mission_type.value == name


def test_only_working_missions_are_registered() -> None:
    assert sorted(t.value for t in MISSION_TYPES) == [
        "autonomous_build_cycle",
        "build",
        "build_with_validation",
        "daily_loop",
        "design",
        "echo",
        "review",
        "run_tests",
        "steward",
    ]


def test_unknown_type_is_refused_listing_valid_types() -> None:
    with pytest.raises(UnknownMissionError) as info:
        get_mission_class("teleport")
    err = info.value
    assert err.reason is ReasonCode.UNKNOWN_MISSION
    assert "teleport" in err.message
    for name in ("daily_loop", "echo", "run_tests"):
        assert name in err.message
    assert isinstance(err, ValueError)
    assert err.exit_code == 2


@pytest.mark.parametrize("mission_type", list(MissionType))
def test_every_mission_type_is_available(mission_type: MissionType) -> None:
    assert get_mission_class(mission_type.value)().mission_type is mission_type


def test_failed_result_for_escalation() -> None:
    exc = MissionEscalationRequired("needs a human", {"b": 2, "a": 1})
    r = failed_result(MissionType.ECHO, exc)
    assert r.success is False
    assert r.mission_type is MissionType.ECHO
    assert r.escalation_reason == "needs a human"
    assert r.error == "Escalation required: needs a human"
    assert r.reason_code == ReasonCode.ESCALATION_REQUIRED.value
    assert r.evidence == {"a": 1, "b": 2}
    # the result owns a copy of the evidence
    exc.evidence["c"] = 3
    assert "c" not in r.evidence


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (MissionError("plain mission error"), "MISSION_FAILED"),
        (MissionValidationError("bad inputs"), "INVALID_INPUT"),
        (MissionExecutionError("could not finish"), "MISSION_FAILED"),
        (MissionError("custom", ReasonCode.TESTS_FAILED), "TESTS_FAILED"),
    ],
)
def test_failed_result_for_mission_errors(exc: MissionError, reason: str) -> None:
    r = failed_result(MissionType.RUN_TESTS, exc)
    assert r.success is False
    assert r.error == exc.message
    assert r.reason_code == reason
    assert r.escalation_reason is None
    assert r.evidence == {}


def test_failed_result_for_a_plain_exception() -> None:
    r = failed_result(MissionType.DAILY_LOOP, KeyError("today"))
    assert r.success is False
    assert r.reason_code == "MISSION_FAILED"
    assert r.error == "Mission execution error: KeyError: 'today'"
    assert r.escalation_reason is None
