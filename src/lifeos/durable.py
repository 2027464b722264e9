"""Durable runs: engine checkpoints, journal and ledger entries in the store.

``StoreRecorder`` is the engine's :class:`~lifeos.engine.RunRecorder` on a
:class:`~lifeos.store.Store`: each step's checkpoint and its ledger entry commit
in one transaction (one fsync). Side-effect results reach the store through the
journal contract the store implements, each committed before the run moves on.
``run_recorded`` wraps a whole run: the run row, ``run.started`` and
``run.finished`` ledger entries, and the status the run ended in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifeos.canonical import stable_uuid
from lifeos.engine import (
    Decision,
    ExecutionContext,
    OrchestrationResult,
    Orchestrator,
    StepCheckpoint,
    WorkflowDefinition,
)
from lifeos.errors import InputError
from lifeos.store.base import CheckpointRecord, Store

__all__ = ["StoreRecorder", "run_recorded"]


_ENDED = {"failed": "failed", "escalated": "escalated", "rejected": "failed"}


class StoreRecorder:
    """Keeps step checkpoints in a store, each with its ledger entry.

    Given ``before_first`` it runs that inside the first step's transaction (the run's
    creation); given ``total_steps`` and ``on_end``, it runs ``on_end`` inside the
    transaction of the step that ends the run (its last step, or one that stops it),
    so a run costs one commit per step.
    """

    def __init__(
        self,
        store: Store,
        *,
        before_first: Callable[[], None] | None = None,
        total_steps: int | None = None,
        on_end: Callable[[str, StepCheckpoint], None] | None = None,
    ) -> None:
        self.store = store
        self.before_first = before_first
        self.total_steps = total_steps
        self.on_end = on_end
        self.ended = False

    def load(self, run_id: str) -> list[StepCheckpoint]:
        """The run's checkpoints in step order."""
        return [
            StepCheckpoint(
                run_id=c["run_id"],
                index=c["step_index"],
                step_id=c["step_id"],
                step_digest=c["step_digest"],
                status=c["status"],
                state_hash=c["state_hash"],
                policy_hash=c["policy_hash"],
                delta=c["delta"],
                info=c["info"],
            )
            for c in self.store.list_checkpoints(run_id)
        ]

    def record(self, checkpoint: StepCheckpoint) -> None:
        """Commit the checkpoint and its ledger entry together."""
        cp = checkpoint
        checkpoint_id = stable_uuid("checkpoint", cp.run_id, str(cp.index))
        with self.store.transaction():
            if self.before_first is not None:
                self.before_first()
                self.before_first = None
            self.store.put_checkpoint(
                CheckpointRecord(
                    checkpoint_id=checkpoint_id,
                    run_id=cp.run_id,
                    step_index=cp.index,
                    step_id=cp.step_id,
                    step_digest=cp.step_digest,
                    status=cp.status,
                    state_hash=cp.state_hash,
                    policy_hash=cp.policy_hash,
                    delta=cp.delta,
                    info=cp.info,
                    created_at=self.store.now(),
                )
            )
            payload: dict[str, Any] = {
                "checkpoint_id": checkpoint_id,
                "index": cp.index,
                "state_hash": cp.state_hash,
                "status": cp.status,
                "step_id": cp.step_id,
            }
            if "reason" in cp.info:
                payload["reason_code"] = cp.info["reason"]
            self.store.append_ledger("step", cp.run_id, payload)
            if self.on_end is not None:
                if cp.status in _ENDED:
                    status = _ENDED[cp.status]
                elif self.total_steps is not None and cp.index == self.total_steps - 1:
                    status = "completed"
                else:
                    return
                self.on_end(status, cp)
                self.ended = True


def _finish(
    store: Store,
    run_id: str,
    kind: str,
    name: str,
    status: str,
    steps: int,
    reason_code: str | None,
    waiting_step_id: str | None,
) -> None:
    store.update_run(run_id, status=status, failure_reason=reason_code)
    payload: dict[str, Any] = {"status": status, "steps": steps}
    if reason_code:
        payload["reason_code"] = reason_code
    if waiting_step_id:
        payload["waiting_step_id"] = waiting_step_id
    event = "run.paused" if status == "paused" else "run.finished"
    store.append_ledger(event, run_id, payload)
    store.add_event(run_id, None, event, {"kind": kind, "name": name, **payload})


def run_recorded(
    store: Store,
    orchestrator: Orchestrator,
    workflow: WorkflowDefinition,
    ctx: ExecutionContext,
    run_id: str,
    *,
    kind: str,
    name: str,
    decisions: Mapping[str, Decision] | None = None,
    config: dict[str, Any] | None = None,
) -> OrchestrationResult:
    """Run (or resume) ``workflow`` as run ``run_id``, recorded in ``store``.

    A new run id creates the run; an existing one resumes it: completed steps are
    rebuilt from their checkpoints and recorded side effects are replayed. The run's
    creation commits with its first step and its end with its last step.
    """
    existing = store.get_run(run_id)
    start: Callable[[], None] | None = None
    if existing is None:

        def start() -> None:
            store.create_run(
                run_id,
                kind,
                name,
                description=workflow.id,
                config={"workflow": workflow.to_dict(), **(config or {})},
            )
            store.append_ledger("run.started", run_id, {"kind": kind, "name": name})
            store.add_event(run_id, None, "run.started", {"kind": kind, "name": name})

    else:
        if existing["kind"] != kind or existing["name"] != name:
            raise InputError(
                f"run {run_id} is a {existing['kind']} '{existing['name']}', not a {kind} '{name}'"
            )
        if existing["status"] in ("completed", "failed", "escalated"):
            # A finished run replays from its checkpoints without new ledger entries.
            replay = Orchestrator(
                operations=orchestrator.operations,
                services=orchestrator.services,
                journal=store,
                recorder=StoreRecorder(store),
                policy_hash=orchestrator.policy_hash,
            )
            return replay.run_workflow(workflow, ctx, decisions=decisions, run_id=run_id)
        store.append_ledger("run.resumed", run_id, {"from_status": existing["status"]})

    def end(status: str, cp: StepCheckpoint) -> None:
        _finish(store, run_id, kind, name, status, cp.index + 1, cp.info.get("reason"), None)

    recorder = StoreRecorder(store, before_first=start, total_steps=len(workflow.steps), on_end=end)
    durable = Orchestrator(
        operations=orchestrator.operations,
        services=orchestrator.services,
        journal=store,
        clock=orchestrator.clock,
        recorder=recorder,
        policy_hash=orchestrator.policy_hash,
    )
    result = durable.run_workflow(workflow, ctx, decisions=decisions, run_id=run_id)
    if not recorder.ended:
        with store.transaction():
            if recorder.before_first is not None:
                recorder.before_first()
            _finish(
                store,
                run_id,
                kind,
                name,
                result.status,
                len(result.executed_steps),
                result.reason_code,
                result.waiting_step_id,
            )
    return result
