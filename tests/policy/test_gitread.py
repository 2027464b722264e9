"""The git half of the gate: git's output through memory files, the raw diff parser's
two ways, blob information, and the early read the console script starts."""

from __future__ import annotations

import os
import sys
from contextlib import chdir
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import git

from lifeos.policy import prefetch
from lifeos.policy.gitread import (
    Change,
    GateError,
    GitRun,
    _parse_entries,
    parse_raw_diff,
    read_change,
    start_blob_info,
)
from lifeos.policy.model import load_policy
from lifeos.repo import detect_repo

A, B, Z = "a" * 40, "b" * 40, "0" * 40


# --- GitRun: what subprocess.run(capture_output=True) would give ----------------------


def test_git_run_gives_exit_status_output_and_errors() -> None:
    script = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d * 3)"
    data = os.urandom(300_000)  # more than a pipe holds: nothing to pump
    done = GitRun([sys.executable, "-c", script], None, data).result()
    assert done.returncode == 0 and done.stdout == data * 3 and done.stderr == b""
    failed = GitRun([sys.executable, "-c", "import sys; sys.exit('no')"]).result()
    assert failed.returncode == 1 and failed.stdout == b"" and failed.stderr == b"no\n"


def test_git_run_waits_once() -> None:
    run = GitRun([sys.executable, "-c", "print('x')"])
    assert run.result() is run.result()


def test_git_run_without_the_program_is_a_gate_error(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="cannot run git"):
        GitRun([str(tmp_path / "no-such-git")])


# --- parse_raw_diff: the quick pass and the general one read the same -----------------

_PATH = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=8
)


@st.composite
def raw_entries(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        status = draw(st.sampled_from(["A", "M", "D", "T", "R100", "C075", "R", "X"]))
        modes = draw(st.sampled_from(["000000 100644", "100644 100755", "120000 160000"]))
        out += f":{modes} {A} {B} {status}\0".encode()
        paths = 2 if status[0] in "RC" else 1
        for _ in range(paths):
            out += draw(_PATH).encode() + draw(st.sampled_from([b"", b"\xff"])) + b"\0"
    return out


@given(raw_entries())
@settings(max_examples=400, deadline=None)
def test_quick_parse_reads_what_the_general_parser_reads(data: bytes) -> None:
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    parsed = parse_raw_diff(data)
    assert parsed == _parse_entries(fields)
    assert all(type(c) is Change for c in parsed)


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\0",
        b":100644 100644 " + A.encode() + b" " + B.encode() + b"\0src/a\0",  # four fields
        b":100644 100644 " + A.encode() + b" " + B.encode() + b" M\0",  # no path
        b"100644 100644 " + A.encode() + b" " + B.encode() + b" M M\0x\0",  # no colon
        b":100644 100644 " + A.encode() + b" " + A.encode() + b" R100\0old\0",  # no target
    ],
)
def test_output_not_in_the_raw_format_is_refused(data: bytes) -> None:
    with pytest.raises(GateError, match="unexpected git diff output"):
        parse_raw_diff(data)


# --- blob information, started before the rules and collected after -------------------


def test_blob_sizes_and_symlink_targets(git_repo: Path) -> None:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "big.py").write_text("x" * 1000)
    (git_repo / "src" / "link").symlink_to("big.py")
    change = read_change(git_repo)
    policy = load_policy({"profile": "code", "allow_symlinks": True, "max_file_bytes": 10})
    info = start_blob_info(git_repo, change.changes, policy)()
    by_path = {c.path: c.new_sha for c in change.changes}
    assert info.sizes[by_path["src/big.py"]] == 1000
    assert info.targets == {by_path["src/link"]: b"big.py"}
    nothing = start_blob_info(git_repo, change.changes, load_policy({"profile": "seed-v2"}))()
    assert nothing.sizes == {} and nothing.targets == {}


# --- the early read: handed over only for the same repository and HEAD ----------------


def _started(cwd: Path) -> prefetch.Prefetch:
    with chdir(cwd):
        prefetch.start([])
    assert len(prefetch._pending) == 1
    return prefetch._pending[-1]


def test_the_early_read_is_the_commands_read(git_repo: Path) -> None:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "a.py").write_text("a\n")
    early = _started(git_repo / "src")  # from a subdirectory: the same repository
    where = detect_repo(git_repo / "src")
    taken = prefetch.take(where, "HEAD", None)
    assert taken is not None and not prefetch._pending
    assert taken() == read_change(where.root, "HEAD", None, base_commit=where.head)
    assert early.root == where.root and early.head == where.head


def test_the_early_read_is_not_taken_for_another_change(git_repo: Path, tmp_path: Path) -> None:
    _started(git_repo)
    assert prefetch.take(detect_repo(git_repo), "HEAD~1", None) is None
    _started(git_repo)
    assert prefetch.take(detect_repo(git_repo), "HEAD", "HEAD") is None
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "f").write_text("f\n")
    git(other, "add", "f")
    git(other, "commit", "-q", "-m", "f")
    _started(git_repo)
    assert prefetch.take(detect_repo(other), "HEAD", None) is None  # another repository
    _started(git_repo)
    (git_repo / "b").write_text("b\n")
    git(git_repo, "add", "b")
    git(git_repo, "commit", "-q", "-m", "moved on")
    assert prefetch.take(detect_repo(git_repo), "HEAD", None) is None  # HEAD moved
    assert not prefetch._pending


def test_no_early_read_outside_a_repository_or_before_a_commit(tmp_path: Path) -> None:
    _started(tmp_path)
    assert prefetch.take(detect_repo(tmp_path), "HEAD", None) is None
    git(tmp_path, "init", "-q", "-b", "main")
    early = _started(tmp_path)
    assert prefetch.take(detect_repo(tmp_path), "HEAD", None) is None
    assert early.root is None


@pytest.mark.parametrize("args", [["--base", "x"], ["--head=HEAD"], ["--help"], ["-h"]])
def test_no_early_read_for_other_changes_or_help(args: list[str]) -> None:
    prefetch.start(args)
    assert not prefetch._pending


def test_the_switch_interval_is_short_only_while_a_read_is_pending(git_repo: Path) -> None:
    before = sys.getswitchinterval()
    _started(git_repo)
    assert sys.getswitchinterval() < before
    prefetch.take(detect_repo(git_repo), "HEAD", None)
    assert sys.getswitchinterval() == before
