"""Durable runs: engine checkpoints, journal and ledger entries in the store.

``StoreRecorder`` is the engine's :class:`~lifeos.engine.RunRecorder` on a
:class:`~lifeos.store.Store`: each step's checkpoint and its ledger entry commit
in one transaction (one fsync). Side-effect results reach the store through the
journal contract the store implements, each committed before the run moves on.
``run_recorded`` wraps a whole run: the run row, ``run.started`` and
``run.finished`` ledger entries, and the status the run ended in.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class StoreRecorder:
    """Keeps step checkpoints in a store, each with its ledger entry."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
    rebuilt from their checkpoints and recorded side effects are replayed.
    """
    existing = store.get_run(run_id)
    if existing is None:
        with store.transaction():
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
        store.append_ledger("run.resumed", run_id, {"from_status": existing["status"]})
    recorder = StoreRecorder(store)
    durable = Orchestrator(
        operations=orchestrator.operations,
        services=orchestrator.services,
        journal=store,
        clock=orchestrator.clock,
        recorder=recorder,
        policy_hash=orchestrator.policy_hash,
    )
    result = durable.run_workflow(workflow, ctx, decisions=decisions, run_id=run_id)
    with store.transaction():
        store.update_run(run_id, status=result.status, failure_reason=result.reason_code)
        payload: dict[str, Any] = {"status": result.status, "steps": len(result.executed_steps)}
        if result.reason_code:
            payload["reason_code"] = result.reason_code
        if result.waiting_step_id:
            payload["waiting_step_id"] = result.waiting_step_id
        event = "run.finished" if result.status != "paused" else "run.paused"
        store.append_ledger(event, run_id, payload)
        store.add_event(run_id, None, event, {"kind": kind, "name": name, **payload})
    return result
