"""Packet validation: the seeds' packet schema v1.2 and its 9-step validation chain.

A packet is one JSON or YAML mapping: the envelope fields (``packet_id``, ``packet_type``,
``schema_version``, ``created_at``, ``source_agent``, ``target_agent``, ``chain_id``,
``priority``, ``nonce``, ``ttl_hours``, optional ``parent_packet_id``), the per-type
``payload`` object and, when signed, ``signatures``: DSSE signatures
``[{"keyid", "sig"}]`` where ``sig`` is base64 Ed25519 over
``PAE("application/vnd.lifeos.packet+json", canonical_json(packet without signatures))``.

Checks run in the seeds' order and stop at the first failure:

1. envelope (required fields, schema-driven; an unsupported ``schema_version`` is 6)
2. UUIDs (``packet_id``, ``chain_id``, ``nonce``, ``parent_packet_id``)
3. timestamp and clock skew (at most 300 s in the future of ``now``)
4. TTL (``created_at + ttl_hours`` not before ``now``)
5. signature (required on COUNCIL_APPROVAL_PACKET; any signature present must verify)
6. taxonomy (unknown types fail closed)
7. payload (the type's JSON Schema)
8. replay (a nonce seen before in the store, or twice in one bundle)
9. lineage (an approval's ``review_packet_hash`` is the canonical SHA-256 of the review
   packet it names, which must be in the same bundle; fail closed otherwise)

Validation is read-only: the nonce is consumed only with ``record_nonce=True``, and only
when every check passed. Exit codes are the seeds' (DESIGN.md's one exception): 0 pass,
1 generic, 2 schema, 3 security, 4 lineage, 5 replay, 6 version incompatible.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lifeos.canonical import canonical_json, sha256_hex
from lifeos.errors import CanonicalError, ReasonCode

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from lifeos.ledger.note import Signer, Verifier

__all__ = [
    "CORE_PACKET_TYPES",
    "EXIT_FAIL_GENERIC",
    "EXIT_LINEAGE_VIOLATION",
    "EXIT_PASS",
    "EXIT_REPLAY_VIOLATION",
    "EXIT_SCHEMA_VIOLATION",
    "EXIT_SECURITY_VIOLATION",
    "EXIT_VERSION_INCOMPATIBLE",
    "MAX_CLOCK_SKEW_SECONDS",
    "MAX_PAYLOAD_BYTES",
    "PACKET_PAYLOAD_TYPE",
    "SCHEMA_VERSION",
    "schema_problem",
    "BundleResult",
    "NonceStore",
    "PacketResult",
    "dsse_pae",
    "new_packet",
    "packet_hash",
    "parse_packet",
    "schema_validator",
    "sign_packet",
    "validate_bundle",
    "validate_file",
    "validate_packet",
]

EXIT_PASS = 0
EXIT_FAIL_GENERIC = 1
EXIT_SCHEMA_VIOLATION = 2
EXIT_SECURITY_VIOLATION = 3
EXIT_LINEAGE_VIOLATION = 4
EXIT_REPLAY_VIOLATION = 5
EXIT_VERSION_INCOMPATIBLE = 6

SCHEMA_VERSION = "1.2"
"""The schema version this validator speaks; it accepts 1.0 up to 1.2 (any patch)."""
_SUPPORTED_MAJOR = 1
_SUPPORTED_MINOR = 2

MAX_PAYLOAD_BYTES = 8192 * 1024
"""The seeds' ``max_payload_size_kb: 8192``, applied to the packet file's bytes."""
MAX_CLOCK_SKEW_SECONDS = 300
PACKET_PAYLOAD_TYPE = "application/vnd.lifeos.packet+json"
BUNDLE_SUFFIXES = (".json", ".yaml", ".yml")

CORE_PACKET_TYPES: tuple[str, ...] = (
    "COUNCIL_REVIEW_PACKET",
    "COUNCIL_APPROVAL_PACKET",
    "BUILD_PACKET",
    "REVIEW_PACKET",
    "HANDOFF_PACKET",
    "STATE_MANAGEMENT_PACKET",
    "CONTEXT_REQUEST_PACKET",
    "CONTEXT_RESPONSE_PACKET",
    "DOC_STEWARD_REQUEST_PACKET",
    # LifeOS's three: the spine's build result, gate decision and escalation.
    "BUILD_RESULT_PACKET",
    "GATE_DECISION_PACKET",
    "ESCALATION_PACKET",
)
SIGNED_TYPES = frozenset({"COUNCIL_APPROVAL_PACKET"})
REVIEW_TYPES = frozenset({"COUNCIL_REVIEW_PACKET", "REVIEW_PACKET"})

_VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})(?:\.(0|[1-9][0-9]{0,5}))?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_FIELDS = ("packet_id", "chain_id", "nonce", "parent_packet_id")

_REASONS: dict[int, ReasonCode] = {
    EXIT_SECURITY_VIOLATION: ReasonCode.SIGNATURE_INVALID,
    EXIT_LINEAGE_VIOLATION: ReasonCode.EVIDENCE_MISMATCH,
}


class NonceStore(Protocol):
    """The part of :class:`lifeos.store.Store` replay protection needs."""

    def nonce_seen(self, nonce: str) -> bool:
        """Whether ``nonce`` was consumed before (read-only)."""
        ...

    def consume_nonce(self, nonce: str, source: str) -> bool:
        """Record ``nonce``; False when it was seen before."""
        ...


@dataclass(frozen=True, slots=True)
class PacketResult:
    """The outcome of validating one packet."""

    exit_code: int
    check: str
    """The step that failed (``read``, ``parse``, ``limits``, ``version``, ``envelope``,
    ``uuid``, ``timestamp``, ``ttl``, ``signature``, ``taxonomy``, ``payload``, ``replay``,
    ``lineage``) or ``ok``."""
    message: str
    source: str = ""
    packet_id: str | None = None
    packet_type: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the packet passed every check."""
        return self.exit_code == EXIT_PASS

    @property
    def reason_code(self) -> str | None:
        """A stable reason code for the failure (None on success)."""
        if self.ok:
            return None
        return _REASONS.get(self.exit_code, ReasonCode.INVALID_INPUT).value

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "source": self.source,
            "status": "PASS" if self.ok else "FAIL",
            "exit_code": self.exit_code,
            "check": self.check,
            "reason_code": self.reason_code,
            "message": self.message,
            "packet_id": self.packet_id,
            "packet_type": self.packet_type,
        }


