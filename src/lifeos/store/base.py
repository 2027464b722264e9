"""The store contract: what LifeOS keeps durably, independent of the database.

Callers see typed records and these methods only — no SQL dialect leaks out. A
backend (``sqlite``, ``postgres``) implements :class:`Store` and passes the
shared conformance suite in ``tests/store/``. Every timestamp comes from the
clock the store was opened with.

A *durable step* is one :meth:`Store.transaction`: a checkpoint, its journal
records and its ledger entry commit together or not at all.

A *claim* is a lease on a run or on one of its tasks: one owner (a worker) holds it
until it expires by the store's clock, renews it or releases it. While it runs no other
owner can take it; once it has expired, any owner can. Of owners claiming at the same
moment, on one machine or many, exactly one wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from lifeos.errors import LifeOSError, ReasonCode
from lifeos.journal import JournalKey, JournalRecord

__all__ = [
    "TASK_STATUSES",
    "ArtifactRecord",
    "CheckpointRecord",
    "ClaimRecord",
    "LeaseLost",
    "LedgerEntry",
    "LedgerRow",
    "LedgerScanRow",
    "LedgerScanner",
    "RunRecord",
    "SignedCheckpoint",
    "Store",
    "StoreError",
    "TaskRecord",
    "TimelineEvent",
]

TASK_STATUSES = (
    "pending",
    "executing",
    "review",
    "repair_retry",
    "approved",
    "failed_terminal",
    "skipped",
)
TaskStatus = Literal[
    "pending", "executing", "review", "repair_retry", "approved", "failed_terminal", "skipped"
]


class StoreError(LifeOSError):
    """The store cannot be opened or written: not a LifeOS database, a newer schema, I/O."""

    default_reason = ReasonCode.STORE_UNAVAILABLE
    exit_code = 2


class LeaseLost(LifeOSError):
    """A fenced write (see :meth:`Store.fenced`) by an owner that no longer holds the
    run's claim: refused, nothing written."""

    default_reason = ReasonCode.LEASE_LOST


class RunRecord(TypedDict):
    """One run (the seeds' *missions* table)."""

    run_id: str
    """Unique id of the run."""
    kind: str
    """What ran: ``mission``, ``workflow`` or ``spine``."""
    name: str
    """The mission type, workflow id or task id."""
    status: str
    """``running``, ``completed``, ``failed``, ``paused``, ``escalated``, ..."""
    previous_status: str | None
    """The status before the last change."""
    description: str
    """A human-readable description."""
    priority: str | None
    """The task's priority, when there is one."""
    max_cost_usd: float | None
    """The run's cost cap, if any."""
    spent_cost_usd: float
    """Cost spent so far."""
    max_loops: int | None
    """Cap on loops (repair attempts, agent turns), if any."""
    loop_count: int
    """Loops so far."""
    message_count: int
    """Agent messages so far."""
    config: dict[str, Any]
    """Run configuration (workflow, params, policy hash)."""
    failure_reason: str | None
    """The reason code the run stopped with, if it failed."""
    created_at: str
    updated_at: str
    completed_at: str | None
    failed_at: str | None


class TaskRecord(TypedDict):
    """One task of a run (the seeds' *mission_tasks*)."""

    task_id: str
    run_id: str
    task_order: int
    description: str
    context_files: list[str]
    required_artifact_ids: list[str]
    status: str
    """One of :data:`TASK_STATUSES`."""
    result_artifact_ids: list[str]
    repair_attempt: int
    consumed_tokens: int
    started_at: str | None
    locked_at: str | None
    locked_by: str | None
    created_at: str
    updated_at: str
    completed_at: str | None


class ArtifactRecord(TypedDict):
    """A stored file: content-addressed, versioned per (run, path), soft-deletable."""

    artifact_id: str
    run_id: str
    file_path: str
    version_number: int
    supersedes_id: str | None
    is_deleted: bool
    kind: str
    mime_type: str
    checksum: str
    """SHA-256 hex of the content."""
    size_bytes: int
    metadata: dict[str, Any]
    created_at: str


class TimelineEvent(TypedDict):
    """Something that happened, with a deterministic UUIDv5 id."""

    event_id: str
    run_id: str
    task_id: str | None
    event_type: str
    event: dict[str, Any]
    created_at: str


class CheckpointRecord(TypedDict):
    """Where a run stood after a step or phase: a delta, never a full state copy."""

    checkpoint_id: str
    run_id: str
    step_index: int
    step_id: str
    step_digest: str
    """SHA-256 of the step spec, to detect a changed workflow on replay."""
    status: str
    """The step's outcome: ``ok``, ``failed``, ``approved``, ``rejected``, ``paused``."""
    state_hash: str
    """SHA-256 of the canonical state after the step."""
    policy_hash: str | None
    delta: list[dict[str, Any]]
    """Changes from the previous checkpoint's state (see ``lifeos.delta``)."""
    info: dict[str, Any]
    """Step details: failure reason and message, a human decision."""
    created_at: str


