"""Start reading the working tree's change before the command line is even parsed.

``lifeos gate check`` spends most of its time waiting for git to hash the working tree.
The command's own start-up (click, the policy model, the rules) is CPU work that needs
no git, so the entry point calls :func:`start` first for the plain form of the command
(the working tree against HEAD, no ``--base`` or ``--head``): git runs on a thread while
the rest loads, and the command picks the read up with :func:`take`. It is exactly the
read the command would make itself — the same functions, the same arguments — so an
error surfaces the same way; only the waiting overlaps.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lifeos.policy.gitread import ChangeSet
    from lifeos.repo import RepoContext

__all__ = ["Prefetch", "start", "take"]


class Prefetch:
    """A read of the working tree against HEAD, running on a thread."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self._found = threading.Event()
        self._where: RepoContext | None = None
        self._change: ChangeSet | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="lifeos-gate-prefetch")
        self._thread.daemon = True
        self._thread.start()

    def _read(self) -> None:
        try:
            from lifeos.repo import detect_repo

            self._where = detect_repo(self.cwd)
            self._found.set()
            if self._where.in_git:
                from lifeos.policy.gitread import read_change

                where = self._where
                self._change = read_change(where.root, "HEAD", None, base_commit=where.head)
        except BaseException as exc:  # handed to the command's thread
            self._error = exc
        finally:
            self._found.set()

    def where(self) -> RepoContext:
        """The repository (waits for its detection only, not for the read)."""
        self._found.wait()
        if self._where is None:
            assert self._error is not None
            raise self._error
        return self._where

    def change(self) -> ChangeSet:
        """The change read (waits for git); re-raises the read's error."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._change is not None
        return self._change

    def drain(self) -> None:
        """Let git finish (its temporary index is removed), whatever happened."""
        self._thread.join()


_pending: list[Prefetch] = []


def start(args: Sequence[str]) -> None:
    """Begin reading for ``lifeos gate check ARGS`` when ARGS keep the default change."""
    if any(a.startswith(("--base", "--head", "--help")) for a in args):
        return
    prefetch = Prefetch(Path.cwd())
    _pending.append(prefetch)
    atexit.register(prefetch.drain)  # a command that ends early still lets git clean up


def take(cwd: Path, base: str, head: str | None) -> Prefetch | None:
    """The read started for this command, if it reads what the command asks for."""
    if not _pending:
        return None
    prefetch = _pending.pop()
    if base != "HEAD" or head is not None or prefetch.cwd != cwd:
        with contextlib.suppress(BaseException):
            prefetch.drain()
        return None
    return prefetch
