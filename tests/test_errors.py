"""Reason codes, the exception tree, one-line messages and exit codes."""

from __future__ import annotations

import re

import pytest

from lifeos import errors
from lifeos.errors import (
    EXIT_BAD_INPUT,
    EXIT_BLOCKED,
    EXIT_BUDGET,
    EXIT_ESCALATED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    INPUT_REASONS,
    AntiFailurePlanningError,
    AntiFailureViolation,
    CanonicalError,
    ConfigError,
    EngineError,
    EnvelopeViolation,
    HarnessFileError,
    InputError,
    LifeOSError,
    MissionError,
    MissionEscalationRequired,
    MissionExecutionError,
    MissionValidationError,
    ReasonCode,
    ResumeError,
    UnknownMissionError,
    WorkflowDefinitionError,
)

# The "Reason codes" paragraph of DESIGN.md's "Pinned contracts", verbatim.
PINNED_REASON_CODES = """
UNKNOWN_MISSION, UNKNOWN_OPERATION, ENVELOPE_VIOLATION, ANTI_FAILURE_LIMIT,
INVALID_INPUT, CONFIG_INVALID, PROVIDER_NOT_CONFIGURED, PROVIDER_ERROR,
PROVIDER_TIMEOUT, TOKEN_ACCOUNTING_UNAVAILABLE, BUDGET_EXCEEDED, POLICY_MISSING,
POLICY_INVALID, POLICY_HASH_MISMATCH, NONDETERMINISM, HUMAN_REJECTED,
DIRTY_WORKTREE, PROTECTED_PATH, PATH_UNSAFE, PH2_DELETE_BLOCKED, PH2_RENAME_BLOCKED,
PH2_COPY_BLOCKED, DENYLISTED_PATH, OUTSIDE_ALLOWLIST, EXTENSION_NOT_ALLOWED,
ADD_ONLY_VIOLATION, SYMLINK_BLOCKED, TYPE_CHANGE_BLOCKED, SUBMODULE_BLOCKED,
LEDGER_TAMPERED, LEDGER_TRUNCATED, SIGNATURE_INVALID, EVIDENCE_INCOMPLETE,
EVIDENCE_MISMATCH, PACKET_MISSING, REVIEW_REJECTED, TESTS_FAILED, REPAIRS_EXHAUSTED,
ESCALATION_REQUIRED, DEPRECATED_PATH, TASK_NOT_FOUND, TASK_ALREADY_DONE,
EXTERNAL_CHANGE
"""
PINNED = [c.strip() for c in PINNED_REASON_CODES.split(",")]

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


class TestReasonCodes:
    def test_pinned_list_parsed(self) -> None:
        assert len(PINNED) == 43
        assert len(set(PINNED)) == len(PINNED)

    @pytest.mark.parametrize("code", list(ReasonCode), ids=lambda c: c.name)
    def test_value_equals_name_and_is_upper_snake(self, code: ReasonCode) -> None:
        assert code.value == code.name
        assert UPPER_SNAKE.match(code.value), code.value
        assert str(code) == code.value

    @pytest.mark.parametrize("name", PINNED)
    def test_pinned_code_exists(self, name: str) -> None:
        assert ReasonCode[name].value == name
        assert ReasonCode(name).name == name

    def test_values_unique(self) -> None:
        values = [c.value for c in ReasonCode]
        assert len(values) == len(set(values))

    def test_reason_codes_are_strings(self) -> None:
        assert ReasonCode.NONDETERMINISM == "NONDETERMINISM"
        assert isinstance(ReasonCode.STEP_FAILED, str)

    def test_input_reasons_are_codes(self) -> None:
        assert all(isinstance(r, ReasonCode) for r in INPUT_REASONS)
        assert ReasonCode.INVALID_INPUT in INPUT_REASONS
        assert ReasonCode.STEP_FAILED not in INPUT_REASONS


class TestExceptionTree:
    @pytest.mark.parametrize(
        ("cls", "bases"),
        [
            (InputError, (LifeOSError,)),
            (CanonicalError, (InputError, LifeOSError, TypeError)),
            (ConfigError, (InputError, LifeOSError)),
            (WorkflowDefinitionError, (InputError, LifeOSError, ValueError)),
            (HarnessFileError, (InputError, LifeOSError)),
            (UnknownMissionError, (LifeOSError, ValueError)),
            (EngineError, (LifeOSError,)),
            (AntiFailureViolation, (EngineError, LifeOSError)),
            (EnvelopeViolation, (EngineError, LifeOSError)),
            (ResumeError, (EngineError, LifeOSError)),
            (AntiFailurePlanningError, (LifeOSError,)),
            (MissionError, (LifeOSError,)),
            (MissionValidationError, (MissionError, LifeOSError)),
            (MissionExecutionError, (MissionError, LifeOSError)),
            (MissionEscalationRequired, (MissionError, LifeOSError)),
        ],
        ids=lambda v: v.__name__ if isinstance(v, type) else "",
    )
    def test_bases(self, cls: type[LifeOSError], bases: tuple[type, ...]) -> None:
        for base in bases:
            assert issubclass(cls, base), f"{cls.__name__} should be a {base.__name__}"
        assert issubclass(cls, Exception)

    def test_unknown_mission_is_not_input_error(self) -> None:
        assert not issubclass(UnknownMissionError, InputError)
        assert not issubclass(EngineError, InputError)

    def test_value_errors_catchable_as_value_error(self) -> None:
        with pytest.raises(ValueError):
            raise UnknownMissionError("nope")
        with pytest.raises(ValueError):
            raise WorkflowDefinitionError("bad")

    def test_every_exported_error_is_lifeos_error(self) -> None:
        exported = [getattr(errors, n) for n in errors.__all__]
        classes = [e for e in exported if isinstance(e, type) and issubclass(e, Exception)]
        assert len(classes) >= 15
        assert all(issubclass(c, LifeOSError) for c in classes)


