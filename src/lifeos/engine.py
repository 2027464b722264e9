"""The Tier-2 engine: deterministic multi-step workflows within hard limits.

A workflow has at most 5 steps, at most 2 of them human; every step is of kind
``runtime`` or ``human``; every runtime step names an operation known to the
operation registry. All of that is checked before any step runs. The engine
does no I/O of its own: operations reach the world only through the services
they are given, and every side-effecting result goes through the run journal,
so a replay never repeats one. Inputs are never mutated; identical inputs give
byte-identical ``to_dict()`` output. A human step pauses the run: the result's
status is ``paused`` and :meth:`Orchestrator.resume` continues it with a
decision.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from lifeos.canonical import canonical_text, copy_json, sha256_hex, stable_uuid
from lifeos.delta import advance, apply_delta
from lifeos.errors import (
    AntiFailureViolation,
    EnvelopeViolation,
    ReasonCode,
    ResumeError,
    WorkflowDefinitionError,
)
from lifeos.journal import Journal, JournalKey, JournalRecord

if TYPE_CHECKING:
    from lifeos.operations import OperationRegistry
    from lifeos.services import Services

__all__ = [
    "AntiFailureViolation",
    "Decision",
    "EnvelopeViolation",
    "ExecutionContext",
    "OrchestrationResult",
    "Orchestrator",
    "RunRecorder",
    "StepCheckpoint",
    "StepEnv",
    "StepFailure",
    "StepSpec",
    "WorkflowDefinition",
]

RunStatus = Literal["completed", "failed", "paused", "escalated"]


@dataclass
class StepSpec:
    """One workflow step: an id, a kind (``runtime`` or ``human``) and a payload."""

    id: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with stable key order."""
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": dict(sorted(self.payload.items())) if self.payload else {},
        }


