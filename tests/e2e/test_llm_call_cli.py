"""`lifeos llm call` through a configured role, against the replay server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lifeos.agents.api import AgentCall
from lifeos.agents.cassette import Cassette
from lifeos.agents.providers.openai_compat import chat_request
from lifeos.agents.replay_server import ReplayServer

LIFEOS = str(Path(sys.executable).parent / "lifeos")
ANSWER = {
    "choices": [
        {"finish_reason": "stop", "message": {"content": "hello back", "role": "assistant"}}
    ],
    "id": "c-9",
    "model": "scripted",
    "usage": {"completion_tokens": 3, "prompt_tokens": 5},
}


def _run(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [LIFEOS, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_llm_call_through_an_openai_role(git_repo: Path) -> None:
    cassette = Cassette()
    cassette.record(chat_request(AgentCall(prompt="hello"), "scripted"), ANSWER)
    with ReplayServer(cassette) as server:
        (git_repo / "lifeos.yaml").write_text(
            "version: 1\n"
            "models:\n"
            "  builder:\n"
            "    provider: openai\n"
            "    model: scripted\n"
            f"    endpoint: {server.url}\n"
            "    api_key_env: SCRIPTED_KEY\n"
            "    pricing: {input_per_mtok: 1.0, output_per_mtok: 1.0}\n"
        )
        missing = _run(git_repo, "llm", "call", "--role", "builder", "--prompt", "hello")
        assert missing.returncode == 1, missing.stderr
        assert missing.stderr.strip().endswith("[PROVIDER_NOT_CONFIGURED]")
        assert "SCRIPTED_KEY" in missing.stderr
        proc = _run(
            git_repo,
            "llm",
            "call",
            "--role",
            "builder",
            "--prompt",
            "hello",
            "--json",
            env={"SCRIPTED_KEY": "sk-test-not-a-secret"},
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["content"] == "hello back"
        assert data["usage"]["input_tokens"] == 5 and data["usage"]["output_tokens"] == 3
        assert data["usage"]["cost_source"] == "computed"
        assert server.cassette.calls()["total"] == 1
        shown = _run(git_repo, "config", "show", env={"SCRIPTED_KEY": "sk-test-not-a-secret"})
        assert "sk-test-not-a-secret" not in shown.stdout
        assert json.loads(shown.stdout)["models"]["builder"]["api_key_env"] == "SCRIPTED_KEY"


def test_llm_call_unknown_role_and_bad_models_section(git_repo: Path) -> None:
    (git_repo / "lifeos.yaml").write_text(
        "version: 1\nmodels:\n  builder:\n    provider: replay\n    cassette: none.jsonl\n"
    )
    proc = _run(git_repo, "llm", "call", "--role", "reviewer", "--prompt", "x")
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("[PROVIDER_NOT_CONFIGURED]")
    (git_repo / "lifeos.yaml").write_text("version: 1\nmodels:\n  builder:\n    provider: gpt\n")
    bad = _run(git_repo, "llm", "call", "--role", "builder", "--prompt", "x")
    assert bad.returncode == 2
    assert "lifeos.yaml:4" in bad.stderr and bad.stderr.strip().endswith("[CONFIG_INVALID]")


def test_llm_call_unreachable_endpoint_is_one_line(git_repo: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (git_repo / "lifeos.yaml").write_text(
        "version: 1\nmodels:\n  builder:\n    provider: openai\n    model: m\n"
        f"    endpoint: http://127.0.0.1:{port}/v1\n    timeout_s: 5\n"
    )
    proc = _run(git_repo, "llm", "call", "--role", "builder", "--prompt", "hi")
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert err.endswith(("[PROVIDER_ERROR]", "[PROVIDER_TIMEOUT]"))
