"""The spine workflow's logic, on a real Temporal dev server with scripted activities.

The two activities are stand-ins registered under the real names (the real ones, over
a real spine, are tested in test_activities.py and tests/e2e/test_temporal_cli.py):
they answer from a script and record what the workflow asked. The workflow, the
server, the signals, the memo and the client helpers the CLI uses are real.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from lifeos.errors import InputError, ReasonCode
from lifeos.temporal import contract
from lifeos.temporal.client import (
    connect,
    decisions_taken,
    send_decision,
    submit,
    wait_for_stop,
)
from lifeos.temporal.contract import EngineRef
from lifeos.temporal.devserver import DevServer
from lifeos.temporal.workflow import SpineWorkflow


def outcome(state: str, calls: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": "r",
        "task_id": "T-1",
        "state": state,
        "reason_codes": [],
        "message": "",
        "phase": "review",
        "agent_calls": calls,
        "replayed_calls": 0,
        **extra,
    }


def step(result: dict[str, Any] | None, calls: int = 0, replayed: int = 0, **extra: Any) -> Any:
    return {
        "outcome": result,
        "agent_calls": calls,
        "replayed_calls": replayed,
        "approval": None,
        **extra,
    }


class Script:
    """Scripted activities: each step answers with the next entry (an exception is
    raised); every request is recorded with its attempt number."""

    def __init__(self, steps: list[Any], decisions: list[Any] | None = None) -> None:
        self.steps = list(steps)
        self.decisions = list(decisions or [])
        self.requests: list[tuple[int, dict[str, Any]]] = []
        self.decided: list[dict[str, Any]] = []

        @activity.defn(name=contract.STEP_ACTIVITY)
        async def step_activity(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append((activity.info().attempt, request))
            answer = self.steps.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return dict(answer)

        @activity.defn(name=contract.DECIDE_ACTIVITY)
        async def decide_activity(request: dict[str, Any]) -> dict[str, Any]:
            self.decided.append(request)
            return dict(self.decisions.pop(0))

        self.activities = [step_activity, decide_activity]


def drive(
    server: DevServer, script: Script, body: Callable[[Client, EngineRef], Awaitable[Any]]
) -> Any:
    """Run ``body(client, ref)`` while a worker with ``script``'s activities polls a
    task queue of its own."""
    ref = EngineRef(server.address, f"q-{uuid.uuid4().hex[:8]}")

    async def main() -> Any:
        client = await connect(server.address)
        async with Worker(
            client,
            task_queue=ref.task_queue,
            workflows=[SpineWorkflow],
            activities=script.activities,
        ):
            return await asyncio.wait_for(body(client, ref), 60)

    return asyncio.run(main())


def run_id() -> str:
    return str(uuid.uuid4())


def test_the_workflow_steps_until_the_run_stops_and_sums_the_calls(temporal: DevServer) -> None:
    script = Script([step(None, 1), step(None, 3, 1), step(outcome("LANDED", 2), 2)])

    async def body(client: Client, ref: EngineRef) -> Any:
        handle = await submit(client, ref, run_id(), recovering=True)
        return await wait_for_stop(handle, ref.address)

    result = drive(temporal, script, body)
    assert result["state"] == "LANDED"
    assert (result["agent_calls"], result["replayed_calls"]) == (6, 1)
    # a resumed run's first phase is a recovery; the next ones are not
    assert [r["recovering"] for _, r in script.requests] == [True, False, False]


def test_a_pause_waits_for_a_signal_and_a_refused_decision_is_reported(
    temporal: DevServer,
) -> None:
    paused = outcome("PAUSED", message="waiting for approval (before_steward)")
    script = Script(
        [step(paused, 5, approval="before_steward"), step(outcome("LANDED"), 0, 0)],
        decisions=[
            {"refused": {"reason": "POLICY_HASH_MISMATCH", "message": "the policy changed"}},
            {"refused": None},
        ],
    )

    async def body(client: Client, ref: EngineRef) -> Any:
        rid = run_id()
        handle = await submit(client, ref, rid, recovering=False)
        stopped = await wait_for_stop(handle, ref.address)
        assert stopped["state"] == "PAUSED" and stopped["agent_calls"] == 5
        # submitting the same run again finds the same workflow
        again = await submit(client, ref, rid, recovering=False)
        assert again.first_execution_run_id == handle.first_execution_run_id
        assert await decisions_taken(handle, ref.address) == 0
        # a decision about another pause is not taken for this one
        await send_decision(handle, ref.address, "before_build", True, "stale")
        await send_decision(handle, ref.address, "before_steward", True, "first try")
        with pytest.raises(InputError) as refused:
            await wait_for_stop(handle, ref.address, after_decisions=1)
        assert refused.value.reason is ReasonCode.POLICY_HASH_MISMATCH
        await send_decision(handle, ref.address, "before_steward", False, "second try")
        return await wait_for_stop(handle, ref.address, after_decisions=2)

    result = drive(temporal, script, body)
    assert result["state"] == "LANDED"
    assert result["agent_calls"] == 0  # calls since the decision, as `spine approve` reports
    assert [(d["point"], d["approved"], d["note"]) for d in script.decided] == [
        ("before_steward", True, "first try"),
        ("before_steward", False, "second try"),
    ]


def test_a_failed_phase_attempt_is_tried_again(temporal: DevServer) -> None:
    script = Script([RuntimeError("worker lost"), step(outcome("LANDED"), 1)])

    async def body(client: Client, ref: EngineRef) -> Any:
        handle = await submit(client, ref, run_id(), recovering=False)
        return await wait_for_stop(handle, ref.address)

    assert drive(temporal, script, body)["state"] == "LANDED"
    assert [attempt for attempt, _ in script.requests] == [1, 2]


def test_a_refusal_ends_the_workflow_with_its_reason(temporal: DevServer) -> None:
    refusal = ApplicationError(
        "no spine run 'x'", {"reason": "RESUME_INVALID"}, type="SPINE_INPUT", non_retryable=True
    )
    script = Script([refusal])

    async def body(client: Client, ref: EngineRef) -> Any:
        handle = await submit(client, ref, run_id(), recovering=False)
        return await wait_for_stop(handle, ref.address)

    with pytest.raises(InputError) as failed:
        drive(temporal, script, body)
    assert failed.value.reason is ReasonCode.RESUME_INVALID
    assert "no spine run" in failed.value.message
    assert len(script.requests) == 1  # not retried
