"""The ledger as a verifiable log: chain walk, Merkle roots, signed checkpoints, proofs.

Each stored entry is the canonical JSON of ``{seq, ts, type, run_id, payload,
prev_hash}``; its leaf hash is SHA-256(0x00 || entry) (RFC 6962/9162). The walk
checks, for every entry in order, that its bytes hash to the stored leaf hash, that
it names its own position and the previous entry's hash, and that the indexed type
and run id are the entry's; it builds the Merkle tree as it goes (the roots of
complete subtrees, a batch of leaves at a time), so the root at every signed
checkpoint's size comes out of the same single pass. A checkpoint must be signed
by the trusted key and match the recomputed root at its size; a ledger shorter
than its latest checkpoint has been truncated. All checkpoints being roots of the
same verified log makes every later checkpoint consistent with every earlier one.

Speed: the store hands the walk plain tuples in batches (``Store.ledger_scan``). A
fast check compares each entry's tail with the bytes the store writes (no parsing);
from the first entry it does not vouch for, the careful check parses and names the
problem, so verdicts are the careful check's. A large ledger is walked by two
processes, one about half each, on the boundary of complete subtrees.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from lifeos.store.base import (
    LedgerScanner,
    LedgerScanRow,
    SignedCheckpoint,
    Store,
    StoreError,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.sharedctypes import Synchronized

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
_GENESIS = GENESIS_HASH.encode()
_PREV = b',"prev_hash":"'
_SEQ = b',"seq":'
_RUN = b',"run_id":'
_LEAF = b"\x00"
_NODE = b"\x01"
_TAMPERED = ReasonCode.LEDGER_TAMPERED.value
_TS_LEN = len("2026-01-01T00:00:00.000000Z")
"""The length of every timestamp the store writes; the fast check relies on it."""
_MIDDLE = b',"prev_hash":"%s","run_id":%s,"seq":%d,"ts":"'
"""An entry's bytes between its payload and its timestamp."""


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


def _push(stack: list[Piece], piece: Piece) -> None:
    """Append an aligned complete subtree ``(leaves, root)``, merging equal sizes."""
    size, h = piece
    while stack and stack[-1][0] == size:
        h = hashlib.sha256(_NODE + stack.pop()[1] + h).digest()
        size *= 2
    stack.append((size, h))


def _entry_seq(entry: bytes) -> int | None:
    k = entry.rfind(_SEQ)
    if k < 0:
        return None
    end = entry.find(b",", k + len(_SEQ))
    digits = entry[k + len(_SEQ) : end]
    return int(digits) if digits.isdigit() else None


Row = tuple[int, bytes, str | bytes | None] | tuple[int, bytes, str | bytes | None, str, str | None]
"""``(seq, entry, stored leaf hash or None[, indexed type, indexed run id])``."""

Piece = tuple[int, bytes]
"""A complete subtree of the whole tree: ``(number of leaves, root)``."""

Problem = tuple[int, str, str]
"""``(seq, reason code, message)`` of a problem found."""


class _Tree:
    """The Merkle tree of a range of leaves, as the roots of its complete subtrees.

    Leaves come a batch at a time and are paired level by level with one list
    comprehension per level, not leaf by leaf. ``levels[j]`` holds the root of a
    subtree of ``2**j`` leaves still waiting for its sibling. With ``cap``, subtrees
    stop growing at ``2**cap`` leaves and collect in ``top``: for a range starting at
    a multiple of ``2**cap``, those are surely subtrees of the whole tree, while a
    larger one might straddle the range's start; they are combined with the subtrees
    before the range later (:func:`_push`).
    """

    def __init__(self, cap: int | None = None) -> None:
        self.levels: list[list[bytes]] = []
        self.top: list[bytes] = []
        self.cap = cap

    def add(self, leaves: list[bytes]) -> None:
        """Append leaf hashes."""
        sha = hashlib.sha256
        node = _NODE
        levels = self.levels
        carry = leaves
        height = 0
        while carry:
            if height == self.cap:
                self.top += carry
                return
            if height == len(levels):
                levels.append([])
            nodes = levels[height] + carry if levels[height] else carry
            levels[height] = nodes[-1:] if len(nodes) & 1 else []
            carry = [
                sha(node + a + b).digest() for a, b in zip(nodes[0::2], nodes[1::2], strict=False)
            ]
            height += 1

    def pieces(self) -> list[Piece]:
        """The complete subtrees so far, in leaf order (so, largest first)."""
        out: list[Piece] = []
        if self.cap is not None:
            out = [(1 << self.cap, h) for h in self.top]
        for height in range(len(self.levels) - 1, -1, -1):
            if self.levels[height]:
                out.append((1 << height, self.levels[height][0]))
        return out


