"""Indented JSON, byte-identical to ``json.dumps(obj, indent=2, sort_keys=True,
ensure_ascii=False, allow_nan=False)``, several times faster on large values.

The standard library encodes with ``indent`` in pure Python, one generator step per
value; a ``--json`` answer with ten thousand rows spends most of a command's time
there. Here only containers that hold other containers are walked in Python; every
*leaf* container (a dict or list of scalars, such as one row) is encoded by the C
encoder, with the item separator carrying the newline and indentation of its level.
A JSON string never holds a raw newline (it is escaped), so the separator cannot
appear inside a value.

A large list of objects can also be given by columns, as a :class:`Table`: it is
encoded exactly as the list of objects would be, without building one dict per row.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Table", "indented"]

_INDENT = 2
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
_TEXT_TYPES = frozenset((str, type(None)))
_encode_string = json.encoder.encode_basestring


def _reference(obj: Any) -> str:
    return json.dumps(obj, indent=_INDENT, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _fail(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_make = getattr(json.encoder, "c_make_encoder", None)
_encoders: dict[int, Callable[[Any, int], tuple[str, ...]]] = {}


def _leaf_encoder(level: int) -> Callable[[Any, int], tuple[str, ...]]:
    """The C encoder whose item separator starts a new line at ``level`` (level -1:
    a NUL, for :func:`_encode_each`)."""
    enc = _encoders.get(level)
    if enc is None:
        assert _make is not None
        sep = ",\n" + " " * (_INDENT * level) if level >= 0 else "\0"
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


class Table:
    """A list of objects given by columns: ``columns[key][i]`` is the value of ``key`` in
    object ``i``, and None leaves ``key`` out of that object. Values are JSON scalars
    (a string, a number, a boolean); every column has one value per object.

    :func:`indented` encodes it byte for byte as it encodes :meth:`objects`.
    """

    __slots__ = ("columns", "length")

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        self.columns = dict(columns)
        lengths = {len(values) for values in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError("every column of a table needs one value per row")
        self.length = lengths.pop() if lengths else 0

    def objects(self) -> list[dict[str, Any]]:
        """The list of objects the table stands for."""
        keys = list(self.columns)
        return [
            {k: v for k, v in zip(keys, row, strict=True) if v is not None}
            for row in zip(*self.columns.values(), strict=True)
        ]


def _expand(obj: Any) -> Any:
    """``obj`` with every :class:`Table` replaced by its list of objects."""
    if isinstance(obj, Table):
        return obj.objects()
    if isinstance(obj, dict):
        return {k: _expand(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_expand(v) for v in obj]
    return obj


def _encode_each(values: list[Any]) -> list[str]:
    """Each scalar of ``values`` as JSON text, in one C call: the items are separated
    by NUL, which the encoder writes inside a string only as ``\\u0000``."""
    text = "".join(_leaf_encoder(-1)(values, 0))
    return text[1:-1].split("\0")


def _table(table: Table, level: int) -> str | None:
    """``table`` encoded at ``level``, or None when it is not all scalars (then it is
    encoded as its list of objects)."""
    n = table.length
    if n == 0:
        return "[]"
    inner = " " * (_INDENT * (level + 1))
    field = ",\n" + " " * (_INDENT * (level + 2))
    columns: list[list[str]] = []
    first_always = False  # whether the first key written is in every row
    for key in sorted(table.columns):
        values = list(table.columns[key])
        absent = values.count(None)
        if absent == n:
            continue
        types = set(map(type, values))
        if not isinstance(key, str) or not _SCALAR_TYPES.issuperset(types):
            return None
        if not columns:
            first_always = not absent
        # Each value's text with the field separator and key before it ("" when absent).
        prefix = (field if columns or absent else field[1:]) + _encode_string(key) + ": "
        distinct = set(values) if types <= _TEXT_TYPES else None
        if distinct is not None and len(distinct) * 4 <= n:
            # Few different strings (a status, a mode): each encoded once. (Strings
            # only: 1, 1.0 and True are one key of a dict but three JSON texts.)
            known = {v: "" if v is None else prefix + _encode_string(v) for v in distinct}
            columns.append(list(map(known.__getitem__, values)))
        elif absent:
            texts = _encode_each(values)
            columns.append(
                ["" if v is None else prefix + t for v, t in zip(values, texts, strict=True)]
            )
        else:
            columns.append([prefix + t for t in _encode_each(values)])
    rows = list(map("".join, zip(*columns, strict=True))) if columns else [""] * n
    if "" in rows:  # an empty object is written {}: rare, left to the general walk
        return None
    close = "\n" + inner + "}"
    body = (close + ",\n" + inner + "{").join(rows)
    if not first_always:
        # Rows start with a field separator, of which only the newline belongs after
        # an opening brace. "{," followed by a newline appears nowhere else: a
        # value's text ends with a quote, a digit or a letter, and a string holds no
        # raw newline.
        body = body.replace("{,\n", "{\n")
        body = body[1:] if body.startswith(",") else body
    return "[\n" + inner + "{" + body + close + "\n" + " " * (_INDENT * level) + "]"


def _walk(obj: Any, level: int, out: list[str]) -> None:
    if isinstance(obj, Table):
        text = _table(obj, level)
        if text is None:
            _walk(obj.objects(), level, out)
        else:
            out.append(text)
        return
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
        return _reference(_expand(obj))
    out: list[str] = []
    _walk(obj, 0, out)
    return "".join(out)
