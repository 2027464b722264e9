"""Indented JSON, byte-identical to ``json.dumps(obj, indent=2, sort_keys=True,
ensure_ascii=False, allow_nan=False)``, several times faster on large values.

The standard library encodes with ``indent`` in pure Python, one generator step per
value; a ``--json`` answer with ten thousand rows spends most of a command's time
there. Here only containers that hold other containers are walked in Python; every
*leaf* container (a dict or list of scalars, such as one row) is encoded by the C
encoder, with the item separator carrying the newline and indentation of its level.
A JSON string never holds a raw newline (it is escaped), so the separator cannot
appear inside a value.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["indented"]

_INDENT = 2
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


def _reference(obj: Any) -> str:
    return json.dumps(obj, indent=_INDENT, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _fail(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_make = getattr(json.encoder, "c_make_encoder", None)
_encoders: dict[int, Callable[[Any, int], tuple[str, ...]]] = {}


def _leaf_encoder(level: int) -> Callable[[Any, int], tuple[str, ...]]:
    """The C encoder whose item separator starts a new line at ``level``."""
    enc = _encoders.get(level)
    if enc is None:
        assert _make is not None
        sep = ",\n" + " " * (_INDENT * level)
        enc = _make(
            None,  # no circular-reference markers: a leaf holds no containers
            _fail,
            json.encoder.encode_basestring,
            None,
            ": ",
            sep,
            True,  # sort_keys
            False,  # skipkeys
            False,  # allow_nan
        )
        _encoders[level] = enc
    return enc


def _is_leaf(obj: dict[str, Any] | list[Any] | tuple[Any, ...]) -> bool:
    values = obj.values() if isinstance(obj, dict) else obj
    return all(isinstance(v, _SCALARS) for v in values)


def _rows(obj: list[Any] | tuple[Any, ...], level: int) -> str | None:
    """A list of non-empty leaf dicts (a table) encoded in one C call, or None.

    Encoded with the row-level separator, the text between two rows is ``}`` +
    separator + ``{``; inside a row a separator is always followed by a key's ``"``,
    and a string never ends right before a separator with ``}``, so one replacement
    finds exactly the row boundaries.
    """
    scalar = _SCALAR_TYPES.issuperset
    if not all(type(row) is dict and row and scalar(map(type, row.values())) for row in obj):
        return None
    inner = " " * (_INDENT * (level + 1))
    row_inner = " " * (_INDENT * (level + 2))
    sep = ",\n" + row_inner
    text = "".join(_leaf_encoder(level + 2)(obj, 0))[2:-2]
    text = text.replace("}" + sep + "{", "\n" + inner + "},\n" + inner + "{\n" + row_inner)
    close = "\n" + " " * (_INDENT * level)
    return "[\n" + inner + "{\n" + row_inner + text + "\n" + inner + "}" + close + "]"


def _walk(obj: Any, level: int, out: list[str]) -> None:
    if not isinstance(obj, dict | list | tuple) or not obj:
        # A scalar or an empty container: the C encoder's text, unwrapped.
        out.append("".join(_leaf_encoder(level)([obj], 0))[1:-1])
        return
    inner = " " * (_INDENT * (level + 1))
    close = "\n" + " " * (_INDENT * level)
    if not isinstance(obj, dict):
        table = _rows(obj, level)
        if table is not None:
            out.append(table)
            return
    if _is_leaf(obj):
        text = "".join(_leaf_encoder(level + 1)(obj, 0))
        out.append(text[0] + "\n" + inner + text[1:-1] + close + text[-1])
        return
    sep = "\n" + inner
    if isinstance(obj, dict):
        out.append("{")
        for key in sorted(obj):
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            out.append(sep + json.encoder.encode_basestring(key) + ": ")
            _walk(obj[key], level + 1, out)
            sep = ",\n" + inner
        out.append(close + "}")
    else:
        out.append("[")
        for item in obj:
            out.append(sep)
            _walk(item, level + 1, out)
            sep = ",\n" + inner
        out.append(close + "]")


def indented(obj: Any) -> str:
    """``obj`` as JSON indented by two spaces with sorted keys, non-ASCII kept.

    Raises:
        TypeError: a value that is not JSON, or a non-string key.
        ValueError: NaN or an infinity.
    """
    if _make is None:  # no C encoder: the standard library's own output
        return _reference(obj)
    out: list[str] = []
    _walk(obj, 0, out)
    return "".join(out)
