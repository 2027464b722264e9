"""The spine's pre-run hooks: small rules, each with its reason code.

Before any agent runs, a run must start from a state LifeOS can vouch for: the policy
present (its hash recorded by the caller), no governance-protected path changed in the
user's checkout, a clean working tree, and a run that fits its envelope — the task's
context is in the baseline it builds on, and the budget can pay for the fewest agent
calls a run makes. Each rule is a pure function of what it is given, so it is tested
alone; :func:`pre_run` applies them in order and raises the first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lifeos.errors import ReasonCode
from lifeos.policy.paths import Root, RootSet, path_key
from lifeos.spine.model import SpineState, SpineStop

__all__ = [
    "GOVERNANCE_FILES",
    "HookFailure",
    "budget_covers_minimum",
    "clean_tree",
    "context_in_baseline",
    "pre_run",
    "protected_untouched",
]

GOVERNANCE_FILES = ("lifeos.yaml", "lifeos.pub")
"""Files that govern every run: protected whatever the policy's ``protected`` says."""


@dataclass(frozen=True)
class HookFailure:
    """Why a pre-run hook refuses the run."""

    state: SpineState
    reason: ReasonCode
    message: str

    def stop(self) -> SpineStop:
        """The stop the spine raises for it."""
        return SpineStop(self.state, [self.reason.value], self.message)


def _listed(paths: list[str], limit: int = 5) -> str:
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def protected_untouched(dirty: Iterable[str], protected: Iterable[Root]) -> HookFailure | None:
    """A changed path in the checkout under a protected root (or a governance file)."""
    roots = RootSet([*protected, *(Root.parse(f) for f in GOVERNANCE_FILES)])
    hit = sorted(p for p in dirty if roots.first(path_key(p)) is not None)
    if not hit:
        return None
    return HookFailure(
        SpineState.BLOCKED,
        ReasonCode.PROTECTED_PATH,
        f"governance-protected paths are changed in the checkout: {_listed(hit)}",
    )


def clean_tree(dirty: Iterable[str]) -> HookFailure | None:
    """Any uncommitted change in the checkout (LifeOS-owned paths aside)."""
    listed = sorted(dirty)
    if not listed:
        return None
    return HookFailure(
        SpineState.BLOCKED,
        ReasonCode.DIRTY_WORKTREE,
        f"the working tree has uncommitted changes: {_listed(listed)}",
    )


def context_in_baseline(
    context: Iterable[str], in_baseline: Callable[[str], bool]
) -> HookFailure | None:
    """A context path the task names that the baseline commit does not have: the agents
    would be told to read what is not there."""
    missing = [p for p in context if not in_baseline(p.rstrip("/") or ".")]
    if not missing:
        return None
    return HookFailure(
        SpineState.BLOCKED,
        ReasonCode.ENVELOPE_VIOLATION,
        f"the task's context is not in the baseline commit: {_listed(missing)}",
    )


def budget_covers_minimum(
    max_calls: int | None, reviewers: int, builder_calls: int = 1
) -> HookFailure | None:
    """A per-run cap on agent calls below the fewest a run makes (one design call, the
    build, one call per reviewer lens): the run would stop half-way, so it does not
    start. No call is made."""
    minimum = 1 + builder_calls + reviewers
    if max_calls is None or max_calls >= minimum:
        return None
    return HookFailure(
        SpineState.BUDGET_EXCEEDED,
        ReasonCode.BUDGET_EXCEEDED,
        f"budget.calls is {max_calls} but a run makes at least {minimum} agent calls "
        f"(design, build, {reviewers} review lens(es)); raise it and resume",
    )


def pre_run(
    *,
    dirty: Iterable[str],
    protected: Iterable[Root],
    context: Iterable[str],
    in_baseline: Callable[[str], bool],
    max_calls: int | None,
    reviewers: int,
) -> dict[str, Any]:
    """Apply the hooks in order; the envelope as checked, for the run's record.

    Raises:
        SpineStop: the first hook that refuses the run.
    """
    dirty = list(dirty)
    context = list(context)
    for failure in (
        protected_untouched(dirty, protected),
        clean_tree(dirty),
        context_in_baseline(context, in_baseline),
        budget_covers_minimum(max_calls, reviewers),
    ):
        if failure is not None:
            raise failure.stop()
    return {"context": context, "max_calls": max_calls, "reviewers": reviewers}
