"""``lifeos run-mission --from-backlog ID``: a backlog task as one recorded mission."""

from __future__ import annotations

import click

from lifeos.cli._common import json_option, print_json

SPINE_MISSIONS = ("design", "build", "build_with_validation", "review", "steward")


@click.command("run-mission")
@click.option("--from-backlog", "task_id", required=True, metavar="ID", help="The task to run.")
@click.option(
    "--backlog",
    "backlog_file",
    default=None,
    metavar="PATH",
    help="The backlog file (default: lifeos.yaml's backlog.path or config/backlog.yaml).",
)
@click.option(
    "--mission-type",
    type=click.Choice(SPINE_MISSIONS),
    default="steward",
    show_default=True,
    help="How far to take the task (steward: to a landed commit).",
)
@json_option
def run_mission_cmd(
    task_id: str, backlog_file: str | None, mission_type: str, as_json: bool
) -> int:
    """Synthesize a mission packet from a backlog task and run it (exit codes as spine)."""
    import time
    import uuid
    from pathlib import Path

    from lifeos.backlog import load_backlog
    from lifeos.canonical import stable_uuid
    from lifeos.cli._common import backlog_path, open_repo_store, repo, result_exit_code
    from lifeos.durable import run_recorded
    from lifeos.engine import ExecutionContext, Orchestrator
    from lifeos.errors import InputError
    from lifeos.registry import MISSION_REGISTRY
    from lifeos.services import Services

    where = repo()
    if not where.in_git:
        raise InputError(f"{where.root}: not inside a git repository")
    path = Path(backlog_file) if backlog_file else backlog_path(where)
    task = load_backlog(path).get(task_id)
    packet = {
        "packet_id": stable_uuid("mission-packet", task.id, mission_type, where.head or ""),
        "task_id": task.id,
        "mission_type": mission_type,
        "task_description": f"{task.title}. {task.description}".strip(),
        "context_refs": list(task.context),
        "constraints": [f"acceptance: {a}" for a in task.acceptance]
        + [f"approval: {a}" for a in task.approvals],
    }
    if not as_json:
        click.echo("=== Mission Synthesis Engine ===")
        click.echo(f"Task ID: {task.id}\nBacklog: {path}\nMission Type: {mission_type}\n")
        click.echo("Step 1: Synthesizing mission packet")
        click.echo(f"  packet_id: {packet['packet_id']}")
        click.echo(f"  task_description: {str(packet['task_description'])[:80]}")
        click.echo(f"  context_refs: {len(task.context)} files")
        click.echo(f"  constraints: {len(packet['constraints'])}\n")
        click.echo("Step 2: Executing mission via orchestrator")
    inputs = {"task_id": task.id}
    workflow = MISSION_REGISTRY[mission_type](inputs)
    ctx = ExecutionContext(
        initial_state={},
        metadata={"repo_root": str(where.root), "baseline_commit": where.head},
    )
    where, store = open_repo_store(where)
    run_id = str(uuid.uuid4())
    try:
        result = run_recorded(
            store,
            Orchestrator(services=Services(store=store), clock=time.perf_counter),
            workflow,
            ctx,
            run_id,
            kind="mission",
            name=mission_type,
            config={"params": inputs, "packet": packet},
        )
    finally:
        store.close()
    mission = (result.final_state or {}).get("mission_result") or {}
    code = result_exit_code(result)
    if code == 0 and not mission.get("success"):
        code = 1
    spine_state = (mission.get("outputs") or {}).get("state")
    if spine_state is not None:
        from lifeos.spine import EXIT_FOR_STATE, SpineState

        if not mission.get("success"):
            code = EXIT_FOR_STATE[SpineState(spine_state)] or 1
    if as_json:
        print_json({"packet": packet, "result": result.to_dict()})
        return code
    click.echo(f"  success: {bool(mission.get('success'))}")
    click.echo(f"  mission_type: {mission_type}")
    if spine_state:
        click.echo(f"  spine run: {(mission.get('outputs') or {}).get('run_id')} {spine_state}")
    if mission.get("reason_code"):
        click.echo(f"  reason_code: {mission['reason_code']}")
    click.echo("\n=== Mission Complete ===")
    click.echo(f"Packet ID: {packet['packet_id']}")
    click.echo(f"Status: {'SUCCESS' if mission.get('success') else 'FAILED'}")
    return code
