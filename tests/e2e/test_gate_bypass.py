"""A bypass corpus for the diff gate: every case is a real commit, and every one BLOCKs.

One repository for the module: a base commit with files in allowed, denylisted and
add-only roots, then one commit per case on top of it, built with ``git mktree`` so
paths git's porcelain refuses (``..``, ``.git``, ``GIT~1``, control characters, bytes
that are not UTF-8) still reach the gate the way a crafted push would.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import GIT_ENV

from lifeos.clock import FixedClock
from lifeos.policy.gate import GateDecision, check_change
from lifeos.policy.model import Policy, load_policy

Entries = dict[str, tuple[str, str]]

POLICIES: dict[str, Policy] = {
    "code": load_policy({"profile": "code"}),
    "seed-v2": load_policy({"profile": "seed-v2"}),
    "code+links": load_policy({"profile": "code", "allow_symlinks": True}),
}

BASE_FILES = {
    "README.md": b"demo\n",
    "src/app.py": b"print('app')\n" * 20,
    "docs/guide.md": b"# Guide\n" + b"words of guidance\n" * 20,
    "docs/01_governance/rules.md": b"# Rules\n" * 20,
    "config/settings.yaml": b"secret_setting: 1\n" * 20,
    "scripts/run.sh": b"#!/bin/sh\necho run\n" * 10,
    ".github/workflows/ci.yml": b"on: push\n" * 20,
    "lifeos.yaml": b"policy: {profile: code}\n",
    "artifacts/review_packets/r1.md": b"# Review 1\n" * 20,
}


def _run(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo)}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=data, capture_output=True, check=True
    )
    return proc.stdout


def _blob(repo: Path, data: bytes) -> str:
    return _run(repo, "hash-object", "-w", "--stdin", data=data).decode().strip()


def _tree(repo: Path, entries: Entries) -> str:
    direct: list[tuple[str, str, str]] = []
    nested: dict[str, Entries] = {}
    for path, (mode, sha) in entries.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head, {})[rest] = (mode, sha)
        else:
            direct.append((mode, sha, head))
    for name, sub in nested.items():
        direct.append(("040000", _tree(repo, sub), name))
    kinds = {"040000": "tree", "160000": "commit"}
    data = b"".join(
        f"{mode} {kinds.get(mode, 'blob')} {sha}\t".encode()
        + name.encode("utf-8", "surrogateescape")
        + b"\0"
        for mode, sha, name in direct
    )
    return _run(repo, "mktree", "-z", data=data).decode().strip()


def _commit(repo: Path, tree: str, parent: str | None, message: str) -> str:
    args = ["commit-tree", tree, "-m", message]
    if parent:
        args += ["-p", parent]
    return _run(repo, *args).decode().strip()


@dataclass(frozen=True)
class Case:
    """One crafted change and the reason code it must be blocked with."""

    id: str
    code: str
    policy: str = "code"
    add: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    gitlinks: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    copy: dict[str, str] = field(default_factory=dict)
    """new path -> base path whose content it copies."""


def _rename(src: str, dst: str, code: str, policy: str = "code") -> Case:
    return Case(f"rename {src} -> {dst}", code, policy, copy={dst: src}, remove=(src,))


X = b"payload\n"
CASES: list[Case] = [
    # Traversal, dot components, absolute-looking components.
    Case("dotdot at root", "PATH_UNSAFE", add={"../evil.py": X}),
    Case("dotdot inside src", "PATH_UNSAFE", add={"src/../config/x.yaml": X}),
    Case("dotdot deep", "PATH_UNSAFE", add={"src/a/../../../etc/passwd": X}),
    Case("dot component", "PATH_UNSAFE", add={"src/./x.py": X}),
    Case("drive letter", "PATH_UNSAFE", add={"C:/x.py": X}),
    Case("backslash traversal", "PATH_UNSAFE", add={"src/..\\..\\x.py": X}),
    Case("alternate data stream", "PATH_UNSAFE", add={"src/.git::$INDEX_ALLOCATION/x": X}),
    # .git in any case and with ignorable code points.
    Case(".git hooks", "PATH_UNSAFE", add={".git/hooks/post-checkout": X}),
    Case(".GIT config", "PATH_UNSAFE", add={".GIT/config": X}),
    Case(".Git hooks", "PATH_UNSAFE", add={".Git/hooks/pre-commit": X}),
    Case("nested .git", "PATH_UNSAFE", add={"src/.git/config": X}),
    Case("nested .gIt", "PATH_UNSAFE", add={"docs/.gIt/config": X}),
    Case(".git + ZWNJ", "PATH_UNSAFE", add={".git\u200c/config": X}),
    Case(".git + ZWJ inside", "PATH_UNSAFE", add={".g\u200dit/config": X}),
    Case("BOM + .git", "PATH_UNSAFE", add={"\ufeff.git/config": X}),
    Case(".git + LRM", "PATH_UNSAFE", add={".git\u200e/hooks/x": X}),
    Case(".git + RLO", "PATH_UNSAFE", add={".git\u202e/x": X}),
    Case(".git + U+206F", "PATH_UNSAFE", add={".GIT\u206f/config": X}),
    Case("src/.git + U+200F", "PATH_UNSAFE", add={"src/.\u200fgit/config": X}),
    # NTFS short names, trailing dots and spaces.
    Case("GIT~1", "PATH_UNSAFE", add={"GIT~1/config": X}),
    Case("git~1 lower", "PATH_UNSAFE", add={"git~1/hooks/x": X}),
    Case("src/GIT~2", "PATH_UNSAFE", add={"src/GIT~2/config": X}),
    Case(".git trailing dot", "PATH_UNSAFE", add={".git./config": X}),
    Case(".git trailing space", "PATH_UNSAFE", add={".git /config": X}),
    Case("file trailing dot", "PATH_UNSAFE", add={"src/app.py.": X}),
    Case("file trailing space", "PATH_UNSAFE", add={"src/app.py ": X}),
    Case("config trailing dot", "PATH_UNSAFE", add={"config./x.yaml": X}),
    # Control characters and bytes that are not UTF-8.
    Case("newline in name", "PATH_UNSAFE", add={"src/a\nb.py": X}),
    Case("tab in name", "PATH_UNSAFE", add={"src/a\tb.py": X}),
    Case("carriage return", "PATH_UNSAFE", add={"src/a\rb.py": X}),
    Case("escape sequence", "PATH_UNSAFE", add={"src/a\x1b[31m.py": X}),
    Case("DEL character", "PATH_UNSAFE", add={"src/a\x7f.py": X}),
    Case("C1 control", "PATH_UNSAFE", add={"src/a\x85.py": X}),
    Case("not UTF-8", "PATH_UNSAFE", add={"src/\udcff\udcfe.py": X}),
    # Denylisted roots: direct, case and Unicode variants, every operation.
    Case("config add", "DENYLISTED_PATH", add={"config/new.yaml": X}),
    Case("config modify", "DENYLISTED_PATH", add={"config/settings.yaml": X}),
    Case("config delete", "DENYLISTED_PATH", remove=("config/settings.yaml",)),
    Case("CONFIG upper", "DENYLISTED_PATH", add={"CONFIG/x.yaml": X}),
    Case("Config mixed", "DENYLISTED_PATH", add={"Config/x.yaml": X}),
    Case("config + ZWNJ", "DENYLISTED_PATH", add={"con\u200cfig/x.yaml": X}),
    Case("config + BOM", "DENYLISTED_PATH", add={"\ufeffconfig/x.yaml": X}),
    Case("scripts modify", "DENYLISTED_PATH", add={"scripts/run.sh": X}),
    Case("SCRIPTS upper", "DENYLISTED_PATH", add={"SCRIPTS/x.sh": X}),
    Case("scripts + U+202A", "DENYLISTED_PATH", add={"scripts\u202a/x.sh": X}),
    Case(".github modify", "DENYLISTED_PATH", add={".github/workflows/ci.yml": X}),
    Case(".GitHub mixed", "DENYLISTED_PATH", add={".GitHub/workflows/evil.yml": X}),
    Case("lifeos.yaml modify", "DENYLISTED_PATH", add={"lifeos.yaml": b"policy: {}\n"}),
    Case("LIFEOS.YAML add", "DENYLISTED_PATH", add={"LIFEOS.YAML": X}),
    Case("lifeos.pub add", "DENYLISTED_PATH", add={"lifeos.pub": X}),
    _rename("config/settings.yaml", "src/settings.yaml", "DENYLISTED_PATH"),
    _rename("src/app.py", "scripts/app.py", "DENYLISTED_PATH"),
    _rename(".github/workflows/ci.yml", "docs/ci.yml", "DENYLISTED_PATH"),
    Case(
        "copy from config",
        "DENYLISTED_PATH",
        copy={"src/leak.yaml": "config/settings.yaml"},
    ),
    Case("type change in config", "TYPE_CHANGE_BLOCKED", links={"config/settings.yaml": "x"}),
    Case(
        "type change in config (denylist)", "DENYLISTED_PATH", links={"config/settings.yaml": "x"}
    ),
    # Near misses that are not the allowed root.
    Case("srcx is not src", "OUTSIDE_ALLOWLIST", add={"srcx/a.py": X}),
    Case("ZWSP is not ignorable", "OUTSIDE_ALLOWLIST", add={"sr\u200bc/a.py": X}),
    Case("fullwidth src", "OUTSIDE_ALLOWLIST", add={"\uff53\uff52\uff43/a.py": X}),
    # Symlinks: blocked by default, and never escaping even when allowed.
    Case("symlink absolute", "SYMLINK_BLOCKED", links={"src/l": "/etc/passwd"}),
    Case("symlink escape", "SYMLINK_BLOCKED", links={"src/l": "../../etc/passwd"}),
    Case("symlink into config", "SYMLINK_BLOCKED", links={"src/l": "../config/settings.yaml"}),
    Case("symlink into .git", "SYMLINK_BLOCKED", links={"docs/l": "../.git/config"}),
    Case("allowed: absolute", "SYMLINK_BLOCKED", "code+links", links={"src/l": "/etc/passwd"}),
    Case("allowed: escape", "SYMLINK_BLOCKED", "code+links", links={"src/l": "../../x"}),
    Case("allowed: .GIT", "SYMLINK_BLOCKED", "code+links", links={"src/l": "../.GIT/config"}),
    Case("allowed: config", "SYMLINK_BLOCKED", "code+links", links={"src/l": "../CONFIG/a"}),
    Case("allowed: backslash", "SYMLINK_BLOCKED", "code+links", links={"src/l": "..\\..\\x"}),
    # Type changes and submodules.
    Case("file to symlink", "TYPE_CHANGE_BLOCKED", "code+links", links={"src/app.py": "x.py"}),
    Case("file to submodule", "TYPE_CHANGE_BLOCKED", gitlinks=("src/app.py",)),
    Case("submodule in src", "SUBMODULE_BLOCKED", gitlinks=("src/vendor",)),
    Case("submodule in docs", "SUBMODULE_BLOCKED", gitlinks=("docs/sub",)),
    Case("submodule at .github", "SUBMODULE_BLOCKED", gitlinks=(".github/x",)),
    # Names that look like options.
    Case("--upload-pack name", "OUTSIDE_ALLOWLIST", add={"--upload-pack=evil": X}),
    Case("-rf name", "OUTSIDE_ALLOWLIST", add={"-rf": X}),
    Case("--output into config", "DENYLISTED_PATH", add={"config/--output=x": X}),
    Case("-n in scripts", "DENYLISTED_PATH", add={"scripts/-n": X}),
    Case("--exec dir", "OUTSIDE_ALLOWLIST", add={"--exec=sh/x.py": X}),
    # Seed v2.0: blocked operations, extensions, add-only review packets.
    Case("seed delete", "PH2_DELETE_BLOCKED", "seed-v2", remove=("docs/guide.md",)),
    _rename("docs/guide.md", "docs/guide2.md", "PH2_RENAME_BLOCKED", "seed-v2"),
    Case("seed copy", "PH2_COPY_BLOCKED", "seed-v2", copy={"docs/copy.md": "docs/guide.md"}),
    Case("seed .txt under docs", "EXTENSION_NOT_ALLOWED", "seed-v2", add={"docs/x.txt": X}),
    Case("seed double ext", "EXTENSION_NOT_ALLOWED", "seed-v2", add={"docs/x.md.sh": X}),
    Case("seed no ext", "EXTENSION_NOT_ALLOWED", "seed-v2", add={"docs/Makefile": X}),
    Case(
        "seed packet modify",
        "ADD_ONLY_VIOLATION",
        "seed-v2",
        add={"artifacts/review_packets/r1.md": X},
    ),
    Case(
        "seed packet delete",
        "ADD_ONLY_VIOLATION",
        "seed-v2",
        remove=("artifacts/review_packets/r1.md",),
    ),
    Case(
        "seed packet .json",
        "EXTENSION_NOT_ALLOWED",
        "seed-v2",
        add={"artifacts/review_packets/r2.json": X},
    ),
    Case("seed governance", "DENYLISTED_PATH", "seed-v2", add={"docs/01_governance/n.md": X}),
    Case("seed GOVERNANCE", "DENYLISTED_PATH", "seed-v2", add={"DOCS/01_GOVERNANCE/n.md": X}),
    Case(
        "seed foundations + ZWJ",
        "DENYLISTED_PATH",
        "seed-v2",
        add={"docs/00_foundations\u200d/n.md": X},
    ),
    Case("seed docsx", "OUTSIDE_ALLOWLIST", "seed-v2", add={"docsx/a.md": X}),
    Case("seed src", "OUTSIDE_ALLOWLIST", "seed-v2", add={"src/app.py": X}),
    Case("seed config", "DENYLISTED_PATH", "seed-v2", add={"config/x.md": X}),
]

PASSES: list[Case] = [
    Case("code src add", "", add={"src/new.py": b"x = 1\n"}),
    Case("code docs modify", "", add={"docs/guide.md": b"# New guide\n"}),
    Case("code option-like name in src", "", add={"src/--help.py": b"y = 2\n"}),
    Case("code safe symlink", "", "code+links", links={"src/l": "app.py"}),
    Case("seed docs add", "", "seed-v2", add={"docs/new.md": b"# New\n"}),
    Case("seed packet add", "", "seed-v2", add={"artifacts/review_packets/r2.md": b"# R2\n"}),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str, str]]:
    """The repository, its base commit and one commit per case."""
    repo = tmp_path_factory.mktemp("bypass") / "repo"
    repo.mkdir()
    _run(repo, "init", "-q", "-b", "main")
    blobs = {path: _blob(repo, data) for path, data in BASE_FILES.items()}
    base_entries: Entries = {path: ("100644", sha) for path, sha in blobs.items()}
    base = _commit(repo, _tree(repo, base_entries), None, "base")
    out: dict[str, tuple[Path, str, str]] = {}
    for case in CASES + PASSES:
        entries = dict(base_entries)
        for path in case.remove:
            del entries[path]
        for dst, src in case.copy.items():
            entries[dst] = base_entries[src]
        for path, data in case.add.items():
            entries[path] = ("100644", _blob(repo, data))
        for path, target in case.links.items():
            entries[path] = ("120000", _blob(repo, target.encode()))
        for path in case.gitlinks:
            entries[path] = ("160000", base)
        out[case.id] = (repo, base, _commit(repo, _tree(repo, entries), base, case.id))
    return out


def _decide(corpus: dict[str, tuple[Path, str, str]], case: Case) -> GateDecision:
    repo, base, head = corpus[case.id]
    return check_change(repo, POLICIES[case.policy], base=base, head=head, clock=FixedClock())


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES + PASSES}) == len(CASES + PASSES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bypass_is_blocked(corpus: dict[str, tuple[Path, str, str]], case: Case) -> None:
    decision = _decide(corpus, case)
    assert decision.result == "BLOCK", decision.to_dict()
    assert case.code in decision.reason_codes, decision.to_dict()
    assert decision.tree and decision.head == corpus[case.id][2]


@pytest.mark.parametrize("case", PASSES, ids=[c.id for c in PASSES])
def test_control_passes(corpus: dict[str, tuple[Path, str, str]], case: Case) -> None:
    decision = _decide(corpus, case)
    assert decision.result == "PASS", decision.to_dict()
    assert decision.reasons == ()


def test_rename_names_both_paths(corpus: dict[str, tuple[Path, str, str]]) -> None:
    case = next(c for c in CASES if c.id == "rename docs/guide.md -> docs/guide2.md")
    decision = _decide(corpus, case)
    blocked = {f.path for f in decision.reasons if f.code.value == "PH2_RENAME_BLOCKED"}
    assert blocked == {"docs/guide.md", "docs/guide2.md"}
    assert [c.status for c in decision.changes] == ["R"]


def test_decision_record_is_deterministic(corpus: dict[str, tuple[Path, str, str]]) -> None:
    case = CASES[0]
    first, second = _decide(corpus, case), _decide(corpus, case)
    assert first.decision_id == second.decision_id
    assert first.to_dict() == second.to_dict()
    assert first.timestamp == "2026-01-01T00:00:00.000000Z"
