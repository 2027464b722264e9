"""The run_tests mission: discover, execute and report a pytest suite.

The suite runs in a subprocess (through the injected process runner) in the
target directory; results come from the JUnit XML pytest writes, never from
scraping its console output. A missing target, a suite that cannot start, or a
suite that collects nothing is a failed result with a reason code.
"""

from __future__ import annotations

import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lifeos.engine import StepEnv, StepFailure, StepSpec
from lifeos.errors import InputError, MissionValidationError, ReasonCode
from lifeos.missions.base import BaseMission, MissionContext, MissionResult, MissionType
from lifeos.operations import Operation
from lifeos.services import ProcessRunner, SubprocessRunner

__all__ = ["RunTestsMission", "TestsReport", "parse_junit"]

MODES = ("all", "discover", "execute")
DEFAULT_TIMEOUT = 600.0
# pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected.
_RAN = (0, 1)
_NOTHING_COLLECTED = 5


def parse_junit(xml_text: str) -> dict[str, Any]:
    """Count passed, failed, errors and skipped tests in a JUnit XML report."""
    root = ET.fromstring(xml_text)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing: list[str] = []
    duration = 0.0
    for suite in suites:
        duration += float(suite.get("time", "0") or 0)
        for case in suite.iter("testcase"):
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None:
                counts["failed"] += 1
                failing.append(test_id)
            elif case.find("error") is not None:
                counts["errors"] += 1
                failing.append(test_id)
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    total = sum(counts.values())
    return {**counts, "total": total, "failing": sorted(failing), "duration_s": duration}


