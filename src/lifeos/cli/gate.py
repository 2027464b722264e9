"""``lifeos gate check``: judge a change (a commit or the working tree) by policy.

The command's work is :func:`lifeos.policy.command.check`, which the console script
also runs without click when the arguments are plain options.
"""

from __future__ import annotations

import click

from lifeos.cli._common import config_option, json_option


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
    from lifeos.policy.command import check

    return check(base, head, policy_spec, as_json, config_path)
