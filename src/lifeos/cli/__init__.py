"""The ``lifeos`` command.

Command groups live in their own modules and are imported only when used;
``lifeos --help`` lists them from the table below without importing them.
Errors are one line on stderr ending in a reason code, with the exit codes
pinned in DESIGN.md: 0 success, 1 failed, 2 bad input, 3 verification failed or
blocked, 4 paused, 5 budget exceeded, 6 escalated.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from lifeos import __version__

__all__ = ["cli", "main", "run"]

# name -> (module:attribute, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "backlog": (
        "lifeos.cli.backlog:backlog",
        "List the backlog and check it against recorded runs.",
    ),
    "config": ("lifeos.cli.config_cmd:config", "Validate and show lifeos.yaml."),
    "demo": ("lifeos.cli.demo:demo", "Run the spine end to end on the demo project, offline."),
    "evidence": ("lifeos.cli.evidence:evidence", "Verify signed evidence bundles."),
    "gate": ("lifeos.cli.gate:gate", "Judge a change against the repository's gate policy."),
    "init": (
        "lifeos.cli.config_cmd:init",
        "Write a commented starter lifeos.yaml at the repository root.",
    ),
    "job": ("lifeos.cli.job:job", "Submit OpenClaw jobs to the spine and report their status."),
    "ledger": ("lifeos.cli.ledger:ledger", "Verify, inspect, sign and export the ledger."),
    "llm": (
        "lifeos.cli.llm:llm",
        "Call a configured model, serve recorded answers, or record them.",
    ),
    "mission": ("lifeos.cli.mission:mission", "List and run missions."),
    "packet": ("lifeos.cli.packet:packet", "Validate packets and print packet skeletons."),
    "run-mission": (
        "lifeos.cli.run_mission:run_mission_cmd",
        "Synthesize a mission packet from a backlog task and run it (exit codes as spine).",
    ),
    "runs": ("lifeos.cli.runs:runs", "List and inspect recorded runs."),
    "spine": (
        "lifeos.cli.spine:spine",
        "Run backlog tasks to landed commits: run, resume, approve, reject, list, show.",
    ),
    "status": (
        "lifeos.cli.config_cmd:status",
        "Show the repository root, the config source and whether it validates.",
    ),
    "test": ("lifeos.cli.harness:test", "Run harness test files (scenarios and expectations)."),
    "worker": ("lifeos.cli.worker:worker", "Run spine phases as Temporal activities."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module, _, attr = spec[0].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lifeos", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read settings from this file instead of lifeos.yaml at the repository root.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """LifeOS: governed, auditable, resumable runs of AI coding agents."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _say(message: str) -> None:
    click.echo(f"lifeos: error: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (``sys.argv[1:]`` when None); return the exit code."""
    from lifeos.errors import LifeOSError, ReasonCode

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv: Any = cli.main(args=args, prog_name="lifeos", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _say(f"{exc.format_message()}{hint} [{ReasonCode.INVALID_INPUT.value}]")
        return 2
    except click.Abort:
        _say("aborted")
        return 130
    except click.ClickException as exc:
        _say(f"{exc.format_message()} [{ReasonCode.INVALID_INPUT.value}]")
        return 2
    except LifeOSError as exc:
        _say(exc.one_line())
        return exc.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    return rv if isinstance(rv, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
