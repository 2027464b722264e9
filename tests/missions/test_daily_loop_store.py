"""The daily loop, store-backed: timeline in, backlog in, summary event and artifact out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeos.clock import FixedClock
from lifeos.durable import run_recorded
from lifeos.engine import Decision, ExecutionContext, Orchestrator
from lifeos.registry import MISSION_REGISTRY
from lifeos.services import Services
from lifeos.store.sqlite import SQLiteStore

YESTERDAY = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "lifeos.db", FixedClock(YESTERDAY, dt.timedelta(minutes=1)))
    yield s
    s.close()


def _backlog(tmp_path: Path) -> Path:
    path = tmp_path / "backlog.yaml"
    path.write_text(
        "- {id: T-1, title: Later, priority: P2, status: TODO}\n"
        "- {id: T-2, title: Now, priority: P0, status: TODO}\n"
        "- {id: T-3, title: Done already, priority: P0, status: DONE}\n"
    )
    return path


def _daily(store: SQLiteStore, backlog: Path, run_id: str) -> dict[str, object]:
    workflow = MISSION_REGISTRY["daily_loop"]({})
    orch = Orchestrator(services=Services(store=store, backlog_path=backlog))
    ctx = ExecutionContext(metadata={"today": "2026-11-21"})
    result = run_recorded(
        store,
        orch,
        workflow,
        ctx,
        run_id,
        kind="mission",
        name="daily_loop",
        decisions={"daily-confirm-priorities": Decision.approve()},
    )
    assert result.status == "completed", result.error_message
    return result.final_state


def test_summary_comes_from_yesterdays_timeline(store: SQLiteStore, tmp_path: Path) -> None:
    store.create_run("r-ok", "mission", "echo")
    store.add_event(
        "r-ok", None, "run.finished", {"kind": "mission", "name": "echo", "status": "completed"}
    )
    store.create_run("r-bad", "mission", "run_tests")
    store.add_event(
        "r-bad", None, "run.finished", {"kind": "mission", "name": "run_tests", "status": "failed"}
    )
    # The clock moves to today before the loop runs.
    store.clock = FixedClock(dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC))
    state = _daily(store, _backlog(tmp_path), "daily-1")
    daily = state["daily"]
    assert isinstance(daily, dict)
    summary = daily["summary"]
    assert summary["date"] == "2026-11-20"
    assert summary["entries"] == 2 and summary["done"] == 1 and summary["open"] == 1
    assert "run.finished: mission run_tests failed" in summary["open_items"]
    assert [p["id"] for p in daily["priorities"]] == ["T-2", "T-1"]


def test_summary_is_logged_as_event_and_artifact_once(store: SQLiteStore, tmp_path: Path) -> None:
    store.clock = FixedClock(dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC))
    backlog = _backlog(tmp_path)
    state = _daily(store, backlog, "daily-2")
    daily = state["daily"]
    assert isinstance(daily, dict)
    logged = daily["logged"]
    events = [e for e in store.list_events("daily-2") if e["event_type"] == "daily.summary"]
    assert [e["event_id"] for e in events] == [logged["event_id"]]
    got = store.get_artifact(logged["artifact_id"])
    assert got is not None
    record, content = got
    assert record["file_path"] == "daily/2026-11-21.md"
    assert daily["log"][-1].encode() in content
    # Running the same run id again replays: no second event, no new artifact version.
    _daily(store, backlog, "daily-2")
    events = [e for e in store.list_events("daily-2") if e["event_type"] == "daily.summary"]
    assert len(events) == 1
    assert len(store.list_artifacts("daily-2")) == 1


def test_missing_backlog_fails_with_reason(store: SQLiteStore, tmp_path: Path) -> None:
    workflow = MISSION_REGISTRY["daily_loop"]({})
    orch = Orchestrator(services=Services(store=store, backlog_path=tmp_path / "nope.yaml"))
    result = run_recorded(
        store,
        orch,
        workflow,
        ExecutionContext(metadata={"today": "2026-11-21"}),
        "daily-3",
        kind="mission",
        name="daily_loop",
    )
    assert result.status == "failed"
    assert result.reason_code == "TASK_NOT_FOUND"
