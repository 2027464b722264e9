"""lifeos.backlog: reading the backlog file, picking tasks, finding contradictions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from lifeos.backlog import (
    CONTRADICTION_CODES,
    Backlog,
    BacklogError,
    EvidenceFailure,
    Task,
    TaskNotFound,
    find_contradictions,
    load_backlog,
    task_from_dict,
)
from lifeos.errors import EXIT_BAD_INPUT, InputError, ReasonCode

FULL = """\
tasks:
  - id: T-1
    title: Add a CSV export
    description: |
      Export the report as CSV.
    priority: P1
    status: DONE
    acceptance: ["make test", "python -m pytest -q tests/test_export.py"]
    context: [src/export/, docs/export.md]
    approvals: [before_build, before_steward]
  - id: T-2
    title: Later
"""


def write(tmp_path: Path, text: str, name: str = "backlog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> BacklogError:
    path = write(tmp_path, text)
    with pytest.raises(BacklogError) as info:
        load_backlog(path)
    exc = info.value
    assert exc.reason is ReasonCode.INVALID_INPUT
    assert exc.exit_code == EXIT_BAD_INPUT
    assert "\n" not in exc.one_line()
    assert exc.message.startswith(str(path))
    return exc


# -- reading ---------------------------------------------------------------------------


def test_full_task_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    before = path.read_bytes()
    backlog = load_backlog(path)
    assert path.read_bytes() == before
    assert backlog.source == str(path)
    first, second = backlog.tasks
    assert first == Task(
        id="T-1",
        title="Add a CSV export",
        description="Export the report as CSV.\n",
        priority="P1",
        status="DONE",
        acceptance=("make test", "python -m pytest -q tests/test_export.py"),
        context=("src/export/", "docs/export.md"),
        approvals=("before_build", "before_steward"),
    )
    assert first.line == 2 and second.line == 11
    assert second == Task(id="T-2", title="Later")
    assert (second.description, second.priority, second.status) == ("", "P3", "TODO")
    assert second.acceptance == second.context == second.approvals == ()


def test_task_is_frozen(tmp_path: Path) -> None:
    task = load_backlog(write(tmp_path, FULL)).tasks[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.status = "TODO"  # type: ignore[misc]


def test_a_plain_list_reads_like_the_mapping(tmp_path: Path) -> None:
    as_list = "- {id: A, title: a, priority: P0}\n- {id: B, title: b, status: BLOCKED}\n"
    as_map = "tasks:\n" + "".join(f"  {line}\n" for line in as_list.splitlines())
    one = load_backlog(write(tmp_path, as_list, "one.yaml"))
    two = load_backlog(write(tmp_path, as_map, "two.yaml"))
    assert one.tasks == two.tasks
    assert [t.id for t in one] == ["A", "B"]
    assert len(one) == 2 and "A" in one and "C" not in one


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "tasks:\n", "tasks: []\n", "[]\n"])
def test_empty_backlogs(tmp_path: Path, text: str) -> None:
    backlog = load_backlog(write(tmp_path, text))
    assert backlog.tasks == ()
    assert backlog.next_task() is None
    assert backlog.by_status() == {"TODO": 0, "IN_PROGRESS": 0, "DONE": 0, "BLOCKED": 0}


def test_to_dict(tmp_path: Path) -> None:
    data = load_backlog(write(tmp_path, FULL)).to_dict()
    assert data["counts"] == {"BLOCKED": 0, "DONE": 1, "IN_PROGRESS": 0, "TODO": 1}
    assert data["tasks"][1] == {
        "acceptance": [],
        "approvals": [],
        "context": [],
        "description": "",
        "id": "T-2",
        "priority": "P3",
        "status": "TODO",
        "title": "Later",
    }


# -- picking ---------------------------------------------------------------------------


def test_get_and_task_not_found(tmp_path: Path) -> None:
    backlog = load_backlog(write(tmp_path, FULL))
    assert backlog.get("T-2").title == "Later"
    with pytest.raises(TaskNotFound) as info:
        backlog.get("T-9")
    exc = info.value
    assert isinstance(exc, InputError)
    assert exc.reason is ReasonCode.TASK_NOT_FOUND and exc.exit_code == 2
    assert "T-9" in exc.message and str(tmp_path) in exc.message


def test_next_task_is_highest_priority_todo_then_file_order() -> None:
    backlog = Backlog(
        (
            Task("a", "a", priority="P2"),
            Task("b", "b", priority="P0", status="DONE"),
            Task("c", "c", priority="P1", status="IN_PROGRESS"),
            Task("d", "d", priority="P1"),
            Task("e", "e", priority="P1"),
            Task("f", "f", priority="P0", status="BLOCKED"),
        )
    )
    nxt = backlog.next_task()
    assert nxt is not None and nxt.id == "d"
    assert Backlog((Task("x", "x", priority="P3"), Task("y", "y", priority="P3"))).next_task() == (
        Task("x", "x", priority="P3")
    )
    assert Backlog((Task("z", "z", status="DONE"),)).next_task() is None


def test_by_status_counts_every_status() -> None:
    backlog = Backlog(
        (Task("a", "a"), Task("b", "b", status="DONE"), Task("c", "c", status="DONE"))
    )
    assert backlog.by_status() == {"TODO": 1, "IN_PROGRESS": 0, "DONE": 2, "BLOCKED": 0}


# -- refusing --------------------------------------------------------------------------


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BacklogError) as info:
        load_backlog(tmp_path / "config" / "backlog.yaml")
    assert info.value.one_line() == (
        f"no backlog at {tmp_path / 'config' / 'backlog.yaml'} (does not exist) [INVALID_INPUT]"
    )
    with pytest.raises(BacklogError, match=r"no backlog at .* \(is not a file\)"):
        load_backlog(tmp_path)


@pytest.mark.parametrize(
    "text,where,words",
    [
        # duplicate ids name the line of the second one and the first
        (
            "- {id: A, title: a}\n- {id: B, title: b}\n- {id: A, title: again}\n",
            ":3: task 'A': key 'id':",
            "duplicate id (first used on line 1)",
        ),
        ("- id: A\n  title: a\n  colour: red\n", ":3: task 'A': key 'colour':", "unknown key"),
        ("- {id: A, title: a, priority: P4}\n", ":1: task 'A': key 'priority':", "not 'P4'"),
        ("- {id: A, title: a, priority: 1}\n", ":1: task 'A': key 'priority':", "P0, P1"),
        ("- id: A\n  title: a\n  status: todo\n", ":3: task 'A': key 'status':", "'todo'"),
        (
            "- id: A\n  title: a\n  approvals:\n    - before_build\n    - after_lunch\n",
            ":5: task 'A': key 'approvals.1':",
            "before_build, before_steward",
        ),
        (
            "- {id: A, title: a, approvals: [before_build, before_build]}\n",
            ":1: task 'A': key 'approvals.1':",
            "listed twice",
        ),
        ("- {id: A, title: a, approvals: before_build}\n", "key 'approvals':", "a list"),
        ("- {id: A, title: a, acceptance: [make test, 3]}\n", "key 'acceptance.1':", "3"),
        ("- {id: A, title: a, acceptance: ['']}\n", "key 'acceptance.0':", "non-empty"),
        ("- id: A\n  title: a\n  context: [src/, ../etc]\n", ":3:", "'..' component"),
        ("- {id: A, title: a, context: [/etc/passwd]}\n", "key 'context.0':", "absolute path"),
        ("- {id: A, title: a, context: [src/.git/config]}\n", "context.0", "'.git' component"),
        ("- {id: A, title: a, context: ['a\\\\b']}\n", "context.0", "backslash"),
        ("- {id: A, title: a, context: ['src//x']}\n", "context.0", "empty path component"),
        ("- {title: a}\n", ":1: task #1: key 'id':", "required key is missing"),
        ("- {id: A}\n", ":1: task 'A': key 'title':", "required key is missing"),
        ("- {id: A, title: '  '}\n", "key 'title':", "should not be empty"),
        ("- {id: A, title: [x]}\n", "key 'title':", "should be a string"),
        ("- {id: 12, title: a}\n", ":1: task #1: key 'id':", "quote it"),
        ("- {id: has space, title: a}\n", "key 'id':", "is not a task id"),
        ("- {id: -x, title: a}\n", "key 'id':", "is not a task id"),
        ("- {id: a..b, title: a}\n", "key 'id':", "is not a task id"),
        ("- {id: a.lock, title: a}\n", "key 'id':", "is not a task id"),
        ("- {id: a., title: a}\n", "key 'id':", "is not a task id"),
        ("- {id: a/b, title: a}\n", "key 'id':", "is not a task id"),
        (f"- {{id: {'x' * 101}, title: a}}\n", "key 'id':", "at most 100"),
        ("- {id: A, title: a}\n- just a string\n", ":2: task #2:", "should be a mapping"),
        ("tasks:\n  - {id: A, title: a}\nextra: 1\n", ":3:", "unknown top-level key 'extra'"),
        ("tasks: {id: A}\n", ":1:", "must be a list of tasks"),
        ("just text\n", ":1:", "must be a list of tasks"),
        ("- {id: A, title: a\n", ":2:", "invalid YAML"),
        ("- {id: A, title: a, title: b}\n", ":1:", "duplicate key 'title'"),
    ],
)
def test_bad_backlogs_are_one_line_naming_file_line_and_field(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    exc = refused(tmp_path, text)
    assert where in exc.message, exc.message
    assert words in exc.message, exc.message


def test_task_id_allows_branch_safe_slugs(tmp_path: Path) -> None:
    text = "- {id: T-12, title: a}\n- {id: fix_2.1, title: b}\n- {id: 7, title: c}\n"
    with pytest.raises(BacklogError):
        load_backlog(write(tmp_path, text))
    backlog = load_backlog(write(tmp_path, text.replace("id: 7", "id: '7'")))
    assert [t.id for t in backlog] == ["T-12", "fix_2.1", "7"]


# -- contradictions --------------------------------------------------------------------


def run(
    run_id: str, task: str, status: str, evidence: Any = "auto", kind: str = "spine"
) -> dict[str, Any]:
    config = {} if evidence is None else {"evidence": f".lifeos/evidence/{run_id}"}
    if evidence not in ("auto", None):
        config = {"evidence": evidence}
    return {"run_id": run_id, "kind": kind, "name": task, "status": status, "config": config}


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


def codes(found: list[Any]) -> list[tuple[str, str | None, str | None]]:
    return [(c.code, c.task_id, c.run_id) for c in found]


BACKLOG = Backlog(
    (
        Task("T-1", "one", status="DONE"),
        Task("T-2", "two", status="IN_PROGRESS"),
        Task("T-3", "three"),
        Task("T-4", "four", status="IN_PROGRESS"),
    )
)


def test_consistent_backlog_and_runs_have_no_contradictions() -> None:
    checker = Checker()
    runs = [
        run("r-1", "T-1", "LANDED"),
        run("r-0", "T-1", "FAILED"),
        run("r-2", "T-2", "running", evidence=None),  # the store starts runs lower case
        run("r-3", "T-4", "PAUSED", evidence=None),
        run("m-1", "echo", "completed", evidence=None, kind="mission"),
    ]
    assert find_contradictions(BACKLOG, runs, checker, max_wip=2) == []
    assert sorted(checker.calls) == [
        ("r-0", ".lifeos/evidence/r-0"),
        ("r-1", ".lifeos/evidence/r-1"),
    ]


def test_every_contradiction_is_found_in_a_stable_order() -> None:
    runs = [
        run("r-9", "T-3", "LANDED"),  # landed, task still TODO
        run("r-1", "T-1", "LANDED", evidence=None),  # landed with no evidence folder
        run("r-5", "T-2", "BLOCKED"),  # evidence does not verify
        run("r-6", "T-4", "RUNNING"),  # evidence folder named but missing
        run("r-7", "T-gone", "LANDED"),  # a task no longer in the backlog
        run("r-8", "T-3", "FAILED", evidence=42),
    ]
    checker = Checker(r_5="EVIDENCE_INVALID", r_6="EVIDENCE_MISSING")
    found = find_contradictions(BACKLOG, runs, checker, max_wip=1)
    assert codes(found) == [
        ("EVIDENCE_MISSING", "T-1", "r-1"),
        ("EVIDENCE_INVALID", "T-2", "r-5"),
        ("EVIDENCE_INVALID", "T-3", "r-8"),
        ("LANDED_NOT_DONE", "T-3", "r-9"),
        ("EVIDENCE_MISSING", "T-4", "r-6"),
        ("LANDED_NOT_DONE", "T-gone", "r-7"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
        ("WIP_EXCEEDED", None, None),
    ]
    assert {c.code for c in found} == set(CONTRADICTION_CODES)
    messages = {(c.code, c.run_id): c.message for c in found}
    assert "evidence_invalid detail" in messages[("EVIDENCE_INVALID", "r-5")]
    assert "is TODO in the backlog" in messages[("LANDED_NOT_DONE", "r-9")]
    assert "is not in the backlog" in messages[("LANDED_NOT_DONE", "r-7")]
    assert "T-2, T-4" in messages[("WIP_EXCEEDED", None)]
    assert "max_wip=1" in messages[("WIP_EXCEEDED", None)]
    # The order of the records does not matter.
    again = find_contradictions(BACKLOG, list(reversed(runs)), checker, max_wip=1)
    assert again == found
    assert found[0].to_dict() == {
        "code": "EVIDENCE_MISSING",
        "message": found[0].message,
        "run_id": "r-1",
        "task_id": "T-1",
    }


def test_done_needs_a_landed_run_whose_evidence_verifies() -> None:
    done = Backlog((Task("T-1", "one", status="DONE"),))
    bad = find_contradictions(
        done, [run("r-1", "T-1", "LANDED")], Checker(r_1="EVIDENCE_INVALID"), max_wip=2
    )
    assert codes(bad) == [
        ("EVIDENCE_INVALID", "T-1", "r-1"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
    ]
    # A blocked run with good evidence does not make the task done.
    blocked = find_contradictions(done, [run("r-1", "T-1", "BLOCKED")], Checker(), max_wip=2)
    assert codes(blocked) == [("DONE_WITHOUT_EVIDENCE", "T-1", None)]
    # One good landed run among bad ones is enough.
    mixed = find_contradictions(
        done,
        [run("r-1", "T-1", "LANDED"), run("r-2", "T-1", "LANDED")],
        Checker(r_1="EVIDENCE_MISSING"),
        max_wip=2,
    )
    assert codes(mixed) == [("EVIDENCE_MISSING", "T-1", "r-1")]


@pytest.mark.parametrize(
    "status", ["RUNNING", "running", "PAUSED", "BUDGET_EXCEEDED", "ESCALATED", "BLOCKED", "FAILED"]
)
def test_runs_stopped_before_the_steward_may_have_no_evidence(status: str) -> None:
    backlog = Backlog((Task("T-1", "one", status="IN_PROGRESS"),))
    found = find_contradictions(backlog, [run("r", "T-1", status, None)], Checker(), max_wip=2)
    assert found == []
    # ... but evidence they do name must verify.
    checker = Checker(r="EVIDENCE_MISSING")
    found = find_contradictions(backlog, [run("r", "T-1", status)], checker, max_wip=2)
    assert codes(found) == [("EVIDENCE_MISSING", "T-1", "r")]


def test_a_landed_run_must_name_its_evidence() -> None:
    backlog = Backlog((Task("T-1", "one", status="DONE"),))
    found = find_contradictions(backlog, [run("r", "T-1", "LANDED", None)], Checker(), max_wip=2)
    assert codes(found) == [
        ("EVIDENCE_MISSING", "T-1", "r"),
        ("DONE_WITHOUT_EVIDENCE", "T-1", None),
    ]
    assert "recorded no evidence folder" in found[0].message


def test_evidence_recorded_by_the_steward_phase_counts() -> None:
    backlog = Backlog((Task("T-1", "one", status="DONE"),))
    record = run("r", "T-1", "LANDED", None)
    record["config"] = {"outputs": {"steward": {"evidence": ".lifeos/evidence/r"}}}
    checker = Checker()
    assert find_contradictions(backlog, [record], checker, max_wip=2) == []
    assert checker.calls == [("r", ".lifeos/evidence/r")]


def test_a_landed_inline_task_is_not_missing_from_the_backlog() -> None:
    """A task given inline (an OpenClaw job) is not in the backlog by design; a run that
    landed one under a backlog task's id still has to agree with the backlog."""
    backlog = Backlog((Task("T-1", "one"),))
    inline = run("r-2", "T-9", "LANDED")
    inline["config"]["inline"] = True
    assert find_contradictions(backlog, [inline], Checker(), max_wip=2) == []
    clash = run("r-3", "T-1", "LANDED")
    clash["config"]["inline"] = True
    found = find_contradictions(backlog, [clash], Checker(), max_wip=2)
    assert codes(found) == [("LANDED_NOT_DONE", "T-1", "r-3")]


