"""Every command has help and is documented in the README; main() is importable."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from lifeos.cli import COMMANDS, cli, main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _walk(
    command: click.Command, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    out = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            out.extend(_walk(sub, (*path, name)))
    return out


ALL = _walk(cli, ())


@pytest.mark.parametrize(
    "path,command", ALL[1:], ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_command_has_help_and_is_in_readme(
    path: tuple[str, ...], command: click.Command
) -> None:
    assert (command.help or "").strip(), f"lifeos {' '.join(path)} has no help text"
    if isinstance(command, click.Group):
        return
    assert f"lifeos {' '.join(path)}" in README, f"`lifeos {' '.join(path)}` is not in README.md"


def test_static_help_table_matches_the_real_commands() -> None:
    ctx = click.Context(cli)
    for name, (_, short) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        first = (command.help or "").strip().splitlines()[0]
        assert first == short, f"{name}: table says {short!r}, command says {first!r}"


def test_main_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", out, re.M), name
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "lifeos 0.1.0"


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("lifeos: error:") and err.endswith("[INVALID_INPUT]")


def test_readme_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick and "make test" in quick
