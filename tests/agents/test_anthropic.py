"""The Anthropic provider against httpx.MockTransport: request shape, parsing, error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lifeos.agents.api import AgentCall, AgentError, AgentTimeout, ToolCall
from lifeos.agents.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    AnthropicProvider,
    messages_request,
    parse_messages_response,
)
from lifeos.errors import ReasonCode

BASE = "http://anthropic.test"


def ok_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    body.update(overrides)
    return body


class Counter:
    """A handler answering from a list of responses (or exceptions), counting requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def provider(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[AnthropicProvider, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("model", "claude-test")
    p = AnthropicProvider(
        BASE, transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs
    )
    return p, sleeps


def test_request_shape_and_parse() -> None:
    handler = Counter(httpx.Response(200, json=ok_body()))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read",
                "description": "Read a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "noop"}},
    ]
    p, _ = provider(handler, api_key="sk-ant-test")
    call = AgentCall(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": [{"type": "text", "text": "and exact"}]},
        ],
        prompt="hello",
        max_tokens=64,
        tools=tools,
    )
    response = p.call(call)
    request = handler.requests[0]
    assert str(request.url) == f"{BASE}/v1/messages"
    assert request.method == "POST"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    sent = json.loads(request.content)
    assert sent == {
        "model": "claude-test",
        "max_tokens": 64,
        "system": "be brief\n\nand exact",
        "messages": [
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello"},
        ],
        "tools": [
            {
                "name": "read",
                "description": "Read a file",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
            {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
        ],
    }
    assert sent == messages_request(call, "claude-test")
    assert response.content == "hi"
    assert response.finish_reason == "end_turn"
    assert response.call_id == "msg_1"
    assert response.model == "claude-test"
    assert response.tool_calls == ()
    assert response.usage.available
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.cost_source == "unavailable"
    assert response.latency_ms is not None and response.latency_ms >= 0


def test_defaults_max_tokens_no_system_no_key_and_version_header() -> None:
    handler = Counter(httpx.Response(200, json=ok_body()))
    p, _ = provider(handler, anthropic_version="2099-01-01")
    p.call(AgentCall(prompt="x", model="other"))
    request = handler.requests[0]
    assert "x-api-key" not in request.headers
    assert request.headers["anthropic-version"] == "2099-01-01"
    assert json.loads(request.content) == {
        "model": "other",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "x"}],
    }
    assert DEFAULT_MAX_TOKENS == 1024


def test_default_base_url() -> None:
    assert AnthropicProvider().url == "https://api.anthropic.com/v1/messages"
    assert AnthropicProvider("https://proxy.test/").url == "https://proxy.test/v1/messages"


def test_anthropic_form_tool_passes_through() -> None:
    tool = {"name": "t", "input_schema": {"type": "object"}}
    assert messages_request(AgentCall(prompt="x", tools=[tool]), "m")["tools"] == [tool]


def test_latency_from_injected_clock() -> None:
    ticks = iter([1.0, 1.0, 1.25])
    p, _ = provider(lambda r: httpx.Response(200, json=ok_body()), clock=lambda: next(ticks))
    assert p.call(AgentCall(prompt="x")).latency_ms == pytest.approx(250.0)


def test_text_blocks_joined_and_tool_use() -> None:
    body = ok_body(
        content=[
            {"type": "text", "text": "let me "},
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "look"},
            {"type": "tool_use", "id": "toolu_1", "name": "write", "input": {"b": 2, "a": "x"}},
            {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
        ],
        stop_reason="tool_use",
    )
    p, _ = provider(lambda r: httpx.Response(200, json=body))
    response = p.call(AgentCall(prompt="x"))
    assert response.content == "let me look"
    assert response.tool_calls == (
        ToolCall("toolu_1", "write", '{"a": "x", "b": 2}'),
        ToolCall("toolu_2", "noop", "{}"),
    )
    assert response.finish_reason == "tool_use"


def test_cache_tokens() -> None:
    usage = {
        "input_tokens": 100,
        "output_tokens": 40,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
    }
    p, _ = provider(lambda r: httpx.Response(200, json=ok_body(usage=usage)))
    got = p.call(AgentCall(prompt="x")).usage
    assert got.tokens_source == "reported"
    assert (got.input_tokens, got.output_tokens) == (100, 40)
    assert got.cache_write_tokens == 300
    assert got.cache_read_tokens == 600


def test_usage_absent_is_unavailable() -> None:
    body = ok_body()
    del body["usage"]
    p, _ = provider(lambda r: httpx.Response(200, json=body), pricing={"input_per_mtok": 1.0})
    usage = p.call(AgentCall(prompt="x")).usage
    assert not usage.available
    assert usage.input_tokens is None
    assert usage.cost_source == "unavailable"


def test_all_zero_usage_with_content_is_unavailable() -> None:
    body = ok_body(usage={"input_tokens": 0, "output_tokens": 0})
    p, _ = provider(lambda r: httpx.Response(200, json=body), pricing={"input_per_mtok": 1.0})
    usage = p.call(AgentCall(prompt="x")).usage
    assert not usage.available
    assert usage.cost_source == "unavailable"


