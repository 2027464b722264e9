"""The diff gate: read a change with git under fixed settings and judge it by policy.

The change is read with ``git diff-tree -r -z --raw`` (rename and copy detection on,
``--find-copies-harder``, no external diff, no textconv) with global and system config
switched off and every setting that could change the output pinned on the command
line, so the user's config cannot change the verdict. Without ``head`` the gate judges
the working tree: it builds, in a temporary index (never the user's), exactly the tree
``git add -A`` would commit (LifeOS-owned paths left as in HEAD), and returns that tree
id in the decision so what is committed later is exactly what was gated.

Rules are an ordered list of small classes. Each looks at one changed entry and
returns findings (a reason code, the path, a message) or nothing. A *terminal* rule
that finds something stops the rules after it for that entry: path safety comes
before every root check, then protected paths and the denylist, then the allowlist
(default deny), extensions and add-only roots.
"""

from __future__ import annotations

import contextlib
import operator
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from lifeos.canonical import sha256_hex, stable_uuid
from lifeos.clock import Clock, SystemClock, iso
from lifeos.errors import ReasonCode
from lifeos.policy.gitread import (
    LIFEOS_OWNED,
    MODE_GITLINK,
    MODE_NONE,
    MODE_SYMLINK,
    BlobInfo,
    Change,
    ChangeSet,
    GateError,
    _display,
    git_diff_command,
    parse_raw_diff,
    read_change,
    start_blob_info,
    worktree_tree,
)
from lifeos.policy.model import Policy
from lifeos.policy.paths import (
    Root,
    RootSet,
    all_plain,
    normalize_component,
    path_key,
    under_any,
    unsafe_reason,
)

__all__ = [
    "DEFAULT_RULES",
    "LIFEOS_OWNED",
    "Change",
    "ChangeSet",
    "Finding",
    "GateDecision",
    "GateError",
    "RuleContext",
    "check_change",
    "evaluate",
    "git_diff_command",
    "judge",
    "json_opening",
    "parse_raw_diff",
    "read_change",
    "worktree_tree",
]


@dataclass(frozen=True)
class Finding:
    """One reason a change is blocked."""

    code: ReasonCode
    path: str
    message: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {
            "code": self.code.value,
            "path": _display(self.path),
            "message": self.message,
            "rule": self.rule,
        }


@dataclass
class RuleContext:
    """What rules may need beyond one entry: blob sizes, symlink targets, and the
    policy's root lists as :class:`RootSet` (built once per evaluation)."""

    policy: Policy
    sizes: Mapping[str, int] = field(default_factory=dict)
    link_targets: Mapping[str, bytes] = field(default_factory=dict)
    protected: RootSet = field(init=False)
    denylist: RootSet = field(init=False)
    allowlist: RootSet = field(init=False)

    def __post_init__(self) -> None:
        self.protected = RootSet(self.policy.protected)
        self.denylist = RootSet(self.policy.denylist)
        self.allowlist = RootSet(self.policy.allowlist)


class Rule:
    """A gate rule: looks at one changed entry and returns findings or nothing."""

    code: ClassVar[ReasonCode]
    terminal: ClassVar[bool] = False
    needs_blobs: ClassVar[bool] = False
    """Whether the rule reads ``ctx.sizes`` or ``ctx.link_targets`` (git is asked for
    them while the other rules run)."""

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        """Findings for ``change`` under ``ctx.policy`` (empty when it passes)."""
        raise NotImplementedError

    def active(self, policy: Policy) -> bool:
        """Whether the rule can find anything under ``policy`` (skipped when not)."""
        return True

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        """True when the rule finds nothing for *any* entry of this status and these
        modes, whatever its paths, so a large diff skips it per kind of entry, not per
        entry. The default, False, always runs :meth:`check`."""
        return False

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        """True when the rule finds nothing for any of ``changes``, seen in one look at
        all of them (a few searches over all the paths), so a large diff skips its
        check per entry. It may say False whenever it cannot tell cheaply; then
        :meth:`check` runs. The default, False, always runs :meth:`check`."""
        return False

    def finding(self, path: str, message: str, code: ReasonCode | None = None) -> Finding:
        """A finding of this rule."""
        return Finding(code or self.code, path, message, type(self).__name__)


