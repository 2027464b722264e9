"""Agents: the provider contract, usage accounting, cassettes and providers."""

from __future__ import annotations

from lifeos.agents.api import (
    AgentCall,
    AgentError,
    AgentProvider,
    AgentResponse,
    AgentTimeout,
    ReplayMiss,
    ToolCall,
    Usage,
)

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
