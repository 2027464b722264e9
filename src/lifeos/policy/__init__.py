"""The diff gate's policy, path safety and rules (``lifeos gate check``)."""

from __future__ import annotations

from lifeos.policy.model import PROFILES, Policy, PolicyError, load_policy, resolve_policy

__all__ = ["PROFILES", "Policy", "PolicyError", "load_policy", "resolve_policy"]
