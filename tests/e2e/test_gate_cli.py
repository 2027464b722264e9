"""``lifeos gate check`` end to end, in temporary git repositories.

The command is driven through ``lifeos.cli.main`` with ``gate`` added to the command
table for the test (the same error handling and exit codes as the installed command).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import GIT_ENV, git

from lifeos.cli import COMMANDS, main


@pytest.fixture(autouse=True)
def gate_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(COMMANDS, "gate", ("lifeos.cli.gate:gate", "Judge a change by policy."))


def run(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        code = main(["gate", "check", *args])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    return code, out.out, out.err


def decision(
    repo: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run(repo, capsys, "--json", *args)
    assert out, err
    return code, json.loads(out)


def expected_tree(repo: Path, tmp_path: Path) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(tmp_path / "expect-index")}
    for args in (["read-tree", "HEAD"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return subprocess.run(
        ["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def write(repo: Path, path: str, text: str = "x\n") -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_worktree_pass_gates_exactly_the_tree_to_commit(
    git_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(git_repo, "src/app.py", "print(1)\n")
    write(git_repo, "docs/guide.md")
    git(git_repo, "add", "docs/guide.md")
    index_before = (git_repo / ".git" / "index").read_bytes()
    code, record = decision(git_repo, capsys, "--policy", "code")
    assert code == 0
    assert record["result"] == "PASS" and record["head"] is None
    assert {c["path"] for c in record["changes"]} == {"src/app.py", "docs/guide.md"}
    assert (git_repo / ".git" / "index").read_bytes() == index_before
    assert record["tree"] == expected_tree(git_repo, tmp_path)
    assert set(record) >= {"decision_id", "policy_hash", "input_digest", "timestamp"}


def test_worktree_block_exit_3(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(git_repo, "config/secrets.yaml")
    write(git_repo, "src/ok.py")
    code, out, _ = run(git_repo, capsys, "--policy", "code")
    assert code == 3
    assert out.startswith("BLOCK")
    assert "DENYLISTED_PATH  config/secrets.yaml" in out


def test_lifeos_owned_paths_are_not_gated(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (".lifeos/store.db", "artifacts/status/s.json", "artifacts/packets/status/p"):
        write(git_repo, path)
    code, record = decision(git_repo, capsys, "--policy", "code")
    assert code == 0 and record["changes"] == []


def test_commit_range_and_policy_from_lifeos_yaml(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(git_repo, "lifeos.yaml", "policy:\n  profile: seed-v2\n")
    git(git_repo, "add", "lifeos.yaml")
    git(git_repo, "commit", "-q", "-m", "config")
    base = git(git_repo, "rev-parse", "HEAD").strip()
    write(git_repo, "docs/a.md")
    git(git_repo, "add", "docs/a.md")
    git(git_repo, "commit", "-q", "-m", "docs")
    code, record = decision(git_repo, capsys, "--base", base, "--head", "HEAD")
    assert code == 0 and record["policy_name"] == "seed-v2"
    assert record["head"] == git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "mv", "docs/a.md", "docs/b.md")
    git(git_repo, "commit", "-q", "-m", "mv")
    code, record = decision(git_repo, capsys, "--base", "HEAD~1", "--head", "HEAD")
    assert code == 3 and record["reason_codes"] == ["PH2_RENAME_BLOCKED"]


def test_user_config_cannot_change_the_verdict(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(git_repo, "docs/a.md", "some words\n" * 50)
    git(git_repo, "add", "docs/a.md")
    git(git_repo, "commit", "-q", "-m", "a")
    git(git_repo, "mv", "docs/a.md", "docs/b.md")
    git(git_repo, "commit", "-q", "-m", "mv")
    _, plain = decision(
        git_repo, capsys, "--policy", "seed-v2", "--base", "HEAD~1", "--head", "HEAD"
    )
    for key, value in [
        ("diff.renames", "false"),
        ("diff.renameLimit", "1"),
        ("core.quotePath", "true"),
        ("diff.external", "/bin/false"),
        ("diff.noprefix", "true"),
    ]:
        git(git_repo, "config", key, value)
    code, configured = decision(
        git_repo, capsys, "--policy", "seed-v2", "--base", "HEAD~1", "--head", "HEAD"
    )
    assert code == 3
    assert configured["reason_codes"] == ["PH2_RENAME_BLOCKED"]
    plain.pop("timestamp")
    configured.pop("timestamp")
    assert configured == plain


def test_bad_base_revision(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(git_repo, capsys, "--policy", "code", "--base", "no-such-rev")
    assert code == 2 and "no-such-rev" in err and "[INVALID_INPUT]" in err


def test_bad_head_revision(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(git_repo, capsys, "--policy", "code", "--head", "--output=x")
    assert code == 2 and "[INVALID_INPUT]" in err


def test_repository_without_commits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    code, _, err = run(repo, capsys, "--policy", "code")
    assert code == 2 and "no commits" in err


def test_policy_with_unknown_key(
    git_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy:\n  profile: code\n  allow_everything: true\n")
    code, _, err = run(git_repo, capsys, "--policy", str(policy))
    assert code == 2 and "allow_everything" in err and "[POLICY_INVALID]" in err


def test_policy_missing(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(git_repo, capsys)
    assert code == 2 and "[POLICY_MISSING]" in err


def test_not_a_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(tmp_path, capsys, "--policy", "code")
    assert code == 2 and "not inside a git repository" in err


def test_untracked_submodule_and_symlink_block(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inner = git_repo / "src" / "vendor"
    inner.mkdir(parents=True)
    git(inner, "init", "-q", "-b", "main")
    write(inner, "x.py")
    git(inner, "add", "x.py")
    git(inner, "commit", "-q", "-m", "inner")
    (git_repo / "src" / "link").symlink_to("../../outside")
    code, record = decision(git_repo, capsys, "--policy", "code")
    assert code == 3
    assert {"SUBMODULE_BLOCKED", "SYMLINK_BLOCKED"} <= set(record["reason_codes"])
