"""YAML with line numbers: duplicate keys, line_of, file reading, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from lifeos.errors import ConfigError, HarnessFileError, InputError
from lifeos.yamlio import YamlDocument, load_yaml, load_yaml_file, validation_message

TEXT = """\
name: demo
nested:
  inner:
    leaf: 1
  other: two
items:
  - first
  - key: value
    more: [a, b]
  -
    deep: true
"""


def test_load_yaml_data_and_source() -> None:
    doc = load_yaml(TEXT, "demo.yaml")
    assert doc.source == "demo.yaml"
    assert doc.data == {
        "name": "demo",
        "nested": {"inner": {"leaf": 1}, "other": "two"},
        "items": ["first", {"key": "value", "more": ["a", "b"]}, {"deep": True}],
    }


def test_line_of_nested_keys() -> None:
    doc = load_yaml(TEXT, "demo.yaml")
    assert doc.line_of(()) == 1
    assert doc.line_of(("name",)) == 1
    assert doc.line_of(("nested",)) == 2
    assert doc.line_of(("nested", "inner")) == 3
    assert doc.line_of(("nested", "inner", "leaf")) == 4
    assert doc.line_of(("nested", "other")) == 5


def test_line_of_list_items() -> None:
    doc = load_yaml(TEXT, "demo.yaml")
    assert doc.line_of(("items",)) == 6
    assert doc.line_of(("items", 0)) == 7
    assert doc.line_of(("items", 1)) == 8
    assert doc.line_of(("items", 1, "more")) == 9
    assert doc.line_of(("items", 1, "more", 1)) == 9
    assert doc.line_of(("items", 2, "deep")) == 11


def test_line_of_falls_back_to_the_nearest_enclosing_key() -> None:
    doc = load_yaml(TEXT, "demo.yaml")
    assert doc.line_of(("nested", "inner", "missing")) == 3
    assert doc.line_of(("items", 1, "nope", "deeper")) == 8
    assert doc.line_of(("absent",)) == 1


def test_line_of_with_no_lines() -> None:
    assert YamlDocument({}, "x").line_of(("a",)) is None


def test_empty_document() -> None:
    doc = load_yaml("", "empty.yaml")
    assert doc.data is None
    assert doc.line_of(("a",)) is None


def test_document_starting_late() -> None:
    doc = load_yaml("# comment\n\nkey: 1\n", "c.yaml")
    assert doc.line_of(()) == 3
    assert doc.line_of(("key",)) == 3


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "a"),
        ("top:\n  x: 1\n  y: 2\n  x: 3\n", 4, "x"),
        ("list:\n  - {k: 1, k: 2}\n", 2, "k"),
        ("1: one\n1: uno\n", 2, "1"),
    ],
)
def test_duplicate_keys_are_refused_with_the_line(text: str, line: int, key: str) -> None:
    with pytest.raises(InputError) as info:
        load_yaml(text, "dup.yaml")
    assert info.value.message == f"dup.yaml:{line}: duplicate key '{key}'"


def test_error_class_is_configurable() -> None:
    with pytest.raises(ConfigError):
        load_yaml("a: 1\na: 2\n", "c.yaml", ConfigError)
    with pytest.raises(HarnessFileError):
        load_yaml("a: [\n", "h.yaml", HarnessFileError)


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(InputError) as info:
        load_yaml("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    msg = info.value.message
    assert msg.startswith("bad.yaml:")
    assert "invalid YAML" in msg
    assert int(msg.split(":")[1]) in (3, 4)


def test_tab_indentation_names_the_line() -> None:
    with pytest.raises(InputError) as info:
        load_yaml("a:\n\tb: 1\n", "tab.yaml")
    assert info.value.message.startswith("tab.yaml:2: invalid YAML")


@pytest.mark.parametrize("text", ["? [1, 2]\n: v\n", "? {a: 1}\n: v\n", "~: v\n"])
def test_non_scalar_keys_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="keys must be plain scalars"):
        load_yaml(text, "k.yaml")


@pytest.mark.parametrize("text", ["a: !!python/name:os.system\n", "a: !custom 3\n"])
def test_unsafe_or_unknown_scalar_tags_are_refused(text: str) -> None:
    with pytest.raises(InputError) as info:
        load_yaml(text, "evil.yaml")
    assert info.value.message.startswith("evil.yaml:1: could not determine a constructor")


@pytest.mark.parametrize(
    "text", ["a: !!python/object/apply:os.system ['true']\n", "a: !custom [1]\n"]
)
def test_unsafe_or_unknown_collection_tags_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        load_yaml(text, "evil.yaml")


def test_scalars_are_typed() -> None:
    doc = load_yaml("i: 1\nf: 1.5\nb: true\nn: null\ns: '1'\n", "s.yaml")
    assert doc.data == {"i": 1, "f": 1.5, "b": True, "n": None, "s": "1"}
    assert type(doc.data["i"]) is int


def test_json_is_yaml() -> None:
    doc = load_yaml('{"a": [1, {"b": null}]}', "x.json")
    assert doc.data == {"a": [1, {"b": None}]}


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a:\n  b: 2\n", encoding="utf-8")
    doc = load_yaml_file(path)
    assert doc.source == str(path)
    assert doc.data == {"a": {"b": 2}}
    assert doc.line_of(("a", "b")) == 2


def test_load_yaml_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(InputError) as info:
        load_yaml_file(path)
    assert info.value.message == f"{path}: no such file"


def test_load_yaml_file_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(HarnessFileError) as info:
        load_yaml_file(path, HarnessFileError)
    assert info.value.message.startswith(f"{path}: cannot read")
    assert info.value.exit_code == 2


def test_load_yaml_file_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_yaml_file(tmp_path)
    assert info.value.message.startswith(f"{tmp_path}: cannot read")


def test_load_yaml_file_utf8(tmp_path: Path) -> None:
    path = tmp_path / "u.yaml"
    path.write_text("name: caf\u00e9 \u2615\n", encoding="utf-8")
    assert load_yaml_file(path).data == {"name": "caf\u00e9 \u2615"}


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    count: int


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    inner: _Inner
    items: list[_Inner] = []


def _message(text: str) -> str:
    doc = load_yaml(text, "m.yaml")
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate(doc.data)
    return validation_message(info.value, doc)


def test_validation_message_wrong_type() -> None:
    msg = _message("name: x\ninner:\n  count: many\n")
    assert msg.startswith("m.yaml:3: key 'inner.count': ")
    assert "integer" in msg


def test_validation_message_unknown_key() -> None:
    assert _message("name: x\ninner:\n  count: 1\n  extra: 2\n") == (
        "m.yaml:4: key 'inner.extra': unknown key"
    )


def test_validation_message_in_a_list() -> None:
    msg = _message("name: x\ninner: {count: 1}\nitems:\n  - {count: 1}\n  - {count: x}\n")
    assert msg.startswith("m.yaml:5: key 'items.1.count': ")


def test_validation_message_missing_key() -> None:
    msg = _message("name: x\n\ninner: {}\n")
    assert msg.startswith("m.yaml:3: key 'inner")
    assert msg.endswith("required key is missing")
