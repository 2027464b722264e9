"""Evidence bundles: write/verify round trip, tampering, re-signing, atomic writes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifeos.canonical import canonical_json
from lifeos.clock import FixedClock
from lifeos.evidence import (
    ATTESTATION_FILE,
    BUNDLE_FILES,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    EvidenceError,
    classify,
    pae,
    root_predicate,
    truncate_log,
    verify_bundle,
)
from lifeos.evidence import bundle as bundle_mod
from lifeos.ledger.note import Signer
from lifeos.store import open_store

MakeBundle = Callable[..., Path]
SUBJECTS = [n for n in BUNDLE_FILES if n != ATTESTATION_FILE]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _envelope(folder: Path) -> dict[str, Any]:
    env: dict[str, Any] = json.loads((folder / ATTESTATION_FILE).read_text())
    return env


def _statement(folder: Path) -> dict[str, Any]:
    stmt: dict[str, Any] = json.loads(base64.b64decode(_envelope(folder)["payload"]))
    return stmt


def _reasons(folder: Path, signer: Signer) -> set[tuple[str, str]]:
    report = verify_bundle(folder, signer.verifier())
    return {(p.file, p.reason.value) for p in report.problems}


# -- round trip ---------------------------------------------------------------------------


def test_round_trip(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    folder = make_bundle(tmp_path / ".lifeos", signer)
    assert folder == tmp_path / ".lifeos" / "evidence" / "run-1"
    assert sorted(p.name for p in folder.iterdir()) == sorted(BUNDLE_FILES)
    assert os.listdir(folder.parent) == ["run-1"]  # no temporary folder left

    report = verify_bundle(folder, signer.verifier())
    assert report.ok, report.to_dict()
    assert report.reason_code is None
    assert report.run_id == "run-1"
    assert report.keyid == "+".join(signer.verifier().key_text.split("+")[:2])
    assert report.to_dict()["problems"] == []


def test_file_contents(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    folder = make_bundle(tmp_path, signer)
    exit_report = json.loads((folder / "exit_report.json").read_text())
    assert exit_report["status"] == "BLOCK"
    assert exit_report["reason_code"] == "DENYLISTED_PATH"
    assert exit_report["reason_codes"] == ["DENYLISTED_PATH", "OUTSIDE_ALLOWLIST"]
    changed = json.loads((folder / "changed_files.json").read_text())
    assert changed[2] == {"status": "R", "path": "docs/new.md", "old_path": "docs/old.md"}
    assert {"status", "path"} == set(changed[0])
    for name in ("exit_report.json", "changed_files.json", "classification.json"):
        raw = (folder / name).read_bytes()
        assert raw == canonical_json(json.loads(raw))

    hashes = json.loads((folder / "hashes.json").read_text())
    assert hashes["algorithm"] == "sha256"
    expected = set(BUNDLE_FILES) - {"hashes.json", ATTESTATION_FILE}
    assert set(hashes["files"]) == expected
    for name, digest in hashes["files"].items():
        assert digest == _sha((folder / name).read_bytes())

    stmt = _statement(folder)
    assert stmt["_type"] == STATEMENT_TYPE
    assert stmt["predicateType"] == PREDICATE_TYPE
    assert {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]} == {
        n: _sha((folder / n).read_bytes()) for n in SUBJECTS
    }
    assert stmt["predicate"]["run_id"] == "run-1"
    assert stmt["predicate"]["policy_hash"] == "ab" * 32
    assert stmt["predicate"]["base_commit"] == "1" * 40
    assert stmt["predicate"]["head_commit"] == "2" * 40
    assert stmt["predicate"]["decision"] == {"decision_id": "d-1", "result": "BLOCK"}


def test_pass_without_reasons(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    folder = make_bundle(tmp_path, signer, status="PASS", reason_codes=[])
    exit_report = json.loads((folder / "exit_report.json").read_text())
    assert exit_report["status"] == "PASS"
    assert exit_report["reason_code"] is None
    assert verify_bundle(folder, signer.verifier()).ok


def test_signature_is_ed25519_over_dsse_pae(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    env = _envelope(make_bundle(tmp_path, signer))
    assert env["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    [sig] = env["signatures"]
    assert sig["keyid"] == f"{signer.name}+{signer.key_id:08x}"
    payload = base64.b64decode(env["payload"])
    message = b"DSSEv1 %d %s %d %s" % (
        len(PAYLOAD_TYPE),
        PAYLOAD_TYPE.encode(),
        len(payload),
        payload,
    )
    assert pae(PAYLOAD_TYPE, payload) == message
    assert signer.verifier().verify(message, base64.b64decode(sig["sig"]))


def test_pae_spec_vector() -> None:
    # The example from the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


# -- tampering ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUBJECTS)
def test_tampered_file_is_a_mismatch(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, name: str
) -> None:
    folder = make_bundle(tmp_path, signer)
    path = folder / name
    path.write_bytes(path.read_bytes() + b" ")
    report = verify_bundle(folder, signer.verifier())
    assert report.reason_code == "EVIDENCE_MISMATCH"
    assert (name, "EVIDENCE_MISMATCH") in {(p.file, p.reason.value) for p in report.problems}
    assert {p.file for p in report.problems} == {name}


def test_tampered_payload_is_signature_invalid(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    folder = make_bundle(tmp_path, signer)
    (folder / "runner.log").write_text("nothing to see\n")
    env = _envelope(folder)
    stmt = _statement(folder)
    for subject in stmt["subject"]:
        if subject["name"] == "runner.log":
            subject["digest"]["sha256"] = _sha(b"nothing to see\n")
    env["payload"] = base64.b64encode(canonical_json(stmt)).decode()
    (folder / ATTESTATION_FILE).write_bytes(canonical_json(env))
    report = verify_bundle(folder, signer.verifier())
    assert report.reason_code == "SIGNATURE_INVALID"
    assert (ATTESTATION_FILE, "SIGNATURE_INVALID") in _reasons(folder, signer)
    assert ("runner.log", "EVIDENCE_MISMATCH") in _reasons(folder, signer)  # vs hashes.json


@pytest.mark.parametrize(
    "mutate",
    [
        lambda env: env["signatures"][0].update(sig=base64.b64encode(b"\0" * 64).decode()),
        lambda env: env.update(signatures=[]),
        lambda env: env.update(payloadType="application/json"),
        lambda env: env.update(payload="%%%not base64"),
    ],
    ids=["bad-sig", "no-sigs", "payload-type", "payload-not-b64"],
)
def test_broken_envelope_is_signature_invalid(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, mutate: Callable[[Any], None]
) -> None:
    folder = make_bundle(tmp_path, signer)
    env = _envelope(folder)
    mutate(env)
    (folder / ATTESTATION_FILE).write_bytes(canonical_json(env))
    assert verify_bundle(folder, signer.verifier()).reason_code == "SIGNATURE_INVALID"


def test_attestation_not_json(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    folder = make_bundle(tmp_path, signer)
    (folder / ATTESTATION_FILE).write_bytes(b"\xff not json")
    report = verify_bundle(folder, signer.verifier())
    assert report.reason_code == "SIGNATURE_INVALID"
    assert not report.ok


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_missing_file_is_incomplete(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, name: str
) -> None:
    folder = make_bundle(tmp_path, signer)
    (folder / name).unlink()
    report = verify_bundle(folder, signer.verifier())
    assert report.reason_code == "EVIDENCE_INCOMPLETE"
    assert (name, "EVIDENCE_INCOMPLETE") in {(p.file, p.reason.value) for p in report.problems}


@pytest.mark.parametrize("name", ["extra.txt", ".hidden", "hashes.json.bak"])
def test_extra_file_is_incomplete(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, name: str
) -> None:
    folder = make_bundle(tmp_path, signer)
    (folder / name).write_text("smuggled\n")
    report = verify_bundle(folder, signer.verifier())
    assert report.reason_code == "EVIDENCE_INCOMPLETE"
    assert {(p.file, p.reason.value) for p in report.problems} == {(name, "EVIDENCE_INCOMPLETE")}


def test_extra_folder_is_incomplete(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    folder = make_bundle(tmp_path, signer)
    (folder / "sub").mkdir()
    assert _reasons(folder, signer) == {("sub", "EVIDENCE_INCOMPLETE")}


def test_subject_dropped_and_resigned_is_incomplete(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    """Even a correctly signed statement must name every file."""
    folder = make_bundle(tmp_path, signer)
    stmt = _statement(folder)
    stmt["subject"] = [s for s in stmt["subject"] if s["name"] != "runner.log"]
    (folder / ATTESTATION_FILE).write_bytes(canonical_json(bundle_mod._envelope(stmt, signer)))
    assert _reasons(folder, signer) == {("runner.log", "EVIDENCE_INCOMPLETE")}


def test_hashes_json_must_list_every_file(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    """hashes.json rewritten without a file (and the statement re-signed to match)."""
    folder = make_bundle(tmp_path, signer)
    hashes = json.loads((folder / "hashes.json").read_text())
    del hashes["files"]["classification.json"]
    new = canonical_json(hashes)
    (folder / "hashes.json").write_bytes(new)
    stmt = _statement(folder)
    for subject in stmt["subject"]:
        if subject["name"] == "hashes.json":
            subject["digest"]["sha256"] = _sha(new)
    (folder / ATTESTATION_FILE).write_bytes(canonical_json(bundle_mod._envelope(stmt, signer)))
    assert _reasons(folder, signer) == {("classification.json", "EVIDENCE_INCOMPLETE")}


# -- re-signing ---------------------------------------------------------------------------


def test_resigned_with_fresh_key_fails(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    """Tamper, fix every hash, re-sign with a new key: the original key rejects it."""
    folder = make_bundle(tmp_path, signer)
    (folder / "exit_report.json").write_bytes(
        canonical_json({"status": "PASS", "reason_code": None, "reason_codes": []})
    )
    contents = {n: (folder / n).read_bytes() for n in SUBJECTS if n != "hashes.json"}
    hashes = canonical_json(
        {"algorithm": "sha256", "files": {n: _sha(d) for n, d in contents.items()}}
    )
    (folder / "hashes.json").write_bytes(hashes)
    contents["hashes.json"] = hashes
    stmt = _statement(folder)
    stmt["subject"] = [
        {"name": n, "digest": {"sha256": _sha(d)}} for n, d in sorted(contents.items())
    ]
    forger = Signer.generate("lifeos/test")  # same name, different key
    (folder / ATTESTATION_FILE).write_bytes(canonical_json(bundle_mod._envelope(stmt, forger)))

    assert verify_bundle(folder, forger.verifier()).ok  # a well-formed forgery...
    report = verify_bundle(folder, signer.verifier())  # ...that the trusted key refuses
    assert report.reason_code == "SIGNATURE_INVALID"
    assert [p.file for p in report.problems] == [ATTESTATION_FILE]


def test_bundle_by_another_key_fails(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    folder = make_bundle(tmp_path, Signer.generate("lifeos/other"))
    assert verify_bundle(folder, signer.verifier()).reason_code == "SIGNATURE_INVALID"


# -- atomic write -------------------------------------------------------------------------


def test_failed_write_leaves_nothing(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bundle_mod._write_file
    calls: list[str] = []

    def flaky(folder: Path, name: str, data: bytes) -> None:
        calls.append(name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(folder, name, data)

    monkeypatch.setattr(bundle_mod, "_write_file", flaky)
    with pytest.raises(OSError, match="No space"):
        make_bundle(tmp_path, signer)
    assert len(calls) == 3
    assert os.listdir(tmp_path / "evidence") == []

    monkeypatch.setattr(bundle_mod, "_write_file", real)
    folder = make_bundle(tmp_path, signer)  # a retry succeeds
    assert verify_bundle(folder, signer.verifier()).ok


def test_failed_rename_leaves_nothing(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(bundle_mod.os, "rename", boom)
    with pytest.raises(OSError, match="rename failed"):
        make_bundle(tmp_path, signer)
    assert os.listdir(tmp_path / "evidence") == []


def test_existing_bundle_is_not_overwritten(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    folder = make_bundle(tmp_path, signer)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(EvidenceError, match="already exists"):
        make_bundle(tmp_path, signer, status="PASS", reason_codes=[])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert os.listdir(tmp_path / "evidence") == ["run-1"]


@pytest.mark.parametrize(
    ("run_id", "overrides"),
    [
        ("../escape", {}),
        ("a/b", {}),
        ("", {}),
        ("..", {}),
        ("run-1", {"status": "OK"}),
        ("run-1", {"reason_codes": [""]}),
        ("run-1", {"changed_files": [{"status": "M"}]}),
        ("run-1", {"changed_files": [{"status": "M", "path": "a", "mode": "x"}]}),
        ("run-1", {"changed_files": [{"status": "R", "path": "a", "old_path": ""}]}),
    ],
)
def test_bad_arguments_write_nothing(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle, run_id: str, overrides: dict[str, Any]
) -> None:
    with pytest.raises(EvidenceError):
        make_bundle(tmp_path, signer, run_id=run_id, **overrides)
    assert not (tmp_path / "evidence").exists() or os.listdir(tmp_path / "evidence") == []


def test_verify_missing_folder(tmp_path: Path, signer: Signer) -> None:
    with pytest.raises(EvidenceError) as info:
        verify_bundle(tmp_path / "nope", signer.verifier())
    assert info.value.exit_code == 2


# -- runner.log ---------------------------------------------------------------------------


def test_runner_log_truncated_to_last_500_lines(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    log = "".join(f"line {i}\n" for i in range(1, 1201))
    folder = make_bundle(tmp_path, signer, runner_log=log)
    lines = (folder / "runner.log").read_text().splitlines()
    assert len(lines) == 501
    assert "truncated" in lines[0] and "last 500 of 1200" in lines[0]
    assert lines[1] == "line 701"
    assert lines[-1] == "line 1200"
    assert verify_bundle(folder, signer.verifier()).ok


@pytest.mark.parametrize("log", ["", "one line", "a\nb\n", "".join(f"{i}\n" for i in range(500))])
def test_short_runner_log_kept_whole(log: str) -> None:
    assert truncate_log(log) == log


def test_truncate_without_final_newline() -> None:
    text = "\n".join(str(i) for i in range(600))
    out = truncate_log(text)
    assert out.split("\n")[1:] == [str(i) for i in range(100, 600)]
    assert "truncated" in out.split("\n")[0]


# -- classification -----------------------------------------------------------------------

GOV = root_predicate(["docs/01_governance/", "lifeos.yaml", "lifeos.pub"])
DENY = root_predicate(["config/", "scripts/"])


@pytest.mark.parametrize(
    ("changes", "is_governance", "risk"),
    [
        ([{"status": "M", "path": "src/a.py"}], False, "P1"),
        ([{"status": "A", "path": "docs/01_governance/rules.md"}], True, "P0"),
        ([{"status": "M", "path": "lifeos.yaml"}], True, "P0"),
        ([{"status": "M", "path": "config/app.yaml"}], False, "P0"),
        ([{"status": "D", "path": "src/a.py"}], False, "P0"),
        ([{"status": "R", "path": "docs/x.md", "old_path": "docs/01_governance/x.md"}], True, "P0"),
        ([{"status": "A", "path": "docsx/01_governance/a.md"}], False, "P1"),
        ([{"status": "A", "path": "lifeos.yaml.bak"}], False, "P1"),
        ([], False, "P1"),
    ],
)
def test_classification(changes: list[dict[str, str]], is_governance: bool, risk: str) -> None:
    result = classify(changes, is_governance_path=GOV, is_denylisted_path=DENY)
    assert result["is_governance"] is is_governance
    assert result["risk_level"] == risk


def test_classification_file(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    changes = [{"status": "M", "path": "docs/01_governance/charter.md"}]
    folder = make_bundle(tmp_path, signer, changed_files=changes)
    data = json.loads((folder / "classification.json").read_text())
    assert data["is_governance"] is True
    assert data["risk_level"] == "P0"
    assert data["governance_paths"] == ["docs/01_governance/charter.md"]


# -- store copies -------------------------------------------------------------------------


def test_store_copies(tmp_path: Path, signer: Signer, make_bundle: MakeBundle) -> None:
    lifeos_dir = tmp_path / ".lifeos"
    store = open_store(lifeos_dir, FixedClock())
    try:
        folder = make_bundle(lifeos_dir, signer, store=store)
        records = store.list_artifacts("run-1")
        assert sorted(r["file_path"] for r in records) == sorted(
            f"evidence/{n}" for n in BUNDLE_FILES
        )
        for record in records:
            got = store.get_artifact(record["artifact_id"])
            assert got is not None
            assert got[1] == (folder / record["file_path"].split("/", 1)[1]).read_bytes()
            assert record["kind"] == "evidence"
    finally:
        store.close()
