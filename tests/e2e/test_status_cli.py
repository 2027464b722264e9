"""Drive `lifeos status` and `lifeos status --write` in temporary git repositories.

Spine runs are recorded straight through the store and their evidence written with
lifeos.evidence.write_bundle and the key `lifeos init` made, as test_backlog_cli does.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import git
from tests.e2e.cli import lifeos

from lifeos.clock import FixedClock
from lifeos.evidence import write_bundle
from lifeos.ledger.keys import load_signer
from lifeos.repo import detect_repo
from lifeos.status import REPORT_DIR, STATUS_FILE
from lifeos.store import open_store
from lifeos.worktree import LIFEOS_OWNED

BACKLOG = """\
tasks:
  - id: T-1
    title: Add a CSV export
    status: DONE
  - id: T-2
    title: Fix the date parser
    status: IN_PROGRESS
  - id: T-3
    title: Write the user guide
"""


def assert_one_line_error(proc: Any, code: int, reason: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = str(proc.stderr).strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), err
    assert "Traceback" not in proc.stderr
    return err


def init(repo: Path) -> None:
    proc = lifeos(repo, "init")
    assert proc.returncode == 0, proc.stderr


def with_backlog(repo: Path, text: str = BACKLOG) -> Path:
    file = repo / "config" / "backlog.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


def spine_run(
    repo: Path,
    run_id: str,
    task: str,
    status: str,
    *,
    bundle: bool = True,
    at: dt.datetime | None = None,
    **config: Any,
) -> Path:
    """Record a spine run (``at``: when, by the store's clock); ``bundle`` writes its
    signed evidence and names it in the run's config."""
    where = detect_repo(repo)
    folder = where.lifeos_dir / "evidence" / run_id
    if bundle:
        write_bundle(
            where.lifeos_dir,
            run_id,
            status="PASS" if status == "LANDED" else "BLOCK",
            reason_codes=[] if status == "LANDED" else ["TESTS_FAILED"],
            changed_files=[{"status": "M", "path": "src/export/csv.py"}],
            runner_log="built\n",
            policy_hash="ab" * 32,
            base_commit="1" * 40,
            head_commit="2" * 40,
            decision={"result": "PASS"},
            signer=load_signer(where),
            clock=FixedClock(),
        )
        config["evidence"] = f".lifeos/evidence/{run_id}"
    store = open_store(where.lifeos_dir, FixedClock(at or dt.datetime.now(dt.UTC)))
    try:
        store.create_run(run_id, "spine", task, config=config)
        if status != "RUNNING":
            store.update_run(run_id, status=status)
    finally:
        store.close()
    return folder


def write_json(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Any, Any]:
    proc = lifeos(repo, "status", "--write", "--json", *args, env=env)
    assert "Traceback" not in proc.stderr
    return proc, json.loads(proc.stdout)


def written(repo: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    day = report["generated_at_utc"][:10].replace("-", "")
    return repo / STATUS_FILE, repo / REPORT_DIR / f"checkpoint_report_{day}.json"


def codes(report: dict[str, Any]) -> list[str]:
    return [c.split(":", 1)[0] for c in report["contradictions"]]


# -- without --write: unchanged ----------------------------------------------------------


def test_plain_status_is_unchanged_and_writes_nothing(git_repo: Path) -> None:
    proc = lifeos(git_repo, "status")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":", 1)[0] for line in proc.stdout.splitlines()] == [
        "repo_root",
        "head",
        "config_source",
        "config_validation",
    ]
    data = json.loads(lifeos(git_repo, "status", "--json").stdout)
    assert sorted(data) == [
        "config_source",
        "config_validation",
        "env_overrides",
        "head",
        "in_git",
        "repo_root",
    ]
    assert not (git_repo / "artifacts").exists()
    assert not (git_repo / ".lifeos").exists()


def test_key_needs_write(git_repo: Path) -> None:
    proc = lifeos(git_repo, "status", "--key", "lifeos.pub")
    err = assert_one_line_error(proc, 2, "INVALID_INPUT")
    assert "--key needs --write" in err


# -- ok, warn, fail ----------------------------------------------------------------------


