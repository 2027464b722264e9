"""``lifeos evidence verify``: check a run's signed evidence bundle."""

from __future__ import annotations

from pathlib import Path

import click

from lifeos.cli._common import json_option, print_json, repo


@click.group()
def evidence() -> None:
    """Verify signed evidence bundles."""


@evidence.command("verify")
@click.argument("target", metavar="RUN_ID|PATH")
@click.option("--key", "key_file", default=None, metavar="FILE", help="Trust this public key.")
@json_option
def verify_cmd(target: str, key_file: str | None, as_json: bool) -> int:
    """Recompute every hash of a bundle and check its signature (exit 0 or 3).

    RUN_ID looks in .lifeos/evidence/RUN_ID/; a PATH names a bundle folder. The
    signature is checked against lifeos.pub at the repository root or --key FILE,
    never against a key found only in .lifeos/.
    """
    from lifeos.evidence import EVIDENCE_DIR, EvidenceError, verify_bundle
    from lifeos.ledger.keys import load_verifier

    where = repo()
    folder = Path(target)
    if not folder.is_dir():
        if "/" in target or "\\" in target or target in ("", ".", ".."):
            raise EvidenceError(f"no evidence bundle at {target}")
        folder = where.lifeos_dir / EVIDENCE_DIR / target
        if not folder.is_dir():
            raise EvidenceError(f"no evidence bundle for run {target} (looked in {folder})")
    verifier = load_verifier(where, Path(key_file) if key_file else None)
    report = verify_bundle(folder, verifier)
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        click.echo(f"evidence OK: {folder} ({report.files} files, signed by {report.keyid})")
    if not report.ok:
        for p in report.problems:
            click.echo(
                f"lifeos: error: evidence differs: {p.file}: {p.message} [{p.reason.value}]",
                err=True,
            )
        click.echo(
            f"lifeos: error: evidence verification failed for {folder} [{report.reason_code}]",
            err=True,
        )
        return 3
    return 0
