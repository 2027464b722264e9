"""The work of ``lifeos gate check``, free of the command-line framework.

:func:`check` is the command: find the repository, read the change (or take the read
the console script started early, see :mod:`lifeos.policy.prefetch`), load the policy,
judge, print. The click command (``lifeos.cli.gate``) calls it, and so does the
console script itself when the arguments are plain options it reads exactly as click
would (:func:`plain_options`): then neither click nor the command modules are loaded,
a sizeable share of the command's own time on a large change. Anything else (help, an
unknown or repeated option, a value that looks like an option, shell completion)
goes through click as before.

Output goes through :func:`echo`, which writes what ``click.echo`` writes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["OPTIONS", "check", "echo", "plain_options", "run_plain"]

OPTIONS: dict[str, tuple[str, Any]] = {
    "--base": ("base", "HEAD"),
    "--head": ("head", None),
    "--policy": ("policy_spec", None),
    "--config": ("config_path", None),
}
"""The options that take a value: the parameter each sets and its default (the click
command's, which a test pins)."""


def echo(text: str, nl: bool = True, err: bool = False) -> None:
    """``click.echo(text, nl=nl, err=err)``, without loading click for plain text.

    click writes the text to the stream and flushes; it would only change text that
    holds an ANSI escape (stripped when the stream is not a terminal), and would only
    wrap a stream whose encoding is ASCII. Those cases, and any other stream, go to
    click itself.
    """
    stream = sys.stderr if err else sys.stdout
    encoding = str(getattr(stream, "encoding", "") or "").lower().replace("-", "")
    if "\x1b" in text or encoding != "utf8":
        import click

        click.echo(text, nl=nl, err=err)
        return
    stream.write(text + "\n" if nl else text)
    stream.flush()


def check(
    base: str = "HEAD",
    head: str | None = None,
    policy_spec: str | None = None,
    as_json: bool = False,
    config_path: str | None = None,
) -> int:
    """Run ``lifeos gate check``; return its exit code (0 PASS, 3 BLOCK).

    Raises:
        LifeOSError: bad input (exit 2): not a repository, a revision that does not
            exist, a policy that is missing or invalid.
    """
    from lifeos.errors import EXIT_BLOCKED, EXIT_OK, InputError
    from lifeos.policy import prefetch
    from lifeos.policy.gate import json_opening, judge, read_change
    from lifeos.repo import detect_repo
    from lifeos.threads import in_background

    where = detect_repo(Path.cwd())
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
            section = _policy_section(where.main_root, config_path)
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
            echo(json_opening(read.base, read.changes), nl=False)

        decision = judge(where.root, read, policy, meanwhile=opening)
        echo(decision.json_closing())
    else:
        decision = judge(where.root, read, policy)
        echo(
            f"{decision.result}: {len(decision.changes)} changed path(s), policy "
            f"{decision.policy_name} {decision.policy_hash[:12]}, tree {decision.tree}"
        )
        for finding in decision.reasons:
            echo(f"  {finding.code.value}  {finding.to_dict()['path']}  {finding.message}")
        echo(f"decision {decision.decision_id}")
    return EXIT_OK if decision.passed else EXIT_BLOCKED


def _policy_section(root: Path, config_path: str | None) -> dict[str, Any] | None:
    """lifeos.yaml's (or the ``--config`` file's) ``policy:`` section, with the
    ``LIFEOS_*`` overrides, as ``lifeos.cli._common.load_settings`` reads it."""
    from lifeos.config import load_config

    env = {k: v for k, v in os.environ.items() if k.startswith("LIFEOS_")}
    return load_config(root, Path(config_path) if config_path else None, env).policy


def plain_options(args: Sequence[str]) -> dict[str, Any] | None:
    """The parameters of ``lifeos gate check ARGS`` when every argument is one of the
    command's options in a form click reads the same way (``--json``, ``--opt VALUE``,
    ``--opt=VALUE``, each at most once, no value empty or starting with ``-``, no
    ``--config`` that click would refuse); None otherwise, and for shell completion."""
    if "_LIFEOS_COMPLETE" in os.environ:
        return None
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--json" and "as_json" not in found:
            found["as_json"] = True
            i += 1
            continue
        name, eq, value = arg.partition("=")
        known = OPTIONS.get(name)
        if known is None or known[0] in found:
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
        i += 1 if eq else 2
        if not value or value.startswith("-"):
            return None
        found[known[0]] = value
    config = found.get("config_path")
    if config is not None and _refused_by_click(config):
        return None  # click says why
    return found


def _refused_by_click(path: str) -> bool:
    """Whether ``click.Path(dir_okay=False)`` refuses ``path``: it exists and is a
    folder or cannot be read (a path that does not exist passes)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) or not os.access(path, os.R_OK)


def run_plain(options: dict[str, Any]) -> int:
    """Run the command with ``options`` from :func:`plain_options`; errors are reported
    as ``lifeos.cli.main`` reports them (one line on stderr, the pinned exit code)."""
    from lifeos.errors import LifeOSError

    try:
        return check(**options)
    except LifeOSError as exc:
        echo(f"lifeos: error: {exc.one_line()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        echo("lifeos: error: interrupted", err=True)
        return 130
