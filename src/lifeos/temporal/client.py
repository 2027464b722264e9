"""The CLI's side of a Temporal run: submit it, send a decision, wait until it stops.

Every function connects first, so an unreachable server is reported (one line, with a
reason code) before anything is written. A run is created in the store here (hydrate),
then its workflow is started with an id made from the run id: submitting the same run
twice finds the first workflow. Waiting polls the workflow's description (the server
answers it, no worker needed): the run has stopped when the workflow has closed or its
memo names a stop taken after the last decision.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from lifeos.errors import InputError, LifeOSError, ReasonCode
from lifeos.temporal import contract
from lifeos.temporal.contract import EngineRef, TemporalRunError, TemporalUnavailable

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from lifeos.backlog import Task
    from lifeos.spine import Spine, SpineOutcome

__all__ = [
    "connect",
    "exit_without_teardown",
    "probe",
    "outcome_from_dict",
    "send_decision",
    "submit",
    "wait_for_stop",
]

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.25


def _why(exc: BaseException) -> str:
    """The useful part of a connection error (the OS's message when there is one)."""
    text = str(exc)
    for pattern in (r'message: "([^"]+)"', r'error: "([^"]+)"'):
        found = re.findall(pattern, text)
        if found:
            return str(found[-1]).lower()
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g}s"
    return " ".join(text.split())[-200:] or type(exc).__name__


def probe(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Check that something listens at ``address`` (HOST:PORT) with a plain TCP
    connection, before the SDK's client is made: a name that does not resolve or a
    closed port is reported here (the SDK's runtime may crash at exit after a failed
    name lookup).

    Raises:
        InputError: ``address`` is not HOST:PORT.
        TemporalUnavailable: the name does not resolve or nothing accepts a connection.
    """
    import socket

    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise InputError(f"the Temporal address {address!r} is not HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except socket.gaierror as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {address}: cannot resolve {host} ({exc.strerror})"
        ) from None
    except TimeoutError:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {address}: no answer within {timeout_s:g}s"
        ) from None
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        raise TemporalUnavailable(f"cannot reach Temporal at {address}: {why}") from None


async def connect(address: str, namespace: str = "default") -> Client:
    """A client of the Temporal server at ``address`` (HOST:PORT).

    Raises:
        InputError: ``address`` is not HOST:PORT.
        TemporalUnavailable: nothing answers there, or not as a Temporal server.
    """
    from temporalio.client import Client

    probe(address)
    try:
        return await asyncio.wait_for(
            Client.connect(address, namespace=namespace), CONNECT_TIMEOUT_S
        )
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        raise TemporalUnavailable(f"cannot reach Temporal at {address}: {_why(exc)}") from None


async def _rpc(address: str, call: Awaitable[T]) -> T:
    """Await a call to the server; a server gone away is TemporalUnavailable."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await call
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise TemporalUnavailable(
                f"Temporal at {address} stopped answering: {exc.message}"
            ) from None
        raise


_EXIT_STATUS: list[int] = []


def exit_without_teardown(code: int) -> None:
    """End the process with ``code`` when the interpreter exits, skipping its
    teardown, for a command that used the SDK's client: the SDK's native threads can
    crash a finalizing interpreter (temporalio/sdk-python#300; seen here after a failed
    connection). Output is flushed first; a later call replaces the code. Only in the
    ``lifeos`` console script: a program that runs the CLI in its own process (a test
    runner) keeps its own exit status."""
    import atexit
    import sys
    from pathlib import Path

    if Path(sys.argv[0]).name != "lifeos":
        return
    if not _EXIT_STATUS:
        atexit.register(_exit_now)
    _EXIT_STATUS[:] = [code]


def _exit_now() -> None:
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_EXIT_STATUS[0] if _EXIT_STATUS else 1)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from synchronous code (the CLI)."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


