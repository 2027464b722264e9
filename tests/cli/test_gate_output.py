"""``lifeos gate check`` prints exactly the same bytes, whatever makes it faster.

Two repositories are built the same way every time (fixed commit dates and identity,
so the same commit ids), with every kind of entry the gate reports: adds, modifies,
deletes, renames, copies, a type change, a symlink, a submodule, a mode change, and
paths with non-ASCII, non-UTF-8, quote, backslash, newline and control bytes. The
command's output, plain and ``--json``, is compared byte for byte with files under
``tests/cli/golden/`` recorded from the straightforward encoder
(``json.dumps(decision.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)``).
It is run three ways: through ``lifeos.cli.main``, through the console script's
entry point in this process (the early git read of :mod:`lifeos.policy.prefetch`),
and as a new process, as a user runs it.

Set ``LIFEOS_WRITE_GOLDEN=1`` to record the files again (only for an intended change
of the output).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import re
import subprocess
import sys
from contextlib import chdir
from pathlib import Path

import pytest
from tests.conftest import GIT_ENV

from lifeos import clock
from lifeos.cli import main
from lifeos.policy import prefetch

GOLDEN = Path(__file__).resolve().parent / "golden"
MOMENT = dt.datetime(2026, 5, 17, 8, 30, 12, 345678, tzinfo=dt.UTC)
STAMP = '  "timestamp": "2026-05-17T08:30:12.345678Z"'
FIXED = {
    **GIT_ENV,
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05+00:00",
    "GIT_COMMITTER_DATE": "2026-01-02T03:04:05+00:00",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **FIXED, "HOME": str(repo)}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def _put(repo: Path, path: str | bytes, data: str = "x\n") -> None:
    raw = path if isinstance(path, bytes) else path.encode()
    target = Path(os.fsdecode(bytes(repo).rstrip(b"/") + b"/" + raw))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(data)


def _base_repo(repo: Path) -> None:
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _put(repo, "README.md", "golden\n")
    _put(repo, "docs/keep.md", "keep this text\n" * 20)
    _put(repo, "docs/move.md", "moving text, long enough to be a rename\n" * 20)
    _put(repo, "docs/gone.md", "gone\n")
    _put(repo, "src/app.py", "print('app')\n")
    _put(repo, "src/run.sh", "#!/bin/sh\n")
    _put(repo, "src/kind.py", "kind\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")


def _change_worktree(repo: Path) -> None:
    _put(repo, "src/app.py", "print('changed')\n")
    _put(repo, "src/new.py", "new\n")
    _put(repo, "docs/ünïcode.md", "u\n")
    _put(repo, "docs/cafe\u0301.md", "nfd\n")
    _put(repo, b"src/bad\xff\xfe.py", "bytes\n")
    _put(repo, 'src/q"uote}{.py', "q\n")
    _put(repo, "src/back\\slash.py", "b\n")
    _put(repo, "src/new\nline.py", "n\n")
    _put(repo, "src/tab\there\x01.py", "t\n")
    _put(repo, "src/sep\u2028.py", "s\n")
    _put(repo, "config/secret.yaml", "no\n")
    _put(repo, "docs/notes.txt", "txt\n")
    _put(repo, "docs/copy.md", "keep this text\n" * 20)
    (repo / "docs" / "gone.md").unlink()
    (repo / "docs" / "move.md").rename(repo / "docs" / "moved.md")
    (repo / "src" / "run.sh").chmod(0o755)
    (repo / "src" / "kind.py").unlink()
    (repo / "src" / "kind.py").symlink_to("app.py")
    (repo / "src" / "link").symlink_to("../../outside")
    inner = repo / "src" / "vendor"
    inner.mkdir()
    _git(inner, "init", "-q", "-b", "main")
    _put(inner, "x.py")
    _git(inner, "add", "x.py")
    _git(inner, "commit", "-q", "-m", "inner")


@pytest.fixture(scope="module")
def worktree_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("golden") / "worktree"
    _base_repo(repo)
    _change_worktree(repo)
    return repo


@pytest.fixture(scope="module")
def commit_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("golden") / "commits"
    _base_repo(repo)
    _change_worktree(repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "head")
    return repo


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock.SystemClock, "now", lambda self: MOMENT)


RANGE = ["--base", "HEAD~1", "--head", "HEAD"]
CASES = [
    ("worktree_repo", "worktree-seed-v2", ["--policy", "seed-v2"]),
    ("worktree_repo", "worktree-code", ["--policy", "code"]),
    ("commit_repo", "commits-seed-v2", ["--policy", "seed-v2", *RANGE]),
    ("commit_repo", "commits-code", ["--policy", "code", *RANGE]),
]


def _golden(name: str, as_json: bool, out: str) -> str:
    path = GOLDEN / f"gate-check-{name}.{'json' if as_json else 'txt'}"
    if os.environ.get("LIFEOS_WRITE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(out.encode("utf-8"))
    return path.read_bytes().decode("utf-8")


def _via_main(repo: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with chdir(repo):
        code = main(["gate", "check", *args])
    out = capsys.readouterr().out
    assert code == 3, out
    return out


def _via_entry(
    repo: Path, args: list[str], capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> str:
    from lifeos import _entry

    mp.setattr(sys, "argv", ["lifeos", "gate", "check", *args])
    try:
        with chdir(repo), pytest.raises(SystemExit) as stop:
            _entry.run()
        assert not gc.isenabled()  # a short-lived process: no cycle collection
    finally:
        gc.enable()
    out = capsys.readouterr().out
    assert stop.value.code == 3, out
    assert not prefetch._pending  # the early read was taken (or never started)
    return out


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("fixture,name,args", CASES, ids=[c[1] for c in CASES])
def test_output_bytes_match_the_golden_files(
    request: pytest.FixtureRequest,
    fixture: str,
    name: str,
    args: list[str],
    as_json: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo: Path = request.getfixturevalue(fixture)
    extra = ["--json"] if as_json else []
    out = _via_main(repo, [*args, *extra], capsys)
    expected = _golden(name, as_json, out)
    assert out == expected
    assert _via_entry(repo, [*args, *extra], capsys, monkeypatch) == expected
    if as_json:
        record = json.loads(out)
        assert record["timestamp"] == "2026-05-17T08:30:12.345678Z"
        reference = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert out == reference


@pytest.mark.parametrize("fixture,name,args", CASES[:2], ids=[c[1] for c in CASES[:2]])
def test_a_new_process_prints_the_same_bytes(
    request: pytest.FixtureRequest, fixture: str, name: str, args: list[str]
) -> None:
    """The console script's way in, as a new process (its clock is the real one)."""
    repo: Path = request.getfixturevalue(fixture)
    proc = subprocess.run(
        [sys.executable, "-c", "from lifeos._entry import run; run()", "gate", "check"]
        + [*args, "--json"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout.decode("utf-8")
    out = re.sub(r'(?m)^  "timestamp": "[^"]*"', STAMP, out)
    assert out == (GOLDEN / f"gate-check-{name}.json").read_text(encoding="utf-8")
