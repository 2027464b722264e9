"""Expectations: declarative checks on dotted paths of a run's result.

Operators: ``eq``, ``ne``, ``exists``, ``contains``, ``lt``, ``gt``. Equality is
JSON equality (``1`` equals ``1.0``; ``true`` never equals ``1``). Every check
reports the actual value it saw, so a failure says what was there instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifeos.canonical import canonical_text
from lifeos.errors import InputError
from lifeos.statepath import MISSING, get_path, parse_path

__all__ = ["OPERATORS", "Expectation", "ExpectationResult", "evaluate"]

OPERATORS = ("eq", "ne", "exists", "contains", "lt", "gt")


@dataclass(frozen=True)
class Expectation:
    """``path`` ``op`` ``value``, with an optional id to name it in reports."""

    path: str
    op: str
    value: Any = None
    id: str | None = None

    def __post_init__(self) -> None:
        parse_path(self.path)
        if self.op not in OPERATORS:
            raise ValueError(f"unknown expectation operator {self.op!r}")


@dataclass(frozen=True)
class ExpectationResult:
    """The verdict of one expectation and the value it found."""

    expectation: Expectation
    passed: bool
    found: bool
    actual: Any

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        e = self.expectation
        return {
            "actual": self.actual,
            "expected": e.value,
            "found": self.found,
            "id": e.id,
            "op": e.op,
            "passed": self.passed,
            "path": e.path,
        }

    def describe(self) -> str:
        """One line: what was expected and what was there."""
        e = self.expectation
        actual = canonical_text(self.actual) if self.found else "<missing>"
        label = f"[{e.id}] " if e.id else ""
        return f"{label}{e.path} {e.op} {canonical_text(e.value)} (actual: {actual})"


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _same(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _ordered(a: Any, b: Any) -> bool:
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


def evaluate(expectation: Expectation, result: dict[str, Any]) -> ExpectationResult:
    """Check ``expectation`` against a result dict (an ``OrchestrationResult.to_dict()``)."""
    try:
        actual = get_path(result, parse_path(expectation.path))
    except (InputError, ValueError):
        actual = MISSING
    found = actual is not MISSING
    op, want = expectation.op, expectation.value
    if op == "exists":
        passed = found is (want is not False)
    elif not found:
        passed = op == "ne"
    elif op == "eq":
        passed = _same(actual, want)
    elif op == "ne":
        passed = not _same(actual, want)
    elif op == "contains":
        if isinstance(actual, str):
            passed = isinstance(want, str) and want in actual
        elif isinstance(actual, list):
            passed = any(_same(item, want) for item in actual)
        elif isinstance(actual, dict):
            passed = isinstance(want, str) and want in actual
        else:
            passed = False
    elif op in ("lt", "gt"):
        passed = _ordered(actual, want) and (actual < want if op == "lt" else actual > want)
    else:  # pragma: no cover - guarded by Expectation.__post_init__
        passed = False
    return ExpectationResult(expectation, passed, found, actual if found else None)
