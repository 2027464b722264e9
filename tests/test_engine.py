"""The Tier-2 engine: limits, envelope, determinism, immutability, pauses, journal."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from lifeos.canonical import canonical_json, sha256_hex
from lifeos.engine import (
    Decision,
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import (
    AntiFailureViolation,
    EngineError,
    EnvelopeViolation,
    LifeOSError,
    ReasonCode,
    ResumeError,
    WorkflowDefinitionError,
)
from lifeos.journal import InMemoryJournal, Journal, JournalKey
from lifeos.services import LLMClient, Services, Tool, ToolRegistry

# -- helpers ----------------------------------------------------------------------


class CountingTool:
    """A side-effecting tool that records every call it receives."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, label: str) -> str:
        self.calls.append(label)
        return f"done:{label}"


def tool_services(counter: CountingTool) -> Services:
    tool = Tool("record", counter, required={"label": str})
    return Services(tools=ToolRegistry([tool]))


def runtime(step_id: str, operation: str = "noop", **payload: Any) -> StepSpec:
    return StepSpec(step_id, "runtime", {"operation": operation, **payload})


def human(step_id: str, description: str = "Please confirm") -> StepSpec:
    return StepSpec(step_id, "human", {"description": description})


def record(step_id: str, label: str | None = None) -> StepSpec:
    return runtime(step_id, "tool_invoke", tool="record", args={"label": label or step_id})


def workflow(*steps: StepSpec, wf_id: str = "wf-test", **metadata: Any) -> WorkflowDefinition:
    return WorkflowDefinition(id=wf_id, steps=list(steps), metadata=dict(metadata))


def run(
    wf: WorkflowDefinition,
    state: dict[str, Any] | None = None,
    orchestrator: Orchestrator | None = None,
    **kwargs: Any,
) -> OrchestrationResult:
    return (orchestrator or Orchestrator()).run_workflow(
        wf, ExecutionContext(initial_state=state or {}), **kwargs
    )


