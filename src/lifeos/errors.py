"""LifeOS errors and the stable reason codes every fail-closed stop carries.

The hierarchy::

    LifeOSError                      root; carries a ReasonCode and a CLI exit code
    ├── InputError                   bad input from a user or a file (exit 2)
    │   ├── CanonicalError           a value with no canonical JSON form
    │   ├── ConfigError              lifeos.yaml does not parse or validate
    │   ├── WorkflowDefinitionError  a workflow that cannot be built (also ValueError)
    │   └── HarnessFileError         a harness test file that does not parse or validate
    ├── UnknownMissionError          a mission type nobody registered (also ValueError)
    ├── EngineError                  the Tier-2 engine refused a workflow before running it
    │   ├── AntiFailureViolation     more than 5 steps or more than 2 human steps
    │   ├── EnvelopeViolation        a disallowed step kind or an unknown operation
    │   └── ResumeError              a resume that does not fit the paused run
    ├── AntiFailurePlanningError     the builder could not plan within the limits
    └── MissionError                 raised inside missions, captured as failed results
        ├── MissionValidationError   inputs a mission refuses
        ├── MissionExecutionError    a mission that could not finish
        └── MissionEscalationRequired  a mission that needs a human decision (exit 6)

Also directly under LifeOSError: ``BudgetExceeded`` (a budget cap a call would cross, or
spend crossed; exit 5) and ``TokenAccountingUnavailable`` (usage unknown while a budget
cap needs it).

Reason codes are stable strings: add new ones, never rename one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BLOCKED",
    "EXIT_BUDGET",
    "EXIT_ESCALATED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PAUSED",
    "AntiFailurePlanningError",
    "AntiFailureViolation",
    "BudgetExceeded",
    "CanonicalError",
    "ConfigError",
    "EngineError",
    "EnvelopeViolation",
    "HarnessFileError",
    "InputError",
    "LifeOSError",
    "MissionError",
    "MissionEscalationRequired",
    "MissionExecutionError",
    "MissionValidationError",
    "ReasonCode",
    "ResumeError",
    "TokenAccountingUnavailable",
    "UnknownMissionError",
    "WorkflowDefinitionError",
]

# Exit codes pinned for every command (DESIGN.md, "Pinned contracts").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BLOCKED = 3
EXIT_PAUSED = 4
EXIT_BUDGET = 5
EXIT_ESCALATED = 6


class ReasonCode(StrEnum):
    """Stable reason codes, one per way a LifeOS run or command can stop."""

    # Pinned from the start (DESIGN.md).
    UNKNOWN_MISSION = "UNKNOWN_MISSION"
    UNKNOWN_OPERATION = "UNKNOWN_OPERATION"
    ENVELOPE_VIOLATION = "ENVELOPE_VIOLATION"
    ANTI_FAILURE_LIMIT = "ANTI_FAILURE_LIMIT"
    INVALID_INPUT = "INVALID_INPUT"
    CONFIG_INVALID = "CONFIG_INVALID"
    PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    TOKEN_ACCOUNTING_UNAVAILABLE = "TOKEN_ACCOUNTING_UNAVAILABLE"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    POLICY_MISSING = "POLICY_MISSING"
    POLICY_INVALID = "POLICY_INVALID"
    POLICY_HASH_MISMATCH = "POLICY_HASH_MISMATCH"
    NONDETERMINISM = "NONDETERMINISM"
    HUMAN_REJECTED = "HUMAN_REJECTED"
    DIRTY_WORKTREE = "DIRTY_WORKTREE"
    PROTECTED_PATH = "PROTECTED_PATH"
    PATH_UNSAFE = "PATH_UNSAFE"
    PH2_DELETE_BLOCKED = "PH2_DELETE_BLOCKED"
    PH2_RENAME_BLOCKED = "PH2_RENAME_BLOCKED"
    PH2_COPY_BLOCKED = "PH2_COPY_BLOCKED"
    DENYLISTED_PATH = "DENYLISTED_PATH"
    OUTSIDE_ALLOWLIST = "OUTSIDE_ALLOWLIST"
    EXTENSION_NOT_ALLOWED = "EXTENSION_NOT_ALLOWED"
    ADD_ONLY_VIOLATION = "ADD_ONLY_VIOLATION"
    SYMLINK_BLOCKED = "SYMLINK_BLOCKED"
    TYPE_CHANGE_BLOCKED = "TYPE_CHANGE_BLOCKED"
    SUBMODULE_BLOCKED = "SUBMODULE_BLOCKED"
    LEDGER_TAMPERED = "LEDGER_TAMPERED"
    LEDGER_TRUNCATED = "LEDGER_TRUNCATED"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    EVIDENCE_INCOMPLETE = "EVIDENCE_INCOMPLETE"
    EVIDENCE_MISMATCH = "EVIDENCE_MISMATCH"
    PACKET_MISSING = "PACKET_MISSING"
    REVIEW_REJECTED = "REVIEW_REJECTED"
    TESTS_FAILED = "TESTS_FAILED"
    REPAIRS_EXHAUSTED = "REPAIRS_EXHAUSTED"
    ESCALATION_REQUIRED = "ESCALATION_REQUIRED"
    DEPRECATED_PATH = "DEPRECATED_PATH"
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    TASK_ALREADY_DONE = "TASK_ALREADY_DONE"
    EXTERNAL_CHANGE = "EXTERNAL_CHANGE"
    # Added by the foundation.
    STEP_FAILED = "STEP_FAILED"
    MISSION_FAILED = "MISSION_FAILED"
    MISSION_UNAVAILABLE = "MISSION_UNAVAILABLE"
    UNKNOWN_TOOL = "UNKNOWN_TOOL"
    STATE_PATH_INVALID = "STATE_PATH_INVALID"
    STATE_TYPE_INVALID = "STATE_TYPE_INVALID"
    TARGET_NOT_FOUND = "TARGET_NOT_FOUND"
    TESTS_NOT_RUNNABLE = "TESTS_NOT_RUNNABLE"
    EXPECTATION_FAILED = "EXPECTATION_FAILED"
    RESUME_INVALID = "RESUME_INVALID"
    CONFIG_MISSING = "CONFIG_MISSING"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    KEY_MISSING = "KEY_MISSING"
    # Added by the worktree service.
    WORKTREE_EXISTS = "WORKTREE_EXISTS"
    WORKTREE_INVALID = "WORKTREE_INVALID"
    BASELINE_MISSING = "BASELINE_MISSING"
    BRANCH_MOVED = "BRANCH_MOVED"
    GIT_FAILED = "GIT_FAILED"
    # Added by the spine.
    WRITE_FAILED = "WRITE_FAILED"
    """A file LifeOS writes could not be written: disk full, read-only, quota."""
    ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"
    """The distributed engine driving runs (a Temporal server) cannot be reached."""
    LEASE_LOST = "LEASE_LOST"
    """A driver's claim on a run ran out or passed to another; its writes are refused."""