def test_consistent_repository_is_ok_and_both_files_hold_the_report(git_repo: Path) -> None:
    init(git_repo)
    file = with_backlog(git_repo)
    before = file.read_bytes()
    spine_run(git_repo, "run-t1-a", "T-1", "BLOCKED")
    spine_run(git_repo, "run-t1-b", "T-1", "LANDED")
    spine_run(git_repo, "run-t2", "T-2", "RUNNING", bundle=False)
    ran = lifeos(git_repo, "mission", "run", "echo", "--params", '{"message": "hi"}')
    assert ran.returncode == 0, ran.stderr
    signed = lifeos(git_repo, "ledger", "checkpoint")
    assert signed.returncode == 0, signed.stderr

    proc, report = write_json(git_repo)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stderr == ""
    assert sorted(report) == ["contradictions", "facts", "generated_at_utc", "repo_root", "status"]
    assert report["status"] == "ok" and report["contradictions"] == []
    assert report["repo_root"] == str(git_repo)
    assert report["generated_at_utc"].endswith("Z")
    current, dated = written(git_repo, report)
    assert current.read_text() == dated.read_text() == proc.stdout
    assert proc.stdout == json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    facts = report["facts"]
    ledger = facts["ledger"]
    assert ledger["verified"] is True and ledger["size"] > 0
    assert ledger["head"].startswith(f"ledger:{ledger['size'] - 1}:")
    assert facts["latest_checkpoint"]["tree_size"] == ledger["size"]
    assert ledger["signed_checkpoints"] == 1
    spine = facts["runs"]["spine"]
    assert spine["total"] == 3
    assert {k: v for k, v in spine["by_state"].items() if v} == {
        "BLOCKED": 1,
        "LANDED": 1,
        "RUNNING": 1,
    }
    assert facts["runs"]["other"] == {"mission": {"completed": 1}}
    assert facts["backlog"] == {
        "by_status": {"BLOCKED": 0, "DONE": 1, "IN_PROGRESS": 1, "TODO": 1},
        "max_wip": 2,
        "path": "config/backlog.yaml",
        "present": True,
        "tasks": 3,
    }
    assert facts["evidence"] == {"checked": 2, "failed": 0}
    assert facts["paused_runs"] == [] and facts["max_paused_hours"] == 72.0
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert facts["budget_today"]["day"] in (today, report["generated_at_utc"][:10])
    assert facts["budget_today"]["calls"] == 0
    assert file.read_bytes() == before

    # The files are LifeOS-owned: the clean-tree check does not see them.
    assert str(STATUS_FILE.parent) in LIFEOS_OWNED and str(REPORT_DIR) in LIFEOS_OWNED
    dirty = git(git_repo, "status", "--porcelain", "--untracked-files=all")
    assert "artifacts/status/runtime_status.json" in dirty
    excludes = [f":(exclude){p}" for p in LIFEOS_OWNED]
    clean = git(git_repo, "status", "--porcelain", "--untracked-files=all", "--", ".", *excludes)
    assert "artifacts/" not in clean

    human = lifeos(git_repo, "status", "--write")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "status: ok (0 contradictions)"
    assert lines[-2:] == [f"wrote {current}", f"wrote {dated}"]
    assert "spine runs: 3 (LANDED 1, BLOCKED 1, RUNNING 1)" in lines
    assert "backlog: 3 tasks (TODO 1, IN_PROGRESS 1, DONE 1, BLOCKED 0)" in lines