async def submit(
    client: Client, ref: EngineRef, run_id: str, recovering: bool
) -> WorkflowHandle[Any, Any]:
    """Start the run's workflow, or find it when it runs already (the same run
    submitted twice has one workflow)."""
    from temporalio.common import WorkflowIDConflictPolicy

    return await _rpc(
        ref.address,
        client.start_workflow(
            contract.WORKFLOW,
            {"run_id": run_id, "recovering": recovering},
            id=contract.workflow_id(run_id),
            task_queue=ref.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ),
    )


async def running(client: Client, ref: EngineRef, run_id: str) -> WorkflowHandle[Any, Any] | None:
    """The run's workflow while it runs; None when it has closed or never started."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    handle = client.get_workflow_handle(contract.workflow_id(run_id))
    try:
        described = await _rpc(ref.address, handle.describe())
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return handle if described.status is WorkflowExecutionStatus.RUNNING else None


async def _memo(handle: WorkflowHandle[Any, Any], address: str) -> tuple[Any, dict[str, Any]]:
    described = await _rpc(address, handle.describe())
    memo = await described.memo()
    value = memo.get(contract.MEMO_KEY)
    return described.status, dict(value) if isinstance(value, Mapping) else {}


async def decisions_taken(handle: WorkflowHandle[Any, Any], address: str) -> int:
    """How many decisions the workflow has taken so far."""
    _, memo = await _memo(handle, address)
    return int(memo.get("decisions") or 0)


async def send_decision(
    handle: WorkflowHandle[Any, Any], address: str, point: str, approve: bool, note: str
) -> None:
    """Signal a person's decision on the pause at ``point``."""
    signal = contract.SIGNAL_APPROVE if approve else contract.SIGNAL_REJECT
    await _rpc(address, handle.signal(signal, {"point": point, "note": note}))


async def wait_for_stop(
    handle: WorkflowHandle[Any, Any], address: str, *, after_decisions: int = 0
) -> dict[str, Any]:
    """Wait until the run stops: the workflow's outcome when it closes, or the pause
    its memo names once it has taken at least ``after_decisions`` decisions.

    Raises:
        InputError: the decision sent was refused (its reason code).
        TemporalRunError: the workflow ended without an outcome.
    """
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    while True:
        status, memo = await _memo(handle, address)
        if status is not WorkflowExecutionStatus.RUNNING:
            try:
                return dict(await _rpc(address, handle.result()))
            except WorkflowFailureError as exc:
                raise _run_error(handle.id, exc) from None
        stop = memo.get("stop")
        taken = int(memo.get("decisions") or 0)
        if isinstance(stop, Mapping) and stop.get("after") == taken and taken >= after_decisions:
            refused = stop.get("refused")
            if after_decisions and isinstance(refused, Mapping):
                # refused as the local command refuses it (bad input: exit 2)
                raise InputError(str(refused["message"]), _code(refused.get("reason")))
            return dict(stop["outcome"])
        await asyncio.sleep(POLL_S)


def _code(value: Any) -> ReasonCode:
    try:
        return ReasonCode(str(value))
    except ValueError:
        return ReasonCode.STEP_FAILED


def _run_error(workflow: str, exc: BaseException) -> LifeOSError:
    """A failed workflow as a one-line LifeOS error: a refusal (an unknown run, a broken
    lifeos.yaml) as the input error it was, anything else as TemporalRunError."""
    from temporalio.exceptions import ApplicationError

    cause: BaseException | None = exc
    message = str(exc)
    while cause is not None:
        message = str(getattr(cause, "message", "") or cause) or message
        if isinstance(cause, ApplicationError) and cause.type == "SPINE_INPUT":
            detail = cause.details[0] if cause.details else {}
            reason = detail.get("reason") if isinstance(detail, Mapping) else None
            return InputError(cause.message, _code(reason))
        cause = cause.__cause__
    return TemporalRunError(f"the run's workflow {workflow} failed: {message}")