class BlockedOperationRule(Rule):
    """Deletes, renames and copies the policy blocks (seed v2.0: all three, terminal).

    Both paths of a rename or copy are named, so neither can hide behind the other.
    """

    code = ReasonCode.PH2_DELETE_BLOCKED
    _OPS: ClassVar[dict[str, tuple[str, ReasonCode]]] = {
        "D": ("delete", ReasonCode.PH2_DELETE_BLOCKED),
        "R": ("rename", ReasonCode.PH2_RENAME_BLOCKED),
        "C": ("copy", ReasonCode.PH2_COPY_BLOCKED),
    }

    def active(self, policy: Policy) -> bool:
        return bool(policy.blocked_operations)

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        op = self._OPS.get(status)
        return op is None or op[0] not in policy.blocked_operations

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        op = self._OPS.get(change.status)
        if op is None or op[0] not in ctx.policy.blocked_operations:
            return []
        return [self.finding(p, f"{op[0]} is blocked by policy", op[1]) for p in change.paths()]


def _kind(mode: str) -> str:
    if mode == MODE_NONE:
        return "none"
    if mode == MODE_SYMLINK:
        return "symlink"
    if mode == MODE_GITLINK:
        return "submodule"
    if mode.startswith("04"):
        return "tree"
    return "file"


class TypeChangeRule(Rule):
    """A path that changes kind (file, symlink, submodule) can smuggle content past
    rules that judge by kind, so every type change is blocked."""

    code = ReasonCode.TYPE_CHANGE_BLOCKED

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        old, new = _kind(old_mode), _kind(new_mode)
        return status != "T" and (old == "none" or new == "none" or old == new)

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        if change.status != "T" and (
            change.old_mode == change.new_mode or MODE_NONE in (change.old_mode, change.new_mode)
        ):
            return []
        old, new = _kind(change.old_mode), _kind(change.new_mode)
        if change.status == "T" or (old != "none" and new != "none" and old != new):
            return [self.finding(change.path, f"type change {old} -> {new}")]
        return []


class SubmoduleRule(Rule):
    """Submodules (mode 160000) pull in code the gate never sees: always blocked."""

    code = ReasonCode.SUBMODULE_BLOCKED

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        return MODE_GITLINK not in (old_mode, new_mode)

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        if MODE_GITLINK in (change.old_mode, change.new_mode):
            return [self.finding(change.path, "submodule (mode 160000)")]
        return []


def symlink_target_problem(link: str, target: bytes, denylist: Sequence[Root] = ()) -> str | None:
    """Why a symlink at ``link`` pointing to ``target`` is unsafe, or None.

    The target must be relative, stay inside the repository, avoid ``.git`` and
    unsafe components, and not land in a denylisted root.
    """
    text = target.decode("utf-8", "surrogateescape")
    if not text:
        return "empty symlink target"
    if text.startswith("/") or "\\" in text or (len(text) > 1 and text[1] == ":"):
        return f"symlink target {_display(text)!r} is absolute"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), text))
    if joined == ".." or joined.startswith("../"):
        return f"symlink target {_display(text)!r} points outside the repository"
    if joined == ".":
        return None
    reason = unsafe_reason(joined)
    if reason is not None:
        return f"symlink target {_display(text)!r}: {reason}"
    if under_any(path_key(joined), tuple(denylist)) is not None:
        return f"symlink target {_display(text)!r} points into a denylisted root"
    return None


class SymlinkRule(Rule):
    """Symlinks (mode 120000) are blocked unless the policy allows them, and even then
    must never point outside the repository, into ``.git`` or into a denylisted root."""

    code = ReasonCode.SYMLINK_BLOCKED
    needs_blobs = True

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        return new_mode != MODE_SYMLINK

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        if change.new_mode != MODE_SYMLINK:
            return []
        if not ctx.policy.allow_symlinks:
            return [self.finding(change.path, "symlinks are not allowed by policy")]
        target = ctx.link_targets.get(change.new_sha)
        if target is None:
            return [self.finding(change.path, "symlink target could not be read")]
        problem = symlink_target_problem(change.path, target, ctx.policy.denylist)
        return [self.finding(change.path, problem)] if problem else []


