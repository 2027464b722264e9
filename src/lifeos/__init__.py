"""LifeOS: governed, auditable, resumable runs of AI coding agents.

The public API is re-exported here lazily, so ``import lifeos`` (and the CLI's
start-up) pays only for what is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AntiFailurePlanningError": "lifeos.errors",
    "AntiFailureViolation": "lifeos.errors",
    "BaseMission": "lifeos.missions",
    "Decision": "lifeos.engine",
    "EnvelopeViolation": "lifeos.errors",
    "ExecutionContext": "lifeos.engine",
    "InMemoryJournal": "lifeos.journal",
    "LifeOSError": "lifeos.errors",
    "MISSION_REGISTRY": "lifeos.registry",
    "MissionContext": "lifeos.missions",
    "MissionResult": "lifeos.missions",
    "MissionSpec": "lifeos.builder",
    "MissionType": "lifeos.missions",
    "OrchestrationResult": "lifeos.engine",
    "Orchestrator": "lifeos.engine",
    "ReasonCode": "lifeos.errors",
    "StepSpec": "lifeos.engine",
    "UnknownMissionError": "lifeos.errors",
    "WorkflowDefinition": "lifeos.engine",
    "build_workflow": "lifeos.builder",
    "canonical_json": "lifeos.canonical",
    "list_mission_types": "lifeos.registry",
    "run_mission": "lifeos.registry",
    "sha256_hex": "lifeos.canonical",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lifeos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
