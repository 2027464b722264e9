"""Expectation operators over dotted paths of a run's result."""

from __future__ import annotations

from typing import Any

import pytest

from lifeos.errors import InputError
from lifeos.harness import OPERATORS, Expectation, evaluate

RESULT: dict[str, Any] = {
    "status": "completed",
    "success": True,
    "reason_code": None,
    "final_state": {
        "total": 3,
        "ratio": 0.5,
        "name": "daily summary",
        "tags": ["work", 1, {"k": "v"}],
        "counts": {"done": 1, "open": 2},
        "items": [{"title": "first"}, {"title": "second"}],
        "empty": "",
    },
}


def _check(path: str, op: str, value: Any = None) -> bool:
    return evaluate(Expectation(path, op, value), RESULT).passed


def test_operators() -> None:
    assert OPERATORS == ("eq", "ne", "exists", "contains", "lt", "gt")


@pytest.mark.parametrize(
    ("path", "value", "passed"),
    [
        ("status", "completed", True),
        ("status", "failed", False),
        ("final_state.total", 3, True),
        ("final_state.total", 4, False),
        ("final_state.counts", {"open": 2, "done": 1}, True),
        ("final_state.counts", {"done": 1}, False),
        ("final_state.items.1.title", "second", True),
        ("final_state.tags", ["work", 1, {"k": "v"}], True),
        ("final_state.tags", ["work", 1], False),
        ("reason_code", None, True),
        ("final_state.missing", None, False),
    ],
)
def test_eq(path: str, value: Any, passed: bool) -> None:
    assert _check(path, "eq", value) is passed


@pytest.mark.parametrize(
    ("path", "value", "passed"),
    [
        ("status", "failed", True),
        ("status", "completed", False),
        ("final_state.total", 3.0, False),
        ("final_state.missing", "anything", True),
    ],
)
def test_ne(path: str, value: Any, passed: bool) -> None:
    assert _check(path, "ne", value) is passed


def test_numbers_compare_by_json_equality() -> None:
    assert evaluate(Expectation("x", "eq", 1.0), {"x": 1}).passed
    assert evaluate(Expectation("x", "eq", 1), {"x": 1.0}).passed
    assert evaluate(Expectation("x", "eq", [1, 2.0]), {"x": [1.0, 2]}).passed
    assert evaluate(Expectation("x", "eq", {"a": 1}), {"x": {"a": 1.0}}).passed


def test_booleans_are_not_numbers() -> None:
    assert not evaluate(Expectation("x", "eq", 1), {"x": True}).passed
    assert not evaluate(Expectation("x", "eq", True), {"x": 1}).passed
    assert not evaluate(Expectation("x", "eq", 0), {"x": False}).passed
    assert evaluate(Expectation("x", "ne", 1), {"x": True}).passed
    assert not evaluate(Expectation("x", "eq", [True]), {"x": [1]}).passed
    assert evaluate(Expectation("x", "eq", True), {"x": True}).passed


def test_strings_are_not_numbers() -> None:
    assert not evaluate(Expectation("x", "eq", "1"), {"x": 1}).passed


@pytest.mark.parametrize(
    ("path", "value", "passed"),
    [
        ("status", True, True),
        ("status", None, True),  # no value means "must exist"
        ("status", False, False),
        ("reason_code", True, True),  # present with a null value still exists
        ("final_state.missing", True, False),
        ("final_state.missing", False, True),
        ("final_state.items.5", False, True),
        ("final_state.items.0", True, True),
    ],
)
def test_exists(path: str, value: Any, passed: bool) -> None:
    assert _check(path, "exists", value) is passed


@pytest.mark.parametrize(
    ("path", "value", "passed"),
    [
        ("final_state.name", "summary", True),
        ("final_state.name", "weekly", False),
        ("final_state.name", 1, False),
        ("final_state.empty", "", True),
        ("final_state.tags", "work", True),
        ("final_state.tags", 1.0, True),
        ("final_state.tags", True, False),
        ("final_state.tags", {"k": "v"}, True),
        ("final_state.tags", "play", False),
        ("final_state.counts", "done", True),
        ("final_state.counts", "closed", False),
        ("final_state.counts", 1, False),
        ("final_state.total", 3, False),
        ("final_state.missing", "x", False),
    ],
)
def test_contains(path: str, value: Any, passed: bool) -> None:
    assert _check(path, "contains", value) is passed


@pytest.mark.parametrize(
    ("path", "op", "value", "passed"),
    [
        ("final_state.total", "lt", 4, True),
        ("final_state.total", "lt", 3, False),
        ("final_state.total", "lt", 3.5, True),
        ("final_state.total", "gt", 2, True),
        ("final_state.total", "gt", 3, False),
        ("final_state.ratio", "gt", 0.25, True),
        ("final_state.ratio", "lt", 0, False),
        ("status", "gt", "b", True),
        ("status", "lt", "b", False),
        ("final_state.total", "lt", "9", False),
        ("success", "gt", 0, False),
        ("final_state.total", "gt", True, False),
        ("final_state.tags", "gt", 0, False),
        ("final_state.missing", "lt", 10, False),
        ("final_state.missing", "gt", 0, False),
    ],
)
def test_lt_gt(path: str, op: str, value: Any, passed: bool) -> None:
    assert _check(path, op, value) is passed


def test_missing_path_reports_not_found() -> None:
    r = evaluate(Expectation("final_state.nope.deeper", "eq", 1), RESULT)
    assert r.passed is False
    assert r.found is False
    assert r.actual is None
    assert "<missing>" in r.describe()


def test_found_null_is_not_missing() -> None:
    r = evaluate(Expectation("reason_code", "eq", None), RESULT)
    assert r.passed is True
    assert r.found is True
    assert r.actual is None
    assert "(actual: null)" in r.describe()


def test_describe_shows_the_actual_value() -> None:
    r = evaluate(Expectation("final_state.total", "eq", 4, id="total-is-four"), RESULT)
    assert r.passed is False
    assert r.actual == 3
    assert r.describe() == "[total-is-four] final_state.total eq 4 (actual: 3)"


def test_describe_without_id_and_with_structures() -> None:
    r = evaluate(Expectation("final_state.counts", "contains", "closed"), RESULT)
    assert r.describe() == 'final_state.counts contains "closed" (actual: {"done":1,"open":2})'


def test_to_dict() -> None:
    r = evaluate(Expectation("status", "ne", "failed", id="ok"), RESULT)
    assert r.to_dict() == {
        "actual": "completed",
        "expected": "failed",
        "found": True,
        "id": "ok",
        "op": "ne",
        "passed": True,
        "path": "status",
    }


def test_expectation_refuses_unknown_operator() -> None:
    with pytest.raises(ValueError, match="unknown expectation operator"):
        Expectation("status", "matches", "x")


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a."])
def test_expectation_refuses_bad_paths(path: str) -> None:
    with pytest.raises(InputError, match="state path"):
        Expectation(path, "eq", 1)


@pytest.mark.parametrize("path", ["status.x", "final_state.tags.first"])
def test_path_through_a_scalar_or_list_is_missing(path: str) -> None:
    r = evaluate(Expectation(path, "eq", 1), RESULT)
    assert r.passed is False
    assert r.found is False