class SizeLimitRule(Rule):
    """An added or modified blob larger than ``max_file_bytes`` is outside the envelope;
    so is one whose size git did not report (fail closed)."""

    code = ReasonCode.ENVELOPE_VIOLATION
    needs_blobs = True

    def active(self, policy: Policy) -> bool:
        return policy.max_file_bytes is not None

    def quiet_for(self, policy: Policy, status: str, old_mode: str, new_mode: str) -> bool:
        return new_mode in (MODE_NONE, MODE_GITLINK)

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        limit = ctx.policy.max_file_bytes
        if limit is None:
            return True
        if max(ctx.sizes.values(), default=0) > limit:
            return False
        wanted = {c.new_sha for c in changes if c.new_mode not in (MODE_NONE, MODE_GITLINK)}
        return ctx.sizes.keys() >= wanted  # every size known

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        limit = ctx.policy.max_file_bytes
        if limit is None or change.new_mode in (MODE_NONE, MODE_GITLINK):
            return []
        size = ctx.sizes.get(change.new_sha)
        if size is None:
            return [self.finding(change.path, "its size could not be read")]
        if size > limit:
            return [self.finding(change.path, f"{size} bytes, over the {limit}-byte limit")]
        return []


class PathSafetyRule(Rule):
    """Unsafe paths (absolute, ``..``, ``.git`` variants, NTFS short names, control
    characters, bytes that are not UTF-8) are blocked before any root is compared,
    because root matching on such a path means nothing. Terminal."""

    code = ReasonCode.PATH_UNSAFE
    terminal = True

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        return all_plain(_all_paths(changes))

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        out = []
        for p in change.paths():
            reason = unsafe_reason(p)
            if reason is not None:
                out.append(self.finding(p, reason))
        return out


class ProtectedPathRule(Rule):
    """Governance-protected paths never change through the gate, by any operation
    (both paths of a rename or copy). Terminal."""

    code = ReasonCode.PROTECTED_PATH
    terminal = True

    def active(self, policy: Policy) -> bool:
        return bool(policy.protected)

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        return ctx.protected.contains_none(_all_paths(changes))

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        if not ctx.protected:
            return []
        out = []
        for p in change.paths():
            root = ctx.protected.first(path_key(p))
            if root is not None:
                out.append(self.finding(p, f"protected path ({root.text})"))
        return out


class DenylistRule(Rule):
    """Denylist first and terminal: nothing under a denylisted root may change, be
    renamed out of or copied from (both paths are checked); no allowlist entry can
    override it."""

    code = ReasonCode.DENYLISTED_PATH
    terminal = True

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        return ctx.denylist.contains_none(_all_paths(changes))

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        out = []
        for p in change.paths():
            root = ctx.denylist.first(path_key(p))
            if root is not None:
                out.append(self.finding(p, f"under denylisted root {root.text}"))
        return out


def _all_paths(changes: Sequence[Change]) -> list[str]:
    """Every path the entries name (:meth:`Change.paths` of each), in no set order."""
    return [c.path for c in changes] + [c.old_path for c in changes if c.old_path is not None]


def _changed_paths(change: Change) -> tuple[str, ...]:
    """Paths whose content the change creates, alters or removes (a copy's source is
    read, not changed)."""
    if change.status == "C":
        return (change.path,)
    return change.paths()


class AllowlistRule(Rule):
    """Default deny: every changed path must be under an allowlisted root. Terminal."""

    code = ReasonCode.OUTSIDE_ALLOWLIST
    terminal = True

    def quiet_for_all(self, changes: Sequence[Change], ctx: RuleContext) -> bool:
        return ctx.allowlist.contains_all(
            [c.path for c in changes]
            + [c.old_path for c in changes if c.old_path is not None and c.status != "C"]
        )

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        return [
            self.finding(p, "not under any allowlisted root")
            for p in _changed_paths(change)
            if ctx.allowlist.first(path_key(p)) is None
        ]


