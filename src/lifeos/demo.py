"""``lifeos demo``: the spine end to end on the demo project, offline.

Copies ``examples/demo/`` into a temporary git repository and runs four backlog
tasks through the spine with recorded agent answers (the replay provider, no network,
no API key): one lands, one is blocked by the gate, one lands after a repair, one
pauses for approval, is approved, and lands. Then the ledger and every landed run's
evidence are verified.

With ``builder="opencode"`` (``lifeos demo --builder opencode``) the builder is OpenCode
itself — an ``opencode serve`` in each run's worktree — whose model is a
:class:`~lifeos.agents.replay_server.ReplayServer` on 127.0.0.1 answering from
``cassettes/opencode-builder.jsonl``; the designer and the reviewers stay on the demo
cassette (OpenCode writes the same files, so their requests are the same).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.errors import InputError

__all__ = [
    "DEMO_TASKS",
    "OPENCODE_CASSETTE",
    "OPENCODE_VERSION",
    "DemoReport",
    "demo_source",
    "find_opencode",
    "opencode_builder",
    "opencode_normalisers",
    "opencode_version",
    "prepare",
    "run_demo",
    "run_opencode_demo",
]

# task id -> what the demo expects of it
DEMO_TASKS = {
    "T-1": "LANDED",
    "T-2": "BLOCKED",
    "T-3": "LANDED",
    "T-4": "LANDED",
}
OPENCODE_VERSION = "1.18.33"
"""The OpenCode release the OpenCode builder's cassette was recorded with."""
OPENCODE_CASSETTE = "cassettes/opencode-builder.jsonl"
"""The OpenCode builder's model answers, relative to the demo project."""
OPENCODE_PROVIDER = "lifeos-replay"
OPENCODE_MODEL = "scripted"
OPENCODE_PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
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
    notes: list[str] = field(default_factory=list)
    """What the reader should know (a replay miss, another OpenCode version)."""

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
    builder: Mapping[str, Any] | None = None,
) -> DemoReport:
    """Run the demo in ``workdir``; ``provider_for`` replaces the configured agents
    (the cassette recorder uses it); ``builder`` replaces the builder role's settings
    (an external builder such as OpenCode, see :func:`opencode_builder`)."""
    from lifeos.clock import SystemClock
    from lifeos.config import load_config
    from lifeos.evidence.bundle import verify_bundle
    from lifeos.ledger.chain import verify_store
    from lifeos.ledger.keys import load_verifier
    from lifeos.repo import detect_repo
    from lifeos.spine.setup import repo_spine
    from lifeos.store import open_store

    repo = prepare(workdir)
    # The demo's checks run `python`: the interpreter LifeOS runs on.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    where = detect_repo(repo)
    settings = load_config(repo).data
    env: dict[str, str] = {}
    if builder is not None:
        settings["models"] = {**settings["models"], "builder": dict(builder)}
        # offline: OpenCode does not fetch the models.dev catalogue (the demo's model
        # is configured in full)
        env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"
    store = open_store(where.lifeos_dir, SystemClock())
    spine = repo_spine(
        where,
        store,
        settings,
        env=os.environ,
        provider_for=provider_for,
        progress=lambda line: out(f"  . {line}"),
        spine_env=env,
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


# -- the OpenCode builder -------------------------------------------------------------


def opencode_normalisers() -> list[Any]:
    """What the OpenCode builder's cassette keys leave out: OpenCode's system prompt
    (it names the working folder and today's date; LifeOS's builder prompt comes at its
    end) and the run's worktree path, wherever a tool result quotes it."""
    from lifeos.agents.cassette import Normaliser

    return [
        Normaliser(r"(?s)\AYou are opencode, .*", "<opencode system prompt>"),
        Normaliser(r"[^\s\"'<>]*/\.lifeos/worktrees/[0-9a-f-]+", "<WORKTREE>"),
    ]


def opencode_builder(binary: str, base_url: str) -> dict[str, Any]:
    """The builder role for OpenCode whose model is the OpenAI-compatible endpoint at
    ``base_url`` (provider ``lifeos-replay``, model ``scripted``), as lifeos.yaml would
    give it."""
    return {
        "api_key_env": None,
        "binary": binary,
        "cassette": None,
        "command": None,
        "endpoint": None,
        "format": "text",
        "max_tokens": None,
        "model": f"{OPENCODE_PROVIDER}/{OPENCODE_MODEL}",
        "opencode_config": {
            "provider": {
                OPENCODE_PROVIDER: {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "LifeOS replay",
                    "options": {"baseURL": base_url},
                    "models": {
                        OPENCODE_MODEL: {
                            "name": "scripted demo model",
                            "cost": {
                                "input": OPENCODE_PRICING["input_per_mtok"],
                                "output": OPENCODE_PRICING["output_per_mtok"],
                            },
                        }
                    },
                }
            },
        },
        "pricing": dict(OPENCODE_PRICING),
        "provider": "opencode",
        "timeout_s": 300.0,
    }


def find_opencode(explicit: str | None = None) -> str:
    """The ``opencode`` executable: ``explicit``, else ``opencode`` on PATH.

    Raises:
        InputError: it is not there (one line naming what is missing).
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise InputError(f"--opencode {explicit}: no such executable file")
        return str(path.resolve())
    found = shutil.which("opencode")
    if found is None:
        raise InputError(
            "`lifeos demo --builder opencode` needs the opencode executable: "
            f"not found on PATH (npm install -g opencode-ai@{OPENCODE_VERSION}, "
            "or give --opencode PATH)"
        )
    return found


def opencode_version(binary: str) -> str | None:
    """What ``opencode --version`` says, or None when it cannot say."""
    try:
        proc = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.strip()
    return text if proc.returncode == 0 and text else None


def run_opencode_demo(workdir: Path, binary: str, out: Callable[[str], None] = print) -> DemoReport:
    """The demo with OpenCode (``binary``) as the builder, its model a replay server on
    127.0.0.1 answering from the OpenCode builder's cassette."""
    from lifeos.agents.cassette import Cassette
    from lifeos.agents.replay_server import ReplayServer

    version = opencode_version(binary)
    out(f"builder: OpenCode {version or '(version unknown)'} at {binary}")
    cassette = Cassette.load(demo_source() / OPENCODE_CASSETTE)
    with ReplayServer(cassette) as replay:
        out(f"  its model: the replay server at {replay.url} ({OPENCODE_CASSETTE})")
        report = run_demo(workdir, out=out, builder=opencode_builder(binary, replay.url))
    missed = cassette.calls()["unmatched"]
    if missed:
        report.notes.append(
            f"the OpenCode builder's cassette had no answer for {len(missed)} request(s)"
            + (
                f": it was recorded with OpenCode {OPENCODE_VERSION}, this is {version}"
                if version != OPENCODE_VERSION
                else ""
            )
        )
    return report
