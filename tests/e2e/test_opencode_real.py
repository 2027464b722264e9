"""The OpenCode provider against a real ``opencode serve`` driven by a replayed model.

The pinned ``opencode-ai`` is installed once with npm into a cache folder by the
``opencode_binary`` fixture of tests/e2e/conftest.py (skipped with the reason when npm is
missing or the install fails). The model is a ReplayServer whose
cassette answers OpenCode's two chat-completions requests for one user message: first a
streamed tool call to ``write``, then — after the tool result — a final text. The system
prompt (which names the working directory and today's date) is normalised to a
placeholder, so the keys hold on any machine and any day.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeos.agents.api import AgentCall
from lifeos.agents.cassette import Cassette, Normaliser, key_material
from lifeos.agents.providers.opencode import OpenCodeProvider, OpenCodeServer
from lifeos.agents.replay_server import ReplayServer

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

VERSION = "1.18.33"  # the opencode_binary fixture (tests/e2e/conftest.py) installs it
PROVIDER_ID = "lifeos-replay"
MODEL_ID = "scripted"
PROMPT = "Create hello.txt saying hello."
FINAL = "I created hello.txt."
WRITE_ARGS = json.dumps(
    {"filePath": "hello.txt", "content": "hello from lifeos\n"}, separators=(",", ":")
)
TOOLS = [
    "bash",
    "edit",
    "glob",
    "grep",
    "question",
    "read",
    "skill",
    "task",
    "todowrite",
    "webfetch",
    "write",
]
SYSTEM = Normaliser(r"(?s)\AYou are opencode, .*", "<opencode system prompt>")
PASSWORD = "lifeos-test-password"


def chat_request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A request as OpenCode sends it, as far as the cassette key is concerned."""
    system = {"role": "system", "content": "You are opencode, (normalised away)"}
    return {
        "model": MODEL_ID,
        "messages": [system, {"role": "user", "content": PROMPT}, *messages],
        "tools": [{"type": "function", "function": {"name": name}} for name in TOOLS],
    }


def chat_answer(
    answer_id: str, message: dict[str, Any], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def make_cassette() -> Cassette:
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "write", "arguments": WRITE_ARGS},
    }
    cassette = Cassette(normalisers=[SYSTEM])
    cassette.record(
        chat_request([]),
        chat_answer(
            "chatcmpl-1", {"role": "assistant", "content": None, "tool_calls": [tool_call]}, 100, 20
        ),
    )
    cassette.record(
        chat_request(
            [
                {"role": "assistant", "content": "", "tool_calls": [tool_call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."},
            ]
        ),
        chat_answer("chatcmpl-2", {"role": "assistant", "content": FINAL}, 150, 10),
    )
    return cassette


class WatchedReplayServer(ReplayServer):
    """A ReplayServer that keeps what it was asked, to explain a replay miss."""

    def __init__(self, cassette: Cassette) -> None:
        super().__init__(cassette)
        self.seen: list[dict[str, Any]] = []

    def complete(self, body: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        self.seen.append(body)
        return super().complete(body, authorization)

    def explain(self) -> str:
        lines = []
        for body in self.seen:
            material = key_material(body, self.cassette.normalisers)
            for message in material["messages"]:
                if isinstance(message.get("content"), str):
                    message["content"] = message["content"][:120]
            lines.append(json.dumps(material, sort_keys=True))
        return "\n".join(lines)


def write_config(repo: Path, base_url: str) -> None:
    config: Mapping[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": base_url},
                "models": {MODEL_ID: {"cost": {"input": 1, "output": 2}}},
            }
        },
    }
    (repo / "opencode.json").write_text(json.dumps(config, indent=2) + "\n")


def test_opencode_writes_a_file_through_a_replayed_model(
    opencode_binary: Path, git_repo: Path, tmp_path: Path
) -> None:
    replay = WatchedReplayServer(make_cassette())
    replay.start()
    server = OpenCodeServer(
        git_repo,
        binary=str(opencode_binary),
        home=tmp_path / "home",
        env={"OPENCODE_SERVER_PASSWORD": PASSWORD},
        startup_timeout_s=90,
    )
    pid: int | None = None
    try:
        write_config(git_repo, replay.url)
        server.start()
        pid = server.pid
        provider = OpenCodeProvider(
            server.url, PROVIDER_ID, MODEL_ID, password=PASSWORD, timeout_s=120
        )
        health = provider.health()
        assert health["healthy"] is True and health["version"] == VERSION
        assert httpx.get(f"{server.url}/global/health", timeout=10).status_code == 401

        response = provider.call(AgentCall(prompt=PROMPT, timeout_s=120))

        calls = replay.cassette.calls()
        assert calls["unmatched"] == [], f"OpenCode asked:\n{replay.explain()}"
        assert calls["total"] == 2
        assert response.content == FINAL
        assert response.model == MODEL_ID
        assert response.call_id.startswith("msg_")
        usage = response.usage
        # two assistant messages (tool call, then text): OpenCode's counts, summed
        assert (usage.input_tokens, usage.output_tokens) == (250, 30)
        assert usage.tokens_source == "reported" and usage.cost_source == "reported"
        assert usage.cost_usd == pytest.approx((250 * 1 + 30 * 2) / 1_000_000)

        assert (git_repo / "hello.txt").read_text() == "hello from lifeos\n"
        assert response.raw is not None
        info = response.raw["info"]
        # OpenCode fills a message's diff in after answering: poll it briefly.
        deadline = time.monotonic() + 15
        changed = provider.changed_files(info["sessionID"], info["parentID"])
        while not changed and time.monotonic() < deadline:
            time.sleep(0.2)
            changed = provider.changed_files(info["sessionID"], info["parentID"])
        assert changed == ["hello.txt"]
        [change] = provider.diff(info["sessionID"], info["parentID"])
        assert change.status == "added" and change.additions == 1
    finally:
        server.stop()
        replay.stop()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of the server's process group is left
