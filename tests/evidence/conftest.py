"""Shared helpers for the evidence tests: a key, a clock and a bundle writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifeos.clock import FixedClock
from lifeos.evidence import root_predicate, write_bundle
from lifeos.ledger.note import Signer

CHANGES: list[dict[str, str]] = [
    {"status": "M", "path": "src/app.py"},
    {"status": "A", "path": "docs/guide.md"},
    {"status": "R", "path": "docs/new.md", "old_path": "docs/old.md"},
]


@pytest.fixture
def signer() -> Signer:
    """A fresh repository key."""
    return Signer.generate("lifeos/test")


MakeBundle = Callable[..., Path]


def _make_bundle(root: Path, signer: Signer, run_id: str = "run-1", **overrides: Any) -> Path:
    """Write a bundle under ``root`` (the .lifeos folder) with sensible defaults."""
    args: dict[str, Any] = {
        "status": "BLOCK",
        "reason_codes": ["DENYLISTED_PATH", "OUTSIDE_ALLOWLIST"],
        "changed_files": CHANGES,
        "runner_log": "step 1\nstep 2\n",
        "policy_hash": "ab" * 32,
        "base_commit": "1" * 40,
        "head_commit": "2" * 40,
        "decision": {"decision_id": "d-1", "result": "BLOCK"},
        "signer": signer,
        "clock": FixedClock(),
        "is_governance_path": root_predicate(["docs/01_governance/", "lifeos.yaml"]),
        "is_denylisted_path": root_predicate(["config/", "scripts/"]),
    }
    args.update(overrides)
    return write_bundle(root, run_id, **args)


@pytest.fixture
def make_bundle() -> MakeBundle:
    """``make_bundle(root, signer, run_id="run-1", **overrides) -> folder``."""
    return _make_bundle
