"""The Tier-2 builder: MissionSpec -> WorkflowDefinition within the Anti-Failure limits."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lifeos import builder as builder_module
from lifeos.builder import (
    MAX_HUMAN_STEPS,
    MAX_TOTAL_STEPS,
    AntiFailurePlanningError,
    MissionSpec,
    build_workflow,
    template_types,
)
from lifeos.canonical import canonical_json, sha256_hex
from lifeos.engine import (
    Decision,
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import InputError, ReasonCode, UnknownMissionError
from lifeos.services import ProcessResult, Services

TYPES = ["daily_loop", "run_tests"]
DAILY_DEFAULT_IDS = [
    "daily-summarise-yesterday",
    "daily-generate-priorities",
    "daily-confirm-priorities",
    "daily-log-summary",
]


def humans(wf: WorkflowDefinition) -> int:
    return sum(1 for s in wf.steps if s.kind == "human")


class TestTemplates:
    def test_template_types(self) -> None:
        assert template_types() == TYPES

    def test_daily_loop_is_valid(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop"))
        assert isinstance(wf, WorkflowDefinition)
        assert wf.id == wf.name == "wf-daily-loop"
        assert [s.id for s in wf.steps] == DAILY_DEFAULT_IDS
        assert {s.kind for s in wf.steps} <= {"runtime", "human"}
        assert humans(wf) == 1
        assert wf.metadata == {"mission_type": "daily_loop", "params": {}}
        Orchestrator().validate(wf)

    def test_run_tests_is_valid(self) -> None:
        wf = build_workflow(MissionSpec(type="run_tests", params={"target": "pkg/tests"}))
        assert wf.id == "wf-run-tests"
        assert [s.id for s in wf.steps] == ["tests-discover", "tests-execute", "tests-report"]
        assert all(s.kind == "runtime" for s in wf.steps)
        discover, execute, report = wf.steps
        assert discover.payload["mission_type"] == "run_tests"
        assert discover.payload["params"] == {"mode": "discover", "target": "pkg/tests"}
        assert execute.payload["params"] == {"mode": "execute", "target": "pkg/tests"}
        assert report.payload["operation"] == "tests_report"
        assert "pkg/tests" in discover.payload["description"]
        Orchestrator().validate(wf)

    def test_run_tests_passes_only_known_params_to_steps(self) -> None:
        params = {"target": "t", "timeout": 5, "verbose": True, "pytest_args": ["-x"]}
        wf = build_workflow(MissionSpec(type="run_tests", params=params))
        assert wf.steps[0].payload["params"] == {
            "mode": "discover",
            "pytest_args": ["-x"],
            "target": "t",
            "timeout": 5,
        }
        assert wf.metadata["params"]["verbose"] is True

    def test_empty_params(self) -> None:
        for mission_type in TYPES:
            wf = build_workflow(MissionSpec(type=mission_type, params={}))
            assert len(wf.steps) > 0


class TestUnknownType:
    @pytest.mark.parametrize("mission_type", ["unknown_mission_type", "", "echo", "DAILY_LOOP"])
    def test_unknown_type_raises(self, mission_type: str) -> None:
        with pytest.raises(UnknownMissionError) as info:
            build_workflow(MissionSpec(type=mission_type))
        assert isinstance(info.value, ValueError)
        assert info.value.reason is ReasonCode.UNKNOWN_MISSION
        assert info.value.exit_code == 2
        for known in TYPES:
            assert known in info.value.message

    def test_catchable_as_value_error(self) -> None:
        with pytest.raises(ValueError):
            build_workflow(MissionSpec(type="nope"))


class TestLimits:
    @pytest.mark.parametrize("mission_type", TYPES)
    def test_defaults_within_limits(self, mission_type: str) -> None:
        wf = build_workflow(MissionSpec(type=mission_type))
        assert len(wf.steps) <= MAX_TOTAL_STEPS == 5
        assert humans(wf) <= MAX_HUMAN_STEPS == 2

    def test_requested_steps_truncated(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": 10}))
        assert len(wf.steps) == 5
        assert humans(wf) <= 2
        assert wf.steps[-1].id == "daily-archive"
        Orchestrator().validate(wf)

    def test_requested_human_steps_truncated(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_human_steps": 5}))
        assert humans(wf) <= 2
        assert len(wf.steps) <= 5
        Orchestrator().validate(wf)

    def test_both_excessive(self) -> None:
        params = {"requested_steps": 100, "requested_human_steps": 100}
        wf = build_workflow(MissionSpec(type="daily_loop", params=params))
        assert len(wf.steps) <= 5 and humans(wf) <= 2

    def test_truncation_is_deterministic(self) -> None:
        spec = MissionSpec(type="daily_loop", params={"requested_steps": 10})
        assert build_workflow(spec).to_dict() == build_workflow(spec).to_dict()

    def test_fewer_steps_drop_from_the_end(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": 2}))
        assert [s.id for s in wf.steps] == DAILY_DEFAULT_IDS[:2]

    def test_zero_steps_still_gives_one(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": 0}))
        assert len(wf.steps) == 1

    def test_no_human_steps(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_human_steps": 0}))
        assert humans(wf) == 0
        assert len(wf.steps) == 4
        assert "daily-archive" in [s.id for s in wf.steps]

    def test_numeric_string_counts_accepted(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": "3"}))
        assert len(wf.steps) == 3

    @pytest.mark.parametrize("bad", [-1, "-2", "many", True, 1.5, None])
    def test_bad_counts_rejected(self, bad: Any) -> None:
        with pytest.raises(InputError):
            build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": bad}))

    def test_template_over_the_limit_raises_planning_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def too_long(params: dict[str, Any]) -> WorkflowDefinition:
            return WorkflowDefinition(
                id="wf-long", steps=[StepSpec(f"s{i}", "runtime") for i in range(6)]
            )

        monkeypatch.setitem(builder_module._MISSION_BUILDERS, "too_long", too_long)
        with pytest.raises(AntiFailurePlanningError, match="6 steps") as info:
            build_workflow(MissionSpec(type="too_long"))
        assert info.value.reason is ReasonCode.ANTI_FAILURE_LIMIT

    @pytest.mark.parametrize(
        ("steps", "match"),
        [
            ([StepSpec(f"h{i}", "human") for i in range(3)], "human steps"),
            ([StepSpec("x", "shell")], "invalid kind"),
        ],
    )
    def test_template_breaking_rules_raises(
        self, monkeypatch: pytest.MonkeyPatch, steps: list[StepSpec], match: str
    ) -> None:
        monkeypatch.setitem(
            builder_module._MISSION_BUILDERS,
            "bad",
            lambda params: WorkflowDefinition(id="wf-bad", steps=steps),
        )
        with pytest.raises(AntiFailurePlanningError, match=match):
            build_workflow(MissionSpec(type="bad"))


class TestDeterminism:
    def test_identical_specs_hash_identically(self) -> None:
        a = build_workflow(MissionSpec(type="daily_loop", params={"priority": "high"}))
        b = build_workflow(MissionSpec(type="daily_loop", params={"priority": "high"}))
        assert sha256_hex(a.to_dict()) == sha256_hex(b.to_dict())

    def test_repeated_builds_are_byte_identical(self) -> None:
        spec = MissionSpec(type="run_tests", params={"target": "runtime"})
        encodings = {canonical_json(build_workflow(spec).to_dict()) for _ in range(5)}
        assert len(encodings) == 1

    def test_param_order_does_not_matter(self) -> None:
        a = build_workflow(MissionSpec(type="run_tests", params={"target": "t", "timeout": 9}))
        b = build_workflow(MissionSpec(type="run_tests", params={"timeout": 9, "target": "t"}))
        assert canonical_json(a.to_dict()) == canonical_json(b.to_dict())

    def test_different_params_differ(self) -> None:
        a = build_workflow(MissionSpec(type="run_tests", params={"target": "a"}))
        b = build_workflow(MissionSpec(type="run_tests", params={"target": "b"}))
        assert sha256_hex(a.to_dict()) != sha256_hex(b.to_dict())

    def test_does_not_mutate_spec(self) -> None:
        spec = MissionSpec(type="run_tests", params={"target": "t", "pytest_args": ["-x"]})
        before = copy.deepcopy(spec)
        wf = build_workflow(spec)
        assert spec == before
        wf.metadata["params"]["target"] = "changed"
        assert spec.params["target"] == "t"


class TestMetadata:
    def test_params_preserved_sorted(self) -> None:
        params = {"verbose": True, "target": "runtime", "alpha": 1}
        wf = build_workflow(MissionSpec(type="run_tests", params=params))
        assert wf.metadata["mission_type"] == "run_tests"
        assert wf.metadata["type"] == "run_tests"
        assert wf.metadata["params"] == params
        assert list(wf.metadata["params"]) == ["alpha", "target", "verbose"]

    def test_daily_loop_params_preserved(self) -> None:
        wf = build_workflow(MissionSpec(type="daily_loop", params={"z": 1, "a": 2}))
        assert list(wf.metadata["params"]) == ["a", "z"]
        assert wf.to_dict()["metadata"]["mission_type"] == "daily_loop"


# -- integration with the orchestrator ------------------------------------------------


class FakePytest:
    """A ProcessRunner that pretends to be pytest, writing a JUnit report when asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(
        self,
        argv: Sequence[str],
        cwd: str,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        self.calls.append(list(argv))
        if "--collect-only" in argv:
            return ProcessResult(0, "test_a.py::test_one\ntest_a.py::test_two\n\n2 tests\n", "")
        junit = next(a for a in argv if a.startswith("--junitxml="))
        Path(junit.split("=", 1)[1]).write_text(
            '<testsuites><testsuite name="s" time="0.5">'
            '<testcase classname="test_a" name="test_one"/>'
            '<testcase classname="test_a" name="test_two"/>'
            "</testsuite></testsuites>",
            encoding="utf-8",
        )
        return ProcessResult(0, "2 passed", "")


DAILY_STATE: dict[str, Any] = {
    "today": "2024-05-02",
    "entries": [
        {"date": "2024-05-01", "text": "wrote tests", "done": True},
        {"date": "2024-05-01", "text": "review", "done": False},
    ],
    "tasks": [
        {"id": "t2", "title": "later", "priority": "P2"},
        {"id": "t1", "title": "urgent", "priority": "P0"},
    ],
}


class TestOrchestratorIntegration:
    def test_daily_loop_pauses_then_completes(self) -> None:
        orch = Orchestrator()
        wf = build_workflow(MissionSpec(type="daily_loop"))
        paused = orch.run_workflow(wf, ExecutionContext(copy.deepcopy(DAILY_STATE)))
        assert isinstance(paused, OrchestrationResult)
        assert paused.id == wf.id
        assert paused.status == "paused"
        assert paused.waiting_step_id == "daily-confirm-priorities"
        assert paused.final_state["daily"]["summary"]["done"] == 1
        done = orch.resume(paused, Decision.approve())
        assert done.success, done.error_message
        assert done.final_state["daily"]["priorities"][0]["title"] == "urgent"
        assert len(done.final_state["daily"]["log"]) == 1

    def test_daily_loop_with_decisions_is_deterministic(self) -> None:
        orch = Orchestrator()
        decisions = {"daily-confirm-priorities": Decision.approve()}
        hashes = {
            sha256_hex(
                orch.run_workflow(
                    build_workflow(MissionSpec(type="daily_loop", params={"requested_steps": 5})),
                    ExecutionContext(copy.deepcopy(DAILY_STATE)),
                    decisions=decisions,
                ).to_dict()
            )
            for _ in range(3)
        }
        assert len(hashes) == 1

    @pytest.mark.parametrize("mission_type", TYPES)
    def test_no_violation_for_any_template(self, mission_type: str, tmp_path: Path) -> None:
        wf = build_workflow(MissionSpec(type=mission_type, params={"target": "missing"}))
        ctx = ExecutionContext({}, metadata={"repo_root": str(tmp_path)})
        result = Orchestrator().run_workflow(wf, ctx)
        assert isinstance(result, OrchestrationResult)
        assert result.id == wf.id

    def test_run_tests_deterministic_failure(self, tmp_path: Path) -> None:
        orch = Orchestrator()

        def once() -> OrchestrationResult:
            wf = build_workflow(MissionSpec(type="run_tests", params={"target": "runtime"}))
            ctx = ExecutionContext({"seed": 42}, metadata={"repo_root": str(tmp_path)})
            return orch.run_workflow(wf, ctx)

        first, second = once(), once()
        assert first.status == "failed"
        assert first.reason_code == "TARGET_NOT_FOUND"
        assert first.failed_step_id == "tests-discover"
        assert sha256_hex(first.to_dict()) == sha256_hex(second.to_dict())

    def test_run_tests_completes_with_a_passing_suite(self, tmp_path: Path) -> None:
        runner = FakePytest()
        orch = Orchestrator(services=Services(processes=runner))
        wf = build_workflow(MissionSpec(type="run_tests", params={"target": "."}))
        ctx = ExecutionContext({}, metadata={"repo_root": str(tmp_path)})
        result = orch.run_workflow(wf, ctx)
        assert result.success, result.error_message
        report = result.final_state["test_report"]
        assert report["status"] == "passed"
        assert report["passed"] == 2 and report["failed"] == 0
        assert result.final_state["mission_results"]["tests-discover"]["outputs"]["collected"] == 2
        assert len(runner.calls) == 2
