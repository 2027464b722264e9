"""``lifeos spine``: run a backlog task to a landed commit, resume, approve, inspect."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lifeos.cli._common import config_option, json_option, print_json
from lifeos.cli.worker import engine_options, on_temporal

if TYPE_CHECKING:
    from lifeos.spine import Spine, SpineOutcome
    from lifeos.temporal.contract import EngineRef


@click.group()
def spine() -> None:
    """Run backlog tasks to landed commits: run, resume, approve, reject, list, show."""


def _make_spine(config_path: str | None) -> Spine:
    import os

    from lifeos.cli._common import load_settings, open_repo_store
    from lifeos.errors import InputError
    from lifeos.spine.setup import repo_spine

    where, store = open_repo_store()
    if not where.in_git:
        raise InputError(f"{where.root}: not inside a git repository")
    settings = load_settings(where.main_root, config_path).data
    started = time.monotonic()
    live = sys.stderr.isatty()

    def progress(line: str) -> None:
        if not live:  # plain lines for logs and pipes
            click.echo(f"[spine] {line}", err=True)
            return
        spent = made.spend() if made is not None else {}
        tokens, cost = spent.get("tokens", 0), spent.get("cost_usd", 0.0)
        click.echo(
            f"[spine {time.monotonic() - started:6.1f}s {tokens:>7} tok ${cost:.4f}] {line}",
            err=True,
        )

    made: Spine | None = None
    made = repo_spine(where, store, settings, env=os.environ, progress=progress)
    return made


def _report(outcome: SpineOutcome, as_json: bool) -> int:
    if as_json:
        print_json(outcome.to_dict())
        return outcome.exit_code
    reasons = " ".join(outcome.reasons)
    click.echo(f"{outcome.state.value}: task {outcome.task_id}, run {outcome.run_id}")
    if reasons:
        click.echo(f"  reason codes: {reasons}")
    click.echo(f"  {outcome.message}")
    if outcome.commit:
        click.echo(f"  commit {outcome.commit} on {outcome.branch}")
    if outcome.evidence:
        click.echo(f"  evidence {outcome.evidence}")
    if outcome.worktree:
        click.echo(f"  worktree kept for inspection: {outcome.worktree}")
    click.echo(f"  agent calls: {outcome.agent_calls} made, {outcome.replayed_calls} replayed")
    return outcome.exit_code


@spine.command("run")
@click.option("--task", "task_id", default=None, metavar="ID", help="The backlog task to run.")
@click.option("--next", "take_next", is_flag=True, help="Run the next TODO task by priority.")
@engine_options
@json_option
@config_option
def run_cmd(
    task_id: str | None,
    take_next: bool,
    engine: str,
    address: str,
    task_queue: str,
    no_wait: bool,
    as_json: bool,
    config_path: str | None,
) -> int:
    """Run a task: exit 0 LANDED, 1 FAILED, 3 BLOCKED, 4 PAUSED, 5 BUDGET_EXCEEDED, 6 ESCALATED."""
    from lifeos.errors import InputError

    if (task_id is None) == (not take_next):
        raise InputError("give exactly one of --task ID or --next")
    if engine == "local":
        if no_wait:
            raise InputError("--no-wait is for --engine temporal")
        return _report(_make_spine(config_path).start(task_id), as_json)
    from lifeos.temporal.contract import EngineRef

    where = EngineRef(address, task_queue)
    return on_temporal(lambda: _submit(task_id, where, not no_wait, as_json, config_path))


def _submit(
    task_id: str | None, where: EngineRef, wait: bool, as_json: bool, config_path: str | None
) -> int:
    from lifeos.temporal.client import outcome_from_dict, run_sync, submit_task

    made = _make_spine(config_path)
    run_id, outcome = run_sync(lambda: submit_task(made, task_id, where, wait=wait, say=_say))
    if outcome is not None:
        return _report(outcome_from_dict(outcome), as_json)
    if as_json:
        print_json({"run_id": run_id, "state": "RUNNING", "engine": where.to_dict()})
    else:
        click.echo(
            f"RUNNING: run {run_id} on Temporal at {where.address} (task queue {where.task_queue})"
        )
    return 0


def _say(line: str) -> None:
    click.echo(f"[spine] {line}", err=True)


@spine.command("resume")
@click.argument("ref", metavar="RUN_ID|CHECKPOINT_ID")
@json_option
@config_option
def resume_cmd(ref: str, as_json: bool, config_path: str | None) -> int:
    """Continue a crashed or stopped run; nothing finished is repeated."""
    from lifeos.temporal.contract import temporal_run

    made = _make_spine(config_path)
    found = temporal_run(made.store, ref)
    if found is None:
        return _report(made.resume(ref), as_json)
    from lifeos.errors import ReasonCode
    from lifeos.spine.controller import SpineInputError
    from lifeos.temporal.client import outcome_from_dict, resume_run, run_sync
    from lifeos.temporal.contract import awaited_decision

    run, where = found
    point = awaited_decision(run)
    if point is not None:
        raise SpineInputError(
            f"run {run['run_id']} waits for approval ({point}): "
            f"`lifeos spine approve {run['run_id']}` or `reject`",
            ReasonCode.RESUME_INVALID,
        )
    return on_temporal(
        lambda: _report(
            outcome_from_dict(run_sync(lambda: resume_run(made, run, where, say=_say))),
            as_json,
        )
    )


def _decide(run_id: str, approve: bool, note: str, as_json: bool, config_path: str | None) -> int:
    """Decide locally, or send the decision to the run's Temporal workflow."""
    from lifeos.temporal.contract import temporal_run

    made = _make_spine(config_path)
    found = temporal_run(made.store, run_id)
    if found is None:
        return _report(made.decide(run_id, approve, note), as_json)
    from lifeos.errors import ReasonCode
    from lifeos.spine.controller import SpineInputError
    from lifeos.temporal.client import decide_run, outcome_from_dict, run_sync
    from lifeos.temporal.contract import awaited_decision

    run, where = found
    point = awaited_decision(run)
    if point is None:
        raise SpineInputError(
            f"run {run['run_id']} is {run['status']}, not waiting for approval",
            ReasonCode.RESUME_INVALID,
        )
    return on_temporal(
        lambda: _report(
            outcome_from_dict(
                run_sync(lambda: decide_run(run, where, point, approve, note, say=_say))
            ),
            as_json,
        )
    )