class FakeLLM:
    """An LLMClient returning a fixed reply and recording requests."""

    def __init__(self, reply: Mapping[str, Any] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply = dict(
            reply
            or {
                "content": "Hello from the model",
                "call_id": "call-1",
                "model": "fake-model",
                "latency_ms": 12,
                "usage": {"input_tokens": 3, "output_tokens": 4},
            }
        )

    def complete(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        self.requests.append(dict(request))
        return self.reply


class FailingLLM:
    def complete(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        raise LifeOSError("upstream timed out", ReasonCode.PROVIDER_TIMEOUT)


# -- ordering and basic shape -------------------------------------------------------


class TestOrderAndShape:
    def test_steps_run_in_order(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        result = run(workflow(record("s1"), record("s2"), record("s3")), orchestrator=orch)
        assert counter.calls == ["s1", "s2", "s3"]
        assert result.success is True
        assert result.status == "completed"
        assert [s.id for s in result.executed_steps] == ["s1", "s2", "s3"]

    def test_state_mutations_apply_in_order(self) -> None:
        wf = workflow(
            runtime("a", "set", path="x", value=1),
            runtime("b", "calc", path="x", op="mul", args=[{"path": "x"}, 10]),
            runtime("c", "calc", path="x", op="add", args=[{"path": "x"}, 5]),
        )
        assert run(wf).final_state == {"x": 15}

    def test_default_operation_is_noop(self) -> None:
        result = run(workflow(StepSpec("bare", "runtime")), {"k": 1})
        assert result.success
        assert result.final_state == {"k": 1}

    def test_empty_workflow_completes(self) -> None:
        result = run(workflow(), {"k": [1]})
        assert result.success and result.status == "completed"
        assert result.executed_steps == []
        assert result.final_state == {"k": [1]}

    def test_basic_result_fields(self) -> None:
        result = run(workflow(runtime("only"), wf_id="wf-shape"), {"a": 1})
        assert isinstance(result, OrchestrationResult)
        assert result.id == "wf-shape"
        assert result.failed_step_id is None
        assert result.error_message is None
        assert result.reason_code is None
        assert result.waiting_step_id is None

    def test_lineage_and_receipt(self) -> None:
        result = run(workflow(runtime("one"), runtime("two"), wf_id="wf-lin"))
        assert result.lineage == {"executed_step_ids": ["one", "two"], "workflow_id": "wf-lin"}
        assert result.receipt == {"id": "wf-lin", "steps": ["one", "two"]}
        assert "decisions" not in result.receipt


# -- validation before execution ---------------------------------------------------


class TestLimitsAndEnvelope:
    def test_more_than_five_steps_rejected_before_any_step(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(*(record(f"s{i}") for i in range(6)))
        with pytest.raises(AntiFailureViolation, match="6 steps") as info:
            run(wf, orchestrator=orch)
        assert counter.calls == []
        assert info.value.reason is ReasonCode.ANTI_FAILURE_LIMIT
        assert isinstance(info.value, EngineError) and info.value.exit_code == 2

    def test_exactly_five_steps_allowed(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        result = run(workflow(*(record(f"s{i}") for i in range(5))), orchestrator=orch)
        assert result.success
        assert len(counter.calls) == 5

    def test_more_than_two_human_steps_rejected_before_any_step(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(record("first"), human("h1"), human("h2"), human("h3"))
        decisions = {f"h{i}": Decision.approve() for i in (1, 2, 3)}
        with pytest.raises(AntiFailureViolation, match="3 human steps"):
            run(wf, orchestrator=orch, decisions=decisions)
        assert counter.calls == []

    def test_two_human_steps_allowed(self) -> None:
        wf = workflow(human("h1"), human("h2"), runtime("r"))
        decisions = {"h1": Decision.approve(), "h2": Decision.approve()}
        assert run(wf, decisions=decisions).success

    @pytest.mark.parametrize("kind", ["shell", "Runtime", "", "HUMAN", "network"])
    def test_disallowed_kind_is_envelope_violation(self, kind: str) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(record("before"), StepSpec("bad", kind, {}))
        with pytest.raises(EnvelopeViolation, match="disallowed kind") as info:
            run(wf, orchestrator=orch)
        assert info.value.reason is ReasonCode.ENVELOPE_VIOLATION
        assert counter.calls == []

    def test_unknown_operation_rejected_before_anything_runs(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(record("first"), runtime("second", "launch_rockets"))
        with pytest.raises(EnvelopeViolation, match="launch_rockets") as info:
            run(wf, orchestrator=orch)
        assert info.value.reason is ReasonCode.UNKNOWN_OPERATION
        assert counter.calls == []

    @pytest.mark.parametrize("name", [None, 3, ["noop"]])
    def test_non_string_operation_is_unknown(self, name: Any) -> None:
        wf = workflow(StepSpec("s", "runtime", {"operation": name}))
        with pytest.raises(EnvelopeViolation) as info:
            run(wf)
        assert info.value.reason is ReasonCode.UNKNOWN_OPERATION

    def test_duplicate_step_ids_rejected(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(record("same"), record("same"))
        with pytest.raises(WorkflowDefinitionError, match="duplicate step id 'same'"):
            run(wf, orchestrator=orch)
        assert counter.calls == []

    def test_duplicate_id_across_kinds_rejected(self) -> None:
        with pytest.raises(WorkflowDefinitionError):
            Orchestrator().validate(workflow(runtime("x"), human("x")))

    @pytest.mark.parametrize("bad_id", ["", 7, None])
    def test_step_needs_non_empty_string_id(self, bad_id: Any) -> None:
        with pytest.raises(WorkflowDefinitionError, match="non-empty string id"):
            Orchestrator().validate(workflow(StepSpec(bad_id, "runtime", {})))

    def test_payload_must_be_object(self) -> None:
        step = StepSpec("s", "human", {})
        step.payload = ["not", "a", "dict"]  # type: ignore[assignment]
        with pytest.raises(WorkflowDefinitionError, match="payload must be an object"):
            Orchestrator().validate(workflow(step))

    def test_invalid_payload_rejected_before_anything_runs(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(record("first"), runtime("calc", "calc", path="x", op="pow", args=[1]))
        with pytest.raises(WorkflowDefinitionError):
            run(wf, orchestrator=orch)
        assert counter.calls == []

    def test_validate_accepts_valid_workflow(self) -> None:
        Orchestrator().validate(workflow(runtime("a"), human("b")))


# -- serialisation and determinism --------------------------------------------------


def _rich_workflow() -> WorkflowDefinition:
    return workflow(
        runtime("set", "set", path="report.title", value="Ünïcode ✓"),
        runtime("add", "append", path="report.items", value={"z": 1, "a": 2}),
        runtime("sum", "calc", path="report.total", op="add", args=[{"path": "n"}, 0.5]),
        human("ok"),
        runtime("end"),
        wf_id="wf-rich",
        owner="tests",
        priority=1,
    )


class TestSerialisation:
    def test_to_dict_keys_sorted_and_json_serialisable(self) -> None:
        result = run(
            _rich_workflow(), {"n": 2, "b": 1, "a": 0}, decisions={"ok": Decision.approve()}
        )
        data = result.to_dict()
        assert list(data) == sorted(data)
        assert list(data["final_state"]) == sorted(data["final_state"])
        assert list(data["receipt"]) == sorted(data["receipt"])
        assert list(data["lineage"]) == sorted(data["lineage"])
        text = json.dumps(data)
        assert json.loads(text) == data
        canonical_json(data)

    def test_to_dict_has_all_documented_keys(self) -> None:
        data = run(workflow(runtime("a"))).to_dict()
        assert set(data) == {
            "error_message",
            "executed_steps",
            "failed_step_id",
            "final_state",
            "id",
            "lineage",
            "reason_code",
            "receipt",
            "status",
            "success",
            "waiting_step_id",
        }
        assert data["executed_steps"] == [
            {"id": "a", "kind": "runtime", "payload": {"operation": "noop"}}
        ]

    def test_step_and_workflow_to_dict_sorted(self) -> None:
        step = StepSpec("s", "runtime", {"z": 1, "operation": "noop", "a": 2})
        assert list(step.to_dict()["payload"]) == ["a", "operation", "z"]
        assert StepSpec("e", "human").to_dict() == {"id": "e", "kind": "human", "payload": {}}
        wf = WorkflowDefinition(id="w", steps=[step], metadata={"b": 1, "a": 2})
        assert list(wf.to_dict()) == ["id", "metadata", "steps"]
        assert list(wf.to_dict()["metadata"]) == ["a", "b"]

    def test_byte_identical_for_identical_inputs(self) -> None:
        state = {"n": 2, "nested": {"list": [1, {"k": "v"}]}}
        decisions = {"ok": Decision.approve("fine")}
        first = run(_rich_workflow(), copy.deepcopy(state), decisions=decisions)
        second = run(_rich_workflow(), copy.deepcopy(state), decisions=decisions)
        assert canonical_json(first.to_dict()) == canonical_json(second.to_dict())
        assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())
        assert sha256_hex(first.to_dict()) == sha256_hex(second.to_dict())

    def test_same_orchestrator_twice_is_identical(self) -> None:
        orch = Orchestrator()
        wf = _rich_workflow()
        a = orch.run_workflow(wf, ExecutionContext({"n": 1}), decisions={"ok": Decision.approve()})
        b = orch.run_workflow(wf, ExecutionContext({"n": 1}), decisions={"ok": Decision.approve()})
        assert canonical_json(a.to_dict()) == canonical_json(b.to_dict())

    def test_different_state_gives_different_result(self) -> None:
        wf = workflow(runtime("c", "calc", path="out", op="add", args=[{"path": "n"}, 1]))
        assert sha256_hex(run(wf, {"n": 1}).to_dict()) != sha256_hex(run(wf, {"n": 2}).to_dict())


# -- immutability -------------------------------------------------------------------


class TestImmutability:
    def test_does_not_mutate_workflow_or_context(self) -> None:
        wf = _rich_workflow()
        ctx = ExecutionContext(
            initial_state={"n": 3, "report": {"items": [0]}}, metadata={"run_id": "r-1"}
        )
        wf_before = copy.deepcopy(wf)
        ctx_before = copy.deepcopy(ctx)
        result = Orchestrator().run_workflow(wf, ctx, decisions={"ok": Decision.approve()})
        assert result.success
        assert result.final_state["report"]["items"] == [0, {"z": 1, "a": 2}]
        assert wf == wf_before
        assert wf.to_dict() == wf_before.to_dict()
        assert ctx == ctx_before
        assert ctx.initial_state == {"n": 3, "report": {"items": [0]}}

    def test_final_state_not_aliased_to_initial_state(self) -> None:
        state = {"items": [1], "obj": {"k": "v"}}
        wf = workflow(runtime("noop"))
        result = Orchestrator().run_workflow(wf, ExecutionContext(state))
        result.final_state["items"].append(2)
        result.final_state["obj"]["k"] = "changed"
        assert state == {"items": [1], "obj": {"k": "v"}}

    def test_executed_steps_not_aliased_to_input_steps(self) -> None:
        wf = workflow(runtime("a", "set", path="x", value=[1]))
        result = run(wf)
        result.executed_steps[0].payload["value"].append(99)
        assert wf.steps[0].payload["value"] == [1]
        assert result.final_state == {"x": [1]}

    def test_set_value_not_aliased_into_state(self) -> None:
        wf = workflow(runtime("a", "set", path="x", value={"list": [1]}))
        result = run(wf)
        result.final_state["x"]["list"].append(2)
        assert wf.steps[0].payload["value"] == {"list": [1]}

    def test_failed_run_does_not_mutate_inputs(self) -> None:
        wf = workflow(runtime("a", "append", path="n", value=1))
        state = {"n": 5}
        result = run(wf, state)
        assert result.status == "failed"
        assert state == {"n": 5}

    def test_unusual_definitions_are_copied_too(self) -> None:
        class Tagged(WorkflowDefinition):
            pass

        odd = Tagged(id="odd", steps=[runtime("a", "set", path="x", value=[1])])
        renamed = workflow(runtime("a", "set", path="x", value=[1]))
        renamed.name = "another name"  # after construction: no longer checked
        for wf in (odd, renamed):
            result = run(wf)
            assert result.success
            assert type(result.workflow) is type(wf)
            assert result.workflow is not wf
            result.executed_steps[0].payload["value"].append(2)
            assert wf.steps[0].payload["value"] == [1]

    def test_context_metadata_is_copied(self) -> None:
        ctx = ExecutionContext(initial_state={"a": 1}, metadata={"tags": ["x"], "run_id": "r"})
        result = Orchestrator().run_workflow(workflow(runtime("noop")), ctx)
        assert result.context is not None and result.context.metadata is not None
        result.context.metadata["tags"].append("y")
        assert ctx.metadata == {"tags": ["x"], "run_id": "r"}


# -- failure ------------------------------------------------------------------------


class TestFailure:
    def test_fail_halts_with_step_failed(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        wf = workflow(
            record("before"),
            runtime("stop", "fail", reason="deliberate"),
            record("after"),
            wf_id="wf-fail",
        )
        result = run(wf, orchestrator=orch)
        assert result.success is False
        assert result.status == "failed"
        assert result.failed_step_id == "stop"
        assert result.reason_code == "STEP_FAILED"
        assert result.error_message == "Step 'stop' failed: deliberate"
        assert counter.calls == ["before"]
        assert [s.id for s in result.executed_steps] == ["before", "stop"]
        assert result.receipt["steps"] == ["before", "stop"]
        assert result.lineage["executed_step_ids"] == ["before", "stop"]

    def test_fail_without_reason(self) -> None:
        result = run(workflow(runtime("x", "fail")))
        assert result.error_message == "Step 'x' failed: unspecified"

    def test_state_before_failure_is_kept(self) -> None:
        wf = workflow(
            runtime("a", "set", path="x", value=1),
            runtime("b", "fail"),
            runtime("c", "set", path="y", value=2),
        )
        result = run(wf, {"seed": True})
        assert result.final_state == {"seed": True, "x": 1}

    def test_failure_is_deterministic(self) -> None:
        wf = workflow(runtime("a", "set", path="x", value=1), runtime("b", "fail", reason="r"))
        assert canonical_json(run(wf).to_dict()) == canonical_json(run(wf).to_dict())


# -- workflow definition --------------------------------------------------------------


class TestWorkflowDefinition:
    def test_name_defaults_to_id(self) -> None:
        wf = WorkflowDefinition(id="wf-a")
        assert wf.name == "wf-a"

    def test_id_defaults_to_name(self) -> None:
        wf = WorkflowDefinition(name="wf-b")
        assert wf.id == "wf-b"
        assert wf.to_dict()["id"] == "wf-b"

    def test_same_id_and_name_ok(self) -> None:
        assert WorkflowDefinition(id="x", name="x").id == "x"

    def test_mismatch_raises(self) -> None:
        with pytest.raises(WorkflowDefinitionError, match="mismatch") as info:
            WorkflowDefinition(id="one", name="two")
        assert isinstance(info.value, ValueError)
        assert info.value.exit_code == 2

    def test_mismatch_catchable_as_value_error(self) -> None:
        with pytest.raises(ValueError):
            WorkflowDefinition(id="one", name="two")

    def test_name_not_in_to_dict(self) -> None:
        assert "name" not in WorkflowDefinition(id="x").to_dict()


# -- human steps ----------------------------------------------------------------------


class TestHumanSteps:
    def _wf(self) -> WorkflowDefinition:
        return workflow(
            runtime("before", "set", path="a", value=1),
            human("approve-me"),
            runtime("after", "set", path="b", value=2),
            wf_id="wf-human",
        )

    def test_human_step_pauses(self) -> None:
        result = run(self._wf())
        assert result.status == "paused"
        assert result.success is False
        assert result.waiting_step_id == "approve-me"
        assert result.failed_step_id is None
        assert result.reason_code is None
        assert result.final_state == {"a": 1}
        assert [s.id for s in result.executed_steps] == ["before"]
        assert result.to_dict()["waiting_step_id"] == "approve-me"

    def test_resume_approve_continues_and_records_decision(self) -> None:
        orch = Orchestrator()
        paused = run(self._wf(), orchestrator=orch)
        done = orch.resume(paused, Decision.approve("looks good", actor="alice"))
        assert done.status == "completed"
        assert done.success is True
        assert done.waiting_step_id is None
        assert done.final_state == {"a": 1, "b": 2}
        assert [s.id for s in done.executed_steps] == ["before", "approve-me", "after"]
        assert done.receipt["decisions"] == [
            {"actor": "alice", "decision": "approve", "note": "looks good", "step_id": "approve-me"}
        ]
        assert done.receipt["steps"] == ["before", "approve-me", "after"]

    def test_resume_does_not_mutate_paused_result(self) -> None:
        orch = Orchestrator()
        paused = run(self._wf(), orchestrator=orch)
        before = copy.deepcopy(paused.to_dict())
        orch.resume(paused, Decision.approve())
        assert paused.to_dict() == before
        # And the same paused result can be resumed again with the same outcome.
        again = orch.resume(paused, Decision.approve())
        assert again.final_state == {"a": 1, "b": 2}

    def test_resume_reject_fails_with_human_rejected(self) -> None:
        orch = Orchestrator()
        paused = run(self._wf(), orchestrator=orch)
        done = orch.resume(paused, Decision.reject("not today"))
        assert done.status == "failed"
        assert done.success is False
        assert done.reason_code == "HUMAN_REJECTED"
        assert done.failed_step_id == "approve-me"
        assert "not today" in (done.error_message or "")
        assert done.final_state == {"a": 1}
        assert "after" not in [s.id for s in done.executed_steps]
        assert done.receipt["decisions"][0]["decision"] == "reject"

    def test_reject_without_note(self) -> None:
        done = run(self._wf(), decisions={"approve-me": Decision.reject()})
        assert done.reason_code == ReasonCode.HUMAN_REJECTED.value
        assert "no note" in (done.error_message or "")

    def test_decisions_passed_up_front(self) -> None:
        result = run(self._wf(), decisions={"approve-me": Decision.approve("pre-approved")})
        assert result.status == "completed"
        assert result.final_state == {"a": 1, "b": 2}
        assert result.receipt["decisions"] == [
            {
                "actor": "human",
                "decision": "approve",
                "note": "pre-approved",
                "step_id": "approve-me",
            }
        ]

    def test_up_front_equals_resume(self) -> None:
        orch = Orchestrator()
        upfront = run(self._wf(), orchestrator=orch, decisions={"approve-me": Decision.approve()})
        resumed = orch.resume(run(self._wf(), orchestrator=orch), Decision.approve())
        assert canonical_json(upfront.to_dict()) == canonical_json(resumed.to_dict())

    def test_two_human_steps_pause_twice(self) -> None:
        orch = Orchestrator()
        wf = workflow(human("h1"), runtime("mid", "set", path="m", value=1), human("h2"))
        first = run(wf, orchestrator=orch)
        assert first.waiting_step_id == "h1"
        second = orch.resume(first, Decision.approve("one"))
        assert second.status == "paused"
        assert second.waiting_step_id == "h2"
        assert second.final_state == {"m": 1}
        third = orch.resume(second, Decision.approve("two"))
        assert third.status == "completed"
        assert [d["note"] for d in third.receipt["decisions"]] == ["one", "two"]

    def test_decision_for_second_step_only_still_pauses_at_first(self) -> None:
        wf = workflow(human("h1"), human("h2"))
        result = run(wf, decisions={"h2": Decision.approve()})
        assert result.waiting_step_id == "h1"

    def test_resume_non_paused_raises(self) -> None:
        orch = Orchestrator()
        completed = run(workflow(runtime("a")), orchestrator=orch)
        with pytest.raises(ResumeError) as info:
            orch.resume(completed, Decision.approve())
        assert info.value.reason is ReasonCode.RESUME_INVALID
        failed = run(workflow(runtime("f", "fail")), orchestrator=orch)
        with pytest.raises(ResumeError):
            orch.resume(failed, Decision.approve())

    def test_resume_without_workflow_raises(self) -> None:
        paused = run(self._wf())
        paused.workflow = None
        with pytest.raises(ResumeError, match="no workflow"):
            Orchestrator().resume(paused, Decision.approve())

    def test_decision_validation(self) -> None:
        with pytest.raises(WorkflowDefinitionError):
            Decision("maybe")  # type: ignore[arg-type]
        assert Decision.approve().decision == "approve"
        assert Decision.reject(actor="bob").actor == "bob"


# -- llm_call -----------------------------------------------------------------------


class TestLLMCall:
    def test_no_provider_fails_closed(self) -> None:
        result = run(workflow(runtime("ask", "llm_call", prompt="hi"), runtime("next")))
        assert result.success is False
        assert result.status == "failed"
        assert result.reason_code == "PROVIDER_NOT_CONFIGURED"
        assert result.failed_step_id == "ask"
        assert "llm_response" not in result.final_state

    def test_fake_client_stores_content_and_metadata(self) -> None:
        llm = FakeLLM()
        assert isinstance(llm, LLMClient)
        orch = Orchestrator(services=Services(llm=llm))
        wf = workflow(
            runtime("ask", "llm_call", prompt="Say hello", model="m1", role="writer", max_tokens=50)
        )
        result = run(wf, orchestrator=orch)
        assert result.success
        assert result.final_state["llm_response"] == "Hello from the model"
        assert result.final_state["llm_response_metadata"] == {
            "call_id": "call-1",
            "latency_ms": 12,
            "model": "fake-model",
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
        assert llm.requests == [
            {"max_tokens": 50, "model": "m1", "prompt": "Say hello", "role": "writer"}
        ]

    def test_output_key_path(self) -> None:
        orch = Orchestrator(services=Services(llm=FakeLLM({"content": "x"})))
        wf = workflow(runtime("ask", "llm_call", prompt="p", output_key="out.text"))
        state = run(wf, orchestrator=orch).final_state
        assert state == {"out": {"text": "x", "text_metadata": {}}}

    def test_reply_without_content_is_provider_error(self) -> None:
        orch = Orchestrator(services=Services(llm=FakeLLM({"call_id": "c"})))
        result = run(workflow(runtime("ask", "llm_call", prompt="p")), orchestrator=orch)
        assert result.reason_code == "PROVIDER_ERROR"

    def test_provider_error_keeps_its_reason(self) -> None:
        orch = Orchestrator(services=Services(llm=FailingLLM()))
        result = run(workflow(runtime("ask", "llm_call", prompt="p")), orchestrator=orch)
        assert result.status == "failed"
        assert result.reason_code == "PROVIDER_TIMEOUT"
        assert "upstream timed out" in (result.error_message or "")

    @pytest.mark.parametrize(
        "payload",
        [{}, {"prompt": ""}, {"prompt": "p", "max_tokens": 0}, {"prompt": "p", "model": 3}],
    )
    def test_bad_payload_rejected_at_validation(self, payload: dict[str, Any]) -> None:
        with pytest.raises(WorkflowDefinitionError):
            run(workflow(runtime("ask", "llm_call", **payload)))


# -- tool_invoke --------------------------------------------------------------------


class TestToolInvoke:
    def test_registered_tool_runs(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        result = run(workflow(record("t", "hello")), orchestrator=orch)
        assert result.success
        assert counter.calls == ["hello"]
        assert result.final_state == {"tool_results": {"t": "done:hello"}}

    def test_output_key(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        step = runtime("t", "tool_invoke", tool="record", args={"label": "x"}, output_key="o.k")
        assert run(workflow(step), orchestrator=orch).final_state == {"o": {"k": "done:x"}}

    def test_unknown_tool(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        result = run(workflow(runtime("t", "tool_invoke", tool="missing")), orchestrator=orch)
        assert result.status == "failed"
        assert result.reason_code == "UNKNOWN_TOOL"
        assert "record" in (result.error_message or "")

    @pytest.mark.parametrize(
        "args",
        [{}, {"label": 5}, {"label": "x", "extra": 1}],
        ids=["missing", "wrong-type", "unknown-arg"],
    )
    def test_bad_args_fail_with_invalid_input(self, args: dict[str, Any]) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        result = run(
            workflow(runtime("t", "tool_invoke", tool="record", args=args)), orchestrator=orch
        )
        assert result.status == "failed"
        assert result.reason_code == "INVALID_INPUT"
        assert counter.calls == []

    def test_tool_exception_becomes_failure(self) -> None:
        def boom() -> None:
            raise RuntimeError("kaput")

        orch = Orchestrator(services=Services(tools=ToolRegistry([Tool("boom", boom)])))
        result = run(workflow(runtime("t", "tool_invoke", tool="boom")), orchestrator=orch)
        assert result.status == "failed"
        assert result.reason_code == "PROVIDER_ERROR"
        assert "kaput" in (result.error_message or "")

    def test_tool_registry_refuses_duplicates(self) -> None:
        registry = ToolRegistry([Tool("a", print)])
        with pytest.raises(ValueError):
            registry.register(Tool("a", print))
        assert registry.names() == ["a"]
        assert registry.get("nope") is None


# -- journal ------------------------------------------------------------------------


class TestJournal:
    def test_in_memory_journal_satisfies_protocol(self) -> None:
        assert isinstance(InMemoryJournal(), Journal)

    def test_put_once_per_key(self) -> None:
        journal = InMemoryJournal()
        key = JournalKey("r", "s", 0, 0)
        journal.put(key, {"step_digest": "d", "result": 1})
        with pytest.raises(ValueError):
            journal.put(key, {"step_digest": "d", "result": 2})
        assert journal.get(key) == {"step_digest": "d", "result": 1}
        assert len(journal) == 1

    def test_replay_calls_side_effect_once(self) -> None:
        counter = CountingTool()
        journal = InMemoryJournal()
        orch = Orchestrator(services=tool_services(counter), journal=journal)
        wf = workflow(record("a"), record("b"))
        first = run(wf, orchestrator=orch, run_id="run-1")
        second = run(wf, orchestrator=orch, run_id="run-1")
        assert counter.calls == ["a", "b"]
        assert first.success and second.success
        assert canonical_json(first.to_dict()) == canonical_json(second.to_dict())
        assert journal.keys("run-1") == [
            JournalKey("run-1", "a", 0, 0),
            JournalKey("run-1", "b", 0, 0),
        ]

    def test_different_run_id_calls_again(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter), journal=InMemoryJournal())
        wf = workflow(record("a"))
        run(wf, orchestrator=orch, run_id="r1")
        run(wf, orchestrator=orch, run_id="r2")
        assert counter.calls == ["a", "a"]

    def test_run_id_from_metadata(self) -> None:
        counter = CountingTool()
        journal = InMemoryJournal()
        orch = Orchestrator(services=tool_services(counter), journal=journal)
        ctx = ExecutionContext({}, metadata={"run_id": "meta-run"})
        result = orch.run_workflow(workflow(record("a")), ctx)
        orch.run_workflow(workflow(record("a")), ctx)
        assert counter.calls == ["a"]
        assert result.run_id == "meta-run"
        assert journal.keys() == [JournalKey("meta-run", "a", 0, 0)]

    def test_derived_run_id_is_deterministic(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter), journal=InMemoryJournal())
        first = run(workflow(record("a")), {"x": 1}, orchestrator=orch)
        second = run(workflow(record("a")), {"x": 1}, orchestrator=orch)
        assert first.run_id is not None and first.run_id == second.run_id
        assert counter.calls == ["a"]

    def test_llm_replay(self) -> None:
        llm = FakeLLM()
        orch = Orchestrator(services=Services(llm=llm), journal=InMemoryJournal())
        wf = workflow(runtime("ask", "llm_call", prompt="p"))
        a = run(wf, orchestrator=orch, run_id="r")
        b = run(wf, orchestrator=orch, run_id="r")
        assert len(llm.requests) == 1
        assert a.final_state == b.final_state

    def test_changed_step_spec_is_nondeterminism_llm(self) -> None:
        llm = FakeLLM()
        orch = Orchestrator(services=Services(llm=llm), journal=InMemoryJournal())
        run(workflow(runtime("ask", "llm_call", prompt="first")), orchestrator=orch, run_id="r")
        result = run(
            workflow(runtime("ask", "llm_call", prompt="second")), orchestrator=orch, run_id="r"
        )
        assert result.status == "failed"
        assert result.reason_code == "NONDETERMINISM"
        assert result.failed_step_id == "ask"
        assert len(llm.requests) == 1

    def test_changed_step_spec_is_nondeterminism_mission(self) -> None:
        orch = Orchestrator(journal=InMemoryJournal())

        def echo(message: str) -> WorkflowDefinition:
            step = runtime("m", "mission", mission_type="echo", params={"message": message})
            return workflow(step)

        assert run(echo("one"), orchestrator=orch, run_id="r").success
        result = run(echo("two"), orchestrator=orch, run_id="r")
        assert result.reason_code == "NONDETERMINISM"

    def test_changed_step_spec_is_nondeterminism_tool(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter), journal=InMemoryJournal())
        run(workflow(record("t", "first")), orchestrator=orch, run_id="r")
        result = run(workflow(record("t", "second")), orchestrator=orch, run_id="r")
        assert counter.calls == ["first"]
        assert result.status == "failed"
        assert result.reason_code == "NONDETERMINISM"

    def test_no_journal_calls_every_time(self) -> None:
        counter = CountingTool()
        orch = Orchestrator(services=tool_services(counter))
        run(workflow(record("a")), orchestrator=orch, run_id="r")
        run(workflow(record("a")), orchestrator=orch, run_id="r")
        assert counter.calls == ["a", "a"]


# -- timings ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


class TestTimings:
    def test_no_clock_no_timings(self) -> None:
        result = run(workflow(runtime("a"), runtime("b")))
        assert result.timings == {}

    def test_clock_gives_per_step_timings(self) -> None:
        orch = Orchestrator(clock=FakeClock())
        result = run(
            workflow(runtime("a"), human("h"), runtime("b")),
            orchestrator=orch,
            decisions={"h": Decision.approve()},
        )
        assert result.timings == {"a": 0.25, "b": 0.25}

    def test_timings_never_in_to_dict(self) -> None:
        with_clock = run(workflow(runtime("a")), orchestrator=Orchestrator(clock=FakeClock()))
        without = run(workflow(runtime("a")))
        assert with_clock.timings
        assert "timings" not in with_clock.to_dict()
        assert canonical_json(with_clock.to_dict()) == canonical_json(without.to_dict())
        assert "timings" not in json.dumps(with_clock.to_dict())
