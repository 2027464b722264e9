"""``lifeos gate check`` without click gives exactly what the click command gives.

The console script runs the command without click when its arguments are plain
options (:func:`lifeos.policy.command.plain_options`). Every case here is run both
ways, through the console script's entry point and through ``lifeos.cli.main``, and
must print the same bytes on stdout and stderr and exit with the same code.
"""

from __future__ import annotations

import datetime as dt
import gc
import subprocess
import sys
from contextlib import chdir
from pathlib import Path

import pytest
from tests.conftest import git

from lifeos import _entry, clock
from lifeos.cli import main
from lifeos.cli.gate import check_cmd
from lifeos.policy.command import OPTIONS, plain_options

MOMENT = dt.datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock.SystemClock, "now", lambda self: MOMENT)


@pytest.fixture
def repo(git_repo: Path, tmp_path: Path) -> Path:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "app.py").write_text("print(1)\n")
    (git_repo / "config").mkdir()
    (git_repo / "config" / "x.yaml").write_text("x: 1\n")
    (tmp_path / "policy.yaml").write_text(
        "policy:\n  profile: code\n  allowlist: [src/, config/]\n"
    )
    (tmp_path / "settings.yaml").write_text("policy:\n  profile: seed-v2\n")
    (tmp_path / "folder").mkdir()
    return git_repo


def _both(
    where: Path, args: list[str], capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    with chdir(where):
        code = main(["gate", "check", *args])
    clicked = (code, *capsys.readouterr())
    mp.setattr(sys, "argv", ["lifeos", "gate", "check", *args])
    try:
        with chdir(where), pytest.raises(SystemExit) as stop:
            _entry.run()
    finally:
        gc.enable()
    exit_code = stop.value.code if isinstance(stop.value.code, int) else 0
    entry = (exit_code, *capsys.readouterr())
    return clicked, entry


CASES: list[tuple[list[str], bool]] = [
    # (arguments, read without click)
    ([], True),  # no policy anywhere: POLICY_MISSING
    (["--policy", "code"], True),
    (["--policy=code", "--json"], True),
    (["--json", "--policy", "seed-v2"], True),
    (["--policy", "code", "--base", "HEAD"], True),
    (["--policy", "code", "--base=HEAD", "--head", "HEAD"], True),
    (["--policy", "code", "--base", "no-such-rev"], True),
    (["--policy", "no-such-profile"], True),
    (["--policy", "{tmp}/policy.yaml", "--json"], True),
    (["--config", "{tmp}/settings.yaml"], True),
    (["--config", "{tmp}/missing.yaml"], True),
    (["--config", "{tmp}/folder"], False),
    (["--policy"], False),
    (["--policy", "code", "--policy", "seed-v2"], False),
    (["--json", "--json", "--policy", "code"], False),
    (["--policy", "code", "extra"], False),
    (["--bogus"], False),
    (["--help"], False),
    (["-h"], False),
    (["--policy", "code", "--head", "--output=x"], False),
    (["--policy="], False),
    (["--policy", "code", "--"], False),
]


@pytest.mark.parametrize("args,plain", CASES, ids=[" ".join(c[0]) or "none" for c in CASES])
def test_the_same_output_with_or_without_click(
    repo: Path,
    tmp_path: Path,
    args: list[str],
    plain: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert (plain_options(args) is not None) == plain
    clicked, entry = _both(repo, args, capsys, monkeypatch)
    assert entry == clicked
    assert clicked[1] or clicked[2]  # something was said


@pytest.mark.parametrize("args", [["--policy", "code"], ["--policy", "code", "--json"]])
def test_outside_a_repository_and_before_a_commit(
    tmp_path: Path,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clicked, entry = _both(tmp_path, args, capsys, monkeypatch)
    assert entry == clicked and clicked[0] == 2 and "not inside a git repository" in clicked[2]
    git(tmp_path, "init", "-q", "-b", "main")
    clicked, entry = _both(tmp_path, args, capsys, monkeypatch)
    assert entry == clicked and clicked[0] == 2 and "no commits" in clicked[2]


def test_output_with_escapes_goes_through_click(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "src" / "\x1b[31mred.py").write_text("x\n")
    clicked, entry = _both(repo, ["--policy", "code"], capsys, monkeypatch)
    assert entry == clicked and clicked[0] == 3


def test_the_options_are_the_click_commands() -> None:
    params = {p.opts[0]: (p.name, p.default) for p in check_cmd.params if p.name != "as_json"}
    assert params == OPTIONS
    assert [p.opts for p in check_cmd.params if p.name == "as_json"] == [["--json"]]


def test_shell_completion_goes_through_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LIFEOS_COMPLETE", "bash_complete")
    assert plain_options(["--policy", "code"]) is None


def test_click_is_not_loaded_for_plain_options(repo: Path) -> None:
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('click' in sys.modules, file=sys.stderr))\n"
        "from lifeos._entry import run\n"
        "run()\n"
    )
    for args, loaded in ((["--policy", "code", "--json"], "False"), (["--help"], "True")):
        proc = subprocess.run(
            [sys.executable, "-c", script, "gate", "check", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.stderr.strip().splitlines()[-1] == loaded, proc.stderr


@pytest.mark.parametrize("with_file", [False, True])
@pytest.mark.parametrize(
    "env", [{}, {"LIFEOS_POLICY_PROFILE": "code", "LIFEOS_POLICY_MAX_FILES": "3"}]
)
def test_the_policy_section_is_read_as_the_cli_reads_settings(
    git_repo: Path,
    tmp_path: Path,
    with_file: bool,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lifeos.cli._common import load_settings
    from lifeos.policy.command import _policy_section

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if with_file:
        (git_repo / "lifeos.yaml").write_text("policy:\n  profile: seed-v2\n  max_files: 9\n")
    explicit = tmp_path / "other.yaml"
    explicit.write_text("policy:\n  profile: code\n")
    for config in (None, str(explicit)):
        assert _policy_section(git_repo, config) == load_settings(git_repo, config).policy