class RunTestsMission(BaseMission):
    """Runs a pytest suite in ``target`` (relative to the repository root).

    Inputs: ``target`` (default ``.``), ``mode`` (``all``: succeed only if every
    test passes; ``discover``: collect only; ``execute``: succeed if the suite
    ran, whatever its verdict), ``pytest_args`` (list of strings), ``timeout``
    (seconds) and ``python`` (the interpreter; this one by default).
    """

    @property
    def mission_type(self) -> MissionType:
        """``run_tests``."""
        return MissionType.RUN_TESTS

    def validate_inputs(self, inputs: dict[str, Any]) -> None:
        """Check the types of the inputs."""
        if not isinstance(inputs.get("target", "."), str):
            raise MissionValidationError("'target' must be a path string")
        if inputs.get("mode", "all") not in MODES:
            raise MissionValidationError(f"'mode' must be one of {list(MODES)}")
        args = inputs.get("pytest_args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise MissionValidationError("'pytest_args' must be a list of strings")
        timeout = inputs.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, str):
            try:
                timeout = float(timeout)
            except ValueError:
                raise MissionValidationError("'timeout' must be a number of seconds") from None
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise MissionValidationError("'timeout' must be a positive number of seconds")

    def run(self, context: MissionContext, inputs: dict[str, Any]) -> MissionResult:
        """Discover and/or run the suite and report its counts."""
        target_text = inputs.get("target", ".")
        target = Path(target_text)
        if not target.is_absolute():
            target = context.repo_root / target
        if not target.is_dir():
            return self._make_result(
                False,
                outputs={"target": target_text},
                error=f"test target '{target_text}' is not a directory",
                reason_code=ReasonCode.TARGET_NOT_FOUND,
            )
        mode = inputs.get("mode", "all")
        runner: ProcessRunner = (
            context.services.processes if context.services else SubprocessRunner()
        )
        python = inputs.get("python") or sys.executable
        base = [python, "-m", "pytest", "-p", "no:cacheprovider", *inputs.get("pytest_args", [])]
        timeout = float(inputs.get("timeout", DEFAULT_TIMEOUT))
        if mode == "discover":
            return self._discover(runner, base, target, target_text, timeout)
        return self._execute(runner, base, target, target_text, timeout, mode)

    def _cannot_run(self, target_text: str, why: str, **outputs: Any) -> MissionResult:
        return self._make_result(
            False,
            outputs={"target": target_text, **outputs},
            error=f"the test suite in '{target_text}' could not run: {why}",
            reason_code=ReasonCode.TESTS_NOT_RUNNABLE,
        )

    def _discover(
        self,
        runner: ProcessRunner,
        base: list[str],
        target: Path,
        target_text: str,
        timeout: float,
    ) -> MissionResult:
        try:
            proc = runner.run([*base, "--collect-only", "-q"], str(target), timeout)
        except InputError as exc:
            return self._cannot_run(target_text, exc.message)
        if proc.timed_out:
            return self._cannot_run(target_text, f"collection timed out after {timeout:g}s")
        ids = [
            line.strip()
            for line in proc.stdout.splitlines()
            if "::" in line and not line.startswith(("=", " "))
        ]
        if proc.returncode == _NOTHING_COLLECTED or (proc.returncode == 0 and not ids):
            return self._cannot_run(target_text, "no tests were collected", collected=0)
        if proc.returncode != 0:
            return self._cannot_run(
                target_text, _last_line(proc.stdout + proc.stderr), exit_code=proc.returncode
            )
        return self._make_result(
            True,
            outputs={"target": target_text, "collected": len(ids), "test_ids": ids},
            executed_steps=["discover"],
        )

    def _execute(
        self,
        runner: ProcessRunner,
        base: list[str],
        target: Path,
        target_text: str,
        timeout: float,
        mode: str,
    ) -> MissionResult:
        with tempfile.TemporaryDirectory(prefix="lifeos-junit-") as tmp:
            xml_path = Path(tmp) / "junit.xml"
            argv = [*base, "-q", f"--junitxml={xml_path}", "-o", "junit_family=xunit2"]
            try:
                proc = runner.run(argv, str(target), timeout)
            except InputError as exc:
                return self._cannot_run(target_text, exc.message)
            if proc.timed_out:
                return self._cannot_run(target_text, f"the suite timed out after {timeout:g}s")
            if proc.returncode == _NOTHING_COLLECTED:
                return self._cannot_run(target_text, "no tests were collected", total=0)
            if proc.returncode not in _RAN or not xml_path.exists():
                return self._cannot_run(
                    target_text,
                    _last_line(proc.stdout + proc.stderr) or f"exit code {proc.returncode}",
                    exit_code=proc.returncode,
                )
            try:
                report = parse_junit(xml_path.read_text(encoding="utf-8"))
            except (ET.ParseError, ValueError) as exc:
                return self._cannot_run(target_text, f"unreadable JUnit report: {exc}")
        duration = report.pop("duration_s")
        all_passed = report["failed"] == 0 and report["errors"] == 0 and proc.returncode == 0
        outputs = {"target": target_text, "all_passed": all_passed, **report}
        if mode == "all" and not all_passed:
            result = self._make_result(
                False,
                outputs=outputs,
                executed_steps=["execute", "report"],
                error=f"{report['failed']} failed, {report['errors']} errors: "
                + ", ".join(report["failing"][:5]),
                reason_code=ReasonCode.TESTS_FAILED,
            )
        else:
            result = self._make_result(True, outputs=outputs, executed_steps=["execute", "report"])
        result.timings["duration_s"] = duration
        return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class TestsReport(Operation):
    """Writes ``test_report`` from the execute step's result; fails if any test failed."""

    __test__ = False  # not a pytest test class
    name = "tests_report"
    fields = frozenset({"source", "output_key"})

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        source = step.payload.get("source", "tests-execute")
        results = state.get("mission_results")
        result = results.get(source) if isinstance(results, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("outputs"), dict):
            raise InputError(f"no test results from step '{source}' to report")
        out = result["outputs"]
        counts = {k: out.get(k, 0) for k in ("passed", "failed", "errors", "skipped", "total")}
        status = "passed" if out.get("all_passed") else "failed"
        summary = (
            f"{counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['errors']} errors, {counts['skipped']} skipped"
        )
        state[step.payload.get("output_key", "test_report")] = {
            **counts,
            "failing": list(out.get("failing", [])),
            "status": status,
            "summary": summary,
            "target": out.get("target"),
        }
        if status == "failed":
            return StepFailure(ReasonCode.TESTS_FAILED, f"tests failed: {summary}")
        return None
