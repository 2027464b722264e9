"""lifeos.status: the runtime status report computed from a store, a backlog and a clock."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifeos.backlog import Backlog, EvidenceFailure, Task
from lifeos.clock import FixedClock
from lifeos.errors import ConfigError, ReasonCode
from lifeos.ledger.chain import sign_checkpoint
from lifeos.ledger.note import Signer
from lifeos.policy.budget import AGENT_USAGE
from lifeos.status import (
    CONTRADICTION_CODES,
    FAIL_CODES,
    REPORT_DIR,
    STATUS_FILE,
    StatusReport,
    compute_status,
    max_paused_hours_setting,
    status_paths,
    write_status,
)
from lifeos.store.sqlite import SQLiteStore

START = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
"""When the stores record things."""
SIGNER = Signer.generate("lifeos/status-test")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db", FixedClock(START))
    yield s
    s.close()


class Checker:
    """Evidence verdicts by run id; records every call."""

    def __init__(self, **verdicts: str) -> None:
        self.verdicts = verdicts
        self.calls: list[tuple[str, str]] = []

    def __call__(self, run_id: str, evidence: str) -> EvidenceFailure | None:
        self.calls.append((run_id, evidence))
        code = self.verdicts.get(run_id.replace("-", "_"))
        if code is None:
            return None
        return EvidenceFailure(code, f"{code.lower()} detail")  # type: ignore[arg-type]


def spine(
    store: SQLiteStore,
    run_id: str,
    task: str,
    status: str,
    *,
    evidence: bool = True,
    **config: Any,
) -> None:
    if evidence:
        config["evidence"] = f".lifeos/evidence/{run_id}"
    store.create_run(run_id, "spine", task, config=config)
    if status != "RUNNING":
        store.update_run(run_id, status=status)


def report(
    store: SQLiteStore,
    *,
    at: dt.datetime = START,
    backlog: Backlog | None = None,
    checker: Checker | None = None,
    **kwargs: Any,
) -> StatusReport:
    return compute_status(
        store,
        FixedClock(at),
        repo_root="/repo",
        backlog=backlog,
        check_evidence=checker or Checker(),
        verifier=kwargs.pop("verifier", SIGNER.verifier()),
        **kwargs,
    )


def codes(rep: StatusReport) -> list[tuple[str, str | None, str | None]]:
    return [(c.code, c.task_id, c.run_id) for c in rep.contradictions]


BACKLOG = Backlog(
    (
        Task("T-1", "one", status="DONE"),
        Task("T-2", "two", status="IN_PROGRESS"),
        Task("T-3", "three"),
    ),
    "config/backlog.yaml",
)


# -- shape ------------------------------------------------------------------------------


def test_empty_store_without_backlog_is_ok_in_the_seeds_shape(store: SQLiteStore) -> None:
    rep = report(store)
    data = rep.to_dict()
    assert sorted(data) == ["contradictions", "facts", "generated_at_utc", "repo_root", "status"]
    assert data["generated_at_utc"] == "2026-03-10T12:00:00.000000Z"
    assert data["repo_root"] == "/repo"
    assert data["status"] == "ok" and data["contradictions"] == []
    assert rep.exit_code == 0 and rep.day == "20260310"
    facts = data["facts"]
    assert sorted(facts) == [
        "backlog",
        "budget_today",
        "evidence",
        "latest_checkpoint",
        "ledger",
        "max_paused_hours",
        "paused_runs",
        "runs",
    ]
    assert facts["backlog"]["present"] is False
    assert facts["backlog"]["path"] == "config/backlog.yaml"
    assert "not checked" in facts["backlog"]["note"]
    assert "by_status" not in facts["backlog"]
    assert facts["ledger"]["size"] == 0 and facts["ledger"]["head"] is None
    assert facts["ledger"]["verified"] is True
    assert facts["latest_checkpoint"] is None
    assert facts["paused_runs"] == []
    assert facts["max_paused_hours"] == 72.0
    assert facts["runs"] == {
        "other": {},
        "spine": {
            "by_state": {
                "BLOCKED": 0,
                "BUDGET_EXCEEDED": 0,
                "ESCALATED": 0,
                "FAILED": 0,
                "LANDED": 0,
                "PAUSED": 0,
                "RUNNING": 0,
            },
            "total": 0,
        },
        "total": 0,
    }
    assert facts["evidence"] == {"checked": 0, "failed": 0}


def test_to_json_is_sorted_indented_json_with_a_final_newline(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-1", "LANDED")
    text = report(store, backlog=BACKLOG).to_json()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert all(isinstance(c, str) for c in data["contradictions"])
    assert all(c.split(":", 1)[0] in CONTRADICTION_CODES for c in data["contradictions"])


def build(path: Path) -> SQLiteStore:
    s = SQLiteStore(path, FixedClock(START))
    s.append_ledger("spine.started", "r-1", {"task": "T-1"})
    s.append_ledger(AGENT_USAGE, "r-1", {"tokens": 100, "cost_usd": 0.25, "calls": 1})
    sign_checkpoint(s, SIGNER)
    spine(s, "r-1", "T-1", "LANDED")
    spine(s, "r-2", "T-2", "PAUSED", evidence=False, waiting_for="before_build")
    spine(s, "r-3", "T-3", "FAILED")
    s.create_run("m-1", "mission", "echo")
    s.update_run("m-1", status="completed")
    return s


def test_same_store_backlog_and_clock_give_byte_identical_json(tmp_path: Path) -> None:
    later = START + dt.timedelta(days=5)
    one, two = build(tmp_path / "one.db"), build(tmp_path / "two.db")
    try:
        size = one.ledger_size()
        first = report(one, at=later, backlog=BACKLOG, checker=Checker(r_3="EVIDENCE_INVALID"))
        again = report(one, at=later, backlog=BACKLOG, checker=Checker(r_3="EVIDENCE_INVALID"))
        other = report(two, at=later, backlog=BACKLOG, checker=Checker(r_3="EVIDENCE_INVALID"))
        assert first.to_json() == again.to_json() == other.to_json()
        assert first.status == "fail"  # a full report, not a trivial one
        assert one.ledger_size() == size  # computing writes nothing
        assert len(one.list_runs()) == 4
    finally:
        one.close()
        two.close()


def test_the_clock_is_read_once(store: SQLiteStore) -> None:
    class Counting(FixedClock):
        reads = 0

        def now(self) -> dt.datetime:
            Counting.reads += 1
            return super().now()

    rep = compute_status(
        store,
        Counting(START),
        repo_root="/repo",
        backlog=None,
        check_evidence=Checker(),
        verifier=None,
    )
    assert Counting.reads == 1
    assert rep.generated_at_utc == "2026-03-10T12:00:00.000000Z"


def test_a_naive_clock_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        report(store, at=dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_a_non_utc_clock_is_reported_in_utc(store: SQLiteStore) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    rep = report(store, at=dt.datetime(2026, 3, 11, 1, 0, tzinfo=plus_two))
    assert rep.generated_at_utc == "2026-03-10T23:00:00.000000Z"
    assert rep.day == "20260310"
    assert rep.facts["budget_today"]["day"] == "2026-03-10"


# -- ledger -----------------------------------------------------------------------------


def test_ledger_size_head_and_latest_checkpoint(store: SQLiteStore) -> None:
    for i in range(3):
        store.append_ledger("test.entry", None, {"i": i})
    sign_checkpoint(store, SIGNER)
    _, last = store.append_ledger("test.entry", None, {"i": 3})
    rep = report(store)
    ledger = rep.facts["ledger"]
    assert ledger["size"] == 4
    assert ledger["head"] == f"ledger:3:{last['leaf_hash']}"
    assert ledger["verified"] is True and ledger["reason_code"] is None
    assert ledger["signed_checkpoints"] == 1
    assert len(ledger["root"]) == 64
    latest = rep.facts["latest_checkpoint"]
    assert latest["tree_size"] == 3 and len(latest["root_hash"]) == 64
    assert latest["created_at"].startswith("2026-03-10T12:")
    assert rep.status == "ok"


def test_a_tampered_ledger_fails_first(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    s = SQLiteStore(path, FixedClock(START))
    for i in range(3):
        s.append_ledger("test.entry", None, {"i": i})
    s.close()
    with sqlite3.connect(path) as db:
        (entry,) = db.execute("SELECT entry FROM ledger WHERE seq = 1").fetchone()
        db.execute(
            "UPDATE ledger SET entry = ? WHERE seq = 1", (entry.replace(b'"i":1', b'"i":7'),)
        )
    db.close()
    s = SQLiteStore(path, FixedClock(START))
    try:
        spine(s, "r-1", "T-2", "LANDED")  # a warning too: the ledger still comes first
        rep = report(s)
    finally:
        s.close()
    assert rep.status == "fail" and rep.exit_code == 3
    assert codes(rep)[0] == ("LEDGER_INVALID", None, None)
    assert ReasonCode.LEDGER_TAMPERED.value in rep.contradictions[0].message
    assert "seq 1" in rep.contradictions[0].message
    assert rep.facts["ledger"]["verified"] is False
    assert rep.facts["ledger"]["reason_code"] == ReasonCode.LEDGER_TAMPERED.value
    assert rep.facts["ledger"]["size"] == 3 and rep.facts["ledger"]["root"] is None


def test_signed_checkpoints_need_the_trusted_key(store: SQLiteStore) -> None:
    store.append_ledger("test.entry", None, {})
    sign_checkpoint(store, SIGNER)
    for verifier in (None, Signer.generate("lifeos/other").verifier()):
        rep = report(store, verifier=verifier)
        assert codes(rep) == [("LEDGER_INVALID", None, None)]
        assert ReasonCode.SIGNATURE_INVALID.value in rep.contradictions[0].message
        assert rep.status == "fail"


# -- runs and evidence -----------------------------------------------------------------


def test_runs_by_state_and_other_kinds(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-1", "LANDED")
    spine(store, "r-2", "T-3", "BLOCKED", evidence=False)
    spine(store, "r-3", "T-3", "RUNNING", evidence=False)
    store.create_run("m-1", "mission", "echo")
    store.update_run("m-1", status="completed")
    store.create_run("m-2", "mission", "echo")
    store.create_run("w-1", "workflow", "wf")
    runs = report(store, backlog=BACKLOG).facts["runs"]
    assert runs["total"] == 6
    assert runs["spine"]["total"] == 3
    assert {k: v for k, v in runs["spine"]["by_state"].items() if v} == {
        "BLOCKED": 1,
        "LANDED": 1,
        "RUNNING": 1,
    }
    assert runs["other"] == {
        "mission": {"completed": 1, "running": 1},
        "workflow": {"running": 1},
    }


def test_consistent_backlog_and_runs_are_ok(store: SQLiteStore) -> None:
    spine(store, "r-0", "T-1", "FAILED")
    spine(store, "r-1", "T-1", "LANDED")
    spine(store, "r-2", "T-2", "RUNNING", evidence=False)
    checker = Checker()
    rep = report(store, backlog=BACKLOG, checker=checker)
    assert rep.status == "ok" and rep.contradictions == ()
    assert sorted(checker.calls) == [
        ("r-0", ".lifeos/evidence/r-0"),
        ("r-1", ".lifeos/evidence/r-1"),
    ]
    assert rep.facts["evidence"] == {"checked": 2, "failed": 0}
    assert rep.facts["backlog"] == {
        "by_status": {"BLOCKED": 0, "DONE": 1, "IN_PROGRESS": 1, "TODO": 1},
        "max_wip": 2,
        "path": "config/backlog.yaml",
        "present": True,
        "tasks": 3,
    }


def test_backlog_contradictions_warn(store: SQLiteStore) -> None:
    wip = Backlog((*BACKLOG.tasks, Task("T-4", "four", status="IN_PROGRESS")))
    spine(store, "r-2", "T-2", "LANDED")  # landed, but T-2 is IN_PROGRESS
    rep = report(store, backlog=wip, max_wip=1)
    assert codes(rep) == [
        ("LANDED_NOT_DONE", "T-2", "r-2"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
        ("WIP_EXCEEDED", None, None),
    ]
    assert rep.status == "warn" and rep.exit_code == 0
    assert not {c.code for c in rep.contradictions} & FAIL_CODES
    assert "backlog.max_wip=1" in rep.contradictions[2].message
    assert rep.facts["backlog"]["max_wip"] == 1


@pytest.mark.parametrize("code", ["EVIDENCE_MISSING", "EVIDENCE_INVALID"])
def test_evidence_that_is_missing_or_fails_is_fail(store: SQLiteStore, code: str) -> None:
    spine(store, "r-1", "T-1", "LANDED")
    spine(store, "r-2", "T-3", "BLOCKED")
    rep = report(store, backlog=BACKLOG, checker=Checker(r_2=code))
    assert codes(rep) == [(code, "T-3", "r-2")]
    assert rep.status == "fail" and rep.exit_code == 3
    assert rep.facts["evidence"] == {"checked": 2, "failed": 1}


def test_a_landed_run_naming_no_evidence_fails(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-1", "LANDED", evidence=False)
    rep = report(store, backlog=BACKLOG)
    assert codes(rep) == [
        ("EVIDENCE_MISSING", "T-1", "r-1"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
    ]
    assert rep.status == "fail"


def test_without_a_backlog_only_evidence_is_checked(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-9", "LANDED")  # not DONE anywhere: no backlog to say so
    assert report(store).contradictions == ()
    spine(store, "r-2", "T-9", "FAILED")
    rep = report(store, checker=Checker(r_2="EVIDENCE_INVALID"))
    assert codes(rep) == [("EVIDENCE_INVALID", "T-9", "r-2")]
    assert rep.status == "fail"
    assert rep.facts["backlog"]["present"] is False


# -- paused runs -----------------------------------------------------------------------


def test_paused_runs_and_their_age(store: SQLiteStore) -> None:
    spine(store, "r-b", "T-3", "PAUSED", evidence=False, waiting_for="before_steward")
    spine(store, "r-a", "T-2", "PAUSED", evidence=False, waiting_for="before_build")
    spine(store, "r-c", "T-1", "LANDED")
    paused_at = {r["run_id"]: r["updated_at"] for r in store.list_runs()}
    rep = report(store, at=START + dt.timedelta(hours=10), backlog=BACKLOG)
    rows = rep.facts["paused_runs"]
    assert [r["run_id"] for r in rows] == ["r-b", "r-a"]  # oldest first
    assert rows[0] == {
        "age_hours": rows[0]["age_hours"],
        "paused_since": paused_at["r-b"],
        "run_id": "r-b",
        "task_id": "T-3",
        "waiting_for": "before_steward",
    }
    assert 9.99 <= rows[1]["age_hours"] <= rows[0]["age_hours"] <= 10.0
    assert rep.status == "ok"


def test_a_run_paused_longer_than_the_limit_warns(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-2", "PAUSED", evidence=False, waiting_for="before_build")
    since = dt.datetime.fromisoformat(store.list_runs()[0]["updated_at"])
    exactly = report(store, at=since + dt.timedelta(hours=72))
    assert exactly.contradictions == () and exactly.status == "ok"
    later = report(store, at=since + dt.timedelta(hours=73))
    assert codes(later) == [("PAUSED_TOO_LONG", "T-2", "r-1")]
    assert later.status == "warn" and later.exit_code == 0
    message = later.contradictions[0].message
    assert "73.0 h, waiting for before_build" in message
    assert "spine.max_paused_hours=72" in message
    short = report(store, at=since + dt.timedelta(hours=2), max_paused_hours=1.5)
    assert codes(short) == [("PAUSED_TOO_LONG", "T-2", "r-1")]
    assert short.facts["max_paused_hours"] == 1.5


def test_paused_warnings_come_after_the_others(store: SQLiteStore) -> None:
    spine(store, "r-1", "T-2", "PAUSED", evidence=False)
    spine(store, "r-2", "T-3", "LANDED")
    rep = report(store, at=START + dt.timedelta(days=10), backlog=BACKLOG)
    assert [c[0] for c in codes(rep)] == [
        "LANDED_NOT_DONE",
        "DONE_WITHOUT_EVIDENCE",
        "PAUSED_TOO_LONG",
    ]
    assert rep.facts["paused_runs"][0]["waiting_for"] is None


# -- budget ----------------------------------------------------------------------------


def test_budget_used_today_from_the_ledger(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "b.db", FixedClock(START, dt.timedelta(0)))
    try:
        s.append_ledger(AGENT_USAGE, "r-1", {"tokens": 120, "cost_usd": 0.5, "calls": 1})
        s.append_ledger(AGENT_USAGE, "r-2", {"tokens": 30, "cost_usd": None, "calls": 1})
        s.append_ledger("spine.started", "r-1", {"tokens": 999})  # not usage
        caps = {"daily_cost_usd": 20.0, "cost_usd": 2.0}
        today = report(s, at=START + dt.timedelta(hours=11), daily_caps=caps)
        tomorrow = report(s, at=START + dt.timedelta(hours=12))
    finally:
        s.close()
    assert today.facts["budget_today"] == {
        "calls": 2,
        "caps": {"daily_cost_usd": 20.0, "daily_tokens": None},
        "cost_usd": 0.5,
        "day": "2026-03-10",
        "tokens": 150,
    }
    assert tomorrow.facts["budget_today"] == {
        "calls": 0,
        "caps": {"daily_cost_usd": None, "daily_tokens": None},
        "cost_usd": 0.0,
        "day": "2026-03-11",
        "tokens": 0,
    }


# -- settings and files ----------------------------------------------------------------


def test_max_paused_hours_setting() -> None:
    assert max_paused_hours_setting({}) == 72.0
    assert max_paused_hours_setting({"spine": None}) == 72.0
    assert max_paused_hours_setting({"spine": {"repairs": 1}}) == 72.0
    assert max_paused_hours_setting({"spine": {"max_paused_hours": 24}}) == 24.0
    assert max_paused_hours_setting({"spine": {"max_paused_hours": 0}}) == 0.0
    assert max_paused_hours_setting({"spine": {"max_paused_hours": 0.5}}) == 0.5


@pytest.mark.parametrize("value", [-1, True, "72", None, float("inf"), float("nan"), [1]])
def test_bad_max_paused_hours_is_config_invalid(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        max_paused_hours_setting({"spine": {"max_paused_hours": value}})
    assert info.value.reason is ReasonCode.CONFIG_INVALID
    assert info.value.exit_code == 2
    assert "spine.max_paused_hours" in str(info.value)


def test_write_status_writes_both_files_atomically(store: SQLiteStore, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    spine(store, "r-1", "T-2", "LANDED")
    rep = report(store, backlog=BACKLOG)
    current, dated = write_status(rep, root)
    assert (current, dated) == status_paths(root, "20260310")
    assert current == root / STATUS_FILE == root / "artifacts/status/runtime_status.json"
    assert dated == root / REPORT_DIR / "checkpoint_report_20260310.json"
    assert current.read_bytes() == dated.read_bytes() == rep.to_json().encode()
    # The same day again replaces both; another day adds a dated report.
    empty = report(store, at=START + dt.timedelta(hours=1))
    write_status(empty, root)
    assert json.loads(dated.read_text())["generated_at_utc"].startswith("2026-03-10T13:")
    write_status(report(store, at=START + dt.timedelta(days=1)), root)
    assert sorted(p.name for p in (root / REPORT_DIR).iterdir()) == [
        "checkpoint_report_20260310.json",
        "checkpoint_report_20260311.json",
    ]
    assert [p.name for p in current.parent.iterdir()] == ["runtime_status.json"]
