"""Cassettes: recorded model answers keyed by their normalised request.

A cassette is JSONL: a header ``{"cassette": 1, "normalisers": [{"pattern",
"replace"}, ...]}``, then one recording per line ``{"key", "request", "response",
"usage"}``. A request's key is the SHA-256 of the canonical JSON of its model, each
message's role and content, and its tool names — after every normaliser (a regular
expression and its replacement) was applied to each text, so volatile text such as
temporary paths and dates does not change the key. Recordings with the same key
are served in the order they were recorded; the order of different keys in the
file does not matter. Cassettes never hold secrets: request headers are not kept.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.agents.api import ReplayMiss
from lifeos.canonical import canonical_text, sha256_hex
from lifeos.errors import InputError
from lifeos.fsutil import atomic_write

__all__ = ["FORMAT_VERSION", "Cassette", "Normaliser", "Recording", "request_key"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Normaliser:
    """Replace every match of ``pattern`` with ``replace`` before keying a request."""

    pattern: str
    replace: str

    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return re.compile(self.pattern)


def _text(content: Any) -> Any:
    """Message content as keyed: a string, or the text parts of a list of parts."""
    if isinstance(content, list):
        return [
            part.get("text") if isinstance(part, dict) else part
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        ]
    return content


def key_material(
    request: Mapping[str, Any], normalisers: Iterable[re.Pattern[str] | Normaliser] = ()
) -> dict[str, Any]:
    """What the key covers: model, each message's role and content, tool names."""
    rules = [
        (n.compiled(), n.replace) if isinstance(n, Normaliser) else (n, "") for n in normalisers
    ]

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            for pattern, replace in rules:
                value = pattern.sub(replace, value)
            return value
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    messages = []
    for message in request.get("messages") or []:
        entry: dict[str, Any] = {
            "content": norm(_text(message.get("content"))),
            "role": message.get("role"),
        }
        if message.get("tool_calls"):
            entry["tool_calls"] = [
                {
                    "arguments": norm(c.get("function", {}).get("arguments")),
                    "name": c.get("function", {}).get("name"),
                }
                for c in message["tool_calls"]
            ]
        messages.append(entry)
    tools = sorted(
        str(t.get("function", {}).get("name") or t.get("name")) for t in request.get("tools") or []
    )
    return {"messages": messages, "model": request.get("model"), "tools": tools}


def request_key(
    request: Mapping[str, Any], normalisers: Iterable[re.Pattern[str] | Normaliser] = ()
) -> str:
    """The SHA-256 hex key of a chat-completions request."""
    return sha256_hex(key_material(request, normalisers))


@dataclass
class Recording:
    """One recorded answer."""

    key: str
    request: dict[str, Any]
    response: dict[str, Any]
    """The OpenAI chat-completions response body (non-streaming form)."""
    usage: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSONL line's object."""
        return {
            "key": self.key,
            "request": self.request,
            "response": self.response,
            "usage": self.usage,
        }


@dataclass
class Cassette:
    """Recordings by key, served in order; thread-safe."""

    normalisers: list[Normaliser] = field(default_factory=list)
    recordings: dict[str, list[Recording]] = field(default_factory=dict)
    source: str = "(memory)"
    _served: dict[str, int] = field(default_factory=dict, repr=False)
    _misses: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def patterns(self) -> list[Normaliser]:
        """The normalisers in order."""
        return self.normalisers

    def key(self, request: Mapping[str, Any]) -> str:
        """The key of ``request`` under this cassette's normalisers."""
        return request_key(request, self.normalisers)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read a cassette file; a malformed one is an InputError naming the line."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"{path}: cannot read the cassette: {exc.strerror or exc}") from None
        if not lines:
            raise InputError(f"{path}: empty cassette (no header line)")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:1: the header is not JSON: {exc.msg}") from None
        if not isinstance(header, dict) or header.get("cassette") != FORMAT_VERSION:
            raise InputError(f'{path}:1: not a LifeOS cassette (want {{"cassette": 1, ...}})')
        normalisers = []
        for rule in header.get("normalisers") or []:
            if not isinstance(rule, dict) or set(rule) != {"pattern", "replace"}:
                raise InputError(f"{path}:1: a normaliser needs exactly 'pattern' and 'replace'")
            try:
                re.compile(rule["pattern"])
            except re.error as exc:
                raise InputError(f"{path}:1: bad normaliser pattern: {exc}") from None
            normalisers.append(Normaliser(rule["pattern"], rule["replace"]))
        cassette = cls(normalisers=normalisers, source=str(path))
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(item, dict) or not {"key", "request", "response"} <= set(item):
                raise InputError(f"{path}:{number}: a recording needs key, request, response")
            cassette.add(
                Recording(item["key"], item["request"], item["response"], item.get("usage") or {})
            )
        return cassette

    def add(self, recording: Recording) -> None:
        """Append a recording (after others with the same key)."""
        with self._lock:
            self.recordings.setdefault(recording.key, []).append(recording)

    def record(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Recording:
        """Record an answer to ``request`` (headers are never part of it)."""
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        rec = Recording(self.key(request), dict(request), dict(response), dict(usage or {}))
        self.add(rec)
        return rec

    def next(self, request: Mapping[str, Any]) -> Recording:
        """The next recording for ``request``; ReplayMiss names the key if there is none."""
        key = self.key(request)
        with self._lock:
            items = self.recordings.get(key, [])
            index = self._served.get(key, 0)
            if index >= len(items):
                self._misses.append({"key": key, "served_before": index})
                detail = "all its recordings were served" if items else "never recorded"
                raise ReplayMiss(key, detail)
            self._served[key] = index + 1
            return items[index]

    def calls(self) -> dict[str, Any]:
        """What was served: counts per key, and the requests that had no recording."""
        with self._lock:
            return {
                "served": dict(sorted(self._served.items())),
                "total": sum(self._served.values()),
                "unmatched": list(self._misses),
            }

    def reset(self) -> None:
        """Serve every key from its first recording again."""
        with self._lock:
            self._served.clear()
            self._misses.clear()

    def dump(self, path: Path) -> None:
        """Write the cassette (temporary file, then rename)."""
        lines = [
            canonical_text(
                {
                    "cassette": FORMAT_VERSION,
                    "normalisers": [
                        {"pattern": n.pattern, "replace": n.replace} for n in self.normalisers
                    ],
                }
            )
        ]
        with self._lock:
            for key in sorted(self.recordings):
                lines.extend(canonical_text(r.to_dict()) for r in self.recordings[key])
        atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
