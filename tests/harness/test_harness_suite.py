"""Running harness suites: carried state, decisions, deterministic results, bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

from lifeos.engine import StepSpec, WorkflowDefinition
from lifeos.errors import HarnessFileError
from lifeos.harness import (
    Expectation,
    MissionRun,
    Scenario,
    Suite,
    TestRunResult,
    load_suite,
    run_suite,
)
from lifeos.yamlio import load_yaml


def _run(text: str, base: Path | None = None) -> TestRunResult:
    doc = load_yaml(textwrap.dedent(text), "suite.yaml", HarnessFileError)
    return run_suite(load_suite(doc, base or Path(".")))


CARRY = """\
suite: carry
scenarios:
  - name: carry over
    state: {total: 10}
    runs:
      - workflow:
          id: w1
          steps:
            - {id: add, kind: runtime,
               payload: {operation: calc, path: total, op: add, args: [{path: total}, 5]}}
        expect:
          - {path: final_state.total, eq: 15}
      - workflow:
          id: w2
          steps:
            - {id: double, kind: runtime,
               payload: {operation: calc, path: total, op: mul, args: [{path: total}, 2]}}
        expect:
          - {path: final_state.total, eq: 30}
      - workflow:
          id: w3
          steps:
            - {id: add, kind: runtime,
               payload: {operation: calc, path: total, op: add, args: [{path: total}, 1]}}
        state: {total: 0}
        expect:
          - {path: final_state.total, eq: 1}
      - mission: echo
        params: {message: hi}
        expect:
          - {path: final_state.total, eq: 1}
          - {path: final_state.mission_result.outputs.message, eq: hi}
  - name: fresh scenario
    runs:
      - workflow:
          id: w4
          steps:
            - {id: n, kind: runtime, payload: {operation: noop}}
        expect:
          - {path: final_state.total, exists: false}
"""


def test_state_carries_over_between_runs() -> None:
    result = _run(CARRY)
    assert result.passed is True, result.to_dict()
    assert result.bad_input is None
    assert [o.workflow_id for o in result.outcomes] == ["w1", "w2", "w3", "wf-echo", "w4"]
    assert [o.index for o in result.outcomes] == [0, 1, 2, 3, 0]
    assert all(o.status == "completed" for o in result.outcomes)
    totals = result.to_dict()["totals"]
    assert totals == {"expectations": 6, "failed": 0, "runs": 5, "scenarios": 2}


def test_result_is_deterministic_over_two_runs() -> None:
    a, b = _run(CARRY), _run(CARRY)
    assert a.to_dict() == b.to_dict()
    assert a.hash == b.hash
    assert len(a.hash) == 64
    assert a.to_dict()["hash"] == a.hash
    assert [o.result_hash for o in a.outcomes] == [o.result_hash for o in b.outcomes]


def test_hash_changes_with_the_outcome() -> None:
    changed = CARRY.replace(
        "{path: final_state.total, eq: 15}", "{path: final_state.total, eq: 16}"
    )
    assert _run(changed).hash != _run(CARRY).hash


HUMAN = """\
suite: human
scenarios:
  - name: decisions
    runs:
      - workflow:
          id: wf-h
          steps:
            - {id: set, kind: runtime, payload: {operation: set, path: x, value: 1}}
            - {id: confirm, kind: human}
            - {id: after, kind: runtime, payload: {operation: set, path: y, value: 2}}
        decisions: {confirm: approve}
        expect:
          - {path: status, eq: completed}
          - {path: final_state.y, eq: 2}
          - {path: receipt.decisions.0.decision, eq: approve}
      - workflow:
          id: wf-h2
          steps:
            - {id: confirm, kind: human}
        decisions: {confirm: reject}
        expect:
          - {path: status, eq: failed}
          - {path: reason_code, eq: HUMAN_REJECTED}
      - workflow:
          id: wf-h3
          steps:
            - {id: confirm, kind: human}
            - {id: after, kind: runtime, payload: {operation: set, path: z, value: 3}}
        expect:
          - {path: status, eq: paused}
          - {path: waiting_step_id, eq: confirm}
          - {path: final_state.z, exists: false}
