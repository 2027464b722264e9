"""Drive the installed `lifeos` command in temporary git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import git
from tests.e2e.cli import lifeos


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, reason: str) -> None:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith(f"[{reason}]"), err
    assert "Traceback" not in proc.stderr


def snapshot(repo: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }


# -- mission -------------------------------------------------------------------


def test_mission_list_sorted_json(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "list", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == [
        "autonomous_build_cycle",
        "build",
        "build_with_validation",
        "daily_loop",
        "design",
        "echo",
        "review",
        "run_tests",
        "steward",
    ]


def test_echo_json_has_the_seed_shape(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "run", "echo", "--params", '{"message": "hi"}', "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert proc.stdout == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert data["success"] is True and data["status"] == "completed"
    assert data["id"] == "wf-echo"
    assert data["receipt"] == {"id": "wf-echo", "steps": ["echo-execute"]}
    assert data["lineage"] == {"executed_step_ids": ["echo-execute"], "workflow_id": "wf-echo"}
    result = data["final_state"]["mission_result"]
    assert result["outputs"] == {"message": "hi"}
    assert data["final_state"]["mission_results"]["echo-execute"] == result
    again = lifeos(git_repo, "mission", "run", "echo", "--params", '{"message": "hi"}', "--json")
    assert again.stdout == proc.stdout


def test_legacy_param_values_are_strings(git_repo: Path) -> None:
    proc = lifeos(
        git_repo, "mission", "run", "echo", "--param", "n=3", "--param", "x=a=b", "--json"
    )
    outputs = json.loads(proc.stdout)["final_state"]["mission_result"]["outputs"]
    assert outputs == {"n": "3", "x": "a=b"}


@pytest.mark.parametrize(
    "args,reason,words",
    [
        (["--params", "{bad"], "INVALID_INPUT", "invalid JSON"),
        (["--params", "[1, 2]"], "INVALID_INPUT", "must be a JSON object"),
        (["--param", "novalue"], "INVALID_INPUT", "expected key=value"),
        (["--state", "missing.json"], "INVALID_INPUT", "no such file"),
    ],
)
def test_mission_run_bad_input(git_repo: Path, args: list[str], reason: str, words: str) -> None:
    before = snapshot(git_repo)
    proc = lifeos(git_repo, "mission", "run", "echo", *args)
    assert_one_line_error(proc, 2, reason)
    assert words in proc.stderr
    assert proc.stdout == ""
    assert snapshot(git_repo) == before


def test_unknown_mission_lists_the_valid_ones(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "run", "teleport")
    assert_one_line_error(proc, 2, "UNKNOWN_MISSION")
    for name in ("daily_loop", "echo", "run_tests"):
        assert name in proc.stderr


def test_unknown_mission_type_is_refused(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "run", "designer")
    assert_one_line_error(proc, 2, "UNKNOWN_MISSION")


def test_a_spine_mission_without_a_task_is_bad_input(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "run", "design")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("[INVALID_INPUT]")
    assert "task_id or run_id" in proc.stderr


DAILY_STATE = {
    "today": "2026-11-21",
    "entries": [
        {"date": "2026-11-20", "text": "wrote tests", "done": True},
        {"date": "2026-11-20", "text": "review", "done": False},
    ],
    "tasks": [
        {"id": "A", "title": "later", "priority": "P2"},
        {"id": "B", "title": "now", "priority": "P0"},
    ],
}


def test_daily_loop_pauses_then_completes_when_approved(git_repo: Path) -> None:
    (git_repo / "state.json").write_text(json.dumps(DAILY_STATE))
    paused = lifeos(git_repo, "mission", "run", "daily_loop", "--state", "state.json", "--json")
    assert paused.returncode == 4, paused.stderr
    data = json.loads(paused.stdout)
    assert data["status"] == "paused"
    assert data["waiting_step_id"] == "daily-confirm-priorities"
    assert data["final_state"]["daily"]["priorities"][0]["id"] == "B"
    done = lifeos(
        git_repo,
        "mission",
        "run",
        "daily_loop",
        "--state",
        "state.json",
        "--approve",
        "daily-confirm-priorities",
        "--note",
        "fine",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["final_state"]["daily"]["log"] == [
        "2026-11-21: yesterday 1/2 done, 1 open; today: now, later"
    ]
    assert final["receipt"]["decisions"] == [
        {
            "actor": "human",
            "decision": "approve",
            "note": "fine",
            "step_id": "daily-confirm-priorities",
        }
    ]


def test_daily_loop_rejected_fails_with_reason(git_repo: Path) -> None:
    (git_repo / "state.json").write_text(json.dumps(DAILY_STATE))
    proc = lifeos(
        git_repo,
        "mission",
        "run",
        "daily_loop",
        "--state",
        "state.json",
        "--reject",
        "daily-confirm-priorities",
        "--note",
        "wrong order",
    )
    assert_one_line_error(proc, 1, "HUMAN_REJECTED")
    assert "wrong order" in proc.stderr


def test_daily_loop_with_bad_state_is_bad_input(git_repo: Path) -> None:
    (git_repo / "state.json").write_text(json.dumps({"today": "2026-11-21", "entries": 5}))
    proc = lifeos(git_repo, "mission", "run", "daily_loop", "--state", "state.json")
    assert_one_line_error(proc, 2, "STATE_TYPE_INVALID")


def _suite(repo: Path, name: str, body: str) -> None:
    d = repo / name
    d.mkdir()
    (d / "pytest.ini").write_text("[pytest]\n")
    (d / "test_it.py").write_text(body)


def test_run_tests_reports_a_passing_suite(git_repo: Path) -> None:
    _suite(git_repo, "ok", "def test_a():\n    assert True\n\ndef test_b():\n    assert 1\n")
    proc = lifeos(git_repo, "mission", "run", "run_tests", "--param", "target=ok", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["final_state"]["test_report"]
    assert report["passed"] == 2 and report["failed"] == 0 and report["status"] == "passed"


def test_run_tests_failing_suite_exits_1(git_repo: Path) -> None:
    _suite(git_repo, "bad", "def test_a():\n    assert True\n\ndef test_b():\n    assert 0\n")
    proc = lifeos(git_repo, "mission", "run", "run_tests", "--param", "target=bad")
    assert_one_line_error(proc, 1, "TESTS_FAILED")
    assert "1 passed, 1 failed" in proc.stdout


def test_run_tests_missing_target(git_repo: Path) -> None:
    proc = lifeos(git_repo, "mission", "run", "run_tests", "--param", "target=nowhere")
    assert_one_line_error(proc, 1, "TARGET_NOT_FOUND")


# -- config, status, init ------------------------------------------------------


def test_init_then_validate_then_show(git_repo: Path) -> None:
    assert lifeos(git_repo, "init").returncode == 0
    text = (git_repo / "lifeos.yaml").read_text()
    assert text.startswith("#")
    again = lifeos(git_repo, "init")
    assert again.returncode == 0 and "left as it is" in again.stdout
    assert (git_repo / "lifeos.yaml").read_text() == text
    valid = lifeos(git_repo, "config", "validate")
    assert valid.returncode == 0 and "VALID" in valid.stdout
    shown = lifeos(git_repo, "config", "show")
    data = json.loads(shown.stdout)
    assert shown.stdout.strip() == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert data["policy"] == {"profile": "code"}
    status = lifeos(git_repo, "status")
    assert status.returncode == 0
    assert f"repo_root: {git_repo}" in status.stdout
    assert "config_validation: VALID" in status.stdout


def test_status_from_a_subdirectory_finds_the_root(git_repo: Path) -> None:
    sub = git_repo / "a" / "b"
    sub.mkdir(parents=True)
    proc = lifeos(sub, "status", "--json")
    assert json.loads(proc.stdout)["repo_root"] == str(git_repo)


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("version: 1\nfrobs: 2\n", 2, "unknown top-level key 'frobs'"),
        ("version: 1\nbacklog:\n  max_wip: two\n", 3, "backlog.max_wip"),
        ("version: 1\nbacklog:\n  colour: red\n", 3, "backlog.colour"),
        ("version: 1\nbacklog: [\n", 3, "invalid YAML"),
        ("version: 1\nmodels:\n  b:\n    api_key: sk-123\n", None, "secret"),
    ],
)
def test_invalid_config_names_key_and_line(
    git_repo: Path, text: str, line: int | None, words: str
) -> None:
    (git_repo / "lifeos.yaml").write_text(text)
    proc = lifeos(git_repo, "config", "validate")
    assert_one_line_error(proc, 2, "CONFIG_INVALID")
    assert words in proc.stderr
    if line is not None:
        assert f"lifeos.yaml:{line}:" in proc.stderr
    assert lifeos(git_repo, "status").returncode == 2


def test_config_validate_without_a_file(git_repo: Path) -> None:
    assert_one_line_error(lifeos(git_repo, "config", "validate"), 2, "CONFIG_MISSING")
    assert_one_line_error(
        lifeos(git_repo, "--config", "nope.yaml", "config", "show"), 2, "CONFIG_MISSING"
    )


# -- test run ------------------------------------------------------------------

GOOD = """\
suite: e2e
scenarios:
  - name: sums
    runs:
      - workflow:
          id: wf-sum
          steps:
            - {id: a, kind: runtime, payload: {operation: set, path: n, value: 2}}
            - id: b
              kind: runtime
              payload: {operation: calc, path: n, op: mul, args: [{path: n}, 21]}
        expect:
          - {path: final_state.n, eq: 42}
      - mission: echo
        params: {message: hi}
        expect:
          - {path: final_state.n, eq: 42}
