"""State deltas: diff, apply_delta and advance rebuild states exactly (canonically)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifeos.canonical import canonical_text
from lifeos.delta import advance, apply_delta, diff

KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.sampled_from([0, 1, 0.0, -0.0, 1.0])
    | st.integers(-3, 3)
    | st.text(max_size=2)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
STATES = st.dictionaries(KEYS, JSON, max_size=3)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pairs Python's == finds equal though their canonical JSON differs.
LOOSE = [
    ({"x": {"a": 1}}, {"x": {"a": True}}),
    ({"x": {"a": 1}}, {"x": {"a": 1.0}}),
    ({"x": {"a": 0.0}}, {"x": {"a": -0.0}}),
    ({"x": [1, 2]}, {"x": [True, 2]}),
    ({"x": [1]}, {"x": [True, 5]}),
    ({"x": [[0]]}, {"x": [[False]]}),
]


@pytest.mark.parametrize(("old", "new"), LOOSE)
def test_exact_diff_sees_what_equality_misses(old: dict[str, Any], new: dict[str, Any]) -> None:
    missed = apply_delta(copy.deepcopy(old), diff(old, new))
    assert canonical_text(missed) != canonical_text(new)  # what the fast diff misses
    rebuilt = apply_delta(copy.deepcopy(old), diff(old, new, exact=True))
    assert canonical_text(rebuilt) == canonical_text(new)


@pytest.mark.parametrize(("old", "new"), LOOSE)
def test_advance_rebuilds_exactly(old: dict[str, Any], new: dict[str, Any]) -> None:
    prev = copy.deepcopy(old)
    ops, prev = advance(prev, new, canonical_text(new))
    assert canonical_text(prev) == canonical_text(new)
    assert canonical_text(apply_delta(copy.deepcopy(old), ops)) == canonical_text(new)


def test_advance_keeps_the_small_delta_when_it_is_exact() -> None:
    old = {"big": list(range(100)), "n": 1, "log": ["a"]}
    new = {"big": list(range(100)), "n": 2, "log": ["a", "b"]}
    ops, prev = advance(copy.deepcopy(old), new, canonical_text(new))
    assert ops == [
        {"op": "set", "path": ["n"], "value": 2},
        {"op": "extend", "path": ["log"], "values": ["b"]},
    ]
    assert prev == new


def test_delta_values_share_nothing_with_the_states() -> None:
    old: dict[str, Any] = {"a": {"b": [1]}}
    new: dict[str, Any] = {"a": {"b": [1], "c": {"d": [2]}}}
    ops, prev = advance(copy.deepcopy(old), new, canonical_text(new))
    new["a"]["c"]["d"].append(3)
    prev["a"]["c"]["d"].append(4)
    assert ops == [{"op": "set", "path": ["a", "c"], "value": {"d": [2]}}]


@SETTINGS
@given(STATES, STATES)
def test_fast_diff_rebuilds_an_equal_state(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply_delta(copy.deepcopy(old), diff(old, new)) == new


@SETTINGS
@given(STATES, STATES)
def test_exact_diff_rebuilds_the_same_canonical_text(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    rebuilt = apply_delta(copy.deepcopy(old), diff(old, new, exact=True))
    assert canonical_text(rebuilt) == canonical_text(new)


@SETTINGS
@given(STATES, st.lists(STATES, min_size=1, max_size=4))
def test_advance_over_a_run_rebuilds_every_state(
    initial: dict[str, Any], states: list[dict[str, Any]]
) -> None:
    prev = copy.deepcopy(initial)
    replayed = copy.deepcopy(initial)
    for state in states:
        before = copy.deepcopy(state)
        text = canonical_text(state)
        ops, prev = advance(prev, state, text)
        assert canonical_text(prev) == text
        replayed = apply_delta(replayed, copy.deepcopy(ops))
        assert canonical_text(replayed) == text
        assert canonical_text(state) == canonical_text(before)  # never touches ``new``