@dataclass(frozen=True, slots=True)
class BundleResult:
    """The outcome of validating every packet file in a folder."""

    exit_code: int
    message: str
    results: list[PacketResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every packet passed."""
        return self.exit_code == EXIT_PASS

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "status": "PASS" if self.ok else "FAIL",
            "exit_code": self.exit_code,
            "message": self.message,
            "packets": [r.to_dict() for r in self.results],
        }


class _Fail(Exception):
    def __init__(self, exit_code: int, check: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.check = check
        self.message = message


# -- schemas ------------------------------------------------------------------------------


def _schema_name(packet_type: str) -> str:
    return f"{packet_type.lower()}.schema.json"


@functools.cache
def schema_validator(name: str) -> Validator:
    """A Draft 2020-12 validator for a shipped schema, with format checks really on.

    ``name`` is ``envelope`` or a packet type. Fails (RuntimeError) rather than silently
    skip ``date-time`` or ``uuid`` checks when their checker is unavailable.
    """
    from jsonschema import Draft202012Validator, FormatChecker

    file = "envelope.schema.json" if name == "envelope" else _schema_name(name)
    text = resources.files("lifeos.packets").joinpath("schemas", file).read_text("utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    checker = FormatChecker()
    missing = {"date-time", "uuid"} - set(checker.checkers)
    if missing:  # jsonschema skips a format it has no checker for: refuse instead
        raise RuntimeError(
            f"JSON Schema format checks unavailable: {sorted(missing)} (install rfc3339-validator)"
        )
    return Draft202012Validator(schema, format_checker=checker)


def schema_problem(name: str, instance: Any) -> str | None:
    """The most relevant way ``instance`` breaks schema ``name`` (e.g. ``build_packet``),
    as one line naming where, or None when it validates."""
    return _schema_errors(name, instance)


def _schema_errors(name: str, instance: Any) -> str | None:
    from jsonschema.exceptions import best_match

    error = best_match(schema_validator(name).iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message[:300]}"


# -- parsing ------------------------------------------------------------------------------


@functools.cache
def _yaml_loader() -> type[Any]:
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe YAML: no implicit timestamps (they stay strings), no duplicate keys."""

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def mapping(loader: Loader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in out
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "unhashable key", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            out[key] = loader.construct_object(value_node, deep=True)
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_packet(data: bytes, source: str = "<packet>") -> dict[str, Any]:
    """Parse packet bytes (JSON for ``*.json``, else YAML) into a JSON-compatible mapping.

    Raises:
        _Fail: too large (2), not UTF-8, not parseable, not a mapping or not JSON data (2).
    """
    if len(data) > MAX_PAYLOAD_BYTES:
        raise _Fail(
            EXIT_SCHEMA_VIOLATION,
            "limits",
            f"packet is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES} (8192 KB)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "parse", f"not UTF-8: {exc.reason}") from None
    import yaml

    try:
        if source.lower().endswith(".json"):
            doc: Any = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_no_constant)
        else:
            doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise _Fail(EXIT_SCHEMA_VIOLATION, "parse", f"does not parse: {detail}") from None
    if not isinstance(doc, dict):
        raise _Fail(EXIT_SCHEMA_VIOLATION, "envelope", "a packet is a mapping")
    _check_json(doc)
    return doc


def _check_json(doc: Any) -> None:
    try:
        canonical_json(doc)
    except (CanonicalError, RecursionError) as exc:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "parse", f"not JSON data: {exc}") from None


# -- signing ------------------------------------------------------------------------------


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    pt = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(pt), pt, len(payload), payload)


