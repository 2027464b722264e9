"""What the CLI, the workflow and the workers agree on: names, timeouts, the run's engine
record. Plain Python: importing it loads no Temporal code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from lifeos.errors import LifeOSError, ReasonCode

if TYPE_CHECKING:
    from lifeos.store import RunRecord, Store

__all__ = [
    "DECIDE_ACTIVITY",
    "DEFAULT_ADDRESS",
    "DEFAULT_TASK_QUEUE",
    "HEARTBEAT_EVERY_S",
    "HEARTBEAT_TIMEOUT",
    "MEMO_KEY",
    "SIGNAL_APPROVE",
    "SIGNAL_REJECT",
    "STEP_ACTIVITY",
    "UNREACHABLE",
    "WORKFLOW",
    "EngineRef",
    "TemporalRunError",
    "TemporalUnavailable",
    "awaited_decision",
    "temporal_run",
    "workflow_id",
]

WORKFLOW = "lifeos.spine"
"""The workflow type: one spine run, a phase per activity."""
STEP_ACTIVITY = "lifeos.spine.step"
"""Runs the run's next phase (:meth:`lifeos.spine.Spine.step`)."""
DECIDE_ACTIVITY = "lifeos.spine.decide"
"""Records a human decision (:meth:`lifeos.spine.Spine.record_decision`)."""
SIGNAL_APPROVE = "approve"
SIGNAL_REJECT = "reject"
MEMO_KEY = "lifeos"
"""The workflow's memo: ``{"decisions": n, "stop": {"after": n, "outcome", "refused"}}``,
where the run stopped (paused) and how many human decisions the workflow has taken."""

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_TASK_QUEUE = "lifeos"
HEARTBEAT_EVERY_S = 1.0
"""How often a running phase tells Temporal its worker is alive."""
HEARTBEAT_TIMEOUT = timedelta(seconds=4)
"""A phase whose worker has been silent this long is retried on another worker."""
LEASE_TTL_S = HEARTBEAT_TIMEOUT.total_seconds()
"""A phase holds its run's lease in the store this long past its last heartbeat."""
PHASE_TIMEOUT = timedelta(hours=12)
"""The longest one phase may run (an agent's build can take long; heartbeats catch a
dead worker far sooner)."""
DECIDE_TIMEOUT = timedelta(minutes=5)
PHASE_ATTEMPTS = 10
"""Attempts at one phase before the workflow gives up (the run stays resumable)."""

UNREACHABLE = ReasonCode.ENGINE_UNAVAILABLE
"""The reason code of a Temporal server that cannot be reached."""


class TemporalUnavailable(LifeOSError):
    """The Temporal server cannot be reached (or stopped answering)."""

    default_reason = UNREACHABLE
    exit_code = 1


class TemporalRunError(LifeOSError):
    """A run's workflow ended without an outcome: it failed, was terminated or timed out."""

    default_reason = ReasonCode.STEP_FAILED
    exit_code = 1


def workflow_id(run_id: str) -> str:
    """The workflow id of a spine run: one workflow per run, so a second submission of
    the same run finds the first."""
    return f"lifeos-spine-{run_id}"


@dataclass(frozen=True)
class EngineRef:
    """Where a run is driven: recorded in the run's config as ``engine``."""

    address: str
    task_queue: str = DEFAULT_TASK_QUEUE
    namespace: str = "default"

    def to_dict(self) -> dict[str, Any]:
        """The ``engine`` record of the run's config."""
        return {
            "kind": "temporal",
            "address": self.address,
            "task_queue": self.task_queue,
            "namespace": self.namespace,
        }

    @classmethod
    def of_run(cls, config: Mapping[str, Any]) -> EngineRef | None:
        """The engine a run's config names; None for a run driven locally."""
        engine = config.get("engine")
        if not isinstance(engine, Mapping) or engine.get("kind") != "temporal":
            return None
        return cls(
            address=str(engine["address"]),
            task_queue=str(engine.get("task_queue") or DEFAULT_TASK_QUEUE),
            namespace=str(engine.get("namespace") or "default"),
        )


def temporal_run(store: Store, ref: str) -> tuple[RunRecord, EngineRef] | None:
    """The spine run ``ref`` names (its id or one of its checkpoint ids) and the Temporal
    engine driving it; None for a run driven locally, or no such run."""
    run = store.get_run(ref)
    if run is None:
        for candidate in store.list_runs(limit=10_000):
            checkpoints = store.list_checkpoints(candidate["run_id"])
            if any(c["checkpoint_id"] == ref for c in checkpoints):
                run = candidate
                break
    if run is None or run["kind"] != "spine":
        return None
    engine = EngineRef.of_run(run["config"])
    return (run, engine) if engine is not None else None


def awaited_decision(run: Mapping[str, Any]) -> str | None:
    """The approval point a paused run waits at for a decision; None when it does not."""
    from lifeos.spine.controller import APPROVAL_POINTS

    config = run["config"]
    point = config.get("waiting_for")
    if run["status"] != "PAUSED" or point not in APPROVAL_POINTS:
        return None
    return None if point in (config.get("decisions") or {}) else str(point)
