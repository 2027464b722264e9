"""The OpenAI-compatible chat-completions provider (OpenAI, OpenRouter, vLLM, llama.cpp, Ollama).

Three pieces, each usable alone:

* :func:`chat_request` builds the request body an :class:`AgentCall` becomes; the replay
  provider keys its cassettes on the very same dict.
* :func:`parse_chat_response` turns a (non-streaming) response body into an
  :class:`AgentResponse`; usage the server did not report is unavailable, never zero.
* :class:`OpenAICompatProvider` POSTs to ``{base_url}/chat/completions`` over an injectable
  httpx transport. Failures are translated to :class:`AgentError` in one place
  (:func:`_translated` and :func:`_check_status`); retryable ones (timeouts, connection
  errors, 429, 5xx) are retried with exponential backoff and jitter, never past the timeout.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from lifeos.agents.api import (
    AgentCall,
    AgentError,
    AgentResponse,
    AgentTimeout,
    ToolCall,
    Usage,
    usage_from_counts,
)
from lifeos.errors import ReasonCode

__all__ = ["OpenAICompatProvider", "chat_request", "parse_chat_response"]

_BODY_EXCERPT = 300


def chat_request(call: AgentCall, model: str | None) -> dict[str, Any]:
    """The chat-completions request body for ``call``.

    Args:
        call: The agent call.
        model: The model to use when the call names none.

    Returns:
        ``{"model", "messages", "max_tokens"?, "tools"?}``; ``model`` is left out when
        neither the call nor ``model`` names one, ``max_tokens`` when unset, ``tools`` when
        empty.
    """
    body: dict[str, Any] = {}
    chosen = call.model or model
    if chosen:
        body["model"] = chosen
    body["messages"] = call.chat_messages()
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if call.tools:
        body["tools"] = [dict(t) for t in call.tools]
    return body


def _bad_body(detail: str) -> AgentError:
    return AgentError(f"malformed chat-completions response: {detail}", ReasonCode.PROVIDER_ERROR)


def _count(value: Any) -> int | None:
    """A token count, or None when absent or not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _detail(usage: Mapping[str, Any], section: str, name: str) -> int:
    details = usage.get(section)
    if not isinstance(details, Mapping):
        return 0
    return _count(details.get(name)) or 0


def _content(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    raise _bad_body(f"message content is a {type(value).__name__}")


def _tool_calls(value: Any) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad_body("tool_calls is not a list")
    calls = []
    for item in value:
        function = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _bad_body("a tool call has no function name")
        arguments = function.get("arguments")
        if arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments, sort_keys=True)
        calls.append(
            ToolCall(id=str(item.get("id") or ""), name=function["name"], arguments=arguments)
        )
    return tuple(calls)


def _usage(value: Any, did_work: bool) -> Usage:
    if not isinstance(value, Mapping):
        return Usage()
    usage = usage_from_counts(
        _count(value.get("prompt_tokens")),
        _count(value.get("completion_tokens")),
        did_work,
        reasoning_tokens=_detail(value, "completion_tokens_details", "reasoning_tokens"),
        cache_read_tokens=_detail(value, "prompt_tokens_details", "cached_tokens"),
    )
    cost = value.get("cost")
    if usage.available and isinstance(cost, int | float) and not isinstance(cost, bool):
        usage = dataclasses.replace(usage, cost_usd=float(cost), cost_source="reported")
    return usage


