"""The workers' activities: a spine phase, and a human decision, for one run.

Both go through the same :class:`~lifeos.spine.Spine` methods the local commands use:
``step`` runs the run's next phase (``Spine.step``), ``decide`` records a decision
(``Spine.record_decision``). A fresh spine is made for every activity (``open_spine``,
injected by the worker), so each sees the run's record as the store has it. While a
phase runs, a thread heartbeats; a later attempt at a phase (its worker died, or went
silent) runs it as a recovery, which replays what earlier attempts journaled.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifeos.errors import InputError, LifeOSError
from lifeos.temporal import contract

if TYPE_CHECKING:
    from lifeos.spine import Spine
    from lifeos.store import Store

__all__ = ["SpineActivities", "SpineOpener", "StoreOpener", "heartbeats"]

SpineOpener = Callable[[Callable[[str], None]], AbstractContextManager["Spine"]]
"""Opens the repository's spine (store, settings, agents) with a progress callback and
closes its store when done."""
StoreOpener = Callable[[], AbstractContextManager["Store"]]
"""Opens a store alone (the heartbeat thread's, to renew a lease)."""


Renewal = Callable[[], AbstractContextManager[Callable[[], bool]]]
"""Opens (in the heartbeat thread) what renews a lease: True while it is still held."""


@contextmanager
def heartbeats(
    every_s: float = contract.HEARTBEAT_EVERY_S,
    renewal: Renewal | None = None,
    cancelled: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """Heartbeat the current activity from a thread every ``every_s`` seconds while the
    block runs (the block itself may be busy for minutes in an agent call); with
    ``renewal``, renew a lease with each heartbeat until it is lost or the activity is
    cancelled; ``cancelled`` is called once when the activity is."""
    stop, ready = threading.Event(), threading.Event()
    failed: list[Exception] = []
    context = contextvars.copy_context()  # the activity's context, for activity.heartbeat

    def beat() -> None:
        with ExitStack() as stack:
            try:
                renew = stack.enter_context(renewal()) if renewal is not None else None
            except Exception as exc:  # the lease cannot be renewed: no phase either
                failed.append(exc)
                return
            finally:
                ready.set()
            while not stop.wait(every_s):
                try:
                    activity.heartbeat()
                    if activity.is_cancelled():
                        cancelled()
                        return
                    if renew is not None and not renew():
                        renew = None
                except Exception:  # the worker is shutting down: nothing left to tell
                    return

    thread = threading.Thread(
        target=context.run, args=(beat,), name="lifeos-heartbeat", daemon=True
    )
    thread.start()
    ready.wait()
    if failed:
        thread.join()
        raise failed[0]
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _refusal(exc: InputError) -> ApplicationError:
    """A refusal (an unknown run, a broken lifeos.yaml) as a failure Temporal does not
    retry: bad input stays bad. Other errors are retried."""
    return ApplicationError(
        exc.message, {"reason": exc.reason.value}, type="SPINE_INPUT", non_retryable=True
    )


class SpineActivities:
    """The activities of one worker, over the spines ``open_spine`` makes."""

    def __init__(
        self,
        open_spine: SpineOpener,
        *,
        open_store: StoreOpener | None = None,
        say: Callable[[str], None] = lambda _line: None,
        heartbeat_every_s: float = contract.HEARTBEAT_EVERY_S,
    ) -> None:
        self.open_spine = open_spine
        self.open_store = open_store
        self.say = say
        self.heartbeat_every_s = heartbeat_every_s

    @activity.defn(name=contract.STEP_ACTIVITY)
    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run the run's next phase; ``{"outcome", "approval", "agent_calls",
        "replayed_calls"}`` — the outcome once the run stops (None while it goes on),
        the approval point when it stopped to wait for a person."""
        from lifeos.spine.controller import APPROVAL_POINTS
        from lifeos.spine.model import SpineState

        run_id = str(request["run_id"])
        info = activity.info()
        attempt = info.attempt
        recovering = bool(request.get("recovering")) or attempt > 1
        owner = f"temporal:{info.workflow_id}/{info.activity_id}#{attempt}"

        def progress(line: str) -> None:
            self.say(f"run {run_id}: {line}")

        if recovering:
            progress(f"recovering (attempt {attempt}): what was journaled is replayed")
        try:
            with self.open_spine(progress) as spine, self._lease(spine, run_id, owner):
                outcome = spine.step(run_id, recovering=recovering)
                made, replayed = spine.calls
                approval = None
                if outcome is not None and outcome.state is SpineState.PAUSED:
                    run = spine.store.get_run(run_id)
                    point = run["config"].get("waiting_for") if run is not None else None
                    approval = point if point in APPROVAL_POINTS else None
        except InputError as exc:
            raise _refusal(exc) from None
        except BaseException as exc:  # cancelled (Temporal gave the phase away), or a bug
            why = f"{type(exc).__name__} {exc.one_line() if isinstance(exc, LifeOSError) else ''}"
            progress(f"attempt {attempt} ({owner}) ended without a result: {why.rstrip()}")
            raise
        if outcome is not None:
            progress(f"{outcome.state.value} {' '.join(outcome.reasons)}".rstrip())
        return {
            "outcome": outcome.to_dict() if outcome is not None else None,
            "approval": approval,
            "agent_calls": made,
            "replayed_calls": replayed,
        }

    @contextmanager
    def _lease(self, spine: Spine, run_id: str, owner: str) -> Iterator[None]:
        """Hold the run's lease in the store while the phase runs, renewed with each
        heartbeat (from a store of the heartbeat thread's own): one phase of a run at a
        time, whoever else drives it. A lease still held by another attempt (a worker
        gone silent but not yet stopped) fails this attempt; Temporal tries again.

        The phase's store is fenced by the lease: once it has run out or passed to
        another attempt, the phase's next write fails with LEASE_LOST and writes
        nothing, so an attempt that stalled and woke up cannot overwrite the run."""
        store = spine.store
        if store.get_run(run_id) is None:  # the step says what is wrong with it
            with heartbeats(self.heartbeat_every_s):
                yield
            return
        if not store.claim_run(run_id, owner, contract.LEASE_TTL_S):
            held = store.get_claim(run_id)
            raise ApplicationError(
                f"run {run_id} is held by {held['owner'] if held else 'another driver'}",
                type="RUN_CLAIMED",
            )

        @contextmanager
        def own_store() -> Iterator[Store]:
            if self.open_store is not None:
                with self.open_store() as opened:
                    yield opened
            else:
                with self.open_spine(lambda _line: None) as own:
                    yield own.store

        @contextmanager
        def renewal() -> Iterator[Callable[[], bool]]:
            with own_store() as renewing:

                def renew() -> bool:
                    held = renewing.renew_claim(run_id, owner, contract.LEASE_TTL_S)
                    if not held:
                        self.say(f"run {run_id}: lease lost by {owner}")
                    return held

                yield renew

        def cancelled() -> None:
            self.say(f"run {run_id}: {owner} cancelled: the phase is no longer this attempt's")

        try:
            with (
                heartbeats(self.heartbeat_every_s, renewal=renewal, cancelled=cancelled),
                store.fenced(run_id, owner),
            ):
                yield
        finally:
            store.release_claim(run_id, owner)

    @activity.defn(name=contract.DECIDE_ACTIVITY)
    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        """Record a person's decision on the run's pause at ``point``; ``{"refused":
        None}``, or the refusal (``reason``, ``message``) when the decision cannot be
        taken as things stand (the run stays paused)."""
        from lifeos.spine.model import SpineState

        run_id, point = str(request["run_id"]), str(request["point"])
        approved, note = bool(request["approved"]), str(request.get("note") or "")
        try:
            with self.open_spine(lambda line: self.say(f"run {run_id}: {line}")) as spine:
                run = spine.store.get_run(run_id)
                taken = (run["config"].get("decisions") or {}).get(point) if run else None
                if run is not None and run["status"] != SpineState.PAUSED and taken:
                    # an earlier attempt recorded it and died before it could say so
                    return {"refused": None}
                spine.record_decision(run_id, approved, note)
        except InputError as exc:
            return {"refused": {"reason": exc.reason.value, "message": exc.message}}
        self.say(f"run {run_id}: {'approved' if approved else 'rejected'} at {point}")
        return {"refused": None}
