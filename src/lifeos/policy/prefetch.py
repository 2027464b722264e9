"""Start reading the working tree's change before the command line is even parsed.

``lifeos gate check`` spends most of its time waiting for git to hash the working tree.
The command's own start-up (click, the policy model, the rules) is CPU work that needs
no git, so the entry point calls :func:`start` first for the plain form of the command
(the working tree against HEAD, no ``--base`` or ``--head``): git runs on a thread while
the rest loads, and the command picks the read up with :func:`take`.

The thread imports nothing heavy before git starts (:mod:`lifeos.policy.gitread` and
what it needs), so git starts a few milliseconds into the process. Until the command
takes the read, the interpreter's switch interval is 0.5 ms instead of 5: the thread
needs the interpreter only for moments between git's steps, and would otherwise wait
up to 5 ms for each of them while the command's thread loads modules. It finds the
repository with the same git call as :func:`lifeos.repo.detect_repo`, then makes
exactly the read the command would make itself: the same function, the same arguments.
The command still finds the repository its own way, and :func:`take` hands over the
read only when it was made in that repository against that HEAD commit (otherwise
the command reads itself): the same read in the same place, so an error surfaces the
same way and only the waiting overlaps.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lifeos.policy.gitread import ChangeSet
    from lifeos.repo import RepoContext

__all__ = ["Prefetch", "start", "take"]

# The call lifeos.repo.detect_repo makes: top level, common dir, HEAD's commit.
_DETECT = ["git", "rev-parse", "--show-toplevel", "--git-common-dir", "HEAD"]
_HEX = frozenset("0123456789abcdef")


def _commit_id(text: str) -> bool:
    return len(text) in (40, 64) and _HEX.issuperset(text)


class Prefetch:
    """A read of the working tree against HEAD, running on a thread."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.root: Path | None = None
        """The repository the read is made in (None when none was started)."""
        self.head: str | None = None
        """The HEAD commit it reads against."""
        self._found = threading.Event()
        self._change: ChangeSet | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="lifeos-gate-prefetch")
        self._thread.daemon = True
        self._thread.start()

    def _read(self) -> None:
        try:
            from lifeos.policy.gitread import GitRun, read_change

            found = GitRun(_DETECT, cwd=self.cwd).result()  # as detect_repo runs it
            lines = found.stdout.decode("utf-8", "surrogateescape").splitlines()
            if len(lines) < 3 or not lines[0].startswith("/") or not _commit_id(lines[2]):
                return  # not a repository, or no commit yet: the command finds out itself
            self.root, self.head = Path(lines[0]), lines[2]
            self._found.set()
            self._change = read_change(self.root, "HEAD", None, base_commit=self.head)
        except BaseException as exc:  # handed to the command's thread
            self._error = exc
        finally:
            self._found.set()

    def matches(self, where: RepoContext) -> bool:
        """Whether the read is of ``where``'s working tree against its HEAD commit
        (waits for the repository to be found, not for the read)."""
        self._found.wait()
        return self.root is not None and self.root == where.root and self.head == where.head

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
_SWITCH_INTERVAL = 0.0005  # seconds, while a read is pending
_interval: list[float] = []  # the switch interval to put back


def start(args: Sequence[str]) -> None:
    """Begin reading for ``lifeos gate check ARGS`` when ARGS keep the default change."""
    if any(a.startswith(("--base", "--head", "--help", "-h")) for a in args):
        return
    if not _interval:
        _interval.append(sys.getswitchinterval())
        sys.setswitchinterval(_SWITCH_INTERVAL)
    prefetch = Prefetch(Path.cwd())
    _pending.append(prefetch)
    atexit.register(prefetch.drain)  # a command that ends early still lets git clean up


def take(where: RepoContext, base: str, head: str | None) -> Callable[[], ChangeSet] | None:
    """A call that returns the change read early for this command (or raises the
    read's error), or None when no read was started for it or it read something else
    (another repository or commit, or none: repository not found early)."""
    if _interval:
        sys.setswitchinterval(_interval.pop())
    if not _pending:
        return None
    prefetch = _pending.pop()
    if base != "HEAD" or head is not None or not prefetch.matches(where):
        with contextlib.suppress(BaseException):
            prefetch.drain()
        return None
    return prefetch.change
