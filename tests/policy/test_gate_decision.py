"""The decision record's ``--json`` text is the straightforward encoder's, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.canonical import pretty_json
from lifeos.policy.gate import (
    Change,
    Finding,
    GateDecision,
    PathSafetyRule,
    RuleContext,
    SizeLimitRule,
    evaluate,
    judge,
    read_change,
)
from lifeos.policy.model import load_policy

A, B, Z = "a" * 40, "b" * 40, "0" * 40
# Paths as parse_raw_diff gives them: bytes that are not UTF-8 as lone surrogates.
_TEXT = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=9
)
_PATH = st.one_of(
    st.sampled_from(["src/a.py", "docs/x.md", "config/c", 'src/q"}{,\n.py', "dócs/ü.md"]),
    st.builds(str.__add__, _TEXT, st.sampled_from(["", "\udcff", "\udc80x"])),
)


@st.composite
def entries(draw: st.DrawFn) -> Change:
    status = draw(st.sampled_from(["A", "M", "D", "T", "R", "C"]))
    old, new = draw(st.sampled_from([("000000", "100644"), ("100644", "120000"), ("1", "2")]))
    if status in ("R", "C"):
        return Change(status, old, new, A, B, draw(_PATH), draw(_PATH), 90)
    return Change(status, old, new, A, B, draw(_PATH))


@given(st.lists(entries(), max_size=12), st.sampled_from(["seed-v2", "code"]), st.booleans())
@settings(max_examples=300, deadline=None)
def test_to_json_is_pretty_json_of_to_dict(changes: list[Change], profile: str, head: bool) -> None:
    policy = load_policy({"profile": profile})
    reasons = evaluate(changes, RuleContext(policy))
    decision = GateDecision(
        decision_id="d",
        policy_hash=policy.hash,
        policy_name=policy.name,
        input_digest="i",
        result="BLOCK" if reasons else "PASS",
        reasons=tuple(reasons),
        base=A,
        head=B if head else None,
        tree=Z,
        changes=tuple(changes),
        timestamp="2026-01-01T00:00:00.000000Z",
    )
    text = decision.to_json()
    assert text == pretty_json(decision.to_dict())
    assert text == json.dumps(decision.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)


def test_meanwhile_runs_once_while_git_reads_blob_sizes(git_repo: Path) -> None:
    (git_repo / "src").mkdir()
    (git_repo / "src" / "a.py").write_text("a\n")
    change = read_change(git_repo)
    events: list[str] = []

    class Rule(SizeLimitRule):
        def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
            events.append(f"sizes known: {bool(ctx.sizes)}")
            return super().quiet_for_all(changes, ctx)

    class Early(PathSafetyRule):
        def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
            events.append("early rules")
            return True

    code = load_policy({"profile": "code"})
    decision = judge(
        git_repo,
        change,
        code,
        rules=(Rule(), Early()),
        meanwhile=lambda: events.append("meanwhile"),
    )
    assert decision.passed
    assert events == ["early rules", "meanwhile", "sizes known: True"]
    events.clear()  # nothing to read under seed-v2: after the rules
    judge(
        git_repo, change, load_policy({"profile": "seed-v2"}), meanwhile=lambda: events.append("x")
    )
    assert events == ["x"]


def test_meanwhile_is_not_called_when_a_rule_fails(git_repo: Path) -> None:
    (git_repo / "a.py").write_text("a\n")
    called: list[bool] = []

    class Broken(PathSafetyRule):
        def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
            return False

        def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
            raise RuntimeError("broken rule")

    with pytest.raises(RuntimeError, match="broken rule"):
        judge(
            git_repo,
            read_change(git_repo),
            load_policy({"profile": "code"}),
            rules=(Broken(), SizeLimitRule()),
            meanwhile=lambda: called.append(True),
        )
    assert not called
