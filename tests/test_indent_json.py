"""The fast indented encoder gives exactly the standard library's bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.indent_json import Table, indented


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


present = (
    st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)


@st.composite
def table_columns(draw: st.DrawFn) -> dict[str, list[Any]]:
    n = draw(st.integers(min_value=0, max_value=6))
    keys = draw(st.lists(st.text(max_size=6), max_size=5, unique=True))
    optional = present | st.none()
    return {
        k: draw(st.lists(draw(st.sampled_from([present, optional])), min_size=n, max_size=n))
        for k in keys
    }


@settings(max_examples=400)
@given(table_columns(), st.integers(min_value=0, max_value=3))
def test_a_table_encodes_as_its_list_of_objects(columns: dict[str, list[Any]], depth: int) -> None:
    table = Table(columns)
    value: Any = table
    expected: Any = table.objects()
    for _ in range(depth):
        value, expected = {"nested": value, "n": [depth]}, {"nested": expected, "n": [depth]}
    assert indented(value) == reference(expected)


@pytest.mark.parametrize(
    "columns",
    [
        {},
        {"a": []},
        {"a": [None, None]},
        {"a": ["x", None], "b": [None, None]},
        {"path": ["{,\n", 'q"}', "\x00", "\u2028", "%s"], "n": [1, 2.5, True, False, -0.0]},
        {"a%": ["%", "%%"], "b": ["x", "y"]},
        {"old": [None, "src/a"], "new": ["src/b", "src/c"]},
    ],
)
def test_table_edge_cases(columns: dict[str, list[Any]]) -> None:
    table = Table(columns)
    assert indented({"rows": table, "k": 1}) == reference({"rows": table.objects(), "k": 1})
    assert indented([table]) == reference([table.objects()])


def test_a_table_of_other_values_is_encoded_as_objects() -> None:
    table = Table({"a": [[1, 2], {"b": None}], "c": ["x", "y"]})
    assert indented(table) == reference(table.objects())


def test_a_table_refuses_what_the_encoder_refuses() -> None:
    with pytest.raises(ValueError):
        indented(Table({"a": [1.0, math.nan]}))
    with pytest.raises(ValueError):
        Table({"a": [1], "b": [1, 2]})


def test_without_the_c_encoder_a_table_is_the_reference_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lifeos.indent_json as module

    monkeypatch.setattr(module, "_make", None)
    table = Table({"path": ["a", "b"], "old": [None, "c"]})
    assert indented({"t": table}) == reference({"t": table.objects()})
