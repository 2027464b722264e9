"""The OpenCode provider against httpx.MockTransport: requests, parsing and error mapping."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeos.agents.api import AgentCall, AgentError, AgentTimeout, ToolCall
from lifeos.agents.providers.opencode import (
    ChangedFile,
    OpenCodeProvider,
    OpenCodeServer,
    parse_turn,
)
from lifeos.errors import ReasonCode

BASE = "http://opencode.test"
SESSION = "ses_1"
USER_MSG = "msg_user"


def tokens(inp: int, out: int, reasoning: int = 0, read: int = 0, write: int = 0) -> dict[str, Any]:
    return {
        "input": inp,
        "output": out,
        "total": inp + out,
        "reasoning": reasoning,
        "cache": {"read": read, "write": write},
    }


def info(msg_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": msg_id,
        "sessionID": SESSION,
        "parentID": USER_MSG,
        "role": "assistant",
        "modelID": "scripted",
        "providerID": "lifeos-replay",
        "finish": "stop",
        "cost": 0.00014,
        "tokens": tokens(100, 20, reasoning=3, read=5, write=7),
    }
    body.update(extra)
    return body


TOOL_PART = {
    "type": "tool",
    "tool": "write",
    "callID": "call_1",
    "state": {"status": "completed", "input": {"filePath": "hello.txt", "content": "hi\n"}},
}


def reply(**extra: Any) -> dict[str, Any]:
    return {
        "info": info("msg_a2", **extra),
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "Done"},
            {"type": "text", "text": "."},
            {"type": "step-finish", "reason": "stop"},
        ],
    }


class FakeOpenCode:
    """Answers OpenCode's endpoints; records every request; overrides per path."""

    def __init__(self, **overrides: httpx.Response | Exception) -> None:
        self.overrides = overrides
        self.requests: list[httpx.Request] = []
        self.message_reply: dict[str, Any] = reply()
        self.history: list[dict[str, Any]] = [
            {"info": {"id": USER_MSG, "role": "user", "sessionID": SESSION}, "parts": []},
            {"info": info("msg_a1", finish="tool-calls"), "parts": [TOOL_PART]},
            self.message_reply,
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        if key in self.overrides:
            answer = self.overrides[key]
            if isinstance(answer, Exception):
                raise answer
            return answer
        if key == "GET /global/health":
            return httpx.Response(200, json={"healthy": True, "version": "1.18.33"})
        if key == "POST /session":
            return httpx.Response(200, json={"id": SESSION, "title": "lifeos"})
        if key == f"POST /session/{SESSION}/message":
            return httpx.Response(200, json=self.message_reply)
        if key == f"GET /session/{SESSION}/message":
            return httpx.Response(200, json=self.history)
        if key == f"POST /session/{SESSION}/abort":
            return httpx.Response(200, json=True)
        if key == f"GET /session/{SESSION}/diff":
            if request.url.params.get("messageID") != USER_MSG:
                return httpx.Response(200, json=[])
            return httpx.Response(
                200,
                json=[
                    {
                        "file": "hello.txt",
                        "patch": "+hi\n",
                        "additions": 1,
                        "deletions": 0,
                        "status": "added",
                    },
                    {"file": "a/b.py", "additions": 2, "deletions": 1, "status": "modified"},
                ],
            )
        return httpx.Response(404, json={"error": "no route"})

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def make(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> OpenCodeProvider:
    return OpenCodeProvider(
        BASE, "lifeos-replay", "scripted", transport=httpx.MockTransport(handler), **kwargs
    )


def test_health() -> None:
    fake = FakeOpenCode()
    assert make(fake).health() == {"healthy": True, "version": "1.18.33"}
    assert fake.paths() == ["GET /global/health"]


def test_create_session_sends_title() -> None:
    fake = FakeOpenCode()
    assert make(fake).create_session("my run") == SESSION
    assert json.loads(fake.requests[0].content) == {"title": "my run"}


def test_session_without_id_is_malformed() -> None:
    fake = FakeOpenCode(**{"POST /session": httpx.Response(200, json={"title": "x"})})
    with pytest.raises(AgentError, match="no id"):
        make(fake).create_session()


def test_message_round_trip_sums_the_turn() -> None:
    fake = FakeOpenCode()
    response = make(fake).call(AgentCall(prompt="Create hello.txt"))
    assert fake.paths() == [
        "POST /session",
        f"POST /session/{SESSION}/message",
        f"GET /session/{SESSION}/message",
    ]
    sent = json.loads(fake.requests[1].content)
    assert sent == {
        "parts": [{"type": "text", "text": "Create hello.txt"}],
        "model": {"providerID": "lifeos-replay", "modelID": "scripted"},
    }
    assert response.content == "Done."
    assert response.call_id == "msg_a2"
    assert response.model == "scripted"
    assert response.finish_reason == "stop"
    usage = response.usage
    # two assistant messages answered the user message: counts and cost are summed
    assert (usage.input_tokens, usage.output_tokens) == (200, 40)
    assert (usage.reasoning_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        6,
        10,
        14,
    )
    assert usage.cost_usd == pytest.approx(0.00028)
    assert usage.tokens_source == "reported" and usage.cost_source == "reported"
    assert response.raw is not None and response.raw["info"]["parentID"] == USER_MSG
    assert response.latency_ms is not None


def test_system_messages_and_model_override() -> None:
    fake = FakeOpenCode()
    call = AgentCall(
        messages=[{"role": "system", "content": "Be brief."}],
        prompt="go",
        model="other/big",
    )
    make(fake).call(call)
    sent = json.loads(fake.requests[1].content)
    assert sent["system"] == "Be brief."
    assert sent["parts"] == [{"type": "text", "text": "go"}]
    assert sent["model"] == {"providerID": "other", "modelID": "big"}


def test_call_without_prompt_is_refused() -> None:
    fake = FakeOpenCode()
    with pytest.raises(AgentError) as caught:
        make(fake).call(AgentCall())
    assert caught.value.reason == ReasonCode.INVALID_INPUT
    assert fake.requests == []


def test_parse_turn_tool_parts_and_single_message() -> None:
    body = {"info": info("msg_a1", finish="tool-calls"), "parts": [TOOL_PART]}
    response = parse_turn(body)
    assert response.content == ""
    assert response.tool_calls == (
        ToolCall("call_1", "write", json.dumps(TOOL_PART["state"]["input"], sort_keys=True)),
    )
    assert response.usage.input_tokens == 100 and response.usage.cost_usd == 0.00014


@pytest.mark.parametrize(
    "extra",
    [
        {"tokens": None, "cost": None},
        {"tokens": tokens(0, 0), "cost": 0},
        {"tokens": {"input": "x", "output": 1}},
    ],
    ids=["absent", "all-zero", "not-numbers"],
)
def test_no_usage_is_unavailable(extra: dict[str, Any]) -> None:
    fake = FakeOpenCode()
    fake.message_reply = reply(**extra)
    fake.history = [fake.message_reply]
    response = make(fake).call(AgentCall(prompt="hi"))
    assert response.content == "Done."
    assert not response.usage.available
    assert response.usage.input_tokens is None and response.usage.cost_usd is None
    assert response.usage.cost_source == "unavailable"


def test_zero_cost_is_unavailable_then_priced() -> None:
    fake = FakeOpenCode()
    fake.message_reply = reply(cost=0)
    fake.history = [fake.message_reply]
    response = make(fake).call(AgentCall(prompt="hi"))
    assert response.usage.available and response.usage.cost_usd is None
    assert response.usage.cost_source == "unavailable"
    priced = make(fake, pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0}).call(
        AgentCall(prompt="hi")
    )
    assert priced.usage.cost_source == "computed"
    assert priced.usage.cost_usd == pytest.approx((100 * 1 + 20 * 2) / 1e6)


def test_message_error_is_mapped() -> None:
    fake = FakeOpenCode()
    fake.message_reply = reply(
        error={"name": "APIError", "data": {"message": "boom", "statusCode": 503}}
    )
    with pytest.raises(AgentError, match="APIError: boom") as caught:
        make(fake).call(AgentCall(prompt="hi"))
    assert caught.value.retryable and caught.value.status == 503
    assert f"GET /session/{SESSION}/message" not in fake.paths()


def test_timeout_aborts_the_session() -> None:
    fake = FakeOpenCode(
        **{f"POST /session/{SESSION}/message": httpx.ReadTimeout("slow")},
    )
    with pytest.raises(AgentTimeout, match="session aborted") as caught:
        make(fake).call(AgentCall(prompt="hi", timeout_s=5))
    assert caught.value.reason == ReasonCode.PROVIDER_TIMEOUT
    assert caught.value.retryable
    assert fake.paths()[-1] == f"POST /session/{SESSION}/abort"


def test_timeout_with_failing_abort_still_times_out() -> None:
    fake = FakeOpenCode(
        **{
            f"POST /session/{SESSION}/message": httpx.ReadTimeout("slow"),
            f"POST /session/{SESSION}/abort": httpx.Response(500, text="nope"),
        }
    )
    with pytest.raises(AgentTimeout, match="abort was not confirmed"):
        make(fake).call(AgentCall(prompt="hi"))


def test_no_time_left_is_a_timeout() -> None:
    ticks = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    fake = FakeOpenCode()
    provider = make(fake, clock=lambda: next(ticks), timeout_s=10)
    with pytest.raises(AgentTimeout):
        provider.call(AgentCall(prompt="hi"))
    assert fake.paths() == ["POST /session", f"POST /session/{SESSION}/abort"]


def test_diff_and_changed_files() -> None:
    fake = FakeOpenCode()
    provider = make(fake)
    changes = provider.diff(SESSION, USER_MSG)
    assert changes[0] == ChangedFile("hello.txt", "added", 1, 0, "+hi\n")
    assert provider.changed_files(SESSION, USER_MSG) == ["a/b.py", "hello.txt"]
    assert provider.changed_files(SESSION, "msg_other") == []
    assert fake.requests[0].url.params["messageID"] == USER_MSG


def test_malformed_diff() -> None:
    fake = FakeOpenCode(**{f"GET /session/{SESSION}/diff": httpx.Response(200, json={})})
    with pytest.raises(AgentError, match="not a list"):
        make(fake).diff(SESSION, USER_MSG)


@pytest.mark.parametrize(
    ("answer", "retryable", "status", "text"),
    [
        (httpx.Response(500, text="kaput"), True, 500, "HTTP 500, server error: kaput"),
        (httpx.Response(503, text=""), True, 503, "HTTP 503"),
        (httpx.Response(401, text="who"), False, 401, "authentication failed"),
        (httpx.Response(400, text="bad"), False, 400, "HTTP 400, request refused"),
        (httpx.Response(404, text="gone"), False, 404, "not found"),
        (httpx.ConnectError("refused"), True, None, "cannot reach the OpenCode server"),
        (httpx.Response(200, text="<html>"), False, None, "not JSON"),
    ],
    ids=["500", "503", "401", "400", "404", "connect", "not-json"],
)
def test_errors_are_mapped(
    answer: httpx.Response | Exception, retryable: bool, status: int | None, text: str
) -> None:
    fake = FakeOpenCode(**{"POST /session": answer})
    with pytest.raises(AgentError, match=text) as caught:
        make(fake).call(AgentCall(prompt="hi"))
    error = caught.value
    assert type(error) is AgentError
    assert error.reason == ReasonCode.PROVIDER_ERROR
    assert error.retryable is retryable
    assert error.status == status


def test_basic_auth_header_when_a_password_is_set() -> None:
    fake = FakeOpenCode()
    make(fake, password="s3cret").health()
    expected = "Basic " + base64.b64encode(b"opencode:s3cret").decode()
    assert fake.requests[0].headers["Authorization"] == expected
    fake.requests.clear()
    make(fake).health()
    assert "Authorization" not in fake.requests[0].headers


def test_server_start_failure_names_the_log(tmp_path: Path) -> None:
    """A binary that exits at once: AgentError with the log tail, nothing left running."""
    script = tmp_path / "fake-opencode"
    script.write_text(f"#!{sys.executable}\nimport sys\nprint('no config here')\nsys.exit(3)\n")
    script.chmod(0o755)
    server = OpenCodeServer(tmp_path, binary=str(script), home=tmp_path / "home")
    with pytest.raises(AgentError, match="exited with status 3.*no config here") as caught:
        server.start()
    assert caught.value.reason == ReasonCode.PROVIDER_ERROR
    assert server.pid is None
    with pytest.raises(RuntimeError):
        _ = server.url


def test_server_missing_binary(tmp_path: Path) -> None:
    server = OpenCodeServer(tmp_path, binary=str(tmp_path / "nope"), home=tmp_path / "home")
    with pytest.raises(AgentError, match="cannot run"):
        server.start()
    server.stop()  # harmless


def test_server_health_via_fake_binary(tmp_path: Path) -> None:
    """A stand-in server answering /global/health: start, url, stop kills the group."""
    script = tmp_path / "fake-opencode"
    script.write_text(
        f"#!{sys.executable}\n"
        "import http.server, sys\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "assert sys.argv[1:3] == ['serve', '--pure'], sys.argv\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        '        data = b\'{"healthy": true, "version": "fake"}\'\n'
        "        self.send_response(200 if self.path == '/global/health' else 404)\n"
        "        self.send_header('Content-Length', str(len(data)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(data)\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n"
    )
    script.chmod(0o755)
    with OpenCodeServer(
        tmp_path, binary=str(script), home=tmp_path / "home", startup_timeout_s=20
    ) as server:
        pid = server.pid
        assert pid is not None
        provider = OpenCodeProvider(server.url, "p", "m")
        assert provider.health() == {"healthy": True, "version": "fake"}
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_server_that_never_becomes_healthy_is_stopped(tmp_path: Path) -> None:
    """A binary that runs but never serves: AgentError at the startup timeout, group killed."""
    script = tmp_path / "fake-opencode"
    pid_file = tmp_path / "pid"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    script.chmod(0o755)
    server = OpenCodeServer(
        tmp_path, binary=str(script), home=tmp_path / "home", startup_timeout_s=1.5
    )
    with pytest.raises(AgentError) as caught:
        server.start()
    assert caught.value.reason == ReasonCode.PROVIDER_ERROR
    assert server.pid is None
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break  # killed, waiting to be reaped
        time.sleep(0.1)
    else:
        pytest.fail(f"fake server {pid} still running after the startup timeout")


def test_server_dying_mid_call_is_a_provider_error(tmp_path: Path) -> None:
    """The server goes away between calls: a clear, retryable provider error, no hang."""
    script = tmp_path / "fake-opencode"
    script.write_text(
        f"#!{sys.executable}\n"
        "import http.server, sys\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        data = b'{\"healthy\": true}'\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(data)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(data)\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n"
    )
    script.chmod(0o755)
    server = OpenCodeServer(tmp_path, binary=str(script), home=tmp_path / "home")
    server.start()
    url = server.url
    provider = OpenCodeProvider(url, "p", "m", timeout_s=5)
    server.stop()
    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        provider.call(AgentCall(prompt="hello"))
    assert time.monotonic() - started < 10
    assert caught.value.reason in (ReasonCode.PROVIDER_ERROR, ReasonCode.PROVIDER_TIMEOUT)
