"""`lifeos job submit|status` on a copy of the demo project (replayed agents)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tests.e2e.test_spine_cli import checkout_state, lifeos, one_line_error

from lifeos.bridge.openclaw import evidence_problems
from lifeos.demo import prepare


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    return prepare(tmp_path)


def spine_runs(repo: Path) -> int:
    with sqlite3.connect(repo / ".lifeos/lifeos.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM runs WHERE kind = 'spine'").fetchone()[0])


def test_a_job_lands_with_evidence_and_a_duplicate_returns_it(demo_repo: Path) -> None:
    before = checkout_state(demo_repo)
    job = demo_repo.parent / "job.json"
    job.write_text(json.dumps({"job_id": "oc-1", "task_id": "T-1", "requester": "openclaw"}))
    proc = lifeos(demo_repo, "job", "submit", str(job), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "done" and out["reason_codes"] == [], out
    assert out["evidence"] == ".lifeos/evidence/openclaw/jobs/oc-1"
    folder = demo_repo / out["evidence"]
    assert evidence_problems(folder, repo_root=demo_repo) == []
    refs = json.loads((folder / "refs.json").read_text())
    assert refs["spine_evidence"] == out["spine_evidence"] and refs["ledger"]
    assert checkout_state(demo_repo) == before
    assert spine_runs(demo_repo) == 1
    again = lifeos(demo_repo, "job", "submit", str(job), "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == out
    assert spine_runs(demo_repo) == 1
    status = lifeos(demo_repo, "job", "status", "oc-1", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == out
    # Tampered evidence: the job is no longer reported done.
    (folder / "refs.json").write_text("{}")
    tampered = lifeos(demo_repo, "job", "status", "oc-1", "--json")
    assert tampered.returncode == 1
    assert json.loads(tampered.stdout)["reason_codes"] == ["EVIDENCE_INCOMPLETE"]


def test_a_bad_payload_is_one_line_exit_2(demo_repo: Path) -> None:
    job = demo_repo.parent / "bad.json"
    job.write_text(json.dumps({"job_id": "oc-2", "task_id": "T-1", "requester": "x", "x": 1}))
    proc = lifeos(demo_repo, "job", "submit", str(job))
    one_line_error(proc, 2, "INVALID_INPUT")
    assert "'x'" in proc.stderr
    one_line_error(lifeos(demo_repo, "job", "status", "nope"), 2, "TARGET_NOT_FOUND")
    assert spine_runs(demo_repo) == 0 if (demo_repo / ".lifeos/lifeos.db").exists() else True
