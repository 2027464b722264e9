"""Roles from lifeos.yaml's models section, and llm_call through them, recorded durably."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifeos.agents.api import AgentCall, AgentError
from lifeos.agents.cassette import Cassette
from lifeos.agents.factory import AgentLLM, build_provider, role_spec
from lifeos.agents.providers.openai_compat import chat_request
from lifeos.clock import FixedClock
from lifeos.durable import run_recorded
from lifeos.engine import ExecutionContext, Orchestrator, StepSpec, WorkflowDefinition
from lifeos.services import Services
from lifeos.store.sqlite import SQLiteStore

ANSWER = {
    "choices": [{"finish_reason": "stop", "message": {"content": "42", "role": "assistant"}}],
    "id": "call-1",
    "model": "m-1",
    "usage": {"completion_tokens": 2, "prompt_tokens": 9},
}
PRICING = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def _cassette(path: Path, prompt: str = "What is six times seven?") -> Path:
    cassette = Cassette()
    cassette.record(chat_request(AgentCall(prompt=prompt), "m-1"), ANSWER)
    cassette.dump(path)
    return path


def _models(tmp_path: Path) -> dict[str, Any]:
    return {
        "builder": {
            "provider": "replay",
            "model": "m-1",
            "cassette": str(_cassette(tmp_path / "builder.jsonl")),
            "pricing": PRICING,
        }
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "lifeos.db", FixedClock())
    yield s
    s.close()


def test_unknown_role_is_not_configured() -> None:
    with pytest.raises(AgentError) as info:
        role_spec({"builder": {"provider": "replay"}}, "reviewer")
    assert info.value.reason.value == "PROVIDER_NOT_CONFIGURED"
    assert "builder" in info.value.message


def test_missing_key_variable_is_not_configured(tmp_path: Path) -> None:
    spec = {"provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "api_key_env": "NO_SUCH"}
    with pytest.raises(AgentError) as info:
        build_provider("builder", spec, {}, tmp_path)
    assert info.value.reason.value == "PROVIDER_NOT_CONFIGURED"
    assert "NO_SUCH" in info.value.message


def test_agent_llm_answers_with_priced_usage(tmp_path: Path) -> None:
    llm = AgentLLM(_models(tmp_path), {}, tmp_path)
    reply = llm.complete({"prompt": "What is six times seven?", "role": "builder"})
    assert reply["content"] == "42" and reply["call_id"] == "call-1"
    usage = reply["usage"]
    assert usage["input_tokens"] == 9 and usage["output_tokens"] == 2
    assert usage["cost_source"] == "computed"
    assert usage["cost_usd"] == pytest.approx((9 * 1.0 + 2 * 2.0) / 1_000_000)


def test_llm_call_is_journaled_and_ledgered_once(tmp_path: Path, store: SQLiteStore) -> None:
    llm = AgentLLM(_models(tmp_path), {}, tmp_path)
    workflow = WorkflowDefinition(
        id="wf-ask",
        steps=[
            StepSpec(
                "ask",
                "runtime",
                {"operation": "llm_call", "prompt": "What is six times seven?", "role": "builder"},
            ),
            StepSpec("confirm", "human", {}),
        ],
    )
    orch = Orchestrator(services=Services(llm=llm, store=store))
    first = run_recorded(
        store, orch, workflow, ExecutionContext(), "r1", kind="workflow", name="ask"
    )
    assert first.status == "paused"
    assert first.final_state["llm_response"] == "42"
    meta = first.final_state["llm_response_metadata"]
    assert meta["usage"]["input_tokens"] == 9
    calls = [r for r in store.ledger_rows_for_run("r1") if r["type"] == "agent.call"]
    assert len(calls) == 1
    # Resuming replays the journal: the cassette (one recording) is not asked again.
    from lifeos.engine import Decision

    done = run_recorded(
        store,
        orch,
        workflow,
        ExecutionContext(),
        "r1",
        kind="workflow",
        name="ask",
        decisions={"confirm": Decision.approve()},
    )
    assert done.status == "completed"
    assert len([r for r in store.ledger_rows_for_run("r1") if r["type"] == "agent.call"]) == 1


def test_llm_call_with_an_unconfigured_role_fails_closed(tmp_path: Path) -> None:
    llm = AgentLLM(_models(tmp_path), {}, tmp_path)
    workflow = WorkflowDefinition(
        id="wf-ask",
        steps=[StepSpec("ask", "runtime", {"operation": "llm_call", "prompt": "x", "role": "qa"})],
    )
    result = Orchestrator(services=Services(llm=llm)).run_workflow(workflow, ExecutionContext())
    assert result.status == "failed"
    assert result.reason_code == "PROVIDER_NOT_CONFIGURED"
