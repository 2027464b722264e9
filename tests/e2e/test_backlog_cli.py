"""Drive `lifeos backlog list|check` in temporary git repositories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.cli import lifeos

from lifeos.clock import FixedClock
from lifeos.evidence import write_bundle
from lifeos.ledger.keys import load_signer
from lifeos.ledger.note import Signer
from lifeos.repo import detect_repo
from lifeos.store import open_store

BACKLOG = """\
# The team's backlog.
tasks:
  - id: T-1
    title: Add a CSV export
    priority: P1
    status: DONE
    acceptance: [make test]
    context: [src/export/]
  - id: T-2
    title: Fix the date parser
    priority: P0
    status: IN_PROGRESS
    approvals: [before_build]
  - id: T-3
    title: Write the user guide
    priority: P2
"""


def assert_one_line_error(proc: Any, code: int, reason: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = str(proc.stderr).strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), err
    assert "Traceback" not in proc.stderr
    return err


def with_backlog(repo: Path, text: str = BACKLOG, path: str = "config/backlog.yaml") -> Path:
    file = repo / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


def init(repo: Path) -> None:
    proc = lifeos(repo, "init")
    assert proc.returncode == 0, proc.stderr


def spine_run(
    repo: Path,
    run_id: str,
    task: str,
    status: str,
    *,
    bundle: bool = True,
    bundle_for: str | None = None,
    signer: Signer | None = None,
    record_evidence: bool = True,
) -> Path:
    """Record a spine run (and, with ``bundle``, write its signed evidence)."""
    where = detect_repo(repo)
    folder_id = bundle_for or run_id
    folder = where.lifeos_dir / "evidence" / folder_id
    if bundle and not folder.exists():
        write_bundle(
            where.lifeos_dir,
            folder_id,
            status="PASS" if status == "LANDED" else "BLOCK",
            reason_codes=[] if status == "LANDED" else ["TESTS_FAILED"],
            changed_files=[{"status": "M", "path": "src/export/csv.py"}],
            runner_log="built\n",
            policy_hash="ab" * 32,
            base_commit="1" * 40,
            head_commit="2" * 40,
            decision={"result": "PASS"},
            signer=signer or load_signer(where),
            clock=FixedClock(),
        )
    store = open_store(where.lifeos_dir, FixedClock())
    try:
        config = {"evidence": f".lifeos/evidence/{folder_id}"} if record_evidence else {}
        store.create_run(run_id, "spine", task, config=config)
        if status != "RUNNING":
            store.update_run(run_id, status=status)
    finally:
        store.close()
    return folder


def check_json(repo: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = lifeos(repo, "backlog", "check", "--json", *args)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def found(report: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(c["code"], c["task_id"], c["run_id"]) for c in report["contradictions"]]


# -- list ------------------------------------------------------------------------------


def test_list_prints_a_table_in_file_order(git_repo: Path) -> None:
    file = with_backlog(git_repo)
    before = file.read_bytes()
    proc = lifeos(git_repo, "backlog", "list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "ID   PRIORITY  STATUS       TITLE",
        "T-1  P1        DONE         Add a CSV export",
        "T-2  P0        IN_PROGRESS  Fix the date parser",
        "T-3  P2        TODO         Write the user guide",
    ]
    assert proc.stderr == ""
    assert file.read_bytes() == before
    assert not (git_repo / ".lifeos").exists()  # listing opens no store


def test_list_json_has_tasks_and_counts_with_sorted_keys(git_repo: Path) -> None:
    with_backlog(git_repo)
    proc = lifeos(git_repo, "backlog", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert proc.stdout == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert data["counts"] == {"BLOCKED": 0, "DONE": 1, "IN_PROGRESS": 1, "TODO": 1}
    assert [t["id"] for t in data["tasks"]] == ["T-1", "T-2", "T-3"]
    assert data["tasks"][0] == {
        "acceptance": ["make test"],
        "approvals": [],
        "context": ["src/export/"],
        "description": "",
        "id": "T-1",
        "priority": "P1",
        "status": "DONE",
        "title": "Add a CSV export",
    }


def test_list_follows_backlog_path_in_lifeos_yaml(git_repo: Path) -> None:
    init(git_repo)
    config = git_repo / "lifeos.yaml"
    config.write_text(
        config.read_text().replace("path: config/backlog.yaml", "path: planning/tasks.yaml")
    )
    with_backlog(git_repo, "- {id: X-1, title: Elsewhere}\n", "planning/tasks.yaml")
    proc = lifeos(git_repo, "backlog", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [t["id"] for t in json.loads(proc.stdout)["tasks"]] == ["X-1"]


def test_list_empty_backlog(git_repo: Path) -> None:
    with_backlog(git_repo, "tasks: []\n")
    proc = lifeos(git_repo, "backlog", "list")
    assert proc.returncode == 0
    assert proc.stdout.startswith("no tasks in ")


@pytest.mark.parametrize("command", ["list", "check"])
def test_missing_backlog_is_exit_2(git_repo: Path, command: str) -> None:
    proc = lifeos(git_repo, "backlog", command)
    err = assert_one_line_error(proc, 2, "INVALID_INPUT")
    assert f"no backlog at {git_repo / 'config' / 'backlog.yaml'}" in err
    assert proc.stdout == ""


@pytest.mark.parametrize("command", ["list", "check"])
@pytest.mark.parametrize(
    "change,words",
    [
        (("priority: P2", "priority: P5"), "backlog.yaml:16: task 'T-3': key 'priority':"),
        (("status: DONE", "status: done"), "backlog.yaml:6: task 'T-1': key 'status':"),
        (
            ("id: T-3", "id: T-1"),
            "backlog.yaml:14: task 'T-1': key 'id': duplicate id (first used on line 3)",
        ),
        (("src/export/", "../elsewhere"), "backlog.yaml:8: task 'T-1': key 'context.0':"),
        (("before_build", "whenever"), "backlog.yaml:13: task 'T-2': key 'approvals.0':"),
        (("    priority: P2", "    owner: me"), "backlog.yaml:16: task 'T-3': key 'owner':"),
        (("id: T-2", "id: 'T 2'"), "backlog.yaml:9: task 'T 2': key 'id':"),
    ],
)
def test_bad_backlog_is_one_line_exit_2(
    git_repo: Path, command: str, change: tuple[str, str], words: str
) -> None:
    file = with_backlog(git_repo, BACKLOG.replace(*change))
    before = file.read_bytes()
    proc = lifeos(git_repo, "backlog", command)
    err = assert_one_line_error(proc, 2, "INVALID_INPUT")
    assert words in err
    assert proc.stdout == ""
    assert file.read_bytes() == before


# -- check -----------------------------------------------------------------------------


def test_check_passes_when_backlog_and_runs_agree(git_repo: Path) -> None:
    init(git_repo)
    file = with_backlog(git_repo)
    before = file.read_bytes()
    spine_run(git_repo, "run-t1-a", "T-1", "BLOCKED")
    spine_run(git_repo, "run-t1-b", "T-1", "LANDED")
    spine_run(git_repo, "run-t2", "T-2", "RUNNING", bundle=False, record_evidence=False)
    proc = lifeos(git_repo, "backlog", "check")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout.strip() == "backlog OK: 3 tasks, 3 spine runs, no contradictions"
    assert proc.stderr == ""
    code, report, _ = check_json(git_repo)
    assert code == 0
    assert report["ok"] is True and report["contradictions"] == []
    assert (report["tasks"], report["spine_runs"], report["max_wip"]) == (3, 3, 2)
    assert file.read_bytes() == before


def test_check_ignores_other_runs(git_repo: Path) -> None:
    init(git_repo)
    with_backlog(git_repo, "- {id: T-1, title: a, status: DONE}\n")
    spine_run(git_repo, "run-1", "T-1", "LANDED")
    ran = lifeos(git_repo, "mission", "run", "echo", "--params", '{"message": "T-1"}')
    assert ran.returncode == 0, ran.stderr
    code, report, _ = check_json(git_repo)
    assert code == 0 and report["spine_runs"] == 1


def test_done_without_any_run_needs_no_key(git_repo: Path) -> None:
    with_backlog(git_repo)  # no `lifeos init`: no lifeos.pub, no store yet
    proc = lifeos(git_repo, "backlog", "check")
    assert proc.returncode == 3
    assert proc.stdout.splitlines() == [
        "DONE_WITHOUT_EVIDENCE: task 'T-1' is DONE but no LANDED spine run with verified "
        "evidence is recorded for it"
    ]
    assert_one_line_error(proc, 3, "DONE_WITHOUT_EVIDENCE")


def test_check_reports_every_contradiction(git_repo: Path) -> None:
    init(git_repo)
    config = git_repo / "lifeos.yaml"
    config.write_text(config.read_text().replace("max_wip: 2", "max_wip: 1"))
    with_backlog(
        git_repo,
        BACKLOG.replace("priority: P2", "priority: P2\n    status: IN_PROGRESS"),
    )
    # T-1 DONE: its only landed run's evidence was tampered with.
    tampered = spine_run(git_repo, "run-a", "T-1", "LANDED")
    (tampered / "runner.log").write_text("something else\n")
    # T-2: a landed run although the task is IN_PROGRESS.
    spine_run(git_repo, "run-b", "T-2", "LANDED")
    # T-3: a failed run whose evidence folder is gone, a blocked one that names none
    # (fine: it stopped before the steward), and one whose folder holds another run's
    # evidence.
    gone = spine_run(git_repo, "run-c", "T-3", "FAILED")
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    spine_run(git_repo, "run-d", "T-3", "BLOCKED", bundle=False, record_evidence=False)
    spine_run(git_repo, "run-other", "T-9", "RUNNING", record_evidence=False)
    spine_run(git_repo, "run-e", "T-3", "BLOCKED", bundle_for="run-other")

    code, report, err = check_json(git_repo)
    assert code == 3, err
    assert report["ok"] is False and report["max_wip"] == 1
    assert found(report) == [
        ("EVIDENCE_INVALID", "T-1", "run-a"),
        ("LANDED_NOT_DONE", "T-2", "run-b"),
        ("EVIDENCE_MISSING", "T-3", "run-c"),
        ("EVIDENCE_INVALID", "T-3", "run-e"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
        ("WIP_EXCEEDED", None, None),
    ]
    messages = [c["message"] for c in report["contradictions"]]
    assert "[EVIDENCE_MISMATCH]: runner.log" in messages[0]
    assert "is IN_PROGRESS in the backlog" in messages[1]
    assert "no evidence bundle at .lifeos/evidence/run-c" in messages[2]
    assert "signed for run 'run-other', not 'run-e'" in messages[3]
    assert "T-2, T-3" in messages[5]
    assert err.strip() == (
        "lifeos: error: 6 contradictions between the backlog and the recorded runs "
        "[EVIDENCE_INVALID]"
    )
    human = lifeos(git_repo, "backlog", "check")
    assert human.returncode == 3
    assert [line.split(":", 1)[0] for line in human.stdout.splitlines()] == [
        c[0] for c in found(report)
    ]
    assert_one_line_error(human, 3, "EVIDENCE_INVALID")


def test_wip_limit_from_the_environment(git_repo: Path) -> None:
    with_backlog(git_repo, BACKLOG.replace("status: DONE", "status: IN_PROGRESS"))
    assert lifeos(git_repo, "backlog", "check").returncode == 0
    proc = lifeos(git_repo, "backlog", "check", env={"LIFEOS_BACKLOG_MAX_WIP": "1"})
    assert proc.returncode == 3
    assert proc.stdout.startswith("WIP_EXCEEDED: 2 tasks are IN_PROGRESS (T-1, T-2)")


def test_evidence_is_trusted_only_with_the_trusted_key(git_repo: Path, tmp_path: Path) -> None:
    init(git_repo)
    with_backlog(git_repo, "- {id: T-1, title: a, status: DONE}\n")
    intruder = Signer.generate("intruder")
    spine_run(git_repo, "run-1", "T-1", "LANDED", signer=intruder)
    code, report, _ = check_json(git_repo)
    assert code == 3
    assert found(report) == [
        ("EVIDENCE_INVALID", "T-1", "run-1"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
    ]
    assert "[SIGNATURE_INVALID]" in report["contradictions"][0]["message"]
    key = tmp_path / "intruder.pub"
    key.write_text(intruder.verifier().key_text + "\n")
    code, report, _ = check_json(git_repo, "--key", str(key))
    assert code == 0, report


def test_unreadable_keys_are_exit_2(git_repo: Path, tmp_path: Path) -> None:
    init(git_repo)
    with_backlog(git_repo, "- {id: T-1, title: a, status: DONE}\n")
    # A --key that cannot be read is refused even before any evidence needs it.
    proc = lifeos(git_repo, "backlog", "check", "--key", str(tmp_path / "nope.pub"))
    assert_one_line_error(proc, 2, "KEY_MISSING")
    # Without lifeos.pub, evidence cannot be checked at all.
    spine_run(git_repo, "run-1", "T-1", "LANDED")
    (git_repo / "lifeos.pub").unlink()
    proc = lifeos(git_repo, "backlog", "check")
    assert_one_line_error(proc, 2, "KEY_MISSING")
    assert proc.stdout == ""


def test_invalid_lifeos_yaml_is_exit_2(git_repo: Path) -> None:
    with_backlog(git_repo)
    (git_repo / "lifeos.yaml").write_text("backlog:\n  max_wip: 0\n")
    proc = lifeos(git_repo, "backlog", "check")
    assert_one_line_error(proc, 2, "CONFIG_INVALID")
