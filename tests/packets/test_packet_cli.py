"""``lifeos packet validate|new`` through click's CliRunner on the ``packet`` group."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lifeos.cli.packet import packet
from lifeos.ledger.note import Signer
from lifeos.packets import new_packet, packet_hash, sign_packet

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NOW_TEXT = "2026-03-01T12:00:00Z"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIFEOS_STORE", raising=False)
    monkeypatch.delenv("LIFEOS_STORE_URL", raising=False)
    return tmp_path


def run(*args: str) -> Any:
    return CliRunner().invoke(packet, list(args), catch_exceptions=False)


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_validate_pass_and_json(cwd: Path) -> None:
    file = write(cwd / "p.json", new_packet("BUILD_PACKET", NOW))
    result = run("validate", file, "--now", NOW_TEXT)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    result = run("validate", file, "--now", NOW_TEXT, "--json")
    assert json.loads(result.output)["status"] == "PASS"
    assert not (cwd / ".lifeos").exists()  # read-only: no store created


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d.pop("nonce"), 2),
        (lambda d: d.update(packet_type="NOPE_PACKET"), 2),
        (lambda d: d.update(created_at="2026-03-01T12:10:00Z"), 3),
        (lambda d: d.update(schema_version="2.0"), 6),
    ],
)
def test_validate_exit_codes(cwd: Path, mutate: Any, code: int) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    mutate(doc)
    result = run("validate", write(cwd / "p.json", doc), "--now", NOW_TEXT, "--json")
    assert result.exit_code == code
    assert json.loads(result.output)["exit_code"] == code


def test_missing_file_is_generic(cwd: Path) -> None:
    result = run("validate", str(cwd / "nope.json"))
    assert result.exit_code == 1
    assert "[INVALID_INPUT]" in result.output


def test_unparseable_yaml(cwd: Path) -> None:
    (cwd / "p.yaml").write_text("packet_id: [unclosed\n")
    assert run("validate", str(cwd / "p.yaml")).exit_code == 2


def test_record_nonce_then_replay(cwd: Path) -> None:
    file = write(cwd / "p.json", new_packet("BUILD_PACKET", NOW))
    assert run("validate", file, "--now", NOW_TEXT).exit_code == 0
    assert run("validate", file, "--now", NOW_TEXT).exit_code == 0
    assert run("validate", file, "--now", NOW_TEXT, "--record-nonce").exit_code == 0
    result = run("validate", file, "--now", NOW_TEXT)
    assert result.exit_code == 5
    assert "replay" in result.output


def test_bundle_with_signed_approval(cwd: Path) -> None:
    signer = Signer.generate("council")
    key = cwd / "council.pub"
    key.write_text(signer.verifier().key_text + "\n")
    review = new_packet("COUNCIL_REVIEW_PACKET", NOW)
    approval = new_packet("COUNCIL_APPROVAL_PACKET", NOW, chain_id=review["chain_id"])
    approval["payload"].update(
        review_packet_id=review["packet_id"], review_packet_hash=packet_hash(review)
    )
    bundle = cwd / "bundle"
    bundle.mkdir()
    write(bundle / "a.json", sign_packet(approval, signer))
    write(bundle / "r.json", review)
    args = ["validate", "--bundle", str(bundle), "--now", NOW_TEXT]
    assert run(*args, "--key", str(key)).exit_code == 0
    assert run(*args).exit_code == 3  # no trusted key
    review["payload"]["subject"] = "edited"
    write(bundle / "r.json", review)
    result = run(*args, "--key", str(key), "--json")
    assert result.exit_code == 4
    assert json.loads(result.output)["packets"][0]["check"] == "lineage"


def test_empty_bundle(cwd: Path) -> None:
    result = run("validate", "--bundle", str(cwd))
    assert result.exit_code == 1
    assert "PACKET_MISSING" in result.output


def test_usage_errors(cwd: Path) -> None:
    assert run("validate").exit_code == 2
    assert run("validate", "x.json", "--now", "yesterday").exit_code == 2


@pytest.mark.parametrize("as_yaml", [False, True])
def test_new_prints_a_valid_skeleton(cwd: Path, as_yaml: bool) -> None:
    result = run("new", "HANDOFF_PACKET", *(["--yaml"] if as_yaml else []))
    assert result.exit_code == 0
    doc = yaml.safe_load(result.output) if as_yaml else json.loads(result.output)
    assert doc["packet_type"] == "HANDOFF_PACKET"
    path = cwd / ("p.yaml" if as_yaml else "p.json")
    path.write_text(result.output)
    assert run("validate", str(path)).exit_code == 0


def test_new_unknown_type(cwd: Path) -> None:
    assert run("new", "MYSTERY_PACKET").exit_code == 2