def _signed_body(packet: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in packet.items() if k != "signatures"}
    return dsse_pae(PACKET_PAYLOAD_TYPE, canonical_json(body))


def _keyid(verifier: Verifier) -> str:
    return f"{verifier.name}+{verifier.key_id:08x}"


def sign_packet(packet: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """Return ``packet`` with a DSSE signature by ``signer`` appended to ``signatures``."""
    sig = base64.b64encode(signer.sign_bytes(_signed_body(packet))).decode("ascii")
    entry = {"keyid": _keyid(signer.verifier()), "sig": sig}
    return {**packet, "signatures": [*packet.get("signatures", []), entry]}


def packet_hash(packet: Mapping[str, Any]) -> str:
    """The canonical SHA-256 of a packet (what an approval's ``review_packet_hash`` holds)."""
    return sha256_hex(dict(packet))


# -- the chain ----------------------------------------------------------------------------


def _check_version(doc: Mapping[str, Any]) -> None:
    version = doc.get("schema_version")
    if not isinstance(version, str):
        return  # the envelope schema reports it
    m = _VERSION.fullmatch(version)
    if m is None:
        return
    major, minor = int(m.group(1)), int(m.group(2))
    if major != _SUPPORTED_MAJOR or minor > _SUPPORTED_MINOR:
        raise _Fail(
            EXIT_VERSION_INCOMPATIBLE,
            "version",
            f"schema_version {version} is not supported (this validator reads "
            f"{_SUPPORTED_MAJOR}.0 to {SCHEMA_VERSION})",
        )


def _parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no UTC offset")
    return moment


def _check_signatures(doc: Mapping[str, Any], verifiers: Sequence[Verifier]) -> None:
    packet_type = doc["packet_type"]
    signatures = doc.get("signatures")
    if signatures is None:
        if packet_type in SIGNED_TYPES:
            raise _Fail(
                EXIT_SECURITY_VIOLATION, "signature", f"{packet_type} must carry a signature"
            )
        return
    if not verifiers:
        raise _Fail(
            EXIT_SECURITY_VIOLATION,
            "signature",
            "the packet is signed but no trusted key is available (lifeos.pub or --key)",
        )
    try:
        message = _signed_body(doc)
    except CanonicalError as exc:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "signature", str(exc)) from None
    for entry in signatures:
        try:
            raw = base64.b64decode(entry["sig"].encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            continue
        if any(v.verify(message, raw) for v in verifiers):
            return
    raise _Fail(
        EXIT_SECURITY_VIOLATION,
        "signature",
        "no signature verifies with a trusted key (tampered packet or untrusted signer)",
    )


def _check_lineage(doc: Mapping[str, Any], bundle: Mapping[str, Mapping[str, Any]] | None) -> None:
    if doc["packet_type"] != "COUNCIL_APPROVAL_PACKET":
        return
    payload = doc["payload"]
    review_id = payload["review_packet_id"]
    review = (bundle or {}).get(review_id)
    if review is None:
        where = "the bundle" if bundle is not None else "a bundle (validate with --bundle DIR)"
        raise _Fail(
            EXIT_LINEAGE_VIOLATION, "lineage", f"review packet {review_id} is not in {where}"
        )
    if review.get("packet_type") not in REVIEW_TYPES:
        raise _Fail(
            EXIT_LINEAGE_VIOLATION,
            "lineage",
            f"packet {review_id} is a {review.get('packet_type')}, not a review packet",
        )
    if review.get("chain_id") != doc["chain_id"]:
        raise _Fail(
            EXIT_LINEAGE_VIOLATION, "lineage", f"review packet {review_id} is on another chain"
        )
    actual = packet_hash(review)
    if actual != payload["review_packet_hash"]:
        raise _Fail(
            EXIT_LINEAGE_VIOLATION,
            "lineage",
            f"review_packet_hash {payload['review_packet_hash']} does not match "
            f"review packet {review_id} (sha256 {actual})",
        )


def _chain(
    doc: Mapping[str, Any],
    *,
    now: dt.datetime,
    verifiers: Sequence[Verifier],
    store: NonceStore | None,
    bundle: Mapping[str, Mapping[str, Any]] | None,
    seen: set[str] | None,
) -> None:
    # 1. envelope (version first: a newer major may have another envelope)
    _check_version(doc)
    error = _schema_errors("envelope", doc)
    if error is not None:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "envelope", f"envelope: {error}")
    # 2. UUIDs: canonical lowercase hyphenated form, beyond what the schema's format accepts
    for name in _UUID_FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        if not _UUID.fullmatch(value) or str(uuid.UUID(value)) != value:
            raise _Fail(EXIT_SCHEMA_VIOLATION, "uuid", f"{name}: {value!r} is not a UUID")
    # 3. timestamp and skew
    try:
        created = _parse_time(doc["created_at"])
    except ValueError as exc:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "timestamp", f"created_at: {exc}") from None
    ahead = (created - now).total_seconds()
    if ahead > MAX_CLOCK_SKEW_SECONDS:
        raise _Fail(
            EXIT_SECURITY_VIOLATION,
            "timestamp",
            f"created_at is {int(ahead)} s in the future (max skew {MAX_CLOCK_SKEW_SECONDS} s)",
        )
    # 4. TTL
    try:
        expires = created + dt.timedelta(hours=doc["ttl_hours"])
    except OverflowError:
        raise _Fail(
            EXIT_SCHEMA_VIOLATION, "ttl", "created_at + ttl_hours is out of range"
        ) from None
    if now > expires:
        raise _Fail(EXIT_SECURITY_VIOLATION, "ttl", f"expired at {expires.isoformat()} (ttl_hours)")
    # 5. signature
    _check_signatures(doc, verifiers)
    # 6. taxonomy
    packet_type = doc["packet_type"]
    if packet_type not in CORE_PACKET_TYPES:
        raise _Fail(
            EXIT_SCHEMA_VIOLATION, "taxonomy", f"unknown packet_type {packet_type} (fail closed)"
        )
    # 7. payload
    error = _schema_errors(packet_type, doc["payload"])
    if error is not None:
        raise _Fail(EXIT_SCHEMA_VIOLATION, "payload", f"payload: {error}")
    # 8. replay
    nonce = doc["nonce"]
    if (seen is not None and nonce in seen) or (store is not None and store.nonce_seen(nonce)):
        raise _Fail(EXIT_REPLAY_VIOLATION, "replay", f"nonce {nonce} was seen before")
    if seen is not None:
        seen.add(nonce)
    # 9. lineage
    _check_lineage(doc, bundle)


