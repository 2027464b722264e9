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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.canonical import canonical_json
from lifeos.errors import LifeOSError, ReasonCode
from lifeos.fsutil import atomic_write
from lifeos.ledger.merkle import inclusion_proof, root
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


Row = tuple[int, bytes, str | None] | tuple[int, bytes, str | None, str, str | None]


@dataclass
class _Walk:
    """What walking a range of entries found."""

    end: int
    """One past the last seq walked (the tree size reached)."""
    last: bytes
    """The hex leaf hash of the last entry walked (the next entry's expected prev_hash)."""
    first_prev: bytes | None
    """The prev_hash the first entry names, when the walk started without knowing it."""
    stack: list[bytes]
    """Roots of the complete subtrees of the walked range, largest first."""
    snapshots: dict[int, list[bytes]]
    """``stack`` as it was at each wanted tree size."""
    bad: tuple[int, str, str] | None = None
    """(seq, reason code, message) of the first problem."""


_UNSET = object()


def _encode_run(run_id: str | None) -> bytes:
    """What canonical JSON writes for a run id."""
    if run_id is None:
        return b"null"
    if run_id.isprintable() and '"' not in run_id and "\\" not in run_id:
        return b'"' + run_id.encode() + b'"'
    return canonical_json(run_id)


def _check_entry(
    row: Row, count: int, prev: bytes | None, hx: str, type_suffix: dict[str, bytes]
) -> tuple[tuple[int, str, str] | None, bytes]:
    """The careful check of one entry, naming the first problem; returns it and prev_hash."""
    tampered = ReasonCode.LEDGER_TAMPERED.value
    seq, entry, stored = row[0], row[1], row[2]
    j = entry.rfind(_SEQ)
    if len(row) == 5:
        type_, run_id = row[3], row[4]
        suffix = type_suffix.get(type_)
        if suffix is None:
            suffix = type_suffix[type_] = b',"type":' + canonical_json(type_) + b"}"
        k = entry.rfind(_RUN, 0, j)
        if not entry.endswith(suffix) or k < 0 or entry[k + 10 : j] != _encode_run(run_id):
            return (seq, tampered, f"entry {seq}'s indexed type or run id differs"), b""
    if seq != count:
        return (count, tampered, f"entry {count} is missing (found seq {seq})"), b""
    if stored is not None and stored != hx:
        return (seq, tampered, f"entry {seq} does not hash to its recorded leaf hash"), b""
    k = entry.rfind(_PREV, 0, j)
    named = entry[k + 14 : k + 78] if k >= 0 else b""
    if k < 0 or (prev is not None and named != prev):
        return (seq, tampered, f"entry {seq} does not link to entry {seq - 1}"), named
    if j < 0 or not entry.startswith(b'"seq":%d,"ts":' % seq, j + 1):
        return (seq, tampered, f"entry {seq} records a different position"), named
    return None, named


def _walk(rows: Iterable[Row], start: int, prev: bytes | None, wanted: set[int]) -> _Walk:
    """Check entries ``start, start+1, ...`` and build their subtree stack.

    ``start`` must be 0 or a power-of-two boundary at least as large as the range, so
    the range's subtrees are subtrees of the whole tree.
    """
    sha = hashlib.sha256
    stack: list[bytes] = []
    snapshots: dict[int, list[bytes]] = {}
    type_suffix: dict[str, bytes] = {}
    first_prev: bytes | None = None
    count = start

    def done(problem: tuple[int, str, str] | None = None) -> _Walk:
        return _Walk(count, prev or b"", first_prev, stack, snapshots, problem)

    last_run: object = _UNSET
    run_bytes = b""
    for row in rows:
        seq, entry, stored = row[0], row[1], row[2]
        h = sha(_LEAF + entry).digest()
        hx = h.hex()
        fast = False
        if len(row) == 5 and seq == count and stored == hx and prev is not None:
            # Fast path: the whole tail after the payload is known but for the timestamp.
            type_, run_id = row[3], row[4]
            if run_id != last_run:
                last_run, run_bytes = run_id, _encode_run(run_id)
            suffix = type_suffix.get(type_)
            if suffix is None:
                suffix = type_suffix[type_] = b',"type":' + canonical_json(type_) + b"}"
            k = entry.rfind(_PREV)
            fast = (
                k >= 0
                and entry.endswith(suffix)
                and entry.startswith(
                    b"".join((_PREV, prev, b'","run_id":', run_bytes, b',"seq":%d,"ts":"' % seq)),
                    k,
                )
            )
        if not fast:
            problem, named = _check_entry(row, count, prev, hx, type_suffix)
            if problem is not None:
                return done(problem)
            if prev is None:
                first_prev = named
        prev = hx.encode()
        c = count - start
        while c & 1:
            h = sha(_NODE + stack.pop() + h).digest()
            c >>= 1
        stack.append(h)
        count += 1
        if count in wanted:
            snapshots[count] = list(stack)
    return done()


def _parse_notes(
    checkpoints: Sequence[str], verifier: Verifier | None, origin: str | None
) -> list[tuple[int, bytes]] | VerifyReport:
    parsed: list[tuple[int, bytes]] = []
    for i, note in enumerate(checkpoints):
        try:
            if verifier is None:
                raise NoteError("no trusted key to check signed checkpoints with")
            cp = parse_checkpoint(open_note(note, verifier).text)
        except (NoteError, ParseError) as exc:
            message = f"signed checkpoint {i}: {exc}"
        else:
            if origin is None or cp.origin == origin:
                parsed.append((cp.size, cp.root))
                continue
            message = f"signed checkpoint {i} is for log {cp.origin!r}, not {origin!r}"
        return VerifyReport(
            False, 0, "", i, None, None, ReasonCode.SIGNATURE_INVALID.value, message
        )
    return parsed


