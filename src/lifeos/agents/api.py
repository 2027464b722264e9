"""The agent contract: one call in, one response out, with exactly what it cost.

Every provider (OpenAI-compatible, Anthropic, OpenCode, a CLI agent, replay)
implements :class:`AgentProvider`. Provider failures are mapped once, at the
provider boundary, to :class:`AgentError` and its subclasses, each carrying a
reason code and whether a retry may help. Usage a provider did not report is
*unavailable* (``Usage.available`` is False), never zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from lifeos.errors import LifeOSError, ReasonCode

__all__ = [
    "AgentCall",
    "AgentError",
    "AgentProvider",
    "AgentResponse",
    "AgentTimeout",
    "ReplayMiss",
    "ToolCall",
    "Usage",
]

Source = Literal["reported", "computed", "unavailable"]


class AgentError(LifeOSError):
    """A provider failure, mapped at the provider boundary."""

    default_reason = ReasonCode.PROVIDER_ERROR

    def __init__(
        self,
        message: str,
        reason: ReasonCode | None = None,
        *,
        retryable: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message, reason)
        self._retryable = retryable
        self.status = status

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed if tried again (rate limit, 5xx, timeouts)."""
        return self._retryable


class AgentTimeout(AgentError):
    """The provider did not answer within the call's timeout."""

    default_reason = ReasonCode.PROVIDER_TIMEOUT

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ReplayMiss(AgentError):
    """A replayed request with no recording; the message names its key."""

    def __init__(self, key: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"no recording for request key {key}{extra}", ReasonCode.PROVIDER_ERROR)
        self.key = key


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one call, and where each figure came from."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    tokens_source: Source = "unavailable"
    """``reported`` by the provider, or ``unavailable``."""
    cost_source: Source = "unavailable"
    """``reported`` by the provider, ``computed`` from configured pricing, or ``unavailable``."""

    @property
    def available(self) -> bool:
        """Whether token counts are known (a cap can be enforced)."""
        return self.tokens_source != "unavailable"

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, when known."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    @classmethod
    def reported(
        cls,
        input_tokens: int,
        output_tokens: int,
        *,
        reasoning_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cost_usd: float | None = None,
    ) -> Usage:
        """Usage the provider reported; all-zero counts for real work are refused."""
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            cost_usd=cost_usd,
            tokens_source="reported",
            cost_source="reported" if cost_usd is not None else "unavailable",
        )

    def priced(self, pricing: Mapping[str, float] | None) -> Usage:
        """Fill in the cost from per-million-token pricing when the provider gave none."""
        if self.cost_usd is not None or not pricing or not self.available:
            return self
        cost = (
            (self.input_tokens or 0) * pricing.get("input_per_mtok", 0.0)
            + (self.output_tokens or 0) * pricing.get("output_per_mtok", 0.0)
            + (self.cache_read_tokens or 0) * pricing.get("cache_read_per_mtok", 0.0)
            + (self.cache_write_tokens or 0) * pricing.get("cache_write_per_mtok", 0.0)
        ) / 1_000_000
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            round(cost, 10),
            self.tokens_source,
            "computed",
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_source": self.cost_source,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "tokens_source": self.tokens_source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The inverse of :meth:`to_dict`."""
        return cls(
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            reasoning_tokens=data.get("reasoning_tokens"),
            cache_read_tokens=data.get("cache_read_tokens"),
            cache_write_tokens=data.get("cache_write_tokens"),
            cost_usd=data.get("cost_usd"),
            tokens_source=data.get("tokens_source", "unavailable"),
            cost_source=data.get("cost_source", "unavailable"),
        )


def usage_from_counts(
    input_tokens: int | None,
    output_tokens: int | None,
    did_work: bool,
    **extra: int,
) -> Usage:
    """Usage from a provider's counts: absent, or all zero for real work, is unavailable."""
    if input_tokens is None or output_tokens is None:
        return Usage()
    if did_work and input_tokens == 0 and output_tokens == 0:
        return Usage()
    return Usage.reported(input_tokens, output_tokens, **extra)


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call."""

    id: str
    name: str
    arguments: str
    """The arguments as the JSON text the model produced."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"arguments": self.arguments, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class AgentCall:
    """One request to a model or agent."""

    messages: Sequence[Mapping[str, Any]] = ()
    """Chat messages ``{role, content, ...}``; a ``prompt`` becomes one user message."""
    prompt: str | None = None
    model: str | None = None
    role: str | None = None
    """The configured role (designer, builder, reviewer) that picks provider and model."""
    max_tokens: int | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    """Tool definitions in the OpenAI ``{"type": "function", "function": {...}}`` form."""
    timeout_s: float = 120.0
    idempotency_key: str | None = None
    """The same for every attempt at one journaled call, across retries and resumes.
    HTTP providers send it as ``Idempotency-Key``: a server or gateway that honours it
    answers a call repeated after a crash (between its answer and the journal record)
    with the first answer instead of running the model again."""

    def chat_messages(self) -> list[dict[str, Any]]:
        """The messages to send: ``messages``, then ``prompt`` as a user message."""
        out = [dict(m) for m in self.messages]
        if self.prompt is not None:
            out.append({"role": "user", "content": self.prompt})
        return out


@dataclass(frozen=True)
class AgentResponse:
    """What a provider answered, with its usage."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    call_id: str = ""
    model: str = ""
    latency_ms: float | None = None
    """Wall time of the call; recorded, never hashed or compared."""
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the raw body is left out)."""
        return {
            "call_id": self.call_id,
            "content": self.content,
            "finish_reason": self.finish_reason,
            "latency_ms": self.latency_ms,
            "model": self.model,
            "tool_calls": [t.to_dict() for t in self.tool_calls],
            "usage": self.usage.to_dict(),
        }


@runtime_checkable
class AgentProvider(Protocol):
    """Answers agent calls."""

    def call(self, request: AgentCall) -> AgentResponse:
        """Answer ``request``; raise :class:`AgentError` on failure."""
        ...
