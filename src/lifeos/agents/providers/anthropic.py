"""The Anthropic Messages API provider.

Three pieces, each usable alone, shaped like :mod:`lifeos.agents.providers.openai_compat`:

* :func:`messages_request` builds the ``/v1/messages`` request body an :class:`AgentCall`
  becomes: system messages are lifted into the top-level ``system`` string, ``max_tokens``
  (required by the API) defaults to :data:`DEFAULT_MAX_TOKENS`, and OpenAI-form tools become
  Anthropic's ``{name, description, input_schema}``.
* :func:`parse_messages_response` turns a (non-streaming) response body into an
  :class:`AgentResponse`; usage the server did not report is unavailable, never zero.
* :class:`AnthropicProvider` POSTs over an injectable httpx transport. HTTP error statuses are
  translated to :class:`AgentError` in one place (:func:`_check_status`; transport failures
  and undecodable bodies reuse the OpenAI-compatible provider's translation); retryable ones
  (timeouts, connection errors, 429, 529, 5xx) are retried with exponential backoff and
  jitter, never past the timeout.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from lifeos.agents.api import (
    AgentCall,
    AgentError,
    AgentResponse,
    ToolCall,
    Usage,
    usage_from_counts,
)
from lifeos.agents.providers.openai_compat import PooledHTTP, _count
from lifeos.errors import ReasonCode

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AnthropicProvider",
    "messages_request",
    "parse_messages_response",
]

DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` sent when the call sets none (the Messages API requires it)."""

_BODY_EXCERPT = 300
_CONTEXT_NEEDLES = ("prompt is too long", "context window", "context length")


def _text(value: Any) -> str:
    """The text of a message's content: a string, or the text of a list of parts."""
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
    return str(value)


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic tool from an OpenAI ``{"type": "function", "function": {...}}`` one."""
    function = tool.get("function")
    if not isinstance(function, Mapping):
        return dict(tool)  # already in Anthropic's form
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        out["description"] = function["description"]
    schema = function.get("parameters")
    out["input_schema"] = (
        dict(schema) if isinstance(schema, Mapping) else {"type": "object", "properties": {}}
    )
    return out


def messages_request(call: AgentCall, model: str | None) -> dict[str, Any]:
    """The Messages API request body for ``call``.

    Args:
        call: The agent call.
        model: The model to use when the call names none.

    Returns:
        ``{"model"?, "max_tokens", "system"?, "messages", "tools"?}``; ``model`` is left out
        when neither the call nor ``model`` names one, ``system`` when there are no system
        messages (several are joined by blank lines), ``tools`` when empty. Messages keep
        their ``role`` and ``content`` only.
    """
    body: dict[str, Any] = {}
    chosen = call.model or model
    if chosen:
        body["model"] = chosen
    body["max_tokens"] = call.max_tokens if call.max_tokens is not None else DEFAULT_MAX_TOKENS
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in call.chat_messages():
        if message.get("role") == "system":
            system.append(_text(message.get("content")))
        else:
            messages.append({"role": message.get("role"), "content": message.get("content")})
    if system:
        body["system"] = "\n\n".join(system)
    body["messages"] = messages
    if call.tools:
        body["tools"] = [_tool(t) for t in call.tools]
    return body


def _bad_body(detail: str) -> AgentError:
    return AgentError(f"malformed Anthropic messages response: {detail}", ReasonCode.PROVIDER_ERROR)


def _usage(value: Any, did_work: bool) -> Usage:
    if not isinstance(value, Mapping):
        return Usage()
    return usage_from_counts(
        _count(value.get("input_tokens")),
        _count(value.get("output_tokens")),
        did_work,
        cache_read_tokens=_count(value.get("cache_read_input_tokens")) or 0,
        cache_write_tokens=_count(value.get("cache_creation_input_tokens")) or 0,
    )


def parse_messages_response(body: Any, latency_ms: float | None) -> AgentResponse:
    """An :class:`AgentResponse` from a Messages API response body.

    Args:
        body: The decoded JSON body (non-streaming form).
        latency_ms: The wall time of the call, if measured.

    Returns:
        The text blocks joined, the ``tool_use`` blocks as tool calls (input as sorted JSON
        text), ``stop_reason`` as the finish reason, and usage from ``usage`` (unavailable
        when absent, or all zero for a call that produced something). The cost is not
        priced here.

    Raises:
        AgentError: ``PROVIDER_ERROR``, not retryable, when the body is not an object, has
            no ``content`` list, or has a tool use without a name.
    """
    if not isinstance(body, Mapping):
        raise _bad_body("the body is not a JSON object")
    blocks = body.get("content")
    if not isinstance(blocks, list):
        raise _bad_body("no content")
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str):
                raise _bad_body("a tool use has no name")
            arguments = block.get("input")
            tool_calls.append(
                ToolCall(
                    id=str(block.get("id") or ""),
                    name=name,
                    arguments=json.dumps(
                        arguments if arguments is not None else {}, sort_keys=True
                    ),
                )
            )
    content = "".join(texts)
    stop = body.get("stop_reason")
    return AgentResponse(
        content=content,
        tool_calls=tuple(tool_calls),
        finish_reason=stop if isinstance(stop, str) else None,
        usage=_usage(body.get("usage"), did_work=bool(content or tool_calls)),
        call_id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        latency_ms=latency_ms,
        raw=body,
    )


def _error_message(text: str) -> str:
    """The ``error.message`` of an Anthropic error body, or the raw text."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    error = decoded.get("error") if isinstance(decoded, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message if isinstance(message, str) else text