class LedgerEntry(TypedDict):
    """The hashed form of a ledger entry (DESIGN.md, pinned)."""

    seq: int
    ts: str
    type: str
    run_id: str | None
    payload: dict[str, Any]
    prev_hash: str


class LedgerRow(TypedDict):
    """A stored ledger entry: its canonical bytes and their leaf hash."""

    seq: int
    entry: bytes
    """canonical_json(LedgerEntry): exactly the bytes that were hashed."""
    leaf_hash: str
    """SHA-256(0x00 || entry), hex."""
    type: str
    """The entry's type as indexed for look-ups; verification checks it against ``entry``."""
    run_id: str | None
    """The entry's run as indexed for look-ups; verification checks it against ``entry``."""


LedgerScanRow = tuple[int, bytes, bytes, str, str | None]
"""A ledger row as plain values, ``(seq, entry, leaf_hash, type, run_id)``: what
:meth:`Store.ledger_scan` yields, in batches. ``leaf_hash`` is the stored hex digest
as its ASCII bytes, ready to compare with ``binascii.hexlify`` of a computed one; the
other fields are as in :class:`LedgerRow`."""

LedgerScanner = Callable[[int, int | None], Iterator[Sequence[LedgerScanRow]]]
"""``scanner(start, end)``: :meth:`Store.ledger_scan` over a connection of its own."""


class ClaimRecord(TypedDict):
    """A claim in force: who holds a run, or one of its tasks, and until when."""

    run_id: str
    task_id: str | None
    """None for a claim on the run itself."""
    owner: str
    """Who holds it (a worker's name)."""
    claimed_at: str
    """When ``owner`` took it; renewing keeps it."""
    expires_at: str | None
    """When it lapses unless renewed; None for a task lock taken without a time limit."""


class SignedCheckpoint(TypedDict):
    """A signed tree head in the C2SP signed-note format."""

    tree_size: int
    root_hash: str
    note: str
    created_at: str


