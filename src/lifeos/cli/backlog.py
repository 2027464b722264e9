"""``lifeos backlog list|check``: the backlog file, and how it squares with recorded runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lifeos.cli._common import backlog_path, json_option, print_json, repo

if TYPE_CHECKING:
    from lifeos.backlog import EvidenceFailure
    from lifeos.ledger.note import Verifier
    from lifeos.repo import RepoContext
    from lifeos.store.base import RunRecord, Store


@click.group()
def backlog() -> None:
    """List the backlog and check it against recorded runs."""


@backlog.command("list")
@json_option
def list_cmd(as_json: bool) -> int:
    """List the backlog's tasks in file order: id, priority, status, title (exit 0).

    The file is config/backlog.yaml, or lifeos.yaml's backlog.path. A backlog that is
    missing or does not validate exits 2 naming the file, line and field.
    """
    from lifeos.backlog import load_backlog

    tasks = load_backlog(backlog_path(repo()))
    if as_json:
        print_json(tasks.to_dict())
        return 0
    if not tasks.tasks:
        click.echo(f"no tasks in {tasks.source}")
        return 0
    rows = [("ID", "PRIORITY", "STATUS", "TITLE")]
    rows += [(t.id, t.priority, t.status, " ".join(t.title.split())) for t in tasks]
    width_id = max(len(r[0]) for r in rows)
    width_status = max(len(r[2]) for r in rows)
    for task_id, priority, status, title in rows:
        click.echo(f"{task_id:<{width_id}}  {priority:<8}  {status:<{width_status}}  {title}")
    return 0


@backlog.command("check")
@click.option(
    "--key", "key_file", default=None, metavar="FILE", help="Trust this public key for evidence."
)
@json_option
def check_cmd(key_file: str | None, as_json: bool) -> int:
    """Check the backlog against the recorded spine runs (exit 0, or 3 on contradictions).

    Reports DONE_WITHOUT_EVIDENCE (a DONE task with no LANDED spine run whose evidence
    verifies), LANDED_NOT_DONE (a LANDED spine run whose task is not DONE),
    EVIDENCE_MISSING / EVIDENCE_INVALID (a spine run's evidence bundle is missing or does
    not verify against lifeos.pub or --key FILE) and WIP_EXCEEDED (more IN_PROGRESS tasks
    than backlog.max_wip). A backlog, config or key that cannot be read exits 2.
    """
    from lifeos.backlog import find_contradictions, load_backlog
    from lifeos.cli._common import load_settings, open_repo_store
    from lifeos.ledger.keys import load_verifier

    where = repo()
    tasks = load_backlog(backlog_path(where))
    max_wip = int(load_settings(where.main_root, None).data["backlog"]["max_wip"])
    trusted: list[Verifier] = []
    if key_file is not None:  # a key named on the command line must load, runs or not
        trusted.append(load_verifier(where, Path(key_file)))

    def verifier() -> Verifier:
        if not trusted:
            trusted.append(load_verifier(where, None))
        return trusted[0]

    _, store = open_repo_store(where)
    try:
        spine = [r for r in _all_runs(store) if r["kind"] == "spine"]
    finally:
        store.close()
    found = find_contradictions(tasks, spine, _evidence_checker(where, verifier), max_wip=max_wip)
    if as_json:
        print_json(
            {
                "backlog": tasks.source,
                "contradictions": [c.to_dict() for c in found],
                "max_wip": max_wip,
                "ok": not found,
                "spine_runs": len(spine),
                "tasks": len(tasks),
            }
        )
    elif not found:
        click.echo(f"backlog OK: {len(tasks)} tasks, {len(spine)} spine runs, no contradictions")
    else:
        for c in found:
            click.echo(f"{c.code}: {c.message}")
    if found:
        plural = "s" if len(found) != 1 else ""
        click.echo(
            f"lifeos: error: {len(found)} contradiction{plural} between the backlog and the "
            f"recorded runs [{found[0].code}]",
            err=True,
        )
        return 3
    return 0


def _all_runs(store: Store) -> list[RunRecord]:
    """Every run in the store (``list_runs`` takes a limit; raise it until all fit)."""
    limit = 1000
    while True:
        records = store.list_runs(limit)
        if len(records) < limit:
            return records
        limit *= 4


def _evidence_checker(
    where: RepoContext, verifier: Callable[[], Verifier]
) -> Callable[[str, str], EvidenceFailure | None]:
    """Check a run's evidence folder (relative to the main root) with the trusted key."""
    from lifeos.backlog import EvidenceFailure
    from lifeos.evidence import verify_bundle
    from lifeos.policy.paths import unsafe_reason

    def check(run_id: str, evidence: str) -> EvidenceFailure | None:
        reason = unsafe_reason(evidence.rstrip("/"))
        if reason is not None:
            return EvidenceFailure(
                "EVIDENCE_INVALID", f"the evidence path {evidence!r} is unsafe: {reason}"
            )
        folder = where.main_root / evidence
        if not folder.is_dir():
            return EvidenceFailure("EVIDENCE_MISSING", f"no evidence bundle at {evidence}")
        report = verify_bundle(folder, verifier())
        if not report.ok:
            first = report.problems[0]
            return EvidenceFailure(
                "EVIDENCE_INVALID",
                f"the evidence at {evidence} does not verify [{report.reason_code}]: "
                f"{first.file}: {first.message}",
            )
        if report.run_id != run_id:
            return EvidenceFailure(
                "EVIDENCE_INVALID",
                f"the evidence at {evidence} is signed for run {report.run_id!r}, not {run_id!r}",
            )
        return None

    return check