def _check_status(url: str, response: httpx.Response) -> None:
    """Map an HTTP error status to an agent error; 2xx passes."""
    status = response.status_code
    if status < 300:
        return
    text = response.text
    excerpt = " ".join(text[:_BODY_EXCERPT].split())
    lowered = _error_message(text).lower()
    if status == 413 or (status == 400 and any(n in lowered for n in _CONTEXT_NEEDLES)):
        what, retryable = "the request exceeds the model's context window", False
    elif status in (401, 403):
        what, retryable = "authentication failed (check the API key)", False
    elif status == 429:
        what, retryable = "rate limited", True
    elif status == 529:
        what, retryable = "overloaded", True
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


class AnthropicProvider(PooledHTTP):
    """An :class:`~lifeos.agents.api.AgentProvider` for the Anthropic Messages API."""

    def __init__(
        self,
        base_url: str = "https://api.anthropic.com",
        model: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        pricing: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        anthropic_version: str = "2023-06-01",
    ) -> None:
        """Configure the provider.

        Args:
            base_url: The API root (``/v1/messages`` is appended).
            model: The model used when a call names none.
            api_key: Sent as ``x-api-key`` when given.
            transport: The httpx transport (``httpx.MockTransport`` in tests).
            timeout_s: The most a call may take, retries included (a call's own
                ``timeout_s`` may lower it).
            max_retries: The most attempts per call (at least one).
            pricing: Per-million-token prices (``input_per_mtok``, ``output_per_mtok``,
                ``cache_read_per_mtok``, ``cache_write_per_mtok``) for the cost.
            clock: Seconds, for latency and the deadline.
            sleep: Waits between attempts.
            anthropic_version: Sent as the ``anthropic-version`` header.
        """
        super().__init__(
            base_url, model, api_key, transport, timeout_s, max_retries, pricing, clock, sleep
        )
        self.anthropic_version = anthropic_version

    @property
    def url(self) -> str:
        """The messages endpoint."""
        return f"{self.base_url}/v1/messages"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": self.anthropic_version,
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def call(self, request: AgentCall) -> AgentResponse:
        """Answer ``request`` with one message, retrying transient failures.

        Args:
            request: The agent call.

        Returns:
            The parsed response, its usage priced from the configured pricing.

        Raises:
            AgentTimeout: The provider did not answer within the timeout.
            AgentError: Any other provider failure, with its reason and retryability.
        """
        payload, latency_ms = self._post(
            messages_request(request, self.model), request, _check_status
        )
        response = parse_messages_response(payload, latency_ms)
        return dataclasses.replace(response, usage=response.usage.priced(self.pricing))
