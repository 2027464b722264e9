"""Providers from lifeos.yaml's ``models:`` section: a role names a provider and a model.

Secrets come only from the environment variable a role names (``api_key_env``);
a role that is not configured, or whose key variable is unset, stops with
``PROVIDER_NOT_CONFIGURED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifeos.agents.api import AgentCall, AgentError, AgentProvider
from lifeos.errors import ReasonCode

__all__ = ["AgentLLM", "build_provider", "role_spec"]


def role_spec(models: Mapping[str, Any], role: str | None) -> tuple[str, dict[str, Any]]:
    """The configured role (``role``, or ``default`` when none is given) and its settings."""
    name = role or "default"
    spec = models.get(name)
    if not isinstance(spec, dict):
        known = ", ".join(sorted(models)) or "none"
        raise AgentError(
            f"no model is configured for role '{name}' (configured roles: {known})",
            ReasonCode.PROVIDER_NOT_CONFIGURED,
        )
    return name, spec


def build_provider(
    role: str, spec: Mapping[str, Any], env: Mapping[str, str], root: Path
) -> AgentProvider:
    """Make the provider a role's settings describe."""
    pricing = spec.get("pricing")
    api_key = None
    if spec.get("api_key_env"):
        api_key = env.get(spec["api_key_env"])
        if not api_key:
            raise AgentError(
                f"role '{role}' needs the environment variable {spec['api_key_env']}, "
                "which is not set",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
    kind = spec["provider"]
    timeout = float(spec.get("timeout_s") or 120.0)
    if kind == "openai":
        from lifeos.agents.providers.openai_compat import OpenAICompatProvider

        if not spec.get("endpoint"):
            raise AgentError(
                f"role '{role}': an openai provider needs an endpoint",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        return OpenAICompatProvider(
            spec["endpoint"], spec.get("model"), api_key, timeout_s=timeout, pricing=pricing
        )
    if kind == "anthropic":
        from lifeos.agents.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            spec.get("endpoint") or "https://api.anthropic.com",
            spec.get("model"),
            api_key,
            timeout_s=timeout,
            pricing=pricing,
        )
    if kind == "replay":
        from lifeos.agents.cassette import Cassette
        from lifeos.agents.providers.replay import ReplayProvider

        if not spec.get("cassette"):
            raise AgentError(
                f"role '{role}': a replay provider needs a cassette",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        path = Path(spec["cassette"])
        return ReplayProvider(
            Cassette.load(path if path.is_absolute() else root / path),
            pricing,
            model=spec.get("model"),
        )
    if kind == "command":
        from lifeos.agents.providers.command import CommandProvider

        if not spec.get("command"):
            raise AgentError(
                f"role '{role}': a command provider needs a command",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        return CommandProvider(
            spec["command"],
            root,
            timeout_s=timeout,
            output_format=spec.get("format", "text"),
            pricing=pricing,
        )
    if kind == "opencode":
        from lifeos.agents.providers.opencode import OpenCodeProvider

        model = str(spec.get("model") or "")
        provider_id, _, model_id = model.partition("/")
        if not spec.get("endpoint") or not model_id:
            raise AgentError(
                f"role '{role}': an opencode provider needs an endpoint (the server's URL) "
                "and a model written as providerID/modelID",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        return OpenCodeProvider(
            spec["endpoint"],
            provider_id,
            model_id,
            password=api_key,
            timeout_s=timeout,
            pricing=pricing,
        )
    raise AgentError(
        f"role '{role}': provider '{kind}' is not available in this build",
        ReasonCode.PROVIDER_NOT_CONFIGURED,
    )


class AgentLLM:
    """The engine's LLM service over configured roles (``Services.llm``)."""

    def __init__(self, models: Mapping[str, Any], env: Mapping[str, str], root: Path) -> None:
        self.models = models
        self.env = env
        self.root = root
        self._providers: dict[str, AgentProvider] = {}

    def complete(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """Answer an ``llm_call`` request through the role's provider."""
        role, spec = role_spec(self.models, request.get("role"))
        provider = self._providers.get(role)
        if provider is None:
            provider = self._providers[role] = build_provider(role, spec, self.env, self.root)
        call = AgentCall(
            prompt=str(request["prompt"]),
            model=request.get("model") or spec.get("model"),
            role=role,
            max_tokens=request.get("max_tokens") or spec.get("max_tokens"),
            timeout_s=float(spec.get("timeout_s") or 120.0),
        )
        response = provider.call(call)
        return {
            "call_id": response.call_id,
            "content": response.content,
            "latency_ms": response.latency_ms,
            "model": response.model,
            "usage": response.usage.to_dict(),
        }
