"""The built-in operations: one class per operation, passing and failing cases."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lifeos.engine import (
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepEnv,
    StepFailure,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import (
    EnvelopeViolation,
    ReasonCode,
    UnknownMissionError,
    WorkflowDefinitionError,
)
from lifeos.operations import Operation, OperationRegistry, default_registry
from lifeos.services import Services, Tool, ToolRegistry


def step(step_id: str = "s", operation: str = "noop", **payload: Any) -> StepSpec:
    return StepSpec(step_id, "runtime", {"operation": operation, **payload})


def run(
    *steps: StepSpec,
    state: dict[str, Any] | None = None,
    services: Services | None = None,
    metadata: dict[str, Any] | None = None,
) -> OrchestrationResult:
    wf = WorkflowDefinition(id="wf-ops", steps=list(steps))
    ctx = ExecutionContext(initial_state=copy.deepcopy(state or {}), metadata=metadata)
    return Orchestrator(services=services).run_workflow(wf, ctx)


def assert_failed(result: OrchestrationResult, reason: ReasonCode, step_id: str = "s") -> None:
    assert result.success is False
    assert result.status == "failed"
    assert result.reason_code == reason.value
    assert result.failed_step_id == step_id
    assert result.error_message


def invalid(*steps: StepSpec) -> WorkflowDefinitionError:
    with pytest.raises(WorkflowDefinitionError) as info:
        run(*steps)
    assert info.value.exit_code == 2
    return info.value


# -- registry ----------------------------------------------------------------------


class TestRegistry:
    def test_builtin_names(self) -> None:
        names = default_registry().names()
        assert names == sorted(names)
        for name in ("noop", "fail", "set", "append", "calc", "mission", "llm_call"):
            assert name in names
        assert "tool_invoke" in names

    def test_default_registry_is_a_copy(self) -> None:
        class Extra(Operation):
            name = "extra_op"

            def run(
                self, step: StepSpec, state: dict[str, Any], env: StepEnv
            ) -> StepFailure | None:
                state["extra"] = True
                return None

        registry = default_registry()
        registry.register(Extra())
        assert "extra_op" in registry.names()
        assert "extra_op" not in default_registry().names()
        wf = WorkflowDefinition(id="w", steps=[step("e", "extra_op")])
        result = Orchestrator(operations=registry).run_workflow(wf, ExecutionContext())
        assert result.final_state == {"extra": True}

    def test_register_twice_refused(self) -> None:
        class Dup(Operation):
            name = "dup"

        registry = OperationRegistry()
        registry.register(Dup())
        with pytest.raises(ValueError, match="already registered"):
            registry.register(Dup())
        assert registry.names() == ["dup"]

    def test_unknown_operation(self) -> None:
        with pytest.raises(EnvelopeViolation) as info:
            run(step("s", "teleport"))
        assert info.value.reason is ReasonCode.UNKNOWN_OPERATION
        assert "teleport" in info.value.message


# -- noop ----------------------------------------------------------------------------


class TestNoop:
    def test_leaves_state_unchanged(self) -> None:
        result = run(step("s", "noop", description="nothing"), state={"a": [1]})
        assert result.success
        assert result.final_state == {"a": [1]}

    def test_accepts_params(self) -> None:
        assert run(step("s", "noop", params={"anything": 1})).success

    def test_unknown_key_rejected(self) -> None:
        err = invalid(step("s", "noop", value=1))
        assert "unknown payload key" in err.message


# -- fail ----------------------------------------------------------------------------


class TestFail:
    def test_fails_with_reason(self) -> None:
        result = run(step("s", "fail", reason="because"))
        assert_failed(result, ReasonCode.STEP_FAILED)
        assert "because" in (result.error_message or "")

    def test_unknown_key_rejected(self) -> None:
        invalid(step("s", "fail", code=3))


# -- set -----------------------------------------------------------------------------


class TestSet:
    def test_value(self) -> None:
        result = run(step("s", "set", path="a.b", value={"c": [1, 2]}), state={"keep": 1})
        assert result.success
        assert result.final_state == {"a": {"b": {"c": [1, 2]}}, "keep": 1}

    def test_overwrite(self) -> None:
        result = run(step("s", "set", path="a", value=None), state={"a": 5})
        assert result.final_state == {"a": None}

    def test_from(self) -> None:
        result = run(step("s", "set", path="copy", **{"from": "src.x"}), state={"src": {"x": [1]}})
        assert result.final_state == {"copy": [1], "src": {"x": [1]}}

    def test_from_is_a_copy(self) -> None:
        result = run(
            step("s1", "set", path="copy", **{"from": "src"}),
            step("s2", "append", path="copy", value=2),
            state={"src": [1]},
        )
        assert result.final_state == {"copy": [1, 2], "src": [1]}

    def test_from_list_index(self) -> None:
        result = run(step("s", "set", path="first", **{"from": "items.0"}), state={"items": ["a"]})
        assert result.final_state["first"] == "a"

    def test_from_missing_path_fails(self) -> None:
        result = run(step("s", "set", path="x", **{"from": "nope"}))
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    def test_path_through_non_object_fails(self) -> None:
        result = run(step("s", "set", path="a.b", value=1), state={"a": 5})
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)
        assert result.final_state == {"a": 5}

    def test_from_through_non_object_fails(self) -> None:
        result = run(step("s", "set", path="x", **{"from": "a.b"}), state={"a": "text"})
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    @pytest.mark.parametrize(
        "payload",
        [
            {"path": "x"},
            {"path": "x", "value": 1, "from": "y"},
            {"value": 1},
            {"path": "", "value": 1},
            {"path": "a..b", "value": 1},
            {"path": "x", "from": ""},
            {"path": "x", "value": 1, "extra": 2},
        ],
        ids=["no-source", "both", "no-path", "empty-path", "empty-part", "empty-from", "extra"],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("s", "set", **payload))


# -- append --------------------------------------------------------------------------


class TestAppend:
    def test_creates_list(self) -> None:
        result = run(step("s", "append", path="log.lines", value="first"))
        assert result.final_state == {"log": {"lines": ["first"]}}

    def test_appends_to_existing(self) -> None:
        result = run(step("s", "append", path="xs", value={"k": 1}), state={"xs": [0]})
        assert result.final_state == {"xs": [0, {"k": 1}]}

    def test_from(self) -> None:
        result = run(
            step("s", "append", path="xs", **{"from": "item"}), state={"xs": [], "item": {"a": 1}}
        )
        assert result.final_state == {"xs": [{"a": 1}], "item": {"a": 1}}

    def test_twice(self) -> None:
        result = run(
            step("a", "append", path="xs", value=1), step("b", "append", path="xs", value=2)
        )
        assert result.final_state == {"xs": [1, 2]}

    @pytest.mark.parametrize("existing", [5, "text", {"k": 1}, None, True])
    def test_onto_non_list_fails(self, existing: Any) -> None:
        result = run(step("s", "append", path="xs", value=1), state={"xs": existing})
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)
        assert result.final_state == {"xs": existing}

    def test_from_missing_fails(self) -> None:
        result = run(step("s", "append", path="xs", **{"from": "nope"}))
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    def test_path_through_non_object_fails(self) -> None:
        result = run(step("s", "append", path="a.b.c", value=1), state={"a": {"b": 3}})
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    @pytest.mark.parametrize(
        "payload",
        [
            {"path": "xs"},
            {"path": "xs", "value": 1, "from": "y"},
            {"path": "xs", "value": 1, "op": 1},
        ],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("s", "append", **payload))


# -- calc ----------------------------------------------------------------------------


class TestCalc:
    @pytest.mark.parametrize(
        ("op", "args", "expected"),
        [
            ("add", [1, 2, 3], 6),
            ("add", [5], 5),
            ("add", [0.5, 0.25], 0.75),
            ("sub", [10, 3, 2], 5),
            ("mul", [2, 3, 4], 24),
            ("div", [12, 3], 4.0),
            ("div", [1, 4], 0.25),
            ("min", [3, -1, 2], -1),
            ("max", [3, -1, 2.5], 3),
        ],
    )
    def test_literal_operands(self, op: str, args: list[Any], expected: float) -> None:
        result = run(step("s", "calc", path="out", op=op, args=args))
        assert result.success, result.error_message
        assert result.final_state["out"] == expected

    def test_add_uses_exact_float_sum(self) -> None:
        result = run(step("s", "calc", path="out", op="add", args=[0.1] * 10))
        assert result.final_state["out"] == 1.0

    def test_int_results_stay_int(self) -> None:
        result = run(step("s", "calc", path="out", op="mul", args=[2, 3]))
        assert result.final_state["out"] == 6
        assert type(result.final_state["out"]) is int

    def test_path_operands(self) -> None:
        state = {"a": {"x": 10}, "items": [{"n": 4}]}
        result = run(
            step("s", "calc", path="a.y", op="sub", args=[{"path": "a.x"}, {"path": "items.0.n"}]),
            state=state,
        )
        assert result.success
        assert result.final_state["a"] == {"x": 10, "y": 6}

    def test_chained(self) -> None:
        result = run(
            step("a", "calc", path="n", op="add", args=[1, 1]),
            step("b", "calc", path="n", op="mul", args=[{"path": "n"}, {"path": "n"}]),
        )
        assert result.final_state == {"n": 4}

    def test_division_by_zero_fails(self) -> None:
        result = run(step("s", "calc", path="out", op="div", args=[1, 0]))
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)
        assert "division by zero" in (result.error_message or "")
        assert "out" not in result.final_state

    def test_division_by_zero_from_state_fails(self) -> None:
        result = run(step("s", "calc", path="o", op="div", args=[1, {"path": "z"}]), state={"z": 0})
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)

    def test_non_finite_result_fails(self) -> None:
        result = run(step("s", "calc", path="out", op="mul", args=[1e308, 10.0]))
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)

    def test_float_add_overflow_is_a_failure_not_a_crash(self) -> None:
        result = run(step("s", "calc", path="out", op="add", args=[1e308, 1e308]))
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)

    def test_huge_int_division_is_a_failure_not_a_crash(self) -> None:
        result = run(step("s", "calc", path="out", op="div", args=[10**400, 3]))
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)

    @pytest.mark.parametrize(
        "value", ["5", True, None, [1], {"n": 1}], ids=["str", "bool", "none", "list", "dict"]
    )
    def test_non_number_in_state_fails(self, value: Any) -> None:
        result = run(
            step("s", "calc", path="out", op="add", args=[{"path": "v"}, 1]), state={"v": value}
        )
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)
        assert "out" not in result.final_state

    def test_missing_path_operand_fails(self) -> None:
        result = run(step("s", "calc", path="out", op="add", args=[{"path": "nope"}]))
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID)
        assert "nothing" in (result.error_message or "")

    def test_operand_path_through_non_object_fails(self) -> None:
        result = run(
            step("s", "calc", path="out", op="add", args=[{"path": "a.b"}]), state={"a": 1}
        )
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    def test_target_path_through_non_object_fails(self) -> None:
        result = run(step("s", "calc", path="a.b", op="add", args=[1]), state={"a": [1]})
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    @pytest.mark.parametrize("arg", [True, False], ids=["true", "false"])
    def test_bool_operand_rejected(self, arg: bool) -> None:
        invalid(step("s", "calc", path="out", op="add", args=[1, arg]))

    @pytest.mark.parametrize("arg", ["2", "1+1", "__import__('os')"])
    def test_string_operand_rejected_at_validation(self, arg: str) -> None:
        err = invalid(step("s", "calc", path="out", op="add", args=[1, arg]))
        assert isinstance(err, ValueError)
        assert "args[1]" in err.message

    @pytest.mark.parametrize(
        "payload",
        [
            {"path": "o", "op": "pow", "args": [1, 2]},
            {"path": "o", "op": "add", "args": []},
            {"path": "o", "op": "sub", "args": [1]},
            {"path": "o", "op": "div", "args": [1]},
            {"path": "o", "op": "add", "args": 3},
            {"path": "o", "op": "add", "args": [None]},
            {"path": "o", "op": "add", "args": [float("nan")]},
            {"path": "o", "op": "add", "args": [float("inf")]},
            {"path": "o", "op": "add", "args": [{"path": ""}]},
            {"path": "o", "op": "add", "args": [{"path": "a", "extra": 1}]},
            {"op": "add", "args": [1]},
            {"path": "o", "op": "add", "args": [1], "value": 2},
        ],
        ids=[
            "bad-op",
            "no-args",
            "sub-one",
            "div-one",
            "args-not-list",
            "none",
            "nan",
            "inf",
            "empty-path-operand",
            "operand-extra-key",
            "no-path",
            "unknown-key",
        ],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("s", "calc", **payload))

    def test_validation_happens_before_earlier_steps(self) -> None:
        with pytest.raises(WorkflowDefinitionError):
            run(
                step("ok", "set", path="x", value=1),
                step("bad", "calc", path="o", op="x", args=[1]),
            )


# -- mission -------------------------------------------------------------------------


class TestMission:
    def test_echo_stores_results(self) -> None:
        result = run(step("m", "mission", mission_type="echo", params={"message": "hi"}))
        assert result.success
        mission_result = result.final_state["mission_result"]
        assert mission_result["success"] is True
        assert mission_result["mission_type"] == "echo"
        assert mission_result["outputs"] == {"message": "hi"}
        assert result.final_state["mission_results"] == {"m": mission_result}

    def test_inputs_key(self) -> None:
        result = run(step("m", "mission", mission_type="echo", inputs={"a": 1}))
        assert result.final_state["mission_result"]["outputs"] == {"a": 1}

    def test_two_missions_keep_per_step_results(self) -> None:
        result = run(
            step("m1", "mission", mission_type="echo", params={"n": 1}),
            step("m2", "mission", mission_type="echo", params={"n": 2}),
        )
        results = result.final_state["mission_results"]
        assert results["m1"]["outputs"] == {"n": 1}
        assert results["m2"]["outputs"] == {"n": 2}
        assert result.final_state["mission_result"]["outputs"] == {"n": 2}

    def test_stored_results_are_independent_copies(self) -> None:
        result = run(step("m", "mission", mission_type="echo", params={"l": [1]}))
        state = result.final_state
        state["mission_result"]["outputs"]["l"].append(2)
        assert state["mission_results"]["m"]["outputs"]["l"] == [1]

    def test_unknown_mission_type_rejected_before_execution(self) -> None:
        with pytest.raises(UnknownMissionError) as info:
            run(step("first", "set", path="x", value=1), step("m", "mission", mission_type="nope"))
        assert isinstance(info.value, ValueError)
        assert info.value.reason is ReasonCode.UNKNOWN_MISSION
        assert "echo" in info.value.message

    def test_unknown_mission_type_rejected(self) -> None:
        with pytest.raises(UnknownMissionError) as info:
            run(step("m", "mission", mission_type="designer"))
        assert info.value.reason is ReasonCode.UNKNOWN_MISSION

    @pytest.mark.parametrize(
        "payload",
        [{}, {"mission_type": ""}, {"mission_type": 3}, {"mission_type": "echo", "params": [1]}],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("m", "mission", **payload))

    def test_run_tests_missing_target_fails(self, tmp_path: Path) -> None:
        result = run(
            step("m", "mission", mission_type="run_tests", params={"target": "no-such-dir"}),
            metadata={"repo_root": str(tmp_path)},
        )
        assert_failed(result, ReasonCode.TARGET_NOT_FOUND, "m")
        stored = result.final_state["mission_results"]["m"]
        assert stored["success"] is False
        assert stored["reason_code"] == "TARGET_NOT_FOUND"
        assert "no-such-dir" in (result.error_message or "")
        assert result.final_state["mission_result"] == stored

    def test_mission_validation_error_becomes_failed_result(self) -> None:
        result = run(step("m", "mission", mission_type="run_tests", params={"mode": "bogus"}))
        assert_failed(result, ReasonCode.INVALID_INPUT, "m")
        assert result.final_state["mission_results"]["m"]["success"] is False

    def test_mission_failure_stops_the_run(self, tmp_path: Path) -> None:
        result = run(
            step("m", "mission", mission_type="run_tests", params={"target": "missing"}),
            step("after", "set", path="x", value=1),
            metadata={"repo_root": str(tmp_path)},
        )
        assert result.failed_step_id == "m"
        assert "x" not in result.final_state

    def test_mission_results_not_an_object_fails(self) -> None:
        result = run(step("m", "mission", mission_type="echo"), state={"mission_results": [1]})
        assert_failed(result, ReasonCode.STATE_TYPE_INVALID, "m")

    def test_daily_loop_mission(self) -> None:
        params = {
            "today": "2024-05-02",
            "entries": [{"date": "2024-05-01", "text": "wrote tests", "done": True}],
            "tasks": [{"id": "t1", "title": "ship", "priority": "P0"}],
        }
        result = run(step("m", "mission", mission_type="daily_loop", params=params))
        assert result.success, result.error_message
        outputs = result.final_state["mission_result"]["outputs"]
        assert outputs["summary"]["done"] == 1
        assert outputs["priorities"][0]["title"] == "ship"


# -- llm_call ------------------------------------------------------------------------


class _LLM:
    def complete(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"content": f"echo:{request['prompt']}", "call_id": "c", "model": "m"}


class TestLLMCall:
    def test_without_provider_fails_closed(self) -> None:
        result = run(step("s", "llm_call", prompt="hello"))
        assert_failed(result, ReasonCode.PROVIDER_NOT_CONFIGURED)
        assert result.final_state == {}

    def test_with_provider(self) -> None:
        result = run(step("s", "llm_call", prompt="hello"), services=Services(llm=_LLM()))
        assert result.success
        assert result.final_state == {
            "llm_response": "echo:hello",
            "llm_response_metadata": {"call_id": "c", "model": "m"},
        }

    def test_output_key_through_non_object_fails(self) -> None:
        result = run(
            step("s", "llm_call", prompt="p", output_key="a.b"),
            state={"a": 1},
            services=Services(llm=_LLM()),
        )
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"prompt": 3},
            {"prompt": "p", "max_tokens": True},
            {"prompt": "p", "max_tokens": -1},
            {"prompt": "p", "role": ["x"]},
            {"prompt": "p", "output_key": ""},
            {"prompt": "p", "temperature": 0.5},
        ],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("s", "llm_call", **payload))


# -- tool_invoke ---------------------------------------------------------------------


def _tools() -> Services:
    def add(a: int, b: int = 0) -> int:
        return a + b

    return Services(
        tools=ToolRegistry([Tool("add", add, required={"a": int}, optional={"b": int})])
    )


class TestToolInvoke:
    def test_success(self) -> None:
        result = run(step("s", "tool_invoke", tool="add", args={"a": 2, "b": 3}), services=_tools())
        assert result.success
        assert result.final_state == {"tool_results": {"s": 5}}

    def test_optional_arg_omitted(self) -> None:
        result = run(step("s", "tool_invoke", tool="add", args={"a": 2}), services=_tools())
        assert result.final_state["tool_results"]["s"] == 2

    def test_unknown_tool(self) -> None:
        result = run(step("s", "tool_invoke", tool="sub", args={}), services=_tools())
        assert_failed(result, ReasonCode.UNKNOWN_TOOL)

    @pytest.mark.parametrize("args", [{}, {"a": "2"}, {"a": True}, {"a": 1, "c": 2}])
    def test_bad_args(self, args: dict[str, Any]) -> None:
        result = run(step("s", "tool_invoke", tool="add", args=args), services=_tools())
        assert_failed(result, ReasonCode.INVALID_INPUT)

    def test_output_key_through_non_object_fails(self) -> None:
        result = run(
            step("s", "tool_invoke", tool="add", args={"a": 1}, output_key="x.y"),
            state={"x": "str"},
            services=_tools(),
        )
        assert_failed(result, ReasonCode.STATE_PATH_INVALID)

    @pytest.mark.parametrize(
        "payload",
        [{}, {"tool": ""}, {"tool": "add", "args": [1]}, {"tool": "add", "kwargs": {}}],
    )
    def test_invalid_payload(self, payload: dict[str, Any]) -> None:
        invalid(step("s", "tool_invoke", **payload))
