"""CLI cold start: wall time of fresh ``lifeos`` processes.

Measures: the median wall time of ``lifeos --help`` and of
``lifeos mission run echo --json`` (run inside a temporary git repository made
with ``git init`` and one commit, so repository detection behaves normally),
each a new process started from the venv's ``lifeos`` script.

Target: <= 1.3x the reference for ``--help``, <= 2.5x for the echo run.

Reference: ``--help`` of a minimal click application (one command, one option)
written to a temporary file and run with the same interpreter, measured in the
same run. The three commands are interleaved on every repetition so they share
the machine's noise.

Bytecode: every process gets ``PYTHONPYCACHEPREFIX`` pointing into the temporary
directory (and ``PYTHONDONTWRITEBYTECODE`` unset), so the warm-up runs compile
each module once for all three commands and nothing is written outside the
temporary directory. Without that, an editable install under
``PYTHONDONTWRITEBYTECODE=1`` would recompile every lifeos module on each run
while click's installed bytecode was reused, which no installed user sees.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPETITIONS = 30
WARMUP = 2
TARGET_HELP = 1.3
TARGET_ECHO = 2.5

MINIMAL_CLICK_APP = '''\
import click


@click.command()
@click.option("--name", default="world", help="Who to greet.")
def cli(name):
    """Greet NAME."""
    click.echo(f"hello {name}")


if __name__ == "__main__":
    cli()
'''


def _git_repo(path: Path) -> None:
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    (path / "README.md").write_text("bench\n", encoding="utf-8")
    subprocess.run([*git, "add", "README.md"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=path, check=True)


def _time_once(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``argv`` once; return its wall time in ms (a non-zero exit is an error)."""
    start = time.perf_counter_ns()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter_ns() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
        )
    return elapsed / 1e6


def main() -> None:
    bindir = Path(sys.executable).parent
    lifeos = bindir / "lifeos"
    if not lifeos.exists():
        print(f"CLI benchmark skipped: no lifeos script at {lifeos} (install the package)")
        return
    with tempfile.TemporaryDirectory(prefix="lifeos-bench-cli-") as tmp:
        root = Path(tmp)
        repo = root / "repo"
        repo.mkdir()
        _git_repo(repo)
        app = root / "minimal_click_app.py"
        app.write_text(MINIMAL_CLICK_APP, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")

        commands: dict[str, list[str]] = {
            "click --help (reference)": [sys.executable, str(app), "--help"],
            "lifeos --help": [str(lifeos), "--help"],
            "lifeos mission run echo --json": [str(lifeos), "mission", "run", "echo", "--json"],
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(WARMUP):
            for argv in commands.values():
                _time_once(argv, repo, env)
        labels = list(commands)
        for rep in range(REPETITIONS):
            # Rotate the order each repetition so no command always runs first.
            shift = rep % len(labels)
            for label in labels[shift:] + labels[:shift]:
                times[label].append(_time_once(commands[label], repo, env))

    print(
        f"{REPETITIONS} repetitions each, interleaved, after {WARMUP} warm-up rounds "
        f"(bytecode cached in a temporary PYTHONPYCACHEPREFIX); python {sys.version.split()[0]}"
    )
    medians = {label: statistics.median(samples) for label, samples in times.items()}
    for label, samples in times.items():
        print(
            f"  {label:<32} median {medians[label]:7.1f} ms  "
            f"(min {min(samples):7.1f}, max {max(samples):7.1f})"
        )
    reference = medians["click --help (reference)"]
    for label, target in (
        ("lifeos --help", TARGET_HELP),
        ("lifeos mission run echo --json", TARGET_ECHO),
    ):
        ratio = medians[label] / reference
        verdict = "meets" if ratio <= target else "MISSES"
        print(f"ratio {label} / click --help: {ratio:.2f}x; {verdict} the target of <= {target}x")


if __name__ == "__main__":
    main()
