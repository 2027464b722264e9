"""The ledger as a verifiable log: chain walk, Merkle roots, signed checkpoints, proofs.

Each stored entry is the canonical JSON of ``{seq, ts, type, run_id, payload,
prev_hash}``; its leaf hash is SHA-256(0x00 || entry) (RFC 6962/9162). The walk
checks, for every entry in order, that its bytes hash to the stored leaf hash, that
it names its own position and the previous entry's hash, and it builds the Merkle
tree as it goes (a stack of complete subtrees), so the root at every signed
checkpoint's size comes out of the same single pass. A checkpoint must be signed
by the trusted key and match the recomputed root at its size; a ledger shorter
than its latest checkpoint has been truncated. All checkpoints being roots of the
same verified log makes every later checkpoint consistent with every earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.canonical import canonical_json
from lifeos.errors import LifeOSError, ReasonCode
from lifeos.ledger.merkle import consistency_proof, inclusion_proof, root
from lifeos.ledger.note import (
    NoteError,
    ParseError,
    Signer,
    Verifier,
    format_checkpoint,
    open_note,
    parse_checkpoint,
    sign,
)
from lifeos.store.base import SignedCheckpoint, Store, StoreError

__all__ = [
    "GENESIS_HASH",
    "VerifyReport",
    "export_ledger",
    "prove_inclusion",
    "read_export",
    "sign_checkpoint",
    "verify_rows",
    "verify_store",
]

GENESIS_HASH = "0" * 64
_PREV = b',"prev_hash":"'
_SEQ = b',"seq":'
_RUN = b',"run_id":'
_LEAF = b"\x00"
_NODE = b"\x01"


@dataclass
class VerifyReport:
    """What ``ledger verify`` found."""

    ok: bool
    size: int
    root: str
    checkpoints: int = 0
    latest_checkpoint_size: int | None = None
    first_bad_seq: int | None = None
    reason_code: str | None = None
    message: str = "ledger verified"
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "checkpoints": self.checkpoints,
            "first_bad_seq": self.first_bad_seq,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "message": self.message,
            "ok": self.ok,
            "reason_code": self.reason_code,
            "root": self.root,
            "size": self.size,
        }


def _fold(stack: list[bytes]) -> bytes:
    if not stack:
        return hashlib.sha256(b"").digest()
    acc = stack[-1]
    for h in reversed(stack[:-1]):
        acc = hashlib.sha256(_NODE + h + acc).digest()
    return acc


def _entry_seq(entry: bytes) -> int | None:
    k = entry.rfind(_SEQ)
    if k < 0:
        return None
    end = entry.find(b",", k + len(_SEQ))
    digits = entry[k + len(_SEQ) : end]
    return int(digits) if digits.isdigit() else None


def _index_matches(entry: bytes, type_: str, run_id: str | None) -> bool:
    """Whether the indexed columns say what the hashed entry says (see the canonical layout)."""
    if not entry.endswith(b',"type":' + canonical_json(type_) + b"}"):
        return False
    k = entry.rfind(b',"run_id":')
    end = entry.rfind(_SEQ)
    return k >= 0 and entry[k + 10 : end] == canonical_json(run_id)


def verify_rows(
    rows: Iterable[tuple[int, bytes, str | None] | tuple[int, bytes, str | None, str, str | None]],
    checkpoints: Sequence[str],
    verifier: Verifier | None,
    origin: str | None = None,
) -> VerifyReport:
    """Walk ``(seq, entry bytes, stored leaf hash or None)`` rows and check the notes.

    Args:
        rows: the entries in seq order.
        checkpoints: signed checkpoint notes, oldest first.
        verifier: the trusted key; None only when there are no checkpoints.
        origin: the expected checkpoint origin, when known.
    """
    wanted: dict[int, list[int]] = {}
    parsed: list[tuple[int, bytes]] = []
    for i, note in enumerate(checkpoints):
        try:
            if verifier is None:
                raise NoteError("no trusted key to check signed checkpoints with")
            opened = open_note(note, verifier)
            cp = parse_checkpoint(opened.text)
        except (NoteError, ParseError) as exc:
            return VerifyReport(
                False,
                0,
                "",
                i,
                None,
                None,
                ReasonCode.SIGNATURE_INVALID.value,
                f"signed checkpoint {i}: {exc}",
            )
        if origin is not None and cp.origin != origin:
            return VerifyReport(
                False,
                0,
                "",
                i,
                None,
                None,
                ReasonCode.SIGNATURE_INVALID.value,
                f"signed checkpoint {i} is for log {cp.origin!r}, not {origin!r}",
            )
        parsed.append((cp.size, cp.root))
        wanted.setdefault(cp.size, []).append(i)
    latest = max((s for s, _ in parsed), default=None)

    def bad(seq: int, reason: ReasonCode, message: str, size: int, rt: str) -> VerifyReport:
        return VerifyReport(False, size, rt, len(parsed), latest, seq, reason.value, message)

    sha = hashlib.sha256
    stack: list[bytes] = []  # roots of complete subtrees, largest first (the bits of count)
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = _fold(stack)
    type_suffix: dict[str, bytes] = {}
    run_bytes: dict[str | None, bytes] = {}
    prev = GENESIS_HASH.encode()
    count = 0
    for row in rows:
        seq, entry, stored = row[0], row[1], row[2]
        j = entry.rfind(_SEQ)
        if len(row) == 5:
            type_, run_id = row[3], row[4]
            suffix = type_suffix.get(type_)
            if suffix is None:
                suffix = type_suffix[type_] = b',"type":' + canonical_json(type_) + b"}"
            encoded = run_bytes.get(run_id)
            if encoded is None:
                encoded = run_bytes[run_id] = canonical_json(run_id)
            k = entry.rfind(_RUN, 0, j)
            if not entry.endswith(suffix) or k < 0 or entry[k + 10 : j] != encoded:
                return bad(
                    seq,
                    ReasonCode.LEDGER_TAMPERED,
                    f"entry {seq}'s indexed type or run id differs from the entry",
                    count,
                    "",
                )
        if seq != count:
            return bad(
                count,
                ReasonCode.LEDGER_TAMPERED,
                f"entry {count} is missing (found seq {seq} in its place)",
                count,
                "",
            )
        h = sha(_LEAF + entry).digest()
        hx = h.hex()
        if stored is not None and stored != hx:
            return bad(
                seq,
                ReasonCode.LEDGER_TAMPERED,
                f"entry {seq} does not hash to its recorded leaf hash",
                count,
                "",
            )
        k = entry.rfind(_PREV, 0, j)
        if k < 0 or entry[k + 14 : k + 78] != prev:
            return bad(
                seq,
                ReasonCode.LEDGER_TAMPERED,
                f"entry {seq} does not link to entry {seq - 1}",
                count,
                "",
            )
        if j < 0 or not entry.startswith(b'"seq":%d,"ts":' % seq, j + 1):
            return bad(
                seq,
                ReasonCode.LEDGER_TAMPERED,
                f"entry {seq} records a different position",
                count,
                "",
            )
        prev = hx.encode()
        c = count
        while c & 1:
            h = sha(_NODE + stack.pop() + h).digest()
            c >>= 1
        stack.append(h)
        count += 1
        if count in wanted:
            roots[count] = _fold(stack)
    full = _fold(stack).hex()
    if latest is not None and count < latest:
        return bad(
            count,
            ReasonCode.LEDGER_TRUNCATED,
            f"the ledger ends at {count} entries but a signed checkpoint covers "
            f"{latest}: entries from {count} on are gone",
            count,
            full,
        )
    for size, cp_root in parsed:
        if roots.get(size) != cp_root:
            return bad(
                max(size - 1, 0),
                ReasonCode.LEDGER_TAMPERED,
                f"the log's root at size {size} does not match its signed checkpoint",
                count,
                full,
            )
    return VerifyReport(True, count, full, len(parsed), latest)


def verify_store(
    store: Store, verifier: Verifier | None, origin: str | None = None
) -> VerifyReport:
    """Verify the store's ledger and every signed checkpoint in it."""
    try:
        notes = [c["note"] for c in store.list_signed_checkpoints()]
        return verify_rows(store.ledger_scan(), notes, verifier, origin)
    except StoreError as exc:
        return VerifyReport(
            False,
            0,
            "",
            reason_code=ReasonCode.LEDGER_TAMPERED.value,
            message=f"the store is damaged: {exc.message}",
        )


