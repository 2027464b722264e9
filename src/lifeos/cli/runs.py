"""``lifeos runs list|show``: recorded runs, their checkpoints and ledger entries."""

from __future__ import annotations

import json

import click

from lifeos.cli._common import json_option, open_repo_store, print_json


@click.group()
def runs() -> None:
    """List and inspect recorded runs."""


@runs.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option
def list_cmd(limit: int, as_json: bool) -> int:
    """List runs, newest first."""
    _, store = open_repo_store()
    try:
        records = store.list_runs(limit)
    finally:
        store.close()
    if as_json:
        print_json(list(records))
        return 0
    for r in records:
        reason = f" [{r['failure_reason']}]" if r["failure_reason"] else ""
        click.echo(
            f"{r['run_id']}  {r['created_at']}  {r['kind']:<8} {r['name']:<12} "
            f"{r['status']}{reason}"
        )
    return 0


@runs.command("show")
@click.argument("run_id")
@json_option
def show_cmd(run_id: str, as_json: bool) -> int:
    """Show a run: its record, checkpoints, journal keys and ledger entries."""
    from lifeos.errors import InputError

    _, store = open_repo_store()
    try:
        record = store.get_run(run_id)
        if record is None:
            raise InputError(f"no run {run_id}")
        checkpoints = [
            {
                "checkpoint_id": c["checkpoint_id"],
                "info": c["info"],
                "state_hash": c["state_hash"],
                "status": c["status"],
                "step_id": c["step_id"],
                "step_index": c["step_index"],
            }
            for c in store.list_checkpoints(run_id)
        ]
        journal = [list(k) for k in store.journal_keys(run_id)]
        entries = [
            {**json.loads(r["entry"]), "leaf_hash": r["leaf_hash"]}
            for r in store.ledger_rows_for_run(run_id)
        ]
    finally:
        store.close()
    if as_json:
        print_json(
            {"checkpoints": checkpoints, "journal": journal, "ledger": entries, "run": record}
        )
        return 0
    click.echo(f"run {run_id}: {record['kind']} {record['name']} — {record['status']}")
    if record["failure_reason"]:
        click.echo(f"  reason: {record['failure_reason']}")
    click.echo(f"  created {record['created_at']}, updated {record['updated_at']}")
    for c in checkpoints:
        click.echo(f"  step {c['step_index']} {c['step_id']}: {c['status']}")
    click.echo(f"  {len(entries)} ledger entries, {len(journal)} journal records")
    return 0