"""


def test_harness_file_passes_with_stable_hash(git_repo: Path) -> None:
    (git_repo / "t.yaml").write_text(GOOD)
    first = lifeos(git_repo, "test", "run", "t.yaml", "--json")
    assert first.returncode == 0, first.stderr
    second = lifeos(git_repo, "test", "run", "t.yaml", "--json")
    assert json.loads(first.stdout)["hash"] == json.loads(second.stdout)["hash"]
    assert json.loads(first.stdout)["passed"] is True


def test_harness_failing_expectation_shows_actual(git_repo: Path) -> None:
    (git_repo / "t.yaml").write_text(
        GOOD.replace("eq: 42}\n      - mission", "eq: 41}\n      - mission")
    )
    proc = lifeos(git_repo, "test", "run", "t.yaml")
    assert proc.returncode == 1
    assert "final_state.n eq 41 (actual: 42)" in proc.stdout
    assert_one_line_error(proc, 1, "EXPECTATION_FAILED")


def _steps(n: int, human: int = 0, kind: str = "runtime") -> str:
    rows = [f"            - {{id: s{i}, kind: human}}" for i in range(human)]
    rows += [f"            - {{id: r{i}, kind: {kind}}}" for i in range(n - human)]
    return "\n".join(rows)


def _wf(steps: str, state: str = "") -> str:
    return (
        "suite: bad\nscenarios:\n  - name: x\n"
        + (f"    state: {state}\n" if state else "")
        + "    runs:\n      - workflow:\n          id: wf\n          steps:\n"
        + steps
        + "\n"
    )


@pytest.mark.parametrize(
    "text,reason,words",
    [
        (_wf(_steps(6)), "ANTI_FAILURE_LIMIT", "6 steps"),
        (_wf(_steps(3, human=3)), "ANTI_FAILURE_LIMIT", "3 human steps"),
        (_wf(_steps(1, kind="robot")), "ENVELOPE_VIOLATION", "robot"),
        (
            _wf("            - {id: a, kind: runtime, payload: {operation: teleport}}"),
            "UNKNOWN_OPERATION",
            "teleport",
        ),
        (
            _wf(
                "            - {id: a, kind: runtime, payload: {operation: calc, path: x, "
                "op: add, args: [one]}}"
            ),
            "INVALID_INPUT",
            "args[0]",
        ),
        (
            _wf(
                "            - {id: a, kind: runtime, payload: {operation: calc, path: x, "
                "op: add, args: [{path: s}]}}",
                state="{s: text}",
            ),
            "STATE_TYPE_INVALID",
            "needs a number",
        ),
        (
            _wf(
                "            - {id: a, kind: runtime, "
                "payload: {operation: set, path: s.x, value: 1}}",
                state="{s: text}",
            ),
            "STATE_PATH_INVALID",
            "not an object",
        ),
        (
            "suite: bad\nscenarios:\n  - name: x\n    colour: red\n    runs: [{mission: echo}]\n",
            "INVALID_INPUT",
            ":4:",
        ),
        ("suite: [\n", "INVALID_INPUT", "invalid YAML"),
    ],
)
def test_harness_bad_files_exit_2(git_repo: Path, text: str, reason: str, words: str) -> None:
    (git_repo / "bad.yaml").write_text(text)
    before = snapshot(git_repo)
    proc = lifeos(git_repo, "test", "run", "bad.yaml")
    assert_one_line_error(proc, 2, reason)
    assert words in proc.stderr
    assert snapshot(git_repo) == before


def test_outside_git_uses_the_working_directory(tmp_path: Path) -> None:
    proc = lifeos(tmp_path, "status", "--json")
    data = json.loads(proc.stdout)
    assert data["repo_root"] == str(tmp_path) and data["in_git"] is False
    git(tmp_path, "--version")
