"""``lifeos evidence verify`` through click's CliRunner on the ``evidence`` group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lifeos.cli.evidence import evidence
from lifeos.errors import LifeOSError
from lifeos.ledger.keys import PUBLIC_KEY_FILE, ensure_keypair
from lifeos.ledger.note import Signer
from lifeos.repo import detect_repo

MakeBundle = Callable[..., Path]


class Outcome:
    """Exit code and output of one invocation, mapped as ``lifeos.cli.main`` does."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run(*args: str) -> Outcome:
    result = CliRunner().invoke(evidence, list(args), standalone_mode=False)
    exc = result.exception
    stderr = result.stderr
    if isinstance(exc, LifeOSError):
        return Outcome(exc.exit_code, result.stdout, stderr + exc.one_line())
    if isinstance(exc, click.ClickException):
        return Outcome(2, result.stdout, stderr + exc.format_message())
    if exc is not None:
        raise exc
    assert isinstance(result.return_value, int)
    return Outcome(result.return_value, result.stdout, stderr)


@pytest.fixture
def repo_signer(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Signer]:
    """The repository (as cwd) and its key, with lifeos.pub written."""
    monkeypatch.chdir(git_repo)
    signer, created = ensure_keypair(detect_repo(git_repo))
    assert created and (git_repo / PUBLIC_KEY_FILE).is_file()
    return git_repo, signer


def test_verify_by_run_id_and_path(
    repo_signer: tuple[Path, Signer], make_bundle: MakeBundle
) -> None:
    root, signer = repo_signer
    folder = make_bundle(root / ".lifeos", signer)
    by_id = run("verify", "run-1")
    assert by_id.code == 0, by_id.stderr
    assert "evidence OK" in by_id.stdout
    by_path = run("verify", str(folder))
    assert by_path.code == 0, by_path.stderr


def test_verify_json(repo_signer: tuple[Path, Signer], make_bundle: MakeBundle) -> None:
    root, signer = repo_signer
    make_bundle(root / ".lifeos", signer)
    out = run("verify", "run-1", "--json")
    assert out.code == 0
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert report["run_id"] == "run-1"
    assert report["problems"] == []


def test_tampered_exits_3_naming_the_file(
    repo_signer: tuple[Path, Signer], make_bundle: MakeBundle
) -> None:
    root, signer = repo_signer
    folder = make_bundle(root / ".lifeos", signer)
    (folder / "classification.json").write_text('{"is_governance":false,"risk_level":"P1"}')
    out = run("verify", "run-1")
    assert out.code == 3
    assert "classification.json" in out.stderr
    assert "[EVIDENCE_MISMATCH]" in out.stderr

    as_json = run("verify", "run-1", "--json")
    assert as_json.code == 3
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["reason_code"] == "EVIDENCE_MISMATCH"
    assert [p["file"] for p in report["problems"]] == ["classification.json"]


def test_missing_file_exits_3(repo_signer: tuple[Path, Signer], make_bundle: MakeBundle) -> None:
    root, signer = repo_signer
    folder = make_bundle(root / ".lifeos", signer)
    (folder / "runner.log").unlink()
    out = run("verify", "run-1")
    assert out.code == 3
    assert "runner.log" in out.stderr and "[EVIDENCE_INCOMPLETE]" in out.stderr


def test_key_option(
    repo_signer: tuple[Path, Signer], make_bundle: MakeBundle, tmp_path: Path
) -> None:
    root, signer = repo_signer
    make_bundle(root / ".lifeos", signer)
    other = tmp_path / "other.pub"
    other.write_text(Signer.generate("lifeos/other").verifier().key_text + "\n")
    out = run("verify", "run-1", "--key", str(other))
    assert out.code == 3
    assert "[SIGNATURE_INVALID]" in out.stderr

    same = tmp_path / "same.pub"
    same.write_text(signer.verifier().key_text + "\n")
    assert run("verify", "run-1", "--key", str(same)).code == 0


def test_bundle_signed_by_a_key_only_in_lifeos_dir_fails(
    repo_signer: tuple[Path, Signer], make_bundle: MakeBundle
) -> None:
    """A bundle re-signed with a new key is refused: trust comes from lifeos.pub."""
    root, _ = repo_signer
    make_bundle(root / ".lifeos", Signer.generate("lifeos/test"))
    out = run("verify", "run-1")
    assert out.code == 3
    assert "[SIGNATURE_INVALID]" in out.stderr


@pytest.mark.parametrize("target", ["no-such-run", "missing/dir", "run-1/../x"])
def test_unknown_target_is_bad_input(repo_signer: tuple[Path, Signer], target: str) -> None:
    out = run("verify", target)
    assert out.code == 2
    assert "no evidence bundle" in out.stderr


def test_no_public_key_is_bad_input(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch, signer: Signer, make_bundle: MakeBundle
) -> None:
    monkeypatch.chdir(git_repo)
    make_bundle(git_repo / ".lifeos", signer)
    out = run("verify", "run-1")
    assert out.code == 2
    assert "KEY_MISSING" in out.stderr


def test_bad_key_file_is_bad_input(
    repo_signer: tuple[Path, Signer], make_bundle: MakeBundle, tmp_path: Path
) -> None:
    root, signer = repo_signer
    make_bundle(root / ".lifeos", signer)
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    assert run("verify", "run-1", "--key", str(bad)).code == 2


def test_missing_argument_is_usage_error() -> None:
    assert run("verify").code == 2


def test_empty_folder_is_incomplete(repo_signer: tuple[Path, Signer], tmp_path: Path) -> None:
    """A folder given by path that holds no bundle fails verification (every file missing)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run("verify", str(empty))
    assert out.code == 3
    assert "[EVIDENCE_INCOMPLETE]" in out.stderr
