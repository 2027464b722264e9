"""``lifeos status``, ``lifeos config validate|show`` and ``lifeos init``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from lifeos.cli._common import (
    config_option,
    json_option,
    load_settings,
    open_repo_store,
    print_json,
    repo,
)

if TYPE_CHECKING:
    from lifeos.status import StatusReport


@click.command()
@config_option
@click.option(
    "--write",
    is_flag=True,
    help="Compute the runtime status report and write it to artifacts/status/ and "
    "artifacts/packets/status/.",
)
@click.option(
    "--key",
    "key_file",
    default=None,
    metavar="FILE",
    help="With --write: trust this public key for the ledger and evidence.",
)
@json_option
def status(config_path: str | None, write: bool, key_file: str | None, as_json: bool) -> int:
    """Show the repository root, the config source and whether it validates.

    With --write: compute the runtime status report — facts (ledger size, head and
    verdict, latest signed checkpoint, runs by state, paused runs and their age, backlog
    counts, today's agent spend) and contradictions — and write it, atomically, to
    artifacts/status/runtime_status.json and
    artifacts/packets/status/checkpoint_report_<YYYYMMDD>.json. Its status is fail when
    the ledger or any evidence fails (exit 3), warn for any other contradiction (exit 0,
    the contradictions printed), ok otherwise (exit 0); bad input exits 2. --json prints
    the report.
    """
    if write:
        return _write_status(config_path, key_file, as_json)
    if key_file is not None:
        raise click.UsageError("--key needs --write")
    from lifeos.errors import ConfigError

    where = repo()
    info: dict[str, object] = {
        "repo_root": str(where.root),
        "in_git": where.in_git,
        "head": where.head,
    }
    code = 0
    try:
        loaded = load_settings(where.root, config_path)
        info["config_source"] = str(loaded.source) if loaded.source else None
        info["config_validation"] = "VALID" if loaded.source else "N/A (defaults)"
        info["env_overrides"] = loaded.overrides
    except ConfigError as exc:
        info["config_source"] = config_path or "lifeos.yaml"
        info["config_validation"] = f"INVALID: {exc.one_line()}"
        code = exc.exit_code
    if as_json:
        print_json(info)
    else:
        for key in ("repo_root", "head", "config_source", "config_validation"):
            click.echo(f"{key}: {info.get(key) if info.get(key) is not None else 'NONE'}")
    return code


def _write_status(config_path: str | None, key_file: str | None, as_json: bool) -> int:
    """``status --write``: compute, write and show the runtime status report."""
    from lifeos.backlog import load_backlog
    from lifeos.cli.backlog import _evidence_checker
    from lifeos.clock import SystemClock
    from lifeos.ledger.keys import PUBLIC_KEY_FILE, load_verifier
    from lifeos.ledger.note import Verifier
    from lifeos.status import FAIL_CODES, compute_status, max_paused_hours_setting, write_status

    where = repo()
    settings = load_settings(where.main_root, config_path).data
    paused_limit = max_paused_hours_setting(settings)
    relative = str(settings["backlog"]["path"])
    backlog_file = where.root / relative
    backlog = load_backlog(backlog_file) if backlog_file.exists() else None
    explicit = Path(key_file) if key_file is not None else None
    trusted: list[Verifier] = []
    if explicit is not None or (where.main_root / PUBLIC_KEY_FILE).is_file():
        trusted.append(load_verifier(where, explicit))  # a named key must load, runs or not

    def verifier() -> Verifier:  # evidence needs a key; without one: KEY_MISSING, exit 2
        if not trusted:
            trusted.append(load_verifier(where, explicit))
        return trusted[0]

    _, store = open_repo_store(where)
    try:
        report = compute_status(
            store,
            SystemClock(),
            repo_root=str(where.main_root),
            backlog=backlog,
            check_evidence=_evidence_checker(where, verifier),
            verifier=trusted[0] if trusted else None,
            backlog_path=relative,
            max_wip=int(settings["backlog"]["max_wip"]),
            max_paused_hours=paused_limit,
            daily_caps=settings.get("budget") or {},
        )
    finally:
        store.close()
    paths = write_status(report, where.main_root)
    if as_json:
        click.echo(report.to_json(), nl=False)
    else:
        _show_status(report, paths)
    if report.status == "fail":
        first = next(c for c in report.contradictions if c.code in FAIL_CODES)
        count = len(report.contradictions)
        plural = "s" if count != 1 else ""
        click.echo(
            f"lifeos: error: runtime status is fail: {count} contradiction{plural} [{first.code}]",
            err=True,
        )
    return report.exit_code


def _show_status(report: StatusReport, paths: tuple[Path, Path]) -> None:
    """The report for people: a summary line, the main facts, each contradiction."""
    facts = report.facts
    count = len(report.contradictions)
    plural = "s" if count != 1 else ""
    click.echo(f"status: {report.status} ({count} contradiction{plural})")
    ledger = facts["ledger"]
    verdict = "verified" if ledger["verified"] else f"NOT verified [{ledger['reason_code']}]"
    click.echo(f"ledger: {ledger['size']} entries, head {ledger['head'] or 'none'}, {verdict}")
    latest = facts["latest_checkpoint"]
    click.echo(
        "latest checkpoint: "
        + (f"size {latest['tree_size']} at {latest['created_at']}" if latest else "none")
    )
    spine = facts["runs"]["spine"]
    states = ", ".join(f"{s} {n}" for s, n in spine["by_state"].items() if n)
    click.echo(f"spine runs: {spine['total']}" + (f" ({states})" if states else ""))
    paused = facts["paused_runs"]
    if paused:
        ages = [p["age_hours"] for p in paused if p["age_hours"] is not None]
        oldest = f", oldest {max(ages):.1f} h" if ages else ""
        click.echo(f"paused runs: {len(paused)}{oldest} (limit {facts['max_paused_hours']:g} h)")
    backlog = facts["backlog"]
    if backlog["present"]:
        counts = ", ".join(f"{s} {n}" for s, n in backlog["by_status"].items())
        click.echo(f"backlog: {backlog['tasks']} tasks ({counts})")
    else:
        click.echo(f"backlog: none at {backlog['path']} (backlog checks skipped)")
    spend = facts["budget_today"]
    click.echo(
        f"budget today ({spend['day']}): {spend['tokens']} tokens, "
        f"${spend['cost_usd']:.6f}, {spend['calls']} calls"
    )
    for c in report.contradictions:
        click.echo(f"{c.code}: {c.message}")
    for path in paths:
        click.echo(f"wrote {path}")


@click.group()
def config() -> None:
    """Validate and show lifeos.yaml."""


@config.command("validate")
@config_option
def validate_cmd(config_path: str | None) -> int:
    """Validate lifeos.yaml (or --config PATH); exit 2 naming the key and line if invalid."""
    from lifeos.config import CONFIG_FILE
    from lifeos.errors import ConfigError, ReasonCode

    where = repo()
    loaded = load_settings(where.root, config_path)
    if loaded.source is None:
        raise ConfigError(
            f"no {CONFIG_FILE} at {where.root}; run 'lifeos init' or pass --config PATH",
            ReasonCode.CONFIG_MISSING,
        )
    click.echo(f"VALID: {loaded.source}")
    return 0


@config.command("show")
@config_option
def show_cmd(config_path: str | None) -> int:
    """Print the effective settings as canonical JSON (secrets are never in them)."""
    from lifeos.canonical import canonical_text

    loaded = load_settings(repo().root, config_path)
    click.echo(canonical_text(loaded.data))
    return 0


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing lifeos.yaml.")
def init(force: bool) -> int:
    """Write a commented starter lifeos.yaml at the repository root.

    Also creates the store in .lifeos/ and, on first use, the repository's Ed25519 key
    pair: the private key in .lifeos/ (mode 0600) and the public key as lifeos.pub.
    """

    from lifeos.config import CONFIG_FILE, starter_config
    from lifeos.fsutil import atomic_write

    where = repo()
    root = where.root
    target = root / CONFIG_FILE
    open_repo_store(where)[1].close()  # refuse a foreign store before writing anything
    if target.exists() and not force:
        click.echo(f"{target} exists; left as it is (--force overwrites it)")
        _init_store_and_keys()
        return 0
    atomic_write(target, starter_config().encode("utf-8"))
    click.echo(f"wrote {target}")
    _init_store_and_keys()
    return 0


def _init_store_and_keys() -> None:
    from lifeos.ledger.keys import PUBLIC_KEY_FILE, ensure_keypair

    where, store = open_repo_store()
    store.close()
    signer, created = ensure_keypair(where)
    pub = where.main_root / PUBLIC_KEY_FILE
    if created:
        click.echo(f"created the signing key in {where.lifeos_dir} (mode 0600)")
        click.echo(f"wrote {pub}: commit it, verifiers trust this key")
    else:
        click.echo(f"signing key {signer.name} already present; {pub} matches it")
