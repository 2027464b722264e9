"""The mission registry: which missions exist, and running them by name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lifeos.canonical import canonical_json
from lifeos.engine import Decision, ExecutionContext, Orchestrator, WorkflowDefinition
from lifeos.errors import ReasonCode, UnknownMissionError
from lifeos.journal import InMemoryJournal
from lifeos.missions import MISSION_TYPES, get_mission_class
from lifeos.missions.base import MissionType
from lifeos.registry import MISSION_REGISTRY, list_mission_types, run_mission


class TestListing:
    def test_sorted_and_exact(self) -> None:
        types = list_mission_types()
        assert types == sorted(types)
        assert types == [
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

    def test_matches_registry(self) -> None:
        assert list_mission_types() == sorted(MISSION_REGISTRY)

    def test_listing_is_a_fresh_list(self) -> None:
        types = list_mission_types()
        types.append("rogue")
        assert "rogue" not in list_mission_types()

    @pytest.mark.parametrize("name", ["daily_loop", "echo", "run_tests"])
    def test_only_missions_with_classes_registered(self, name: str) -> None:
        assert MissionType(name) in MISSION_TYPES
        cls = get_mission_class(name)
        assert cls().mission_type.value == name

    def test_every_mission_type_is_registered(self) -> None:
        assert {t.value for t in MissionType} == set(MISSION_REGISTRY)
        assert {t.value for t in MISSION_TYPES} == set(MISSION_REGISTRY)

    @pytest.mark.parametrize("name", ["daily_loop", "echo", "run_tests"])
    def test_builders_make_valid_workflows(self, name: str) -> None:
        wf = MISSION_REGISTRY[name](None)
        assert isinstance(wf, WorkflowDefinition)
        assert wf.metadata["mission_type"] == name
        Orchestrator().validate(wf)


class TestRunMissionErrors:
    @pytest.mark.parametrize("name", ["nope", "", "designer", "Echo"])
    def test_unknown_lists_valid_missions(self, name: str) -> None:
        with pytest.raises(UnknownMissionError) as info:
            run_mission(name, ExecutionContext())
        err = info.value
        assert isinstance(err, ValueError)
        assert err.reason is ReasonCode.UNKNOWN_MISSION
        assert err.exit_code == 2
        for valid in ("daily_loop", "echo", "run_tests"):
            assert valid in err.message


class TestEcho:
    def test_echo_builder_shape(self) -> None:
        wf = MISSION_REGISTRY["echo"]({"b": 2, "a": 1})
        assert wf.id == "wf-echo"
        assert [s.id for s in wf.steps] == ["echo-execute"]
        payload = wf.steps[0].payload
        assert payload["operation"] == "mission"
        assert payload["mission_type"] == "echo"
        assert list(payload["params"]) == ["a", "b"]
        assert list(wf.metadata["params"]) == ["a", "b"]

    def test_echo_returns_inputs(self) -> None:
        params = {"message": "FRANKENSTEIN_IS_ALIVE", "n": 3}
        result = run_mission("echo", ExecutionContext(), params)
        assert result.success
        assert result.status == "completed"
        assert result.id == "wf-echo"
        assert result.final_state["mission_result"]["outputs"] == params
        per_step = result.final_state["mission_results"]["echo-execute"]
        assert per_step["outputs"] == params
        assert per_step["success"] is True
        assert per_step["mission_type"] == "echo"

    def test_echo_with_no_params(self) -> None:
        result = run_mission("echo", ExecutionContext())
        assert result.success
        assert result.final_state["mission_result"]["outputs"] == {}

    def test_echo_does_not_mutate_inputs(self) -> None:
        params = {"nested": {"list": [1]}}
        ctx = ExecutionContext(initial_state={"keep": [1]})
        before_params, before_ctx = copy.deepcopy(params), copy.deepcopy(ctx)
        result = run_mission("echo", ctx, params)
        result.final_state["mission_result"]["outputs"]["nested"]["list"].append(2)
        assert params == before_params
        assert ctx == before_ctx

    def test_echo_is_deterministic(self) -> None:
        a = run_mission("echo", ExecutionContext(), {"x": "é"})
        b = run_mission("echo", ExecutionContext(), {"x": "é"})
        assert canonical_json(a.to_dict()) == canonical_json(b.to_dict())

    def test_echo_keeps_initial_state(self) -> None:
        result = run_mission("echo", ExecutionContext(initial_state={"keep": 1}), {"m": 1})
        assert result.final_state["keep"] == 1


class TestTemplateMissions:
    def test_daily_loop_with_decisions(self) -> None:
        state = {
            "today": "2024-01-02",
            "entries": [{"date": "2024-01-01", "text": "a", "done": True}],
            "tasks": [{"title": "t", "priority": "P1"}],
        }
        result = run_mission(
            "daily_loop",
            ExecutionContext(initial_state=state),
            decisions={"daily-confirm-priorities": Decision.approve()},
        )
        assert result.success, result.error_message
        assert result.receipt["decisions"][0]["step_id"] == "daily-confirm-priorities"

    def test_daily_loop_pauses_without_decision(self) -> None:
        result = run_mission("daily_loop", ExecutionContext(initial_state={"today": "2024-01-02"}))
        assert result.status == "paused"
        assert result.waiting_step_id == "daily-confirm-priorities"

    def test_run_tests_missing_target(self, tmp_path: Path) -> None:
        ctx = ExecutionContext(metadata={"repo_root": str(tmp_path)})
        result = run_mission("run_tests", ctx, {"target": "absent"})
        assert result.status == "failed"
        assert result.reason_code == "TARGET_NOT_FOUND"

    def test_custom_orchestrator_and_run_id_used(self) -> None:
        journal = InMemoryJournal()
        orch = Orchestrator(journal=journal)
        run_mission("echo", ExecutionContext(), {"a": 1}, orchestrator=orch, run_id="rid")
        assert [k.run_id for k in journal.keys()] == ["rid"]
        assert journal.keys()[0].step == "echo-execute"