@dataclass
class _Walk:
    """What walking a range of entries found."""

    end: int
    """One past the last seq walked (the tree size reached)."""
    last: bytes
    """The hex leaf hash of the last entry walked (the next entry's expected prev_hash)."""
    first_prev: bytes | None
    """The prev_hash the first entry names, when the walk started without knowing it."""
    pieces: list[Piece]
    """The complete subtrees of the walked range, in order."""
    snapshots: dict[int, list[Piece]]
    """``pieces`` as they were at each wanted tree size."""
    bad: Problem | None = None
    """The first problem."""


_UNSET = object()


def _encode_run(run_id: str | None) -> bytes:
    """What canonical JSON writes for a run id."""
    if run_id is None:
        return b"null"
    if run_id.isprintable() and '"' not in run_id and "\\" not in run_id:
        return b'"' + run_id.encode() + b'"'
    return canonical_json(run_id)


class _Tails:
    """What the fast check caches across batches: per type, the entry's suffix."""

    def __init__(self) -> None:
        self.types: dict[str, tuple[bytes, int]] = {}
        self.run: object = _UNSET
        self.run_bytes = b""


def _type_tail(type_: str) -> tuple[bytes, int]:
    """The bytes after an entry's timestamp, and where its timestamp starts (from the end)."""
    suffix = b'","type":' + canonical_json(type_) + b"}"
    return suffix, -(_TS_LEN + len(suffix))


def _fast(
    rows: Sequence[LedgerScanRow],
    digests: Sequence[bytes],
    count: int,
    prev: bytes,
    tails: _Tails,
) -> int:
    """How many rows, from the first, are exactly as the store writes them.

    ``digests`` are the rows' leaf hashes, ``count`` the first row's position and
    ``prev`` the hex leaf hash it must name. One comparison per field, no parsing: the
    seq column is the row's position, the stored leaf hash is the computed one, the
    entry ends with the indexed type, and right before its timestamp (27 bytes, the
    store's format) it names the previous entry's hash, the indexed run id and its
    position. That is the entry's whole tail after the payload but the timestamp's
    value, so a row passing here passes :func:`_check_entry` too (unless its timestamp
    holds ``,"seq":``, a forgery whose leaf hash had to be forged as well). The rows
    after the first one that does not pass are left to the careful check.
    """
    hexlify = binascii.hexlify
    middle = _MIDDLE
    types = tails.types
    run, run_bytes = tails.run, tails.run_bytes
    pos = count
    try:
        for (seq, entry, stored, type_, run_id), h in zip(rows, map(hexlify, digests), strict=True):
            if run_id != run:
                run, run_bytes = run_id, _encode_run(run_id)
            try:
                suffix, before = types[type_]
            except KeyError:
                suffix, before = types[type_] = _type_tail(type_)
            if (
                seq != pos
                or stored != h
                or not entry.endswith(suffix)
                or not entry.endswith(middle % (prev, run_bytes, seq), 0, before)
            ):
                break
            prev = h
            pos += 1
    except Exception:  # a value no store writes (a number for a type, ...): careful check
        pass
    tails.run, tails.run_bytes = run, run_bytes
    return pos - count


def _check_entry(
    row: Row, count: int, prev: bytes | None, hx: str, type_suffix: dict[str, bytes]
) -> tuple[Problem | None, bytes]:
    """The careful check of one entry, naming the first problem; returns it and prev_hash."""
    tampered = _TAMPERED
    seq, entry, stored = row[0], row[1], row[2]
    j = entry.rfind(_SEQ)
    if len(row) == 5:
        type_, run_id = row[3], row[4]
        differs = (seq, tampered, f"entry {seq}'s indexed type or run id differs")
        if not isinstance(type_, str) or not (run_id is None or isinstance(run_id, str)):
            return differs, b""
        suffix = type_suffix.get(type_)
        if suffix is None:
            suffix = type_suffix[type_] = b',"type":' + canonical_json(type_) + b"}"
        k = entry.rfind(_RUN, 0, j)
        if not entry.endswith(suffix) or k < 0 or entry[k + 10 : j] != _encode_run(run_id):
            return differs, b""
    if seq != count:
        return (count, tampered, f"entry {count} is missing (found seq {seq})"), b""
    if stored is not None and stored != (hx.encode() if isinstance(stored, bytes) else hx):
        return (seq, tampered, f"entry {seq} does not hash to its recorded leaf hash"), b""
    k = entry.rfind(_PREV, 0, j)
    named = entry[k + 14 : k + 78] if k >= 0 else b""
    if k < 0 or (prev is not None and named != prev):
        return (seq, tampered, f"entry {seq} does not link to entry {seq - 1}"), named
    if j < 0 or not entry.startswith(b'"seq":%d,"ts":' % seq, j + 1):
        return (seq, tampered, f"entry {seq} records a different position"), named
    return None, named


