"""The run_tests mission against real pytest suites run in real subprocesses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lifeos.engine import ExecutionContext
from lifeos.errors import MissionValidationError
from lifeos.missions import MissionContext, RunTestsMission
from lifeos.missions.run_tests import parse_junit
from lifeos.registry import run_mission
from lifeos.services import Services

PASSING = """\
def test_one():
    assert 1 + 1 == 2


def test_two():
    assert "a" in "abc"
"""

MIXED = """\
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture boom")


def test_ok():
    assert True


def test_bad():
    assert 1 == 2


@pytest.mark.skip(reason="later")
def test_skipped():
    pass


def test_errors(broken):
    pass
"""

SLEEPY = """\
import time


def test_sleeps():
    time.sleep(30)
"""


@pytest.fixture(autouse=True)
def _child_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the child pytest independent of this run's options and plugins (and fast)."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def _suite(root: Path, name: str, files: dict[str, str]) -> Path:
    d = root / name
    d.mkdir()
    (d / "pytest.ini").write_text("[pytest]\n")
    for fname, text in files.items():
        (d / fname).write_text(text)
    return d


def _ctx(root: Path) -> MissionContext:
    return MissionContext(repo_root=root, baseline_commit=None, run_id="r1", services=Services())


def _run(root: Path, inputs: dict[str, Any]) -> Any:
    mission = RunTestsMission()
    mission.validate_inputs(inputs)
    return mission.run(_ctx(root), inputs)


def test_all_passing_suite(tmp_path: Path) -> None:
    _suite(tmp_path, "good", {"test_good.py": PASSING})
    r = _run(tmp_path, {"target": "good"})
    assert r.success is True
    assert r.reason_code is None
    out = r.outputs
    assert (out["passed"], out["failed"], out["errors"], out["skipped"]) == (2, 0, 0, 0)
    assert out["total"] == 2
    assert out["all_passed"] is True
    assert out["failing"] == []
    assert out["target"] == "good"
    assert r.executed_steps == ["execute", "report"]
    assert "duration_s" in r.timings
    assert "duration_s" not in r.to_dict()["outputs"]


def test_absolute_target(tmp_path: Path) -> None:
    d = _suite(tmp_path, "good", {"test_good.py": PASSING})
    r = _run(tmp_path / "elsewhere", {"target": str(d)})
    assert r.success is True
    assert r.outputs["passed"] == 2


def test_mixed_suite_counts_and_failing_ids(tmp_path: Path) -> None:
    _suite(tmp_path, "mixed", {"test_mixed.py": MIXED})
    r = _run(tmp_path, {"target": "mixed"})
    assert r.success is False
    assert r.reason_code == "TESTS_FAILED"
    out = r.outputs
    assert out["passed"] == 1
    assert out["failed"] == 1
    assert out["errors"] == 1
    assert out["skipped"] == 1
    assert out["total"] == 4
    assert out["all_passed"] is False
    assert out["failing"] == ["test_mixed::test_bad", "test_mixed::test_errors"]
    assert "1 failed, 1 errors" in r.error
    assert "test_mixed::test_bad" in r.error


def test_execute_mode_succeeds_whatever_the_verdict(tmp_path: Path) -> None:
    _suite(tmp_path, "mixed", {"test_mixed.py": MIXED})
    r = _run(tmp_path, {"target": "mixed", "mode": "execute"})
    assert r.success is True
    assert r.reason_code is None
    assert r.outputs["all_passed"] is False
    assert r.outputs["failed"] == 1


def test_pytest_args_are_passed_through(tmp_path: Path) -> None:
    _suite(tmp_path, "mixed", {"test_mixed.py": MIXED})
    r = _run(tmp_path, {"target": "mixed", "pytest_args": ["-k", "test_ok"]})
    assert r.success is True
    assert r.outputs["total"] == 1
    assert r.outputs["passed"] == 1


def test_collection_error_is_not_runnable(tmp_path: Path) -> None:
    _suite(
        tmp_path,
        "broken",
        {"test_syntax.py": "def test_x(:\n    pass\n", "test_good.py": PASSING},
    )
    r = _run(tmp_path, {"target": "broken"})
    assert r.success is False
    assert r.reason_code == "TESTS_NOT_RUNNABLE"
    assert r.outputs["exit_code"] not in (0, 1, 5)
    assert "could not run" in r.error


def test_collection_error_in_discover_mode(tmp_path: Path) -> None:
    _suite(tmp_path, "broken", {"test_syntax.py": "def test_x(:\n    pass\n"})
    r = _run(tmp_path, {"target": "broken", "mode": "discover"})
    assert r.success is False
    assert r.reason_code == "TESTS_NOT_RUNNABLE"


@pytest.mark.parametrize("mode", ["all", "execute", "discover"])
def test_no_tests_is_not_runnable(tmp_path: Path, mode: str) -> None:
    _suite(tmp_path, "empty", {})
    r = _run(tmp_path, {"target": "empty", "mode": mode})
    assert r.success is False
    assert r.reason_code == "TESTS_NOT_RUNNABLE"
    assert "no tests were collected" in r.error


def test_missing_interpreter_is_not_runnable(tmp_path: Path) -> None:
    _suite(tmp_path, "good", {"test_good.py": PASSING})
    r = _run(tmp_path, {"target": "good", "python": "/nonexistent/python"})
    assert r.success is False
    assert r.reason_code == "TESTS_NOT_RUNNABLE"
    assert "/nonexistent/python" in r.error


@pytest.mark.parametrize("target", ["missing", "file.txt"])
def test_target_not_found(tmp_path: Path, target: str) -> None:
    (tmp_path / "file.txt").write_text("not a directory\n")
    r = _run(tmp_path, {"target": target})
    assert r.success is False
    assert r.reason_code == "TARGET_NOT_FOUND"
    assert r.outputs == {"target": target}
    assert target in r.error


def test_discover_gives_collected_count_and_ids(tmp_path: Path) -> None:
    _suite(tmp_path, "mixed", {"test_mixed.py": MIXED})
    r = _run(tmp_path, {"target": "mixed", "mode": "discover"})
    assert r.success is True
    assert r.executed_steps == ["discover"]
    assert r.outputs["collected"] == 4
    assert r.outputs["test_ids"] == [
        "test_mixed.py::test_ok",
        "test_mixed.py::test_bad",
        "test_mixed.py::test_skipped",
        "test_mixed.py::test_errors",
    ]


def test_timeout_is_not_runnable_and_quick(tmp_path: Path) -> None:
    _suite(tmp_path, "sleepy", {"test_sleepy.py": SLEEPY})
    started = time.monotonic()
    r = _run(tmp_path, {"target": "sleepy", "timeout": 1})
    elapsed = time.monotonic() - started
    assert r.success is False
    assert r.reason_code == "TESTS_NOT_RUNNABLE"
    assert "timed out after 1s" in r.error
    assert elapsed < 15


@pytest.mark.parametrize(
    "inputs",
    [
        {"mode": "everything"},
        {"target": 3},
        {"pytest_args": "-x"},
        {"pytest_args": ["-x", 1]},
        {"timeout": 0},
        {"timeout": -5},
        {"timeout": "soon"},
        {"timeout": True},
        {"timeout": None},
    ],
)
def test_validate_inputs_rejects(inputs: dict[str, Any]) -> None:
    with pytest.raises(MissionValidationError) as info:
        RunTestsMission().validate_inputs(inputs)
    assert info.value.reason.value == "INVALID_INPUT"


@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"target": "x", "mode": "discover"},
        {"mode": "execute", "pytest_args": ["-x", "-q"]},
        {"timeout": 2.5},
        {"timeout": "30"},
    ],
)
def test_validate_inputs_accepts(inputs: dict[str, Any]) -> None:
    RunTestsMission().validate_inputs(inputs)  # does not raise
    assert RunTestsMission().mission_type.value == "run_tests"


def test_run_tests_workflow_passing(tmp_path: Path) -> None:
    _suite(tmp_path, "suite", {"test_good.py": PASSING})
    result = run_mission(
        "run_tests", ExecutionContext(metadata={"repo_root": str(tmp_path)}), {"target": "suite"}
    )
    assert result.status == "completed", result.error_message
    assert [s.id for s in result.executed_steps] == [
        "tests-discover",
        "tests-execute",
        "tests-report",
    ]
    report = result.final_state["test_report"]
    assert report == {
        "passed": 2,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
        "total": 2,
        "failing": [],
        "status": "passed",
        "summary": "2 passed, 0 failed, 0 errors, 0 skipped",
        "target": "suite",
    }
    discovered = result.final_state["mission_results"]["tests-discover"]["outputs"]
    assert discovered["collected"] == 2


def test_run_tests_workflow_failing(tmp_path: Path) -> None:
    _suite(tmp_path, "suite", {"test_mixed.py": MIXED})
    result = run_mission(
        "run_tests", ExecutionContext(metadata={"repo_root": str(tmp_path)}), {"target": "suite"}
    )
    assert result.status == "failed"
    assert result.success is False
    assert result.reason_code == "TESTS_FAILED"
    assert result.failed_step_id == "tests-report"
    report = result.final_state["test_report"]
    assert report["status"] == "failed"
    assert report["failing"] == ["test_mixed::test_bad", "test_mixed::test_errors"]
    assert (report["passed"], report["failed"], report["errors"], report["skipped"]) == (
        1,
        1,
        1,
        1,
    )


def test_run_tests_workflow_missing_target(tmp_path: Path) -> None:
    result = run_mission(
        "run_tests", ExecutionContext(metadata={"repo_root": str(tmp_path)}), {"target": "nope"}
    )
    assert result.status == "failed"
    assert result.reason_code == "TARGET_NOT_FOUND"
    assert result.failed_step_id == "tests-discover"
    assert "test_report" not in result.final_state


JUNIT = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="1.25">
    <testcase classname="pkg.test_a" name="test_pass" time="0.1"/>
    <testcase classname="pkg.test_a" name="test_pass2" time="0.1"/>
    <testcase classname="pkg.test_b" name="test_fail" time="0.1">
      <failure message="assert 1 == 2">trace</failure>
    </testcase>
    <testcase classname="pkg.test_a" name="test_err" time="0.1">
      <error message="fixture boom">trace</error>
    </testcase>
    <testcase classname="pkg.test_b" name="test_skip" time="0.0">
      <skipped message="later"/>
    </testcase>
  </testsuite>
  <testsuite name="second" time="0.75">
    <testcase classname="other" name="test_more"/>
  </testsuite>
</testsuites>
"""


def test_parse_junit_counts() -> None:
    report = parse_junit(JUNIT)
    assert report["passed"] == 3
    assert report["failed"] == 1
    assert report["errors"] == 1
    assert report["skipped"] == 1
    assert report["total"] == 6
    assert report["failing"] == ["pkg.test_a::test_err", "pkg.test_b::test_fail"]
    assert report["duration_s"] == pytest.approx(2.0)


def test_parse_junit_single_testsuite_root() -> None:
    xml = '<testsuite time="0.5"><testcase classname="m" name="t"/></testsuite>'
    assert parse_junit(xml) == {
        "passed": 1,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
        "total": 1,
        "failing": [],
        "duration_s": 0.5,
    }


def test_parse_junit_empty_report() -> None:
    report = parse_junit("<testsuites/>")
    assert report["total"] == 0
    assert report["failing"] == []
