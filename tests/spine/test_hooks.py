"""The spine's pre-run hooks, each rule alone, and their order."""

from __future__ import annotations

import pytest

from lifeos.errors import ReasonCode
from lifeos.policy.paths import Root
from lifeos.spine.hooks import (
    budget_covers_minimum,
    clean_tree,
    context_in_baseline,
    pre_run,
    protected_untouched,
)
from lifeos.spine.model import SpineState, SpineStop

PROTECTED = (Root.parse("docs/governance/"), Root.parse("SECURITY.md"))


@pytest.mark.parametrize(
    ("dirty", "hit"),
    [
        ([], None),
        (["src/app.py"], None),
        (["docs/governance/rules.md"], "docs/governance/rules.md"),
        (["SECURITY.md"], "SECURITY.md"),
        (["lifeos.yaml"], "lifeos.yaml"),  # a governance file whatever the policy says
        (["docs/governance-notes.md"], None),  # not under the folder
    ],
)
def test_protected_paths(dirty: list[str], hit: str | None) -> None:
    failure = protected_untouched(dirty, PROTECTED)
    if hit is None:
        assert failure is None
    else:
        assert failure is not None and failure.reason is ReasonCode.PROTECTED_PATH
        assert failure.state is SpineState.BLOCKED and hit in failure.message


def test_clean_tree_lists_a_few_changes() -> None:
    assert clean_tree([]) is None
    failure = clean_tree([f"f{i}" for i in range(8)])
    assert failure is not None and failure.reason is ReasonCode.DIRTY_WORKTREE
    assert "f0, f1, f2, f3, f4 (+3 more)" in failure.message


def test_context_must_be_in_the_baseline() -> None:
    present = {"src", "README.md", "."}.__contains__
    assert context_in_baseline(["src/", "README.md", "./"], present) is None
    failure = context_in_baseline(["src/", "docs/missing.md"], present)
    assert failure is not None and failure.reason is ReasonCode.ENVELOPE_VIOLATION
    assert "docs/missing.md" in failure.message and "src/" not in failure.message


@pytest.mark.parametrize(
    ("cap", "reviewers", "refused"),
    [(None, 3, False), (5, 3, False), (4, 3, True), (3, 1, False), (0, 1, True)],
)
def test_the_budget_must_cover_the_fewest_calls(
    cap: int | None, reviewers: int, refused: bool
) -> None:
    failure = budget_covers_minimum(cap, reviewers)
    assert (failure is not None) is refused
    if failure is not None:
        assert failure.state is SpineState.BUDGET_EXCEEDED
        assert failure.reason is ReasonCode.BUDGET_EXCEEDED


def test_pre_run_applies_the_hooks_in_order() -> None:
    def run(dirty: list[str], context: list[str], cap: int | None) -> list[str]:
        try:
            pre_run(
                dirty=dirty,
                protected=PROTECTED,
                context=context,
                in_baseline={"src"}.__contains__,
                max_calls=cap,
                reviewers=1,
            )
        except SpineStop as stop:
            return stop.reasons
        return []

    # protected before dirty, dirty before envelope, context before budget
    assert run(["SECURITY.md", "x"], ["nope"], 0) == ["PROTECTED_PATH"]
    assert run(["x"], ["nope"], 0) == ["DIRTY_WORKTREE"]
    assert run([], ["nope"], 0) == ["ENVELOPE_VIOLATION"]
    assert run([], ["src/"], 0) == ["BUDGET_EXCEEDED"]
    assert run([], ["src/"], None) == []
