"""``lifeos packet validate|new``: the seeds' packet schema v1.2.

``packet validate`` exits with the seeds' codes (DESIGN.md's one exception): 0 pass,
1 generic, 2 schema, 3 security, 4 lineage, 5 replay, 6 version incompatible.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lifeos.cli._common import json_option, open_repo_store, print_json, repo
from lifeos.packets.validate import CORE_PACKET_TYPES

if TYPE_CHECKING:
    from lifeos.ledger.note import Verifier
    from lifeos.packets.validate import PacketResult
    from lifeos.repo import RepoContext
    from lifeos.store import Store


@click.group()
def packet() -> None:
    """Validate packets and print packet skeletons."""


def _parse_now(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint="--now") from None
    if moment.tzinfo is None:
        raise click.BadParameter("give a UTC offset or Z", param_hint="--now")
    return moment


def _verifiers(where: RepoContext, key_file: str | None) -> list[Verifier]:
    from lifeos.ledger.keys import PUBLIC_KEY_FILE, load_verifier

    if key_file is not None:
        return [load_verifier(where, Path(key_file))]
    if (where.main_root / PUBLIC_KEY_FILE).is_file():
        return [load_verifier(where)]
    return []


def _store(where: RepoContext, record_nonce: bool) -> Store | None:
    """The nonce store; read-only validation never creates one that does not exist yet."""
    from lifeos.store import DB_FILE

    if record_nonce:
        return open_repo_store(where)[1]
    configured = os.environ.get("LIFEOS_STORE_URL") or os.environ.get("LIFEOS_STORE")
    if configured is None and not (where.lifeos_dir / DB_FILE).is_file():
        return None
    return open_repo_store(where)[1]


def _say(result: PacketResult) -> None:
    if result.ok:
        click.echo(f"PASS {result.source} ({result.packet_type} {result.packet_id})")
    else:
        click.echo(
            f"lifeos: error: {result.source}: {result.check}: {result.message} "
            f"[{result.reason_code}] (exit {result.exit_code})",
            err=True,
        )


@packet.command("validate")
@click.argument("file", required=False, metavar="FILE")
@click.option("--bundle", "bundle_dir", default=None, metavar="DIR", help="Validate a folder.")
@click.option("--now", "now_text", default=None, metavar="TIME", help="Judge TTL/skew at TIME.")
@click.option("--record-nonce", is_flag=True, help="Consume the nonce(s) when valid.")
@click.option("--key", "key_file", default=None, metavar="FILE", help="Trust this public key.")
@json_option
@click.pass_context
def validate_cmd(
    ctx: click.Context,
    file: str | None,
    bundle_dir: str | None,
    now_text: str | None,
    record_nonce: bool,
    key_file: str | None,
    as_json: bool,
) -> None:
    """Validate a packet FILE or a --bundle DIR (exit 0 pass, 1 generic, 2 schema,
    3 security, 4 lineage, 5 replay, 6 version incompatible).

    Read-only unless --record-nonce. Signatures are checked against lifeos.pub at the
    repository root or --key FILE. An approval's review packet must be in the bundle.
    """
    from lifeos.packets.validate import validate_bundle, validate_file

    if (file is None) == (bundle_dir is None):
        raise click.UsageError("give a packet FILE or --bundle DIR (one of them)")
    now = _parse_now(now_text)
    where = repo()
    verifiers = _verifiers(where, key_file)
    store = _store(where, record_nonce)
    try:
        if bundle_dir is not None:
            bundle = validate_bundle(
                Path(bundle_dir),
                now=now,
                verifiers=verifiers,
                store=store,
                record_nonce=record_nonce,
            )
            code, results = bundle.exit_code, bundle.results
            if as_json:
                print_json(bundle.to_dict())
            elif not results:
                reason = "PACKET_MISSING" if bundle.message.startswith("no ") else "INVALID_INPUT"
                click.echo(f"lifeos: error: {bundle.message} [{reason}]", err=True)
        else:
            assert file is not None
            result = validate_file(
                Path(file), now=now, verifiers=verifiers, store=store, record_nonce=record_nonce
            )
            code, results = result.exit_code, [result]
            if as_json:
                print_json(result.to_dict())
    finally:
        if store is not None:
            store.close()
    if not as_json:
        for r in results:
            _say(r)
    ctx.exit(code)


@packet.command("new")
@click.argument("packet_type", metavar="TYPE", type=click.Choice(CORE_PACKET_TYPES))
@click.option("--yaml", "as_yaml", is_flag=True, help="Print YAML instead of JSON.")
def new_cmd(packet_type: str, as_yaml: bool) -> None:
    """Print a skeleton packet of TYPE (fresh ids, created now) that passes the schemas.

    A COUNCIL_APPROVAL_PACKET still needs the review's id and hash and a signature.
    """
    from lifeos.packets.validate import new_packet

    doc = new_packet(packet_type, dt.datetime.now(dt.UTC))
    if as_yaml:
        import yaml

        click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)
    else:
        print_json(doc)
