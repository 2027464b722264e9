"""Path safety and root matching for the diff gate.

Every path the gate sees is checked here before any root comparison: absolute
paths, ``..``, ``.git`` in any case or hidden behind Unicode-ignorable code points,
NTFS short names (``GIT~1``), alternate data streams, trailing dots or spaces,
backslashes, control characters and bytes that are not UTF-8 are all unsafe.
Roots are compared component by component on NFC-normalised, case-folded
components with ignorable code points stripped, so ``docsx/`` never matches
``docs/`` while ``DOCS/`` and ``do\u200ccs/`` do.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "IGNORABLE",
    "Root",
    "RootSet",
    "all_plain",
    "normalize_component",
    "path_key",
    "under_any",
    "unsafe_reason",
]

# Code points git itself ignores when it compares a name with ".git" on HFS+.
IGNORABLE = frozenset(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)
_STRIP = {cp: None for cp in IGNORABLE}
_SHORT_NAME = re.compile(r"[^~]{1,6}~[0-9]+(\.[^.]*)?")
_DRIVE = re.compile(r"^[A-Za-z]:")
# C0 and C1 controls, DEL, and lone surrogates (bytes that were not UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Paths that are plainly safe: ASCII components that neither start nor end with a dot
# and hold no space, '~', ':' or backslash (so no '.git', '..', short name or stream).
_PLAIN_PART = r"[A-Za-z0-9_+,=@-](?:[A-Za-z0-9_.+,=@-]*[A-Za-z0-9_+,=@-])?"
_PLAIN = re.compile(rf"{_PLAIN_PART}(?:/{_PLAIN_PART})*")
# For all_plain: the characters of plain paths with their separators, and the pairs
# that make an empty component or one starting or ending with a dot.
_PLAIN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+,=@-/\n"
_NOT_PLAIN_PAIRS = ("/.", "./", "\n.", ".\n", "//", "\n/", "/\n", "\n\n")


@functools.lru_cache(maxsize=4096)
def normalize_component(component: str) -> str:
    """One path component as roots compare it: ignorables stripped, NFC, case-folded."""
    if component.isascii():
        return component.lower()
    text = unicodedata.normalize("NFC", component.translate(_STRIP))
    return unicodedata.normalize("NFC", text.casefold())


@functools.lru_cache(maxsize=65536)
def path_key(path: str) -> tuple[str, ...]:
    """The normalised components of a ``/``-separated repository path."""
    if path.isascii():  # no ignorables, NFC is the identity: case-folding is lower()
        return tuple(path.lower().split("/"))
    return tuple(normalize_component(c) for c in path.split("/"))


def _component_reason(component: str) -> str | None:
    if component == "":
        return "empty path component"
    if component in (".", ".."):
        return f"'{component}' component"
    if component[-1] in ". " and component not in (".", ".."):
        return "trailing dot or space in a component"
    if ":" in component:
        return "':' in a component (drive or alternate data stream)"
    key = normalize_component(component)
    if key.rstrip(". ") == ".git":
        return "'.git' component"
    if "~" in key and _SHORT_NAME.fullmatch(key):
        return "NTFS short name component"
    return None


def unsafe_reason(path: str) -> str | None:
    """Why ``path`` is unsafe for the gate, or None when it is safe.

    Args:
        path: a repository-relative path as git reports it (decoded with
            ``surrogateescape``, so bytes that are not UTF-8 show up as surrogates).
    """
    if not path:
        return "empty path"
    if _PLAIN.fullmatch(path):
        return None
    if not path.isascii() and _SURROGATE.search(path):
        return "path is not valid UTF-8"
    if _CONTROL.search(path):
        return "control character in path"
    if "\\" in path:
        return "backslash in path"
    if path.startswith("/") or _DRIVE.match(path):
        return "absolute path"
    for component in path.split("/"):
        reason = _component_reason(component)
        if reason is not None:
            return reason
    return None


def _lines(paths: Sequence[str]) -> str | None:
    """``paths`` one a line, or None when there are none or one holds a newline (then
    lines and paths are not the same)."""
    text = "\n".join(paths)
    return text if paths and text.count("\n") == len(paths) - 1 else None


def all_plain(paths: Sequence[str]) -> bool:
    """Whether every path is plainly safe (:func:`unsafe_reason` is None for each),
    seen at once over all of them; False when some path needs a closer look.

    Plain (see ``_PLAIN``): only the characters of ``_PLAIN_CHARS``, and no component
    empty or starting or ending with a dot, which here means no ``/`` or newline (the
    paths' separator) next to a dot, another separator or an end.
    """
    text = _lines(paths)
    if not text or not text.isascii() or text.encode().translate(None, _PLAIN_CHARS):
        return False
    return not (text[0] in "./\n" or text[-1] in "./\n" or any(b in text for b in _NOT_PLAIN_PAIRS))


@dataclass(frozen=True)
class Root:
    """A policy root: a directory (``docs/``) or one file (``lifeos.yaml``)."""

    text: str
    key: tuple[str, ...]
    is_dir: bool

    @classmethod
    def parse(cls, text: str) -> Root:
        """Parse a root as written in a policy; a trailing ``/`` makes it a directory.

        Raises:
            ValueError: the root is not a safe relative path.
        """
        is_dir = text.endswith("/")
        body = text[:-1] if is_dir else text
        reason = unsafe_reason(body)
        if reason is not None:
            raise ValueError(f"root {text!r}: {reason}")
        return cls(text, path_key(body), is_dir)

    def contains(self, key: tuple[str, ...]) -> bool:
        """Whether the path with normalised components ``key`` is this root or under it."""
        n = len(self.key)
        if self.is_dir:
            return len(key) > n and key[:n] == self.key
        return key == self.key


def under_any(key: tuple[str, ...], roots: tuple[Root, ...]) -> Root | None:
    """The first root in ``roots`` that contains ``key``, or None."""
    for root in roots:
        if root.contains(key):
            return root
    return None


class RootSet:
    """Roots matched as :func:`under_any` matches them, with lookups cached by directory.

    A directory root contains a path exactly when it contains (or is) the path's
    parent directory, so the directory-root answer is computed once per parent and a
    file root is one dictionary lookup. A diff with thousands of paths in a few
    directories costs a few dictionary lookups per path, whatever the number of roots.
    """

    __slots__ = ("_by_parent", "_dirs", "_files", "_at_once", "roots")

    def __init__(self, roots: Iterable[Root]) -> None:
        self.roots = tuple(roots)
        self._at_once: tuple[list[str], list[str]] | None = None
        self._files: dict[tuple[str, ...], int] = {}
        for i, root in enumerate(self.roots):
            if not root.is_dir:
                self._files.setdefault(root.key, i)
        self._dirs = [(i, root.key) for i, root in enumerate(self.roots) if root.is_dir]
        self._by_parent: dict[tuple[str, ...], int] = {}

    def __bool__(self) -> bool:
        return bool(self.roots)

    def first(self, key: tuple[str, ...]) -> Root | None:
        """The first root (in policy order) that contains ``key``, or None."""
        parent = key[:-1]
        index = self._by_parent.get(parent)
        if index is None:
            depth = len(parent)
            index = next(
                (i for i, rk in self._dirs if depth >= len(rk) and parent[: len(rk)] == rk), -1
            )
            self._by_parent[parent] = index
        file_index = self._files.get(key, -1) if self._files else -1
        if file_index >= 0 and (index < 0 or file_index < index):
            index = file_index
        return self.roots[index] if index >= 0 else None

    # A whole diff at once. For ASCII paths the key is the lower-cased path split at
    # "/", so a directory root contains a path exactly when the lower-cased path
    # starts with the root's key joined by "/" and a "/", and a file root when it is
    # that text. With each path between two newlines of its own, both are substring
    # searches. Paths with other characters, or a newline, are not told at once.

    def _lines(self, paths: Sequence[str]) -> str | None:
        text = "\n" + "\n\n".join(paths) + "\n"
        if not paths or text.count("\n") != 2 * len(paths) or not text.isascii():
            return None
        return text.lower()

    def _texts(self) -> tuple[list[str], list[str]]:
        """Each directory root as "\\nKEY/" and each file root as "\\nKEY\\n", without
        roots inside another directory root (so no path is counted twice)."""
        if self._at_once is None:
            dirs = sorted({"/".join(k) + "/" for _, k in self._dirs})
            dirs = [d for d in dirs if not any(d.startswith(o) for o in dirs if o != d)]
            files = sorted({"/".join(k) for k in self._files})
            files = [f for f in files if not any(f.startswith(d) for d in dirs)]
            self._at_once = (["\n" + d for d in dirs], ["\n" + f + "\n" for f in files])
        return self._at_once

    def contains_none(self, paths: Sequence[str]) -> bool:
        """Whether no root contains any of ``paths``, seen at once; False when some
        root does, or when that cannot be told at once (then ask :meth:`first`)."""
        if not self.roots:
            return True
        text = self._lines(paths)
        if text is None:
            return False
        dirs, files = self._texts()
        return not any(d in text for d in dirs) and not any(f in text for f in files)

    def contains_all(self, paths: Sequence[str]) -> bool:
        """Whether some root contains each of ``paths``, seen at once; False when one
        is outside every root, or when that cannot be told at once.

        Each path is counted once at most (it starts with at most one of the
        directory texts, none of which is inside another, or is one file root's), so
        the counts add up to the number of paths exactly when every path is in some
        root.
        """
        text = self._lines(paths)
        if text is None:
            return False
        dirs, files = self._texts()
        return sum(map(text.count, dirs)) + sum(map(text.count, files)) == len(paths)
