"""One test class per gate rule, each with paired pass and block cases."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.errors import ReasonCode
from lifeos.policy.gate import (
    DEFAULT_RULES,
    AddOnlyRule,
    AllowlistRule,
    BlockedOperationRule,
    Change,
    DenylistRule,
    ExtensionRule,
    PathSafetyRule,
    ProtectedPathRule,
    Rule,
    RuleContext,
    SizeLimitRule,
    SubmoduleRule,
    SymlinkRule,
    TypeChangeRule,
    evaluate,
    parse_raw_diff,
    symlink_target_problem,
)
from lifeos.policy.model import Policy, load_policy

A, B = "a" * 40, "b" * 40
Z = "0" * 40
SEED = load_policy({"profile": "seed-v2"})
CODE = load_policy({"profile": "code"})


def add(path: str, mode: str = "100644", sha: str = B) -> Change:
    return Change("A", "000000", mode, Z, sha, path)


def modify(path: str) -> Change:
    return Change("M", "100644", "100644", A, B, path)


def delete(path: str) -> Change:
    return Change("D", "100644", "000000", A, Z, path)


def rename(src: str, dst: str) -> Change:
    return Change("R", "100644", "100644", A, A, dst, src, 100)


def copy(src: str, dst: str) -> Change:
    return Change("C", "100644", "100644", A, A, dst, src, 100)


def codes(rule: Rule, change: Change, policy: Policy = CODE, **ctx: Any) -> list[str]:
    return [f.code.value for f in rule.check(change, RuleContext(policy, **ctx))]


class TestBlockedOperationRule:
    rule = BlockedOperationRule()

    def test_seed_blocks_delete_rename_copy(self) -> None:
        assert codes(self.rule, delete("docs/a.md"), SEED) == ["PH2_DELETE_BLOCKED"]
        assert (
            codes(self.rule, rename("docs/a.md", "docs/b.md"), SEED) == ["PH2_RENAME_BLOCKED"] * 2
        )
        found = self.rule.check(copy("docs/a.md", "docs/b.md"), RuleContext(SEED))
        assert {(f.code.value, f.path) for f in found} == {
            ("PH2_COPY_BLOCKED", "docs/a.md"),
            ("PH2_COPY_BLOCKED", "docs/b.md"),
        }

    def test_passes_adds_and_unblocked_operations(self) -> None:
        assert codes(self.rule, add("docs/a.md"), SEED) == []
        assert codes(self.rule, modify("docs/a.md"), SEED) == []
        assert codes(self.rule, delete("src/a.py"), CODE) == []


class TestTypeChangeRule:
    rule = TypeChangeRule()

    def test_blocks_type_change(self) -> None:
        assert codes(self.rule, Change("T", "100644", "120000", A, B, "src/x")) == [
            "TYPE_CHANGE_BLOCKED"
        ]
        assert codes(self.rule, Change("R", "100644", "120000", A, B, "src/y", "src/x")) == [
            "TYPE_CHANGE_BLOCKED"
        ]

    def test_passes_mode_bit_change(self) -> None:
        assert codes(self.rule, Change("M", "100644", "100755", A, A, "src/x")) == []
        assert codes(self.rule, add("src/x")) == []


class TestSubmoduleRule:
    rule = SubmoduleRule()

    def test_blocks_gitlink(self) -> None:
        assert codes(self.rule, add("src/vendor", "160000")) == ["SUBMODULE_BLOCKED"]
        assert codes(self.rule, Change("D", "160000", "000000", A, Z, "src/v")) == [
            "SUBMODULE_BLOCKED"
        ]

    def test_passes_files(self) -> None:
        assert codes(self.rule, add("src/vendor")) == []


class TestSymlinkRule:
    rule = SymlinkRule()
    links = load_policy({"profile": "code", "allow_symlinks": True})

    def test_blocks_by_default_and_escapes_when_allowed(self) -> None:
        assert codes(self.rule, add("src/l", "120000")) == ["SYMLINK_BLOCKED"]
        for target in [b"/etc/passwd", b"../../x", b"../.git/config", b"../config/a", b""]:
            got = codes(self.rule, add("src/l", "120000"), self.links, link_targets={B: target})
            assert got == ["SYMLINK_BLOCKED"], target

    def test_passes_inside_repository_when_allowed(self) -> None:
        assert codes(self.rule, add("src/l", "120000"), self.links, link_targets={B: b"a.py"}) == []
        assert codes(self.rule, add("src/l")) == []
        assert symlink_target_problem("src/a/l", b"../../docs/x.md") is None
        assert symlink_target_problem("src/l", b"../..") is not None


class TestSizeLimitRule:
    rule = SizeLimitRule()

    def test_blocks_over_limit(self) -> None:
        small = load_policy({"profile": "code", "max_file_bytes": 10})
        assert codes(self.rule, add("src/a"), small, sizes={B: 11}) == ["ENVELOPE_VIOLATION"]

    def test_passes_at_limit(self) -> None:
        small = load_policy({"profile": "code", "max_file_bytes": 10})
        assert codes(self.rule, add("src/a"), small, sizes={B: 10}) == []

    def test_blocks_a_size_git_did_not_report(self) -> None:
        """Fail closed: a blob whose size is unknown may be over the limit."""
        small = load_policy({"profile": "code", "max_file_bytes": 10})
        assert codes(self.rule, add("src/a"), small, sizes={}) == ["ENVELOPE_VIOLATION"]
        ctx = RuleContext(small, sizes={})
        assert not self.rule.quiet_for_all([add("src/a")], ctx)
        assert self.rule.quiet_for_all([add("src/a")], RuleContext(small, sizes={B: 3}))

    def test_max_files(self) -> None:
        two = load_policy({"profile": "code", "max_files": 2})
        ctx = RuleContext(two, sizes={B: 1})
        assert evaluate([add("src/a"), add("src/b")], ctx) == []
        found = evaluate([add("src/a"), add("src/b"), add("src/c")], ctx)
        assert [f.code for f in found] == [ReasonCode.ENVELOPE_VIOLATION]


class TestPathSafetyRule:
    rule = PathSafetyRule()

    def test_blocks_unsafe_paths_on_both_sides(self) -> None:
        assert codes(self.rule, add(".GIT/config")) == ["PATH_UNSAFE"]
        assert codes(self.rule, rename("../x", "src/x")) == ["PATH_UNSAFE"]

    def test_passes_safe_paths(self) -> None:
        assert codes(self.rule, rename("src/x", "src/y")) == []

    def test_is_terminal(self) -> None:
        found = evaluate([add("config/../.git/x")], RuleContext(CODE, sizes={B: 1}))
        assert [f.code.value for f in found] == ["PATH_UNSAFE"]


class TestProtectedPathRule:
    rule = ProtectedPathRule()
    policy = load_policy({"profile": "code", "protected": ["src/lifeos/policy/", "AGENTS.md"]})

    def test_blocks_protected(self) -> None:
        assert codes(self.rule, modify("src/lifeos/policy/gate.py"), self.policy) == [
            "PROTECTED_PATH"
        ]
        assert codes(self.rule, copy("agents.md", "src/x.md"), self.policy) == ["PROTECTED_PATH"]

    def test_passes_others(self) -> None:
        assert codes(self.rule, modify("src/lifeos/policyx.py"), self.policy) == []


class TestDenylistRule:
    rule = DenylistRule()

    def test_blocks_denylisted_on_both_paths(self) -> None:
        assert codes(self.rule, add("CONFIG/x")) == ["DENYLISTED_PATH"]
        assert codes(self.rule, rename("config/x", "src/x")) == ["DENYLISTED_PATH"]
        assert codes(self.rule, copy("scripts/x", "src/x")) == ["DENYLISTED_PATH"]
        assert codes(self.rule, modify("lifeos.yaml")) == ["DENYLISTED_PATH"]

    def test_passes_near_misses(self) -> None:
        assert codes(self.rule, add("configx/x")) == []
        assert codes(self.rule, add("src/config/x")) == []
        assert codes(self.rule, add("lifeos.yaml.bak")) == []

    def test_denylist_beats_allowlist(self) -> None:
        found = evaluate([add("docs/01_governance/x.md")], RuleContext(SEED))
        assert [f.code.value for f in found] == ["DENYLISTED_PATH"]


class TestAllowlistRule:
    rule = AllowlistRule()

    def test_blocks_outside(self) -> None:
        assert codes(self.rule, add("README.md")) == ["OUTSIDE_ALLOWLIST"]
        assert codes(self.rule, rename("README.md", "src/README.md")) == ["OUTSIDE_ALLOWLIST"]

    def test_passes_inside_and_copy_source(self) -> None:
        assert codes(self.rule, add("src/a.py")) == []
        assert codes(self.rule, copy("README.md", "docs/README.md")) == []


class TestExtensionRule:
    rule = ExtensionRule()

    def test_blocks_wrong_extension(self) -> None:
        assert codes(self.rule, add("docs/a.txt"), SEED) == ["EXTENSION_NOT_ALLOWED"]
        assert codes(self.rule, rename("docs/a.md", "docs/a.sh"), SEED) == ["EXTENSION_NOT_ALLOWED"]

    def test_passes_listed_extension_and_deletes(self) -> None:
        assert codes(self.rule, add("docs/a.MD"), SEED) == []
        assert codes(self.rule, delete("docs/a.txt"), SEED) == []
        assert codes(self.rule, add("src/a.txt"), CODE) == []


class TestAddOnlyRule:
    rule = AddOnlyRule()
    root = "artifacts/review_packets/"

    def test_blocks_changes_to_existing_packets(self) -> None:
        for change in [modify(self.root + "r.md"), delete(self.root + "r.md")]:
            assert codes(self.rule, change, SEED) == ["ADD_ONLY_VIOLATION"]
        assert codes(self.rule, rename(self.root + "r.md", "docs/r.md"), SEED) == [
            "ADD_ONLY_VIOLATION"
        ]
        assert codes(self.rule, add(self.root + "r.json"), SEED) == ["EXTENSION_NOT_ALLOWED"]

    def test_passes_new_packets(self) -> None:
        assert codes(self.rule, add(self.root + "r2.md"), SEED) == []
        assert codes(self.rule, modify("docs/x.md"), SEED) == []


class TestEvaluateOrder:
    def test_every_reason_is_reported(self) -> None:
        found = evaluate([rename("config/a", "docs/a.md"), add("docs/x.txt")], RuleContext(SEED))
        assert {f.code.value for f in found} == {
            "PH2_RENAME_BLOCKED",
            "DENYLISTED_PATH",
            "EXTENSION_NOT_ALLOWED",
        }


def test_parse_raw_diff() -> None:
    data = (
        b":100644 100644 " + A.encode() + b" " + B.encode() + b" M\0src/a\nb.py\0"
        b":100644 100644 " + A.encode() + b" " + A.encode() + b" R100\0old\0new\0"
        b":000000 100644 " + Z.encode() + b" " + B.encode() + b" A\0-\xff.py\0"
    )
    changes = parse_raw_diff(data)
    assert [(c.status, c.path, c.old_path) for c in changes] == [
        ("M", "src/a\nb.py", None),
        ("R", "new", "old"),
        ("A", "-\udcff.py", None),
    ]
    assert changes[1].score == 100
    assert changes[2].to_dict()["path"] == "-\\xff.py"


# --- evaluate's shortcuts give exactly the findings of the plain rule-by-rule pass ----

_MODES = ["000000", "100644", "100755", "120000", "160000", "040000"]
_PATHS = [
    "src/a.py",
    "docs/x.md",
    "docs/x.txt",
    "config/c.yaml",
    "artifacts/review_packets/p.md",
    "lifeos.yaml",
    ".git/hooks/x",
    "src/../x",
    "scripts/run.sh",
    "SRC/B.py",
    "src",
    "srcx/a.py",
    "LIFEOS.YAML",
    "Config/x",
    "docs/01_governance/x.md",
    "src/ünï.py",
    "src/new\nline.py",
    "lifeos.pub",
]
WIDE = load_policy(
    {
        "profile": "seed-v2",
        "allow_symlinks": True,
        "max_file_bytes": 10,
        "protected": ["lifeos.yaml", "docs/x.md"],
        "allowlist": ["src/", "docs/", "artifacts/review_packets/", "lifeos.yaml"],
    }
)


@st.composite
def changes(draw: st.DrawFn) -> Change:
    status = draw(st.sampled_from(["A", "M", "D", "R", "C", "T"]))
    old = draw(st.sampled_from(_MODES))
    new = draw(st.sampled_from(_MODES))
    sha = draw(st.sampled_from([A, B]))
    path = draw(st.sampled_from(_PATHS))
    if status in ("R", "C"):
        return Change(status, old, new, A, sha, path, draw(st.sampled_from(_PATHS)), 90)
    return Change(status, old, new, A, sha, path)


def _plain(items: list[Change], ctx: RuleContext) -> list[Any]:
    """The rules applied one by one, no shortcut: what evaluate must equal."""
    out: list[Any] = []
    for change in items:
        for rule in DEFAULT_RULES:
            if not rule.active(ctx.policy):
                continue
            found = rule.check(change, ctx)
            out.extend(found)
            if found and rule.terminal:
                break
    return out


@given(
    st.lists(changes(), max_size=12),
    st.sampled_from([SEED, CODE, WIDE]),
    st.dictionaries(st.sampled_from([A, B]), st.integers(0, 20)),
)
@settings(max_examples=400, deadline=None)
def test_evaluate_matches_plain_rule_order(
    items: list[Change], policy: Policy, sizes: dict[str, int]
) -> None:
    targets = {A: b"../outside", B: b"src/inside"}
    expected = _plain(items, RuleContext(policy, sizes, targets))
    assert evaluate(items, RuleContext(policy, sizes, targets)) == expected
    # Blob information read while the other rules run, merged back in rule order.
    assert evaluate(items, RuleContext(policy), blobs=lambda: (sizes, targets)) == expected


@given(changes(), st.sampled_from([SEED, CODE, WIDE]))
@settings(max_examples=300, deadline=None)
def test_a_quiet_rule_finds_nothing(change: Change, policy: Policy) -> None:
    ctx = RuleContext(policy, {A: 99, B: 99}, {A: b"/abs", B: b"../x"})
    for rule in DEFAULT_RULES:
        if rule.quiet_for(policy, change.status, change.old_mode, change.new_mode):
            assert rule.check(change, ctx) == []


@given(
    st.lists(st.sampled_from(["src/a.py", "src/b/c.py", "tests/t.py", "docs/d.md"]), max_size=30),
    st.lists(changes(), max_size=2),
    st.sampled_from([SEED, CODE, WIDE]),
    st.integers(0, 30),
    st.dictionaries(st.sampled_from([A, B]), st.integers(0, 20)),
)
@settings(max_examples=300, deadline=None)
def test_rules_quiet_for_a_whole_diff_change_nothing(
    plain_paths: list[str], odd: list[Change], policy: Policy, at: int, sizes: dict[str, int]
) -> None:
    """A large diff of ordinary paths lets rules skip their per-entry check; an odd
    entry anywhere in it must still be found, in the same order."""
    items = [add(p) for p in plain_paths]
    items[at:at] = odd
    targets = {A: b"../outside", B: b"src/inside"}
    expected = _plain(items, RuleContext(policy, sizes, targets))
    assert evaluate(items, RuleContext(policy, sizes, targets)) == expected
    assert evaluate(items, RuleContext(policy), blobs=lambda: (sizes, targets)) == expected