def test_warnings_exit_0_and_print_each_contradiction(git_repo: Path) -> None:
    init(git_repo)
    with_backlog(
        git_repo,
        BACKLOG.replace("title: Write the user guide", "title: x\n    status: IN_PROGRESS"),
    )
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=100)
    spine_run(
        git_repo, "run-old", "T-2", "PAUSED", bundle=False, at=long_ago, waiting_for="before_build"
    )
    spine_run(git_repo, "run-new", "T-3", "PAUSED", bundle=False, waiting_for="before_steward")
    proc, report = write_json(git_repo, env={"LIFEOS_BACKLOG_MAX_WIP": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert report["status"] == "warn"
    assert codes(report) == ["DONE_WITHOUT_EVIDENCE", "WIP_EXCEEDED", "PAUSED_TOO_LONG"]
    assert "spine run run-old for task 'T-2' has been PAUSED" in report["contradictions"][2]
    paused = report["facts"]["paused_runs"]
    assert [(p["run_id"], p["waiting_for"]) for p in paused] == [
        ("run-old", "before_build"),
        ("run-new", "before_steward"),
    ]
    assert 99.9 < paused[0]["age_hours"] < 101 and 0 <= paused[1]["age_hours"] < 1

    human = lifeos(git_repo, "status", "--write", env={"LIFEOS_BACKLOG_MAX_WIP": "1"})
    assert human.returncode == 0 and human.stderr == ""
    lines = human.stdout.splitlines()
    assert lines[0] == "status: warn (3 contradictions)"
    assert [line.split(":", 1)[0] for line in lines if line.split(":", 1)[0] in codes(report)] == (
        codes(report)
    )
    assert "paused runs: 2, oldest 100.0 h (limit 72 h)" in lines


def test_max_paused_hours_from_lifeos_yaml_and_the_environment(git_repo: Path) -> None:
    init(git_repo)
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    spine_run(git_repo, "run-p", "T-2", "PAUSED", bundle=False, at=two_hours_ago)
    proc, report = write_json(git_repo)
    assert proc.returncode == 0 and report["status"] == "ok"
    config = git_repo / "lifeos.yaml"
    config.write_text(config.read_text().replace("spine: {}", "spine:\n  max_paused_hours: 1"))
    assert lifeos(git_repo, "config", "validate").returncode == 0  # config.py accepts the key
    proc, report = write_json(git_repo)
    assert proc.returncode == 0 and codes(report) == ["PAUSED_TOO_LONG"]
    assert report["facts"]["max_paused_hours"] == 1.0
    proc, report = write_json(git_repo, env={"LIFEOS_SPINE_MAX_PAUSED_HOURS": "3"})
    assert proc.returncode == 0 and report["status"] == "ok"
    proc = lifeos(git_repo, "status", "--write", env={"LIFEOS_SPINE_MAX_PAUSED_HOURS": "soon"})
    err = assert_one_line_error(proc, 2, "CONFIG_INVALID")
    assert "spine.max_paused_hours" in err


def test_evidence_that_fails_is_exit_3_and_still_written(git_repo: Path) -> None:
    init(git_repo)
    with_backlog(git_repo)
    folder = spine_run(git_repo, "run-a", "T-1", "LANDED")
    (folder / "runner.log").write_text("something else\n")
    gone = spine_run(git_repo, "run-b", "T-3", "FAILED")
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    proc, report = write_json(git_repo)
    assert report["status"] == "fail"
    assert codes(report) == ["EVIDENCE_INVALID", "EVIDENCE_MISSING", "DONE_WITHOUT_EVIDENCE"]
    assert "[EVIDENCE_MISMATCH]: runner.log" in report["contradictions"][0]
    assert report["facts"]["evidence"] == {"checked": 2, "failed": 2}
    err = assert_one_line_error(proc, 3, "EVIDENCE_INVALID")
    assert err == "lifeos: error: runtime status is fail: 3 contradictions [EVIDENCE_INVALID]"
    current, dated = written(git_repo, report)
    assert json.loads(current.read_text()) == json.loads(dated.read_text()) == report

    human = lifeos(git_repo, "status", "--write")
    assert_one_line_error(human, 3, "EVIDENCE_INVALID")
    assert human.stdout.splitlines()[0] == "status: fail (3 contradictions)"


def test_a_tampered_ledger_is_exit_3(git_repo: Path) -> None:
    init(git_repo)
    spine_run(git_repo, "run-a", "T-1", "BLOCKED", bundle=False)
    ran = lifeos(git_repo, "mission", "run", "echo", "--params", '{"message": "hi"}')
    assert ran.returncode == 0, ran.stderr
    assert write_json(git_repo)[1]["status"] == "ok"  # no backlog: nothing to warn about
    with sqlite3.connect(git_repo / ".lifeos" / "lifeos.db") as db:
        (entry,) = db.execute("SELECT entry FROM ledger WHERE seq = 0").fetchone()
        db.execute("UPDATE ledger SET entry = ? WHERE seq = 0", (entry.replace(b"echo", b"ECHO"),))
    db.close()
    proc, report = write_json(git_repo)
    assert_one_line_error(proc, 3, "LEDGER_INVALID")
    assert codes(report) == ["LEDGER_INVALID"]
    assert "[LEDGER_TAMPERED]" in report["contradictions"][0]
    assert report["facts"]["ledger"]["verified"] is False


def test_without_a_backlog_there_are_no_backlog_checks(git_repo: Path) -> None:
    init(git_repo)
    spine_run(git_repo, "run-a", "T-9", "LANDED")  # not DONE anywhere: no backlog to say so
    proc, report = write_json(git_repo)
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok" and report["contradictions"] == []
    backlog = report["facts"]["backlog"]
    assert backlog["present"] is False and backlog["path"] == "config/backlog.yaml"
    assert "not checked" in backlog["note"]
    assert report["facts"]["evidence"] == {"checked": 1, "failed": 0}
    human = lifeos(git_repo, "status", "--write")
    assert "backlog: none at config/backlog.yaml (backlog checks skipped)" in human.stdout


def test_a_fresh_repository_is_ok(git_repo: Path) -> None:
    proc, report = write_json(git_repo)  # no init, no key, no store yet
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok"
    assert report["facts"]["ledger"]["size"] == 0
    assert report["facts"]["latest_checkpoint"] is None


# -- bad input ---------------------------------------------------------------------------


def test_bad_input_is_exit_2_and_writes_nothing(git_repo: Path, tmp_path: Path) -> None:
    with_backlog(git_repo, BACKLOG.replace("status: DONE", "status: done"))
    proc = lifeos(git_repo, "status", "--write")
    err = assert_one_line_error(proc, 2, "INVALID_INPUT")
    assert "backlog.yaml:4: task 'T-1': key 'status':" in err
    with_backlog(git_repo)
    (git_repo / "lifeos.yaml").write_text("backlog:\n  max_wip: 0\n")
    assert_one_line_error(lifeos(git_repo, "status", "--write"), 2, "CONFIG_INVALID")
    (git_repo / "lifeos.yaml").unlink()
    proc = lifeos(git_repo, "status", "--write", "--key", str(tmp_path / "nope.pub"))
    assert_one_line_error(proc, 2, "KEY_MISSING")
    assert not (git_repo / "artifacts").exists()


def test_evidence_needs_a_trusted_key(git_repo: Path) -> None:
    init(git_repo)
    spine_run(git_repo, "run-a", "T-1", "LANDED")
    (git_repo / "lifeos.pub").unlink()
    proc = lifeos(git_repo, "status", "--write")
    assert_one_line_error(proc, 2, "KEY_MISSING")
    assert proc.stdout == ""
