"""The OpenCode builder's server settings: environment, inline config, executable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from lifeos.agents.api import AgentError
from lifeos.errors import ReasonCode
from lifeos.repo import RepoContext
from lifeos.spine.controller import EXTERNAL_BUILDERS, Spine, SpineDeps

SPEC: dict[str, Any] = {
    "provider": "opencode",
    "model": "openrouter/anthropic/claude-sonnet-4.5",
    "binary": "opencode",
    "opencode_config": {"provider": {"openrouter": {"models": {"m": {"cost": {"input": 3}}}}}},
}


def make_spine(tmp_path: Path, env: dict[str, str]) -> Spine:
    repo = RepoContext(tmp_path, None, True, tmp_path)
    deps = SpineDeps(
        repo=repo,
        store=cast(Any, None),
        clock=cast(Any, None),
        settings={},
        provider_for=cast(Any, None),
        signer=cast(Any, None),
        verifier=cast(Any, None),
        env=env,
    )
    return Spine(deps)


def test_opencode_is_an_external_builder() -> None:
    assert "opencode" in EXTERNAL_BUILDERS


def test_the_server_environment(tmp_path: Path) -> None:
    env = {
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_CONFIG": "/home/me/.config/opencode/opencode.json",  # not passed on
        "HOME": "/home/me",
    }
    server_env = make_spine(tmp_path, env)._opencode_env(SPEC, "openrouter", "pw-123")
    assert server_env["OPENCODE_SERVER_PASSWORD"] == "pw-123"
    assert server_env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    assert server_env["OPENCODE_DISABLE_AUTOUPDATE"] == "1"
    assert server_env["npm_config_offline"] == "true"
    assert "OPENCODE_CONFIG" not in server_env and "HOME" not in server_env
    assert json.loads(server_env["OPENCODE_CONFIG_CONTENT"]) == SPEC["opencode_config"]
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_api_key_env_becomes_an_env_reference(tmp_path: Path) -> None:
    spec = {**SPEC, "api_key_env": "OPENROUTER_API_KEY"}
    spine = make_spine(tmp_path, {"OPENROUTER_API_KEY": "sk-live"})
    server_env = spine._opencode_env(spec, "openrouter", "pw")
    config = json.loads(server_env["OPENCODE_CONFIG_CONTENT"])
    assert config["provider"]["openrouter"]["options"] == {"apiKey": "{env:OPENROUTER_API_KEY}"}
    assert "sk-live" not in server_env["OPENCODE_CONFIG_CONTENT"]
    assert server_env["OPENROUTER_API_KEY"] == "sk-live"  # the server reads it from its env
    assert SPEC["opencode_config"]["provider"]["openrouter"].get("options") is None  # no mutation
    with pytest.raises(AgentError) as info:
        make_spine(tmp_path, {})._opencode_env(spec, "openrouter", "pw")
    assert info.value.reason is ReasonCode.PROVIDER_NOT_CONFIGURED
    assert "OPENROUTER_API_KEY" in str(info.value)


def test_the_executable(tmp_path: Path) -> None:
    tool = tmp_path / "tools" / "opencode"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    spine = make_spine(tmp_path, {"PATH": str(tool.parent)})
    assert spine._opencode_binary("opencode") == str(tool)
    assert spine._opencode_binary("tools/opencode") == str(tool)  # relative to the root
    assert spine._opencode_binary(str(tool)) == str(tool)
    for missing in ("opencode-nope", "tools/nope", str(tmp_path / "nope")):
        with pytest.raises(AgentError) as info:
            spine._opencode_binary(missing)
        assert info.value.reason is ReasonCode.PROVIDER_ERROR  # resumable once installed
        assert "not an executable" in str(info.value)
    tool.chmod(0o644)
    with pytest.raises(AgentError):
        spine._opencode_binary("tools/opencode")
