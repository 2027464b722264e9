"""Isolated git worktrees for runs, commits made exactly, and the external-change guard.

One run builds its task in its own linked worktree, ``<.lifeos>/worktrees/<run_id>``,
on the branch ``lifeos/<task_id>-<run_id[:8]>`` created at the run's baseline commit.
Every git command goes through :class:`HardenedGit`: hooks, fsmonitor and signing off,
global and system config ignored, no inherited ``GIT_*`` variable, a fixed identity and
commit dates from the injected clock, so the same inputs give the same commit ids and
nothing in the user's configuration runs code or changes a result.

Each phase's output is a commit on the run's branch (:func:`commit_tree`, a
compare-and-swap on the branch), so another machine can rebuild the worktree from it
(:func:`create_worktree` then :func:`checkout_commit`).

:func:`snapshot_outside` records what a run must never change outside its worktree
(the user's checkout, index and HEAD, ``.git/config``, hooks, ``.git/info/`` and refs
other than ``refs/heads/lifeos/``); :meth:`OutsideSnapshot.diff` names what changed,
which the spine turns into ``EXTERNAL_CHANGE``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.clock import Clock, SystemClock
from lifeos.errors import InputError, ReasonCode
from lifeos.fsutil import atomic_write
from lifeos.policy.gitread import LIFEOS_OWNED  # the one list of LifeOS-owned paths

__all__ = [
    "BRANCH_PREFIX",
    "LIFEOS_OWNED",
    "HardenedGit",
    "OutsideSnapshot",
    "Worktree",
    "WorktreeError",
    "checkout_commit",
    "commit_tree",
    "create_worktree",
    "list_run_worktrees",
    "remove_worktree",
    "snapshot_outside",
]

BRANCH_PREFIX = "lifeos/"
"""Every run branch lives under ``refs/heads/lifeos/``."""

_DEFAULT_IDENTITY = ("LifeOS", "lifeos@localhost")
_TIMEOUT_S = 300.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")

# Settings pinned on every git call. Hooks and the fsmonitor hook would run code from the
# user's repository; signing would call gpg (and change commit ids); automatic gc and
# maintenance would start background work; the commit encoding header would change ids.
_SAFE_SETTINGS = (
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.quotePath=false",
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "i18n.commitEncoding=UTF-8",
    "advice.detachedHead=false",
)
_NO_HOOKS = "core.hooksPath=/dev/null"


class WorktreeError(InputError):
    """A worktree or commit operation that git or LifeOS refused; one line, with a code."""

    default_reason = ReasonCode.GIT_FAILED


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _display(path: str) -> str:
    """A path as text that is always valid UTF-8 (undecodable bytes as ``\\xNN``)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _git_date(moment: dt.datetime) -> str:
    """ISO 8601 in UTC to the second, the form git reads for its date variables."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
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
    env.update(extra)
    return env


class HardenedGit:
    """Runs git on one repository with every setting that could run code or change a
    result pinned: hooks off (``core.hooksPath=/dev/null``), fsmonitor off, no signing,
    no global or system config, no prompt, ``LC_ALL=C``, no inherited ``GIT_*``
    variable. Author and committer are ``identity``; commands that make commits read
    their dates from ``clock`` (``dated=True``), so commits are deterministic.
    """

    def __init__(
        self,
        repo_root: Path,
        clock: Clock,
        identity: tuple[str, str] = _DEFAULT_IDENTITY,
    ) -> None:
        name, email = identity
        if not name.strip() or not email.strip() or any(c in name + email for c in "<>\n\0"):
            raise WorktreeError(f"unusable git identity {identity!r}", ReasonCode.INVALID_INPUT)
        self.repo_root = Path(os.path.abspath(repo_root))
        self.clock = clock
        self.identity = (name, email)
        self._env = _clean_env(
            {
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name,
                "GIT_COMMITTER_EMAIL": email,
            }
        )

    def command(self, *args: str, cwd: Path | None = None, hooks_off: bool = True) -> list[str]:
        """The full argument list for ``git args`` run in ``cwd`` (the repository root
        by default)."""
        out = ["git", "-C", str(cwd or self.repo_root)]
        for setting in (_NO_HOOKS, *_SAFE_SETTINGS) if hooks_off else _SAFE_SETTINGS:
            out += ["-c", setting]
        out.extend(args)
        return out

    def env(self, dated: bool = False, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment git runs with (dates read from the clock when ``dated``)."""
        env = dict(self._env)
        if dated:
            stamp = _git_date(self.clock.now())
            env["GIT_AUTHOR_DATE"] = stamp
            env["GIT_COMMITTER_DATE"] = stamp
        env.update(extra or {})
        return env

    def completed(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        dated: bool = False,
        hooks_off: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git and return the finished process whatever its exit status.

        Raises:
            WorktreeError: git could not be started or did not finish in time.
        """
        try:
            return subprocess.run(
                self.command(*args, cwd=cwd, hooks_off=hooks_off),
                env=self.env(dated),
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WorktreeError(f"git {args[0]} did not finish in {_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise WorktreeError(f"cannot run git: {exc}") from None

    def run_bytes(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        dated: bool = False,
    ) -> bytes:
        """Run git and return its stdout.

        Raises:
            WorktreeError: git failed (``GIT_FAILED``, its first error line in the message).
        """
        proc = self.completed(*args, cwd=cwd, stdin=stdin, dated=dated)
        if proc.returncode != 0:
            detail = _one_line(proc.stderr.decode("utf-8", "replace")) or "no message"
            raise WorktreeError(f"git {args[0]} failed (exit {proc.returncode}): {detail}")
        return proc.stdout

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        dated: bool = False,
    ) -> str:
        """Run git and return its stdout as text (undecodable bytes kept as surrogates).

        Raises:
            WorktreeError: git failed.
        """
        return self.run_bytes(*args, cwd=cwd, stdin=stdin, dated=dated).decode(
            "utf-8", "surrogateescape"
        )

    def resolve(self, rev: str, kind: str = "commit") -> str | None:
        """The full id of ``rev`` peeled to ``kind``, or None when there is none."""
        if not rev or rev.startswith("-") or any(c in rev for c in "\n\0"):
            return None
        proc = self.completed("rev-parse", "--verify", "--quiet", f"{rev}^{{{kind}}}")
        out = proc.stdout.decode("ascii", "replace").strip()
        return out if proc.returncode == 0 and _HEX.match(out) else None

    def ref(self, name: str) -> str | None:
        """The object id a full ref name points to, or None when it does not exist."""
        proc = self.completed("rev-parse", "--verify", "--quiet", f"{name}^{{object}}")
        out = proc.stdout.decode("ascii", "replace").strip()
        return out if proc.returncode == 0 and _HEX.match(out) else None


@dataclass(frozen=True)
class Worktree:
    """A run's linked worktree."""

    path: Path
    """``<.lifeos>/worktrees/<run_id>``, absolute with symlinks resolved (as git lists it)."""
    branch: str
    """The branch name without ``refs/heads/``: ``lifeos/<task_id>-<run_id[:8]>``."""
    baseline: str
    """The commit id the branch was created at ("" when LifeOS has no record of it)."""
    run_id: str


# ---------------------------------------------------------------------------- worktrees


@dataclass(frozen=True)
class _Entry:
    path: Path
    branch: str | None
    """The full ref checked out, None when detached or bare."""
    prunable: bool


def _worktree_entries(git: HardenedGit) -> list[_Entry]:
    raw = git.run("worktree", "list", "--porcelain", "-z")
    entries: list[_Entry] = []
    path: Path | None = None
    branch: str | None = None
    prunable = False
    for item in [*raw.split("\0"), ""]:
        if not item:
            if path is not None:
                entries.append(_Entry(path, branch, prunable))
            path, branch, prunable = None, None, False
        elif item.startswith("worktree "):
            path = Path(item[len("worktree ") :])
        elif item.startswith("branch "):
            branch = item[len("branch ") :]
        elif item == "prunable" or item.startswith("prunable "):
            prunable = True
    return entries


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _find_entry(entries: Sequence[_Entry], path: Path) -> _Entry | None:
    return next((e for e in entries if _same_path(e.path, path)), None)


def _check_id(value: str, what: str) -> None:
    if not _ID.match(value) or ".." in value or value.endswith((".", ".lock")):
        raise WorktreeError(
            f"{what} {value!r} cannot name a branch or a folder "
            "(letters, digits, '.', '_', '-'; up to 128)",
            ReasonCode.INVALID_INPUT,
        )


def _check_branch(git: HardenedGit, branch: str) -> None:
    proc = git.completed("check-ref-format", f"refs/heads/{branch}")
    if proc.returncode != 0 or branch.startswith("-"):
        raise WorktreeError(f"{branch!r} is not a valid branch name", ReasonCode.INVALID_INPUT)


def _meta_path(path: Path) -> Path:
    """Where LifeOS records a run worktree's baseline: ``.<run_id>.json`` beside it (a
    run id never starts with a dot, so the record never collides with a worktree)."""
    return path.parent / f".{path.name}.json"


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_meta_path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ensure_ignored(lifeos_dir: Path) -> None:
    """``.lifeos/`` ignores itself, so nothing under it shows in the user's status."""
    lifeos_dir.mkdir(parents=True, exist_ok=True)
    ignore = lifeos_dir / ".gitignore"
    if not ignore.exists():
        atomic_write(ignore, b"*\n")


def _is_ancestor(git: HardenedGit, older: str, newer: str) -> bool:
    return git.completed("merge-base", "--is-ancestor", older, newer).returncode == 0


def create_worktree(
    git: HardenedGit,
    lifeos_dir: Path,
    run_id: str,
    task_id: str,
    baseline: str,
    *,
    reuse: bool = False,
) -> Worktree:
    """Create the run's worktree at ``<lifeos_dir>/worktrees/<run_id>`` on a new branch
    ``lifeos/<task_id>-<run_id[:8]>`` at ``baseline``.

    With ``reuse`` (a resume), the run's own worktree is returned as it is when it
    exists at the expected branch; a worktree whose folder vanished, or a branch
    without its worktree (fetched from another machine), is checked out again.

    Raises:
        WorktreeError: ``BASELINE_MISSING`` when ``baseline`` is no commit here;
            ``WORKTREE_EXISTS`` when the path or branch exists and is not this run's
            to reuse; ``INVALID_INPUT`` for ids that cannot name a branch or folder;
            ``GIT_FAILED`` when git fails.
    """
    _check_id(run_id, "run id")
    _check_id(task_id, "task id")
    base = git.resolve(baseline)
    if base is None:
        raise WorktreeError(
            f"baseline {baseline!r} is not a commit in {git.repo_root}",
            ReasonCode.BASELINE_MISSING,
        )
    lifeos_dir = Path(os.path.realpath(lifeos_dir))  # git records worktrees by real path
    path = lifeos_dir / "worktrees" / run_id
    branch = f"{BRANCH_PREFIX}{task_id}-{run_id[:8]}"
    ref = f"refs/heads/{branch}"
    wt = Worktree(path, branch, base, run_id)

    entries = _worktree_entries(git)
    entry = _find_entry(entries, path)
    tip = git.ref(ref)
    present = os.path.lexists(path)
    if entry is None and tip is None and not present:
        _ensure_ignored(lifeos_dir)
        _write_meta(wt, task_id)
        try:
            git.run("worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), base)
        except WorktreeError:
            _meta_path(path).unlink(missing_ok=True)
            raise
        return wt

    if not reuse:
        what = "worktree" if entry is not None or present else "branch"
        where = str(path) if what == "worktree" else branch
        raise WorktreeError(f"{what} {where} already exists", ReasonCode.WORKTREE_EXISTS)
    _check_reusable(git, wt, entries, entry, tip)
    intact = entry is not None and not entry.prunable and path.is_dir()
    if present and not intact and not (path.is_dir() and not any(path.iterdir())):
        raise WorktreeError(f"{path} exists and is not a git worktree", ReasonCode.WORKTREE_EXISTS)
    _ensure_ignored(lifeos_dir)
    if not _read_meta(path):
        _write_meta(wt, task_id)
    if intact:
        return wt
    if tip is None:
        git.run("worktree", "add", "--quiet", "--force", "--force", "-b", branch, str(path), base)
    else:
        # --force twice: the branch may still be "checked out" in a stale registration
        # of this same path (its folder vanished in a crash).
        git.run("worktree", "add", "--quiet", "--force", "--force", str(path), branch)
    return wt


def _check_reusable(
    git: HardenedGit,
    wt: Worktree,
    entries: Sequence[_Entry],
    entry: _Entry | None,
    tip: str | None,
) -> None:
    ref = f"refs/heads/{wt.branch}"
    if entry is not None and entry.branch != ref:
        raise WorktreeError(
            f"worktree {wt.path} is at {entry.branch or 'a detached HEAD'}, not {ref}",
            ReasonCode.WORKTREE_EXISTS,
        )
    elsewhere = [e for e in entries if e.branch == ref and not _same_path(e.path, wt.path)]
    if elsewhere:
        raise WorktreeError(
            f"branch {wt.branch} is checked out in {elsewhere[0].path}",
            ReasonCode.WORKTREE_EXISTS,
        )
    recorded = _read_meta(wt.path).get("baseline")
    if recorded is not None and recorded != wt.baseline:
        raise WorktreeError(
            f"worktree {wt.path} was created at baseline {recorded}, not {wt.baseline}",
            ReasonCode.WORKTREE_EXISTS,
        )
    if tip is not None and not _is_ancestor(git, wt.baseline, tip):
        raise WorktreeError(
            f"branch {wt.branch} does not descend from baseline {wt.baseline}",
            ReasonCode.WORKTREE_EXISTS,
        )


def _write_meta(wt: Worktree, task_id: str) -> None:
    record = {"run_id": wt.run_id, "task_id": task_id, "branch": wt.branch, "baseline": wt.baseline}
    meta = _meta_path(wt.path)
    meta.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(meta, json.dumps(record, sort_keys=True).encode("utf-8") + b"\n")


def _guard_not_checkout(git: HardenedGit, path: Path) -> None:
    """Refuse a path that is the repository's root or holds it (never LifeOS's to remove)."""
    real, root = os.path.realpath(path), os.path.realpath(git.repo_root)
    if real == root or root.startswith(real.rstrip("/") + "/") or real == "/":
        raise WorktreeError(f"{path} is not a run worktree", ReasonCode.WORKTREE_INVALID)


def remove_worktree(git: HardenedGit, wt: Worktree, delete_branch: bool) -> None:
    """Remove the run's worktree (even with changes in it) and, when ``delete_branch``,
    its branch. Anything already gone is fine.

    Raises:
        WorktreeError: ``WORKTREE_INVALID`` for a path that is not a run worktree, or a
            branch outside ``lifeos/`` or checked out elsewhere; ``GIT_FAILED``.
    """
    _guard_not_checkout(git, wt.path)
    if delete_branch and not wt.branch.startswith(BRANCH_PREFIX):
        raise WorktreeError(
            f"branch {wt.branch} is not a run branch ({BRANCH_PREFIX}...)",
            ReasonCode.WORKTREE_INVALID,
        )
    entries = _worktree_entries(git)
    entry = _find_entry(entries, wt.path)
    if entry is not None:
        git.run("worktree", "remove", "--force", "--force", str(entry.path))
    if os.path.lexists(wt.path):
        if wt.path.parent.name != "worktrees" or wt.path.is_symlink():
            raise WorktreeError(
                f"{wt.path} is not a registered worktree; left in place",
                ReasonCode.WORKTREE_INVALID,
            )
        shutil.rmtree(wt.path)
    _meta_path(wt.path).unlink(missing_ok=True)
    if not delete_branch:
        return
    ref = f"refs/heads/{wt.branch}"
    users = [e for e in entries if e.branch == ref and e is not entry]
    if users:
        raise WorktreeError(
            f"branch {wt.branch} is checked out in {users[0].path}; kept",
            ReasonCode.WORKTREE_INVALID,
        )
    tip = git.ref(ref)
    if tip is not None:
        git.run("update-ref", "-d", ref, tip)


def list_run_worktrees(git: HardenedGit) -> list[Worktree]:
    """Every worktree on a ``lifeos/`` branch (folder vanished or not), sorted by path.

    The run id is the folder's name; the baseline comes from the record
    :func:`create_worktree` keeps beside it ("" when there is none).
    """
    out = []
    for entry in _worktree_entries(git):
        if entry.branch is None or not entry.branch.startswith(f"refs/heads/{BRANCH_PREFIX}"):
            continue
        baseline = _read_meta(entry.path).get("baseline")
        out.append(
            Worktree(
                entry.path,
                entry.branch[len("refs/heads/") :],
                baseline if isinstance(baseline, str) else "",
                entry.path.name,
            )
        )
    return sorted(out, key=lambda w: str(w.path))


# ------------------------------------------------------------------------------ commits


def commit_tree(git: HardenedGit, branch: str, tree: str, parent: str, message: str) -> str:
    """Commit exactly ``tree`` with the one parent ``parent`` and move ``branch`` from
    ``parent`` to the new commit (compare-and-swap: the branch must still be at
    ``parent``). Returns the new commit id.

    The author, committer and date come from ``git`` (its identity and clock), so the
    same tree, parent, message and clock reading give the same commit id. A worktree
    with ``branch`` checked out keeps its files and index; :func:`checkout_commit`
    aligns it.

    Raises:
        WorktreeError: ``BASELINE_MISSING`` when ``tree`` or ``parent`` is not here;
            ``INVALID_INPUT`` when they are objects of the wrong type or the branch name
            is invalid; ``BRANCH_MOVED`` when the branch is not at ``parent``;
            ``GIT_FAILED``.
    """
    _check_branch(git, branch)
    tree_id, parent_id = _objects_of_type(git, [(tree, "tree"), (parent, "commit")])
    body = message if message.endswith("\n") else message + "\n"
    new = git.run(
        "commit-tree", "--no-gpg-sign", tree_id, "-p", parent_id,
        stdin=body.encode("utf-8"), dated=True,
    ).strip()  # fmt: skip
    ref = f"refs/heads/{branch}"
    proc = git.completed("update-ref", "-m", f"lifeos: commit {new}", ref, new, parent_id)
    if proc.returncode != 0:
        current = git.ref(ref)
        if current != parent_id:
            where = f"is at {current}" if current else "does not exist"
            raise WorktreeError(
                f"branch {branch} {where}, expected {parent_id}", ReasonCode.BRANCH_MOVED
            )
        detail = _one_line(proc.stderr.decode("utf-8", "replace")) or "no message"
        raise WorktreeError(f"git update-ref failed: {detail}")
    return new


def _object_of_type(git: HardenedGit, rev: str, kind: str) -> str:
    """The full id of ``rev`` when it names an object of type ``kind`` (not peeled)."""
    return _objects_of_type(git, [(rev, kind)])[0]


def _objects_of_type(git: HardenedGit, wanted: Sequence[tuple[str, str]]) -> list[str]:
    """The full ids of the revisions in ``wanted`` — each must name an object of its
    kind (not peeled) — read with one ``cat-file --batch-check``."""
    for rev, kind in wanted:
        if not rev or rev.startswith("-") or any(c in rev for c in "\n\0"):
            raise WorktreeError(f"{kind} {rev!r} is not an object name", ReasonCode.INVALID_INPUT)
    stdin = "".join(f"{rev}\n" for rev, _ in wanted).encode()
    lines = git.run("cat-file", "--batch-check", stdin=stdin).splitlines()
    ids = []
    for (rev, kind), line in zip(wanted, [*lines, *[""] * len(wanted)], strict=False):
        out = line.split()
        if len(out) != 3 or not _HEX.match(out[0]):
            raise WorktreeError(
                f"{kind} {rev!r} is not in {git.repo_root}", ReasonCode.BASELINE_MISSING
            )
        if out[1] != kind:
            raise WorktreeError(f"{rev!r} is a {out[1]}, not a {kind}", ReasonCode.INVALID_INPUT)
        ids.append(out[0])
    return ids


def checkout_commit(git: HardenedGit, wt: Worktree, commit: str) -> str:
    """Move the run's worktree and branch to ``commit``: ``reset --hard`` there, then
    remove untracked files that are not ignored (LifeOS-owned paths are kept), so the
    worktree holds exactly the commit. Returns the full commit id.

    Raises:
        WorktreeError: ``BASELINE_MISSING`` when ``commit`` is not here;
            ``WORKTREE_INVALID`` when ``wt.path`` is not the root of a worktree on
            ``wt.branch`` (the user's checkout is never reset); ``GIT_FAILED``.
    """
    _guard_not_checkout(git, wt.path)
    target = git.resolve(commit)
    if target is None:
        raise WorktreeError(
            f"commit {commit!r} is not in {git.repo_root}", ReasonCode.BASELINE_MISSING
        )
    if not wt.path.is_dir():
        raise WorktreeError(f"worktree {wt.path} does not exist", ReasonCode.WORKTREE_INVALID)
    proc = git.completed(
        "rev-parse", "--show-toplevel", "--symbolic-full-name", "HEAD", cwd=wt.path
    )
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if (
        proc.returncode != 0
        or len(lines) != 2
        or not _same_path(Path(lines[0]), wt.path)
        or lines[1] != f"refs/heads/{wt.branch}"
    ):
        raise WorktreeError(
            f"{wt.path} is not a worktree on branch {wt.branch}", ReasonCode.WORKTREE_INVALID
        )
    git.run("reset", "--hard", "--quiet", target, "--", cwd=wt.path)
    keep = [arg for p in LIFEOS_OWNED for arg in ("-e", f"/{p}/")]
    git.run("clean", "-ffd", "--quiet", *keep, cwd=wt.path)
    return target


# ------------------------------------------------------------------ external-change guard


def _file_digest(path: Path) -> str:
    """A file's SHA-256 (a symlink's target, a folder as ``dir``, ``missing``)."""
    try:
        if path.is_symlink():
            target = os.readlink(path)
            return "link:" + hashlib.sha256(os.fsencode(target)).hexdigest()
        if path.is_dir():
            return "dir"
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def _walk_files(top: Path) -> Iterator[Path]:
    if not top.is_dir():
        return
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        base = Path(folder)
        for name in sorted(files):
            yield base / name
        for name in dirs:
            if (base / name).is_symlink():
                yield base / name


def _tree_digests(top: Path, label_root: Path) -> dict[str, str]:
    """Every file under ``top``: path (relative to ``label_root`` when inside it) ->
    SHA-256 plus whether it is executable (an executable hook runs, a sample does not)."""
    out: dict[str, str] = {}
    for path in _walk_files(top):
        try:
            mode = path.lstat().st_mode
        except OSError:
            mode = 0
        out[_label(path, label_root)] = f"{_file_digest(path)}:{'x' if mode & 0o111 else '-'}"
    return out


def _label(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return _display(text)


def _parse_status(raw: str) -> Iterator[tuple[str, str]]:
    """(path, entry without its path) for each ``status --porcelain=v2 -z`` entry."""
    items = raw.split("\0")
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if not item:
            continue
        kind = item[:2]
        if kind == "1 ":
            parts = item.split(" ", 8)
        elif kind == "2 ":
            parts = item.split(" ", 9)
            if i < len(items):
                parts[-1] += "\0" + items[i]  # the rename's source, kept in the entry
                i += 1
        elif kind == "u ":
            parts = item.split(" ", 10)
        elif kind in ("? ", "! "):
            parts = [item[:1], item[2:]]
        else:  # a header line (none without --branch); kept whole
            yield item, item
            continue
        path = parts[-1].split("\0", 1)[0]
        yield path, " ".join(parts[:-1]) + " " + parts[-1][len(path) :]


@dataclass(frozen=True)
class OutsideSnapshot:
    """What a run must not change outside its worktree, as of one moment.

    Paths are relative to the repository root (``.git/hooks/pre-commit``) where they
    are inside it, and always valid UTF-8.
    """

    head: str | None
    """HEAD's commit id, None before the first commit."""
    head_ref: str
    """The HEAD file's text (``ref: refs/heads/main`` or a commit id)."""
    index: Mapping[str, str]
    """The user's index file -> its SHA-256 (``missing`` when there is none)."""
    checkout: Mapping[str, str]
    """Each path ``git status`` lists (LifeOS-owned paths and the worktree left out)
    -> its status entry and the SHA-256 of its content in the checkout."""
    config: Mapping[str, str]
    """``.git/config`` (and ``config.worktree`` when present) -> SHA-256."""
    hooks: Mapping[str, str]
    """Every file under ``.git/hooks/`` (and a configured ``core.hooksPath``)."""
    info: Mapping[str, str]
    """Every file under ``.git/info/``."""
    refs: Mapping[str, str]
    """Every ref outside ``refs/heads/lifeos/`` -> the object it points to."""

    def diff(self, other: OutsideSnapshot) -> list[str]:
        """What changed from this snapshot to ``other``, one line per change, in a fixed
        order (empty when nothing did)."""
        out: list[str] = []
        if self.head != other.head:
            out.append(f"HEAD moved from {self.head or 'no commit'} to {other.head or 'no commit'}")
        if self.head_ref != other.head_ref:
            out.append(f"HEAD changed from {self.head_ref!r} to {other.head_ref!r}")
        out += _map_diff("index", self.index, other.index)
        for path in sorted(self.checkout.keys() | other.checkout.keys()):
            before, after = self.checkout.get(path), other.checkout.get(path)
            if before == after:
                continue
            if before is None and after is not None and after.startswith("? "):
                out.append(f"checkout file {path} added")
            else:
                out.append(f"checkout file {path} changed")
        out += _map_diff("config", self.config, other.config)
        out += _map_diff("hook", self.hooks, other.hooks)
        out += _map_diff("info", self.info, other.info)
        for name in sorted(self.refs.keys() | other.refs.keys()):
            before, after = self.refs.get(name), other.refs.get(name)
            if before == after:
                continue
            verb = "added" if before is None else "removed" if after is None else "moved"
            out.append(f"ref {name} {verb}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for a checkpoint, so a resumed run compares with the same snapshot)."""
        return {
            "head": self.head,
            "head_ref": self.head_ref,
            "index": dict(self.index),
            "checkout": dict(self.checkout),
            "config": dict(self.config),
            "hooks": dict(self.hooks),
            "info": dict(self.info),
            "refs": dict(self.refs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutsideSnapshot:
        """The snapshot :meth:`to_dict` described.

        Raises:
            WorktreeError: ``INVALID_INPUT`` when ``data`` is not such a description.
        """
        try:
            maps = {
                key: {str(k): str(v) for k, v in dict(data[key]).items()}
                for key in ("index", "checkout", "config", "hooks", "info", "refs")
            }
            head = data["head"]
            return cls(
                head=None if head is None else str(head),
                head_ref=str(data["head_ref"]),
                **maps,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WorktreeError(
                f"not an outside snapshot: {exc}", ReasonCode.INVALID_INPUT
            ) from None


def _map_diff(what: str, before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    out = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a != b:
            verb = "added" if a is None else "removed" if b is None else "changed"
            out.append(f"{what} {key} {verb}")
    return out


def snapshot_outside(repo_root: Path, worktree: Path | None) -> OutsideSnapshot:
    """Record everything a run must leave alone outside ``worktree`` (three git calls).

    ``repo_root`` is the user's checkout. The worktree (when inside the checkout) and
    LifeOS-owned paths are left out of the checkout's status; run branches
    (``refs/heads/lifeos/``) are left out of the refs.

    Raises:
        WorktreeError: ``repo_root`` is not a git checkout, or git fails.
    """
    root = Path(os.path.abspath(repo_root))
    git = HardenedGit(root, SystemClock())
    proc = git.completed(
        "rev-parse",
        "--absolute-git-dir",
        "--git-common-dir",
        "--git-path",
        "index",
        "--git-path",
        "hooks",
        "--verify",
        "--quiet",
        "HEAD",
        hooks_off=False,  # to learn the configured hooks folder; rev-parse runs none
    )
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 4:
        detail = _one_line(proc.stderr.decode("utf-8", "replace")) or "no output"
        raise WorktreeError(f"{root} is not a git checkout: {detail}")
    git_dir = Path(lines[0])
    common, index_path, hooks_path = (_under(root, Path(line)) for line in lines[1:4])
    head = lines[4] if len(lines) > 4 and _HEX.match(lines[4]) else None
    try:
        head_ref = (git_dir / "HEAD").read_text("utf-8", "surrogateescape").strip()
    except OSError:
        head_ref = "missing"

    excludes = [f":(top,exclude){p}" for p in LIFEOS_OWNED]
    if worktree is not None:
        try:
            inside = Path(os.path.abspath(worktree)).relative_to(root)
        except ValueError:
            inside = None
        if inside is not None and str(inside) != ".":
            excludes.append(f":(top,exclude,literal){inside.as_posix()}")
    status = git.run(
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--ignored=no",
        "--",
        ".",
        *excludes,
    )
    checkout: dict[str, str] = {}
    for path, entry in _parse_status(status):
        checkout[_display(path)] = f"{_display(entry)} {_file_digest(root / path)}"

    refs: dict[str, str] = {}
    listing = git.run("for-each-ref", "--format=%(objectname) %(refname)")
    for line in listing.splitlines():
        oid, _, name = line.partition(" ")
        if not name.startswith(f"refs/heads/{BRANCH_PREFIX}"):
            refs[_display(name)] = oid

    hooks = _tree_digests(common / "hooks", root)
    if not _same_path(hooks_path, common / "hooks") and hooks_path != Path(os.devnull):
        hooks.update(_tree_digests(hooks_path, root))
    config = {
        _label(p, root): _file_digest(p)
        for p in (common / "config", common / "config.worktree")
        if p.exists()
    }
    return OutsideSnapshot(
        head=head,
        head_ref=_display(head_ref),
        index={_label(index_path, root): _file_digest(index_path)},
        checkout=checkout,
        config=config,
        hooks=hooks,
        info=_tree_digests(common / "info", root),
        refs=refs,
    )


def _under(root: Path, path: Path) -> Path:
    """``path`` as git printed it (relative to ``root`` or absolute), made absolute."""
    return path if path.is_absolute() else root / path