@spine.command("approve")
@click.argument("run_id")
@click.option("--note", default="", help="Why (recorded in the ledger).")
@json_option
@config_option
def approve_cmd(run_id: str, note: str, as_json: bool, config_path: str | None) -> int:
    """Approve a paused run and continue it (a Temporal run: signal its workflow)."""
    return _decide(run_id, True, note, as_json, config_path)


@spine.command("reject")
@click.argument("run_id")
@click.option("--note", required=True, help="Why (recorded in the ledger).")
@json_option
@config_option
def reject_cmd(run_id: str, note: str, as_json: bool, config_path: str | None) -> int:
    """Reject a paused run: it ends BLOCKED with HUMAN_REJECTED."""
    return _decide(run_id, False, note, as_json, config_path)


def _summary(run: Any) -> dict[str, Any]:
    config = run["config"]
    return {
        "run_id": run["run_id"],
        "task_id": run["name"],
        "state": run["status"],
        "phase": config.get("phase"),
        "attempt": config.get("attempt", 0),
        "reason_codes": config.get("reasons", []),
        "waiting_for": config.get("waiting_for") if run["status"] == "PAUSED" else None,
        "evidence": (config.get("outputs", {}).get("steward") or {}).get("evidence"),
        "commit": (config.get("outputs", {}).get("steward") or {}).get("commit")
        or (config.get("outputs", {}).get("build") or {}).get("commit"),
        "spent_cost_usd": run["spent_cost_usd"],
    }


@spine.command("list")
@json_option
def list_cmd(as_json: bool) -> int:
    """Spine runs, newest first."""
    from lifeos.cli._common import open_repo_store

    _, store = open_repo_store()
    runs = [_summary(r) for r in store.list_runs(limit=1000) if r["kind"] == "spine"]
    if as_json:
        print_json({"runs": runs})
        return 0
    for r in runs:
        codes = ",".join(r["reason_codes"]) or "-"
        click.echo(f"{r['run_id']}  {r['task_id']:<12} {r['state']:<16} {r['phase']:<8} {codes}")
    if not runs:
        click.echo("no spine runs yet", err=True)
    return 0


@spine.command("show")
@click.argument("run_id")
@json_option
def show_cmd(run_id: str, as_json: bool) -> int:
    """One run: state, phase, budget use, reason codes, evidence path."""
    from lifeos.cli._common import open_repo_store
    from lifeos.errors import InputError

    _, store = open_repo_store()
    run = store.get_run(run_id)
    if run is None or run["kind"] != "spine":
        raise InputError(f"no spine run {run_id!r}")
    data = _summary(run)
    data["checkpoints"] = [
        {"checkpoint_id": c["checkpoint_id"], "phase": c["step_id"], "status": c["status"]}
        for c in store.list_checkpoints(run_id)
    ]
    data["message"] = run["config"].get("message")
    if as_json:
        print_json(data)
        return 0
    for key in sorted(data):
        if key != "checkpoints":
            click.echo(f"{key}: {data[key]}")
    for c in data["checkpoints"]:
        click.echo(f"  checkpoint {c['checkpoint_id']} {c['phase']} {c['status']}")
    return 0


@spine.command("cleanup")
@click.argument("run_id")
def cleanup_cmd(run_id: str) -> int:
    """Remove a stopped run's worktree and branch."""
    from lifeos.cli._common import open_repo_store
    from lifeos.clock import SystemClock
    from lifeos.errors import InputError
    from lifeos.worktree import HardenedGit, Worktree, remove_worktree

    where, store = open_repo_store()
    run = store.get_run(run_id)
    if run is None or run["kind"] != "spine":
        raise InputError(f"no spine run {run_id!r}")
    if run["status"].upper() in ("RUNNING", "PAUSED"):
        raise InputError(f"run {run_id} is {run['status']}; resume or reject it first")
    if run["status"] == "LANDED":
        raise InputError(f"run {run_id} landed: its branch is the result, not clutter")
    config = run["config"]
    if not config.get("branch"):
        click.echo("nothing to clean up", err=True)
        return 0
    wt = Worktree(Path(config["worktree"]), config["branch"], config["baseline"], run_id)
    remove_worktree(HardenedGit(where.main_root, SystemClock()), wt, delete_branch=True)
    click.echo(f"removed {wt.path} and branch {wt.branch}")
    return 0
