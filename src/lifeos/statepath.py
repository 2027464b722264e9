"""Dotted paths into workflow state: ``"daily.summary.count"``, ``"items.0.title"``.

A path component that is all digits indexes a list. Walking through anything
that is not an object (or a list, for an index) is an error, never a guess.
"""

from __future__ import annotations

from typing import Any

from lifeos.errors import InputError, ReasonCode

__all__ = ["MISSING", "StatePathError", "get_path", "parse_path", "set_path"]


class StatePathError(InputError):
    """A path that cannot be followed in the state it is applied to."""

    default_reason = ReasonCode.STATE_PATH_INVALID


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def parse_path(path: object) -> tuple[str, ...]:
    """Split a dotted path, refusing empty paths and empty components."""
    if not isinstance(path, str) or not path:
        raise InputError(f"a state path must be a non-empty string, not {path!r}")
    parts = tuple(path.split("."))
    if any(not p for p in parts):
        raise InputError(f"state path {path!r} has an empty component")
    return parts


def _index(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _step(container: Any, part: str, walked: str) -> Any:
    if isinstance(container, dict):
        return container.get(part, MISSING)
    if isinstance(container, list) and _index(part):
        i = int(part)
        return container[i] if i < len(container) else MISSING
    raise StatePathError(
        f"state path '{walked}' goes through a {type(container).__name__}, not an object"
    )


def get_path(state: Any, parts: tuple[str, ...]) -> Any:
    """Return the value at ``parts``, or MISSING when a key is absent."""
    current = state
    for depth, part in enumerate(parts):
        current = _step(current, part, ".".join(parts[: depth + 1]))
        if current is MISSING:
            return MISSING
    return current


def set_path(state: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    """Set the value at ``parts``, creating missing objects along the way."""
    current: Any = state
    for depth, part in enumerate(parts[:-1]):
        nxt = _step(current, part, ".".join(parts[: depth + 1]))
        if nxt is MISSING:
            if not isinstance(current, dict):
                raise StatePathError(f"list index '{part}' is out of range")
            nxt = current[part] = {}
        current = nxt
    last = parts[-1]
    if isinstance(current, dict):
        current[last] = value
    elif isinstance(current, list) and _index(last) and int(last) < len(current):
        current[int(last)] = value
    else:
        raise StatePathError(
            f"state path '{'.'.join(parts)}' goes through a {type(current).__name__}, not an object"
        )
