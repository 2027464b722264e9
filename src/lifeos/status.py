"""The runtime status report: what the store, the ledger and the backlog say, and where
they disagree (``lifeos status --write``).

:func:`compute_status` gathers the facts — the ledger's size, head and verdict, the
latest signed checkpoint, spine runs by state, paused runs and their age, backlog counts
by status, today's agent spend — and the contradictions, each with a stable code:

==========================  ==========================================================
``LEDGER_INVALID``          the ledger does not verify (``lifeos ledger verify``)
``EVIDENCE_MISSING``        a spine run's evidence folder is gone, or a LANDED run
                            names none
``EVIDENCE_INVALID``        a spine run's evidence does not verify
``DONE_WITHOUT_EVIDENCE``   a DONE task has no LANDED run whose evidence verifies
``LANDED_NOT_DONE``         a LANDED run's task is not DONE in the backlog
``WIP_EXCEEDED``            more IN_PROGRESS tasks than ``backlog.max_wip``
``PAUSED_TOO_LONG``         a spine run has been PAUSED longer than
                            ``spine.max_paused_hours``
==========================  ==========================================================

The status is ``fail`` when the ledger or any evidence fails (:data:`FAIL_CODES`),
``warn`` for any other contradiction, ``ok`` otherwise. Without a backlog the backlog
facts are absent (``facts.backlog.present`` is false) and the backlog contradictions
(``DONE_WITHOUT_EVIDENCE``, ``LANDED_NOT_DONE``, ``WIP_EXCEEDED``) are not checked;
evidence still is.

The computation reads the time once, from the injected clock, and writes nothing: the
same store, backlog, settings and clock give byte-identical JSON (:meth:`StatusReport.
to_json`). :func:`write_status` writes the report, atomically, to both of the seeds'
paths (LifeOS-owned, so the clean-tree check ignores them).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from lifeos.backlog import SPINE_STATUSES, Backlog, Contradiction, EvidenceCheck, EvidenceFailure

if TYPE_CHECKING:
    from lifeos.clock import Clock
    from lifeos.ledger.note import Verifier
    from lifeos.store.base import RunRecord, SignedCheckpoint, Store

__all__ = [
    "BACKLOG_CODES",
    "CONTRADICTION_CODES",
    "DEFAULT_MAX_PAUSED_HOURS",
    "DEFAULT_MAX_WIP",
    "FAIL_CODES",
    "REPORT_DIR",
    "STATUS_FILE",
    "Status",
    "StatusReport",
    "compute_status",
    "max_paused_hours_setting",
    "status_paths",
    "write_status",
]

STATUS_FILE: Final = Path("artifacts/status/runtime_status.json")
"""The current report, relative to the main repository root."""
REPORT_DIR: Final = Path("artifacts/packets/status")
"""Where the dated reports go: ``checkpoint_report_<YYYYMMDD>.json`` (UTC day)."""
DEFAULT_MAX_WIP: Final = 2
"""``backlog.max_wip`` when it is not configured (the seeds' WIP limit)."""
DEFAULT_MAX_PAUSED_HOURS: Final = 72.0
"""``spine.max_paused_hours`` when it is not configured."""

CONTRADICTION_CODES: Final = (
    "LEDGER_INVALID",
    "EVIDENCE_MISSING",
    "EVIDENCE_INVALID",
    "LANDED_NOT_DONE",
    "DONE_WITHOUT_EVIDENCE",
    "WIP_EXCEEDED",
    "PAUSED_TOO_LONG",
)
"""Every code a report's contradictions start with (stable strings, not reason codes)."""
FAIL_CODES: Final = frozenset({"LEDGER_INVALID", "EVIDENCE_MISSING", "EVIDENCE_INVALID"})
"""Contradictions that make the status ``fail``; any other makes it ``warn``."""
BACKLOG_CODES: Final = frozenset({"DONE_WITHOUT_EVIDENCE", "LANDED_NOT_DONE", "WIP_EXCEEDED"})
"""Contradictions that need a backlog; without one they are not checked."""

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The report, in the seeds' runtime-status shape."""

    generated_at_utc: str
    """When it was computed: ISO-8601 UTC from the injected clock."""
    repo_root: str
    facts: dict[str, Any]
    contradictions: tuple[Contradiction, ...]
    """In a stable order: ledger, then per spine run (by task id, run id), then the
    backlog's tasks, the WIP limit, and paused runs (oldest first)."""
    status: Status

    @property
    def day(self) -> str:
        """The UTC day it was generated, ``YYYYMMDD`` (the dated report's suffix)."""
        return self.generated_at_utc[:10].replace("-", "")

    @property
    def exit_code(self) -> int:
        """3 when the status is ``fail``, else 0 (a warning is not an error)."""
        return 3 if self.status == "fail" else 0

    def to_dict(self) -> dict[str, Any]:
        """The seeds' schema: contradictions as ``"CODE: message"`` strings."""
        return {
            "contradictions": [f"{c.code}: {c.message}" for c in self.contradictions],
            "facts": self.facts,
            "generated_at_utc": self.generated_at_utc,
            "repo_root": self.repo_root,
            "status": self.status,
        }

    def to_json(self) -> str:
        """Indented JSON with sorted keys and a final newline (what the files hold)."""
        from lifeos.canonical import pretty_json

        return pretty_json(self.to_dict()) + "\n"


def max_paused_hours_setting(settings: Mapping[str, Any]) -> float:
    """``spine.max_paused_hours`` from the effective settings (default 72).

    Raises:
        ConfigError: not a finite number >= 0 (``CONFIG_INVALID``, exit 2).
    """
    from lifeos.errors import ConfigError

    spine = settings.get("spine") or {}
    value = spine.get("max_paused_hours", DEFAULT_MAX_PAUSED_HOURS)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(
            f"key 'spine.max_paused_hours': should be a number of hours >= 0, not {value!r}"
        )
    return float(value)


def status_paths(root: Path, day: str) -> tuple[Path, Path]:
    """The current report and the dated one (``day`` is ``YYYYMMDD``) under ``root``."""
    return root / STATUS_FILE, root / REPORT_DIR / f"checkpoint_report_{day}.json"


def write_status(report: StatusReport, root: Path) -> tuple[Path, Path]:
    """Write ``report`` to both files under ``root``, each atomically; return their paths.

    The dated report of the same UTC day is replaced.
    """
    from lifeos.fsutil import atomic_write

    data = report.to_json().encode("utf-8")
    paths = status_paths(root, report.day)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    return paths


def _all_runs(store: Store) -> list[RunRecord]:
    """Every run in the store (``list_runs`` takes a limit; raise it until all fit)."""
    limit = 1000
    while True:
        records = store.list_runs(limit)
        if len(records) < limit:
            return records
        limit *= 4


def _parse_ts(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _ledger_facts(
    store: Store, verifier: Verifier | None, signed: list[SignedCheckpoint]
) -> tuple[dict[str, Any], Contradiction | None]:
    from lifeos.ledger.chain import verify_store

    report = verify_store(store, verifier)
    size = store.ledger_size()
    head = None
    if size:
        last = list(store.ledger_rows(size - 1, size))
        if last:
            head = f"ledger:{last[-1]['seq']}:{last[-1]['leaf_hash']}"
    facts = {
        "head": head,
        "message": report.message,
        "reason_code": report.reason_code,
        "root": report.root or None,
        "signed_checkpoints": len(signed),
        "size": size,
        "verified": report.ok,
    }
    problem = None
    if not report.ok:
        problem = Contradiction(
            "LEDGER_INVALID",
            f"the ledger does not verify at seq {report.first_bad_seq}: {report.message} "
            f"[{report.reason_code}]",
        )
    return facts, problem


def _latest_checkpoint(signed: list[SignedCheckpoint]) -> dict[str, Any] | None:
    if not signed:
        return None
    latest = signed[-1]
    return {
        "created_at": latest["created_at"],
        "root_hash": latest["root_hash"],
        "tree_size": latest["tree_size"],
    }


def _budget_today(store: Store, now: dt.datetime, caps: Mapping[str, Any] | None) -> dict[str, Any]:
    from lifeos.policy.budget import AGENT_USAGE, daily_spend, utc_day

    day = utc_day(now)
    spend = daily_spend(
        (json.loads(r["entry"]) for r in store.ledger_rows() if r["type"] == AGENT_USAGE), day
    )
    caps = caps or {}
    return {
        "calls": spend.calls,
        "caps": {key: caps.get(key) for key in ("daily_cost_usd", "daily_tokens")},
        "cost_usd": spend.cost_usd,
        "day": day,
        "tokens": spend.tokens,
    }


def _runs_facts(runs: list[RunRecord]) -> dict[str, Any]:
    by_state = dict.fromkeys(SPINE_STATUSES, 0)
    other: dict[str, dict[str, int]] = {}
    spine = 0
    for run in runs:
        if run["kind"] == "spine":
            spine += 1
            state = str(run["status"]).upper()
            by_state[state] = by_state.get(state, 0) + 1
        else:
            counts = other.setdefault(str(run["kind"]), {})
            counts[str(run["status"])] = counts.get(str(run["status"]), 0) + 1
    return {
        "other": other,
        "spine": {"by_state": by_state, "total": spine},
        "total": len(runs),
    }


def _paused(
    runs: list[RunRecord], now: dt.datetime, limit_hours: float
) -> tuple[list[dict[str, Any]], list[Contradiction]]:
    rows: list[tuple[str, str, dict[str, Any], float | None]] = []
    for run in runs:
        if run["kind"] != "spine" or str(run["status"]).upper() != "PAUSED":
            continue
        since = str(run["updated_at"])
        moment = _parse_ts(since)
        hours = None if moment is None else (now - moment).total_seconds() / 3600
        config = run["config"] if isinstance(run["config"], Mapping) else {}
        waiting = config.get("waiting_for")
        row: dict[str, Any] = {
            "age_hours": None if hours is None else round(hours, 2),
            "paused_since": since,
            "run_id": run["run_id"],
            "task_id": run["name"],
            "waiting_for": waiting if isinstance(waiting, str) else None,
        }
        rows.append((since, run["run_id"], row, hours))
    rows.sort(key=lambda r: (r[0], r[1]))
    problems = []
    for _, run_id, row, hours in rows:
        if hours is not None and hours > limit_hours:
            point = f", waiting for {row['waiting_for']}" if row["waiting_for"] else ""
            problems.append(
                Contradiction(
                    "PAUSED_TOO_LONG",
                    f"spine run {run_id} for task {row['task_id']!r} has been PAUSED since "
                    f"{row['paused_since']} ({hours:.1f} h{point}), longer than "
                    f"spine.max_paused_hours={limit_hours:g}",
                    row["task_id"],
                    run_id,
                )
            )
    return [r[2] for r in rows], problems


def compute_status(
    store: Store,
    clock: Clock,
    *,
    repo_root: str,
    backlog: Backlog | None,
    check_evidence: EvidenceCheck,
    verifier: Verifier | None,
    backlog_path: str = "config/backlog.yaml",
    max_wip: int = DEFAULT_MAX_WIP,
    max_paused_hours: float = DEFAULT_MAX_PAUSED_HOURS,
    daily_caps: Mapping[str, Any] | None = None,
) -> StatusReport:
    """The runtime status of the repository whose store is ``store``.

    Args:
        store: the repository's store (read only).
        clock: read once: ``generated_at_utc``, the age of paused runs, "today".
        repo_root: the main repository root, as the report names it.
        backlog: the loaded backlog, or None when there is no backlog file.
        check_evidence: checks a spine run's evidence folder, as
            :func:`lifeos.backlog.find_contradictions` takes it.
        verifier: the trusted key for the ledger's signed checkpoints (None: no key, so
            any signed checkpoint fails, as ``lifeos ledger verify`` has it).
        backlog_path: the backlog file as configured, for the facts.
        max_wip: ``backlog.max_wip``.
        max_paused_hours: ``spine.max_paused_hours``.
        daily_caps: lifeos.yaml's ``budget`` section (its ``daily_*`` caps are reported).
    """
    from lifeos.backlog import find_contradictions
    from lifeos.clock import iso

    now = clock.now()
    if now.tzinfo is None:
        raise ValueError("the clock must tell timezone-aware UTC time")
    now = now.astimezone(dt.UTC)
    signed = store.list_signed_checkpoints()
    ledger, ledger_problem = _ledger_facts(store, verifier, signed)
    runs = _all_runs(store)
    spine = [r for r in runs if r["kind"] == "spine"]

    checked: list[tuple[str, bool]] = []

    def counting(run_id: str, path: str) -> EvidenceFailure | None:
        failure = check_evidence(run_id, path)
        checked.append((run_id, failure is None))
        return failure

    found = find_contradictions(
        backlog if backlog is not None else Backlog((), backlog_path),
        spine,
        counting,
        max_wip=max_wip,
    )
    if backlog is None:
        found = [c for c in found if c.code not in BACKLOG_CODES]
    paused, paused_problems = _paused(runs, now, max_paused_hours)
    contradictions = ([ledger_problem] if ledger_problem else []) + found + paused_problems

    backlog_facts: dict[str, Any] = {"path": backlog_path, "present": backlog is not None}
    if backlog is None:
        backlog_facts["note"] = (
            "no backlog file: backlog counts and backlog contradictions (DONE_WITHOUT_EVIDENCE, "
            "LANDED_NOT_DONE, WIP_EXCEEDED) are not checked"
        )
    else:
        backlog_facts.update(
            {"by_status": backlog.by_status(), "max_wip": max_wip, "tasks": len(backlog)}
        )
    facts = {
        "backlog": backlog_facts,
        "budget_today": _budget_today(store, now, daily_caps),
        "evidence": {
            "checked": len(checked),
            "failed": sum(1 for _, ok in checked if not ok),
        },
        "latest_checkpoint": _latest_checkpoint(signed),
        "ledger": ledger,
        "max_paused_hours": max_paused_hours,
        "paused_runs": paused,
        "runs": _runs_facts(runs),
    }
    status: Status = "ok"
    if any(c.code in FAIL_CODES for c in contradictions):
        status = "fail"
    elif contradictions:
        status = "warn"
    return StatusReport(
        generated_at_utc=iso(now),
        repo_root=repo_root,
        facts=facts,
        contradictions=tuple(contradictions),
        status=status,
    )
