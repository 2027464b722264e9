"""Path safety and component-wise root matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.policy.gate import Change, RuleContext, evaluate
from lifeos.policy.model import load_policy
from lifeos.policy.paths import (
    _PLAIN,
    IGNORABLE,
    Root,
    RootSet,
    all_plain,
    normalize_component,
    path_key,
    under_any,
    unsafe_reason,
)

SHA = "1" * 40


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "C:/x",
        "a\\b",
        "../x",
        "a/../b",
        "a/./b",
        "a//b",
        "a/",
        ".git/config",
        ".GIT/config",
        "x/.Git",
        ".git\u200c/x",
        "\ufeff.git/x",
        ".g\u202ait/x",
        ".git\u206a",
        "GIT~1/x",
        "git~12/x",
        "ab~1.txt",
        ".git.",
        ".git ",
        "x.",
        "x ",
        "a\nb",
        "a\x00b",
        "a\x1fb",
        "a\x7fb",
        "a\x9bb",
        "a\udcffb",
        "a:b",
    ],
)
def test_unsafe(path: str) -> None:
    assert unsafe_reason(path) is not None


@pytest.mark.parametrize(
    "path",
    ["a", "src/x.py", "docs/.gitignore", "x/.github/y", "a.b.c", "--help", "-rf", "gitx/y", "é"],
)
def test_safe(path: str) -> None:
    assert unsafe_reason(path) is None


def test_normalize_strips_ignorables_nfc_and_casefold() -> None:
    assert normalize_component("Do\u200ccs") == "docs"
    assert normalize_component("Cafe\u0301") == normalize_component("CAFÉ")
    assert normalize_component("STRASSE") == normalize_component("straße")


def test_root_matching_is_component_wise() -> None:
    docs = Root.parse("docs/")
    assert docs.contains(path_key("docs/a.md"))
    assert docs.contains(path_key("DOCS/a.md"))
    assert docs.contains(path_key("do\ufeffcs/a.md"))
    assert not docs.contains(path_key("docsx/a.md"))
    assert not docs.contains(path_key("docs"))
    assert not docs.contains(path_key("x/docs/a.md"))
    nested = Root.parse("docs/01_governance/")
    assert nested.contains(path_key("Docs/01_Governance/x/y.md"))
    assert not nested.contains(path_key("docs/01_governance2/y.md"))
    file_root = Root.parse("lifeos.yaml")
    assert file_root.contains(path_key("LifeOS.yaml"))
    assert not file_root.contains(path_key("lifeos.yaml/x"))


def test_root_must_be_safe() -> None:
    with pytest.raises(ValueError):
        Root.parse("../x/")


SEED = load_policy({"profile": "seed-v2"})
CODE = load_policy({"profile": "code"})
POLICIES = [SEED, CODE]
IGNORABLE_CHARS = [chr(c) for c in sorted(IGNORABLE)]


@st.composite
def denylisted_variant(draw: st.DrawFn) -> tuple[int, str]:
    """A policy and a path normalising into one of its denylisted roots: case,
    ignorable code points anywhere, any tail."""
    which = draw(st.integers(0, 1))
    root = draw(st.sampled_from(POLICIES[which].denylist))
    out = []
    for ch in root.text.rstrip("/"):
        if ch.isalpha() and draw(st.booleans()):
            ch = ch.upper()
        out.append(ch)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(IGNORABLE_CHARS)))
    if draw(st.booleans()):
        out.insert(0, draw(st.sampled_from(IGNORABLE_CHARS)))
    path = "".join(out)
    if root.is_dir:
        tail = draw(
            st.lists(
                st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1),
                min_size=1,
                max_size=3,
            )
        )
        path = "/".join([path, *tail])
    return which, path


def _blocked(path: str, policy_index: int, status: str = "A") -> bool:
    change = Change(status, "100644", "100644", SHA, SHA, path)
    return bool(evaluate([change], RuleContext(POLICIES[policy_index])))


@given(denylisted_variant(), st.sampled_from(["A", "M", "D"]))
@settings(max_examples=400, deadline=None)
def test_no_denylisted_variant_ever_passes(variant: tuple[int, str], status: str) -> None:
    which, path = variant
    assert any(r.contains(path_key(path)) for r in POLICIES[which].denylist) or unsafe_reason(path)
    assert _blocked(path, which, status)


@given(
    st.sampled_from([0, 1]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
)
@settings(max_examples=400, deadline=None)
def test_any_path_normalising_into_denylist_is_blocked(which: int, path: str) -> None:
    key = path_key(path)
    if any(r.contains(key) for r in POLICIES[which].denylist):
        assert _blocked(path, which)
    if unsafe_reason(path) is not None:
        assert _blocked(path, which)


# --- RootSet: the cached matcher answers exactly as under_any does --------------------

_COMPONENTS = st.sampled_from(["a", "b", "docs", "src", "x.md", "A", "lifeos.yaml"])
_KEYS = st.lists(_COMPONENTS, min_size=1, max_size=4).map(lambda parts: path_key("/".join(parts)))
_ROOTS = st.lists(
    st.tuples(st.lists(_COMPONENTS, min_size=1, max_size=3), st.booleans()).map(
        lambda spec: Root.parse("/".join(spec[0]) + ("/" if spec[1] else ""))
    ),
    max_size=6,
)


@given(_ROOTS, st.lists(_KEYS, max_size=30))
@settings(max_examples=400, deadline=None)
def test_root_set_matches_under_any(roots: list[Root], keys: list[tuple[str, ...]]) -> None:
    root_set = RootSet(roots)
    for key in keys:  # repeated parents exercise the cache
        assert root_set.first(key) is under_any(key, tuple(roots))
    assert bool(root_set) == bool(roots)


@given(st.text(max_size=40))
@settings(max_examples=500, deadline=None)
def test_path_key_is_the_components_normalised(path: str) -> None:
    assert path_key(path) == tuple(normalize_component(c) for c in path.split("/"))


# --- a whole diff at once: never a wrong "nothing to find", exact for ASCII paths ----

_ODD = st.sampled_from(
    ["", "DOCS", "Src", "x\ny", "dócs", "ſrc", "a b", ".git", "a~1", "-", ".a", "a.", "..", "a.b"]
)
_PATH_TEXT = st.lists(_COMPONENTS | _ODD, min_size=1, max_size=4).map("/".join)
_ROOTS_ANY = st.lists(
    st.tuples(
        st.lists(
            _COMPONENTS | st.sampled_from(["DOCS", "dócs", "ſrc", "a+b"]), min_size=1, max_size=3
        ),
        st.booleans(),
    ).map(lambda spec: Root.parse("/".join(spec[0]) + ("/" if spec[1] else ""))),
    max_size=6,
)


@given(_ROOTS_ANY, st.lists(_PATH_TEXT, max_size=12))
@settings(max_examples=600, deadline=None)
def test_root_set_at_once_agrees_with_path_by_path(roots: list[Root], paths: list[str]) -> None:
    root_set = RootSet(roots)
    found = [root_set.first(path_key(p)) for p in paths]
    none, every = all(f is None for f in found), all(f is not None for f in found)
    told = bool(paths) and all(p.isascii() and "\n" not in p for p in paths)
    if root_set.contains_none(paths):
        assert none
    if root_set.contains_all(paths):
        assert every
    if told:  # exact, not only safe
        assert root_set.contains_none(paths) == none
        assert root_set.contains_all(paths) == every


@given(st.lists(_PATH_TEXT | st.text(max_size=12), max_size=12))
@settings(max_examples=600, deadline=None)
def test_all_plain_only_when_every_path_is_safe(paths: list[str]) -> None:
    if all_plain(paths):
        assert paths and all(unsafe_reason(p) is None for p in paths)
    if paths and not any("\n" in p for p in paths):  # exact: every path plain
        assert all_plain(paths) == all(_PLAIN.fullmatch(p) is not None for p in paths)
    assert all_plain(["src/a.py", "docs/b-c_d.md", "X/Y@1"])
    assert not all_plain(["src/a.py", "src/..", "b"]) and not all_plain([])
