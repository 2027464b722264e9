"""The fast indented encoder gives exactly the standard library's bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.indent_json import indented


def reference(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=400)
@given(values)
def test_matches_json_dumps(value: Any) -> None:
    assert indented(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        [[]],
        {"a": {}},
        {"rows": [{"path": 'src/ä\n"x"', "n": 1}, {"path": "b", "f": 1.5e300}]},
        ("tuple", [1, (2, 3)]),
        [{"a": 1}, {"b": [1]}, {"c": "}"}],
        [{"a": "x}"}, {"b": "{"}],
        [{"a": 1}, {}],
        "\u2028 line separator",
        -0.0,
    ],
)
def test_edge_cases(value: Any) -> None:
    assert indented(value) == reference(value)


@pytest.mark.parametrize("bad", [math.nan, [math.inf], {"a": [1, {"b": -math.inf}]}])
def test_refuses_nan_and_infinity(bad: Any) -> None:
    with pytest.raises(ValueError):
        indented(bad)


@pytest.mark.parametrize("bad", [object(), [b"bytes"], {"a": {1, 2}}])
def test_refuses_non_json_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        indented(bad)


tables = st.lists(st.dictionaries(st.text(max_size=6), scalars, min_size=1, max_size=4), min_size=1)


@settings(max_examples=300)
@given(tables, st.integers(min_value=0, max_value=3))
def test_tables_at_any_depth_match_json_dumps(rows: list[dict[str, Any]], depth: int) -> None:
    value: Any = rows
    for _ in range(depth):
        value = {"nested": value, "n": depth}
    assert indented(value) == reference(value)
