"""Canonical JSON and the one hash function every LifeOS hash goes through.

Canonical form: keys sorted, no insignificant white space, UTF-8, no NaN or
Infinity, only JSON types (dict with str keys, list/tuple, str, int, float,
bool, None). Anything else is refused with :class:`CanonicalError` rather than
coerced, so two different values can never share a canonical encoding.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from lifeos.errors import CanonicalError

__all__ = ["canonical_json", "canonical_text", "pretty_json", "sha256_hex", "stable_uuid"]

# Namespace for every deterministic UUIDv5 LifeOS derives (run ids, event ids).
LIFEOS_NAMESPACE = uuid.UUID("6c1f0e0a-7d2b-5b8e-9a51-4c1f05e0b001")

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _check(obj: Any, path: str) -> None:
    """Refuse values that json would coerce silently (non-str keys, NaN)."""
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
    _check(obj, "")
    return _ENCODER.encode(obj)


def canonical_json(obj: Any) -> bytes:
    """Return the canonical JSON encoding of ``obj`` as UTF-8 bytes."""
    return canonical_text(obj).encode("utf-8")


def sha256_hex(obj: Any) -> str:
    """Return the SHA-256 hex digest of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def stable_uuid(*parts: str) -> str:
    """Return a UUIDv5 derived from ``parts`` in the LifeOS namespace."""
    return str(uuid.uuid5(LIFEOS_NAMESPACE, "\x1f".join(parts)))


def pretty_json(obj: Any) -> str:
    """Return ``obj`` as indented JSON with sorted keys (the CLI's ``--json`` form)."""
    _check(obj, "")
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
