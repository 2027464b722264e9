"""`make demo`'s showcase runs offline and every step ends as it should."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_showcase_runs_offline() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "examples/demo/showcase.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # exit codes in order: status, init, validate, list, echo, daily (paused), daily
    # (approved), tests, harness, runs list, ledger checkpoint, ledger verify, unknown mission
    codes = [line for line in out.splitlines() if line.startswith("(exit ")]
    assert codes == [f"(exit {c})" for c in (0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 2)], out
    assert "ledger OK:" in out
    assert "tests: 3 passed, 0 failed, 0 errors, 0 skipped" in out
    assert "suite demo-smoke: 4 scenarios, 5 runs, 10 passed, 0 failed" in out
    assert "[UNKNOWN_MISSION]" in proc.stderr
