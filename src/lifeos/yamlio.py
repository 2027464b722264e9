"""YAML input with line numbers, so every error names the file, line and key.

Only PyYAML's safe constructors are used. Duplicate keys are refused rather
than silently overwritten. Validation errors from pydantic models are turned
into one line naming the key and the line it is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeos.errors import InputError, LifeOSError

if TYPE_CHECKING:
    import pydantic

__all__ = ["YamlDocument", "load_yaml", "load_yaml_file", "validation_message"]

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

Loc = tuple[str | int | float | bool, ...]


@dataclass
class YamlDocument:
    """Parsed YAML data and the line of every key and list item in it."""

    data: Any
    source: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Return the line of ``loc`` or of its nearest enclosing key."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def load_yaml(text: str, source: str, error: type[LifeOSError] = InputError) -> YamlDocument:
    """Parse ``text``; raise ``error`` naming ``source`` and the line on a problem."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{where}: invalid YAML: {problem}") from None
    doc = YamlDocument(data=None, source=source)
    if node is None:
        return doc
    constructor = yaml.SafeLoader("")
    doc.lines[()] = node.start_mark.line + 1

    def build(n: Any, loc: Loc) -> Any:
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode) and n.tag not in _PLAIN_TAGS:
            raise error(f"{source}:{n.start_mark.line + 1}: tag {n.tag!r} is not allowed")
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = build(key_node, loc)
                if not isinstance(key, str | int | float | bool) or key is None:
                    raise error(
                        f"{source}:{key_node.start_mark.line + 1}: keys must be plain scalars"
                    )
                if key in out:
                    raise error(f"{source}:{key_node.start_mark.line + 1}: duplicate key '{key}'")
                doc.lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = build(value_node, (*loc, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            items = []
            for i, item in enumerate(n.value):
                doc.lines[(*loc, i)] = item.start_mark.line + 1
                items.append(build(item, (*loc, i)))
            return items
        try:
            value = constructor.construct_object(n, deep=True)
        except yaml.YAMLError as exc:
            raise error(f"{source}:{n.start_mark.line + 1}: {exc}") from None
        if not isinstance(value, str | int | float | bool | type(None)) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise error(
                f"{source}:{n.start_mark.line + 1}: {n.value!r} is not a plain JSON value "
                "(quote dates and timestamps)"
            )
        return value

    doc.data = build(node, ())
    return doc


def load_yaml_file(path: Path, error: type[LifeOSError] = InputError) -> YamlDocument:
    """Read and parse a YAML (or JSON) file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    return load_yaml(text, str(path), error)


def validation_message(exc: pydantic.ValidationError, doc: YamlDocument, data: Any = None) -> str:
    """One line for the first validation error: file, line, dotted key, problem.

    ``data`` is what was validated when it differs from the document (overrides applied).
    """
    first = exc.errors(include_url=False)[0]
    loc: Loc = tuple(p for p in first["loc"] if isinstance(p, str | int))
    # pydantic adds the union member or the tag name to locations; keep only real keys.
    real: list[str | int | float | bool] = []
    node = doc.data if data is None else data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            real.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            real.append(part)
        elif first["type"] in ("extra_forbidden", "missing") and part == loc[-1]:
            real.append(part)
    key = ".".join(str(p) for p in real) or "(top level)"
    line = doc.line_of(tuple(real))
    where = f"{doc.source}:{line}" if line else doc.source
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    return f"{where}: key '{key}': {msg}"