def _extension(path: str) -> str:
    return PurePosixPath(normalize_component(path.rsplit("/", 1)[-1])).suffix


def _written(change: Change) -> str | None:
    """The path whose new content the change writes, or None for a delete."""
    return None if change.new_mode == MODE_NONE else change.path


class ExtensionRule(Rule):
    """Under a root with an extension list (seed v2.0: ``docs/`` only ``.md``), new or
    modified files must carry one of the listed extensions."""

    code = ReasonCode.EXTENSION_NOT_ALLOWED

    def active(self, policy: Policy) -> bool:
        return bool(policy.extensions)

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        path = _written(change)
        if path is None or not ctx.policy.extensions:
            return []
        key = path_key(path)
        for root, exts in ctx.policy.extensions:
            if root.contains(key) and _extension(path) not in exts:
                allowed = ", ".join(sorted(exts))
                return [self.finding(path, f"under {root.text} only {allowed} is allowed")]
        return []


class AddOnlyRule(Rule):
    """Add-only roots (review packets) accept new files with the listed extensions and
    nothing else: no modify, delete, type change or rename out."""

    code = ReasonCode.ADD_ONLY_VIOLATION

    def active(self, policy: Policy) -> bool:
        return bool(policy.add_only)

    def check(self, change: Change, ctx: RuleContext) -> list[Finding]:
        if not ctx.policy.add_only:
            return []
        out = []
        removed: list[str] = []
        if change.status in ("M", "T", "D"):
            removed.append(change.path)
        if change.status == "R" and change.old_path is not None:
            removed.append(change.old_path)
        for root, _ in ctx.policy.add_only:
            for p in removed:
                if root.contains(path_key(p)):
                    out.append(self.finding(p, f"{root.text} is add-only"))
        if change.status in ("A", "R", "C"):
            key = path_key(change.path)
            for root, exts in ctx.policy.add_only:
                if root.contains(key) and _extension(change.path) not in exts:
                    allowed = ", ".join(sorted(exts))
                    out.append(
                        self.finding(
                            change.path,
                            f"{root.text} is add-only for {allowed}",
                            ReasonCode.EXTENSION_NOT_ALLOWED,
                        )
                    )
        return out


DEFAULT_RULES: tuple[Rule, ...] = (
    BlockedOperationRule(),
    TypeChangeRule(),
    SubmoduleRule(),
    SymlinkRule(),
    SizeLimitRule(),
    PathSafetyRule(),
    ProtectedPathRule(),
    DenylistRule(),
    AllowlistRule(),
    ExtensionRule(),
    AddOnlyRule(),
)


def evaluate(
    changes: Sequence[Change],
    ctx: RuleContext,
    rules: Sequence[Rule] = DEFAULT_RULES,
    blobs: Callable[[], tuple[Mapping[str, int], Mapping[str, bytes]]] | None = None,
) -> list[Finding]:
    """Run ``rules`` in order over every entry; a terminal rule's findings end that entry.

    With ``blobs`` (a call that waits for blob sizes and symlink targets), the rules
    that need no blob information run first, while git reads them, and the others
    after; the findings are merged back into rule order, exactly as one pass would
    give them.
    """
    active = [rule for rule in rules if rule.active(ctx.policy)]
    if blobs is None or not any(rule.needs_blobs for rule in active):
        findings = _one_pass(changes, ctx, _to_check(changes, ctx, list(enumerate(active))))
    else:
        plan = list(enumerate(active))
        hits: dict[int, list[tuple[int, list[Finding]]]] = {}
        first = [(i, r) for i, r in plan if not r.needs_blobs]
        _collect(changes, ctx, _to_check(changes, ctx, first), hits)
        ctx.sizes, ctx.link_targets = blobs()
        then = [(i, r) for i, r in plan if r.needs_blobs]
        _collect(changes, ctx, _to_check(changes, ctx, then), hits)
        findings = []
        for index in sorted(hits):
            for rule_index, found in sorted(hits[index], key=lambda hit: hit[0]):
                findings.extend(found)
                if active[rule_index].terminal:
                    break
    limit = ctx.policy.max_files
    if limit is not None and len(changes) > limit:
        findings.append(
            Finding(
                ReasonCode.ENVELOPE_VIOLATION,
                "*",
                f"{len(changes)} changed paths, over the {limit}-path limit",
                "MaxFilesLimit",
            )
        )
    return findings


