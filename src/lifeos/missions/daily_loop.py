"""The daily loop: summarise yesterday, rank today's priorities, log the summary.

The work is a set of pure functions over the state a run is given:

- ``today``: the date the loop runs for (``YYYY-MM-DD``), from the state or,
  failing that, from the run's metadata (the CLI puts the date there; the loop
  itself never reads a clock);
- ``entries``: journal entries ``{date, text, done?, tags?}``;
- ``tasks``: backlog items ``{id?, title, priority: P0..P3, status?, due?}``.

With a store among the services (``lifeos mission run daily_loop``), entries
missing from the state come from yesterday's timeline events, tasks missing from
the state come from the backlog file, and the logged summary is kept as a
timeline event and an artifact. Every such read and write goes through the run
journal, so a resumed run sees the same data and logs once.

Each function is also an engine operation (``summarise_entries``,
``rank_priorities``, ``log_summary``, ``archive_entries``), which the builder's
``daily_loop`` template strings together, and :class:`DailyLoopMission` runs
them in one go.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeos.engine import StepEnv, StepFailure, StepSpec
from lifeos.errors import InputError, MissionValidationError, ReasonCode
from lifeos.missions.base import BaseMission, MissionContext, MissionResult, MissionType
from lifeos.operations import Operation

if TYPE_CHECKING:
    from lifeos.store.base import Store

__all__ = [
    "DAILY_OPERATIONS",
    "DailyLoopMission",
    "archive_entries",
    "log_line",
    "rank_priorities",
    "summarise_entries",
]

_PRIORITY = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}
MAX_HIGHLIGHTS = 10


def _day(value: Any, what: str) -> dt.date:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a date string YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise InputError(f"{what} is not a date (YYYY-MM-DD): {value!r}") from None


def _items(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise InputError(f"{what} must be a list of objects", ReasonCode.STATE_TYPE_INVALID)
    return value


def summarise_entries(entries: list[dict[str, Any]], today: dt.date) -> dict[str, Any]:
    """Summarise the entries dated the day before ``today``."""
    yesterday = today - dt.timedelta(days=1)
    mine = [e for e in entries if _day(e.get("date"), "entry date") == yesterday]
    done = [e for e in mine if e.get("done") is True]
    tags: dict[str, int] = {}
    for entry in mine:
        raw_tags = entry.get("tags") or []
        for tag in [raw_tags] if isinstance(raw_tags, str) else raw_tags:
            tags[str(tag)] = tags.get(str(tag), 0) + 1
    return {
        "date": yesterday.isoformat(),
        "entries": len(mine),
        "done": len(done),
        "open": len(mine) - len(done),
        "highlights": [str(e.get("text", "")) for e in mine[:MAX_HIGHLIGHTS]],
        "open_items": [str(e.get("text", "")) for e in mine if e.get("done") is not True],
        "tags": dict(sorted(tags.items())),
    }


def rank_priorities(
    tasks: list[dict[str, Any]], today: dt.date, limit: int = 3
) -> list[dict[str, Any]]:
    """Rank open tasks: priority, then overdue first, then due date, then backlog order."""
    ranked = []
    for order, task in enumerate(tasks):
        if str(task.get("status", "TODO")).upper() in ("DONE", "BLOCKED"):
            continue
        priority = str(task.get("priority", "P3")).upper()
        if priority not in _PRIORITY:
            raise InputError(f"task {task.get('id', order)!r}: priority must be P0..P3")
        due = _day(task["due"], "task due date") if task.get("due") else None
        overdue = due is not None and due < today
        key = (_PRIORITY[priority], not overdue, due or dt.date.max, order)
        ranked.append((key, task, priority, due, overdue))
    ranked.sort(key=lambda r: r[0])
    out = []
    for rank, (_, task, priority, due, overdue) in enumerate(ranked[:limit], start=1):
        out.append(
            {
                "rank": rank,
                "id": task.get("id"),
                "title": str(task.get("title", "")),
                "priority": priority,
                "due": due.isoformat() if due else None,
                "overdue": overdue,
            }
        )
    return out


def log_line(today: dt.date, summary: dict[str, Any], priorities: list[dict[str, Any]]) -> str:
    """One line for the daily log."""
    titles = ", ".join(p["title"] for p in priorities) or "none"
    return (
        f"{today.isoformat()}: yesterday {summary.get('done', 0)}/{summary.get('entries', 0)} "
        f"done, {summary.get('open', 0)} open; today: {titles}"
    )


def archive_entries(
    entries: list[dict[str, Any]], today: dt.date
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split entries into (kept, archived): done entries dated before today are archived."""
    kept: list[dict[str, Any]] = []
    archived: list[dict[str, Any]] = []
    for entry in entries:
        old = _day(entry.get("date"), "entry date") < today
        (archived if old and entry.get("done") is True else kept).append(entry)
    return kept, archived


def _today(state: dict[str, Any], env: StepEnv) -> dt.date:
    value = state.get("today", env.metadata.get("today"))
    if value is None:
        raise InputError("the daily loop needs 'today' (YYYY-MM-DD) in its state or metadata")
    return _day(value, "today")


def _daily(state: dict[str, Any]) -> dict[str, Any]:
    daily = state.setdefault("daily", {})
    if not isinstance(daily, dict):
        raise InputError("state key 'daily' is not an object", ReasonCode.STATE_TYPE_INVALID)
    return daily


