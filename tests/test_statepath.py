"""Dotted state paths: parsing, reading and writing."""

from __future__ import annotations

from typing import Any

import pytest

from lifeos.errors import InputError, ReasonCode
from lifeos.statepath import MISSING, StatePathError, get_path, parse_path, set_path


class TestParsePath:
    def test_splits_on_dots(self) -> None:
        assert parse_path("daily.summary.count") == ("daily", "summary", "count")
        assert parse_path("items.0.title") == ("items", "0", "title")
        assert parse_path("x") == ("x",)

    @pytest.mark.parametrize("bad", ["", None, 3, ["a"], b"a"])
    def test_rejects_empty_and_non_strings(self, bad: Any) -> None:
        with pytest.raises(InputError) as info:
            parse_path(bad)
        assert info.value.reason is ReasonCode.INVALID_INPUT

    @pytest.mark.parametrize("bad", [".", "a.", ".a", "a..b", "a.b."])
    def test_rejects_empty_components(self, bad: str) -> None:
        with pytest.raises(InputError, match="empty component"):
            parse_path(bad)


class TestGetPath:
    STATE: dict[str, Any] = {
        "daily": {"summary": {"count": 3}, "zero": 0, "none": None},
        "items": [{"title": "a"}, {"title": "b"}],
        "n": 7,
    }

    def test_nested_objects(self) -> None:
        assert get_path(self.STATE, ("daily", "summary", "count")) == 3
        assert get_path(self.STATE, ("daily", "summary")) == {"count": 3}

    def test_falsy_values_are_not_missing(self) -> None:
        assert get_path(self.STATE, ("daily", "zero")) == 0
        assert get_path(self.STATE, ("daily", "none")) is None

    def test_list_index(self) -> None:
        assert get_path(self.STATE, ("items", "1", "title")) == "b"
        assert get_path(self.STATE, parse_path("items.0")) == {"title": "a"}

    def test_missing_key_and_out_of_range_index(self) -> None:
        assert get_path(self.STATE, ("nope",)) is MISSING
        assert get_path(self.STATE, ("daily", "nope", "deeper")) is MISSING
        assert get_path(self.STATE, ("items", "5", "title")) is MISSING
        assert repr(MISSING) == "MISSING"

    @pytest.mark.parametrize(
        "parts",
        [("n", "x"), ("daily", "summary", "count", "x"), ("items", "title"), ("items", "-1")],
    )
    def test_through_non_object_raises(self, parts: tuple[str, ...]) -> None:
        with pytest.raises(StatePathError) as info:
            get_path(self.STATE, parts)
        assert info.value.reason is ReasonCode.STATE_PATH_INVALID
        assert isinstance(info.value, InputError)

    def test_string_is_not_indexable(self) -> None:
        with pytest.raises(StatePathError, match="str"):
            get_path({"s": "abc"}, ("s", "0"))

    def test_does_not_mutate(self) -> None:
        state = {"a": {"b": 1}}
        get_path(state, ("a", "c"))
        assert state == {"a": {"b": 1}}

    def test_non_ascii_digit_component_is_a_path_error(self) -> None:
        with pytest.raises(StatePathError):
            get_path({"a": [1, 2]}, ("a", "²"))


class TestSetPath:
    def test_sets_top_level_and_nested(self) -> None:
        state: dict[str, Any] = {"a": {"b": 1}}
        set_path(state, ("x",), 5)
        set_path(state, ("a", "b"), 2)
        assert state == {"a": {"b": 2}, "x": 5}

    def test_creates_intermediate_objects(self) -> None:
        state: dict[str, Any] = {}
        set_path(state, ("a", "b", "c"), [1])
        assert state == {"a": {"b": {"c": [1]}}}

    def test_creates_intermediates_under_existing(self) -> None:
        state: dict[str, Any] = {"a": {"keep": True}}
        set_path(state, ("a", "new", "leaf"), "v")
        assert state == {"a": {"keep": True, "new": {"leaf": "v"}}}

    def test_list_index_replaces_element(self) -> None:
        state: dict[str, Any] = {"items": [{"t": "a"}, {"t": "b"}]}
        set_path(state, ("items", "1", "t"), "B")
        set_path(state, ("items", "0"), "first")
        assert state == {"items": ["first", {"t": "B"}]}

    def test_digit_key_on_object_is_a_key(self) -> None:
        state: dict[str, Any] = {"m": {}}
        set_path(state, ("m", "0"), "zero")
        assert state == {"m": {"0": "zero"}}

    def test_list_index_out_of_range_raises(self) -> None:
        state: dict[str, Any] = {"items": [1]}
        with pytest.raises(StatePathError) as info:
            set_path(state, ("items", "1"), 2)
        assert info.value.reason is ReasonCode.STATE_PATH_INVALID
        with pytest.raises(StatePathError, match="out of range"):
            set_path(state, ("items", "3", "x"), 2)
        assert state == {"items": [1]}

    def test_non_digit_component_on_list_raises(self) -> None:
        state: dict[str, Any] = {"items": [1]}
        with pytest.raises(StatePathError):
            set_path(state, ("items", "x"), 2)

    @pytest.mark.parametrize(
        ("state", "parts"),
        [
            ({"a": 5}, ("a", "b")),
            ({"a": 5}, ("a", "b", "c")),
            ({"a": "text"}, ("a", "b")),
            ({"a": None}, ("a", "b")),
            ({"a": {"b": True}}, ("a", "b", "c")),
        ],
    )
    def test_through_non_object_raises(self, state: dict[str, Any], parts: tuple[str, ...]) -> None:
        before = repr(state)
        with pytest.raises(StatePathError) as info:
            set_path(state, parts, 1)
        assert info.value.reason is ReasonCode.STATE_PATH_INVALID
        assert "not an object" in info.value.message
        assert repr(state) == before

    def test_round_trip(self) -> None:
        state: dict[str, Any] = {}
        parts = parse_path("x.y.z")
        set_path(state, parts, {"deep": [1, 2]})
        assert get_path(state, parts) == {"deep": [1, 2]}
