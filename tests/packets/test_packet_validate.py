"""The packet validator: the 9-step chain, its exit codes, read-only replay, lineage."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.clock import FixedClock
from lifeos.ledger.note import Signer
from lifeos.packets import (
    CORE_PACKET_TYPES,
    MAX_PAYLOAD_BYTES,
    new_packet,
    packet_hash,
    sign_packet,
    validate_bundle,
    validate_file,
    validate_packet,
)
from lifeos.packets.validate import schema_validator
from lifeos.store.sqlite import SQLiteStore

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def check(doc: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
    kwargs.setdefault("now", NOW)
    result = validate_packet(dump(doc), source="p.json", **kwargs)
    return result.exit_code, result.check


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("council")


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "lifeos.db", FixedClock())
    yield s  # type: ignore[misc]
    s.close()


def approval_pair(signer: Signer) -> tuple[dict[str, Any], dict[str, Any]]:
    review = new_packet("COUNCIL_REVIEW_PACKET", NOW)
    approval = new_packet("COUNCIL_APPROVAL_PACKET", NOW, chain_id=review["chain_id"])
    approval["payload"]["review_packet_id"] = review["packet_id"]
    approval["payload"]["review_packet_hash"] = packet_hash(review)
    return review, sign_packet(approval, signer)


def write_bundle(folder: Path, *docs: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        (folder / f"{i:02d}.json").write_text(json.dumps(doc))
    return folder


# -- format checks are really on ----------------------------------------------------------


def test_format_checker_rejects_bad_uuid_and_date() -> None:
    payload_v = schema_validator("COUNCIL_APPROVAL_PACKET")
    good = new_packet("COUNCIL_APPROVAL_PACKET", NOW)["payload"]
    assert not list(payload_v.iter_errors(good))
    assert list(payload_v.iter_errors({**good, "review_packet_id": "not-a-uuid"}))
    assert list(payload_v.iter_errors({**good, "decided_at": "yesterday"}))
    assert list(payload_v.iter_errors({**good, "decided_at": "2026-02-30T00:00:00Z"}))
    envelope_v = schema_validator("envelope")
    doc = new_packet("BUILD_PACKET", NOW)
    assert not list(envelope_v.iter_errors(doc))
    assert list(envelope_v.iter_errors({**doc, "nonce": "1234"}))
    assert list(envelope_v.iter_errors({**doc, "created_at": "March 1st"}))


def test_bad_uuid_in_payload_fails_with_schema_code() -> None:
    doc = new_packet("CONTEXT_RESPONSE_PACKET", NOW)
    doc["payload"]["request_packet_id"] = "zzz"
    assert check(doc) == (2, "payload")


# -- every exit code ----------------------------------------------------------------------


@pytest.mark.parametrize("packet_type", [t for t in CORE_PACKET_TYPES if "APPROVAL" not in t])
def test_skeletons_pass(packet_type: str) -> None:
    assert check(new_packet(packet_type, NOW)) == (0, "ok")


def test_unreadable_file_is_generic(tmp_path: Path) -> None:
    result = validate_file(tmp_path / "missing.json", now=NOW)
    assert (result.exit_code, result.check) == (1, "read")


def test_empty_bundle_is_generic(tmp_path: Path) -> None:
    assert validate_bundle(tmp_path, now=NOW).exit_code == 1


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("p.json", b"{not json"),
        ("p.json", b'{"a": 1, "a": 2}'),
        ("p.json", b'{"a": NaN}'),
        ("p.json", b"[" * 100_000),
        ("p.yaml", b"a: [1, 2\n"),
        ("p.yaml", b"a: 1\na: 2\n"),
        ("p.yaml", b"\xff\xfe binary"),
        ("p.yaml", b"- just\n- a list\n"),
        ("p.yaml", b"a: !!binary aGk=\n"),
    ],
)
def test_unparseable_packets_are_schema_violations(name: str, data: bytes) -> None:
    result = validate_packet(data, source=name, now=NOW)
    assert result.exit_code == 2
    assert result.check in {"parse", "envelope"}


def test_yaml_packet_passes_and_timestamps_stay_strings() -> None:
    import yaml

    doc = new_packet("BUILD_PACKET", NOW)
    text = yaml.safe_dump(doc).replace(f"'{doc['created_at']}'", doc["created_at"])
    assert f"created_at: {doc['created_at']}" in text  # unquoted: would be a datetime
    assert validate_packet(text.encode(), source="p.yaml", now=NOW).ok


def test_oversized_packet(tmp_path: Path) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    doc["payload"]["goal"] = "x" * MAX_PAYLOAD_BYTES
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc))
    result = validate_file(path, now=NOW)
    assert (result.exit_code, result.check) == (2, "limits")


def test_missing_envelope_field_and_bad_uuid() -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    del doc["chain_id"]
    assert check(doc) == (2, "envelope")
    doc = new_packet("BUILD_PACKET", NOW)
    doc["packet_id"] = doc["packet_id"].upper()  # accepted by the format, not canonical
    assert check(doc) == (2, "uuid")


def test_packet_from_the_future_beyond_skew() -> None:
    doc = new_packet("BUILD_PACKET", NOW + dt.timedelta(seconds=301))
    assert check(doc) == (3, "timestamp")
    assert check(new_packet("BUILD_PACKET", NOW + dt.timedelta(seconds=299))) == (0, "ok")


def test_expired_ttl() -> None:
    doc = new_packet("BUILD_PACKET", NOW - dt.timedelta(hours=73))
    assert check(doc) == (3, "ttl")
    doc["ttl_hours"] = 74
    assert check(doc) == (0, "ok")


def test_unknown_type_fails_closed() -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    doc["packet_type"] = "MYSTERY_PACKET"
    assert check(doc) == (2, "taxonomy")


def test_bad_payload() -> None:
    doc = new_packet("REVIEW_PACKET", NOW)
    doc["payload"]["verdict"] = "MAYBE"
    assert check(doc) == (2, "payload")


@pytest.mark.parametrize("version", ["2.0", "1.3", "1.9.1"])
def test_incompatible_version(version: str) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    doc["schema_version"] = version
    assert check(doc) == (6, "version")


def test_malformed_version_is_schema() -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    doc["schema_version"] = "v1"
    assert check(doc) == (2, "envelope")
    doc["schema_version"] = "1.0.3"
    assert check(doc) == (0, "ok")


# -- signatures ---------------------------------------------------------------------------


def test_approval_without_signature(signer: Signer) -> None:
    _, approval = approval_pair(signer)
    del approval["signatures"]
    assert check(approval, verifiers=[signer.verifier()]) == (3, "signature")


def test_approval_signed_by_untrusted_key(signer: Signer) -> None:
    _, approval = approval_pair(Signer.generate("mallory"))
    assert check(approval, verifiers=[signer.verifier()]) == (3, "signature")
    assert check(approval) == (3, "signature")  # no trusted key at all


def test_tampered_approval(signer: Signer) -> None:
    _, approval = approval_pair(signer)
    approval["payload"]["decision"] = "REJECTED"
    assert check(approval, verifiers=[signer.verifier()]) == (3, "signature")
    _, approval = approval_pair(signer)
    approval["signatures"][0]["sig"] = "!!not base64"
    assert check(approval, verifiers=[signer.verifier()]) == (3, "signature")


def test_valid_approval_in_bundle(signer: Signer, tmp_path: Path) -> None:
    review, approval = approval_pair(signer)
    folder = write_bundle(tmp_path / "b", approval, review)
    result = validate_bundle(folder, now=NOW, verifiers=[signer.verifier()])
    assert result.exit_code == 0, result.to_dict()
    assert [r.check for r in result.results] == ["ok", "ok"]


def test_approval_alone_fails_lineage(signer: Signer) -> None:
    _, approval = approval_pair(signer)
    assert check(approval, verifiers=[signer.verifier()]) == (4, "lineage")


# -- lineage ------------------------------------------------------------------------------


def test_lineage_mismatch(signer: Signer, tmp_path: Path) -> None:
    review, approval = approval_pair(signer)
    review["payload"]["subject"] = "changed after approval"
    folder = write_bundle(tmp_path / "b", review, approval)
    result = validate_bundle(folder, now=NOW, verifiers=[signer.verifier()])
    assert result.exit_code == 4
    assert result.results[1].check == "lineage"


def test_lineage_names_a_non_review(signer: Signer, tmp_path: Path) -> None:
    build = new_packet("BUILD_PACKET", NOW)
    approval = new_packet("COUNCIL_APPROVAL_PACKET", NOW, chain_id=build["chain_id"])
    approval["payload"]["review_packet_id"] = build["packet_id"]
    approval["payload"]["review_packet_hash"] = packet_hash(build)
    folder = write_bundle(tmp_path / "b", build, sign_packet(approval, signer))
    assert validate_bundle(folder, now=NOW, verifiers=[signer.verifier()]).exit_code == 4


# -- replay -------------------------------------------------------------------------------


def test_read_only_twice_same_answer(store: SQLiteStore) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    assert check(doc, store=store) == (0, "ok")
    assert check(doc, store=store) == (0, "ok")
    assert not store.nonce_seen(doc["nonce"])


def test_record_nonce_then_replay(store: SQLiteStore) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    assert check(doc, store=store, record_nonce=True) == (0, "ok")
    assert store.nonce_seen(doc["nonce"])
    assert check(doc, store=store, record_nonce=True) == (5, "replay")
    assert check(doc, store=store) == (5, "replay")


def test_failed_packet_does_not_consume(store: SQLiteStore) -> None:
    doc = new_packet("BUILD_PACKET", NOW)
    doc["payload"] = {}
    assert check(doc, store=store, record_nonce=True) == (2, "payload")
    assert not store.nonce_seen(doc["nonce"])


def test_nonce_twice_in_a_bundle(tmp_path: Path) -> None:
    a = new_packet("BUILD_PACKET", NOW)
    b = new_packet("HANDOFF_PACKET", NOW)
    b["nonce"] = a["nonce"]
    result = validate_bundle(write_bundle(tmp_path / "b", a, b), now=NOW)
    assert result.exit_code == 5
    assert [r.exit_code for r in result.results] == [0, 5]


def test_bundle_record_nonce(tmp_path: Path, store: SQLiteStore) -> None:
    folder = write_bundle(tmp_path / "b", new_packet("BUILD_PACKET", NOW))
    assert validate_bundle(folder, now=NOW, store=store).exit_code == 0
    assert validate_bundle(folder, now=NOW, store=store, record_nonce=True).exit_code == 0
    assert validate_bundle(folder, now=NOW, store=store, record_nonce=True).exit_code == 5


# -- fuzz ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300), suffix=st.sampled_from(["p.json", "p.yaml"]))
def test_random_bytes_never_raise(data: bytes, suffix: str) -> None:
    result = validate_packet(data, source=suffix, now=NOW)
    assert result.exit_code in {1, 2, 3, 4, 5, 6}


@settings(max_examples=150, deadline=None)
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "packet_id",
                "packet_type",
                "schema_version",
                "created_at",
                "nonce",
                "ttl_hours",
                "chain_id",
                "priority",
                "payload",
                "signatures",
                "extra",
            ]
        ),
        json_values,
        max_size=4,
    ),
    packet_type=st.sampled_from(CORE_PACKET_TYPES),
)
def test_mutated_packets_never_raise(overrides: dict[str, Any], packet_type: str) -> None:
    doc = {**new_packet(packet_type, NOW), **overrides}
    result = validate_packet(json.dumps(doc).encode(), source="p.json", now=NOW)
    assert result.exit_code in {0, 1, 2, 3, 4, 5, 6}
