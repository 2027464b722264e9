"""State deltas: what changed between two JSON states, and how to replay it.

Checkpoints store these instead of full state copies. Operations:

- ``{"op": "set", "path": [...], "value": v}``: set a key (the root when the path is empty);
- ``{"op": "del", "path": [...]}``: remove a key;
- ``{"op": "extend", "path": [...], "values": [...]}``: append to a list that only grew.

Objects are compared key by key; lists either grew at the end or are replaced.
Values are JSON trees; both directions copy them (``copy_json``), so a delta never
shares a mutable part with the state it came from or is applied to.

:func:`diff` compares with Python's ``==``, for which ``1``, ``1.0`` and ``true`` are
equal and so are ``0.0`` and ``-0.0``, though their canonical JSON differs. With
``exact=True`` it compares canonical text instead (slower): :func:`advance` takes the
fast diff and falls back on the exact one for what it missed.
"""

from __future__ import annotations

from typing import Any

from lifeos.canonical import canonical_text, copy_json, encode_checked

__all__ = ["advance", "apply_delta", "diff"]


def _same(a: Any, b: Any, exact: bool) -> bool:
    """Same type and ``==``; with ``exact``, also the same canonical JSON."""
    if type(a) is not type(b) or a != b:
        return False
    return not exact or canonical_text(a) == canonical_text(b)


def diff(
    old: Any, new: Any, path: tuple[str, ...] = (), *, exact: bool = False
) -> list[dict[str, Any]]:
    """Return the operations that turn ``old`` into ``new``.

    Values of the same type that Python finds equal count as unchanged; with ``exact``
    they must also have the same canonical JSON (``1`` and ``true`` inside a list differ).
    """
    if type(old) is dict and type(new) is dict:
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "del", "path": [*path, key]})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "set", "path": [*path, key], "value": copy_json(value)})
            elif old[key] is not value and not _same(old[key], value, exact):
                ops.extend(diff(old[key], value, (*path, key), exact=exact))
        return ops
    if (
        type(old) is list
        and type(new) is list
        and len(new) > len(old)
        and _same(new[: len(old)], old, exact)
    ):
        return [{"op": "extend", "path": list(path), "values": copy_json(new[len(old) :])}]
    if _same(old, new, exact):
        return []
    return [{"op": "set", "path": list(path), "value": copy_json(new)}]


def advance(old: Any, new: Any, new_text: str) -> tuple[list[dict[str, Any]], Any]:
    """Return the operations that turn ``old`` into ``new``, and ``old`` with them applied.

    ``new_text`` is ``canonical_text(new)``; the state returned has that same canonical
    text: the fast :func:`diff` is checked by encoding the result once, and what it
    missed (values ``==`` finds equal though their JSON differs) is added from an exact
    diff. ``old`` is changed in place and must be built from canonical values.
    """
    ops = diff(old, new)
    old = apply_delta(old, ops)
    if encode_checked(old) != new_text:
        more = diff(old, new, exact=True)
        old = apply_delta(old, more)
        ops.extend(more)
    return ops, old


def apply_delta(state: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply ``ops`` to ``state`` in place where possible; return the new state."""
    for op in ops:
        path = op["path"]
        if not path:
            if op["op"] == "set":
                state = copy_json(op["value"])
            elif op["op"] == "extend":
                state.extend(copy_json(op["values"]))
            continue
        parent = state
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op["op"] == "set":
            parent[last] = copy_json(op["value"])
        elif op["op"] == "del":
            del parent[last]
        elif op["op"] == "extend":
            parent[last].extend(copy_json(op["values"]))
        else:
            raise ValueError(f"unknown delta operation {op['op']!r}")
    return state
