"""Reading a change with git under fixed settings: the half of the gate that needs no
policy, kept light so ``lifeos gate check`` can start it before anything else loads.

The change is read with ``git diff-tree -r -z --raw`` (rename and copy detection on,
``--find-copies-harder``, no external diff, no textconv) with global and system config
switched off, hooks off, and every setting that could change the output pinned on the
command line, so the user's config cannot change the verdict. Without ``head`` the
working tree is read: the tree ``git add -A`` would commit is built in a temporary index
(never the user's), LifeOS-owned paths left as in HEAD.

Git's output goes to memory files, not pipes (see :class:`GitRun`): the caller waits
once for the process and reads what it wrote, so a thread that waits for git needs
the interpreter only at the start and the end, not once per chunk of output while
another thread works, and a caller may start git, do other work, then collect.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from lifeos.errors import InputError

if TYPE_CHECKING:
    import subprocess

    from lifeos.policy.model import Policy

__all__ = [
    "LIFEOS_OWNED",
    "MODE_GITLINK",
    "MODE_NONE",
    "MODE_SYMLINK",
    "BlobInfo",
    "Change",
    "ChangeSet",
    "GateError",
    "GitOutput",
    "GitRun",
    "git_diff_command",
    "parse_raw_diff",
    "read_change",
    "start_blob_info",
    "worktree_tree",
]

MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"
MODE_NONE = "000000"
LIFEOS_OWNED = (
    ".lifeos",
    "artifacts/status",
    "artifacts/packets/status",
    "artifacts/evidence/openclaw",
)
"""Paths LifeOS writes in the user's checkout: never a change, never gated, never cleaned."""

# Settings pinned on every git call: config that could change what git reports.
_GIT_SETTINGS = (
    "core.quotePath=false",
    "core.hooksPath=/dev/null",
    "diff.renames=copies",
    "diff.external=",
    "diff.renameLimit=1000",
    "diff.relative=false",
    "diff.ignoreSubmodules=none",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "core.fileMode=true",
    "core.symlinks=true",
    "core.excludesFile=",
    "status.showUntrackedFiles=all",
)


class GateError(InputError):
    """The gate could not read the change: a bad revision, no commits, not a repository."""


def _display(path: str) -> str:
    """A path as text that is always valid UTF-8 (undecodable bytes as ``\\xNN``)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Change(NamedTuple):
    """One entry of ``git diff --raw`` (a named tuple: a large diff builds thousands)."""

    status: str
    """A, M, D, R, C or T (the score of R/C is in ``score``)."""
    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    path: str
    """The path after the change (before it for a delete)."""
    old_path: str | None = None
    """The source of a rename or copy."""
    score: int | None = None

    def paths(self) -> tuple[str, ...]:
        """Every path the entry names: both for a rename or copy."""
        return (self.old_path, self.path) if self.old_path is not None else (self.path,)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths made valid UTF-8)."""
        out: dict[str, Any] = {
            "status": self.status,
            "path": _display(self.path),
            "old_mode": self.old_mode,
            "new_mode": self.new_mode,
        }
        if self.old_path is not None:
            out["old_path"] = _display(self.old_path)
        return out


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "LC_ALL": "C",
        }
    )
    env.update(extra or {})
    return env


def _git_base(root: Path) -> list[str]:
    args = ["git", "-C", str(root)]
    for setting in _GIT_SETTINGS:
        args += ["-c", setting]
    return args


def git_diff_command(root: Path, base: str, head: str) -> list[str]:
    """The exact diff command the gate runs (``base`` and ``head`` are object ids)."""
    return [
        *_git_base(root),
        "diff-tree",
        "-r",
        "-z",
        "--raw",
        "--no-abbrev",
        "-M",
        "-C",
        "--find-copies-harder",
        "--no-ext-diff",
        "--no-textconv",
        "--ignore-submodules=none",
        base,
        head,
        "--",
    ]


class GitOutput(NamedTuple):
    """What a finished git process left: its exit status and everything it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes


def _memory_file() -> int:
    """A file descriptor for a nameless read-write file (in memory where the system
    offers ``memfd_create``, else an unlinked temporary file)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("lifeos-git", os.MFD_CLOEXEC)
    path = _temp_path("io")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.unlink(path)
    return fd


def _read_all(fd: int) -> bytes:
    size, pos, chunks = os.fstat(fd).st_size, 0, []
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


