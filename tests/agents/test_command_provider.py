"""The command provider against real subprocesses: small fake agents written into tmp_path."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from lifeos.agents.api import AgentCall, AgentError, AgentTimeout
from lifeos.agents.providers.command import CommandProvider, parse_output
from lifeos.errors import ReasonCode


def fake_agent(tmp_path: Path, body: str, name: str = "agent.py") -> Path:
    """A Python script that plays an agent; ``body`` runs with ``sys`` and ``json`` imported."""
    script = tmp_path / name
    script.write_text("import json, sys\n" + body + "\n", encoding="utf-8")
    return script


def printing_agent(tmp_path: Path, stdout: str) -> Path:
    """A fake agent that prints ``stdout`` exactly."""
    return fake_agent(tmp_path, f"sys.stdout.write({stdout!r})")


OPENCODE_OUT = "\n".join(
    json.dumps(e)
    for e in [
        {"type": "step_start", "sessionID": "ses_1", "part": {"type": "step-start"}},
        {"type": "text", "sessionID": "ses_1", "part": {"type": "text", "text": "Hello "}},
        {
            "type": "step_finish",
            "sessionID": "ses_1",
            "part": {
                "type": "step-finish",
                "tokens": {
                    "input": 100,
                    "output": 20,
                    "reasoning": 5,
                    "cache": {"read": 40, "write": 10},
                },
                "cost": 0.25,
            },
        },
        {"type": "tool_use", "sessionID": "ses_1", "part": {"type": "tool", "tool": "write"}},
        {"type": "text", "sessionID": "ses_1", "text": "world"},
        {
            "type": "step_finish",
            "sessionID": "ses_1",
            "tokens": {"input": 50, "output": 7, "reasoning": 0, "cache": {"read": 0, "write": 0}},
            "cost": 0.5,
        },
    ]
)

CLAUDE_OUT = json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "num_turns": 2,
        "result": "Done: wrote hello.txt",
        "session_id": "sess-claude",
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000,
            "output_tokens": 150,
            "service_tier": "standard",
        },
    }
)

CODEX_OUT_NEW = "\n".join(
    json.dumps(e)
    for e in [
        {"type": "thread.started", "thread_id": "thr-1"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "hm"}},
        {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "a"}},
        {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "b"}},
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 900, "cached_input_tokens": 300, "output_tokens": 60},
        },
    ]
)

CODEX_OUT_OLD = "\n".join(
    [
        "Reading prompt from stdin...",
        json.dumps({"id": "0", "msg": {"type": "task_started"}}),
        json.dumps({"id": "0", "msg": {"type": "agent_message", "message": "first"}}),
        json.dumps(
            {
                "id": "0",
                "msg": {
                    "type": "token_count",
                    "info": {
                        "total_token_usage": {
                            "input_tokens": 10,
                            "cached_input_tokens": 2,
                            "output_tokens": 3,
                            "reasoning_output_tokens": 1,
                        }
                    },
                },
            }
        ),
        json.dumps({"id": "0", "msg": {"type": "agent_message", "message": "final answer"}}),
        json.dumps(
            {
                "id": "0",
                "msg": {
                    "type": "token_count",
                    "info": {
                        "total_token_usage": {
                            "input_tokens": 30,
                            "cached_input_tokens": 5,
                            "output_tokens": 8,
                            "reasoning_output_tokens": 4,
                        }
                    },
                },
            }
        ),
    ]
)


def provider(tmp_path: Path, script: Path, fmt: str = "text", **kw: object) -> CommandProvider:
    return CommandProvider(
        [sys.executable, str(script)],
        tmp_path,
        output_format=fmt,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_opencode_json_lines_are_summed(tmp_path: Path) -> None:
    resp = provider(tmp_path, printing_agent(tmp_path, OPENCODE_OUT), "opencode").call(
        AgentCall(prompt="hi")
    )
    assert resp.content == "Hello world"
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens) == (150, 27, 5)
    assert (u.cache_read_tokens, u.cache_write_tokens) == (40, 10)
    assert u.cost_usd == pytest.approx(0.75)
    assert (u.tokens_source, u.cost_source) == ("reported", "reported")
    assert resp.call_id == "ses_1"
    assert resp.latency_ms is not None and resp.latency_ms >= 0


def test_claude_result_object(tmp_path: Path) -> None:
    resp = provider(tmp_path, printing_agent(tmp_path, CLAUDE_OUT + "\n"), "claude").call(
        AgentCall(prompt="hi")
    )
    assert resp.content == "Done: wrote hello.txt"
    u = resp.usage
    assert (u.input_tokens, u.output_tokens) == (12, 150)
    assert (u.cache_read_tokens, u.cache_write_tokens) == (4000, 300)
    assert u.cost_usd == pytest.approx(0.0123)
    assert u.cost_source == "reported"
    assert resp.call_id == "sess-claude"


def test_codex_new_events_last_message_and_usage(tmp_path: Path) -> None:
    resp = provider(tmp_path, printing_agent(tmp_path, CODEX_OUT_NEW), "codex").call(
        AgentCall(prompt="hi")
    )
    assert resp.content == "b"
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (900, 60, 300)
    assert u.available and u.cost_usd is None and u.cost_source == "unavailable"


def test_codex_old_events_use_last_cumulative_total() -> None:
    content, usage, _ = parse_output("codex", CODEX_OUT_OLD)
    assert content == "final answer"
    assert (usage.input_tokens, usage.output_tokens) == (30, 8)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (5, 4)


def test_pricing_fills_in_a_missing_cost(tmp_path: Path) -> None:
    resp = provider(
        tmp_path,
        printing_agent(tmp_path, CODEX_OUT_NEW),
        "codex",
        pricing={"input_per_mtok": 1.0, "output_per_mtok": 10.0},
    ).call(AgentCall(prompt="hi"))
    assert resp.usage.cost_source == "computed"
    assert resp.usage.cost_usd == pytest.approx((900 * 1.0 + 60 * 10.0) / 1_000_000)


def test_text_format_is_stdout_without_usage(tmp_path: Path) -> None:
    resp = provider(tmp_path, printing_agent(tmp_path, "plain answer\n")).call(
        AgentCall(prompt="x")
    )
    assert resp.content == "plain answer\n"
    assert not resp.usage.available and resp.usage.input_tokens is None


@pytest.mark.parametrize("fmt", ["opencode", "claude", "codex"])
def test_garbage_json_gives_raw_stdout_and_unavailable_usage(tmp_path: Path, fmt: str) -> None:
    garbage = "not json at all\n{broken: \n"
    resp = provider(tmp_path, printing_agent(tmp_path, garbage), fmt).call(AgentCall(prompt="x"))
    assert resp.content == garbage
    assert not resp.usage.available
    assert resp.usage.input_tokens is None and resp.usage.cost_usd is None


def test_all_zero_counts_are_unavailable_not_zero() -> None:
    out = json.dumps({"result": "did things", "usage": {"input_tokens": 0, "output_tokens": 0}})
    _, usage, _ = parse_output("claude", out)
    assert not usage.available and usage.input_tokens is None


def test_prompt_and_model_substituted_without_a_shell(tmp_path: Path) -> None:
    script = fake_agent(tmp_path, "print(json.dumps(sys.argv[1:]))")
    prov = CommandProvider(
        [sys.executable, str(script), "run", "--model", "{model}", "{prompt}", "m={model};"],
        tmp_path,
        model="default-model",
    )
    prompt = """Say "hi" & it's $HOME; `rm -rf /` {model} | cat"""
    resp = prov.call(AgentCall(prompt=prompt, model="prov/model-1"))
    assert json.loads(resp.content) == ["run", "--model", "prov/model-1", prompt, "m=prov/model-1;"]
    assert resp.model == "prov/model-1"
    # The configured model is used when the call names none.
    assert json.loads(prov.call(AgentCall(prompt="p")).content)[2] == "default-model"


