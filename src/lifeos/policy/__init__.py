"""The diff gate's policy, path safety and rules (``lifeos gate check``).

Names are re-exported lazily, so importing a submodule (the git reader the CLI starts
first) does not load the policy model.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PROFILES", "Policy", "PolicyError", "load_policy", "resolve_policy"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("lifeos.policy.model"), name)
    raise AttributeError(f"module 'lifeos.policy' has no attribute {name!r}")
