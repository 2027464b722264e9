"""``lifeos gate check``: judge a change (a commit or the working tree) by policy."""

from __future__ import annotations

import contextlib

import click

from lifeos.cli._common import config_option, json_option, repo


@click.group()
def gate() -> None:
    """Judge a change against the repository's gate policy."""


@gate.command("check")
@click.option("--base", default="HEAD", show_default=True, metavar="REV", help="Compare from here.")
@click.option(
    "--head",
    default=None,
    metavar="REV",
    help="Compare to this commit (default: the tree the working tree would commit).",
)
@click.option(
    "--policy",
    "policy_spec",
    default=None,
    metavar="NAME|FILE",
    help="A built-in profile (seed-v2, code) or a policy file, instead of lifeos.yaml.",
)
@json_option
@config_option
def check_cmd(
    base: str, head: str | None, policy_spec: str | None, as_json: bool, config_path: str | None
) -> int:
    """Exit 0 PASS, 3 BLOCK (every reason code and path listed), 2 bad input.

    Without --head the gate judges exactly the tree `git add -A` would commit
    (built in a temporary index; your index is untouched) and prints its id.
    """
    from lifeos.cli._common import load_settings
    from lifeos.errors import EXIT_BLOCKED, EXIT_OK, InputError
    from lifeos.policy import prefetch
    from lifeos.policy.gate import json_opening, judge, read_change
    from lifeos.threads import in_background

    where = repo()
    change = prefetch.take(where, base, head)  # started by the entry point, if it was
    if not where.in_git:
        raise InputError(f"{where.root}: not inside a git repository")
    if change is None:
        # git reads the change (most of the time, for a large one) while the policy loads.
        # HEAD was just resolved by finding the repository: no need to ask git again.
        known = where.head if base == "HEAD" else None
        change = in_background(
            lambda: read_change(where.root, base, head, base_commit=known), "lifeos-gate-read"
        )
    try:
        from lifeos.policy.model import resolve_policy

        section = None
        if policy_spec is None:
            section = load_settings(where.main_root, config_path).policy
        policy = resolve_policy(policy_spec, section)
    except BaseException:
        with contextlib.suppress(Exception):
            change()  # let git finish and its temporary index be removed
        raise
    read = change()
    if as_json:

        def opening() -> None:
            # The record's opening (base and every changed path, most of its bytes)
            # does not depend on the verdict: printed while git reads blob sizes. (A
            # command stopped after this, interrupted, leaves a record cut short, as
            # any interrupted output would, and exits non-zero.)
            click.echo(json_opening(read.base, read.changes), nl=False)

        decision = judge(where.root, read, policy, meanwhile=opening)
        click.echo(decision.json_closing())
    else:
        decision = judge(where.root, read, policy)
        click.echo(
            f"{decision.result}: {len(decision.changes)} changed path(s), policy "
            f"{decision.policy_name} {decision.policy_hash[:12]}, tree {decision.tree}"
        )
        for finding in decision.reasons:
            click.echo(f"  {finding.code.value}  {finding.to_dict()['path']}  {finding.message}")
        click.echo(f"decision {decision.decision_id}")
    return EXIT_OK if decision.passed else EXIT_BLOCKED
