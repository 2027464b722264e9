"""`lifeos job submit|status` on a copy of the demo project (replayed agents), with
real callback receivers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.cli import checkout_state, lifeos, one_line_error

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
    assert out["evidence"] == "artifacts/evidence/openclaw/jobs/oc-1"
    folder = demo_repo / out["evidence"]
    # The folder is in the checkout, untracked, and LifeOS-owned (checkout_state leaves
    # it out; the next job's clean-tree check does too: see the budget test).
    plain = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=demo_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "?? artifacts/evidence/openclaw/jobs/oc-1/manifest.json" in plain.splitlines()
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


class Hook:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/lifeos"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.stop()


def submit(repo: Path, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path = repo.parent / f"{payload['job_id']}.json"
    path.write_text(json.dumps(payload))
    proc = lifeos(repo, "job", "submit", str(path), "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def record(repo: Path, job_id: str) -> dict[str, Any]:
    return dict(json.loads((repo / ".lifeos/jobs" / f"{job_id}.json").read_text()))


def test_an_inline_task_lands_and_the_callback_hears_it(demo_repo: Path, hook: Hook) -> None:
    """T-1 taken out of the backlog and sent inline instead (the recorded agents know
    it): the job lands, the callback gets the result, and `lifeos status` does not
    count the inline task as missing from the backlog."""
    backlog = demo_repo / "config/backlog.yaml"
    text = backlog.read_text()
    start, end = text.index("- id: T-1"), text.index("- id: T-2")
    backlog.write_text(text[:start] + text[end:])
    subprocess.run(["git", "commit", "-qam", "T-1 leaves the backlog"], cwd=demo_repo, check=True)
    task = {
        "id": "T-1",
        "title": "Count words case-insensitively",
        "description": "wordcount.top_words should treat 'The' and 'the' as one word.",
        "priority": "P1",
        "acceptance": ["python -m pytest -q"],
        "context": ["src/wordcount/__init__.py"],
    }
    job = {"job_id": "oc-inline", "requester": "openclaw", "task": task, "callback": hook.url}
    code, out = submit(demo_repo, job)
    assert code == 0 and out["status"] == "done", out
    assert hook.bodies == [out]  # told once, with the result
    assert record(demo_repo, "oc-inline")["notified_state"] == "LANDED"
    proc = lifeos(demo_repo, "status", "--write", "--json")
    report = json.loads(proc.stdout)
    assert not any(c.startswith("LANDED_NOT_DONE") for c in report["contradictions"]), report
    # Polling again does not tell the callback again.
    assert lifeos(demo_repo, "job", "status", "oc-inline").returncode == 0
    assert len(hook.bodies) == 1


def test_a_jobs_budget_lowers_the_runs_caps(demo_repo: Path) -> None:
    """lifeos.yaml allows 40 calls; the job allows 4 (the designer and three builder
    turns): the run stops before the first review call, and a resume keeps the cap."""
    job = {"job_id": "oc-cap", "task_id": "T-1", "requester": "r", "budget": {"calls": 4}}
    code, out = submit(demo_repo, job)
    assert code == 5 and out["status"] == "budget_exceeded", out
    assert out["reason_codes"] == ["BUDGET_EXCEEDED"]
    proc = lifeos(demo_repo, "spine", "resume", out["run_id"], "--json")
    assert proc.returncode == 5 and json.loads(proc.stdout)["agent_calls"] == 0, proc.stdout
    # A job may lower the caps, never raise them past lifeos.yaml's.
    config = demo_repo / "lifeos.yaml"
    config.write_text(config.read_text().replace("calls: 40", "calls: 4"))
    subprocess.run(["git", "commit", "-qam", "4 calls a run"], cwd=demo_repo, check=True)
    raised = {"job_id": "oc-more", "task_id": "T-3", "requester": "r", "budget": {"calls": 99}}
    assert (demo_repo / "artifacts/evidence/openclaw/jobs/oc-cap/manifest.json").is_file()
    code, out = submit(demo_repo, raised)
    # Not DIRTY_WORKTREE: the first job's evidence folder is LifeOS-owned.
    assert code == 5 and out["status"] == "budget_exceeded", out


def test_an_unreachable_callback_is_retried_when_the_job_is_polled(demo_repo: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    job = {
        "job_id": "oc-late",
        "task_id": "T-1",
        "requester": "r",
        "callback": f"http://127.0.0.1:{port}/lifeos",
    }
    code, out = submit(demo_repo, job)
    assert code == 0 and out["status"] == "done", out  # a callback never fails a job
    assert "ConnectError" in record(demo_repo, "oc-late")["callback_error"]
    receiver = Hook(port)  # the receiver comes up; the next poll delivers
    try:
        assert lifeos(demo_repo, "job", "status", "oc-late").returncode == 0
        assert [b["status"] for b in receiver.bodies] == ["done"]
    finally:
        receiver.stop()
    assert "callback_error" not in record(demo_repo, "oc-late")
