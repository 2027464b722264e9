"""Every OpenClaw bridge mapping round-trips; bad payloads are refused one field at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lifeos.bridge.openclaw import (
    STATE_FOR_STATUS,
    STATUS_FOR_STATE,
    JobPayload,
    JobResult,
    evidence_problems,
    job_from_invocation,
    ledger_ref,
    notify,
    parse_ledger_ref,
    read_job_record,
    result_payload,
    spine_invocation,
    write_evidence,
    write_job_record,
)
from lifeos.errors import InputError
from lifeos.spine.model import SpineState

FULL: dict[str, Any] = {
    "job_id": "oc-7",
    "task_id": "T-1",
    "requester": "openclaw:agent",
    "mission": "autonomous_build_cycle",
    "repository": "/tmp",
    "budget": {"cost_usd": 1.5, "tokens": 1000},
    "callback": "https://example.invalid/hook",
}
LEAF = "a" * 64


def run_record(state: str, **config: Any) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "status": state,
        "spent_cost_usd": 0.25,
        "config": {
            "branch": "lifeos/T-1-x",
            "reasons": [],
            "outputs": {"steward": {"commit": "c" * 40, "evidence": ".lifeos/evidence/run-1"}},
            **config,
        },
    }


def test_a_payload_round_trips() -> None:
    job = JobPayload.from_dict(FULL, Path("/tmp"))
    assert job.to_dict() == FULL
    assert JobPayload.from_dict(job.to_dict()) == job
    minimal = JobPayload.from_dict({"job_id": "a", "task_id": "T-1", "requester": "r"})
    assert minimal.mission == "autonomous_build_cycle" and minimal.budget == {}
    assert JobPayload.from_dict(minimal.to_dict()) == minimal


INLINE = {
    "id": "T-9",
    "title": "Add a changelog",
    "description": "Start CHANGELOG.md.",
    "acceptance": ["test"],
    "context": ["src/"],
}


def test_an_inline_task_round_trips_in_its_backlog_form() -> None:
    job = JobPayload.from_dict({"job_id": "oc-9", "requester": "r", "task": INLINE})
    assert job.task_id == "T-9"
    assert job.task == {
        **INLINE,
        "approvals": [],
        "priority": "P3",
        "status": "TODO",
    }
    assert JobPayload.from_dict(job.to_dict()) == job
    task = job.inline_task()
    assert task.id == "T-9" and task.acceptance == ("test",) and task.context == ("src/",)
    invocation = spine_invocation(job)
    assert invocation["inline"] == job.task and job_from_invocation(invocation) == job
    assert JobPayload.from_dict(FULL).inline_task() is None


def test_the_spine_invocation_round_trips() -> None:
    job = JobPayload.from_dict(FULL)
    invocation = spine_invocation(job)
    assert invocation["call"] == "start" and invocation["task_id"] == "T-1"
    assert invocation["budget"] == {"cost_usd": 1.5, "tokens": 1000}
    assert invocation["inline"] is None
    assert job_from_invocation(invocation) == job
    for change in ({"task_id": "T-2"}, {"budget": {}}, {"inline": INLINE}):
        with pytest.raises(InputError):
            job_from_invocation({**invocation, **change})


def test_every_spine_state_maps_to_a_status_and_back() -> None:
    assert set(STATUS_FOR_STATE) == {s.value for s in SpineState}
    for state, status in STATUS_FOR_STATE.items():
        assert STATE_FOR_STATUS[status] == state
        result = result_payload(JobPayload.from_dict(FULL), run_record(state))
        assert result.status == status
        assert JobResult.from_dict(result.to_dict()) == result
        assert json.loads(json.dumps(result.to_dict())) == result.to_dict()


def test_a_landed_run_is_done_only_with_sound_evidence() -> None:
    job = JobPayload.from_dict(FULL)
    done = result_payload(job, run_record("LANDED"), usage={"tokens": 3}, evidence="e")
    assert done.status == "done" and done.exit_code == 0
    assert done.commit == "c" * 40 and done.usage == {"tokens": 3}
    bad = result_payload(job, run_record("LANDED"), evidence="e", evidence_problem="gone")
    assert bad.status == "failed" and bad.reason_codes == ("EVIDENCE_INCOMPLETE",)
    assert bad.exit_code == 1


def test_a_paused_run_asks_for_approval() -> None:
    result = result_payload(
        JobPayload.from_dict(FULL), run_record("PAUSED", waiting_for="before_steward")
    )
    assert result.status == "paused" and result.exit_code == 4
    assert result.approval_needed is not None
    assert result.approval_needed["point"] == "before_steward"
    assert "lifeos spine approve run-1" in result.approval_needed["approve"]
    assert result_payload(JobPayload.from_dict(FULL), None).status == "running"


def test_ledger_refs_round_trip() -> None:
    assert parse_ledger_ref(ledger_ref(12, LEAF)) == (12, LEAF)
    for bad in ("ledger:x:" + LEAF, "packet:1:" + LEAF, "ledger:1:zz"):
        with pytest.raises(ValueError):
            parse_ledger_ref(bad)


def test_a_job_record_round_trips(tmp_path: Path) -> None:
    record = {"job": JobPayload.from_dict(FULL).to_dict(), "run_id": None}
    write_job_record(tmp_path, record)
    assert read_job_record(tmp_path, "oc-7") == record
    assert read_job_record(tmp_path, "oc-8") is None
    with pytest.raises(InputError):
        read_job_record(tmp_path, "../x")


BAD = [
    ({k: v for k, v in FULL.items() if k != "job_id"}, "'job_id'"),
    ({k: v for k, v in FULL.items() if k != "requester"}, "'requester'"),
    ({k: v for k, v in FULL.items() if k != "task_id"}, "'task_id'"),
    ({**FULL, "surprise": 1}, "'surprise'"),
    ({**FULL, "job_id": "../etc"}, "'job_id'"),
    ({**FULL, "job_id": 7}, "'job_id'"),
    ({**FULL, "task_id": ""}, "'task_id'"),
    ({**FULL, "task": {"id": "T-9"}}, "'task'"),  # no title
    ({**FULL, "task": {"id": "T-1", "title": "t", "status": "DONE"}}, "'task'"),
    ({**FULL, "task": {"id": "T-1", "title": "t", "context": ["../x"]}}, "'task'"),
    ({**FULL, "task": {"id": "T-2", "title": "t"}}, "'task_id'"),  # differs from task_id
    ({**FULL, "requester": "a\nb"}, "'requester'"),
    ({**FULL, "mission": "other"}, "'mission'"),
    ({**FULL, "repository": "/elsewhere"}, "'repository'"),
    ({**FULL, "budget": [1]}, "'budget'"),
    ({**FULL, "budget": {"dollars": 1}}, "'budget'"),
    ({**FULL, "budget": {"tokens": -1}}, "'budget'"),
    ({**FULL, "budget": {"calls": True}}, "'budget'"),
    ({**FULL, "budget": {"calls": 2.5}}, "'budget'"),
    ({**FULL, "budget": {"cost_usd": float("nan")}}, "'budget'"),
    ({**FULL, "budget": {"cost_usd": float("inf")}}, "'budget'"),
    ({**FULL, "callback": "ftp://x"}, "'callback'"),
]


@pytest.mark.parametrize("payload,field", BAD)
def test_bad_payloads_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        JobPayload.from_dict(payload, Path("/tmp"))
    line = err.value.one_line()
    assert field in line and line.endswith("[INVALID_INPUT]") and "\n" not in line


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InputError):
        JobPayload.from_dict([FULL])


def _evidence(tmp_path: Path) -> Path:
    (tmp_path / ".lifeos/evidence/run-1").mkdir(parents=True)
    job = JobPayload.from_dict(FULL)
    folder = tmp_path / "job"
    packets = [{"kind": "BUILD_PACKET"}, {"kind": "REVIEW_PACKET"}]
    result = result_payload(job, run_record("LANDED"), evidence="job")
    write_evidence(folder, job, result, packets, [ledger_ref(1, LEAF)])
    return folder


def test_sound_evidence_verifies(tmp_path: Path) -> None:
    folder = _evidence(tmp_path)
    assert (
        evidence_problems(folder, known_ledger_refs=[ledger_ref(1, LEAF)], repo_root=tmp_path) == []
    )
    assert json.loads((folder / "result.json").read_text())["status"] == "done"


@pytest.mark.parametrize("name", ["job.json", "refs.json", "result.json"])
def test_a_tampered_file_is_detected(tmp_path: Path, name: str) -> None:
    folder = _evidence(tmp_path)
    (folder / name).write_text("{}\n")
    assert any(name in p for p in evidence_problems(folder))


def test_missing_or_extra_files_and_unknown_ledger_refs_are_detected(tmp_path: Path) -> None:
    folder = _evidence(tmp_path)
    assert evidence_problems(folder, known_ledger_refs=[]) != []
    (folder / "extra.txt").write_text("x")
    assert any("unsealed" in p for p in evidence_problems(folder))
    (folder / "manifest.json").unlink()
    assert evidence_problems(folder) == ["manifest.json is missing or unreadable"]
    assert evidence_problems(tmp_path / "none") != []
    assert evidence_problems(_evidence(tmp_path / "b"), repo_root=tmp_path / "c") != []


def test_the_callback_is_told_once_per_stopped_state_until_it_answers() -> None:
    job = JobPayload.from_dict(FULL)
    record: dict[str, Any] = {"job": job.to_dict(), "run_id": "run-1"}
    answers = [OSError("connection refused"), 503, 200, 200]
    sent: list[tuple[str, dict[str, Any]]] = []

    def post(url: str, body: Any) -> int:
        sent.append((url, dict(body)))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    paused = result_payload(job, run_record("PAUSED", waiting_for="before_build"))
    running = result_payload(job, run_record("RUNNING"))
    assert not notify(record, running, "RUNNING", post) and sent == []  # not a stop
    assert notify(record, paused, "PAUSED", post)
    assert record["callback_error"] == "OSError: connection refused"
    assert notify(record, paused, "PAUSED", post) and record["callback_error"] == "HTTP 503"
    assert notify(record, paused, "PAUSED", post)
    assert record["notified_state"] == "PAUSED" and "callback_error" not in record
    assert not notify(record, paused, "PAUSED", post)  # told already
    done = result_payload(job, run_record("LANDED"))
    assert notify(record, done, "LANDED", post) and record["notified_state"] == "LANDED"
    assert [body["status"] for _, body in sent] == ["paused"] * 3 + ["done"]
    assert {url for url, _ in sent} == {FULL["callback"]}
    # a second pause of the run (another approval point) is another stop: told again
    answers.append(200)
    assert notify(record, paused, "PAUSED", post, stop="PAUSED@t2")
    assert [body["status"] for _, body in sent][-1] == "paused"
    assert not notify(record, paused, "PAUSED", post, stop="PAUSED@t2")
    no_callback = {"job": JobPayload.from_dict({**FULL, "callback": None}).to_dict()}
    assert not notify(no_callback, done, "LANDED", post)