_Check = tuple[int, Callable[[Change, RuleContext], list[Finding]], bool]


class _Plans(dict[tuple[str, str, str], list[_Check]]):
    """The checks to run for each kind of entry (status, old mode, new mode): the rules
    of ``plan`` that are not quiet for it, in order."""

    def __init__(self, policy: Policy, plan: list[tuple[int, Rule]]) -> None:
        super().__init__()
        self.policy = policy
        self.plan = plan

    def __missing__(self, kind: tuple[str, str, str]) -> list[_Check]:
        checks: list[_Check] = [
            (i, rule.check, rule.terminal)
            for i, rule in self.plan
            if not rule.quiet_for(self.policy, *kind)
        ]
        self[kind] = checks
        return checks

    def any_checks(self, changes: Sequence[Change]) -> bool:
        """Whether any entry of ``changes`` has a check to run (its kinds seen at once)."""
        return any(self[kind] for kind in set(map(_KIND, changes)))


_KIND = operator.itemgetter(0, 1, 2)  # an entry's (status, old mode, new mode)


def _to_check(
    changes: Sequence[Change], ctx: RuleContext, plan: list[tuple[int, Rule]]
) -> list[tuple[int, Rule]]:
    """The rules of ``plan`` to run entry by entry: those not quiet for all ``changes``
    (a rule that finds nothing changes no outcome, terminal or not)."""
    return [(i, rule) for i, rule in plan if not rule.quiet_for_all(changes, ctx)]


def _one_pass(
    changes: Sequence[Change], ctx: RuleContext, plan: list[tuple[int, Rule]]
) -> list[Finding]:
    findings: list[Finding] = []
    plans = _Plans(ctx.policy, plan)
    if not plans.any_checks(changes):
        return findings
    for change in changes:
        for _, check, terminal in plans[change[:3]]:
            found = check(change, ctx)
            if found:
                findings.extend(found)
                if terminal:
                    break
    return findings


def _collect(
    changes: Sequence[Change],
    ctx: RuleContext,
    plan: list[tuple[int, Rule]],
    hits: dict[int, list[tuple[int, list[Finding]]]],
) -> None:
    """Findings of the rules in ``plan`` by entry, tagged with each rule's position."""
    plans = _Plans(ctx.policy, plan)
    if not plans.any_checks(changes):
        return
    for index, change in enumerate(changes):
        for rule_index, check, terminal in plans[change[:3]]:
            found = check(change, ctx)
            if found:
                hits.setdefault(index, []).append((rule_index, found))
                if terminal:
                    break


