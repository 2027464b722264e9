"""The ledger: RFC 6962/9162 Merkle trees, C2SP signed notes, and the verifiable log.

Importing this package is cheap; ``cryptography`` loads only when a key is used.
"""

from __future__ import annotations

from lifeos.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from lifeos.ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteError,
    ParseError,
    Signature,
    Signer,
    Verifier,
    format_checkpoint,
    generate_key,
    open_note,
    parse_checkpoint,
    sign,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteError",
    "ParseError",
    "ProofError",
    "Signature",
    "Signer",
    "Verifier",
    "consistency_proof",
    "format_checkpoint",
    "generate_key",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_checkpoint",
    "root",
    "sign",
    "verify_consistency",
    "verify_inclusion",
]
