"""The spine for a repository, wired the one way the CLI, the missions and the demo use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifeos.clock import Clock, SystemClock
from lifeos.repo import RepoContext
from lifeos.spine.controller import Spine, SpineDeps
from lifeos.store.base import Store

__all__ = ["configured_providers", "repo_spine"]


def configured_providers(
    models: Mapping[str, Any], env: Mapping[str, str], root: Any
) -> Callable[[str], Any]:
    """A role -> provider lookup over lifeos.yaml's ``models:`` (a role without a model
    of its own uses ``default``); each provider is built on first use and kept."""
    from lifeos.agents.factory import build_provider, role_spec

    providers: dict[str, Any] = {}

    def provider_for(role: str) -> Any:
        if role not in providers:
            name, spec = role_spec(models, role if role in models else None)
            providers[role] = build_provider(name, spec, env, root)
        return providers[role]

    return provider_for


def repo_spine(
    where: RepoContext,
    store: Store,
    settings: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    provider_for: Callable[[str], Any] | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    spine_env: Mapping[str, str] | None = None,
) -> Spine:
    """The spine of the repository ``where``: its store, settings, agents and keys.

    ``env`` is where API keys named by the models are read; ``spine_env`` is what the
    spine passes on to external builders (``env`` when not given).
    """
    from lifeos.ledger.keys import load_signer, load_verifier

    return Spine(
        SpineDeps(
            repo=where,
            store=store,
            clock=clock or SystemClock(),
            settings=settings,
            provider_for=provider_for
            or configured_providers(settings.get("models") or {}, env, where.main_root),
            signer=load_signer(where),
            verifier=load_verifier(where),
            progress=progress or (lambda _line: None),
            env=dict(env if spine_env is None else spine_env),
        )
    )
