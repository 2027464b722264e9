"""Canonical JSON and the one hash function every LifeOS hash goes through.

Canonical form: keys sorted, no insignificant white space, UTF-8, no NaN or
Infinity, only JSON types (dict with str keys, list/tuple, str, int, float,
bool, None). Anything else is refused with :class:`CanonicalError` rather than
coerced, so two different values can never share a canonical encoding.

The hot path (every checkpoint, ledger entry and step digest goes through it)
checks a value with one walk that builds no paths and encodes it with the C
encoder made once; only a refused value is walked again, to name where it fails.
:func:`copy_json` copies a JSON tree without ``copy.deepcopy``'s memo.
"""

from __future__ import annotations

import copy
import hashlib
import json
import json.encoder
import uuid
from collections.abc import Callable
from typing import Any

from lifeos.errors import CanonicalError

__all__ = [
    "canonical_json",
    "canonical_text",
    "copy_json",
    "encode_checked",
    "pretty_json",
    "sha256_hex",
    "stable_uuid",
]

# Namespace for every deterministic UUIDv5 LifeOS derives (run ids, event ids).
LIFEOS_NAMESPACE = uuid.UUID("6c1f0e0a-7d2b-5b8e-9a51-4c1f05e0b001")
_NAMESPACE_BYTES = LIFEOS_NAMESPACE.bytes
# A UUID's variant nibble by the digest's nibble: its top two bits become 10 (RFC 4122).
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)

# Immutable JSON leaves: never copied, checked by type alone (floats also by the encoder).
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _make_encode() -> Callable[[Any], str]:
    """The canonical encoder as one call.

    ``JSONEncoder.encode`` builds a new C encoder on every call; this builds it once
    (without circular-reference markers: a cyclic value fails the walk that comes
    first). Falls back to ``_ENCODER.encode`` when the C encoder is missing or does
    not give the same text.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    try:
        c_encode = make(
            None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )
    except TypeError:  # another signature
        return _ENCODER.encode

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))

    try:
        encode(float("nan"))
    except ValueError:
        pass  # refused, as it must be
    else:
        return _ENCODER.encode
    sample = {"b": [1, 2.5, None, True, "é\n"], "a": {"z": -0.0, "y": (1e300, "x")}, "": 10**30}
    return encode if encode(sample) == _ENCODER.encode(sample) else _ENCODER.encode


_encode = _make_encode()


def _plain(obj: Any) -> bool:
    """True if ``obj`` is made only of JSON types with string keys (floats unchecked)."""
    t = type(obj)
    if t is dict:
        for key, value in obj.items():
            if type(key) is not str:
                return False
            if type(value) not in _LEAVES and not _plain(value):
                return False
        return True
    if t is list or t is tuple:
        for value in obj:
            if type(value) not in _LEAVES and not _plain(value):
                return False
        return True
    return t in _LEAVES


def _check(obj: Any, path: str) -> None:
    """Refuse values that json would coerce silently (non-str keys, NaN), naming where."""
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:
        return
    if t is float:
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise CanonicalError(f"{path or '$'}: NaN and Infinity are not JSON")
        return
    if t is dict:
        for key, value in obj.items():
            if type(key) is not str:
                raise CanonicalError(f"{path or '$'}: object key {key!r} is not a string")
            _check(value, f"{path}.{key}" if path else key)
        return
    if t is list or t is tuple:
        for i, value in enumerate(obj):
            _check(value, f"{path}[{i}]")
        return
    raise CanonicalError(f"{path or '$'}: {t.__name__} is not a JSON type")


def canonical_text(obj: Any) -> str:
    """Return the canonical JSON text of ``obj``.

    Raises:
        CanonicalError: ``obj`` holds a non-JSON value, a non-string key, NaN or Infinity.
    """
    if _plain(obj):
        try:
            return _encode(obj)
        except ValueError:  # NaN or Infinity: _check names where
            pass
    _check(obj, "")
    # Reached only for a value the encoder refuses on its own (an int too long to print).
    return _ENCODER.encode(obj)


def encode_checked(obj: Any) -> str:
    """Return the canonical JSON text of ``obj`` without checking it first.

    Only for values built from parts :func:`canonical_text` accepted (copies, deltas
    applied to them): a non-string key or a subclass would be encoded, not refused.
    """
    return _encode(obj)


def canonical_json(obj: Any) -> bytes:
    """Return the canonical JSON encoding of ``obj`` as UTF-8 bytes."""
    return canonical_text(obj).encode("utf-8")


def sha256_hex(obj: Any) -> str:
    """Return the SHA-256 hex digest of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def stable_uuid(*parts: str) -> str:
    """Return a UUIDv5 derived from ``parts`` in the LifeOS namespace.

    The same text as ``str(uuid.uuid5(LIFEOS_NAMESPACE, "\\x1f".join(parts)))``, formatted
    from the SHA-1 digest directly (version 5, RFC 4122 variant).
    """
    h = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def copy_json(value: Any) -> Any:
    """Return a deep copy of a JSON tree (dicts, lists, tuples and immutable leaves).

    Much cheaper than ``copy.deepcopy`` for such trees: leaves are shared, not
    copied. A value that holds anything else is copied with ``copy.deepcopy``, and so
    is one nested too deeply for recursion.
    """
    try:
        return _copy_tree(value)
    except RecursionError:
        return copy.deepcopy(value)


def _copy_tree(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return {k: v if type(v) in _LEAVES else _copy_tree(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _LEAVES else _copy_tree(v) for v in value]
    if t in _LEAVES:
        return value
    if t is tuple:
        return tuple(v if type(v) in _LEAVES else _copy_tree(v) for v in value)
    return copy.deepcopy(value)


def pretty_json(obj: Any) -> str:
    """Return ``obj`` as indented JSON with sorted keys (the CLI's ``--json`` form).

    Byte-identical to ``json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)``,
    encoded mostly by the C encoder (see :mod:`lifeos.indent_json`).
    """
    from lifeos.indent_json import indented

    _check(obj, "")
    return indented(obj)