class TestReasonsAndExitCodes:
    @pytest.mark.parametrize(
        ("cls", "reason"),
        [
            (LifeOSError, ReasonCode.INVALID_INPUT),
            (InputError, ReasonCode.INVALID_INPUT),
            (ConfigError, ReasonCode.CONFIG_INVALID),
            (UnknownMissionError, ReasonCode.UNKNOWN_MISSION),
            (AntiFailureViolation, ReasonCode.ANTI_FAILURE_LIMIT),
            (EnvelopeViolation, ReasonCode.ENVELOPE_VIOLATION),
            (ResumeError, ReasonCode.RESUME_INVALID),
            (AntiFailurePlanningError, ReasonCode.ANTI_FAILURE_LIMIT),
            (MissionError, ReasonCode.MISSION_FAILED),
            (MissionValidationError, ReasonCode.INVALID_INPUT),
            (MissionExecutionError, ReasonCode.MISSION_FAILED),
        ],
        ids=lambda v: v.__name__ if isinstance(v, type) else "",
    )
    def test_default_reason(self, cls: type[LifeOSError], reason: ReasonCode) -> None:
        err = cls("message")
        assert err.reason is reason
        assert err.message == "message"
        assert str(err) == "message"

    def test_explicit_reason_overrides_default(self) -> None:
        err = EnvelopeViolation("x", ReasonCode.UNKNOWN_OPERATION)
        assert err.reason is ReasonCode.UNKNOWN_OPERATION

    def test_exit_code_constants(self) -> None:
        assert (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BLOCKED) == (0, 1, 2, 3)
        assert (EXIT_PAUSED, EXIT_BUDGET, EXIT_ESCALATED) == (4, 5, 6)

    @pytest.mark.parametrize(
        ("cls", "code"),
        [
            (LifeOSError, 1),
            (InputError, 2),
            (CanonicalError, 2),
            (ConfigError, 2),
            (WorkflowDefinitionError, 2),
            (HarnessFileError, 2),
            (UnknownMissionError, 2),
            (EngineError, 2),
            (AntiFailureViolation, 2),
            (EnvelopeViolation, 2),
            (ResumeError, 2),
            (AntiFailurePlanningError, 2),
            (MissionError, 1),
            (MissionValidationError, 1),
            (MissionExecutionError, 1),
        ],
        ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
    )
    def test_exit_code(self, cls: type[LifeOSError], code: int) -> None:
        assert cls("m").exit_code == code

    def test_escalation(self) -> None:
        err = MissionEscalationRequired("needs review", {"file": "a.py"})
        assert err.exit_code == EXIT_ESCALATED == 6
        assert err.reason is ReasonCode.ESCALATION_REQUIRED
        assert err.escalation_reason == "needs review"
        assert err.evidence == {"file": "a.py"}
        assert "needs review" in err.message

    def test_escalation_evidence_is_copied(self) -> None:
        evidence = {"k": 1}
        err = MissionEscalationRequired("r", evidence)
        evidence["k"] = 2
        assert err.evidence == {"k": 1}
        assert MissionEscalationRequired("r").evidence == {}


class TestOneLine:
    def test_appends_reason_code(self) -> None:
        assert InputError("bad thing").one_line() == "bad thing [INVALID_INPUT]"

    def test_multiline_message_collapsed_to_one_line(self) -> None:
        err = EnvelopeViolation("first line\n  second\tline\r\n", ReasonCode.UNKNOWN_OPERATION)
        text = err.one_line()
        assert "\n" not in text and "\r" not in text and "\t" not in text
        assert text == "first line second line [UNKNOWN_OPERATION]"
        assert text.endswith("[UNKNOWN_OPERATION]")

    @pytest.mark.parametrize(
        "err",
        [
            ConfigError("a\nb"),
            AntiFailureViolation("too\n\nmany"),
            MissionEscalationRequired("why\nnot"),
            UnknownMissionError("x"),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_one_line_ends_in_bracketed_code(self, err: LifeOSError) -> None:
        text = err.one_line()
        assert len(text.splitlines()) == 1
        assert text.endswith(f"[{err.reason.value}]")
        assert re.search(r" \[[A-Z0-9_]+\]$", text)
