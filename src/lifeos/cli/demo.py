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
@click.option(
    "--builder",
    type=click.Choice(["native", "opencode"]),
    default="native",
    show_default=True,
    help="The builder: LifeOS's own, or OpenCode (needs the opencode executable).",
)
@click.option(
    "--opencode",
    "opencode_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The opencode executable for --builder opencode (default: opencode on PATH).",
)
def demo(keep: str | None, builder: str, opencode_path: str | None) -> int:
    """Run the spine end to end on the demo project, offline.

    Four tasks with recorded agents (no network): one lands, one is blocked by the
    gate, one lands after a repair, one pauses for approval and lands. With
    `--builder opencode`, OpenCode builds in each run's worktree, its model answering
    from a recorded cassette too.
    """
    import tempfile

    from lifeos.demo import DemoReport, find_opencode, run_demo, run_opencode_demo
    from lifeos.errors import EXIT_FAILED, EXIT_OK, InputError

    if opencode_path is not None and builder != "opencode":
        raise InputError("--opencode is only used with --builder opencode")
    # before anything runs: a missing opencode is one line and exit 2
    binary = find_opencode(opencode_path) if builder == "opencode" else None

    def run(where: Path) -> DemoReport:
        if binary is not None:
            return run_opencode_demo(where, binary, out=click.echo)
        return run_demo(where, out=click.echo)

    if keep is not None:
        folder = Path(keep)
        if folder.exists() and any(folder.iterdir()):
            raise InputError(f"{folder} is not empty")
        folder.mkdir(parents=True, exist_ok=True)
        report = run(folder.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="lifeos-demo-") as tmp:
            report = run(Path(tmp))
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
    for note in report.notes:
        click.echo(f"note: {note}")
    if keep is not None:
        click.echo(
            f"look around: cd {report.workdir} && lifeos spine list && git log --all --oneline"
        )
    click.echo("demo " + ("OK" if report.ok else "did NOT end as expected"))
    return EXIT_OK if report.ok else EXIT_FAILED
