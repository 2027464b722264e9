"""Stopping a command LifeOS started in its own session (process group)."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

__all__ = ["stop_group"]

KILL_GRACE_S = 2.0
"""How long a group gets to exit after SIGTERM before SIGKILL."""
REAP_WAIT_S = 5.0
"""How long to wait for the leader after SIGKILL."""


def stop_group(proc: subprocess.Popen[Any]) -> Any:
    """SIGTERM the process group, SIGKILL it after a grace, and reap the leader.

    Returns what the leader had written to stdout (as ``communicate`` gives it), or None
    when something outside the group still held the pipes and they were abandoned.
    Children that ignored SIGTERM are SIGKILLed with the group.
    """
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, REAP_WAIT_S)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            output, _ = proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is gone; stragglers are not
        except (ProcessLookupError, PermissionError):
            pass
        return output
    # Something outside the group still holds the pipes; stop waiting for them.
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    proc.kill()
    proc.wait(timeout=REAP_WAIT_S)
    return None
