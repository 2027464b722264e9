"""``lifeos status``, ``lifeos config validate|show`` and ``lifeos init``."""

from __future__ import annotations

import click

from lifeos.cli._common import (
    config_option,
    json_option,
    load_settings,
    open_repo_store,
    print_json,
    repo,
)


@click.command()
@config_option
@json_option
def status(config_path: str | None, as_json: bool) -> int:
    """Show the repository root, the config source and whether it validates."""
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
