"""The gate policy: what a change may touch, from lifeos.yaml or a built-in profile.

A ``policy:`` section holds these keys (all optional but ``profile`` names a base)::

    profile: seed-v2 | code           # start from a built-in profile
    blocked_operations: [delete, rename, copy]
    denylist: [config/, scripts/]     # terminal: nothing under these may change
    allowlist: [docs/]                # default deny: everything else is blocked
    extensions: {docs/: [.md]}        # allowed extensions under a root
    add_only: {artifacts/review_packets/: [.md]}   # new files only, these extensions
    protected: [lifeos.yaml]          # governance-protected paths (PROTECTED_PATH)
    allow_symlinks: false             # symlinks (mode 120000) are blocked unless true
    max_file_bytes: null              # largest added or modified blob
    max_files: null                   # most changed paths in one change

A root ending in ``/`` is a directory, otherwise one file. Keys given next to
``profile`` replace the profile's. The policy hash is the canonical SHA-256 of the
effective section (the profile expanded), so it changes exactly when what the gate
enforces changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.canonical import sha256_hex
from lifeos.errors import InputError, ReasonCode
from lifeos.policy.paths import Root

__all__ = [
    "OPERATIONS",
    "PROFILES",
    "Policy",
    "PolicyError",
    "load_policy",
    "load_policy_file",
    "resolve_policy",
]

OPERATIONS = ("delete", "rename", "copy")

PROFILES: dict[str, dict[str, Any]] = {
    "seed-v2": {
        "blocked_operations": ["delete", "rename", "copy"],
        "denylist": ["config/", "docs/00_foundations/", "docs/01_governance/", "scripts/"],
        "allowlist": ["docs/", "artifacts/review_packets/"],
        "extensions": {"docs/": [".md"]},
        "add_only": {"artifacts/review_packets/": [".md"]},
        "protected": [],
        "allow_symlinks": False,
        "max_file_bytes": None,
        "max_files": None,
    },
    "code": {
        "blocked_operations": [],
        "denylist": [".github/", "scripts/", "config/", "lifeos.yaml", "lifeos.pub"],
        "allowlist": ["src/", "tests/", "docs/"],
        "extensions": {},
        "add_only": {},
        "protected": [],
        "allow_symlinks": False,
        "max_file_bytes": 5 * 1024 * 1024,
        "max_files": None,
    },
}
_KEYS = frozenset(PROFILES["seed-v2"])


class PolicyError(InputError):
    """A policy that is missing or does not validate (exit 2)."""

    default_reason = ReasonCode.POLICY_INVALID


@dataclass(frozen=True)
class Policy:
    """An effective gate policy, validated, with its hash."""

    name: str
    blocked_operations: frozenset[str]
    denylist: tuple[Root, ...]
    allowlist: tuple[Root, ...]
    extensions: tuple[tuple[Root, frozenset[str]], ...]
    add_only: tuple[tuple[Root, frozenset[str]], ...]
    protected: tuple[Root, ...]
    allow_symlinks: bool
    max_file_bytes: int | None
    max_files: int | None
    section: dict[str, Any]
    """The effective ``policy:`` section (profile expanded), as hashed."""
    hash: str


def _roots(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"policy.{key} must be a list of paths")
    return list(value)


def _root_map(key: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise PolicyError(f"policy.{key} must map roots to lists of extensions")
    out: dict[str, list[str]] = {}
    for root, exts in value.items():
        if not isinstance(root, str) or not root.endswith("/"):
            raise PolicyError(f"policy.{key}: {root!r} must be a directory ending in '/'")
        if not isinstance(exts, list) or not all(
            isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in exts
        ):
            raise PolicyError(f"policy.{key}.{root} must be a list like ['.md']")
        out[root] = [e.casefold() for e in exts]
    return out


def _limit(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise PolicyError(f"policy.{key} must be a non-negative integer or null")
    return value


def _parse_roots(key: str, texts: list[str]) -> tuple[Root, ...]:
    try:
        return tuple(Root.parse(t) for t in texts)
    except ValueError as exc:
        raise PolicyError(f"policy.{key}: {exc}") from None


def load_policy(section: Mapping[str, Any] | None, source: str = "lifeos.yaml") -> Policy:
    """Validate a ``policy:`` section (or a profile reference) into a :class:`Policy`.

    Raises:
        PolicyError: POLICY_MISSING when ``section`` is None; POLICY_INVALID for an
            unknown key, an unknown profile or a value of the wrong shape.
    """
    if section is None:
        raise PolicyError(
            f"{source}: no policy section; add 'policy: {{profile: code}}' or pass --policy",
            ReasonCode.POLICY_MISSING,
        )
    if not isinstance(section, Mapping):
        raise PolicyError(f"{source}: the policy must be a mapping")
    unknown = sorted(str(k) for k in section if k not in _KEYS and k != "profile")
    if unknown:
        raise PolicyError(f"{source}: unknown policy key(s): {', '.join(unknown)}")
    name = "custom"
    base: dict[str, Any] = {
        "blocked_operations": [],
        "denylist": [],
        "allowlist": [],
        "extensions": {},
        "add_only": {},
        "protected": [],
        "allow_symlinks": False,
        "max_file_bytes": None,
        "max_files": None,
    }
    if "profile" in section:
        profile = section["profile"]
        if not isinstance(profile, str) or profile not in PROFILES:
            raise PolicyError(
                f"{source}: unknown policy profile {profile!r} "
                f"(known: {', '.join(sorted(PROFILES))})"
            )
        name = profile
        base = dict(PROFILES[profile])
    effective = {**base, **{k: v for k, v in section.items() if k != "profile"}}

    ops = _roots("blocked_operations", effective["blocked_operations"])
    bad_ops = sorted(set(ops) - set(OPERATIONS))
    if bad_ops:
        raise PolicyError(f"{source}: unknown blocked operation(s): {', '.join(bad_ops)}")
    allow_symlinks = effective["allow_symlinks"]
    if not isinstance(allow_symlinks, bool):
        raise PolicyError(f"{source}: policy.allow_symlinks must be true or false")
    denylist = _roots("denylist", effective["denylist"])
    allowlist = _roots("allowlist", effective["allowlist"])
    protected = _roots("protected", effective["protected"])
    extensions = _root_map("extensions", effective["extensions"])
    add_only = _root_map("add_only", effective["add_only"])
    max_file_bytes = _limit("max_file_bytes", effective["max_file_bytes"])
    max_files = _limit("max_files", effective["max_files"])
    normalized: dict[str, Any] = {
        "blocked_operations": sorted(set(ops)),
        "denylist": denylist,
        "allowlist": allowlist,
        "extensions": extensions,
        "add_only": add_only,
        "protected": protected,
        "allow_symlinks": allow_symlinks,
        "max_file_bytes": max_file_bytes,
        "max_files": max_files,
    }
    return Policy(
        name=name,
        blocked_operations=frozenset(ops),
        denylist=_parse_roots("denylist", denylist),
        allowlist=_parse_roots("allowlist", allowlist),
        extensions=tuple(
            (r, frozenset(extensions[r.text])) for r in _parse_roots("extensions", list(extensions))
        ),
        add_only=tuple(
            (r, frozenset(add_only[r.text])) for r in _parse_roots("add_only", list(add_only))
        ),
        protected=_parse_roots("protected", protected),
        allow_symlinks=allow_symlinks,
        max_file_bytes=max_file_bytes,
        max_files=max_files,
        section=normalized,
        hash=sha256_hex(normalized),
    )


def load_policy_file(path: Path) -> Policy:
    """Load a policy file (YAML or JSON): the section itself or ``{policy: {...}}``.

    Raises:
        PolicyError: the file is missing, does not parse, or its policy is invalid.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: the policy file does not parse: {exc}") from None
    if data is None:
        raise PolicyError(f"{path}: the policy file is empty", ReasonCode.POLICY_MISSING)
    if isinstance(data, dict) and set(data) == {"policy"}:
        data = data["policy"]
        if data is None:
            raise PolicyError(f"{path}: empty policy section", ReasonCode.POLICY_MISSING)
    return load_policy(data, str(path))


def resolve_policy(spec: str | None, section: Mapping[str, Any] | None) -> Policy:
    """The policy to gate with: ``--policy NAME|FILE`` if given, else the config's section.

    Raises:
        PolicyError: as :func:`load_policy`; also for a name that is neither a
            profile nor a file.
    """
    if spec is None:
        return load_policy(section)
    if spec in PROFILES:
        return load_policy({"profile": spec}, f"profile {spec}")
    path = Path(spec)
    if not path.is_file():
        raise PolicyError(
            f"--policy {spec!r}: neither a profile ({', '.join(sorted(PROFILES))}) nor a file",
            ReasonCode.POLICY_MISSING,
        )
    return load_policy_file(path)