def _careful(
    rows: Sequence[Row],
    digests: Sequence[bytes] | None,
    count: int,
    prev: bytes | None,
    type_suffix: dict[str, bytes],
) -> tuple[int, bytes | None, bytes | None, Problem | None]:
    """Check ``rows`` one by one with :func:`_check_entry`, up to the first problem.

    ``digests`` are their leaf hashes, when known. Returns how many rows passed, the
    hex leaf hash of the last of them (``prev`` when none), the prev_hash the first row
    names, and the problem (None when every row passed).
    """
    first_named: bytes | None = None
    for i, row in enumerate(rows):
        if digests is not None:
            d = digests[i]
        elif isinstance(row[1], bytes):
            d = hashlib.sha256(_LEAF + row[1]).digest()
        else:
            return i, prev, first_named, (count, _TAMPERED, f"entry {count} is not bytes")
        hx = d.hex()
        problem, named = _check_entry(row, count, prev, hx, type_suffix)
        if problem is not None:
            return i, prev, first_named, problem
        if i == 0:
            first_named = named
        prev = hx.encode()
        count += 1
    return len(rows), prev, first_named, None


def _walk(
    batches: Iterable[Sequence[Row]],
    start: int,
    prev: bytes | None,
    wanted: Iterable[int],
    cap: int | None = None,
    *,
    fast: bool = True,
) -> _Walk:
    """Check entries ``start, start+1, ...`` (in batches) and build their subtrees.

    ``start`` must be 0 or a multiple of ``2**cap``, so the range's subtrees of up to
    ``2**cap`` leaves are subtrees of the whole tree. ``prev`` is the hex leaf hash the
    first entry must name, None when unknown (then the walk reports what it names).
    With ``fast``, a batch gets the fast check first; from the first row it does not
    vouch for on, the careful check, which names the problem if there is one.
    """
    sha = hashlib.sha256
    leaf = _LEAF
    tree = _Tree(cap)
    marks = sorted({w for w in wanted if w > start})
    snapshots: dict[int, list[Piece]] = {}
    tails = _Tails()
    type_suffix: dict[str, bytes] = {}
    first_prev: bytes | None = None
    count = start
    mark = 0
    for batch in batches:
        i, n = 0, len(batch)
        while i < n:
            j = n
            if mark < len(marks) and marks[mark] - count < n - i:
                j = i + marks[mark] - count
            if prev is None:
                j = i + 1
            rows = batch if i == 0 and j == n else batch[i:j]
            digests: list[bytes] | None
            try:
                digests = [sha(leaf + r[1]).digest() for r in rows]
            except TypeError:  # an entry that is not bytes: the careful check names it
                digests = None
            k = 0
            if fast and digests is not None and prev is not None:
                k = _fast(rows, digests, count, prev, tails)  # type: ignore[arg-type]
                if k:
                    prev = binascii.hexlify(digests[k - 1])
            if k < len(rows):
                unknown = prev is None
                passed, prev, named, problem = _careful(
                    rows[k:], None if digests is None else digests[k:], count + k, prev, type_suffix
                )
                if unknown:
                    first_prev = named
                if problem is not None:
                    return _Walk(
                        count + k + passed, prev or b"", first_prev, [], snapshots, problem
                    )
            assert digests is not None  # every row passed, so every entry was bytes
            tree.add(digests)
            count += j - i
            i = j
            if mark < len(marks) and count == marks[mark]:
                snapshots[count] = tree.pieces()
                mark += 1
    return _Walk(count, prev or b"", first_prev, tree.pieces(), snapshots)


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
            problems.append((seq, _TAMPERED, f"entry {seq} does not link to entry {seq - 1}"))
    if problems:
        seq, reason, message = min(problems)
        return VerifyReport(False, seq, "", len(parsed), latest, seq, reason, message)
    stack: list[Piece] = []
    roots: dict[int, bytes] = {0: _fold([])}
    for w in walks:
        for size, snap in w.snapshots.items():
            at = list(stack)
            for piece in snap:
                _push(at, piece)
            roots[size] = _fold([h for _, h in at])
        for piece in w.pieces:
            _push(stack, piece)
    full = _fold([h for _, h in stack]).hex()
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
                _TAMPERED,
                f"the log's root at size {size} does not match its signed checkpoint",
                full,
            )
    return VerifyReport(True, count, full, len(parsed), latest)


