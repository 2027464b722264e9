"""The OpenAI-compatible provider against httpx.MockTransport: parsing and error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lifeos.agents.api import AgentCall, AgentError, AgentTimeout, ToolCall
from lifeos.agents.providers.openai_compat import (
    OpenAICompatProvider,
    chat_request,
    parse_chat_response,
)
from lifeos.errors import ReasonCode

BASE = "http://llm.test/v1"


def ok_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "model": "m-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
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
) -> tuple[OpenAICompatProvider, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("model", "m-1")
    p = OpenAICompatProvider(
        BASE, transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs
    )
    return p, sleeps


def test_request_shape_and_parse() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ok_body())

    tools = [{"type": "function", "function": {"name": "read", "parameters": {}}}]
    p, _ = provider(handler, api_key="sk-test")
    call = AgentCall(
        messages=[{"role": "system", "content": "be brief"}],
        prompt="hello",
        max_tokens=64,
        tools=tools,
    )
    response = p.call(call)
    request = seen[0]
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer sk-test"
    sent = json.loads(request.content)
    assert sent == {
        "model": "m-1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "max_tokens": 64,
        "tools": tools,
    }
    assert sent == chat_request(call, "m-1")
    assert response.content == "hi"
    assert response.finish_reason == "stop"
    assert response.call_id == "chatcmpl-1"
    assert response.model == "m-1"
    assert response.tool_calls == ()
    assert response.usage.available
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.cost_source == "unavailable"
    assert response.latency_ms is not None and response.latency_ms >= 0


def test_no_authorization_without_key_and_call_model_wins() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ok_body())

    p, _ = provider(handler)
    p.call(AgentCall(prompt="x", model="other"))
    assert "authorization" not in seen[0].headers
    assert json.loads(seen[0].content)["model"] == "other"


def test_latency_from_injected_clock() -> None:
    ticks = iter([1.0, 1.0, 1.25])
    p, _ = provider(lambda r: httpx.Response(200, json=ok_body()), clock=lambda: next(ticks))
    assert p.call(AgentCall(prompt="x")).latency_ms == pytest.approx(250.0)


def test_tool_calls_with_null_content() -> None:
    body = ok_body(
        choices=[
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "write", "arguments": '{"filePath": "a"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    )
    p, _ = provider(lambda r: httpx.Response(200, json=body))
    response = p.call(AgentCall(prompt="x"))
    assert response.content == ""
    assert response.tool_calls == (ToolCall("call_1", "write", '{"filePath": "a"}'),)
    assert response.finish_reason == "tool_calls"


def test_cached_and_reasoning_tokens() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    p, _ = provider(lambda r: httpx.Response(200, json=ok_body(usage=usage)))
    got = p.call(AgentCall(prompt="x")).usage
    assert got.tokens_source == "reported"
    assert (got.input_tokens, got.output_tokens) == (100, 40)
    assert got.cache_read_tokens == 60
    assert got.reasoning_tokens == 25


def test_usage_absent_is_unavailable() -> None:
    body = ok_body()
    del body["usage"]
    p, _ = provider(lambda r: httpx.Response(200, json=body))
    usage = p.call(AgentCall(prompt="x")).usage
    assert not usage.available
    assert usage.input_tokens is None


def test_all_zero_usage_with_content_is_unavailable() -> None:
    body = ok_body(usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    p, _ = provider(lambda r: httpx.Response(200, json=body), pricing={"input_per_mtok": 1.0})
    usage = p.call(AgentCall(prompt="x")).usage
    assert not usage.available
    assert usage.cost_source == "unavailable"


def test_pricing_computes_cost() -> None:
    pricing = {"input_per_mtok": 2.0, "output_per_mtok": 10.0}
    body = ok_body(usage={"prompt_tokens": 1_000, "completion_tokens": 500})
    p, _ = provider(lambda r: httpx.Response(200, json=body), pricing=pricing)
    usage = p.call(AgentCall(prompt="x")).usage
    assert usage.cost_source == "computed"
    assert usage.cost_usd == pytest.approx((1_000 * 2.0 + 500 * 10.0) / 1_000_000)


def test_reported_cost_is_kept_over_pricing() -> None:
    body = ok_body(usage={"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0042})
    p, _ = provider(lambda r: httpx.Response(200, json=body), pricing={"input_per_mtok": 1.0})
    usage = p.call(AgentCall(prompt="x")).usage
    assert usage.cost_source == "reported"
    assert usage.cost_usd == pytest.approx(0.0042)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retry_then_success(status: int) -> None:
    handler = Counter(
        httpx.Response(status, text="busy"),
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
    handler = Counter(httpx.Response(503, text="down"))
    p, sleeps = provider(handler, max_retries=3)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert len(handler.requests) == 3
    assert len(sleeps) == 2
    assert info.value.retryable
    assert info.value.status == 503
    assert info.value.reason is ReasonCode.PROVIDER_ERROR


def test_connect_error_exhaustion_is_retryable_provider_error() -> None:
    handler = Counter(httpx.ConnectError("refused"))
    p, _ = provider(handler, max_retries=2)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert not isinstance(info.value, AgentTimeout)
    assert info.value.retryable
    assert info.value.reason is ReasonCode.PROVIDER_ERROR
    assert len(handler.requests) == 2


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
        return httpx.Response(503, text="down")

    p, sleeps = provider(handler, max_retries=10, timeout_s=10.0, clock=lambda: now[0])
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    # 9.5s of 10s spent: any backoff would run past the deadline, so no second attempt.
    assert info.value.status == 503
    assert len(seen) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "text", "needle"),
    [
        (400, '{"error": {"message": "bad field"}}', "bad request"),
        (401, '{"error": "invalid key"}', "authentication"),
        (403, '{"error": "forbidden"}', "authentication"),
        (413, "too big", "context length"),
        (400, '{"error": {"code": "context_length_exceeded"}}', "context length"),
        (404, "no such model", "refused"),
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
        httpx.Response(200, json=ok_body(choices=[])),
        httpx.Response(200, json={"id": "x"}),
        httpx.Response(200, json=ok_body(choices=[{"finish_reason": "stop"}])),
        httpx.Response(200, json=[1, 2]),
    ],
    ids=["not-json", "empty-choices", "no-choices", "no-message", "not-object"],
)
def test_malformed_body_not_retried(response: httpx.Response) -> None:
    handler = Counter(response)
    p, _ = provider(handler)
    with pytest.raises(AgentError) as info:
        p.call(AgentCall(prompt="x"))
    assert len(handler.requests) == 1
    assert not info.value.retryable
    assert info.value.reason is ReasonCode.PROVIDER_ERROR


def test_parse_chat_response_directly() -> None:
    response = parse_chat_response(ok_body(), 12.5)
    assert response.content == "hi"
    assert response.latency_ms == 12.5
    assert response.raw is not None and response.raw["id"] == "chatcmpl-1"


def test_the_idempotency_key_goes_with_every_attempt() -> None:
    handler = Counter(
        httpx.Response(503, text="busy"),
        httpx.Response(200, json=ok_body()),
    )
    p, _ = provider(handler)
    p.call(AgentCall(prompt="x", idempotency_key="k-1"))
    assert [r.headers.get("Idempotency-Key") for r in handler.requests] == ["k-1", "k-1"]
    p.call(AgentCall(prompt="x"))  # no key: no header
    assert "Idempotency-Key" not in handler.requests[-1].headers
