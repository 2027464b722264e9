"""Packets: the seeds' packet schema v1.2 (JSON Schema files in ``schemas/``) and validation.

See :mod:`lifeos.packets.validate` for the envelope, the 12 types, the 9-step chain and
the exit codes.
"""

from __future__ import annotations

from lifeos.packets.validate import (
    CORE_PACKET_TYPES,
    EXIT_FAIL_GENERIC,
    EXIT_LINEAGE_VIOLATION,
    EXIT_PASS,
    EXIT_REPLAY_VIOLATION,
    EXIT_SCHEMA_VIOLATION,
    EXIT_SECURITY_VIOLATION,
    EXIT_VERSION_INCOMPATIBLE,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_PAYLOAD_BYTES,
    PACKET_PAYLOAD_TYPE,
    SCHEMA_VERSION,
    BundleResult,
    NonceStore,
    PacketResult,
    new_packet,
    packet_hash,
    sign_packet,
    validate_bundle,
    validate_file,
    validate_packet,
)

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
    "BundleResult",
    "NonceStore",
    "PacketResult",
    "new_packet",
    "packet_hash",
    "sign_packet",
    "validate_bundle",
    "validate_file",
    "validate_packet",
]