def _leaves(store: Store, end: int | None = None) -> list[bytes]:
    return [hashlib.sha256(_LEAF + r["entry"]).digest() for r in store.ledger_rows(0, end)]


def sign_checkpoint(store: Store, signer: Signer) -> str:
    """Sign the current tree head with the repository key and keep it; return the note."""
    with store.transaction():
        leaves = _leaves(store)
        tree_root = root(leaves)
        note = sign(format_checkpoint(signer.name, len(leaves), tree_root), signer)
        store.put_signed_checkpoint(
            SignedCheckpoint(
                tree_size=len(leaves), root_hash=tree_root.hex(), note=note, created_at=store.now()
            )
        )
    return note


class LedgerInputError(LifeOSError):
    """A ledger request that cannot be answered (no such entry, unreadable export)."""

    exit_code = 2


def prove_inclusion(store: Store, seq: int, size: int | None = None) -> dict[str, Any]:
    """An RFC 6962 inclusion proof of entry ``seq`` in the tree of ``size`` entries."""
    leaves = _leaves(store, size)
    if size is not None and size != len(leaves):
        raise LedgerInputError(f"the ledger has {len(leaves)} entries, not {size}")
    if not 0 <= seq < len(leaves):
        raise LedgerInputError(f"no entry {seq}: the ledger has {len(leaves)} entries")
    entry = next(iter(store.ledger_rows(seq, seq + 1)))["entry"]
    return {
        "entry": json.loads(entry),
        "leaf_hash": leaves[seq].hex(),
        "proof": [p.hex() for p in inclusion_proof(leaves, seq)],
        "root": root(leaves).hex(),
        "seq": seq,
        "tree_size": len(leaves),
    }


