"""Evidence bundles: what a run decided, the files it touched, signed so anyone can check.

A bundle is the folder ``.lifeos/evidence/<run_id>/`` holding:

* ``exit_report.json`` — ``status`` (PASS|BLOCK), ``reason_codes``, ``reason_code``
  (the first one, or null), ``run_id``, ``created_at``;
* ``changed_files.json`` — ``[{status, path, old_path?}]``;
* ``classification.json`` — ``is_governance``, ``risk_level`` (P0|P1) and the paths
  behind them;
* ``runner.log`` — the runner's output, cut to its last 500 lines (a first line says so);
* ``hashes.json`` — ``{"algorithm": "sha256", "files": {name: hex}}`` over every file
  except itself and the attestation;
* ``attestation.intoto.json`` — a DSSE envelope (``payloadType``
  ``application/vnd.in-toto+json``) around an in-toto Statement v1 with one subject per
  file except the attestation (hashes.json included), signed with the repository's
  Ed25519 key over the DSSE pre-authentication encoding.

JSON files are canonical JSON (:mod:`lifeos.canonical`). A bundle is written in a
temporary folder under ``.lifeos/evidence/`` and renamed into place, so a failed write
leaves no partial bundle. :func:`verify_bundle` recomputes every hash, checks the
signature against a trusted key and that the signed subjects cover exactly the files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lifeos.canonical import canonical_json
from lifeos.clock import Clock, iso
from lifeos.errors import EXIT_BAD_INPUT, LifeOSError, ReasonCode

if TYPE_CHECKING:
    from lifeos.ledger.note import Signer, Verifier
    from lifeos.store import Store

__all__ = [
    "ATTESTATION_FILE",
    "BUNDLE_FILES",
    "EVIDENCE_DIR",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "EvidenceError",
    "EvidenceProblem",
    "EvidenceReport",
    "classify",
    "pae",
    "root_predicate",
    "truncate_log",
    "verify_bundle",
    "write_bundle",
]

EVIDENCE_DIR = "evidence"
"""Folder under ``.lifeos/`` that holds one bundle folder per run."""

ATTESTATION_FILE = "attestation.intoto.json"
HASHES_FILE = "hashes.json"
RUNNER_LOG = "runner.log"
CONTENT_FILES = ("exit_report.json", "changed_files.json", "classification.json", RUNNER_LOG)
"""Files listed in hashes.json."""
SUBJECT_FILES = (*CONTENT_FILES, HASHES_FILE)
"""Files the attestation names as subjects."""
BUNDLE_FILES = (*SUBJECT_FILES, ATTESTATION_FILE)
"""Every file of a bundle."""

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://lifeos.dev/evidence/v1"
MAX_LOG_LINES = 500

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REASON_ORDER = (
    ReasonCode.SIGNATURE_INVALID,
    ReasonCode.EVIDENCE_INCOMPLETE,
    ReasonCode.EVIDENCE_MISMATCH,
)


class EvidenceError(LifeOSError):
    """A bundle that cannot be written or read at all (bad input, exit 2)."""

    default_reason = ReasonCode.INVALID_INPUT
    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True, slots=True)
class EvidenceProblem:
    """One thing in a bundle that differs from what was signed."""

    file: str
    reason: ReasonCode
    message: str

    def to_dict(self) -> dict[str, str]:
        """The problem as JSON."""
        return {"file": self.file, "reason_code": self.reason.value, "message": self.message}


@dataclass(slots=True)
class EvidenceReport:
    """The result of :func:`verify_bundle`."""

    path: str
    run_id: str | None = None
    keyid: str | None = None
    files: int = 0
    problems: list[EvidenceProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.problems

    @property
    def reason_code(self) -> str | None:
        """The most serious problem's reason: signature, then incomplete, then mismatch."""
        for reason in _REASON_ORDER:
            if any(p.reason is reason for p in self.problems):
                return reason.value
        return None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "ok": self.ok,
            "path": self.path,
            "run_id": self.run_id,
            "keyid": self.keyid,
            "files": self.files,
            "reason_code": self.reason_code,
            "problems": [p.to_dict() for p in self.problems],
        }


# --- building blocks -------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object) -> bytes | None:
    """Decode standard or URL-safe base64 (DSSE allows both); None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        data = text.encode("ascii")
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def keyid_of(key: Signer | Verifier) -> str:
    """The DSSE key id: the key's name and 8-hex id, as in its verifier key text."""
    return f"{key.name}+{key.key_id:08x}"


