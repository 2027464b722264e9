"""What every backend decides the same way, with no SQL: fields, final statuses, leases.

The backends import these so a rule changes in one place; nothing here touches a database.
"""

from __future__ import annotations

import datetime as dt
import math

from lifeos.clock import Clock, iso
from lifeos.store.base import StoreError

__all__ = [
    "APPLICATION",
    "FINAL_FAILED",
    "FINAL_OK",
    "GENESIS_HASH",
    "RUN_UPDATABLE",
    "TASK_UPDATABLE",
    "lease_window",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first ledger entry."""
APPLICATION = "lifeos"
"""What ``lifeos_meta.application`` holds in a LifeOS database."""

RUN_UPDATABLE = frozenset(
    {
        "status",
        "description",
        "priority",
        "max_cost_usd",
        "spent_cost_usd",
        "max_loops",
        "loop_count",
        "message_count",
        "config",
        "failure_reason",
    }
)
"""The run fields ``update_run`` may change."""
TASK_UPDATABLE = frozenset(
    {
        "status",
        "description",
        "repair_attempt",
        "consumed_tokens",
        "result_artifact_ids",
        "required_artifact_ids",
        "locked_by",
    }
)
"""The task fields ``update_task`` may change."""
FINAL_OK = frozenset({"completed", "landed", "approved"})
"""Run statuses that set ``completed_at``."""
FINAL_FAILED = frozenset({"failed", "failed_terminal", "blocked", "escalated", "budget_exceeded"})
"""Run statuses that set ``failed_at``."""


def lease_window(clock: Clock, ttl_s: float) -> tuple[str, str]:
    """One reading of ``clock``: ``(now, now + ttl_s)`` as ISO-8601 UTC text.

    The texts have a fixed width, so comparing them as strings compares the instants.

    Raises:
        StoreError: ``ttl_s`` is not a positive, finite number of seconds.
    """
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not math.isfinite(ttl_s):
        raise StoreError(f"a lease needs a finite ttl_s in seconds, not {ttl_s!r}")
    if ttl_s <= 0:
        raise StoreError(f"a lease needs a positive ttl_s, not {ttl_s!r}")
    now = clock.now()
    try:
        until = now + dt.timedelta(seconds=ttl_s)
    except OverflowError:
        raise StoreError(f"a lease of {ttl_s!r} seconds ends after the year 9999") from None
    return iso(now), iso(until)