def prove_consistency(store: Store, size1: int, size2: int) -> list[str]:
    """An RFC 6962 consistency proof between two tree sizes."""
    return [p.hex() for p in consistency_proof(_leaves(store, size2), size1, size2)]


def export_ledger(store: Store, path: Path) -> int:
    """Write the entries, one canonical entry per line, and the notes beside them.

    The notes go to ``<path>.notes`` (separated by a form feed line); both files are
    written to a temporary file first and renamed into place.
    """
    count = 0

    def write(target: Path, chunks: Iterable[bytes]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def lines() -> Iterable[bytes]:
        nonlocal count
        for row in store.ledger_rows():
            count += 1
            yield row["entry"] + b"\n"

    write(path, lines())
    notes = [c["note"] for c in store.list_signed_checkpoints()]
    write(path.with_name(path.name + ".notes"), ["\f\n".join(notes).encode("utf-8")])
    return count


def read_export(path: Path) -> tuple[list[tuple[int, bytes, None]], list[str]]:
    """Read an export (and its ``.notes``) back as rows for :func:`verify_rows`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows: list[tuple[int, bytes, None]] = []
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        seq = _entry_seq(line)
        rows.append((seq if seq is not None else -1, line, None))
    notes_path = path.with_name(path.name + ".notes")
    notes: list[str] = []
    if notes_path.exists():
        text = notes_path.read_text(encoding="utf-8")
        notes = [n for n in text.split("\f\n") if n]
    return rows, notes