"""


def test_decisions_approve_and_reject_human_steps() -> None:
    result = _run(HUMAN)
    assert result.passed is True, result.to_dict()
    assert [o.status for o in result.outcomes] == ["completed", "failed", "paused"]
    assert result.outcomes[1].reason_code == "HUMAN_REJECTED"
    assert result.bad_input is None


def test_failing_expectation_reports_its_actual_value() -> None:
    result = _run(
        """\
        suite: failing
        scenarios:
          - name: one
            runs:
              - mission: echo
                params: {n: 3}
                expect:
                  - {path: final_state.mission_result.outputs.n, eq: 4, id: n-is-four}
                  - {path: final_state.mission_result.outputs.n, lt: 10}
        """
    )
    assert result.passed is False
    assert result.bad_input is None
    outcome = result.outcomes[0]
    assert outcome.passed is False
    assert outcome.status == "completed"
    failed = [c for c in outcome.checks if not c.passed]
    assert len(failed) == 1
    assert failed[0].actual == 3
    assert failed[0].found is True
    assert failed[0].describe() == (
        "[n-is-four] final_state.mission_result.outputs.n eq 4 (actual: 3)"
    )
    d = result.to_dict()
    assert d["totals"]["failed"] == 1
    assert d["scenarios"][0]["passed"] is False
    first = d["scenarios"][0]["runs"][0]["expectations"][0]
    assert (first["actual"], first["expected"], first["passed"]) == (3, 4, False)


def test_missing_path_is_reported_as_not_found() -> None:
    result = _run(
        """\
        suite: missing
        scenarios:
          - name: one
            runs:
              - mission: echo
                expect:
                  - {path: final_state.nothing_here, eq: 1}
        """
    )
    check = result.outcomes[0].checks[0]
    assert check.passed is False
    assert check.found is False
    assert "<missing>" in check.describe()


BAD_CALC = """\
suite: bad
scenarios:
  - name: calc on a string
    state: {total: "ten"}
    runs:
      - workflow:
          id: wf-calc
          steps:
            - {id: add, kind: runtime,
               payload: {operation: calc, path: total, op: add, args: [{path: total}, 1]}}
        expect:
          - {path: final_state.total, eq: "ten"}
"""


def test_run_stopped_on_bad_input_sets_bad_input() -> None:
    result = _run(BAD_CALC)
    outcome = result.outcomes[0]
    assert outcome.status == "failed"
    assert outcome.reason_code == "STATE_TYPE_INVALID"
    assert outcome.passed is True  # its one expectation held ...
    assert result.bad_input is not None  # ... but the file counts as bad input
    assert result.bad_reason == "STATE_TYPE_INVALID"
    assert "scenario 'calc on a string' run 0 (line 6)" in result.bad_input
    assert "calc needs a number at 'total'" in result.bad_input
    assert result.passed is False
    assert result.to_dict()["bad_input"] == result.bad_input


def test_bad_input_is_expected_when_outcome_is_checked() -> None:
    for check in (
        "{path: status, eq: failed}",
        "{path: reason_code, eq: STATE_TYPE_INVALID}",
        "{path: success, eq: false}",
        "{path: error_message, contains: calc}",
        "{path: failed_step_id, eq: add}",
    ):
        text = BAD_CALC.replace('{path: final_state.total, eq: "ten"}', check)
        result = _run(text)
        assert result.bad_input is None, check
        assert result.bad_reason is None
        assert result.passed is True, check


def test_non_input_failure_is_not_bad_input() -> None:
    result = _run(
        """\
        suite: fail
        scenarios:
          - name: f
            runs:
              - workflow:
                  id: wf-fail
                  steps:
                    - {id: f, kind: runtime, payload: {operation: fail, reason: planned}}
                expect:
                  - {path: final_state, eq: {}}
        """
    )
    assert result.outcomes[0].reason_code == "STEP_FAILED"
    assert result.bad_input is None
    assert result.passed is True


def test_repo_root_is_the_suite_directory(tmp_path: Path) -> None:
    (tmp_path / "present").mkdir()
    wf = WorkflowDefinition(
        id="wf-rt",
        steps=[
            StepSpec(
                "rt",
                "runtime",
                {"operation": "mission", "mission_type": "run_tests", "params": {"target": "gone"}},
            )
        ],
    )
    suite = Suite(
        name="direct",
        scenarios=[
            Scenario(
                name="s",
                runs=[
                    MissionRun(
                        workflow=wf,
                        label="run tests",
                        expect=[Expectation("reason_code", "eq", "TARGET_NOT_FOUND")],
                    )
                ],
            )
        ],
        base_dir=tmp_path,
    )
    result = run_suite(suite)
    assert result.passed is True
    assert result.outcomes[0].label == "run tests"
    assert result.outcomes[0].error_message is not None
    assert "'gone' is not a directory" in result.outcomes[0].error_message


def test_empty_suite_passes() -> None:
    result = run_suite(Suite(name="empty", scenarios=[]))
    assert result.passed is True
    assert result.outcomes == []
    assert result.to_dict()["totals"] == {
        "expectations": 0,
        "failed": 0,
        "runs": 0,
        "scenarios": 0,
    }
