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
* the whole command: ``lifeos gate check --json`` in a new Python process (start-up
  and import included) on the working tree.

Best of ``PASSES`` runs each. Target: gate <= 2x the git commands alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lifeos.clock import FixedClock
from lifeos.policy.gate import _git_base, _git_env, check_change, git_diff_command
from lifeos.policy.model import load_policy

N = int(os.environ.get("LIFEOS_BENCH_GATE_N", "10000"))
PASSES = 5
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


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
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

        git_c, gate_c = _best(git_commit), _best(gate_commit)

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

        git_w, gate_w = _best(git_worktree), _best(gate_worktree)

        script = (
            "import sys; from lifeos.cli import COMMANDS, main; "
            "COMMANDS['gate'] = ('lifeos.cli.gate:gate', 'gate'); "
            "sys.exit(main(['gate', 'check', '--policy', 'code', '--json']))"
        )

        def cli() -> None:
            proc = subprocess.run(
                [sys.executable, "-c", script], cwd=repo, capture_output=True, check=False
            )
            assert proc.returncode == 0, proc.stderr

        cli_w = _best(cli)

    rows = [
        ("commit mode", gate_c, git_c),
        ("working-tree mode", gate_w, git_w),
        ("whole CLI process (working tree)", cli_w, git_w),
    ]
    ok = True
    for name, gate_s, git_s in rows:
        ratio = gate_s / git_s
        ok = ok and (ratio <= TARGET or name.startswith("whole"))
        print(
            f"{name:34s} gate {gate_s * 1000:8.1f} ms   git alone {git_s * 1000:8.1f} ms"
            f"   ratio {ratio:.2f}x (target <= {TARGET:.0f}x)"
        )
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