def test_an_inline_task_is_validated_like_a_backlog_entry() -> None:
    task = task_from_dict({"id": "T-9", "title": "Nine", "context": ["src/"]})
    assert (task.id, task.status, task.context) == ("T-9", "TODO", ("src/",))
    for bad, needle in [
        ({"id": "T-9"}, "'title'"),
        ({"id": "T 9", "title": "x"}, "'id'"),
        ({"id": "T-9", "title": "x", "status": "DONE"}, "'status'"),
        ({"id": "T-9", "title": "x", "surprise": 1}, "'surprise'"),
        ("T-9", "mapping"),
    ]:
        with pytest.raises(BacklogError) as err:
            task_from_dict(bad, "job task")
        assert needle in str(err.value) and str(err.value).startswith("job task:")


def test_wip_at_the_limit_is_fine() -> None:
    backlog = Backlog(tuple(Task(f"T-{i}", "t", status="IN_PROGRESS") for i in range(3)))
    assert find_contradictions(backlog, [], Checker(), max_wip=3) == []
    over = find_contradictions(backlog, [], Checker(), max_wip=2)
    assert codes(over) == [("WIP_EXCEEDED", None, None)]


def test_the_readme_example_is_a_valid_backlog(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Backlog:", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    backlog = load_backlog(write(tmp_path, example))
    task = backlog.get("T-12")
    assert (task.priority, task.status, task.approvals) == ("P1", "TODO", ("before_build",))
    assert task.context == ("src/report/", "docs/report.md")
    assert backlog.next_task() == task