def _batched(rows: Iterable[Row], size: int = 512) -> Iterator[list[Row]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def verify_rows(
    rows: Iterable[Row],
    checkpoints: Sequence[str],
    verifier: Verifier | None,
    origin: str | None = None,
) -> VerifyReport:
    """Walk ``(seq, entry, stored leaf hash or None[, type, run_id])`` rows and check notes.

    Every row gets the careful check (an export, read back, has no leaf hashes).

    Args:
        rows: the entries in seq order.
        checkpoints: signed checkpoint notes, oldest first.
        verifier: the trusted key; None only when there are no checkpoints.
        origin: the expected checkpoint origin, when known.
    """
    parsed = _parse_notes(checkpoints, verifier, origin)
    if isinstance(parsed, VerifyReport):
        return parsed
    walk = _walk(_batched(rows), 0, _GENESIS, {s for s, _ in parsed}, fast=False)
    return _judge(parsed, [walk])


PARALLEL_MIN_ENTRIES = 200_000
"""Below this many entries a second process costs more than it saves."""

_CHUNK_BITS = 14
"""Two processes walk the ledger in chunks of ``2**14`` entries (fewer, for a small one)."""


def _chunks(end: int) -> tuple[list[tuple[int, int | None]], int]:
    """The ranges the processes share out for a ledger of ``end`` entries, and their height.

    Each range but the last holds ``2**bits`` entries and starts at a multiple of that,
    so it is a complete subtree of the whole tree; the last one is open-ended. About
    eight ranges or more, so that the processes end within a range of each other.
    """
    bits = min(_CHUNK_BITS, max((end // 8).bit_length() - 1, 0))
    starts = list(range(0, max(end, 1), 1 << bits))
    ranges: list[tuple[int, int | None]] = [(a, a + (1 << bits)) for a in starts[:-1]]
    ranges.append((starts[-1], None))
    return ranges, bits


def _walk_chunks(
    scan: LedgerScanner,
    ranges: list[tuple[int, int | None]],
    bits: int,
    wanted: set[int],
    claim: Synchronized[int],
    stop: Synchronized[int],
) -> list[tuple[int, _Walk]]:
    """Walk the ranges this process claims, in claiming order, until none are left.

    ``claim`` is the next range to take, shared by the processes. A range with a
    problem lowers ``stop``: ranges after it cannot change the verdict.
    """
    done: list[tuple[int, _Walk]] = []
    while True:
        with claim.get_lock():
            i = claim.value
            if i >= min(len(ranges), stop.value):
                return done
            claim.value = i + 1
        start, end = ranges[i]
        walk = _walk(scan(start, end), start, _GENESIS if start == 0 else None, wanted, bits)
        if walk.bad is None and end is not None and walk.end < end:
            walk.bad = (walk.end, _TAMPERED, f"entry {walk.end} is missing")
        done.append((i, walk))
        if walk.bad is not None:
            with stop.get_lock():
                stop.value = min(stop.value, i)


def _walk_child(
    conn: Connection,
    scanner: LedgerScanner,
    ranges: list[tuple[int, int | None]],
    bits: int,
    wanted: set[int],
    claim: Synchronized[int],
    stop: Synchronized[int],
) -> None:
    """The second process: walk the ranges it claims and send back ``(walks, error)``.

    The error is the message of a store error, or "" when something else failed
    (the parent then walks what is missing itself, and meets the problem there).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and ends this
    done: list[tuple[int, _Walk]] = []
    error: str | None = None
    try:
        done = _walk_chunks(scanner, ranges, bits, wanted, claim, stop)
    except StoreError as exc:
        error = exc.message
    except Exception:
        error = ""
    try:
        conn.send((done, error))
        conn.close()
    except OSError:  # the parent stopped listening: it no longer needs these
        pass


def _walk_parallel(
    store: Store, scanner: LedgerScanner, end: int, wanted: set[int]
) -> list[_Walk] | None:
    """Walk the ledger in two processes, the second one forked, sharing out ranges.

    Ranges are claimed one at a time, so a process slowed down (by other work on its
    core) walks fewer of them and the two finish together. The walks come back in
    ledger order, up to the first one with a problem. None when no second process
    can be started here (no shared semaphores, say): then nothing was walked.
    """
    import multiprocessing

    ranges, bits = _chunks(end)
    ctx = multiprocessing.get_context("fork")
    try:
        claim, stop = ctx.Value("q", 0), ctx.Value("q", len(ranges))
        receiver, sender = ctx.Pipe(duplex=False)
    except OSError:
        return None
    child = ctx.Process(
        target=_walk_child, args=(sender, scanner, ranges, bits, wanted, claim, stop), daemon=True
    )
    try:
        child.start()
    except OSError:
        receiver.close()
        sender.close()
        return None
    sender.close()
    theirs: tuple[list[tuple[int, _Walk]], str | None] | None = None
    waited = False
    try:
        mine = _walk_chunks(store.ledger_scan, ranges, bits, wanted, claim, stop)
        try:
            theirs = receiver.recv()
        except EOFError:
            theirs = None
        waited = True
    finally:
        if not waited:
            child.terminate()
        receiver.close()
        child.join()
    walks = dict(mine)
    if theirs is not None:
        if theirs[1]:
            raise StoreError(theirs[1])
        walks.update(theirs[0])
    out: list[_Walk] = []
    for i, (start, stop_at) in enumerate(ranges):
        walk = walks.get(i)
        if walk is None:  # the second process failed before walking it
            walk = _walk(store.ledger_scan(start, stop_at), start, None, wanted, bits)
            if walk.bad is None and stop_at is not None and walk.end < stop_at:
                walk.bad = (walk.end, _TAMPERED, f"entry {walk.end} is missing")
        out.append(walk)
        if walk.bad is not None:
            break
    return out


def verify_store(
    store: Store,
    verifier: Verifier | None,
    origin: str | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify the store's ledger and every signed checkpoint in it.

    A large ledger is walked by two processes, each over about half of it
    (``workers=1`` keeps it in one process); the store must offer a
    :meth:`~lifeos.store.base.Store.ledger_scanner` for that.
    """
    try:
        parsed = _parse_notes(
            [c["note"] for c in store.list_signed_checkpoints()], verifier, origin
        )
        if isinstance(parsed, VerifyReport):
            return parsed
        wanted = {s for s, _ in parsed}
        if workers is None:
            workers = 2 if (os.cpu_count() or 1) > 1 else 1
        scanner = None
        if workers > 1 and _has(store, max(PARALLEL_MIN_ENTRIES, 2) - 1) and _can_fork():
            scanner = store.ledger_scanner()
        end = _end(store) if scanner is not None else 0
        walks = None
        if scanner is not None and end >= 2:
            walks = _walk_parallel(store, scanner, end, wanted)
        if walks is None:
            walks = [_walk(store.ledger_scan(), 0, _GENESIS, wanted)]
        return _judge(parsed, walks)
    except StoreError as exc:
        return VerifyReport(
            False,
            0,
            "",
            reason_code=_TAMPERED,
            message=f"the store is damaged: {exc.message}",
        )


def _has(store: Store, seq: int) -> bool:
    """Whether the store holds a row at ``seq`` (one indexed look-up)."""
    return any(store.ledger_scan(seq, seq + 1))


def _end(store: Store) -> int:
    """The ledger's size if it is intact, found in a few dozen look-ups.

    Only where the walk is split depends on it, and counting the rows would read a
    whole index. With rows missing it is one past some seq the store holds, so the
    second half still starts below a row that is there.
    """
    if not _has(store, 0):
        return 0
    present, absent = 0, 1
    while _has(store, absent):
        present, absent = absent, absent * 2
    while absent - present > 1:
        middle = (present + absent) // 2
        if _has(store, middle):
            present = middle
        else:
            absent = middle
    return absent


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _leaves(store: Store, end: int | None = None) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(_LEAF + r[1]).digest() for batch in store.ledger_scan(0, end) for r in batch]


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
