"""Stopping a command's whole process group, children that ignore SIGTERM included."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lifeos.procs import stop_group

CHILD = """\
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
print("started", flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (already dead, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


def test_the_group_is_gone_and_the_output_kept(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(marker.read_text())
    output = stop_group(proc)
    assert output is not None and b"started" in output
    assert proc.returncode is not None
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_process_that_already_ended_is_fine() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "print('done')"], stdout=subprocess.PIPE, start_new_session=True
    )
    proc.wait()
    assert stop_group(proc) == b"done\n"
