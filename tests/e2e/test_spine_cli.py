"""Drive `lifeos spine` and `lifeos demo` on copies of the demo project.

The agents are the replay provider answering from the demo's recorded cassette
(examples/demo/cassettes/demo.jsonl); everything else is real: git repositories and
worktrees, the SQLite store, the gate, the project's tests run with pytest, evidence.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.cli import LIFEOS, checkout_state, git, lifeos, one_line_error, run_env

from lifeos.demo import prepare


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    return prepare(tmp_path)


def run_json(repo: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = lifeos(repo, "spine", *args, "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_task_lands_on_its_branch_and_the_checkout_is_untouched(demo_repo: Path) -> None:
    before = checkout_state(demo_repo)
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 0 and out["state"] == "LANDED", out
    assert out["reason_codes"] == [] and out["worktree"] is None
    assert checkout_state(demo_repo) == before
    branch = out["branch"]
    assert branch.startswith("lifeos/T-1-")
    assert git(demo_repo, "rev-parse", branch) == out["commit"]
    files = git(demo_repo, "ls-tree", "-r", "--name-only", out["commit"]).splitlines()
    assert "artifacts/review_packets/Review_Packet_T-1_v1.md" in files
    assert "tests/test_case.py" in files
    message = git(demo_repo, "log", "-1", "--format=%B", out["commit"])
    assert "T-1" in message and out["run_id"] in message and out["evidence"] in message
    assert lifeos(demo_repo, "evidence", "verify", out["run_id"]).returncode == 0
    assert lifeos(demo_repo, "ledger", "verify").returncode == 0
    with sqlite3.connect(demo_repo / ".lifeos/lifeos.db") as db:
        kinds = dict(
            db.execute(
                "SELECT file_path, kind FROM artifacts WHERE run_id = ?", (out["run_id"],)
            ).fetchall()
        )
    assert kinds["packets/build_packet.json"] == "BUILD_PACKET"
    assert kinds["packets/review_packet_v1.json"] == "REVIEW_PACKET"
    # Landed once: running the task again is refused.
    again = lifeos(demo_repo, "spine", "run", "--task", "T-1")
    one_line_error(again, 2, "TASK_ALREADY_DONE")


def test_the_gate_blocks_a_denylisted_change_and_keeps_the_worktree(demo_repo: Path) -> None:
    code, out = run_json(demo_repo, "run", "--task", "T-2")
    assert code == 3 and out["state"] == "BLOCKED"
    assert out["reason_codes"] == ["DENYLISTED_PATH"]
    kept = Path(out["worktree"])
    assert (kept / "scripts/release.sh").is_file()
    assert git(demo_repo, "rev-parse", out["branch"]) == git(demo_repo, "rev-parse", "HEAD")
    listed = json.loads(lifeos(demo_repo, "spine", "list", "--json").stdout)["runs"]
    assert [(r["task_id"], r["state"]) for r in listed] == [("T-2", "BLOCKED")]
    assert lifeos(demo_repo, "spine", "cleanup", out["run_id"]).returncode == 0
    assert not kept.exists()


def test_an_approval_survives_a_process_restart(demo_repo: Path) -> None:
    code, out = run_json(demo_repo, "run", "--task", "T-4")
    assert code == 4 and out["state"] == "PAUSED", out
    shown = json.loads(lifeos(demo_repo, "spine", "show", out["run_id"], "--json").stdout)
    assert shown["state"] == "PAUSED" and shown["waiting_for"] == "before_steward"
    code, done = run_json(demo_repo, "approve", out["run_id"], "--note", "ok")
    assert code == 0 and done["state"] == "LANDED", done
    assert done["replayed_calls"] == 0  # nothing before the pause ran again


def test_a_changed_policy_blocks_resume(demo_repo: Path) -> None:
    code, out = run_json(demo_repo, "run", "--task", "T-4")
    assert code == 4
    config = demo_repo / "lifeos.yaml"
    config.write_text(config.read_text().replace("profile: code", "profile: seed-v2"))
    proc = lifeos(demo_repo, "spine", "approve", out["run_id"])
    one_line_error(proc, 2, "POLICY_HASH_MISMATCH")
    shown = json.loads(lifeos(demo_repo, "spine", "show", out["run_id"], "--json").stdout)
    assert shown["state"] == "PAUSED"  # still resumable once the policy is restored


def test_a_rejection_ends_the_run_blocked(demo_repo: Path) -> None:
    code, out = run_json(demo_repo, "run", "--task", "T-4")
    assert code == 4
    code, done = run_json(demo_repo, "reject", out["run_id"], "--note", "not now")
    assert code == 3 and done["reason_codes"] == ["HUMAN_REJECTED"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["run", "--task", "T-99"], "TASK_NOT_FOUND"),
        (["run"], "INVALID_INPUT"),
        (["run", "--task", "T-1", "--next"], "INVALID_INPUT"),
        (["resume", "no-such-run"], "RESUME_INVALID"),
        (["approve", "no-such-run"], "RESUME_INVALID"),
        (["show", "no-such-run"], "INVALID_INPUT"),
    ],
)
def test_bad_input_is_one_line_with_a_reason(demo_repo: Path, args: list[str], reason: str) -> None:
    one_line_error(lifeos(demo_repo, "spine", *args), 2, reason)


def test_a_missing_backlog_is_bad_input(demo_repo: Path) -> None:
    (demo_repo / "config/backlog.yaml").unlink()
    git(demo_repo, "commit", "-qam", "no backlog")
    one_line_error(lifeos(demo_repo, "spine", "run", "--next"), 2, "INVALID_INPUT")


def test_a_dirty_tree_stops_before_any_agent_call(demo_repo: Path) -> None:
    (demo_repo / "README.md").write_text("uncommitted\n")
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 3 and out["reason_codes"] == ["DIRTY_WORKTREE"]
    assert out["agent_calls"] == 0


def test_an_agent_writing_outside_its_worktree_ends_the_run(demo_repo: Path) -> None:
    """A hook appearing in the main repository while the run builds (as an agent with
    shell access could do) ends the run with EXTERNAL_CHANGE and commits nothing."""
    hook = demo_repo / ".git/hooks/post-checkout"
    # The acceptance check runs the project's tests: a conftest that plants a hook.
    (demo_repo / "tests/conftest.py").write_text(
        f"from pathlib import Path\nPath({str(hook)!r}).write_text('#!/bin/sh\\necho pwned\\n')\n"
    )
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "a conftest that plants a hook")
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 3 and out["reason_codes"] == ["EXTERNAL_CHANGE"], out
    assert hook.exists()
    assert out["commit"] is None or git(demo_repo, "rev-parse", out["branch"]) != out["commit"]


@pytest.mark.slow
def test_demo_runs_offline_and_ends_as_expected(tmp_path: Path) -> None:
    proc = lifeos(tmp_path, "demo", "--keep", str(tmp_path / "kept"), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {
        line.split()[0]: line.split()[1]
        for line in proc.stdout.splitlines()
        if line.startswith("T-")
    }
    assert rows == {"T-1": "LANDED", "T-2": "BLOCKED", "T-3": "LANDED", "T-4": "LANDED"}
    assert "ledger verified: True; evidence verified: 3/3" in proc.stdout
    repo = tmp_path / "kept" / "repo"
    assert git(repo, "status", "--porcelain") == ""
    t3 = [
        r
        for r in json.loads(lifeos(repo, "spine", "list", "--json").stdout)["runs"]
        if r["task_id"] == "T-3"
    ][0]
    assert t3["attempt"] == 1  # one repair


def _tree_without_packet(repo: Path, commit: str) -> list[str]:
    rows = git(repo, "ls-tree", "-r", commit).splitlines()
    return [r for r in rows if "artifacts/review_packets/" not in r and "lifeos.pub" not in r]


def _journal_rows(db: Path, phase: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(
                conn.execute("SELECT count(*) FROM journal WHERE step = ?", (phase,)).fetchone()[0]
            )
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("rows_before_kill", [1, 3])
def test_kill_9_in_build_then_resume_lands_the_same_tree(
    tmp_path: Path, rows_before_kill: int
) -> None:
    straight = prepare(tmp_path / "straight")
    code, reference = run_json(straight, "run", "--task", "T-3")
    assert code == 0, reference
    repo = prepare(tmp_path / "crashed")
    db = repo / ".lifeos" / "lifeos.db"
    child = subprocess.Popen(
        [LIFEOS, "spine", "run", "--task", "T-3", "--json"],
        cwd=repo,
        env=run_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _journal_rows(db, "build") < rows_before_kill and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    runs = json.loads(lifeos(repo, "spine", "list", "--json").stdout)["runs"]
    assert len(runs) == 1
    code, resumed = run_json(repo, "resume", runs[0]["run_id"])
    assert code == 0 and resumed["state"] == "LANDED", resumed
    # The same files, blob for blob; the review packet names the run and each repository
    # has its own key, so those two are left out.
    assert _tree_without_packet(repo, resumed["commit"]) == _tree_without_packet(
        straight, reference["commit"]
    )
    assert git(repo, "status", "--porcelain") == ""
    assert lifeos(repo, "ledger", "verify").returncode == 0


def test_run_mission_design_stops_at_the_boundary_and_resume_lands(demo_repo: Path) -> None:
    proc = lifeos(demo_repo, "run-mission", "--from-backlog", "T-1", "--mission-type", "design")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "=== Mission Synthesis Engine ===" in proc.stdout
    assert "Status: SUCCESS" in proc.stdout
    runs = json.loads(lifeos(demo_repo, "spine", "list", "--json").stdout)["runs"]
    assert [(r["task_id"], r["state"], r["phase"]) for r in runs] == [("T-1", "PAUSED", "design")]
    assert runs[0]["waiting_for"] == "mission:design"
    # A mission boundary is not an approval point.
    one_line_error(lifeos(demo_repo, "spine", "approve", runs[0]["run_id"]), 2, "RESUME_INVALID")
    code, out = run_json(demo_repo, "resume", runs[0]["run_id"])
    assert code == 0 and out["state"] == "LANDED"


def test_run_mission_steward_lands_and_records_the_mission(demo_repo: Path) -> None:
    proc = lifeos(demo_repo, "run-mission", "--from-backlog", "T-1", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    mission = out["result"]["final_state"]["mission_result"]
    assert mission["success"] and mission["outputs"]["state"] == "LANDED"
    assert out["packet"]["task_id"] == "T-1" and out["packet"]["mission_type"] == "steward"


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["--from-backlog", "T-99"], 2, "TASK_NOT_FOUND"),
        (["--from-backlog", "T-1", "--backlog", "nope.yaml"], 2, "INVALID_INPUT"),
    ],
)
def test_run_mission_bad_input(demo_repo: Path, args: list[str], code: int, reason: str) -> None:
    one_line_error(lifeos(demo_repo, "run-mission", *args), code, reason)


def test_mission_run_autonomous_build_cycle_is_refused(demo_repo: Path) -> None:
    proc = lifeos(demo_repo, "mission", "run", "autonomous_build_cycle", "--params", "{}")
    one_line_error(proc, 2, "DEPRECATED_PATH")
    assert "lifeos spine run" in proc.stderr


AGENT = """\
import sys
from pathlib import Path
# A stand-in CLI coding agent: it gets the instructions as its argument and edits the
# files of the directory it runs in (the run's worktree), as a real one would.
assert "build_packet" in sys.argv[1]
Path("src/wordcount/shout.py").write_text("def shout(text):\\n    return text.upper()\\n")
print("added src/wordcount/shout.py")
"""
REVIEWER = 'print(\'{"verdict": "approve", "issues": [], "risks": [], "required_changes": []}\')\n'


def test_a_cli_agent_builds_in_the_worktree(demo_repo: Path, tmp_path: Path) -> None:
    tools = tmp_path / "agents"
    tools.mkdir()
    (tools / "agent.py").write_text(AGENT)
    (tools / "reviewer.py").write_text(REVIEWER)
    config = demo_repo / "lifeos.yaml"
    text = config.read_text().split("budget:")[0]  # no caps: a text agent reports no usage
    agent = f'[python, "{tools / "agent.py"}", "{{prompt}}"]'
    text = text.replace(
        "  builder: {provider: replay,",
        f"  builder: {{provider: command, command: {agent}}}\n"
        "  unused_builder: {provider: replay,",
    ).replace(
        "  reviewer: {provider: replay,",
        f'  reviewer: {{provider: command, command: [python, "{tools / "reviewer.py"}"]}}\n'
        "  unused_reviewer: {provider: replay,",
    )
    config.write_text(text)
    git(demo_repo, "commit", "-qam", "a CLI agent builds")
    before = checkout_state(demo_repo)
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 0 and out["state"] == "LANDED", out
    files = git(demo_repo, "ls-tree", "-r", "--name-only", out["commit"]).splitlines()
    assert "src/wordcount/shout.py" in files
    assert checkout_state(demo_repo) == before
    assert not (demo_repo / "src/wordcount/shout.py").exists()


def _task_row(repo: Path, run_id: str) -> tuple[str, int, int]:
    with sqlite3.connect(repo / ".lifeos/lifeos.db") as db:
        row = db.execute(
            "SELECT status, repair_attempt, consumed_tokens FROM mission_tasks WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    return str(row[0]), int(row[1]), int(row[2])


def test_mission_tasks_follow_the_run_and_count_repairs(demo_repo: Path) -> None:
    code, landed = run_json(demo_repo, "run", "--task", "T-3")
    assert code == 0, landed
    status, repairs, tokens = _task_row(demo_repo, landed["run_id"])
    assert (status, repairs) == ("approved", 1) and tokens > 0
    code, blocked = run_json(demo_repo, "run", "--task", "T-2")
    assert code == 3
    assert _task_row(demo_repo, blocked["run_id"])[0] == "failed_terminal"


@pytest.mark.parametrize("role", ["designer", "reviewer"])
def test_an_agent_can_escalate_to_a_human(demo_repo: Path, tmp_path: Path, role: str) -> None:
    answer = (
        '{"escalate": "the task contradicts the style guide"}'
        if role == "designer"
        else '{"verdict": "escalate", "questions": ["is a breaking change allowed?"]}'
    )
    script = tmp_path / "agent.py"
    script.write_text(f"print({answer!r})\n")
    config = demo_repo / "lifeos.yaml"
    text = config.read_text().split("budget:")[0]  # no caps: a text agent reports no usage
    config.write_text(
        text.replace(
            f"  {role}: {{provider: replay,",
            f'  {role}: {{provider: command, command: [python, "{script}"]}}\n'
            f"  unused_{role}: {{provider: replay,",
        )
    )
    git(demo_repo, "commit", "-qam", f"the {role} escalates")
    code, out = run_json(demo_repo, "run", "--task", "T-1")
    assert code == 6 and out["state"] == "ESCALATED", out
    assert out["reason_codes"] == ["ESCALATION_REQUIRED"]
    assert ("contradicts" if role == "designer" else "breaking change") in out["message"]
