"""A LifeOS worker: polls a Temporal task queue and runs spine workflows and phases.

Workflow tasks run on the event loop (the workflow only decides what comes next);
phases run in a pool of threads, each heartbeating. The first SIGINT or SIGTERM stops
polling and cancels the phases in flight (Temporal retries them on another worker,
which replays their journals); a second one ends the process at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from lifeos.temporal.activities import SpineActivities
from lifeos.temporal.client import connect

__all__ = ["MAX_PHASES", "serve"]

MAX_PHASES = 4
"""Phases (of different runs) one worker runs at the same time, unless told otherwise."""
GRACE = timedelta(seconds=2)
"""How long a stopping worker lets the phases in flight finish before cancelling them."""
STICKY = timedelta(seconds=3)
"""How long a run's next workflow task waits for the worker that ran the last one (it
has the workflow in memory) before any worker takes it (replaying the history)."""


class _OneLine(logging.Formatter):
    """The SDK's log records as single lines (a traceback's last line only)."""

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        text = super().formatException(ei)  # type: ignore[arg-type]
        return " | " + text.strip().splitlines()[-1] if text.strip() else ""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(super().format(record).split("\n"))


def _sdk_logging(say: Callable[[str], None]) -> None:
    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(f"temporal: {self.format(record)}")

    handler = Handler(logging.WARNING)
    handler.setFormatter(_OneLine("%(levelname)s %(message)s"))
    sdk = logging.getLogger("temporalio")
    sdk.handlers[:] = [handler]
    sdk.propagate = False


async def serve(
    address: str,
    task_queue: str,
    activities: SpineActivities,
    *,
    identity: str,
    namespace: str = "default",
    phases: int = MAX_PHASES,
    say: Callable[[str], None] = lambda _line: None,
) -> None:
    """Run a worker, ``phases`` phases at a time at most, until SIGINT or SIGTERM.

    Raises:
        TemporalUnavailable: the server cannot be reached.
    """
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from lifeos.temporal.workflow import SpineWorkflow

    _sdk_logging(say)
    client = await connect(address, namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(130)  # a second signal: at once (a later attempt replays the journal)
        say("stopping: phases in flight are handed back to Temporal")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    with ThreadPoolExecutor(phases, thread_name_prefix="lifeos-phase") as pool:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[SpineWorkflow],
            activities=[activities.step, activities.decide],
            activity_executor=pool,
            # What the workflow imports of LifeOS (names, timeouts, reason codes: no
            # state) is taken as it is instead of re-imported for every workflow; the
            # workflow's own module stays in the sandbox and under its checks.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    "lifeos.temporal.contract", "lifeos.errors"
                )
            ),
            max_concurrent_activities=phases,
            identity=identity,
            graceful_shutdown_timeout=GRACE,
            sticky_queue_schedule_to_start_timeout=STICKY,
        )
        async with worker:
            say(f"polling task queue {task_queue!r} on {address} as {identity}")
            await stop.wait()
    say("stopped")