class GitRun:
    """A git process, started at once, its stdout and stderr written to memory files.

    ``subprocess.run(..., capture_output=True)`` pumps two pipes in a loop that takes
    the interpreter once per chunk; a thread doing that while another thread works
    waits up to a switch interval (5 ms) per chunk. Here git writes to files, so
    :meth:`result` is one wait and two reads. The process runs exactly as
    ``subprocess.run`` would run it (same arguments, environment, inherited stdin
    unless ``stdin`` is given, file descriptors closed, signals restored).

    Raises:
        GateError: git cannot be started.
    """

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        cwd: Path | None = None,
    ) -> None:
        import subprocess

        self._done: GitOutput | None = None
        self._files: list[int] = []
        try:
            out, err = self._file(), self._file()
            source = None
            if stdin is not None:
                source = self._file()
                view = memoryview(stdin)
                while view:
                    view = view[os.write(source, view) :]
                os.lseek(source, 0, os.SEEK_SET)
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                args, env=env, cwd=cwd, stdin=source, stdout=out, stderr=err
            )
        except OSError as exc:
            self._close()
            raise GateError(f"cannot run git: {exc}") from None
        if source is not None:
            os.close(source)
            self._files.remove(source)

    def _file(self) -> int:
        fd = _memory_file()
        self._files.append(fd)
        return fd

    def _close(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files.clear()

    def result(self) -> GitOutput:
        """Wait for git (once; later calls return the same output).

        An interruption while waiting kills git, as ``subprocess.run`` does.
        """
        if self._done is None:
            try:
                code = self._proc.wait()
            except BaseException:
                self._proc.kill()
                self._proc.wait()
                self._close()
                raise
            out, err = self._files
            self._done = GitOutput(code, _read_all(out), _read_all(err))
            self._close()
        return self._done


def _run(
    args: list[str], env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> GitOutput:
    return GitRun(args, _git_env(env), stdin).result()


def _checked(args: list[str], env: Mapping[str, str] | None = None) -> bytes:
    proc = _run(args, env)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip() or "git failed"
        raise GateError(f"git {args[len(_git_base(Path('.')))]}: {message}")
    return proc.stdout


def _resolve(root: Path, rev: str, what: str, kind: str = "commit") -> str:
    proc = _run([*_git_base(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{{kind}}}"])
    if proc.returncode != 0 or rev.startswith("-"):
        if what == "base" and rev == "HEAD":
            raise GateError("the repository has no commits yet: nothing to gate against")
        raise GateError(f"--{what} {rev!r}: no such {kind} in the repository")
    return proc.stdout.decode().strip()


def _temp_path(suffix: str) -> Path:
    """A fresh path in the temporary folder. ``tempfile`` is not imported for this: it
    pulls in ``shutil`` and the compression modules, a visible share of a short
    command's start-up."""
    folder = os.environ.get("TMPDIR") or "/tmp"
    return Path(folder) / f"lifeos-gate-{os.getpid()}-{os.urandom(8).hex()}.{suffix}"


def _temp_index() -> Path:
    """A fresh path for a temporary index (git creates the file)."""
    return _temp_path("index")


def worktree_tree(root: Path) -> str:
    """The tree ``git add -A`` would commit now, built in a temporary index.

    LifeOS-owned paths (:data:`LIFEOS_OWNED`) stay as they are in HEAD. The user's
    index is never touched.
    """
    index = _temp_index()
    env = {"GIT_INDEX_FILE": str(index)}
    base = _git_base(root)
    try:
        _checked([*base, "read-tree", "HEAD"], env)
        excludes = [f":(top,exclude){p}" for p in LIFEOS_OWNED]
        _checked([*base, "add", "-A", "--", ".", *excludes], env)
        return _checked([*base, "write-tree"], env).decode().strip()
    finally:
        for leftover in (index, index.with_name(index.name + ".lock")):
            leftover.unlink(missing_ok=True)


def parse_raw_diff(data: bytes) -> list[Change]:
    """Parse ``git diff --raw -z`` output.

    Raises:
        GateError: the output is not in the raw format.
    """
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    plain = _parse_pairs(fields)
    return plain if plain is not None else _parse_entries(fields)


_new = tuple.__new__


def _parse_pairs(fields: list[str]) -> list[Change] | None:
    """The usual output, without renames or copies: every entry is a header and one
    path. None when that is not so (a rename, a copy, anything unexpected): then the
    general parser reads it, or says where it is not in the raw format."""
    if len(fields) % 2:
        return None
    changes: list[Change] = []
    append = changes.append
    for meta, path in zip(fields[0::2], fields[1::2], strict=True):
        parts = meta.split(" ")
        if len(parts) != 5 or meta[:1] != ":":
            return None
        old_mode, new_mode, old_sha, new_sha, status = parts
        letter = status[:1]
        if letter == "R" or letter == "C":
            return None
        # tuple.__new__ builds the same named tuple as Change(...) would, without
        # the Python-level __new__ that handles its keywords and defaults.
        append(_new(Change, (letter, old_mode[1:], new_mode, old_sha, new_sha, path, None, None)))
    return changes


def _parse_entries(fields: list[str]) -> list[Change]:
    changes: list[Change] = []
    i, n = 0, len(fields)
    while i < n:
        meta = fields[i]
        parts = meta[1:].split(" ") if meta[:1] == ":" else []
        if len(parts) != 5 or i + 1 >= n:
            raise GateError(f"unexpected git diff output near {_display(meta[:80])!r}")
        old_mode, new_mode, old_sha, new_sha, status = parts
        letter, score = status[:1], status[1:]
        if letter in ("R", "C"):
            if i + 2 >= n:
                raise GateError("unexpected git diff output: a rename without a target")
            changes.append(
                Change(
                    letter,
                    old_mode,
                    new_mode,
                    old_sha,
                    new_sha,
                    fields[i + 2],
                    fields[i + 1],
                    int(score) if score.isdigit() else None,
                )
            )
            i += 3
        else:
            changes.append(Change(letter, old_mode, new_mode, old_sha, new_sha, fields[i + 1]))
            i += 2
    return changes


class BlobInfo(NamedTuple):
    """What the rules may need to know about new blobs."""

    sizes: dict[str, int]
    """Size by blob id (when the policy limits size)."""
    targets: dict[str, bytes]
    """Symlink target by blob id (when the policy allows symlinks)."""


def start_blob_info(
    root: Path, changes: Sequence[Change], policy: Policy
) -> Callable[[], BlobInfo]:
    """Start reading the sizes of the new blobs (when the policy limits size) and the
    symlink targets (when the policy allows symlinks), each with one ``git cat-file``
    batch; the returned call waits for git and parses (once; later calls return the
    same answer).

    Raises:
        GateError: git cannot be started.
    """
    base = _git_base(root)
    sizes_run = links_run = None
    try:
        if policy.max_file_bytes is not None:
            shas = sorted(
                {c.new_sha for c in changes if c.new_mode not in (MODE_NONE, MODE_GITLINK)}
            )
            if shas:
                sizes_run = GitRun(
                    [*base, "cat-file", "--batch-check"], _git_env(), "\n".join(shas).encode()
                )
        if policy.allow_symlinks:
            links = sorted({c.new_sha for c in changes if c.new_mode == MODE_SYMLINK})
            if links:
                links_run = GitRun(
                    [*base, "cat-file", "--batch"], _git_env(), "\n".join(links).encode()
                )
    except BaseException:
        if sizes_run is not None:
            sizes_run.result()
        raise
    answer: list[BlobInfo] = []

    def finish() -> BlobInfo:
        if not answer:
            sizes = _parse_sizes(sizes_run.result().stdout) if sizes_run is not None else {}
            targets = _parse_batch(links_run.result().stdout) if links_run is not None else {}
            answer.append(BlobInfo(sizes, targets))
        return answer[0]

    return finish


def _parse_sizes(out: bytes) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in out.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
    return sizes


def _parse_batch(out: bytes) -> dict[str, bytes]:
    targets: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].decode("ascii", "replace").split()
        pos = end + 1
        if len(header) != 3 or not header[2].isdigit():
            continue
        n = int(header[2])
        targets[header[0]] = out[pos : pos + n]
        pos += n + 1
    return targets


def _blob_info(
    root: Path, changes: Sequence[Change], policy: Policy
) -> tuple[dict[str, int], dict[str, bytes]]:
    """Sizes of the new blobs and symlink targets, read now (see :func:`start_blob_info`)."""
    info = start_blob_info(root, changes, policy)()
    return info.sizes, info.targets


class ChangeSet(NamedTuple):
    """A change as read from git, before any policy is applied (a named tuple: no
    ``dataclasses``, which costs the early read milliseconds to import)."""

    base: str
    """The base commit id."""
    head: str | None
    """The head commit id, or None for the working tree."""
    tree: str
    """The tree compared with ``base`` (the head's, or the one the working tree would commit)."""
    changes: tuple[Change, ...]


def read_change(
    root: Path, base: str = "HEAD", head: str | None = None, base_commit: str | None = None
) -> ChangeSet:
    """Read the change from ``base`` to ``head`` (a commit) or to the working tree.

    Needs no policy, so a caller can read while it loads one. ``base_commit``, when the
    caller already resolved ``base`` to a commit id, saves resolving it again.

    Raises:
        GateError: not a repository, no commits, or a revision that does not exist.
    """
    if base_commit is None:
        if not (root / ".git").exists():
            probe = _run([*_git_base(root), "rev-parse", "--git-dir"])
            if probe.returncode != 0:
                raise GateError(f"{root}: not a git repository")
        base_commit = _resolve(root, base, "base")
    head_commit: str | None = None
    if head is not None:
        head_commit = _resolve(root, head, "head")
        tree = _resolve(root, head_commit, "head", "tree")
    else:
        tree = worktree_tree(root)
    changes = parse_raw_diff(_checked(git_diff_command(root, base_commit, tree)))
    return ChangeSet(base_commit, head_commit, tree, tuple(changes))