def _judge(
    parsed: list[tuple[int, bytes]],
    walks: list[_Walk],
) -> VerifyReport:
    """Combine range walks (in order) with the signed checkpoints into one verdict."""
    latest = max((s for s, _ in parsed), default=None)
    count = walks[-1].end

    def bad(seq: int, reason: str, message: str, rt: str = "") -> VerifyReport:
        return VerifyReport(False, count, rt, len(parsed), latest, seq, reason, message)

    problems = [w.bad for w in walks if w.bad is not None]
    for left, right in zip(walks, walks[1:], strict=False):
        if left.bad is None and right.first_prev is not None and right.first_prev != left.last:
            seq = left.end
            problems.append(
                (
                    seq,
                    ReasonCode.LEDGER_TAMPERED.value,
                    f"entry {seq} does not link to entry {seq - 1}",
                )
            )
    if problems:
        seq, reason, message = min(problems)
        return VerifyReport(False, seq, "", len(parsed), latest, seq, reason, message)
    base: list[bytes] = []
    roots: dict[int, bytes] = {0: _fold([])}
    for w in walks:
        for size, snap in w.snapshots.items():
            roots[size] = _fold(base + snap)
        base = base + w.stack
    full = _fold(base).hex()
    if latest is not None and count < latest:
        return bad(
            count,
            ReasonCode.LEDGER_TRUNCATED.value,
            f"the ledger ends at {count} entries but a signed checkpoint covers {latest}: "
            f"entries from {count} on are gone",
            full,
        )
    for size, cp_root in parsed:
        if roots.get(size) != cp_root:
            return bad(
                max(size - 1, 0),
                ReasonCode.LEDGER_TAMPERED.value,
                f"the log's root at size {size} does not match its signed checkpoint",
                full,
            )
    return VerifyReport(True, count, full, len(parsed), latest)


def verify_rows(
    rows: Iterable[Row],
    checkpoints: Sequence[str],
    verifier: Verifier | None,
    origin: str | None = None,
) -> VerifyReport:
    """Walk ``(seq, entry, stored leaf hash or None[, type, run_id])`` rows and check notes.

    Args:
        rows: the entries in seq order.
        checkpoints: signed checkpoint notes, oldest first.
        verifier: the trusted key; None only when there are no checkpoints.
        origin: the expected checkpoint origin, when known.
    """
    parsed = _parse_notes(checkpoints, verifier, origin)
    if isinstance(parsed, VerifyReport):
        return parsed
    walk = _walk(rows, 0, GENESIS_HASH.encode(), {s for s, _ in parsed})
    return _judge(parsed, [walk])


PARALLEL_MIN_ENTRIES = 200_000
"""Below this many entries a second process costs more than it saves."""


def _walk_file(path: str, start: int, end: int, wanted: set[int], prev: bytes | None) -> _Walk:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = db.execute(
            "SELECT seq, entry, leaf_hash, type, run_id FROM ledger "
            "WHERE seq >= ? AND seq < ? ORDER BY seq",
            (start, end),
        )
        return _walk(cur, start, prev, wanted)
    except sqlite3.DatabaseError as exc:
        return _Walk(
            start,
            b"",
            None,
            [],
            {},
            (start, ReasonCode.LEDGER_TAMPERED.value, f"the store is damaged: {exc}"),
        )
    finally:
        db.close()


def verify_store(
    store: Store,
    verifier: Verifier | None,
    origin: str | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify the store's ledger and every signed checkpoint in it.

    A large SQLite ledger is walked by two processes, each over one aligned half of
    the tree (``workers=1`` keeps it in one process).
    """
    try:
        parsed = _parse_notes(
            [c["note"] for c in store.list_signed_checkpoints()], verifier, origin
        )
        if isinstance(parsed, VerifyReport):
            return parsed
        wanted = {s for s, _ in parsed}
        size = store.ledger_size()
        path = getattr(store, "path", None)
        if workers is None:
            workers = 2 if (os.cpu_count() or 1) > 1 else 1
        if workers < 2 or size < PARALLEL_MIN_ENTRIES or path is None:
            walk = _walk(store.ledger_scan(), 0, GENESIS_HASH.encode(), wanted)
            return _judge(parsed, [walk])
        import multiprocessing

        split = 1 << ((size - 1).bit_length() - 1)  # the left subtree: a power of two
        ctx = multiprocessing.get_context("fork")
        genesis = GENESIS_HASH.encode()
        with ctx.Pool(1) as pool:
            right = pool.apply_async(_walk_file, (str(path), split, 1 << 62, wanted, None))
            left = _walk_file(str(path), 0, split, wanted, genesis)
            right_walk = right.get()
        if left.bad is None and left.end < split:
            seq = left.end
            left.bad = (seq, ReasonCode.LEDGER_TAMPERED.value, f"entry {seq} is missing")
        return _judge(parsed, [left, right_walk])
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


def export_ledger(store: Store, path: Path) -> int:
    """Write the entries, one canonical entry per line, and the notes beside them.

    The notes go to ``<path>.notes`` (separated by a form feed line); both files are
    written to a temporary file first and renamed into place.
    """
    count = 0

    def lines() -> Iterable[bytes]:
        nonlocal count
        for row in store.ledger_rows():
            count += 1
            yield row["entry"] + b"\n"

    atomic_write(path, lines())
    notes = [c["note"] for c in store.list_signed_checkpoints()]
    atomic_write(path.with_name(path.name + ".notes"), "\f\n".join(notes).encode("utf-8"))
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