def truncate_log(text: str, limit: int = MAX_LOG_LINES) -> str:
    """Keep the last ``limit`` lines of ``text``; a first line says how many were cut."""
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    if ends_with_newline:
        lines.pop()
    if len(lines) <= limit:
        return text
    header = (
        f"[lifeos: runner.log truncated: showing the last {limit} of {len(lines)} lines; "
        f"{len(lines) - limit} earlier lines omitted]"
    )
    return "\n".join([header, *lines[-limit:]]) + ("\n" if ends_with_newline else "")


def root_predicate(roots: Iterable[str]) -> Callable[[str], bool]:
    """A path predicate: true when a path is one of ``roots`` or lies under one.

    Roots compare component by component (``docsx/a`` is not under ``docs/``); a root
    ending in ``/`` only matches paths below it.
    """
    parsed = [(r.endswith("/"), tuple(p for p in r.split("/") if p)) for r in roots]

    def matches(path: str) -> bool:
        parts = tuple(p for p in path.split("/") if p)
        for is_dir, root in parsed:
            if not root:
                continue
            if parts[: len(root)] == root and (len(parts) > len(root) or not is_dir):
                return True
        return False

    return matches


def _never(_path: str) -> bool:
    return False


def _normalise_changes(changed_files: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for i, item in enumerate(changed_files):
        status, path = item.get("status"), item.get("path")
        if not isinstance(status, str) or not status or not isinstance(path, str) or not path:
            raise EvidenceError(f"changed_files[{i}] needs a non-empty 'status' and 'path'")
        unknown = set(item) - {"status", "path", "old_path"}
        if unknown:
            raise EvidenceError(f"changed_files[{i}] has unknown keys {sorted(unknown)}")
        entry = {"status": status, "path": path}
        old_path = item.get("old_path")
        if old_path is not None:
            if not isinstance(old_path, str) or not old_path:
                raise EvidenceError(f"changed_files[{i}].old_path must be a non-empty string")
            entry["old_path"] = old_path
        out.append(entry)
    return out


def classify(
    changed_files: Sequence[Mapping[str, Any]],
    *,
    is_governance_path: Callable[[str], bool] = _never,
    is_denylisted_path: Callable[[str], bool] = _never,
) -> dict[str, Any]:
    """Compute classification.json from the changed files.

    ``is_governance`` when any touched path (either side of a rename or copy) is a
    governance-protected or policy path; ``risk_level`` P0 for governance, denylisted or
    deleted paths, else P1.
    """
    changes = _normalise_changes(changed_files)
    governance: set[str] = set()
    denylisted: set[str] = set()
    deleted: set[str] = set()
    for change in changes:
        touched = [change["path"]] + ([change["old_path"]] if "old_path" in change else [])
        for path in touched:
            if is_governance_path(path):
                governance.add(path)
            if is_denylisted_path(path):
                denylisted.add(path)
        if change["status"].upper().startswith("D"):
            deleted.add(change["path"])
    is_governance = bool(governance)
    risk: Literal["P0", "P1"] = "P0" if governance or denylisted or deleted else "P1"
    return {
        "is_governance": is_governance,
        "risk_level": risk,
        "governance_paths": sorted(governance),
        "denylisted_paths": sorted(denylisted),
        "deleted_paths": sorted(deleted),
    }


# --- writing ---------------------------------------------------------------------------


def _write_file(folder: Path, name: str, data: bytes) -> None:
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _envelope(statement: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    payload = canonical_json(statement)
    sig = signer.sign_bytes(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": _b64(payload),
        "signatures": [{"keyid": keyid_of(signer), "sig": _b64(sig)}],
    }


def write_bundle(
    root: Path,
    run_id: str,
    *,
    status: str,
    reason_codes: Sequence[str],
    changed_files: Sequence[Mapping[str, Any]],
    runner_log: str,
    policy_hash: str | None,
    base_commit: str | None,
    head_commit: str | None,
    decision: Mapping[str, Any],
    signer: Signer,
    clock: Clock,
    is_governance_path: Callable[[str], bool] = _never,
    is_denylisted_path: Callable[[str], bool] = _never,
    store: Store | None = None,
) -> Path:
    """Write the signed evidence bundle of ``run_id`` and return its folder.

    Args:
        root: the ``.lifeos`` folder; the bundle goes to ``root/evidence/<run_id>/``.
        run_id: the run's id (letters, digits, ``.``, ``_``, ``-``).
        status: ``PASS`` or ``BLOCK``.
        reason_codes: every reason code found, most important first.
        changed_files: ``[{status, path, old_path?}]``.
        runner_log: the runner's output; only its last 500 lines are kept.
        policy_hash, base_commit, head_commit, decision: recorded in the predicate.
        signer: the repository's Ed25519 key.
        clock: tells ``created_at``.
        is_governance_path, is_denylisted_path: classify the changed paths.
        store: when given, each file is also stored as an artifact of the run.

    Raises:
        EvidenceError: bad arguments, or a bundle for ``run_id`` already exists.
        OSError: the folder cannot be written (nothing is left behind).
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise EvidenceError(f"invalid run id {run_id!r} for an evidence folder")
    if status not in ("PASS", "BLOCK"):
        raise EvidenceError(f"evidence status must be PASS or BLOCK, not {status!r}")
    codes = list(reason_codes)
    if not all(isinstance(c, str) and c for c in codes):
        raise EvidenceError("reason codes must be non-empty strings")
    changes = _normalise_changes(changed_files)
    created_at = iso(clock.now())

    contents: dict[str, bytes] = {
        "exit_report.json": canonical_json(
            {
                "run_id": run_id,
                "status": status,
                "reason_code": codes[0] if codes else None,
                "reason_codes": codes,
                "created_at": created_at,
            }
        ),
        "changed_files.json": canonical_json(changes),
        "classification.json": canonical_json(
            classify(
                changes,
                is_governance_path=is_governance_path,
                is_denylisted_path=is_denylisted_path,
            )
        ),
        RUNNER_LOG: truncate_log(runner_log).encode("utf-8"),
    }
    contents[HASHES_FILE] = canonical_json(
        {"algorithm": "sha256", "files": {n: _sha256(d) for n, d in contents.items()}}
    )
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": _sha256(contents[name])}}
            for name in sorted(contents)
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": run_id,
            "created_at": created_at,
            "policy_hash": policy_hash,
            "base_commit": base_commit,
            "head_commit": head_commit,
            "decision": dict(decision),
        },
    }
    contents[ATTESTATION_FILE] = canonical_json(_envelope(statement, signer))

    parent = root / EVIDENCE_DIR
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / run_id
    if final.exists():
        raise EvidenceError(f"an evidence bundle for run {run_id} already exists at {final}")
    tmp = parent / f".tmp-{run_id}-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        for name in BUNDLE_FILES:
            _write_file(tmp, name, contents[name])
        _fsync_dir(tmp)
        os.rename(tmp, final)  # atomic; fails if another writer got there first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(parent)

    if store is not None:
        for name in BUNDLE_FILES:
            store.put_artifact(
                run_id,
                f"{EVIDENCE_DIR}/{name}",
                contents[name],
                kind="evidence",
                mime_type="text/plain" if name == RUNNER_LOG else "application/json",
            )
    return final


# --- verifying -------------------------------------------------------------------------


def _read_envelope(raw: bytes) -> tuple[bytes, list[tuple[str | None, bytes]]] | str:
    """Return (payload, [(keyid, sig)]) or a message saying why the envelope is unusable."""
    try:
        env = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "attestation is not JSON"
    if not isinstance(env, dict):
        return "attestation is not a DSSE envelope"
    if env.get("payloadType") != PAYLOAD_TYPE:
        return f"payloadType is not {PAYLOAD_TYPE}"
    payload = _unb64(env.get("payload"))
    if payload is None:
        return "payload is not base64"
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        return "the envelope has no signatures"
    out: list[tuple[str | None, bytes]] = []
    for sig in sigs:
        if not isinstance(sig, dict):
            return "malformed signature entry"
        keyid = sig.get("keyid")
        value = _unb64(sig.get("sig"))
        if value is None or (keyid is not None and not isinstance(keyid, str)):
            return "malformed signature entry"
        out.append((keyid, value))
    return payload, out


def _subjects(payload: bytes) -> tuple[dict[str, Any], dict[str, str]] | str:
    """Return (statement, {name: sha256}) or a message saying why the statement is bad."""
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "the signed payload is not JSON"
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return f"the signed payload is not an in-toto Statement ({STATEMENT_TYPE})"
    if statement.get("predicateType") != PREDICATE_TYPE:
        return f"predicateType is not {PREDICATE_TYPE}"
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        return "the statement has no subject list"
    digests: dict[str, str] = {}
    for subject in subjects:
        if not isinstance(subject, dict):
            return "malformed subject"
        name, digest = subject.get("name"), subject.get("digest")
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str) or name in digests:
            return "malformed or repeated subject"
        digests[name] = sha
    return statement, digests


def verify_bundle(path: Path, verifier: Verifier) -> EvidenceReport:
    """Recompute every hash of the bundle at ``path`` and check its signature.

    Every difference is listed: a signature that does not verify against ``verifier``
    (``SIGNATURE_INVALID``), a file missing, not covered by the signed subjects or by
    hashes.json, or an extra file (``EVIDENCE_INCOMPLETE``), a file whose hash differs
    from the signed subject or from hashes.json (``EVIDENCE_MISMATCH``).

    Raises:
        EvidenceError: ``path`` is not a folder.
    """
    if not path.is_dir():
        raise EvidenceError(f"no evidence bundle at {path}")
    report = EvidenceReport(path=str(path))
    problems = report.problems

    def problem(file: str, reason: ReasonCode, message: str) -> None:
        problems.append(EvidenceProblem(file, reason, message))

    present: dict[str, bytes] = {}
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.is_file() and not entry.is_symlink():
            present[entry.name] = entry.read_bytes()
        else:
            problem(entry.name, ReasonCode.EVIDENCE_INCOMPLETE, "not a regular file")
    report.files = len(present)

    signed: dict[str, str] | None = None
    raw = present.get(ATTESTATION_FILE)
    if raw is None:
        problem(ATTESTATION_FILE, ReasonCode.EVIDENCE_INCOMPLETE, "missing")
    else:
        parsed = _read_envelope(raw)
        if isinstance(parsed, str):
            problem(ATTESTATION_FILE, ReasonCode.SIGNATURE_INVALID, parsed)
        else:
            payload, sigs = parsed
            message = pae(PAYLOAD_TYPE, payload)
            good = [k for k, s in sigs if verifier.verify(message, s)]
            if good:
                report.keyid = good[0] or keyid_of(verifier)
            else:
                keyids = ", ".join(k or "?" for k, _ in sigs)
                problem(
                    ATTESTATION_FILE,
                    ReasonCode.SIGNATURE_INVALID,
                    f"no signature verifies with trusted key {keyid_of(verifier)} "
                    f"(signed by: {keyids})",
                )
            content = _subjects(payload)
            if isinstance(content, str):
                problem(ATTESTATION_FILE, ReasonCode.EVIDENCE_MISMATCH, content)
            else:
                statement, signed = content
                predicate = statement.get("predicate")
                if isinstance(predicate, dict) and isinstance(predicate.get("run_id"), str):
                    report.run_id = predicate["run_id"]

    if signed is not None:
        for name in sorted(set(SUBJECT_FILES) | set(signed) | set(present) - {ATTESTATION_FILE}):
            data = present.get(name)
            if name not in signed:
                what = "an extra file" if name not in SUBJECT_FILES else "a bundle file"
                problem(
                    name, ReasonCode.EVIDENCE_INCOMPLETE, f"{what} not covered by the attestation"
                )
            elif data is None:
                problem(name, ReasonCode.EVIDENCE_INCOMPLETE, "missing (named in the attestation)")
            elif _sha256(data) != signed[name]:
                problem(
                    name,
                    ReasonCode.EVIDENCE_MISMATCH,
                    f"sha256 {_sha256(data)} differs from the attested {signed[name]}",
                )

    else:
        for name in SUBJECT_FILES:
            if name not in present:
                problem(name, ReasonCode.EVIDENCE_INCOMPLETE, "missing")

    reported = {p.file for p in problems}

    def once(file: str, reason: ReasonCode, message: str) -> None:
        if file not in reported:
            reported.add(file)
            problem(file, reason, message)

    _check_hashes_file(present, once)
    return report


def _check_hashes_file(
    present: Mapping[str, bytes], problem: Callable[[str, ReasonCode, str], None]
) -> None:
    raw = present.get(HASHES_FILE)
    if raw is None:
        return  # reported as missing already
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        problem(HASHES_FILE, ReasonCode.EVIDENCE_MISMATCH, "not JSON")
        return
    files = doc.get("files") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("algorithm") != "sha256"
        or not isinstance(files, dict)
        or not all(isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values())
    ):
        problem(HASHES_FILE, ReasonCode.EVIDENCE_MISMATCH, "not a sha256 file list")
        return
    expected = set(present) - {HASHES_FILE, ATTESTATION_FILE}
    for name in sorted(expected | set(files) | set(CONTENT_FILES)):
        if name not in files:
            if name in present:
                problem(name, ReasonCode.EVIDENCE_INCOMPLETE, "not listed in hashes.json")
        elif name not in present:
            problem(name, ReasonCode.EVIDENCE_INCOMPLETE, "listed in hashes.json but missing")
        elif _sha256(present[name]) != files[name]:
            problem(name, ReasonCode.EVIDENCE_MISMATCH, "sha256 differs from hashes.json")
