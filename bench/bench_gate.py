"""Diff gate: ``gate check`` over a 10,000-file diff vs the git commands it runs.

Measures, on one temporary repository with a base commit (a handful of files) and
``LIFEOS_BENCH_GATE_N`` (default 10,000) new files under ``src/`` (100 directories,
small distinct contents):

* commit mode: ``check_change(base, head)`` with the ``code`` profile, next to the git
  commands it runs (three ``rev-parse``, the ``diff-tree`` with rename/copy detection,
  the ``cat-file --batch-check`` for the size limit) timed alone;
* working-tree mode: the same files untracked in the working tree,
  ``check_change(base)`` next to ``read-tree`` + ``add -A`` + ``write-tree`` +
  ``diff-tree`` + ``cat-file`` timed alone (each with a fresh temporary index);
* the whole command as a user runs it: ``lifeos gate check`` (the console script, a
  new Python process, start-up and imports included) on the working tree, and the
  same with ``--json`` (which prints all N changed paths).

Best of ``PASSES`` runs each. Target: each <= 2x the git commands alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lifeos.clock import FixedClock
from lifeos.policy.gate import check_change, git_diff_command
from lifeos.policy.gitread import _git_base, _git_env
from lifeos.policy.model import load_policy

N = int(os.environ.get("LIFEOS_BENCH_GATE_N", "10000"))
PASSES = 7
TARGET = 2.0
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@lifeos.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@lifeos.invalid",
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout


def _best(*fns: Callable[[], object]) -> list[float]:
    """Best time of each of ``fns`` over ``PASSES`` rounds, run interleaved (one of
    each per round), so load on the machine falls on all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(PASSES):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _write_files(repo: Path) -> None:
    for i in range(N):
        d = repo / "src" / f"pkg{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"VALUE_{i} = {i}\n# file {i} of the bench\n")


def _plumbing(
    root: Path, args: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None
) -> bytes:
    return subprocess.run(
        [*_git_base(root), *args],
        env=_git_env(env),
        input=stdin,
        capture_output=True,
        check=True,
    ).stdout


def main() -> int:
    policy = load_policy({"profile": "code"})
    with tempfile.TemporaryDirectory(prefix="lifeos-bench-gate-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        (repo / "README.md").write_text("bench\n")
        (repo / "src").mkdir()
        (repo / "src" / "__init__.py").write_text("")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")
        base = _git(repo, "rev-parse", "HEAD").strip()
        t0 = time.perf_counter()
        _write_files(repo)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "head")
        head = _git(repo, "rev-parse", "HEAD").strip()
        tree = _git(repo, "rev-parse", "HEAD^{tree}").strip()
        print(f"repository: {N} new files, built in {time.perf_counter() - t0:.2f} s")

        def gate_commit() -> None:
            d = check_change(repo, policy, base=base, head=head, clock=FixedClock())
            assert d.result == "PASS" and len(d.changes) == N, d.reason_codes

        def git_commit() -> None:
            for rev in (f"{base}^{{commit}}", "HEAD^{commit}", f"{head}^{{tree}}"):
                _plumbing(repo, ["rev-parse", "--verify", "--quiet", rev])
            raw = subprocess.run(
                git_diff_command(repo, base, tree),
                env=_git_env(),
                capture_output=True,
                check=True,
            ).stdout
            shas = sorted({r.split(b" ")[3].decode() for r in raw.split(b"\0")[0::2] if r})
            _plumbing(repo, ["cat-file", "--batch-check"], stdin="\n".join(shas).encode())

        git_c, gate_c = _best(git_commit, gate_commit)

        # Working tree: back to base, the N files untracked.
        _git(repo, "reset", "-q", "--mixed", base)

        def gate_worktree() -> None:
            d = check_change(repo, policy, base="HEAD", clock=FixedClock())
            assert d.result == "PASS" and len(d.changes) == N and d.tree == tree

        def git_worktree() -> None:
            with tempfile.TemporaryDirectory() as t:
                env = {"GIT_INDEX_FILE": str(Path(t) / "index")}
                _plumbing(repo, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
                _plumbing(repo, ["read-tree", "HEAD"], env)
                _plumbing(repo, ["add", "-A", "--", "."], env)
                wt = _plumbing(repo, ["write-tree"], env).decode().strip()
            raw = subprocess.run(
                git_diff_command(repo, base, wt),
                env=_git_env(),
                capture_output=True,
                check=True,
            ).stdout
            shas = sorted({r.split(b" ")[3].decode() for r in raw.split(b"\0")[0::2] if r})
            _plumbing(repo, ["cat-file", "--batch-check"], stdin="\n".join(shas).encode())

        lifeos = str(Path(sys.executable).with_name("lifeos"))

        # As installed for a user: Python's bytecode cache on (this sandbox sets
        # PYTHONDONTWRITEBYTECODE, which would recompile every module on every run).
        cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        # Each run's output is checked after the timing: parsing the --json answer
        # (1.3 MB, about 10 ms) is the checker's work, not the command's.
        runs: list[tuple[tuple[str, ...], subprocess.CompletedProcess[bytes]]] = []

        def cli(*extra: str) -> Callable[[], None]:
            def run() -> None:
                proc = subprocess.run(
                    [lifeos, "gate", "check", "--policy", "code", *extra],
                    cwd=repo,
                    env=cli_env,
                    capture_output=True,
                    check=False,
                )
                runs.append((extra, proc))

            return run

        cli()()  # warm-up: writes the bytecode cache, as any first run after an install does
        git_w, gate_w, cli_w, cli_json = _best(git_worktree, gate_worktree, cli(), cli("--json"))
        for extra, proc in runs:
            assert proc.returncode == 0, proc.stderr
            out = proc.stdout.decode()
            if extra:
                assert len(json.loads(out)["changes"]) == N
            else:
                assert out.startswith(f"PASS: {N} changed path(s)"), out[:200]

    rows = [
        ("commit mode", gate_c, git_c),
        ("working-tree mode", gate_w, git_w),
        ("`lifeos gate check` (working tree)", cli_w, git_w),
        ("`lifeos gate check --json`", cli_json, git_w),
    ]
    ok = True
    for name, gate_s, git_s in rows:
        ratio = gate_s / git_s
        ok = ok and ratio <= TARGET
        print(
            f"{name:36s} gate {gate_s * 1000:8.1f} ms   git alone {git_s * 1000:8.1f} ms"
            f"   ratio {ratio:.2f}x (target <= {TARGET:.0f}x)"
        )
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
