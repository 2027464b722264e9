"""Third-party verification: in-toto-attestation reads our Statement, securesystemslib our DSSE.

Both packages are test-only dependencies (the dev extra).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifeos.evidence import ATTESTATION_FILE, BUNDLE_FILES, PREDICATE_TYPE, pae
from lifeos.ledger.note import Signer, Verifier

MakeBundle = Callable[..., Path]


def _envelope(folder: Path) -> dict[str, Any]:
    env: dict[str, Any] = json.loads((folder / ATTESTATION_FILE).read_text())
    return env


def _keyid(verifier: Verifier) -> str:
    return f"{verifier.name}+{verifier.key_id:08x}"


def _sslib_key(verifier: Verifier, keyid: str | None = None) -> Any:
    signer_mod = pytest.importorskip("securesystemslib.signer")
    return signer_mod.SSlibKey(
        keyid=keyid or _keyid(verifier),
        keytype="ed25519",
        scheme="ed25519",
        keyval={"public": verifier.public_key.hex()},
    )


def test_in_toto_attestation_validates_statement(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    statement_mod = pytest.importorskip("in_toto_attestation.v1.statement")
    statement_pb2 = pytest.importorskip("in_toto_attestation.v1.statement_pb2")
    json_format = pytest.importorskip("google.protobuf.json_format")

    folder = make_bundle(tmp_path, signer)
    payload = base64.b64decode(_envelope(folder)["payload"])
    pb = json_format.Parse(payload.decode("utf-8"), statement_pb2.Statement())
    statement = statement_mod.Statement.copy_from_pb(pb)
    statement.validate()  # raises ValueError on any violation

    assert pb.type == statement_mod.STATEMENT_TYPE_URI
    assert pb.predicate_type == PREDICATE_TYPE
    subjects = {s.name: s.digest["sha256"] for s in pb.subject}
    assert set(subjects) == set(BUNDLE_FILES) - {ATTESTATION_FILE}
    assert pb.predicate["run_id"] == "run-1"


def test_in_toto_attestation_rejects_a_broken_statement() -> None:
    statement_mod = pytest.importorskip("in_toto_attestation.v1.statement")
    broken = statement_mod.Statement([], PREDICATE_TYPE, {"run_id": "x"})
    with pytest.raises(ValueError, match="subject"):
        broken.validate()


def test_securesystemslib_verifies_envelope(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    dsse = pytest.importorskip("securesystemslib.dsse")
    folder = make_bundle(tmp_path, signer)
    envelope = dsse.Envelope.from_dict(_envelope(folder))
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert envelope.pae() == pae(envelope.payload_type, envelope.payload)

    key = _sslib_key(signer.verifier())
    accepted = envelope.verify([key], 1)
    assert list(accepted) == [_keyid(signer.verifier())]


def test_securesystemslib_rejects_other_key(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    dsse = pytest.importorskip("securesystemslib.dsse")
    exceptions = pytest.importorskip("securesystemslib.exceptions")
    folder = make_bundle(tmp_path, signer)
    other = Signer.generate("lifeos/test")
    # Same key id text so securesystemslib actually tries the signature.
    impostor = _sslib_key(other.verifier(), keyid=_keyid(signer.verifier()))
    with pytest.raises(exceptions.VerificationError):
        dsse.Envelope.from_dict(_envelope(folder)).verify([impostor], 1)


def test_securesystemslib_rejects_tampered_payload(
    tmp_path: Path, signer: Signer, make_bundle: MakeBundle
) -> None:
    dsse = pytest.importorskip("securesystemslib.dsse")
    exceptions = pytest.importorskip("securesystemslib.exceptions")
    folder = make_bundle(tmp_path, signer)
    env = _envelope(folder)
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["decision"] = {"result": "PASS"}
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(exceptions.VerificationError):
        dsse.Envelope.from_dict(env).verify([_sslib_key(signer.verifier())], 1)
