"""Loading harness suites from YAML: what validates, and how every refusal names its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lifeos.engine import Decision
from lifeos.errors import HarnessFileError
from lifeos.harness import Expectation, Suite, load_suite, load_suite_file, run_suite
from lifeos.yamlio import load_yaml

SOURCE = "suite.yaml"


def _load(text: str, base: Path | None = None) -> Suite:
    doc = load_yaml(textwrap.dedent(text), SOURCE, HarnessFileError)
    return load_suite(doc, base or Path("."))


def _refused(text: str) -> HarnessFileError:
    with pytest.raises(HarnessFileError) as info:
        _load(text)
    err = info.value
    assert err.exit_code == 2
    return err


def _workflow_run(steps: str) -> str:
    return textwrap.dedent(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - workflow:
                  id: w
                  steps:
        """
    ) + textwrap.indent(textwrap.dedent(steps), " " * 12)


VALID = """\
suite: smoke
description: a small suite
scenarios:
  - name: echo round trip
    state: {seed: 1}
    runs:
      - mission: echo
        params: {message: hi}
        expect:
          - {path: final_state.mission_result.outputs.message, eq: hi, id: echoed}
          - {path: status, ne: failed}
      - name: summing
        workflow:
          id: wf-sum
          steps:
            - {id: add, kind: runtime, payload: {operation: calc, path: total, op: add,
                                                 args: [1, 2]}}
            - {id: confirm, kind: human}
        state: {}
        decisions: {confirm: approve}
        expect:
          - {path: final_state.total, gt: 2}
          - {path: final_state.total, exists: true}
          - {path: receipt.steps, contains: add}
          - {path: final_state.total, lt: 4}
"""


def test_load_valid_suite(tmp_path: Path) -> None:
    suite = _load(VALID, tmp_path)
    assert suite.name == "smoke"
    assert suite.base_dir == tmp_path
    assert len(suite.scenarios) == 1
    sc = suite.scenarios[0]
    assert sc.name == "echo round trip"
    assert sc.state == {"seed": 1}
    first, second = sc.runs
    assert first.label == "mission echo"
    assert first.workflow.id == "wf-echo"
    assert first.state is None
    assert first.line == 7
    assert first.expect[0] == Expectation(
        "final_state.mission_result.outputs.message", "eq", "hi", id="echoed"
    )
    assert first.expect[1].op == "ne"
    assert second.label == "summing"
    assert second.workflow.id == "wf-sum"
    assert [s.id for s in second.workflow.steps] == ["add", "confirm"]
    assert second.state == {}
    assert second.decisions == {"confirm": Decision("approve")}
    assert [e.op for e in second.expect] == ["gt", "exists", "contains", "lt"]
    assert second.line == 12


def test_unnamed_workflow_run_label() -> None:
    text = _workflow_run("- {id: x, kind: runtime}\n")
    run = _load(text).scenarios[0].runs[0]
    assert run.label == "workflow w"
    assert run.workflow.steps[0].payload == {}


def test_load_suite_file(tmp_path: Path) -> None:
    path = tmp_path / "smoke.yaml"
    path.write_text(VALID)
    suite = load_suite_file(path)
    assert suite.name == "smoke"
    assert suite.base_dir == tmp_path.resolve()
    assert run_suite(suite).passed is True


def test_load_suite_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(HarnessFileError, match="no such file") as info:
        load_suite_file(path)
    assert str(path) in info.value.message
    assert info.value.exit_code == 2


def test_load_suite_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "suite: s\nscenarios:\n  - name: a\n    runs:\n      - mission: echo\n        bogus: 1\n"
    )
    with pytest.raises(HarnessFileError) as info:
        load_suite_file(path)
    assert info.value.message.startswith(f"{path}:6: ")
    assert "bogus" in info.value.message


def test_yaml_that_does_not_parse() -> None:
    err = _refused("suite: s\nscenarios: [\n  - a: b\n")
    assert err.message.startswith(f"{SOURCE}:3: invalid YAML")


def test_duplicate_keys() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                mission: echo
        """
    )
    assert err.message == f"{SOURCE}:6: duplicate key 'mission'"


def test_unknown_key_names_its_line() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                expect: []
                bogus: 1
        """
    )
    assert err.message == f"{SOURCE}:7: key 'scenarios.0.runs.0.bogus': unknown key"


def test_unknown_top_level_key() -> None:
    err = _refused("suite: s\nscenarios:\n  - name: a\n    runs: [{mission: echo}]\nextra: 1\n")
    assert err.message == f"{SOURCE}:5: key 'extra': unknown key"


def test_wrong_type_names_key_and_line() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                params: [1, 2]
        """
    )
    assert err.message.startswith(f"{SOURCE}:6: key 'scenarios.0.runs.0.params': ")


def test_wrong_type_of_suite_name() -> None:
    err = _refused("suite: 3\nscenarios:\n  - name: a\n    runs: [{mission: echo}]\n")
    assert err.message.startswith(f"{SOURCE}:1: key 'suite': ")


def test_missing_required_key_names_the_line() -> None:
    err = _refused("suite: s\nscenarios:\n  - runs: [{mission: echo}]\n")
    assert err.message.startswith(f"{SOURCE}:3: key 'scenarios.0")
    assert "required key is missing" in err.message


def test_missing_required_key_is_named() -> None:
    err = _refused("suite: s\nscenarios:\n  - runs: [{mission: echo}]\n")
    assert err.message == f"{SOURCE}:3: key 'scenarios.0.name': required key is missing"


def test_empty_scenarios_refused() -> None:
    err = _refused("suite: s\nscenarios: []\n")
    assert "scenarios" in err.message
    assert err.message.startswith(f"{SOURCE}:2: ")


def test_top_level_not_a_mapping() -> None:
    err = _refused("- 1\n- 2\n")
    assert err.message == f"{SOURCE}: the top level must be a mapping with 'suite'"


def test_empty_document() -> None:
    err = _refused("")
    assert "top level must be a mapping" in err.message


def test_bad_decision_value() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                decisions: {confirm: maybe}
        """
    )
    assert err.message.startswith(f"{SOURCE}:6: key 'scenarios.0.runs.0.decisions.confirm': ")