@dataclass
class WorkflowDefinition:
    """An ordered list of steps; ``name`` is an alias of ``id`` and must agree with it."""

    id: str = ""
    steps: list[StepSpec] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if self.id and not self.name:
            self.name = self.id
        elif self.name and not self.id:
            self.id = self.name
        elif self.id != self.name:
            raise WorkflowDefinitionError(
                f"WorkflowDefinition id/name mismatch: '{self.id}' vs '{self.name}'"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with stable key order."""
        return {
            "id": self.id,
            "metadata": dict(sorted(self.metadata.items())) if self.metadata else {},
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class ExecutionContext:
    """The state a workflow starts from, and metadata (repo root, baseline commit, run id)."""

    initial_state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    """A human's answer to a paused step."""

    decision: Literal["approve", "reject"]
    note: str = ""
    actor: str = "human"

    def __post_init__(self) -> None:
        if self.decision not in ("approve", "reject"):
            raise WorkflowDefinitionError(
                f"decision must be 'approve' or 'reject', not {self.decision!r}"
            )

    @classmethod
    def approve(cls, note: str = "", actor: str = "human") -> Decision:
        """An approval."""
        return cls("approve", note, actor)

    @classmethod
    def reject(cls, note: str = "", actor: str = "human") -> Decision:
        """A rejection; the run ends failed with ``HUMAN_REJECTED``."""
        return cls("reject", note, actor)


@dataclass(frozen=True)
class StepFailure:
    """What an operation returns when its step fails."""

    reason: ReasonCode
    message: str
    status: RunStatus = "failed"


@dataclass
class OrchestrationResult:
    """The outcome of a workflow run; ``to_dict()`` is deterministic JSON."""

    id: str
    success: bool
    executed_steps: list[StepSpec]
    final_state: dict[str, Any]
    failed_step_id: str | None = None
    error_message: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    receipt: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = "completed"
    reason_code: str | None = None
    waiting_step_id: str | None = None
    # Not serialised: what resume needs, and wall-clock figures kept out of hashes.
    workflow: WorkflowDefinition | None = field(default=None, repr=False, compare=False)
    context: ExecutionContext | None = field(default=None, repr=False, compare=False)
    run_id: str | None = field(default=None, repr=False, compare=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with stable key order (timings excluded)."""
        return {
            "error_message": self.error_message,
            "executed_steps": [s.to_dict() for s in self.executed_steps],
            "failed_step_id": self.failed_step_id,
            "final_state": dict(sorted(self.final_state.items())) if self.final_state else {},
            "id": self.id,
            "lineage": dict(sorted(self.lineage.items())) if self.lineage else {},
            "reason_code": self.reason_code,
            "receipt": dict(sorted(self.receipt.items())) if self.receipt else {},
            "status": self.status,
            "success": self.success,
            "waiting_step_id": self.waiting_step_id,
        }


@dataclass(frozen=True)
class StepCheckpoint:
    """Where a run stood after one step: recorded before the run moves on."""

    run_id: str
    index: int
    step_id: str
    step_digest: str
    """SHA-256 of the step spec; a replay with a different spec is nondeterministic."""
    status: str
    """``ok``, ``failed``, ``escalated``, ``approved`` or ``rejected``."""
    state_hash: str
    """SHA-256 of the canonical state after the step."""
    policy_hash: str | None
    delta: list[dict[str, Any]]
    """The state change the step made (``lifeos.delta``)."""
    info: dict[str, Any]
    """Failure reason and message, or the human decision."""


@runtime_checkable
class RunRecorder(Protocol):
    """Keeps step checkpoints durably; the engine resumes from them."""

    def load(self, run_id: str) -> list[StepCheckpoint]:
        """The run's checkpoints in step order (empty for a new run)."""
        ...

    def record(self, checkpoint: StepCheckpoint) -> None:
        """Commit ``checkpoint`` before returning."""
        ...


# What a human step's receipt entry holds; its checkpoint info may add reason and message.
_DECISION_KEYS = ("actor", "decision", "note", "step_id")

_TERMINAL: dict[str, RunStatus] = {
    "failed": "failed",
    "escalated": "escalated",
    "rejected": "failed",
}


class _Nondeterminism(BaseException):  # noqa: N818 - control flow, not an error
    """A replayed step whose recorded spec differs from the one running now.

    A BaseException so that no operation's or mission's error handling swallows it.
    """


class StepEnv:
    """What an operation sees while it runs one step."""

    __slots__ = (
        "_calls",
        "_digest",
        "_run_id",
        "context",
        "current_key",
        "journal",
        "services",
        "step",
        "workflow",
    )

    def __init__(
        self,
        step: StepSpec,
        workflow: WorkflowDefinition,
        context: ExecutionContext,
        services: Services,
        journal: Journal | None,
        run_id: Callable[[], str],
        step_digest: str | None = None,
    ) -> None:
        """Set up the view of one step; ``step_digest`` saves hashing the spec again."""
        self.step = step
        self.workflow = workflow
        self.context = context
        self.services = services
        self.journal = journal
        self._run_id = run_id
        self._calls = 0
        self._digest = step_digest
        self.current_key: JournalKey | None = None
        """The idempotency key of the side effect running now (inside ``once``)."""

    @property
    def run_id(self) -> str:
        """The run's id (given, or derived from the workflow and initial state)."""
        return self._run_id()

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The execution context's metadata (empty when none was given)."""
        return self.context.metadata or {}

    def once(
        self, call: Callable[[], Any], also: Callable[[Any], None] | None = None
    ) -> tuple[Any, bool]:
        """Run a side effect once per (run, step, attempt, call index).

        Returns the result and whether it was replayed from the journal. With no
        journal the call simply runs. ``also`` runs on a first call's result, in the same
        transaction as its journal record when the journal has transactions (the store's
        ledger entry for an agent call, for example). While ``call`` runs, ``current_key`` holds its
        idempotency key, so a handler can tell a replay after a crash (the key was
        applied but never acknowledged) from a first call.
        """
        index = self._calls
        self._calls += 1
        key = JournalKey(self.run_id, self.step.id, 0, index)
        self.current_key = key
        if self.journal is None:
            return call(), False
        if self._digest is None:
            self._digest = _step_digest(self.step)
        record = self.journal.get(key)
        if record is not None:
            if record["step_digest"] != self._digest:
                raise _Nondeterminism(
                    f"step '{self.step.id}' differs from the one recorded for run {self.run_id}"
                )
            return copy_json(record["result"]), True
        result = call()
        entry: JournalRecord = {"step_digest": self._digest, "result": copy_json(result)}
        transaction = getattr(self.journal, "transaction", None)
        if also is not None and transaction is not None:
            with transaction():  # the record and what goes with it commit together
                self.journal.put(key, entry)
                also(result)
        else:
            self.journal.put(key, entry)
            if also is not None:
                also(result)
        return result, False


class Orchestrator:
    """Runs workflows within the Anti-Failure limits and the execution envelope."""

    MAX_TOTAL_STEPS = 5
    MAX_HUMAN_STEPS = 2
    ALLOWED_KINDS = frozenset({"runtime", "human"})

    def __init__(
        self,
        operations: OperationRegistry | None = None,
        services: Services | None = None,
        journal: Journal | None = None,
        clock: Callable[[], float] | None = None,
        recorder: RunRecorder | None = None,
        policy_hash: str | None = None,
    ) -> None:
        """Create an orchestrator.

        Args:
            operations: the operation registry; the built-in one when omitted.
            services: what side-effecting operations call (LLM, tools, processes).
            journal: where side-effect results are recorded; none by default.
            clock: a monotonic clock for timings; timings are skipped without one.
            recorder: where step checkpoints go; a run with checkpoints resumes from them.
            policy_hash: the policy in force; resuming under another one is refused.
        """
        if operations is None:
            from lifeos.operations import default_registry

            operations = default_registry()
        if services is None:
            from lifeos.services import Services

            services = Services()
        self.operations = operations
        self.services = services
        self.journal = journal
        self.clock = clock
        self.recorder = recorder
        self.policy_hash = policy_hash

    # -- validation -------------------------------------------------------

    def validate(self, workflow: WorkflowDefinition) -> None:
        """Check envelope, limits, step ids and every operation's payload.

        Raises:
            EnvelopeViolation: a disallowed kind or an unknown operation.
            AntiFailureViolation: more than 5 steps or more than 2 human steps.
            WorkflowDefinitionError: duplicate step ids or an invalid payload.
        """
        for step in workflow.steps:
            if step.kind not in self.ALLOWED_KINDS:
                raise EnvelopeViolation(
                    f"Step '{step.id}' has disallowed kind '{step.kind}'. "
                    f"Allowed kinds: {sorted(self.ALLOWED_KINDS)}"
                )
        total = len(workflow.steps)
        if total > self.MAX_TOTAL_STEPS:
            raise AntiFailureViolation(
                f"Workflow has {total} steps, exceeds maximum of {self.MAX_TOTAL_STEPS}"
            )
        human = sum(1 for s in workflow.steps if s.kind == "human")
        if human > self.MAX_HUMAN_STEPS:
            raise AntiFailureViolation(
                f"Workflow has {human} human steps, exceeds maximum of {self.MAX_HUMAN_STEPS}"
            )
        seen: set[str] = set()
        for step in workflow.steps:
            if not isinstance(step.id, str) or not step.id:
                raise WorkflowDefinitionError("every step needs a non-empty string id")
            if step.id in seen:
                raise WorkflowDefinitionError(f"duplicate step id '{step.id}'")
            seen.add(step.id)
            if not isinstance(step.payload, dict):
                raise WorkflowDefinitionError(f"Step '{step.id}': payload must be an object")
            if step.kind == "runtime":
                self.operations.validate(step)

    # -- running ----------------------------------------------------------

    def run_workflow(
        self,
        workflow: WorkflowDefinition,
        ctx: ExecutionContext,
        *,
        decisions: Mapping[str, Decision] | None = None,
        run_id: str | None = None,
    ) -> OrchestrationResult:
        """Run ``workflow`` from ``ctx.initial_state``.

        Args:
            workflow: the workflow; validated before any step runs.
            ctx: initial state and metadata; never mutated.
            decisions: answers for human steps known in advance, by step id.
            run_id: the run's id for the journal; derived deterministically if omitted.

        Returns:
            The result: completed, failed, escalated, or paused at a human step.
        """
        self.validate(workflow)
        wf = _copy_workflow(workflow)
        context = _copy_context(ctx)
        state = copy_json(ctx.initial_state)
        if self.recorder is None:
            return self._execute(wf, context, state, 0, [], [], dict(decisions or {}), run_id)
        run_id = run_id or _derive_run_id(wf, context)
        return self._replay(wf, context, state, dict(decisions or {}), run_id, self.recorder)

    def _replay(
        self,
        wf: WorkflowDefinition,
        context: ExecutionContext,
        state: dict[str, Any],
        decisions: dict[str, Decision],
        run_id: str,
        recorder: RunRecorder,
    ) -> OrchestrationResult:
        """Rebuild a run's progress from its checkpoints, then run what is left."""
        executed: list[StepSpec] = []
        recorded: list[dict[str, Any]] = []
        digests = _step_digests(wf)
        checkpoints = recorder.load(run_id)
        for i, cp in enumerate(checkpoints):
            stop: StepFailure | None = None
            if cp.index != i or i >= len(wf.steps):
                stop = StepFailure(
                    ReasonCode.NONDETERMINISM,
                    f"run {run_id} has a checkpoint for step {cp.index} that this workflow "
                    "does not have",
                )
            elif cp.step_digest != digests[i]:
                stop = StepFailure(
                    ReasonCode.NONDETERMINISM,
                    f"step '{wf.steps[i].id}' differs from the one recorded for run {run_id}",
                )
            elif self.policy_hash is not None and cp.policy_hash != self.policy_hash:
                stop = StepFailure(
                    ReasonCode.POLICY_HASH_MISMATCH,
                    f"the policy changed since run {run_id} was checkpointed",
                )
            else:
                state = apply_delta(state, cp.delta)
                if sha256_hex(state) != cp.state_hash:
                    stop = StepFailure(
                        ReasonCode.NONDETERMINISM,
                        f"state after step '{cp.step_id}' does not match its checkpoint "
                        "(were the inputs changed?)",
                    )
            if stop is not None:
                return self._finish(
                    wf, context, state, executed, recorded, stop, None, None, run_id, {}
                )
            step = wf.steps[i]
            executed.append(step)
            if step.kind == "human":  # the decision as recorded, without a rejection's reason
                recorded.append({k: cp.info[k] for k in _DECISION_KEYS if k in cp.info})
            if cp.status in _TERMINAL:
                failure = StepFailure(
                    ReasonCode(cp.info["reason"]), cp.info["message"], _TERMINAL[cp.status]
                )
                return self._finish(
                    wf, context, state, executed, recorded, failure, step.id, None, run_id, {}
                )
        return self._execute(
            wf, context, state, len(checkpoints), executed, recorded, decisions, run_id, digests
        )

    def resume(self, result: OrchestrationResult, decision: Decision) -> OrchestrationResult:
        """Continue a paused result with a human decision.

        Raises:
            ResumeError: ``result`` is not paused or has no workflow attached.
        """
        if result.status != "paused" or result.waiting_step_id is None:
            raise ResumeError(f"run '{result.id}' is not paused (status {result.status})")
        if result.workflow is None or result.context is None:
            raise ResumeError(f"run '{result.id}' carries no workflow to resume")
        wf = result.workflow
        ids = [s.id for s in wf.steps]
        index = ids.index(result.waiting_step_id)
        state = copy_json(result.final_state)
        executed = _copy_steps(result.executed_steps)
        recorded = copy_json(result.receipt.get("decisions", []))
        return self._execute(
            wf,
            result.context,
            state,
            index,
            executed,
            recorded,
            {result.waiting_step_id: decision},
            result.run_id,
        )

    def _execute(
        self,
        wf: WorkflowDefinition,
        context: ExecutionContext,
        state: dict[str, Any],
        start: int,
        executed: list[StepSpec],
        recorded: list[dict[str, Any]],
        decisions: dict[str, Decision],
        run_id: str | None,
        digests: list[str] | None = None,
    ) -> OrchestrationResult:
        run_id_cell: list[str] = [run_id] if run_id else []

        def get_run_id() -> str:
            if not run_id_cell:
                meta_id = (context.metadata or {}).get("run_id")
                if isinstance(meta_id, str) and meta_id:
                    run_id_cell.append(meta_id)
                else:
                    run_id_cell.append(_derive_run_id(wf, context))
            return run_id_cell[0]

        recorder = self.recorder
        prev = copy_json(state) if recorder is not None else None
        if recorder is not None and digests is None:
            digests = _step_digests(wf)

        def checkpoint(index: int, step: StepSpec, status: str, info: dict[str, Any]) -> None:
            nonlocal prev
            assert recorder is not None and digests is not None
            # Validates the state once; the hash is of this text, and so is the check that
            # the delta rebuilds the state exactly from the previous one.
            text = canonical_text(state)
            delta, prev = advance(prev, state, text)
            recorder.record(
                StepCheckpoint(
                    run_id=get_run_id(),
                    index=index,
                    step_id=step.id,
                    step_digest=digests[index],
                    status=status,
                    state_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    policy_hash=self.policy_hash,
                    delta=delta,
                    info=info,
                )
            )

        clock = self.clock
        timings: dict[str, float] = {}
        failure: StepFailure | None = None
        failed_step: str | None = None
        waiting: str | None = None
        steps = wf.steps
        for index in range(start, len(steps)):
            step = steps[index]
            if step.kind == "human":
                decision = decisions.get(step.id)
                if decision is None:
                    waiting = step.id
                    break
                executed.append(step)
                record = {
                    "actor": decision.actor,
                    "decision": decision.decision,
                    "note": decision.note,
                    "step_id": step.id,
                }
                recorded.append(record)
                if recorder is not None:
                    status = "approved" if decision.decision == "approve" else "rejected"
                    info = dict(record)
                    if status == "rejected":
                        info["reason"] = ReasonCode.HUMAN_REJECTED.value
                        info["message"] = f"Step '{step.id}' rejected: {decision.note or 'no note'}"
                    checkpoint(index, step, status, info)
                if decision.decision == "reject":
                    failed_step = step.id
                    failure = StepFailure(
                        ReasonCode.HUMAN_REJECTED,
                        f"Step '{step.id}' rejected: {decision.note or 'no note'}",
                    )
                    break
                continue
            executed.append(step)
            started = clock() if clock else 0.0
            env = StepEnv(
                step,
                wf,
                context,
                self.services,
                self.journal,
                get_run_id,
                digests[index] if digests is not None else None,
            )
            try:
                failure = self.operations.run(step, state, env)
            except _Nondeterminism as exc:
                failure = StepFailure(ReasonCode.NONDETERMINISM, str(exc))
            if clock:
                timings[step.id] = clock() - started
            if recorder is not None:
                if failure is None:
                    checkpoint(index, step, "ok", {})
                else:
                    info = {"reason": failure.reason.value, "message": failure.message}
                    checkpoint(index, step, failure.status, info)
            if failure is not None:
                failed_step = step.id
                break

        return self._finish(
            wf,
            context,
            state,
            executed,
            recorded,
            failure,
            failed_step,
            waiting,
            run_id_cell[0] if run_id_cell else run_id,
            timings,
        )

    @staticmethod
    def _finish(
        wf: WorkflowDefinition,
        context: ExecutionContext,
        state: dict[str, Any],
        executed: list[StepSpec],
        recorded: list[dict[str, Any]],
        failure: StepFailure | None,
        failed_step: str | None,
        waiting: str | None,
        run_id: str | None,
        timings: dict[str, float],
    ) -> OrchestrationResult:
        executed_ids = [s.id for s in executed]
        receipt: dict[str, Any] = {"id": wf.id, "steps": executed_ids}
        if recorded:
            receipt["decisions"] = recorded
        if waiting is not None:
            status: RunStatus = "paused"
        elif failure is not None:
            status = failure.status
        else:
            status = "completed"
        return OrchestrationResult(
            id=wf.id,
            success=status == "completed",
            executed_steps=executed,
            final_state=state,
            failed_step_id=failed_step,
            error_message=failure.message if failure else None,
            lineage={"executed_step_ids": list(executed_ids), "workflow_id": wf.id},
            receipt=receipt,
            status=status,
            reason_code=failure.reason.value if failure else None,
            waiting_step_id=waiting,
            workflow=wf,
            context=context,
            run_id=run_id,
            timings=timings,
        )


def _step_digest(step: StepSpec) -> str:
    """SHA-256 of the step spec: the canonical JSON of ``step.to_dict()``.

    Canonical JSON sorts keys, so the payload needs no sorted copy first.
    """
    payload = step.payload if step.payload else {}
    return sha256_hex({"id": step.id, "kind": step.kind, "payload": payload})


def _step_digests(wf: WorkflowDefinition) -> list[str]:
    """Each step's digest, in order (what checkpoints and journal records carry)."""
    return [_step_digest(s) for s in wf.steps]


def _copy_steps(steps: list[StepSpec]) -> list[StepSpec]:
    """A deep copy of ``steps`` (field by field when they are plain ``StepSpec``s)."""
    if type(steps) is not list or any(type(s) is not StepSpec for s in steps):
        return copy.deepcopy(steps)
    return [StepSpec(s.id, s.kind, copy_json(s.payload)) for s in steps]


def _copy_workflow(workflow: WorkflowDefinition) -> WorkflowDefinition:
    """A deep copy of ``workflow`` (field by field for a plain ``WorkflowDefinition``).

    ``copy.deepcopy`` walks the dataclasses through their reduce protocol with a memo;
    a definition is small JSON-like data, so copying its fields directly gives the same
    result at a fraction of the cost. Anything unusual (a subclass, non-list steps, an
    id and name made to disagree after construction) goes through ``copy.deepcopy``.
    """
    if type(workflow) is not WorkflowDefinition or workflow.id != workflow.name:
        return copy.deepcopy(workflow)
    return WorkflowDefinition(
        id=workflow.id,
        steps=_copy_steps(workflow.steps),
        metadata=copy_json(workflow.metadata),
        name=workflow.name,
    )


def _copy_context(ctx: ExecutionContext) -> ExecutionContext:
    """A deep copy of ``ctx`` (field by field for a plain ``ExecutionContext``)."""
    if type(ctx) is not ExecutionContext:
        return copy.deepcopy(ctx)
    return ExecutionContext(copy_json(ctx.initial_state), copy_json(ctx.metadata))


def _derive_run_id(wf: WorkflowDefinition, context: ExecutionContext) -> str:
    meta_id = (context.metadata or {}).get("run_id")
    if isinstance(meta_id, str) and meta_id:
        return meta_id
    return stable_uuid("run", sha256_hex([wf.to_dict(), context.initial_state]))