def _result(doc: Mapping[str, Any] | None, source: str, fail: _Fail | None) -> PacketResult:
    pid = doc.get("packet_id") if doc is not None else None
    ptype = doc.get("packet_type") if doc is not None else None
    return PacketResult(
        exit_code=fail.exit_code if fail else EXIT_PASS,
        check=fail.check if fail else "ok",
        message=fail.message if fail else "packet is valid",
        source=source,
        packet_id=pid if isinstance(pid, str) else None,
        packet_type=ptype if isinstance(ptype, str) else None,
    )


def _consume(doc: Mapping[str, Any], source: str, store: NonceStore) -> PacketResult:
    if store.consume_nonce(doc["nonce"], f"packet:{doc['packet_id']}"):
        return _result(doc, source, None)
    fail = _Fail(EXIT_REPLAY_VIOLATION, "replay", f"nonce {doc['nonce']} was seen before")
    return _result(doc, source, fail)


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def validate_packet(
    data: bytes | Mapping[str, Any],
    *,
    now: dt.datetime,
    source: str = "<packet>",
    verifiers: Sequence[Verifier] = (),
    store: NonceStore | None = None,
    record_nonce: bool = False,
    bundle: Mapping[str, Mapping[str, Any]] | None = None,
) -> PacketResult:
    """Validate one packet (bytes of a JSON/YAML file, or parsed data) against ``now``.

    Args:
        data: the file's bytes (``source``'s suffix picks JSON or YAML) or a mapping.
        now: the time TTL and skew are judged against (timezone-aware).
        verifiers: trusted public keys for signatures.
        store: the persistent nonce store; None checks no history.
        record_nonce: consume the nonce when every check passed (needs ``store``).
        bundle: packets by ``packet_id`` for lineage (None: not validating a bundle).
    """
    _aware(now)
    doc: dict[str, Any] | None = None
    try:
        if isinstance(data, bytes):
            doc = parse_packet(data, source)
        else:
            doc = dict(data)
            _check_json(doc)
        _chain(doc, now=now, verifiers=verifiers, store=store, bundle=bundle, seen=None)
    except _Fail as fail:
        return _result(doc, source, fail)
    if record_nonce and store is not None:
        assert doc is not None
        return _consume(doc, source, store)
    return _result(doc, source, None)