def test_six_steps_hit_the_anti_failure_limit() -> None:
    steps = "".join(
        f"- {{id: s{i}, kind: runtime, payload: {{operation: noop}}}}\n" for i in range(6)
    )
    err = _refused(_workflow_run(steps))
    assert err.reason.value == "ANTI_FAILURE_LIMIT"
    assert err.message.startswith(f"{SOURCE}:5: scenarios[0].runs[0]: ")
    assert "6 steps" in err.message


def test_three_human_steps_hit_the_anti_failure_limit() -> None:
    steps = "".join(f"- {{id: h{i}, kind: human}}\n" for i in range(3))
    err = _refused(_workflow_run(steps))
    assert err.reason.value == "ANTI_FAILURE_LIMIT"
    assert err.message.startswith(f"{SOURCE}:5: ")
    assert "3 human steps" in err.message


def test_unknown_step_kind() -> None:
    err = _refused(_workflow_run("- {id: x, kind: shell}\n"))
    assert err.reason.value == "ENVELOPE_VIOLATION"
    assert err.message.startswith(f"{SOURCE}:5: ")
    assert "shell" in err.message


def test_unknown_operation() -> None:
    err = _refused(_workflow_run("- {id: x, kind: runtime, payload: {operation: rm_rf}}\n"))
    assert err.reason.value == "UNKNOWN_OPERATION"
    assert err.message.startswith(f"{SOURCE}:5: ")
    assert "rm_rf" in err.message


def test_calc_with_a_string_operand() -> None:
    err = _refused(
        _workflow_run(
            "- {id: x, kind: runtime,\n"
            '   payload: {operation: calc, path: t, op: add, args: [1, "2"]}}\n'
        )
    )
    assert err.message.startswith(f"{SOURCE}:5: scenarios[0].runs[0]: ")
    assert "args[1]" in err.message


def test_unknown_payload_key() -> None:
    err = _refused(_workflow_run("- {id: x, kind: runtime, payload: {operation: noop, cmd: ls}}\n"))
    assert "cmd" in err.message
    assert err.message.startswith(f"{SOURCE}:5: ")


def test_duplicate_step_ids() -> None:
    err = _refused(_workflow_run("- {id: x, kind: runtime}\n- {id: x, kind: runtime}\n"))
    assert "duplicate step id 'x'" in err.message


@pytest.mark.parametrize("mission", ["designer", "nothing"])
def test_unknown_mission(mission: str) -> None:
    err = _refused(
        f"""\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: {mission}
        """
    )
    assert err.message.startswith(f"{SOURCE}:5: scenarios[0].runs[0]: unknown mission '{mission}'")
    assert "daily_loop, design, echo, review, run_tests" in err.message


def test_both_mission_and_workflow() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                workflow: {id: w, steps: []}
        """
    )
    assert err.message.startswith(f"{SOURCE}:5: key 'scenarios.0.runs.0': ")
    assert "exactly one of 'mission' or 'workflow'" in err.message


def test_neither_mission_nor_workflow() -> None:
    err = _refused("suite: s\nscenarios:\n  - name: a\n    runs:\n      - name: nothing\n")
    assert "exactly one of 'mission' or 'workflow'" in err.message


def test_params_with_a_workflow() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - workflow: {id: w, steps: []}
                params: {a: 1}
        """
    )
    assert "'params' goes with 'mission'" in err.message


def test_expectation_with_two_operators() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                expect:
                  - {path: status, eq: completed}
                  - {path: status, eq: completed, ne: failed}
        """
    )
    assert err.message.startswith(f"{SOURCE}:8: key 'scenarios.0.runs.0.expect.1': ")
    assert "exactly one of eq, ne, exists, contains, lt, gt" in err.message


def test_expectation_with_no_operator() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                expect:
                  - {path: status}
        """
    )
    assert err.message.startswith(f"{SOURCE}:7: ")
    assert "exactly one of" in err.message


def test_expectation_with_a_bad_path() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: echo
                expect:
                  - {path: "a..b", eq: 1}
        """
    )
    assert err.message.startswith(f"{SOURCE}:5: scenarios[0].runs[0]: ")
    assert "empty component" in err.message


def test_bad_mission_params_are_refused_at_load() -> None:
    err = _refused(
        """\
        suite: s
        scenarios:
          - name: a
            runs:
              - mission: daily_loop
                params: {requested_steps: many}
        """
    )
    assert err.message.startswith(f"{SOURCE}:5: ")
    assert "requested_steps" in err.message


def test_unquoted_date_in_state_is_refused_or_runs() -> None:
    text = """\
    suite: s
    scenarios:
      - name: d
        state: {today: 2024-05-02}
        runs:
          - mission: echo
    """
    try:
        suite = _load(text)
    except HarnessFileError as exc:
        assert f"{SOURCE}:4" in exc.message
        return
    result = run_suite(suite)
    assert result.outcomes[0].status == "completed"