def test_model_placeholder_without_a_model_is_not_configured(tmp_path: Path) -> None:
    prov = CommandProvider([sys.executable, "-c", "pass", "{model}"], tmp_path)
    with pytest.raises(AgentError) as info:
        prov.call(AgentCall(prompt="p"))
    assert info.value.reason == ReasonCode.PROVIDER_NOT_CONFIGURED


def test_runs_in_cwd_with_extra_env(tmp_path: Path) -> None:
    script = fake_agent(tmp_path, "import os; print(os.getcwd()); print(os.environ['LIFEOS_X'])")
    work = tmp_path / "wt"
    work.mkdir()
    prov = CommandProvider([sys.executable, str(script)], work, env={"LIFEOS_X": "yes"})
    lines = prov.call(AgentCall(prompt="p")).content.splitlines()
    assert Path(lines[0]).resolve() == work.resolve()
    assert lines[1] == "yes"


def test_non_zero_exit_names_code_and_last_stderr_line(tmp_path: Path) -> None:
    script = fake_agent(
        tmp_path, "sys.stderr.write('warming up\\nfatal: no API key\\n\\n'); sys.exit(3)"
    )
    with pytest.raises(AgentError) as info:
        provider(tmp_path, script, "claude").call(AgentCall(prompt="p"))
    err = info.value
    assert not isinstance(err, AgentTimeout)
    assert err.reason == ReasonCode.PROVIDER_ERROR
    assert not err.retryable
    assert "code 3" in err.message and "fatal: no API key" in err.message


def test_missing_executable_is_not_configured(tmp_path: Path) -> None:
    prov = CommandProvider([str(tmp_path / "no-such-agent"), "{prompt}"], tmp_path)
    with pytest.raises(AgentError) as info:
        prov.call(AgentCall(prompt="p"))
    assert info.value.reason == ReasonCode.PROVIDER_NOT_CONFIGURED
    assert not info.value.retryable


def test_non_executable_file_is_not_configured(tmp_path: Path) -> None:
    target = tmp_path / "agent.sh"
    target.write_text("#!/bin/sh\necho hi\n", encoding="utf-8")
    target.chmod(0o644)
    with pytest.raises(AgentError) as info:
        CommandProvider([str(target)], tmp_path).call(AgentCall(prompt="p"))
    assert info.value.reason == ReasonCode.PROVIDER_NOT_CONFIGURED


def _gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_hung_agent_and_its_child_are_killed_at_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = fake_agent(
        tmp_path,
        "import subprocess, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('working', flush=True)\n"
        "time.sleep(60)",
    )
    prov = CommandProvider([sys.executable, str(script)], tmp_path, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(AgentTimeout) as info:
        prov.call(AgentCall(prompt="p"))
    assert time.monotonic() - started < 8.0
    assert info.value.reason == ReasonCode.PROVIDER_TIMEOUT
    child = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5.0
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.kill(child, 0)
    except ProcessLookupError:
        pass
    else:
        assert _gone(child), f"child {child} survived the timeout"


def test_agent_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    script = fake_agent(
        tmp_path,
        "import signal, subprocess, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"child = subprocess.Popen([sys.executable, '-c', {ignore + 'time.sleep(60)'!r}])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)",
    )
    prov = CommandProvider([sys.executable, str(script)], tmp_path, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(AgentTimeout):
        prov.call(AgentCall(prompt="p"))
    assert time.monotonic() - started < 10.0
    child = int(pid_file.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5.0
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), f"child {child} survived the timeout"
