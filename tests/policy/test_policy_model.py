"""The gate policy: profiles, validation, the policy hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeos.canonical import sha256_hex
from lifeos.errors import EXIT_BAD_INPUT, ReasonCode
from lifeos.policy.model import PROFILES, PolicyError, load_policy, resolve_policy


def test_seed_v2_is_the_seed_policy_exactly() -> None:
    policy = load_policy({"profile": "seed-v2"})
    assert policy.name == "seed-v2"
    assert policy.blocked_operations == {"delete", "rename", "copy"}
    assert [r.text for r in policy.denylist] == [
        "config/",
        "docs/00_foundations/",
        "docs/01_governance/",
        "scripts/",
    ]
    assert sorted(r.text for r in policy.allowlist) == ["artifacts/review_packets/", "docs/"]
    assert [(r.text, sorted(e)) for r, e in policy.extensions] == [("docs/", [".md"])]
    assert [(r.text, sorted(e)) for r, e in policy.add_only] == [
        ("artifacts/review_packets/", [".md"])
    ]
    assert policy.allow_symlinks is False


def test_code_profile() -> None:
    policy = load_policy({"profile": "code"})
    assert [r.text for r in policy.allowlist] == ["src/", "tests/", "docs/"]
    assert {r.text for r in policy.denylist} == {
        ".github/",
        "scripts/",
        "config/",
        "lifeos.yaml",
        "lifeos.pub",
    }
    assert not policy.denylist[-1].is_dir


def test_hash_is_canonical_hash_of_effective_section() -> None:
    policy = load_policy({"profile": "code"})
    assert policy.hash == sha256_hex(policy.section)
    explicit = load_policy({k: v for k, v in PROFILES["code"].items()})
    assert explicit.hash == policy.hash
    assert load_policy({"profile": "code", "max_files": 3}).hash != policy.hash
    assert load_policy({"profile": "seed-v2"}).hash != policy.hash


def test_hash_ignores_order_of_blocked_operations() -> None:
    a = load_policy({"blocked_operations": ["copy", "delete"]})
    b = load_policy({"blocked_operations": ["delete", "copy"]})
    assert a.hash == b.hash


def test_profile_keys_can_be_overridden() -> None:
    policy = load_policy({"profile": "code", "allow_symlinks": True})
    assert policy.allow_symlinks and policy.name == "code"


def test_missing_policy() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(None)
    assert err.value.reason is ReasonCode.POLICY_MISSING
    assert err.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    "section",
    [
        {"profile": "nope"},
        {"denylist": ["config/"], "bogus": 1},
        {"blocked_operations": ["explode"]},
        {"denylist": "config/"},
        {"denylist": ["../x/"]},
        {"allowlist": ["/abs/"]},
        {"extensions": {"docs": [".md"]}},
        {"extensions": {"docs/": ["md"]}},
        {"add_only": ["x/"]},
        {"allow_symlinks": "yes"},
        {"max_file_bytes": -1},
        {"max_files": True},
        {"protected": [".git/"]},
    ],
)
def test_invalid_policy(section: dict[str, object]) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(section)
    assert err.value.reason is ReasonCode.POLICY_INVALID


def test_unknown_key_is_named() -> None:
    with pytest.raises(PolicyError, match="bogus"):
        load_policy({"profile": "code", "bogus": 1})


def test_resolve_name_file_and_config(tmp_path: Path) -> None:
    assert resolve_policy("seed-v2", None).name == "seed-v2"
    assert resolve_policy(None, {"profile": "code"}).name == "code"
    file = tmp_path / "policy.yaml"
    file.write_text("policy:\n  profile: code\n  max_files: 10\n")
    assert resolve_policy(str(file), None).max_files == 10
    bare = tmp_path / "bare.json"
    bare.write_text('{"allowlist": ["docs/"]}')
    assert [r.text for r in resolve_policy(str(bare), None).allowlist] == ["docs/"]


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as err:
        resolve_policy(None, None)
    assert err.value.reason is ReasonCode.POLICY_MISSING
    with pytest.raises(PolicyError):
        resolve_policy(str(tmp_path / "missing.yaml"), None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: [unclosed\n")
    with pytest.raises(PolicyError) as err:
        resolve_policy(str(bad), None)
    assert err.value.reason is ReasonCode.POLICY_INVALID
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(PolicyError) as err:
        resolve_policy(str(empty), None)
    assert err.value.reason is ReasonCode.POLICY_MISSING
