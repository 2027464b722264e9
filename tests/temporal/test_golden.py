"""Recorded histories of the spine workflow still replay against its code.

A run in flight when a new LifeOS is deployed is continued by the new workers, which
replay its history: a change to the workflow that issues other commands for the same
events breaks those runs. Temporal's Replayer (no server) raises when it would; the
histories are recorded by golden/record.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from lifeos.temporal.workflow import SpineWorkflow

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_a_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json("golden", json.loads(path.read_text()))
    assert len(history.events) > 10
    asyncio.run(Replayer(workflows=[SpineWorkflow]).replay_workflow(history))


def test_there_is_a_recorded_history() -> None:
    assert GOLDEN, "tests/temporal/golden/record.py records them"
