"""``lifeos mission list|run``: run one registered mission through the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lifeos.cli._common import (
    backlog_path,
    json_option,
    models_config,
    open_repo_store,
    print_json,
    repo,
    result_exit_code,
)
from lifeos.errors import UnknownMissionError


@click.group()
def mission() -> None:
    """List and run missions."""


@mission.command("list")
@json_option
def list_cmd(as_json: bool) -> int:
    """List the registered mission types, sorted."""
    from lifeos.registry import list_mission_types

    names = list_mission_types()
    if as_json:
        print_json(names)
    else:
        for name in names:
            click.echo(name)
    return 0


def _parse_inputs(params: str | None, param: tuple[str, ...]) -> dict[str, Any]:
    from lifeos.errors import InputError

    inputs: dict[str, Any] = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"invalid --param {item!r}: expected key=value")
        inputs[key] = value
    if params is not None:
        try:
            parsed = json.loads(params)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON in --params: {exc.msg} at column {exc.colno}") from None
        if not isinstance(parsed, dict):
            raise InputError(f"--params must be a JSON object, not {type(parsed).__name__}")
        inputs.update(parsed)
    return inputs


def _load_state(path: str | None) -> dict[str, Any]:
    from lifeos.errors import InputError
    from lifeos.yamlio import load_yaml_file

    if path is None:
        return {}
    data = load_yaml_file(Path(path)).data
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: the initial state must be an object")
    return data


@mission.command("run")
@click.argument("mission_type")
@click.option("--params", default=None, help="Mission parameters as a JSON object.")
@click.option(
    "--param", multiple=True, metavar="KEY=VALUE", help="One parameter as a string (repeatable)."
)
@click.option(
    "--state",
    "state_path",
    default=None,
    metavar="FILE",
    help="Initial state from a JSON or YAML file (for example the daily loop's entries).",
)
@click.option("--approve", multiple=True, metavar="STEP", help="Approve this human step.")
@click.option("--reject", multiple=True, metavar="STEP", help="Reject this human step.")
@click.option("--note", default="", help="A note recorded with --approve/--reject.")
@click.option(
    "--run-id",
    default=None,
    help="Continue this recorded run (after a pause or a crash) instead of starting one.",
)
@json_option
def run_cmd(
    mission_type: str,
    params: str | None,
    param: tuple[str, ...],
    state_path: str | None,
    approve: tuple[str, ...],
    reject: tuple[str, ...],
    note: str,
    run_id: str | None,
    as_json: bool,
) -> int:
    """Run MISSION_TYPE once and report its result.

    Every run is recorded in the repository's store (.lifeos/): the run, a checkpoint
    per step, the journal of side effects and ledger entries. Exit 0 when it
    completes, 1 when it fails, 2 on bad input, 4 when it pauses at a human step
    (continue with --run-id ID --approve STEP), 6 when a mission escalates.
    """
    import datetime as dt
    import os
    import time
    import uuid

    from lifeos.agents.factory import AgentLLM
    from lifeos.durable import run_recorded
    from lifeos.engine import Decision, ExecutionContext, Orchestrator
    from lifeos.registry import MISSION_REGISTRY, list_mission_types
    from lifeos.services import Services

    if mission_type == "autonomous_build_cycle":
        from lifeos.errors import InputError, ReasonCode

        raise InputError(
            "autonomous_build_cycle is not run directly: use `lifeos spine run --task ID` "
            "(worktree, gate, budget, approvals, evidence and resume come with it)",
            ReasonCode.DEPRECATED_PATH,
        )
    inputs = _parse_inputs(params, param)
    state = _load_state(state_path)
    decisions = {s: Decision.approve(note) for s in approve}
    decisions.update({s: Decision.reject(note) for s in reject})
    where = repo()
    ctx = ExecutionContext(
        initial_state=state,
        metadata={
            "baseline_commit": where.head,
            "cli_invocation": True,
            "repo_root": str(where.root),
            "today": dt.date.today().isoformat(),
        },
    )
    builder = MISSION_REGISTRY.get(mission_type)
    if builder is None:
        raise UnknownMissionError(
            f"Unknown mission: '{mission_type}'. Available missions: {list_mission_types()}"
        )
    workflow = builder(inputs)
    Orchestrator(clock=time.perf_counter).validate(workflow)
    where, store = open_repo_store(where)
    run_id = run_id or str(uuid.uuid4())
    try:
        models = models_config(where)
        services = Services(
            llm=AgentLLM(models, os.environ, where.root) if models else None,
            store=store,
            backlog_path=backlog_path(where),
        )
        orchestrator = Orchestrator(services=services, clock=time.perf_counter)
        result = run_recorded(
            store,
            orchestrator,
            workflow,
            ctx,
            run_id,
            kind="mission",
            name=mission_type,
            decisions=decisions,
            config={"params": inputs},
        )
    finally:
        store.close()
    code = result_exit_code(result)
    if as_json:
        print_json(result.to_dict())
        click.echo(f"lifeos: run {run_id} recorded ({result.status})", err=True)
    else:
        _summary(mission_type, result, run_id)
    if result.status in ("failed", "escalated"):
        click.echo(
            f"lifeos: error: mission '{mission_type}' {result.status} at step "
            f"'{result.failed_step_id}': {result.error_message} [{result.reason_code}]",
            err=True,
        )
    return code


def _summary(mission_type: str, result: Any, run_id: str) -> None:
    from lifeos.canonical import pretty_json

    click.echo(f"mission {mission_type}: {result.status} (run {run_id})")
    for step in result.executed_steps:
        mark = "FAIL" if step.id == result.failed_step_id else "ok"
        took = result.timings.get(step.id)
        extra = f"  ({took:.3f}s)" if took is not None else ""
        click.echo(f"  {mark:<4} {step.id}{extra}")
    state = result.final_state
    if result.status == "paused":
        waiting = next(s for s in result.workflow.steps if s.id == result.waiting_step_id)
        what = waiting.payload.get("description", "")
        click.echo(f"  WAIT {result.waiting_step_id}  {what}")
        click.echo(
            f"paused: continue with 'lifeos mission run {mission_type} --run-id {run_id} "
            f"--approve {result.waiting_step_id}' (or --reject)"
        )
    if isinstance(state.get("test_report"), dict):
        click.echo(f"tests: {state['test_report'].get('summary')}")
    daily = state.get("daily")
    if isinstance(daily, dict):
        for line in daily.get("log", [])[-1:]:
            click.echo(f"log: {line}")
        for p in daily.get("priorities", []):
            click.echo(f"  {p['rank']}. [{p['priority']}] {p['title']}")
    last = state.get("mission_result")
    if result.success and isinstance(last, dict) and last.get("outputs"):
        if "test_report" not in state:
            click.echo("outputs:")
            click.echo(pretty_json(last["outputs"]))