def parse_chat_response(body: Any, latency_ms: float | None) -> AgentResponse:
    """An :class:`AgentResponse` from a chat-completions response body.

    Args:
        body: The decoded JSON body (non-streaming form).
        latency_ms: The wall time of the call, if measured.

    Returns:
        The first choice's content (``""`` when null, as with tool calls), its tool calls
        and finish reason, and usage from ``usage`` (unavailable when absent, or all zero
        for a call that produced something). The cost is not priced here.

    Raises:
        AgentError: ``PROVIDER_ERROR``, not retryable, when the body is not an object or has
            no choice or no message.
    """
    if not isinstance(body, Mapping):
        raise _bad_body("the body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _bad_body("no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise _bad_body("the first choice has no message")
    content = _content(message.get("content"))
    tool_calls = _tool_calls(message.get("tool_calls"))
    finish = choice.get("finish_reason")
    return AgentResponse(
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=_usage(body.get("usage"), did_work=bool(content or tool_calls)),
        call_id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        latency_ms=latency_ms,
        raw=body,
    )


@contextmanager
def _translated(url: str) -> Iterator[None]:
    """Map httpx transport failures to agent errors (the one place they are translated)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise AgentTimeout(f"{url}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise AgentError(
            f"{url}: cannot reach the provider: {exc}", ReasonCode.PROVIDER_ERROR, retryable=True
        ) from exc


def _check_status(url: str, response: httpx.Response) -> None:
    """Map an HTTP error status to an agent error; 2xx passes."""
    status = response.status_code
    if status < 300:
        return
    text = response.text
    excerpt = " ".join(text[:_BODY_EXCERPT].split())
    if status == 413 or "context_length_exceeded" in text:
        what, retryable = "the request exceeds the model's context length", False
    elif status in (401, 403):
        what, retryable = "authentication failed (check the API key)", False
    elif status == 429:
        what, retryable = "rate limited", True
    elif status >= 500:
        what, retryable = "server error", True
    elif status == 400:
        what, retryable = "bad request", False
    else:
        what, retryable = "request refused", False
    raise AgentError(
        f"{url}: HTTP {status}, {what}: {excerpt}",
        ReasonCode.PROVIDER_ERROR,
        retryable=retryable,
        status=status,
    )


def _decode(url: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentError(
            f"{url}: the response body is not JSON: {response.text[:_BODY_EXCERPT]!r}",
            ReasonCode.PROVIDER_ERROR,
        ) from exc


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, AgentError) and exc.retryable


def post_json_with_retries(
    url: str,
    body: dict[str, Any],
    *,
    client: httpx.Client,
    timeout: float,
    max_retries: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    check_status: Callable[[str, httpx.Response], None] = _check_status,
    headers: Mapping[str, str] | None = None,
) -> tuple[Any, float]:
    """POST ``body`` as JSON and decode the answer, retrying retryable failures.

    ``headers`` are sent with every attempt, next to the client's own.

    Retries use exponential backoff with jitter, at most ``max_retries`` attempts in
    all, and never start or run past ``timeout`` seconds from now.

    Returns:
        The decoded JSON body and the whole call's latency in milliseconds.
    """
    start = clock()
    deadline = start + timeout

    def out_of_time(state: RetryCallState) -> bool:
        if state.attempt_number >= max_retries:
            return True
        return clock() + state.upcoming_sleep >= deadline

    def attempt(client: httpx.Client) -> Any:
        remaining = deadline - clock()
        if remaining <= 0:
            raise AgentTimeout(f"{url}: no time left for another attempt")
        with _translated(url):
            response = client.post(
                url, json=body, headers=headers, timeout=httpx.Timeout(remaining)
            )
        check_status(url, response)
        return _decode(url, response)

    retrying = Retrying(
        retry=retry_if_exception(_is_retryable),
        stop=out_of_time,
        wait=wait_exponential(multiplier=0.5, max=20.0) + wait_random(0, 0.5),
        sleep=sleep,
        reraise=True,
    )
    payload = retrying(attempt, client)
    return payload, (clock() - start) * 1000.0


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context (httpx's defaults: certifi's CA bundle) for every provider client
    of the process: loading the CA bundle costs tens of milliseconds of CPU, and a
    worker makes new providers for every phase it runs."""
    return httpx.create_ssl_context()


class PooledHTTP:
    """What the HTTP providers share: their settings, one ``httpx.Client`` made on first
    use (so calls reuse connections), and the retrying JSON POST."""

    def __init__(
        self,
        base_url: str,
        model: str | None,
        api_key: str | None,
        transport: httpx.BaseTransport | None,
        timeout_s: float,
        max_retries: int,
        pricing: Mapping[str, float] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._transport = transport
        self._client: httpx.Client | None = None
        self.timeout_s = timeout_s
        self.max_retries = max(1, max_retries)
        self.pricing = dict(pricing) if pricing else None
        self._clock = clock
        self._sleep = sleep

    @property
    def url(self) -> str:
        """The endpoint calls are posted to."""
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _post(
        self,
        body: dict[str, Any],
        request: AgentCall,
        check_status: Callable[[str, httpx.Response], None] = _check_status,
    ) -> tuple[Any, float]:
        """POST ``body`` to ``url`` within the call's deadline; the JSON and the latency."""
        return post_json_with_retries(
            self.url,
            body,
            client=self._http(),
            timeout=min(self.timeout_s, request.timeout_s),
            max_retries=self.max_retries,
            clock=self._clock,
            sleep=self._sleep,
            check_status=check_status,
            headers=(
                {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else None
            ),
        )

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=self._transport, headers=self._headers(), verify=shared_ssl_context()
            )
        return self._client

    def close(self) -> None:
        """Close the provider's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None


class OpenAICompatProvider(PooledHTTP):
    """An :class:`~lifeos.agents.api.AgentProvider` for OpenAI-compatible servers."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        pricing: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Configure the provider.

        Args:
            base_url: The API root, such as ``https://api.openai.com/v1``.
            model: The model used when a call names none.
            api_key: Sent as ``Authorization: Bearer`` when given.
            transport: The httpx transport (``httpx.MockTransport`` in tests).
            timeout_s: The most a call may take, retries included (a call's own
                ``timeout_s`` may lower it).
            max_retries: The most attempts per call (at least one).
            pricing: Per-million-token prices used when the server reports no cost.
            clock: Seconds, for latency and the deadline.
            sleep: Waits between attempts.
        """
        super().__init__(
            base_url, model, api_key, transport, timeout_s, max_retries, pricing, clock, sleep
        )

    @property
    def url(self) -> str:
        """The chat-completions endpoint."""
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def call(self, request: AgentCall) -> AgentResponse:
        """Answer ``request`` with one chat completion, retrying transient failures.

        Args:
            request: The agent call.

        Returns:
            The parsed response, its usage priced when the server gave no cost.

        Raises:
            AgentTimeout: The provider did not answer within the timeout.
            AgentError: Any other provider failure, with its reason and retryability.
        """
        payload, latency_ms = self._post(chat_request(request, self.model), request)
        response = parse_chat_response(payload, latency_ms)
        return dataclasses.replace(response, usage=response.usage.priced(self.pricing))
