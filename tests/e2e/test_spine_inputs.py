"""`lifeos spine` against bad inputs and faults: the pre-run hooks, a baseline that
vanished, a worktree path that is taken, a disk that fills up during the steward.

Each case ends with a reason code and a non-zero exit, no traceback, the user's
checkout untouched, and the run resumable (or inspectable) once the cause is gone.
The agents are the demo's in-process replay provider; git, the store, the gate and the
project's tests are real. The full disk is the one simulated fault: a
``sitecustomize`` on the ``lifeos`` process's path makes ``fsync`` of files under
``.lifeos/evidence/`` fail with ENOSPC (a real full disk cannot be made here).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.e2e.cli import LIFEOS, checkout_state, git, lifeos, run_env
from tests.e2e.test_spine_cli import (
    demo_repo,  # noqa: F401 - the fixture
    run_json,
)

pytestmark = pytest.mark.e2e


def commit_edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-qam", f"edit {rel}")


def approve_before_build(repo: Path, task: str = "T-1") -> None:
    commit_edit(
        repo,
        "config/backlog.yaml",
        f"- id: {task}\n",
        f"- id: {task}\n  approvals: [before_build]\n",
    )


@pytest.mark.parametrize(
    "context",
    [
        "[src/wordcount/gone.py]",  # not in the baseline
        "[src/wordcount/, src/wordcount/__init__.py/]",  # a file named as a folder
        "[src/wordcount/, 'docs notes/gone.md']",  # a space in the missing name
    ],
)
def test_a_context_path_missing_from_the_baseline_is_outside_the_envelope(
    demo_repo: Path,  # noqa: F811
    context: str,
) -> None:
    commit_edit(
        demo_repo,
        "config/backlog.yaml",
        "context: [src/wordcount/__init__.py]\n- id: T-2",
        f"context: {context}\n- id: T-2",
    )
    before = checkout_state(demo_repo)
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 3 and out["state"] == "BLOCKED", out
    assert out["reason_codes"] == ["ENVELOPE_VIOLATION"], out
    assert "src/wordcount/, " not in out["message"]  # the folder that is there is not named
    assert out["agent_calls"] == 0 and out["worktree"] is None
    assert checkout_state(demo_repo) == before


def test_a_call_cap_below_a_runs_fewest_calls_stops_before_any_call(
    demo_repo: Path,  # noqa: F811
) -> None:
    commit_edit(demo_repo, "lifeos.yaml", "calls: 40", "calls: 2")
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 5 and out["state"] == "BUDGET_EXCEEDED", out
    assert out["reason_codes"] == ["BUDGET_EXCEEDED"] and out["agent_calls"] == 0
    # budgets are outside the policy hash: raise the cap, and the run goes on
    commit_edit(demo_repo, "lifeos.yaml", "calls: 2", "calls: 40")
    code, done = run_json(demo_repo, "resume", out["run_id"])
    assert code == 0 and done["state"] == "LANDED", done


def test_a_changed_governance_file_blocks_with_protected_path(
    demo_repo: Path,  # noqa: F811
) -> None:
    with (demo_repo / "lifeos.yaml").open("a") as fh:
        fh.write("# edited, not committed\n")
    before = checkout_state(demo_repo)
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 3 and out["reason_codes"] == ["PROTECTED_PATH"], out
    assert "lifeos.yaml" in out["message"] and out["agent_calls"] == 0
    assert checkout_state(demo_repo) == before


@pytest.mark.slow
def test_a_baseline_that_vanished_fails_the_build_and_resumes_once_it_is_back(
    demo_repo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    approve_before_build(demo_repo)
    code, paused = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 4 and paused["state"] == "PAUSED", paused
    baseline = git(demo_repo, "rev-parse", "HEAD")
    # The user rewrites history and prunes: the run's baseline is gone for good.
    saved = tmp_path / "baseline.bundle"
    git(demo_repo, "bundle", "create", str(saved), "HEAD")
    git(demo_repo, "reset", "-q", "--hard", "HEAD~1")
    git(demo_repo, "reflog", "expire", "--expire=now", "--all")
    git(demo_repo, "gc", "-q", "--prune=now")
    gone = subprocess.run(["git", "cat-file", "-e", baseline], cwd=demo_repo, check=False)
    assert gone.returncode != 0
    before = checkout_state(demo_repo)

    code, failed = run_json(demo_repo, "approve", paused["run_id"], "--note", "go")
    assert code == 1 and failed["state"] == "FAILED", failed
    assert failed["reason_codes"] == ["BASELINE_MISSING"] and failed["agent_calls"] == 0
    assert checkout_state(demo_repo) == before
    code, again = run_json(demo_repo, "resume", paused["run_id"])
    assert again["reason_codes"] == ["BASELINE_MISSING"], again

    git(demo_repo, "fetch", "-q", str(saved), "HEAD")  # the baseline is back
    code, done = run_json(demo_repo, "resume", paused["run_id"])
    assert code == 0 and done["state"] == "LANDED", done
    assert git(demo_repo, "rev-parse", f"{done['commit']}~2") == baseline
    assert checkout_state(demo_repo) == before


def test_a_worktree_path_that_is_taken_fails_and_resumes_once_freed(
    demo_repo: Path,  # noqa: F811
) -> None:
    approve_before_build(demo_repo)
    code, paused = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 4, paused
    taken = demo_repo / ".lifeos" / "worktrees" / paused["run_id"]
    taken.mkdir(parents=True)
    (taken / "notes.txt").write_text("someone else's files\n")
    before = checkout_state(demo_repo)

    code, failed = run_json(demo_repo, "approve", paused["run_id"], "--note", "go")
    assert code == 1 and failed["reason_codes"] == ["WORKTREE_EXISTS"], failed
    assert (taken / "notes.txt").read_text() == "someone else's files\n"  # not touched
    assert checkout_state(demo_repo) == before

    (taken / "notes.txt").unlink()
    taken.rmdir()
    code, done = run_json(demo_repo, "resume", paused["run_id"])
    assert code == 0 and done["state"] == "LANDED", done


FULL_DISK = """\
import errno, os

_fsync = os.fsync


def _full(fd):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if "/.lifeos/evidence/" in target:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
    return _fsync(fd)


os.fsync = _full
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_a_full_disk_during_the_steward_fails_cleanly_and_resumes(
    demo_repo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    hook = tmp_path / "full-disk"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK)
    before = checkout_state(demo_repo)
    proc = subprocess.run(
        [LIFEOS, "spine", "run", "--task", "T-1", "--json"],
        cwd=demo_repo,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=run_env({"PYTHONPATH": str(hook)}),
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    failed = json.loads(proc.stdout)
    assert failed["state"] == "FAILED" and failed["reason_codes"] == ["WRITE_FAILED"], failed
    assert failed["phase"] == "review" and "No space left" in failed["message"]
    evidence = demo_repo / ".lifeos" / "evidence"
    assert not (evidence / failed["run_id"]).exists()
    assert [p.name for p in evidence.iterdir() if p.name.startswith(".tmp")] == []
    assert checkout_state(demo_repo) == before

    code, done = run_json(demo_repo, "resume", failed["run_id"])  # space is back
    assert code == 0 and done["state"] == "LANDED", done
    assert done["agent_calls"] == 0  # every call was journaled before the disk filled
    assert lifeos(demo_repo, "evidence", "verify", done["run_id"]).returncode == 0
    assert checkout_state(demo_repo) == before