# Reason codes that mean "the input was wrong", so the CLI answers with exit 2.
INPUT_REASONS = frozenset(
    {
        ReasonCode.INVALID_INPUT,
        ReasonCode.CONFIG_INVALID,
        ReasonCode.CONFIG_MISSING,
        ReasonCode.UNKNOWN_MISSION,
        ReasonCode.UNKNOWN_OPERATION,
        ReasonCode.ENVELOPE_VIOLATION,
        ReasonCode.ANTI_FAILURE_LIMIT,
        ReasonCode.STATE_PATH_INVALID,
        ReasonCode.STATE_TYPE_INVALID,
    }
)


class LifeOSError(Exception):
    """Root of every LifeOS error; carries a stable reason code and an exit code."""

    default_reason: ReasonCode = ReasonCode.INVALID_INPUT
    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, reason: ReasonCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason: ReasonCode = reason or self.default_reason

    def one_line(self) -> str:
        """Return the message as one line followed by its reason code."""
        text = " ".join(self.message.split())
        return f"{text} [{self.reason.value}]"


class InputError(LifeOSError):
    """Bad input from a user, a file or a flag."""

    exit_code = EXIT_BAD_INPUT


class CanonicalError(InputError, TypeError):
    """A value that has no canonical JSON form."""


class ConfigError(InputError):
    """lifeos.yaml (or a file given with --config) does not parse or validate."""

    default_reason = ReasonCode.CONFIG_INVALID


