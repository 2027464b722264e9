"""The spine run as a Temporal workflow: one activity per phase, a decision a signal.

The workflow holds no run state of its own — the run's record in the store is the
state, and :meth:`lifeos.spine.Spine.step` reads it — so it stays thin and
deterministic: step until the run stops; at an approval point, record in the memo where
the run stopped, wait for an ``approve`` or ``reject`` signal, have a worker record the
decision, and step on. A phase's retries (a worker died mid-phase) replay the phase's
journal, so no agent call or commit is made twice.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from lifeos.temporal import contract

__all__ = ["SpineWorkflow"]

PHASE_RETRIES = RetryPolicy(
    maximum_attempts=contract.PHASE_ATTEMPTS,
    non_retryable_error_types=["SPINE_INPUT"],
)


@workflow.defn(name=contract.WORKFLOW)
class SpineWorkflow:
    """Drives one spine run (``{"run_id", "recovering"}``) to its outcome."""

    def __init__(self) -> None:
        self._decisions: list[dict[str, Any]] = []
        self._taken = 0

    @workflow.signal(name=contract.SIGNAL_APPROVE)
    def approve(self, decision: dict[str, Any]) -> None:
        """A person approves the pause at ``decision["point"]`` (with a ``note``)."""
        self._decisions.append({**decision, "approved": True})

    @workflow.signal(name=contract.SIGNAL_REJECT)
    def reject(self, decision: dict[str, Any]) -> None:
        """A person rejects the pause at ``decision["point"]`` (with a ``note``)."""
        self._decisions.append({**decision, "approved": False})

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Step the run until it stops for good; its outcome (``SpineOutcome.to_dict``)
        with the agent calls made and replayed since the last decision."""
        run_id = str(request["run_id"])
        recovering = bool(request.get("recovering"))
        made = replayed = 0
        while True:
            result = await workflow.execute_activity(
                contract.STEP_ACTIVITY,
                {"run_id": run_id, "recovering": recovering},
                start_to_close_timeout=contract.PHASE_TIMEOUT,
                heartbeat_timeout=contract.HEARTBEAT_TIMEOUT,
                retry_policy=PHASE_RETRIES,
                result_type=dict,
            )
            recovering = False
            made += int(result["agent_calls"])
            replayed += int(result["replayed_calls"])
            if result["outcome"] is None:
                continue
            outcome = {**result["outcome"], "agent_calls": made, "replayed_calls": replayed}
            point = result.get("approval")
            if point is None:
                return outcome
            await self._decide(run_id, str(point), outcome)
            made = replayed = 0

    async def _decide(self, run_id: str, point: str, outcome: dict[str, Any]) -> None:
        """Wait for a decision on the pause at ``point`` until one is recorded."""
        refused: dict[str, Any] | None = None
        while True:
            self._memo({"after": self._taken, "outcome": outcome, "refused": refused})
            await workflow.wait_condition(lambda: bool(self._decisions))
            decision = self._decisions.pop(0)
            if decision.get("point") != point:
                continue  # meant for an earlier pause, already decided by someone else
            answer = await workflow.execute_activity(
                contract.DECIDE_ACTIVITY,
                {
                    "run_id": run_id,
                    "point": point,
                    "approved": bool(decision["approved"]),
                    "note": str(decision.get("note") or ""),
                },
                start_to_close_timeout=contract.DECIDE_TIMEOUT,
                retry_policy=PHASE_RETRIES,
                result_type=dict,
            )
            self._taken += 1
            refused = answer.get("refused")
            if refused is None:
                self._memo(None)
                return

    def _memo(self, stop: dict[str, Any] | None) -> None:
        memo: dict[str, Any] = {"decisions": self._taken}
        if stop is not None:
            memo["stop"] = stop
        workflow.upsert_memo({contract.MEMO_KEY: memo})
