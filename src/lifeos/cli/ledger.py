"""``lifeos ledger verify|show|checkpoint|prove|export``: the tamper-evident log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lifeos.cli._common import json_option, open_repo_store, print_json, repo


@click.group()
def ledger() -> None:
    """Verify, inspect, sign and export the ledger."""


@ledger.command("verify")
@click.option("--key", "key_file", default=None, metavar="FILE", help="Trust this public key.")
@click.option("--file", "export_file", default=None, metavar="FILE.jsonl", help="Verify an export.")
@json_option
def verify_cmd(key_file: str | None, export_file: str | None, as_json: bool) -> int:
    """Walk the chain, recompute the tree, check every signed checkpoint (exit 0 or 3).

    Signatures are checked against lifeos.pub at the repository root or --key FILE,
    never against a key found only in .lifeos/.
    """
    from lifeos.ledger.chain import read_export, verify_rows, verify_store
    from lifeos.ledger.keys import PUBLIC_KEY_FILE, load_verifier

    where = repo()
    explicit = Path(key_file) if key_file else None
    have_key = explicit is not None or (where.main_root / PUBLIC_KEY_FILE).is_file()
    verifier = load_verifier(where, explicit) if have_key else None
    if export_file is not None:
        rows, notes = read_export(Path(export_file))
        report = verify_rows(rows, notes, verifier)
    else:
        _, store = open_repo_store(where)
        try:
            report = verify_store(store, verifier)
        finally:
            store.close()
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        click.echo(
            f"ledger OK: {report.size} entries, root {report.root}, "
            f"{report.checkpoints} signed checkpoint(s)"
        )
    if not report.ok:
        click.echo(
            f"lifeos: error: ledger verification failed at seq {report.first_bad_seq}: "
            f"{report.message} [{report.reason_code}]",
            err=True,
        )
        return 3
    return 0


@ledger.command("show")
@click.option("--run", "run_id", default=None, help="Only this run's entries.")
@json_option
def show_cmd(run_id: str | None, as_json: bool) -> int:
    """List ledger entries (all, or one run's)."""
    _, store = open_repo_store()
    try:
        rows = store.ledger_rows_for_run(run_id) if run_id else list(store.ledger_rows())
    finally:
        store.close()
    entries = [{**json.loads(r["entry"]), "leaf_hash": r["leaf_hash"]} for r in rows]
    if as_json:
        print_json(entries)
        return 0
    for e in entries:
        payload = json.dumps(e["payload"], sort_keys=True)
        click.echo(f"{e['seq']:>6}  {e['ts']}  {e['type']:<14} {e['run_id'] or '-'}  {payload}")
    return 0


@ledger.command("checkpoint")
def checkpoint_cmd() -> int:
    """Sign the current tree head with the repository key and print the note."""
    from lifeos.ledger.chain import sign_checkpoint
    from lifeos.ledger.keys import load_signer

    where, store = open_repo_store()
    try:
        note = sign_checkpoint(store, load_signer(where))
    finally:
        store.close()
    click.echo(note, nl=False)
    return 0


@ledger.command("prove")
@click.argument("seq", type=click.IntRange(min=0))
def prove_cmd(seq: int) -> int:
    """Print an inclusion proof of entry SEQ in the current tree, as JSON."""
    from lifeos.ledger.chain import prove_inclusion

    _, store = open_repo_store()
    try:
        print_json(prove_inclusion(store, seq))
    finally:
        store.close()
    return 0


@ledger.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
def export_cmd(file: str) -> int:
    """Write the ledger to FILE.jsonl (one canonical entry per line) and FILE.jsonl.notes."""
    from lifeos.ledger.chain import export_ledger

    _, store = open_repo_store()
    try:
        count = export_ledger(store, Path(file))
    finally:
        store.close()
    click.echo(f"exported {count} entries to {file} (signed checkpoints in {file}.notes)")
    return 0