def validate_file(path: Path, **kwargs: Any) -> PacketResult:
    """Read and validate one packet file (exit 1 when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PAYLOAD_BYTES + 1)
    except OSError as exc:
        fail = _Fail(EXIT_FAIL_GENERIC, "read", f"cannot read {path}: {exc.strerror or exc}")
        return _result(None, str(path), fail)
    return validate_packet(data, source=str(path), **kwargs)


def validate_bundle(
    directory: Path,
    *,
    now: dt.datetime,
    verifiers: Sequence[Verifier] = (),
    store: NonceStore | None = None,
    record_nonce: bool = False,
) -> BundleResult:
    """Validate every ``*.json``/``*.yaml``/``*.yml`` file directly in ``directory``.

    Lineage is resolved within the bundle; a nonce used twice in it is a replay. Nonces
    are consumed (``record_nonce``) only when the whole bundle passed. The exit code is
    the first failing file's (by name), 1 for an empty or unreadable folder.
    """
    _aware(now)
    try:
        files = sorted(
            p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in BUNDLE_SUFFIXES
        )
    except OSError as exc:
        return BundleResult(EXIT_FAIL_GENERIC, f"cannot read {directory}: {exc.strerror or exc}")
    if not files:
        return BundleResult(EXIT_FAIL_GENERIC, f"no packet files in {directory} (fail closed)")
    parsed: list[tuple[Path, dict[str, Any] | _Fail]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for path in files:
        try:
            with path.open("rb") as fh:
                doc = parse_packet(fh.read(MAX_PAYLOAD_BYTES + 1), str(path))
        except OSError as exc:
            parsed.append((path, _Fail(EXIT_FAIL_GENERIC, "read", f"cannot read: {exc}")))
            continue
        except _Fail as fail:
            parsed.append((path, fail))
            continue
        parsed.append((path, doc))
        pid = doc.get("packet_id")
        if isinstance(pid, str):
            by_id.setdefault(pid, doc)
    seen: set[str] = set()
    results: list[PacketResult] = []
    for path, item in parsed:
        if isinstance(item, _Fail):
            results.append(_result(None, str(path), item))
            continue
        try:
            _chain(item, now=now, verifiers=verifiers, store=store, bundle=by_id, seen=seen)
        except _Fail as fail:
            results.append(_result(item, str(path), fail))
            continue
        results.append(_result(item, str(path), None))
    if all(r.ok for r in results) and record_nonce and store is not None:
        docs = [item for _, item in parsed if not isinstance(item, _Fail)]
        results = [_consume(doc, r.source, store) for doc, r in zip(docs, results, strict=True)]
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        return BundleResult(
            first.exit_code, f"{len(failed)} of {len(results)} packet(s) failed", results
        )
    return BundleResult(EXIT_PASS, f"{len(results)} packet(s) valid", results)


# -- skeletons ----------------------------------------------------------------------------

_SKELETON_PAYLOADS: dict[str, dict[str, Any]] = {
    "COUNCIL_REVIEW_PACKET": {
        "subject": "What the council reviews",
        "question": "Approve this change?",
        "artifacts": [{"path": "docs/example.md", "sha256": "0" * 64}],
    },
    "COUNCIL_APPROVAL_PACKET": {
        "review_packet_id": "00000000-0000-4000-8000-000000000000",
        "review_packet_hash": "0" * 64,
        "decision": "APPROVED",
        "approver": "Council",
        "decided_at": "1970-01-01T00:00:00Z",
        "conditions": [],
    },
    "BUILD_PACKET": {
        "task_id": "T-1",
        "goal": "What to build",
        "deliverables": [],
        "constraints": [],
        "acceptance": [],
    },
    "REVIEW_PACKET": {
        "subject": "What was reviewed",
        "changed_files": [{"status": "M", "path": "src/example.py"}],
        "verdict": "PASS",
        "summary": "Reviewer's summary",
    },
    "HANDOFF_PACKET": {
        "from_phase": "build",
        "to_phase": "review",
        "summary": "What the next phase needs to know",
        "open_items": [],
    },
    "STATE_MANAGEMENT_PACKET": {"operation": "read", "target": "LIFEOS_STATE.md"},
    "CONTEXT_REQUEST_PACKET": {"query": "What context is needed", "scope": []},
    "CONTEXT_RESPONSE_PACKET": {
        "request_packet_id": "00000000-0000-4000-8000-000000000000",
        "items": [],
    },
    "DOC_STEWARD_REQUEST_PACKET": {
        "action": "update",
        "docs": ["docs/INDEX.md"],
        "reason": "Why",
    },
    "BUILD_RESULT_PACKET": {
        "build_packet_id": "00000000-0000-4000-8000-000000000000",
        "status": "SUCCESS",
        "changed_files": [],
        "tests": {"passed": 0, "failed": 0},
        "summary": "What was built",
    },
    "GATE_DECISION_PACKET": {
        "decision_id": "decision-1",
        "result": "PASS",
        "policy_hash": "0" * 64,
        "reason_codes": [],
    },
    "ESCALATION_PACKET": {
        "reason_code": "ESCALATION_REQUIRED",
        "summary": "Why a human must decide",
        "options": [],
        "requested_from": "CEO",
    },
}


def new_packet(
    packet_type: str,
    now: dt.datetime,
    *,
    source_agent: str = "LifeOS",
    target_agent: str = "Council",
    chain_id: str | None = None,
) -> dict[str, Any]:
    """A skeleton packet of ``packet_type`` that passes the schema checks at ``now``.

    Raises:
        KeyError: an unknown packet type.
    """
    payload = json.loads(json.dumps(_SKELETON_PAYLOADS[packet_type]))
    if packet_type == "COUNCIL_APPROVAL_PACKET":
        payload["decided_at"] = _iso(now)
    return {
        "packet_id": str(uuid.uuid4()),
        "packet_type": packet_type,
        "schema_version": SCHEMA_VERSION,
        "created_at": _iso(now),
        "source_agent": source_agent,
        "target_agent": target_agent,
        "chain_id": chain_id or str(uuid.uuid4()),
        "priority": "P2_NORMAL",
        "nonce": str(uuid.uuid4()),
        "ttl_hours": 72,
        "payload": payload,
    }


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
