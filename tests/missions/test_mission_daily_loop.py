"""The daily loop: its pure functions, its operations in the engine, and the mission."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from lifeos.engine import (
    Decision,
    ExecutionContext,
    Orchestrator,
    StepSpec,
    WorkflowDefinition,
)
from lifeos.errors import InputError, MissionValidationError
from lifeos.missions import DailyLoopMission, MissionContext
from lifeos.missions.base import MissionType
from lifeos.missions.daily_loop import (
    archive_entries,
    log_line,
    rank_priorities,
    summarise_entries,
)
from lifeos.registry import run_mission

TODAY = dt.date(2024, 5, 2)

ENTRIES: list[dict[str, Any]] = [
    {"date": "2024-05-01", "text": "wrote tests", "done": True, "tags": ["work", "code"]},
    {"date": "2024-05-01T18:30:00", "text": "call mum", "tags": ["family"]},
    {"date": "2024-05-01", "text": "review PR", "done": "yes", "tags": ["work"]},
    {"date": "2024-04-30", "text": "old and done", "done": True, "tags": ["work"]},
    {"date": "2024-05-02", "text": "today's entry", "done": True},
]

TASKS: list[dict[str, Any]] = [
    {"id": "t1", "title": "low", "priority": "P3"},
    {"id": "t2", "title": "high later", "priority": "P1", "due": "2024-05-10"},
    {"id": "t3", "title": "high overdue", "priority": "P1", "due": "2024-04-20"},
    {"id": "t4", "title": "done", "priority": "P0", "status": "DONE"},
    {"id": "t5", "title": "blocked", "priority": "P0", "status": "blocked"},
    {"id": "t6", "title": "high no due", "priority": "P1"},
    {"id": "t7", "title": "high sooner", "priority": "p1", "due": "2024-05-05"},
    {"id": "t8", "title": "top", "priority": "P0", "status": "in_progress"},
]


# -- summarise_entries --------------------------------------------------------


def test_summarise_only_yesterday() -> None:
    s = summarise_entries(ENTRIES, TODAY)
    assert s["date"] == "2024-05-01"
    assert s["entries"] == 3
    # only done: true (the boolean) counts as done
    assert s["done"] == 1
    assert s["open"] == 2
    assert s["highlights"] == ["wrote tests", "call mum", "review PR"]
    assert s["open_items"] == ["call mum", "review PR"]
    assert s["tags"] == {"code": 1, "family": 1, "work": 2}
    assert list(s["tags"]) == sorted(s["tags"])


def test_summarise_nothing_yesterday() -> None:
    s = summarise_entries(ENTRIES, dt.date(2030, 1, 1))
    assert s == {
        "date": "2029-12-31",
        "entries": 0,
        "done": 0,
        "open": 0,
        "highlights": [],
        "open_items": [],
        "tags": {},
    }


def test_summarise_caps_highlights() -> None:
    entries = [{"date": "2024-05-01", "text": f"e{i}"} for i in range(15)]
    s = summarise_entries(entries, TODAY)
    assert s["entries"] == 15
    assert s["highlights"] == [f"e{i}" for i in range(10)]
    assert len(s["open_items"]) == 15


@pytest.mark.parametrize("date", ["yesterday", "2024-13-01", None, 20240501])
def test_summarise_bad_date(date: Any) -> None:
    with pytest.raises(InputError):
        summarise_entries([{"date": date, "text": "x"}], TODAY)


# -- rank_priorities ----------------------------------------------------------


def test_rank_orders_by_priority_overdue_due_and_backlog_order() -> None:
    ranked = rank_priorities(TASKS, TODAY, limit=10)
    assert [r["id"] for r in ranked] == ["t8", "t3", "t7", "t2", "t6", "t1"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5, 6]
    assert ranked[1] == {
        "rank": 2,
        "id": "t3",
        "title": "high overdue",
        "priority": "P1",
        "due": "2024-04-20",
        "overdue": True,
    }
    assert ranked[2]["priority"] == "P1"  # normalised from "p1"
    assert ranked[2]["overdue"] is False
    assert ranked[4]["due"] is None


def test_rank_skips_done_and_blocked() -> None:
    ids = {r["id"] for r in rank_priorities(TASKS, TODAY, limit=10)}
    assert "t4" not in ids
    assert "t5" not in ids


def test_rank_default_limit_is_three() -> None:
    assert [r["id"] for r in rank_priorities(TASKS, TODAY)] == ["t8", "t3", "t7"]
    assert [r["id"] for r in rank_priorities(TASKS, TODAY, limit=1)] == ["t8"]


def test_rank_ties_keep_backlog_order() -> None:
    tasks = [{"id": i, "title": str(i), "priority": "P2"} for i in range(5)]
    assert [r["id"] for r in rank_priorities(tasks, TODAY, limit=5)] == [0, 1, 2, 3, 4]


def test_rank_missing_priority_is_p3() -> None:
    ranked = rank_priorities([{"title": "x"}, {"title": "y", "priority": "P2"}], TODAY)
    assert [r["title"] for r in ranked] == ["y", "x"]
    assert ranked[1]["priority"] == "P3"
    assert ranked[1]["id"] is None


def test_rank_overdue_does_not_beat_priority() -> None:
    tasks = [
        {"id": "late", "title": "late", "priority": "P2", "due": "2020-01-01"},
        {"id": "p1", "title": "p1", "priority": "P1"},
    ]
    assert [r["id"] for r in rank_priorities(tasks, TODAY)] == ["p1", "late"]


def test_rank_due_today_is_not_overdue() -> None:
    ranked = rank_priorities([{"title": "x", "priority": "P1", "due": "2024-05-02"}], TODAY)
    assert ranked[0]["overdue"] is False


@pytest.mark.parametrize("priority", ["P4", "urgent", "0"])
def test_rank_bad_priority(priority: str) -> None:
    with pytest.raises(InputError, match="priority must be P0..P3"):
        rank_priorities([{"id": "t", "title": "x", "priority": priority}], TODAY)


def test_rank_bad_due_date() -> None:
    with pytest.raises(InputError, match="due date"):
        rank_priorities([{"title": "x", "priority": "P1", "due": "someday"}], TODAY)


# -- log_line and archive_entries -----------------------------------------------


def test_log_line() -> None:
    summary = {"done": 1, "entries": 3, "open": 2}
    priorities = [{"title": "alpha"}, {"title": "beta"}]
    assert (
        log_line(TODAY, summary, priorities)
        == "2024-05-02: yesterday 1/3 done, 2 open; today: alpha, beta"
    )


def test_log_line_with_nothing() -> None:
    assert log_line(TODAY, {}, []) == "2024-05-02: yesterday 0/0 done, 0 open; today: none"


def test_archive_entries() -> None:
    kept, archived = archive_entries(ENTRIES, TODAY)
    assert [e["text"] for e in archived] == ["wrote tests", "old and done"]
    assert [e["text"] for e in kept] == ["call mum", "review PR", "today's entry"]
    assert len(kept) + len(archived) == len(ENTRIES)


# -- operations through the engine -------------------------------------------------


def _run_op(
    operation: str,
    state: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    **payload: Any,
) -> Any:
    wf = WorkflowDefinition(
        id="wf-op", steps=[StepSpec("op", "runtime", {"operation": operation, **payload})]
    )
    return Orchestrator().run_workflow(wf, ExecutionContext(initial_state=state, metadata=metadata))


def test_summarise_operation_writes_daily_summary() -> None:
    result = _run_op("summarise_entries", {"today": "2024-05-02", "entries": ENTRIES})
    assert result.status == "completed"
    assert result.final_state["daily"]["summary"]["entries"] == 3


def test_rank_operation_honours_limit() -> None:
    result = _run_op("rank_priorities", {"today": "2024-05-02", "tasks": TASKS}, limit=2)
    assert result.status == "completed"
    assert [p["id"] for p in result.final_state["daily"]["priorities"]] == ["t8", "t3"]


@pytest.mark.parametrize("limit", [0, -1, "3", True, 1.5])
def test_rank_operation_refuses_bad_limit(limit: Any) -> None:
    from lifeos.errors import WorkflowDefinitionError

    with pytest.raises(WorkflowDefinitionError, match="limit"):
        _run_op("rank_priorities", {"today": "2024-05-02"}, limit=limit)


def test_log_operation_appends() -> None:
    state = {"today": "2024-05-02", "daily": {"log": ["earlier"]}}
    result = _run_op("log_summary", state)
    assert result.final_state["daily"]["log"] == [
        "earlier",
        "2024-05-02: yesterday 0/0 done, 0 open; today: none",
    ]
    assert state["daily"]["log"] == ["earlier"]  # the input is never mutated


def test_archive_operation_moves_entries() -> None:
    result = _run_op("archive_entries", {"today": "2024-05-02", "entries": ENTRIES})
    assert result.status == "completed"
    assert len(result.final_state["entries"]) == 3
    assert [e["text"] for e in result.final_state["archive"]] == ["wrote tests", "old and done"]


def test_today_from_metadata() -> None:
    result = _run_op("summarise_entries", {"entries": ENTRIES}, metadata={"today": "2024-05-02"})
    assert result.status == "completed"
    assert result.final_state["daily"]["summary"]["date"] == "2024-05-01"


def test_today_in_state_wins_over_metadata() -> None:
    result = _run_op(
        "summarise_entries",
        {"today": "2024-05-01", "entries": ENTRIES},
        metadata={"today": "2024-05-02"},
    )
    assert result.final_state["daily"]["summary"]["date"] == "2024-04-30"
    assert result.final_state["daily"]["summary"]["entries"] == 1


def test_no_today_fails() -> None:
    result = _run_op("summarise_entries", {"entries": []})
    assert result.status == "failed"
    assert result.reason_code == "INVALID_INPUT"
    assert "today" in result.error_message


@pytest.mark.parametrize(
    ("operation", "state", "reason"),
    [
        ("summarise_entries", {"today": "not-a-date"}, "INVALID_INPUT"),
        ("summarise_entries", {"today": "2024-05-02", "entries": [{"date": "x"}]}, "INVALID_INPUT"),
        (
            "rank_priorities",
            {"today": "2024-05-02", "tasks": [{"title": "x", "priority": "P9"}]},
            "INVALID_INPUT",
        ),
        ("summarise_entries", {"today": "2024-05-02", "entries": "lots"}, "STATE_TYPE_INVALID"),
        ("summarise_entries", {"today": "2024-05-02", "entries": [1, 2]}, "STATE_TYPE_INVALID"),
        ("rank_priorities", {"today": "2024-05-02", "tasks": {"a": 1}}, "STATE_TYPE_INVALID"),
        ("archive_entries", {"today": "2024-05-02", "entries": 7}, "STATE_TYPE_INVALID"),
        ("summarise_entries", {"today": "2024-05-02", "daily": []}, "STATE_TYPE_INVALID"),
        ("log_summary", {"today": "2024-05-02", "daily": {"log": "x"}}, "STATE_TYPE_INVALID"),
        ("archive_entries", {"today": "2024-05-02", "archive": {}}, "STATE_TYPE_INVALID"),
    ],
)
def test_bad_input_fails_the_step_with_a_reason(
    operation: str, state: dict[str, Any], reason: str
) -> None:
    result = _run_op(operation, state)
    assert result.status == "failed"
    assert result.success is False
    assert result.reason_code == reason
    assert result.failed_step_id == "op"
    assert result.error_message.startswith("Step 'op': ")


# -- the whole workflow ---------------------------------------------------------


def _daily_state() -> dict[str, Any]:
    return {"today": "2024-05-02", "entries": list(ENTRIES), "tasks": list(TASKS)}


def test_daily_loop_workflow_approved() -> None:
    result = run_mission(
        "daily_loop",
        ExecutionContext(initial_state=_daily_state()),
        decisions={"daily-confirm-priorities": Decision.approve("looks right")},
    )
    assert result.status == "completed", result.error_message
    assert [s.id for s in result.executed_steps] == [
        "daily-summarise-yesterday",
        "daily-generate-priorities",
        "daily-confirm-priorities",
        "daily-log-summary",
    ]
    daily = result.final_state["daily"]
    assert daily["summary"]["entries"] == 3
    assert [p["id"] for p in daily["priorities"]] == ["t8", "t3", "t7"]
    assert daily["log"] == [
        "2024-05-02: yesterday 1/3 done, 2 open; today: top, high overdue, high sooner"
    ]
    # the default plan has 4 steps: archiving is dropped from the end
    assert "archive" not in result.final_state
    assert result.receipt["decisions"] == [
        {
            "actor": "human",
            "decision": "approve",
            "note": "looks right",
            "step_id": "daily-confirm-priorities",
        }
    ]


def test_daily_loop_workflow_with_five_steps_archives() -> None:
    result = run_mission(
        "daily_loop",
        ExecutionContext(initial_state=_daily_state()),
        {"requested_steps": 5},
        decisions={"daily-confirm-priorities": Decision.approve()},
    )
    assert result.status == "completed", result.error_message
    assert result.executed_steps[-1].id == "daily-archive"
    assert [e["text"] for e in result.final_state["archive"]] == ["wrote tests", "old and done"]
    assert len(result.final_state["entries"]) == 3


def test_daily_loop_workflow_is_deterministic() -> None:
    decisions = {"daily-confirm-priorities": Decision.approve()}
    a = run_mission(
        "daily_loop", ExecutionContext(initial_state=_daily_state()), decisions=decisions
    )
    b = run_mission(
        "daily_loop", ExecutionContext(initial_state=_daily_state()), decisions=decisions
    )
    assert a.to_dict() == b.to_dict()


def test_daily_loop_workflow_pauses_without_a_decision() -> None:
    result = run_mission("daily_loop", ExecutionContext(initial_state=_daily_state()))
    assert result.status == "paused"
    assert result.waiting_step_id == "daily-confirm-priorities"
    assert "log" not in result.final_state["daily"]
    resumed = Orchestrator().resume(result, Decision.approve())
    assert resumed.status == "completed"
    assert len(resumed.final_state["daily"]["log"]) == 1


def test_daily_loop_workflow_rejected() -> None:
    result = run_mission(
        "daily_loop",
        ExecutionContext(initial_state=_daily_state()),
        decisions={"daily-confirm-priorities": Decision.reject("wrong order")},
    )
    assert result.status == "failed"
    assert result.reason_code == "HUMAN_REJECTED"
    assert result.failed_step_id == "daily-confirm-priorities"


def test_daily_loop_workflow_today_from_metadata() -> None:
    state = _daily_state()
    del state["today"]
    result = run_mission(
        "daily_loop",
        ExecutionContext(initial_state=state, metadata={"today": "2024-05-02"}),
        decisions={"daily-confirm-priorities": Decision.approve()},
    )
    assert result.status == "completed"
    assert result.final_state["daily"]["log"][0].startswith("2024-05-02:")


# -- the mission class -----------------------------------------------------------


def _ctx(tmp_path: Path) -> MissionContext:
    return MissionContext(repo_root=tmp_path, baseline_commit=None, run_id="r1")


def test_daily_loop_mission_directly(tmp_path: Path) -> None:
    mission = DailyLoopMission()
    inputs = {"today": "2024-05-02", "entries": ENTRIES, "tasks": TASKS}
    mission.validate_inputs(inputs)
    r = mission.run(_ctx(tmp_path), inputs)
    assert r.success is True
    assert r.mission_type is MissionType.DAILY_LOOP
    assert r.executed_steps == ["summarise", "prioritise", "log"]
    assert r.outputs["summary"]["done"] == 1
    assert [p["id"] for p in r.outputs["priorities"]] == ["t8", "t3", "t7"]
    assert r.outputs["log_line"] == (
        "2024-05-02: yesterday 1/3 done, 2 open; today: top, high overdue, high sooner"
    )


def test_daily_loop_mission_without_entries_or_tasks(tmp_path: Path) -> None:
    r = DailyLoopMission().run(_ctx(tmp_path), {"today": "2024-05-02"})
    assert r.success is True
    assert r.outputs["priorities"] == []
    assert r.outputs["summary"]["entries"] == 0


@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"today": "tomorrow"},
        {"today": "2024-05-02", "entries": "x"},
        {"today": "2024-05-02", "tasks": [1]},
    ],
)
def test_daily_loop_mission_validation(inputs: dict[str, Any]) -> None:
    with pytest.raises(MissionValidationError) as info:
        DailyLoopMission().validate_inputs(inputs)
    assert info.value.reason.value == "INVALID_INPUT"


def test_daily_loop_mission_through_the_mission_operation() -> None:
    wf = WorkflowDefinition(
        id="wf-dl",
        steps=[
            StepSpec(
                "dl",
                "runtime",
                {
                    "operation": "mission",
                    "mission_type": "daily_loop",
                    "params": {"today": "2024-05-02", "tasks": [{"title": "x", "priority": "P7"}]},
                },
            )
        ],
    )
    result = Orchestrator().run_workflow(wf, ExecutionContext())
    # a bad priority raised inside run() becomes a failed result, not a crash
    assert result.status == "failed"
    assert result.final_state["mission_result"]["success"] is False
    assert "priority must be P0..P3" in result.error_message
