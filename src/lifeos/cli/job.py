"""``lifeos job``: OpenClaw jobs, submitted and polled (see lifeos.bridge.openclaw)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from lifeos.cli._common import config_option, json_option, print_json

if TYPE_CHECKING:
    from lifeos.bridge.openclaw import JobResult


@click.group()
def job() -> None:
    """Submit OpenClaw jobs to the spine and report their status."""


def _report(result: JobResult, as_json: bool) -> int:
    if as_json:
        print_json(result.to_dict())
        return result.exit_code
    click.echo(f"{result.status}: job {result.job_id}, run {result.run_id}")
    if result.reason_codes:
        click.echo(f"  reason codes: {' '.join(result.reason_codes)}")
    if result.commit:
        click.echo(f"  commit {result.commit} on {result.branch}")
    if result.approval_needed:
        click.echo(f"  approval needed: {result.approval_needed['approve']}")
    if result.evidence:
        click.echo(f"  evidence {result.evidence}")
    return result.exit_code


def _post(url: str, body: Any) -> int:
    """POST a job's result to its callback (10 s at most)."""
    import httpx

    return httpx.post(url, json=body, timeout=10.0).status_code


def _load(source: str) -> Any:
    from pathlib import Path

    from lifeos.errors import InputError

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{source}: not JSON ({exc})") from None


@job.command("submit")
@click.argument("source", metavar="FILE.json|-")
@json_option
@config_option
def submit_cmd(source: str, as_json: bool, config_path: str | None) -> int:
    """Run a job's task through the spine now; a known job id reports the existing job."""
    from lifeos.bridge.openclaw import JobPayload, job_result, read_job_record, write_job_record
    from lifeos.cli._common import open_repo_store
    from lifeos.cli.spine import _make_spine
    from lifeos.errors import InputError, LifeOSError

    where, store = open_repo_store()
    payload = JobPayload.from_dict(_load(source), where.main_root)
    record = read_job_record(where.lifeos_dir, payload.job_id)
    if record is not None:
        if record["job"] != payload.to_dict():
            raise InputError(f"job {payload.job_id} was already submitted with another payload")
        return _report(job_result(where.main_root, store, record, _post), as_json)
    record = {"job": payload.to_dict(), "run_id": None, "submitted_at": store.now()}
    write_job_record(where.lifeos_dir, record)
    try:
        outcome = _make_spine(config_path).start(
            payload.task_id, inline=payload.inline_task(), budget=payload.budget
        )
    except LifeOSError:
        (where.lifeos_dir / "jobs" / f"{payload.job_id}.json").unlink(missing_ok=True)
        raise
    record["run_id"] = outcome.run_id
    write_job_record(where.lifeos_dir, record)
    return _report(job_result(where.main_root, store, record, _post), as_json)


@job.command("status")
@click.argument("job_id")
@json_option
def status_cmd(job_id: str, as_json: bool) -> int:
    """A job's status, reason codes, branch, commit, evidence and usage (exit as spine)."""
    from lifeos.bridge.openclaw import job_result, read_job_record
    from lifeos.cli._common import open_repo_store
    from lifeos.errors import InputError, ReasonCode

    where, store = open_repo_store()
    record = read_job_record(where.lifeos_dir, job_id)
    if record is None:
        raise InputError(f"no job {job_id!r}", ReasonCode.TARGET_NOT_FOUND)
    return _report(job_result(where.main_root, store, record, _post), as_json)