class WorkflowDefinitionError(InputError, ValueError):
    """A workflow that cannot be built, such as an id/name mismatch."""


class HarnessFileError(InputError):
    """A harness test file that does not parse or validate."""


class UnknownMissionError(LifeOSError, ValueError):
    """A mission type that is not registered; the message lists the valid ones."""

    default_reason = ReasonCode.UNKNOWN_MISSION
    exit_code = EXIT_BAD_INPUT


class EngineError(LifeOSError):
    """The engine refused a workflow before running any step."""

    exit_code = EXIT_BAD_INPUT


class AntiFailureViolation(EngineError):
    """A workflow over the Anti-Failure limits (5 steps, 2 human steps)."""

    default_reason = ReasonCode.ANTI_FAILURE_LIMIT


class EnvelopeViolation(EngineError):
    """A step outside the execution envelope: a disallowed kind or unknown operation."""

    default_reason = ReasonCode.ENVELOPE_VIOLATION


class ResumeError(EngineError):
    """A resume that does not fit the paused result it was given."""

    default_reason = ReasonCode.RESUME_INVALID


class AntiFailurePlanningError(LifeOSError):
    """The builder cannot plan the mission within the Anti-Failure limits."""

    default_reason = ReasonCode.ANTI_FAILURE_LIMIT
    exit_code = EXIT_BAD_INPUT


class MissionError(LifeOSError):
    """Base for errors raised inside missions; the engine turns them into failed results."""

    default_reason = ReasonCode.MISSION_FAILED


class MissionValidationError(MissionError):
    """Mission inputs the mission refuses."""

    default_reason = ReasonCode.INVALID_INPUT


class MissionExecutionError(MissionError):
    """A mission that could not finish its work."""


class MissionEscalationRequired(MissionError):
    """A mission that needs a human decision before it can go on."""

    default_reason = ReasonCode.ESCALATION_REQUIRED
    exit_code = EXIT_ESCALATED

    def __init__(self, reason: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(f"Escalation required: {reason}")
        self.escalation_reason = reason
        self.evidence: dict[str, Any] = dict(evidence or {})


class BudgetExceeded(LifeOSError):
    """A budget cap that the next agent call would cross, or that spend has crossed.

    The run stops before the call (no call is made) and stays resumable: budgets are not
    covered by the policy hash, so raising the cap in ``lifeos.yaml`` and resuming goes on.
    ``cap`` is the ``budget:`` key (``tokens``, ``cost_usd``, ``calls``, ``wall_s``,
    ``daily_tokens``, ``daily_cost_usd``), ``limit`` its value, ``spent`` the spend so far
    and ``estimate`` what the refused call was expected to add (0 when none applies).
    """

    default_reason = ReasonCode.BUDGET_EXCEEDED
    exit_code = EXIT_BUDGET

    def __init__(
        self,
        message: str,
        reason: ReasonCode | None = None,
        *,
        cap: str = "",
        limit: float | None = None,
        spent: float | None = None,
        estimate: float | None = None,
    ) -> None:
        super().__init__(message, reason)
        self.cap = cap
        self.limit = limit
        self.spent = spent
        self.estimate = estimate


class TokenAccountingUnavailable(LifeOSError):
    """A call whose tokens or cost are unknown while a budget cap needs them."""

    default_reason = ReasonCode.TOKEN_ACCOUNTING_UNAVAILABLE
