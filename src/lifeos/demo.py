"""``lifeos demo``: the spine end to end on the demo project, offline.

Copies ``examples/demo/`` into a temporary git repository and runs four backlog
tasks through the spine with recorded agent answers (the replay provider, no network,
no API key): one lands, one is blocked by the gate, one lands after a repair, one
pauses for approval, is approved, and lands. Then the ledger and every landed run's
evidence are verified.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.errors import InputError

__all__ = ["DEMO_TASKS", "DemoReport", "demo_source", "prepare", "run_demo"]

# task id -> what the demo expects of it
DEMO_TASKS = {
    "T-1": "LANDED",
    "T-2": "BLOCKED",
    "T-3": "LANDED",
    "T-4": "LANDED",
}
_IDENTITY = {
    "GIT_AUTHOR_NAME": "LifeOS Demo",
    "GIT_AUTHOR_EMAIL": "demo@lifeos.invalid",
    "GIT_COMMITTER_NAME": "LifeOS Demo",
    "GIT_COMMITTER_EMAIL": "demo@lifeos.invalid",
}


@dataclass
class DemoReport:
    """What the demo did: one row per task, and the verifications."""

    rows: list[dict[str, Any]]
    ledger_ok: bool
    evidence_ok: dict[str, bool]
    workdir: Path

    @property
    def ok(self) -> bool:
        """Every task ended as expected and everything verified."""
        return (
            all(r["state"] == DEMO_TASKS[r["task"]] for r in self.rows)
            and self.ledger_ok
            and all(self.evidence_ok.values())
        )


def demo_source() -> Path:
    """``examples/demo`` of the LifeOS checkout this package runs from."""
    here = Path(__file__).resolve().parents[2] / "examples" / "demo"
    if not (here / "lifeos.yaml").is_file():
        raise InputError(
            f"the demo project is not at {here} (run `lifeos demo` from a LifeOS checkout)"
        )
    return here


def prepare(workdir: Path) -> Path:
    """Copy the demo project into ``workdir/repo`` as a fresh repository with keys."""
    from lifeos.ledger.keys import ensure_keypair
    from lifeos.repo import detect_repo

    repo = workdir / "repo"
    shutil.copytree(
        demo_source(),
        repo,
        ignore=shutil.ignore_patterns("showcase.sh", "__pycache__", ".pytest_cache", ".lifeos"),
    )
    env = {**os.environ, **_IDENTITY}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "demo"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    ensure_keypair(detect_repo(repo))
    for args in (["add", "lifeos.pub"], ["commit", "-q", "-m", "LifeOS public key"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def run_demo(
    workdir: Path,
    provider_for: Callable[[str], Any] | None = None,
    out: Callable[[str], None] = print,
) -> DemoReport:
    """Run the demo in ``workdir``; ``provider_for`` replaces the configured agents
    (the cassette recorder uses it)."""
    from lifeos.agents.factory import build_provider, role_spec
    from lifeos.clock import SystemClock
    from lifeos.config import load_config
    from lifeos.evidence.bundle import verify_bundle
    from lifeos.ledger.chain import verify_store
    from lifeos.ledger.keys import load_signer, load_verifier
    from lifeos.repo import detect_repo
    from lifeos.spine import Spine, SpineDeps
    from lifeos.store import open_store

    repo = prepare(workdir)
    # The demo's checks run `python`: the interpreter LifeOS runs on.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    where = detect_repo(repo)
    settings = load_config(repo).data
    store = open_store(where.lifeos_dir, SystemClock())
    providers: dict[str, Any] = {}

    def configured(role: str) -> Any:
        if role not in providers:
            name, spec = role_spec(settings["models"], role)
            providers[role] = build_provider(name, spec, os.environ, repo)
        return providers[role]

    spine = Spine(
        SpineDeps(
            repo=where,
            store=store,
            clock=SystemClock(),
            settings=settings,
            provider_for=provider_for or configured,
            signer=load_signer(where),
            verifier=load_verifier(where),
            progress=lambda line: out(f"  . {line}"),
        )
    )
    rows: list[dict[str, Any]] = []
    for task in DEMO_TASKS:
        out(f"$ lifeos spine run --task {task}")
        outcome = spine.start(task)
        if outcome.state.value == "PAUSED":
            out(f"  PAUSED ({outcome.message}); the demo approves it")
            out(f"$ lifeos spine approve {outcome.run_id}")
            outcome = spine.decide(outcome.run_id, True, "approved by the demo")
        out(f"  {outcome.state.value} {' '.join(outcome.reasons)}".rstrip())
        if outcome.state.value != "LANDED":
            out(f"  {outcome.message}")
        rows.append(
            {
                "task": task,
                "state": outcome.state.value,
                "reasons": list(outcome.reasons),
                "commit": outcome.commit,
                "branch": outcome.branch,
                "evidence": outcome.evidence,
                "run_id": outcome.run_id,
                "calls": outcome.agent_calls,
            }
        )
    out("$ lifeos ledger verify")
    ledger = verify_store(store, load_verifier(where))
    out(f"  ledger {'OK' if ledger.ok else 'FAILED'}")
    evidence: dict[str, bool] = {}
    for row in rows:
        if row["evidence"]:
            out(f"$ lifeos evidence verify {row['run_id']}")
            report = verify_bundle(repo / str(row["evidence"]), load_verifier(where))
            evidence[str(row["task"])] = report.ok
            out(f"  evidence {'OK' if report.ok else 'FAILED'}")
    store.close()
    return DemoReport(rows, ledger.ok, evidence, repo)