def test_pricing_computes_cost_with_cache() -> None:
    pricing = {
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
        "cache_read_per_mtok": 0.3,
        "cache_write_per_mtok": 3.75,
    }
    usage = {
        "input_tokens": 1_000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 2_000,
        "cache_read_input_tokens": 4_000,
    }
    p, _ = provider(lambda r: httpx.Response(200, json=ok_body(usage=usage)), pricing=pricing)
    got = p.call(AgentCall(prompt="x")).usage
    assert got.cost_source == "computed"
    expected = (1_000 * 3.0 + 500 * 15.0 + 4_000 * 0.3 + 2_000 * 3.75) / 1_000_000
    assert got.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 529])
def test_retry_then_success(status: int) -> None:
    handler = Counter(
        httpx.Response(status, json={"type": "error", "error": {"message": "busy"}}),
        httpx.Response(200, json=ok_body()),
    )
    p, sleeps = provider(handler)
    assert p.call(AgentCall(prompt="x")).content == "hi"
    assert len(handler.requests) == 2
    assert len(sleeps) == 1


def test_connect_error_retried_then_success() -> None:
    handler = Counter(httpx.ConnectError("refused"), httpx.Response(200, json=ok_body()))
    p, _ = provider(handler)
    assert p.call(AgentCall(prompt="x")).content == "hi"
    assert len(handler.requests) == 2


def test_retry_exhaustion() -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    handler = Counter(httpx.Response(529, json=overloaded))
    p, sleeps = provider(handler, max_retries=3)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert len(handler.requests) == 3
    assert len(sleeps) == 2
    assert info.value.retryable
    assert info.value.status == 529
    assert info.value.reason is ReasonCode.PROVIDER_ERROR
    assert "overloaded" in info.value.message


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow")])
def test_timeout_raises_agent_timeout(exc: Exception) -> None:
    handler = Counter(exc)
    p, _ = provider(handler, max_retries=2)
    with pytest.raises(AgentTimeout) as info:
        p.call(AgentCall(prompt="x"))
    assert info.value.reason is ReasonCode.PROVIDER_TIMEOUT
    assert info.value.retryable
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    assert len(handler.requests) == 2


def test_no_retry_past_the_timeout() -> None:
    now = [0.0]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        now[0] += 9.5
        return httpx.Response(529, text="overloaded")

    p, sleeps = provider(handler, max_retries=10, timeout_s=10.0, clock=lambda: now[0])
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert info.value.status == 529
    assert len(seen) == 1
    assert sleeps == []


def _error(message: str, kind: str = "invalid_request_error") -> str:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(
    ("status", "text", "needle"),
    [
        (400, _error("max_tokens: field required"), "bad request"),
        (401, _error("invalid x-api-key", "authentication_error"), "authentication"),
        (403, _error("forbidden", "permission_error"), "authentication"),
        (400, _error("prompt is too long: 210000 tokens > 200000 maximum"), "context window"),
        (400, _error("input length exceeds the context window"), "context window"),
        (413, _error("request too large", "request_too_large"), "context window"),
        (404, _error("model not found", "not_found_error"), "refused"),
    ],
)
def test_client_errors_not_retried(status: int, text: str, needle: str) -> None:
    handler = Counter(httpx.Response(status, text=text))
    p, sleeps = provider(handler)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert len(handler.requests) == 1
    assert sleeps == []
    assert not info.value.retryable
    assert info.value.status == status
    assert info.value.reason is ReasonCode.PROVIDER_ERROR
    assert needle in info.value.message


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, json={"id": "msg_1", "type": "message"}),
        httpx.Response(200, json=ok_body(content=None)),
        httpx.Response(200, json=ok_body(content="hi")),
        httpx.Response(200, json=ok_body(content=[{"type": "tool_use", "id": "t"}])),
        httpx.Response(200, json=[1, 2]),
    ],
    ids=["not-json", "no-content", "null-content", "string-content", "nameless-tool", "array"],
)
def test_malformed_body_not_retried(response: httpx.Response) -> None:
    handler = Counter(response)
    p, _ = provider(handler)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert len(handler.requests) == 1
    assert not info.value.retryable
    assert info.value.reason is ReasonCode.PROVIDER_ERROR


def test_parse_messages_response_directly() -> None:
    response = parse_messages_response(ok_body(), 12.5)
    assert response.content == "hi"
    assert response.latency_ms == 12.5
    assert response.raw is not None and response.raw["id"] == "msg_1"


def test_empty_content_list_is_an_empty_answer() -> None:
    body = ok_body(content=[], usage={"input_tokens": 7, "output_tokens": 0})
    response = parse_messages_response(body, None)
    assert response.content == ""
    assert response.tool_calls == ()
    assert response.usage.available
    assert response.usage.input_tokens == 7