def timeline_entries(store: Store, day: dt.date) -> list[dict[str, Any]]:
    """Yesterday's activity as entries: one per timeline event on ``day`` (UTC)."""
    start = f"{day.isoformat()}T00:00:00"
    end = f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00"
    entries = []
    for event in store.list_events(since=start, until=end):
        kind = event["event_type"]
        if kind == "daily.summary":
            continue
        body = event["event"]
        status = body.get("status")
        what = " ".join(str(body[k]) for k in ("kind", "name") if body.get(k))
        text = f"{kind}: {what} {status}".strip() if status else f"{kind}: {what}".strip()
        entries.append(
            {
                "date": event["created_at"][:10],
                "done": status in (None, "completed", "landed"),
                "tags": [kind],
                "text": text,
            }
        )
    return entries


def backlog_tasks(path: Path) -> list[dict[str, Any]]:
    """The tasks in a backlog file: a YAML list, or a mapping with ``tasks``."""
    from lifeos.yamlio import load_yaml_file

    data = load_yaml_file(path).data
    if isinstance(data, dict):
        data = data.get("tasks")
    if data is None:
        return []
    return _items(data, f"backlog {path}")


class SummariseEntries(Operation):
    """Writes ``daily.summary`` from yesterday's ``entries`` (or the store's timeline)."""

    name = "summarise_entries"

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        today = _today(state, env)
        store = env.services.store
        if "entries" not in state and store is not None:
            yesterday = today - dt.timedelta(days=1)
            state["entries"], _ = env.once(lambda: timeline_entries(store, yesterday))
        entries = _items(state.get("entries"), "entries")
        _daily(state)["summary"] = summarise_entries(entries, today)
        return None


class RankPriorities(Operation):
    """Writes ``daily.priorities``: the top ``limit`` open ``tasks``."""

    name = "rank_priorities"
    fields = frozenset({"limit"})

    def validate(self, step: StepSpec) -> None:
        super().validate(step)
        limit = step.payload.get("limit", 3)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InputError(f"Step '{step.id}': 'limit' must be a positive integer")

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        today = _today(state, env)
        path = env.services.backlog_path
        if "tasks" not in state and path is not None:
            if not path.is_file():
                raise InputError(f"no backlog file at {path}", ReasonCode.TASK_NOT_FOUND)
            state["tasks"], _ = env.once(lambda: backlog_tasks(path))
        tasks = _items(state.get("tasks"), "tasks")
        limit = step.payload.get("limit", 3)
        _daily(state)["priorities"] = rank_priorities(tasks, today, limit)
        return None


class LogSummary(Operation):
    """Appends the day's line to ``daily.log``."""

    name = "log_summary"

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        today = _today(state, env)
        daily = _daily(state)
        log = daily.setdefault("log", [])
        if not isinstance(log, list):
            raise InputError("state key 'daily.log' is not a list", ReasonCode.STATE_TYPE_INVALID)
        line = log_line(today, daily.get("summary", {}), daily.get("priorities", []))
        log.append(line)
        store = env.services.store
        if store is not None:
            run_id = env.run_id

            def keep() -> dict[str, Any]:
                body = {
                    "line": line,
                    "priorities": daily.get("priorities", []),
                    "summary": daily.get("summary", {}),
                    "today": today.isoformat(),
                }
                with store.transaction():
                    event = store.add_event(run_id, None, "daily.summary", body)
                    artifact = store.put_artifact(
                        run_id,
                        f"daily/{today.isoformat()}.md",
                        f"# Daily summary {today.isoformat()}\n\n{line}\n".encode(),
                        kind="daily_summary",
                        mime_type="text/markdown",
                    )
                return {"artifact_id": artifact["artifact_id"], "event_id": event["event_id"]}

            daily["logged"], _ = env.once(keep)
        return None


class ArchiveEntries(Operation):
    """Moves done entries dated before today from ``entries`` to ``archive``."""

    name = "archive_entries"

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        today = _today(state, env)
        kept, archived = archive_entries(_items(state.get("entries"), "entries"), today)
        state["entries"] = kept
        archive = state.setdefault("archive", [])
        if not isinstance(archive, list):
            raise InputError("state key 'archive' is not a list", ReasonCode.STATE_TYPE_INVALID)
        archive.extend(archived)
        return None


DAILY_OPERATIONS: tuple[Operation, ...] = (
    SummariseEntries(),
    RankPriorities(),
    LogSummary(),
    ArchiveEntries(),
)


class DailyLoopMission(BaseMission):
    """Runs the whole daily loop over its inputs (``today``, ``entries``, ``tasks``)."""

    @property
    def mission_type(self) -> MissionType:
        """``daily_loop``."""
        return MissionType.DAILY_LOOP

    def validate_inputs(self, inputs: dict[str, Any]) -> None:
        """Require ``today``; check ``entries`` and ``tasks`` are lists of objects."""
        try:
            _day(inputs.get("today"), "today")
            _items(inputs.get("entries"), "entries")
            _items(inputs.get("tasks"), "tasks")
        except InputError as exc:
            raise MissionValidationError(exc.message) from None

    def run(self, context: MissionContext, inputs: dict[str, Any]) -> MissionResult:
        """Summarise, rank, and produce the log line."""
        today = _day(inputs["today"], "today")
        entries = _items(inputs.get("entries"), "entries")
        summary = summarise_entries(entries, today)
        priorities = rank_priorities(_items(inputs.get("tasks"), "tasks"), today)
        return self._make_result(
            True,
            outputs={
                "log_line": log_line(today, summary, priorities),
                "priorities": priorities,
                "summary": summary,
            },
            executed_steps=["summarise", "prioritise", "log"],
        )