def outcome_from_dict(data: Mapping[str, Any]) -> SpineOutcome:
    """The :class:`~lifeos.spine.SpineOutcome` of its ``to_dict`` form."""
    from lifeos.spine import SpineOutcome
    from lifeos.spine.model import SpineState

    return SpineOutcome(
        run_id=str(data["run_id"]),
        task_id=str(data["task_id"]),
        state=SpineState(data["state"]),
        reasons=tuple(str(r) for r in data.get("reason_codes") or ()),
        message=str(data.get("message") or ""),
        phase=str(data.get("phase") or ""),
        commit=data.get("commit"),
        branch=data.get("branch"),
        worktree=data.get("worktree"),
        evidence=data.get("evidence"),
        agent_calls=int(data.get("agent_calls") or 0),
        replayed_calls=int(data.get("replayed_calls") or 0),
    )


def _submitted(say: Callable[[str], None], ref: EngineRef, run_id: str) -> None:
    say(
        f"run {run_id} on Temporal at {ref.address} (task queue {ref.task_queue}, "
        f"workflow {contract.workflow_id(run_id)})"
    )


async def submit_task(
    spine: Spine,
    task_id: str | None,
    ref: EngineRef,
    *,
    wait: bool,
    say: Callable[[str], None] = lambda _line: None,
    inline: Task | None = None,
    budget: Mapping[str, float] | None = None,
    created: Callable[[str], None] = lambda _run_id: None,
) -> tuple[str, dict[str, Any] | None]:
    """Create the run of ``task_id`` (``inline`` and ``budget`` as
    :meth:`Spine.hydrate`) and submit it; its id and (with ``wait``) its outcome once
    it stops. ``created`` is told the run's id before the run is submitted."""
    client = await connect(ref.address, ref.namespace)
    run_id = spine.hydrate(task_id, engine=ref.to_dict(), inline=inline, budget=budget)
    created(run_id)
    try:
        handle = await submit(client, ref, run_id, recovering=False)
    except TemporalUnavailable as exc:
        raise TemporalUnavailable(
            f"{exc.message}; run {run_id} was created: `lifeos spine resume {run_id}` "
            "submits it once Temporal is back"
        ) from None
    _submitted(say, ref, run_id)
    if not wait:
        return run_id, None
    say("waiting for the run to stop (its phases run on `lifeos worker`s of the task queue)")
    return run_id, await wait_for_stop(handle, ref.address)


async def resume_run(
    spine: Spine,
    run: Mapping[str, Any],
    ref: EngineRef,
    *,
    say: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Wait for the run's workflow while it runs; else reopen the run (the checks a
    local resume makes) and start a new workflow for it, then wait."""
    client = await connect(ref.address, ref.namespace)
    run_id = str(run["run_id"])
    handle = await running(client, ref, run_id)
    if handle is None:
        spine.reopen(run_id)
        handle = await submit(client, ref, run_id, recovering=True)
        _submitted(say, ref, run_id)
    else:
        say(f"run {run_id}: its workflow {handle.id} runs; waiting for it to stop")
    return await wait_for_stop(handle, ref.address)


async def decide_run(
    run: Mapping[str, Any],
    ref: EngineRef,
    point: str,
    approve: bool,
    note: str,
    *,
    say: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Send a decision on the run's pause at ``point`` and wait until the run stops
    again (or the decision is refused). The decision is a signal to the run's workflow;
    when that workflow is gone (terminated, or lost with the server's state), a new one
    starts with the signal: it finds the run paused and takes the decision."""
    from temporalio.common import WorkflowIDConflictPolicy

    client = await connect(ref.address, ref.namespace)
    run_id = str(run["run_id"])
    handle = await running(client, ref, run_id)
    taken = await decisions_taken(handle, ref.address) if handle is not None else 0
    signal = contract.SIGNAL_APPROVE if approve else contract.SIGNAL_REJECT
    handle = await _rpc(
        ref.address,
        client.start_workflow(
            contract.WORKFLOW,
            {"run_id": run_id, "recovering": False},
            id=contract.workflow_id(run_id),
            task_queue=ref.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=signal,
            start_signal_args=[{"point": point, "note": note}],
        ),
    )
    say(f"run {run_id}: {'approval' if approve else 'rejection'} sent to {handle.id}")
    return await wait_for_stop(handle, ref.address, after_decisions=taken + 1)
