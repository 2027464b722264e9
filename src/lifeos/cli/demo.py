"""``lifeos demo``: the spine end to end on the demo project, offline."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    default=None,
    help="Run in this (new or empty) folder and keep it, instead of a temporary one.",
)
def demo(keep: str | None) -> int:
    """Run the spine end to end on the demo project, offline.

    Four tasks with recorded agents (no network): one lands, one is blocked by the
    gate, one lands after a repair, one pauses for approval and lands.
    """
    import tempfile

    from lifeos.demo import run_demo
    from lifeos.errors import EXIT_FAILED, EXIT_OK, InputError

    if keep is not None:
        folder = Path(keep)
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"{folder} is not empty")
        folder.mkdir(parents=True, exist_ok=True)
        report = run_demo(folder.resolve(), out=click.echo)
    else:
        with tempfile.TemporaryDirectory(prefix="lifeos-demo-") as tmp:
            report = run_demo(Path(tmp), out=click.echo)
    click.echo("")
    click.echo(f"{'task':<6} {'state':<10} {'reason codes':<22} {'calls':>5}  commit / evidence")
    for row in report.rows:
        codes = " ".join(row["reasons"]) or "-"
        where = row["evidence"] or (row["commit"] or "-")
        commit = (row["commit"] or "")[:12]
        click.echo(
            f"{row['task']:<6} {row['state']:<10} {codes:<22} {row['calls']:>5}  {commit} {where}"
        )
    click.echo(
        f"ledger verified: {report.ledger_ok}; evidence verified: "
        f"{sum(report.evidence_ok.values())}/{len(report.evidence_ok)}"
    )
    if keep is not None:
        click.echo(
            f"look around: cd {report.workdir} && lifeos spine list && git log --all --oneline"
        )
    click.echo("demo " + ("OK" if report.ok else "did NOT end as expected"))
    return EXIT_OK if report.ok else EXIT_FAILED
