"""Signed evidence bundles: one folder per run, attested with in-toto and DSSE."""

from __future__ import annotations

from lifeos.evidence.bundle import (
    ATTESTATION_FILE,
    BUNDLE_FILES,
    EVIDENCE_DIR,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    EvidenceError,
    EvidenceProblem,
    EvidenceReport,
    classify,
    pae,
    root_predicate,
    truncate_log,
    verify_bundle,
    write_bundle,
)

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