# --- reading the change with git -------------------------------------------------------


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and its decision record."""

    decision_id: str
    policy_hash: str
    policy_name: str
    input_digest: str
    result: str
    """PASS or BLOCK."""
    reasons: tuple[Finding, ...]
    base: str
    head: str | None
    """The head commit, or None when the working tree was gated."""
    tree: str
    """The tree that was gated (commit this tree to commit exactly what passed)."""
    changes: tuple[Change, ...]
    timestamp: str

    @property
    def passed(self) -> bool:
        """Whether the change passed."""
        return self.result == "PASS"

    @property
    def reason_codes(self) -> list[str]:
        """Every reason code found, sorted, once each."""
        return sorted({f.code.value for f in self.reasons})

    def to_dict(self) -> dict[str, Any]:
        """The decision record as JSON."""
        return self._record([c.to_dict() for c in self.changes])

    def to_json(self) -> str:
        """The decision record as the CLI's ``--json`` text: byte for byte
        ``pretty_json(self.to_dict())``, without a dict per changed path (the changes
        go to the encoder as columns, see :class:`lifeos.indent_json.Table`).

        It is :func:`json_opening` followed by :meth:`json_closing`.
        """
        return json_opening(self.base, self.changes) + self.json_closing()

    def json_closing(self) -> str:
        """The end of :meth:`to_json`, after :func:`json_opening`: every key but
        ``base`` and ``changes``, which all sort after them."""
        from lifeos.indent_json import indented

        rest = self._record(None)
        del rest["base"], rest["changes"]
        assert min(rest) > "changes"
        return indented(rest)[2:]  # without the opening brace and newline

    def _record(self, changes: Any) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "policy_hash": self.policy_hash,
            "policy_name": self.policy_name,
            "input_digest": self.input_digest,
            "result": self.result,
            "reason_codes": self.reason_codes,
            "reasons": [f.to_dict() for f in self.reasons],
            "base": self.base,
            "head": self.head,
            "tree": self.tree,
            "changes": changes,
            "timestamp": self.timestamp,
        }


def json_opening(base: str, changes: Sequence[Change]) -> str:
    """The start of :meth:`GateDecision.to_json`, up to its changes: the record's first
    keys in sorted order, ``base`` and ``changes``, which the verdict does not change
    (so ``gate check --json`` prints them while git still reads blob sizes)."""
    from lifeos.indent_json import Table, indented

    table = Table(
        {
            "status": [c[0] for c in changes],
            "old_mode": [c[1] for c in changes],
            "new_mode": [c[2] for c in changes],
            "path": _displayed([c[5] for c in changes]),
            "old_path": _displayed([c[6] for c in changes]),
        }
    )
    return indented({"base": base, "changes": table})[:-2] + ",\n"  # "\n}" left open


def _displayed(paths: list[str | None]) -> list[str | None]:
    """Each path as :func:`Change.to_dict` shows it (None stays None); a column of
    ASCII paths, the usual case, is returned as it is."""
    if "".join(filter(None, paths)).isascii():
        return paths
    return [None if p is None else _display(p) for p in paths]


def check_change(
    root: Path,
    policy: Policy,
    base: str = "HEAD",
    head: str | None = None,
    clock: Clock | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
) -> GateDecision:
    """Gate the change from ``base`` to ``head`` (a commit) or to the working tree.

    Raises:
        GateError: not a repository, no commits, or a revision that does not exist.
    """
    return judge(root, read_change(root, base, head), policy, clock, rules)


def judge(
    root: Path,
    change: ChangeSet,
    policy: Policy,
    clock: Clock | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
    meanwhile: Callable[[], object] | None = None,
) -> GateDecision:
    """Apply ``policy`` to a change read by :func:`read_change` in repository ``root``.

    Blob sizes and symlink targets are read by git while the rules that need neither
    run. ``meanwhile``, if given, is called once while git reads them, after those
    rules (or after all the rules when nothing is read): work of the caller's that
    needs no verdict overlaps git's.
    """
    changes = change.changes
    blobs = None
    if policy.max_file_bytes is not None or policy.allow_symlinks:
        blobs = start_blob_info(root, changes, policy)
    pending = [meanwhile] if meanwhile is not None else []

    def wait() -> BlobInfo:
        while pending:
            pending.pop()()
        assert blobs is not None
        return blobs()

    try:
        findings = evaluate(changes, RuleContext(policy), rules, wait if blobs else None)
    finally:
        if blobs is not None:  # waited for already, unless a rule failed or none needed it
            with contextlib.suppress(Exception):
                blobs()
    while pending:  # nothing was read, or no rule needed it
        pending.pop()()
    input_digest = sha256_hex({"base": change.base, "tree": change.tree})
    return GateDecision(
        decision_id=stable_uuid(input_digest, policy.hash),
        policy_hash=policy.hash,
        policy_name=policy.name,
        input_digest=input_digest,
        result="BLOCK" if findings else "PASS",
        reasons=tuple(findings),
        base=change.base,
        head=change.head,
        tree=change.tree,
        changes=changes,
        timestamp=iso((clock or SystemClock()).now()),
    )
