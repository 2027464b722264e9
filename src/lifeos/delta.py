"""State deltas: what changed between two JSON states, and how to replay it.

Checkpoints store these instead of full state copies. Operations:

- ``{"op": "set", "path": [...], "value": v}``: set a key (the root when the path is empty);
- ``{"op": "del", "path": [...]}``: remove a key;
- ``{"op": "extend", "path": [...], "values": [...]}``: append to a list that only grew.

Objects are compared key by key; lists either grew at the end or are replaced.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["apply_delta", "diff"]


def diff(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Return the operations that turn ``old`` into ``new``."""
    if type(old) is dict and type(new) is dict:
        ops: list[dict[str, Any]] = []
        for key in old:
            if key not in new:
                ops.append({"op": "del", "path": [*path, key]})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "set", "path": [*path, key], "value": copy.deepcopy(value)})
            elif old[key] is not value and (type(old[key]) is not type(value) or old[key] != value):
                ops.extend(diff(old[key], value, (*path, key)))
        return ops
    if type(old) is list and type(new) is list and len(new) > len(old) and new[: len(old)] == old:
        return [{"op": "extend", "path": list(path), "values": copy.deepcopy(new[len(old) :])}]
    if type(old) is type(new) and old == new:
        return []
    return [{"op": "set", "path": list(path), "value": copy.deepcopy(new)}]


def apply_delta(state: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply ``ops`` to ``state`` in place where possible; return the new state."""
    for op in ops:
        path = op["path"]
        if not path:
            if op["op"] == "set":
                state = copy.deepcopy(op["value"])
            elif op["op"] == "extend":
                state.extend(copy.deepcopy(op["values"]))
            continue
        parent = state
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op["op"] == "set":
            parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "del":
            del parent[last]
        elif op["op"] == "extend":
            parent[last].extend(copy.deepcopy(op["values"]))
        else:
            raise ValueError(f"unknown delta operation {op['op']!r}")
    return state
