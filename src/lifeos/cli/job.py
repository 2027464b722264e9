"""``lifeos job``: OpenClaw jobs, submitted and polled (see lifeos.bridge.openclaw)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from lifeos.cli._common import config_option, json_option, print_json
from lifeos.cli.worker import engine_options, on_temporal

if TYPE_CHECKING:
    from lifeos.bridge.openclaw import JobPayload, JobResult
    from lifeos.spine import Spine


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
@engine_options
@json_option
@config_option
def submit_cmd(
    source: str,
    engine: str,
    address: str,
    task_queue: str,
    no_wait: bool,
    as_json: bool,
    config_path: str | None,
) -> int:
    """Run a job's task through the spine; a known job id reports the existing job."""
    from lifeos.bridge.openclaw import (
        JobPayload,
        drop_job_record,
        job_result,
        read_job_record,
        write_job_record,
    )
    from lifeos.cli._common import open_repo_store
    from lifeos.cli.spine import _make_spine
    from lifeos.errors import InputError, LifeOSError

    if engine == "local" and no_wait:
        raise InputError("--no-wait is for --engine temporal")
    where, store = open_repo_store()
    payload = JobPayload.from_dict(_load(source), where.main_root)
    record = read_job_record(where.lifeos_dir, payload.job_id)
    if record is not None:
        if record["job"] != payload.to_dict():
            raise InputError(f"job {payload.job_id} was already submitted with another payload")
        return _report(job_result(where.main_root, store, record, _post), as_json)
    record = {"job": payload.to_dict(), "run_id": None, "submitted_at": store.now()}
    write_job_record(where.lifeos_dir, record)

    def created(run_id: str) -> None:
        record["run_id"] = run_id
        write_job_record(where.lifeos_dir, record)

    def start() -> int:
        spine = _make_spine(config_path)
        try:
            if engine == "local":
                created(
                    spine.start(
                        payload.task_id, inline=payload.inline_task(), budget=payload.budget
                    ).run_id
                )
            else:
                _on_temporal(spine, payload, address, task_queue, not no_wait, created)
        except LifeOSError:
            if record["run_id"] is None:  # nothing was started: the job was never taken
                drop_job_record(where.lifeos_dir, payload.job_id)
            raise
        result = job_result(where.main_root, store, record, _post)
        code = _report(result, as_json)
        return 0 if no_wait and result.status == "running" else code  # submitted

    return start() if engine == "local" else on_temporal(start)


def _on_temporal(
    spine: Spine,
    payload: JobPayload,
    address: str,
    task_queue: str,
    wait: bool,
    created: Callable[[str], None],
) -> None:
    """Submit the job's run to Temporal's workers; with ``wait``, until it stops."""
    from lifeos.cli.spine import _say
    from lifeos.temporal.client import run_sync, submit_task
    from lifeos.temporal.contract import EngineRef

    run_sync(
        lambda: submit_task(
            spine,
            payload.task_id,
            EngineRef(address, task_queue),
            wait=wait,
            say=_say,
            inline=payload.inline_task(),
            budget=payload.budget,
            created=created,
        )
    )


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