@runtime_checkable
class Store(Protocol):
    """Durable runs, tasks, artifacts, timeline, checkpoints, journal, ledger and nonces."""

    # -- housekeeping --------------------------------------------------------

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit of work; nested calls join the outer transaction."""
        ...

    def now(self) -> str:
        """The store's clock reading, ISO-8601 UTC (every stored timestamp comes from it)."""
        ...

    def schema_version(self) -> int:
        """The applied schema version."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    # -- runs and tasks -----------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        kind: str,
        name: str,
        *,
        description: str = "",
        config: dict[str, Any] | None = None,
        priority: str | None = None,
        max_cost_usd: float | None = None,
        max_loops: int | None = None,
    ) -> RunRecord:
        """Create a run in status ``running``; an existing id is an error."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""
        ...

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change status, counters, cost, failure reason; timestamps follow the status."""
        ...

    def list_runs(self, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first."""
        ...

    def add_task(
        self,
        run_id: str,
        task_id: str,
        description: str,
        *,
        task_order: int = 0,
        context_files: Sequence[str] = (),
    ) -> TaskRecord:
        """Add a task to a run in status ``pending``."""
        ...

    def update_task(self, run_id: str, task_id: str, **changes: Any) -> TaskRecord:
        """Change a task's status, repair attempt, tokens, artifacts."""
        ...

    def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """A run's tasks in order."""
        ...

    def claim_task(
        self, run_id: str, task_id: str, worker: str, ttl_s: float | None = None
    ) -> bool:
        """Lock a task for ``worker``; False when someone else holds it.

        With ``ttl_s`` the lock is a lease, as :meth:`claim_run`'s; without one it holds
        until released. The task's ``locked_by`` and ``locked_at`` name the holder. An
        unknown task is an error.
        """
        ...

    # -- claims (leases) ----------------------------------------------------------

    def claim_run(self, run_id: str, owner: str, ttl_s: float) -> bool:
        """Lease the run to ``owner`` for ``ttl_s`` seconds of the store's clock.

        True when the run was free, its lease had expired, or ``owner`` held it already
        (the lease then runs ``ttl_s`` from now); False while another owner's lease runs.
        Claiming is not a change to the run: its ``updated_at`` stays. An unknown run,
        or a ``ttl_s`` that is not a positive number, is an error.
        """
        ...

    def renew_claim(
        self, run_id: str, owner: str, ttl_s: float, task_id: str | None = None
    ) -> bool:
        """Make ``owner``'s claim on the run (or its task) run ``ttl_s`` seconds from now.

        False, and nothing changed, when ``owner`` does not hold it: never claimed,
        released, or expired and taken by another owner. A claim that expired and was
        not taken is still ``owner``'s to renew. An unknown run or task is an error.
        """
        ...

    def release_claim(self, run_id: str, owner: str, task_id: str | None = None) -> bool:
        """Give up ``owner``'s claim on the run (or its task) so anyone can take it.

        False, and nothing changed, when ``owner`` does not hold it. An unknown run or
        task is an error.
        """
        ...

    def get_claim(self, run_id: str, task_id: str | None = None) -> ClaimRecord | None:
        """The claim in force on the run (or its task); None when free, expired or unknown."""
        ...

    def fenced(self, run_id: str, owner: str) -> AbstractContextManager[None]:
        """While the block runs, every transaction of this store first checks that
        ``owner``'s claim on the run is still in force, holding the run's row until it
        ends; when it is not (expired, released, or another owner's), the transaction
        raises :class:`LeaseLost` and writes nothing. A driver holds the fence around the
        work its claim covers, so a driver that stalled past its lease and woke up
        cannot write over the driver that took the run from it. Fences do not nest.
        """
        ...

    # -- artifacts and timeline ---------------------------------------------------

    def put_artifact(
        self,
        run_id: str,
        file_path: str,
        content: bytes,
        *,
        kind: str = "file",
        mime_type: str = "application/octet-stream",
        metadata: dict[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Store a version of ``file_path``; identical content returns the latest version."""
        ...

    def get_artifact(self, artifact_id: str) -> tuple[ArtifactRecord, bytes] | None:
        """An artifact and its content, or None."""
        ...

    def list_artifacts(self, run_id: str, include_deleted: bool = False) -> list[ArtifactRecord]:
        """A run's artifacts, by path then version."""
        ...

    def delete_artifact(self, artifact_id: str) -> None:
        """Mark an artifact deleted (it stays stored)."""
        ...

    def add_event(
        self, run_id: str, task_id: str | None, event_type: str, event: dict[str, Any]
    ) -> TimelineEvent:
        """Append a timeline event; its id is a UUIDv5 of run, task, type, time, counter."""
        ...

    def list_events(
        self, run_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[TimelineEvent]:
        """Events in order, filtered by run and by ``since <= created_at < until``."""
        ...

    # -- journal and checkpoints --------------------------------------------------

    def get(self, key: JournalKey) -> JournalRecord | None:
        """The journal record at ``key`` (the engine's Journal contract)."""
        ...

    def put(self, key: JournalKey, record: JournalRecord) -> None:
        """Record a journal entry, committed before this returns (or with the transaction)."""
        ...

    def journal_keys(self, run_id: str) -> list[JournalKey]:
        """A run's journal keys in order."""
        ...

    def put_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Record a checkpoint."""
        ...

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointRecord | None:
        """A checkpoint by id."""
        ...

    def list_checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """A run's checkpoints in step order."""
        ...

    # -- ledger and nonces ---------------------------------------------------------

    def append_ledger(
        self, type: str, run_id: str | None, payload: dict[str, Any]
    ) -> tuple[LedgerEntry, LedgerRow]:
        """Append an entry after the current head, serialised across writers."""
        ...

    def ledger_size(self) -> int:
        """The number of entries."""
        ...

    def ledger_rows(self, start: int = 0, end: int | None = None) -> Iterator[LedgerRow]:
        """Stored entries with ``start <= seq < end``, in seq order."""
        ...

    def ledger_scan(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[Sequence[LedgerScanRow]]:
        """The rows of ``ledger_rows(start, end)`` as plain tuples, in seq order, in batches.

        This is the read ``ledger verify`` walks, so it builds no record per row. Every
        batch is non-empty; how many rows a batch holds is the store's choice (a few
        hundred: enough to make the per-batch work vanish, few enough to stay in the CPU
        cache while the caller walks them). The rows are exactly what is stored, damaged
        or not: checking them is the caller's job. An unreadable ledger raises
        :class:`StoreError` while iterating.
        """
        ...

    def ledger_scanner(self) -> LedgerScanner | None:
        """A picklable ``ledger_scan`` that opens its own read-only connection per call.

        ``ledger verify`` hands it to a second process (forked or spawned after this
        call) to walk one part of the ledger beside this one; the scanner never uses
        this store's connection. None when the store cannot be read that way (an
        in-memory store); verification then walks the ledger in one process.
        """
        ...

    def ledger_rows_for_run(self, run_id: str) -> list[LedgerRow]:
        """A run's entries in seq order."""
        ...

    def put_signed_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Keep a signed tree head."""
        ...

    def list_signed_checkpoints(self) -> list[SignedCheckpoint]:
        """Signed tree heads, oldest first."""
        ...

    def consume_nonce(self, nonce: str, source: str) -> bool:
        """Record ``nonce``; False when it was seen before."""
        ...

    def nonce_seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was consumed before (read-only)."""
        ...
