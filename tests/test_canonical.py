"""Canonical JSON, the hash every LifeOS hash goes through, and stable UUIDs."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.canonical import (
    LIFEOS_NAMESPACE,
    canonical_json,
    canonical_text,
    copy_json,
    encode_checked,
    pretty_json,
    sha256_hex,
    stable_uuid,
)
from lifeos.errors import EXIT_BAD_INPUT, CanonicalError, InputError, ReasonCode


class TestCanonicalForm:
    def test_returns_bytes(self) -> None:
        assert isinstance(canonical_json({"a": 1}), bytes)

    def test_keys_sorted_at_every_level(self) -> None:
        value = {"b": 1, "a": {"z": 1, "y": [{"d": 1, "c": 2}]}}
        assert canonical_json(value) == b'{"a":{"y":[{"c":2,"d":1}],"z":1},"b":1}'

    def test_insertion_order_does_not_matter(self) -> None:
        assert canonical_json({"x": 1, "y": 2}) == canonical_json({"y": 2, "x": 1})

    def test_no_insignificant_whitespace(self) -> None:
        out = canonical_json({"a": [1, 2, {"b": None}], "c": "d e"})
        assert out == b'{"a":[1,2,{"b":null}],"c":"d e"}'
        assert b", " not in out and b": " not in out

    def test_non_ascii_stays_raw_utf8(self) -> None:
        out = canonical_json({"name": "Zoë ☃ 日本"})
        assert out == '{"name":"Zoë ☃ 日本"}'.encode()
        assert b"\\u" not in out
        assert out.decode("utf-8") == canonical_text({"name": "Zoë ☃ 日本"})

    def test_scalars(self) -> None:
        assert canonical_json(None) == b"null"
        assert canonical_json(True) == b"true"
        assert canonical_json(False) == b"false"
        assert canonical_json(0) == b"0"
        assert canonical_json(-12) == b"-12"
        assert canonical_json(1.5) == b"1.5"
        assert canonical_json("x") == b'"x"'

    def test_tuple_encodes_like_list(self) -> None:
        assert canonical_json((1, "a")) == canonical_json([1, "a"]) == b'[1,"a"]'

    def test_empty_containers(self) -> None:
        assert canonical_json({}) == b"{}"
        assert canonical_json([]) == b"[]"

    def test_string_escaping_is_json(self) -> None:
        out = canonical_json({"q": 'a"b\\c\n'})
        assert json.loads(out) == {"q": 'a"b\\c\n'}


class TestRejections:
    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_rejects_nan_and_infinity(self, bad: float) -> None:
        with pytest.raises(CanonicalError):
            canonical_json(bad)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_rejects_nan_and_infinity_nested(self, bad: float) -> None:
        with pytest.raises(CanonicalError, match=r"a\.b\[1\]"):
            canonical_json({"a": {"b": [0.0, bad]}})

    @pytest.mark.parametrize(
        "bad",
        [
            {1, 2},
            frozenset({1}),
            b"bytes",
            bytearray(b"x"),
            object(),
            1 + 2j,
            uuid.UUID(int=0),
        ],
        ids=["set", "frozenset", "bytes", "bytearray", "object", "complex", "uuid"],
    )
    def test_rejects_non_json_types(self, bad: Any) -> None:
        with pytest.raises(CanonicalError, match="not a JSON type"):
            canonical_json(bad)
        with pytest.raises(CanonicalError):
            canonical_json({"wrapped": [bad]})

    @pytest.mark.parametrize("key", [1, 1.5, None, True, ("a",)])
    def test_rejects_non_string_keys(self, key: Any) -> None:
        with pytest.raises(CanonicalError, match="not a string"):
            canonical_json({key: "v"})

    def test_rejects_non_string_key_nested(self) -> None:
        with pytest.raises(CanonicalError):
            canonical_json({"ok": [{2: "v"}]})

    def test_rejects_subclasses_of_json_types(self) -> None:
        class Colour(enum.IntEnum):
            RED = 1

        class Name(str):
            pass

        # Each would encode like its base type, so two different values would share bytes.
        for bad in (Colour.RED, Name("x"), OrderedDict(a=1), {"nested": [Name("y")]}):
            with pytest.raises(CanonicalError, match="not a JSON type"):
                canonical_json(bad)

    def test_nan_deep_in_an_otherwise_valid_value_names_its_path(self) -> None:
        value = {"a": [{"b": 1}, {"c": {"d": [1.0, 2.0, float("-inf")]}}]}
        with pytest.raises(CanonicalError, match=r"^a\[1\]\.c\.d\[2\]: NaN"):
            canonical_json(value)

    def test_error_is_input_error_with_exit_2(self) -> None:
        with pytest.raises(CanonicalError) as info:
            canonical_json({"s": {1}})
        err = info.value
        assert isinstance(err, InputError)
        assert isinstance(err, TypeError)
        assert err.exit_code == EXIT_BAD_INPUT == 2
        assert err.reason is ReasonCode.INVALID_INPUT

    def test_sha256_and_pretty_refuse_too(self) -> None:
        with pytest.raises(CanonicalError):
            sha256_hex({"x": float("nan")})
        with pytest.raises(CanonicalError):
            pretty_json({1: 2})


class TestHashing:
    def test_sha256_matches_hashlib_over_canonical_bytes(self) -> None:
        value = {"b": [1, 2.5, None], "a": "é"}
        expected = hashlib.sha256(canonical_json(value)).hexdigest()
        assert sha256_hex(value) == expected
        assert (
            sha256_hex(value) == hashlib.sha256('{"a":"é","b":[1,2.5,null]}'.encode()).hexdigest()
        )

    def test_sha256_is_64_lowercase_hex(self) -> None:
        digest = sha256_hex([])
        assert len(digest) == 64
        assert digest == digest.lower()
        int(digest, 16)

    def test_equal_values_hash_equal_regardless_of_key_order(self) -> None:
        assert sha256_hex({"a": 1, "b": 2}) == sha256_hex({"b": 2, "a": 1})

    def test_different_values_hash_differently(self) -> None:
        assert sha256_hex({"a": 1}) != sha256_hex({"a": "1"})
        assert sha256_hex([1, 2]) != sha256_hex([2, 1])


class TestStableUuid:
    def test_deterministic(self) -> None:
        assert stable_uuid("run", "abc") == stable_uuid("run", "abc")

    def test_is_uuid5_in_lifeos_namespace(self) -> None:
        value = stable_uuid("run", "abc")
        parsed = uuid.UUID(value)
        assert parsed.version == 5
        assert value == str(uuid.uuid5(LIFEOS_NAMESPACE, "run\x1fabc"))

    def test_different_parts_give_different_ids(self) -> None:
        assert stable_uuid("run", "a") != stable_uuid("run", "b")
        # The separator keeps part boundaries significant.
        assert stable_uuid("ab", "c") != stable_uuid("a", "bc")


class TestCopyJson:
    def test_copy_is_equal_and_shares_no_container(self) -> None:
        value = {"a": [1, {"b": [2.5, None]}], "c": {"d": "e"}, "t": (1, [2])}
        copied = copy_json(value)
        assert copied == value
        assert canonical_json(copied) == canonical_json(value)
        assert copied is not value
        assert copied["a"] is not value["a"] and copied["a"][1] is not value["a"][1]
        assert type(copied["t"]) is tuple and copied["t"][1] is not value["t"][1]
        copied["a"][1]["b"].append(3)
        assert value["a"][1]["b"] == [2.5, None]

    def test_non_json_parts_are_deep_copied(self) -> None:
        inner = {1, 2}
        value = {"s": inner, "d": OrderedDict(k=[1])}
        copied = copy_json(value)
        assert copied == value
        assert copied["s"] is not inner
        assert copied["d"]["k"] is not value["d"]["k"]

    def test_a_cycle_falls_back_to_deepcopy(self) -> None:
        cycle: list[Any] = [1]
        cycle.append(cycle)
        copied = copy_json(cycle)
        assert copied is not cycle
        assert copied[1] is copied


class TestPrettyJson:
    def test_sorted_indented_and_raw_unicode(self) -> None:
        out = pretty_json({"b": 1, "a": "ü"})
        assert out == '{\n  "a": "ü",\n  "b": 1\n}'


# -- properties -------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trips_through_json_loads(value: Any) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded.decode("utf-8")) == value


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_form_is_idempotent(value: Any) -> None:
    once = canonical_json(value)
    twice = canonical_json(json.loads(once))
    assert once == twice
    assert sha256_hex(value) == sha256_hex(json.loads(once))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_key_order_never_changes_encoding(value: dict[str, int]) -> None:
    reversed_value = dict(reversed(list(value.items())))
    assert canonical_json(reversed_value) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_copy_json_matches_deepcopy(value: Any) -> None:
    copied = copy_json(value)
    assert copied == value
    assert canonical_json(copied) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_encode_checked_is_canonical_text_for_canonical_values(value: Any) -> None:
    assert encode_checked(value) == canonical_text(value)
    assert canonical_text(value) == json.dumps(
        value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=8), min_size=1, max_size=4))
def test_stable_uuid_is_uuid5_of_the_joined_parts(parts: list[str]) -> None:
    assert stable_uuid(*parts) == str(uuid.uuid5(LIFEOS_NAMESPACE, "\x1f".join(parts)))
