"""``lifeos mission list|run``: run one registered mission through the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lifeos.cli._common import json_option, print_json, repo, result_exit_code


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
@json_option
def run_cmd(
    mission_type: str,
    params: str | None,
    param: tuple[str, ...],
    state_path: str | None,
    approve: tuple[str, ...],
    reject: tuple[str, ...],
    note: str,
    as_json: bool,
) -> int:
    """Run MISSION_TYPE once and report its result.

    Exit 0 when it completes, 1 when it fails, 2 on bad input, 4 when it pauses at
    a human step (re-run with --approve STEP), 6 when a mission escalates.
    """
    import datetime as dt
    import time

    from lifeos.engine import Decision, ExecutionContext, Orchestrator
    from lifeos.registry import run_mission

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
    orchestrator = Orchestrator(clock=time.perf_counter)
    result = run_mission(mission_type, ctx, inputs, orchestrator=orchestrator, decisions=decisions)
    code = result_exit_code(result)
    if as_json:
        print_json(result.to_dict())
    else:
        _summary(mission_type, result)
    if result.status in ("failed", "escalated"):
        click.echo(
            f"lifeos: error: mission '{mission_type}' {result.status} at step "
            f"'{result.failed_step_id}': {result.error_message} [{result.reason_code}]",
            err=True,
        )
    return code


def _summary(mission_type: str, result: Any) -> None:
    from lifeos.canonical import pretty_json

    click.echo(f"mission {mission_type}: {result.status}")
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
            f"paused: re-run with --approve {result.waiting_step_id} (or --reject) to continue"
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
