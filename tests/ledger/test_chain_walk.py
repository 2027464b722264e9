"""The verify walk: its batched Merkle tree, its fast check and its two-process split.

``verify_store`` checks most entries with a fast, exact comparison of their tails and
hands anything else to the careful check, which names the problem. These tests hold
it to the careful check alone (``verify_rows``, which never takes the fast path) over
the same rows: same verdict, same seq, same message, whatever was tampered with and
however the rows are batched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lifeos.store.sqlite as sqlite_store
from lifeos.canonical import canonical_json
from lifeos.clock import FixedClock
from lifeos.ledger import chain
from lifeos.ledger.chain import (
    GENESIS_HASH,
    VerifyReport,
    sign_checkpoint,
    verify_rows,
    verify_store,
)
from lifeos.ledger.merkle import root
from lifeos.ledger.note import Signer
from lifeos.store import StoreError
from lifeos.store.sqlite import SQLiteStore

SIZE = 45
SIGNER = Signer.generate("lifeos/walk")
RUN_IDS = ["run-a", None, 'quo"te', "back\\slash", "new\nline", "é ü", "run-a", ""]
TYPES = ["run.started", "step", "täg", 'odd"type']


def _payload(i: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"i": i, "text": "x" * (i % 9)}
    if i % 4 == 1:  # keys the fast check looks for, inside the payload
        payload["nested"] = {"a": 1, "prev_hash": "f" * 64, "seq": i + 1, "ts": "x"}
    return payload


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("walk") / "template.db"
    store = SQLiteStore(path, FixedClock())
    try:
        for i in range(SIZE):
            store.append_ledger(TYPES[i % len(TYPES)], RUN_IDS[i % len(RUN_IDS)], _payload(i))
            if i in (6, 19, 32):
                sign_checkpoint(store, SIGNER)
        sign_checkpoint(store, SIGNER)
    finally:
        store.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def batches_of(size: int) -> Iterator[None]:
    """The SQLite store's scan batch size, for the duration."""
    saved = sqlite_store._SCAN_BATCH
    sqlite_store._SCAN_BATCH = size
    try:
        yield
    finally:
        sqlite_store._SCAN_BATCH = saved


@contextlib.contextmanager
def parallel_from(entries: int) -> Iterator[None]:
    saved = chain.PARALLEL_MIN_ENTRIES
    chain.PARALLEL_MIN_ENTRIES = entries
    try:
        yield
    finally:
        chain.PARALLEL_MIN_ENTRIES = saved


def _verdicts(path: Path, batch: int) -> tuple[VerifyReport, VerifyReport, VerifyReport]:
    """verify_store in one process, in two, and verify_rows over the same rows."""
    store = SQLiteStore(path, FixedClock())
    try:
        with batches_of(batch), parallel_from(0):
            one = verify_store(store, SIGNER.verifier(), workers=1)
            two = verify_store(store, SIGNER.verifier(), workers=2)
        notes = [c["note"] for c in store.list_signed_checkpoints()]
        rows = [
            (r["seq"], r["entry"], r["leaf_hash"], r["type"], r["run_id"])
            for r in store.ledger_rows()
        ]
    finally:
        store.close()
    return one, two, verify_rows(rows, notes, SIGNER.verifier())


def _assert_same(path: Path, batch: int) -> VerifyReport:
    one, two, careful = _verdicts(path, batch)
    assert one.to_dict() == careful.to_dict()
    assert (two.ok, two.first_bad_seq, two.reason_code, two.root) == (
        one.ok,
        one.first_bad_seq,
        one.reason_code,
        one.root,
    )
    return one


def _copy(template: Path, tmp_path: Path, name: str = "ledger.db") -> Path:
    target = tmp_path / name
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, target)
    return target


def _edit(path: Path, sql: str, *args: Any) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(sql, args)
        db.commit()


def _entry(path: Path, seq: int) -> bytes:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return bytes(db.execute("SELECT entry FROM ledger WHERE seq = ?", (seq,)).fetchone()[0])


EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the tree -------------------------------------------------------------------------------


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


def _add_in_batches(tree: chain._Tree, leaves: list[bytes], cuts: list[int]) -> None:
    bounds = sorted({0, len(leaves), *(c % (len(leaves) + 1) for c in cuts)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        tree.add(leaves[a:b])


@given(n=st.integers(0, 300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_batched_tree_has_the_root_of_the_whole_tree(n: int, cuts: list[int]) -> None:
    leaves = _leaves(n)
    tree = chain._Tree()
    _add_in_batches(tree, leaves, cuts)
    pieces = tree.pieces()
    assert sum(size for size, _ in pieces) == n
    assert chain._fold([h for _, h in pieces]) == root(leaves)


@given(n=st.integers(0, 300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_ranges_combine_into_the_root_of_the_whole_tree(n: int, cuts: list[int]) -> None:
    leaves = _leaves(n)
    ranges, bits = chain._chunks(n)
    assert ranges[0][0] == 0 and ranges[-1][1] is None
    assert len(ranges) >= min(8, n)
    stack: list[chain.Piece] = []
    for start, end in ranges:
        assert start % (1 << bits) == 0
        tree = chain._Tree(bits)
        _add_in_batches(tree, leaves[start:end], cuts)
        for piece in tree.pieces():
            chain._push(stack, piece)
    assert chain._fold([h for _, h in stack]) == root(leaves)


def test_ranges_of_a_large_ledger_are_complete_subtrees() -> None:
    ranges, bits = chain._chunks(1_000_000)
    assert bits == 14 and len(ranges) == 62
    assert all(b == a + 16384 for a, b in ranges[:-1])


# -- fast check and careful check agree -------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 8, 8192])
def test_intact_ledger_verifies_in_any_batching(template: Path, tmp_path: Path, batch: int) -> None:
    report = _assert_same(_copy(template, tmp_path), batch)
    assert report.ok and report.size == SIZE and report.checkpoints == 4
    store = SQLiteStore(template, FixedClock())
    try:
        leaves = [hashlib.sha256(b"\x00" + r["entry"]).digest() for r in store.ledger_rows()]
    finally:
        store.close()
    assert report.root == root(leaves).hex()


@EXAMPLES
@given(data=st.data(), batch=st.sampled_from([2, 5, 16, 8192]))
def test_changed_entry_byte_gets_the_careful_verdict(
    template: Path, tmp_path: Path, data: st.DataObject, batch: int
) -> None:
    path = _copy(template, tmp_path)
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    original = _entry(path, seq)
    # mostly the tail the fast check compares: prev hash, run id, seq, ts, type
    offset = data.draw(
        st.one_of(st.integers(max(0, len(original) - 190), len(original) - 1)),
        label="offset",
    )
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[offset]), label="byte")
    changed = bytearray(original)
    changed[offset] = value
    _edit(path, "UPDATE ledger SET entry = ? WHERE seq = ?", bytes(changed), seq)
    report = _assert_same(path, batch)
    assert report.ok is False and report.first_bad_seq == seq


@EXAMPLES
@given(data=st.data(), batch=st.sampled_from([2, 5, 16, 8192]))
def test_forged_entry_with_its_leaf_hash_gets_the_careful_verdict(
    template: Path, tmp_path: Path, data: st.DataObject, batch: int
) -> None:
    """Rewrite a field of an entry and its leaf hash, so the entry itself hashes right."""
    path = _copy(template, tmp_path)
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    entry = json.loads(_entry(path, seq))
    field = data.draw(st.sampled_from(["seq", "run_id", "type", "prev_hash", "ts"]), label="field")
    entry[field] = {
        "seq": entry["seq"] + data.draw(st.sampled_from([-1, 1, 10])),
        "run_id": data.draw(st.sampled_from(["other", None, 'q"'])),
        "type": data.draw(st.sampled_from(["other", "step2"])),
        "prev_hash": "0" * 64 if entry["prev_hash"] != "0" * 64 else "1" * 64,
        "ts": data.draw(st.sampled_from(["2026-01-01T00:00:00Z", 'x,"seq":1', ""])),
    }[field]
    forged = canonical_json(entry)
    assume(forged != _entry(path, seq))
    leaf = hashlib.sha256(b"\x00" + forged).hexdigest()
    _edit(path, "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = ?", forged, leaf, seq)
    report = _assert_same(path, batch)
    assert report.ok is False


@EXAMPLES
@given(
    data=st.data(),
    column=st.sampled_from(["leaf_hash", "type", "run_id", "seq"]),
    batch=st.sampled_from([2, 5, 8192]),
)
def test_changed_column_gets_the_careful_verdict(
    template: Path, tmp_path: Path, data: st.DataObject, column: str, batch: int
) -> None:
    path = _copy(template, tmp_path)
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    value: Any = {
        "leaf_hash": data.draw(st.sampled_from(["0" * 64, "A" * 64, "", "x"])),
        "type": data.draw(st.sampled_from(["step", "other", "run.started", 7])),
        "run_id": data.draw(st.sampled_from(["run-a", "other", None, "", 7])),
        "seq": data.draw(st.sampled_from([SIZE + 5, 10_000])),
    }[column]
    _edit(path, f"UPDATE ledger SET {column} = ? WHERE seq = ?", value, seq)
    one, two, careful = _verdicts(path, batch)
    if column in ("type", "run_id") and isinstance(value, int):
        # the careful walk over ledger_rows() sees the same number: both refuse it
        assert one.ok is False and one.first_bad_seq == seq
        assert two.first_bad_seq == seq
        return
    assert one.to_dict() == careful.to_dict()
    assert (two.first_bad_seq, two.reason_code) == (one.first_bad_seq, one.reason_code)


@pytest.mark.parametrize("batch", [3, 8192])
@pytest.mark.parametrize("seq", [0, 1, 21, 22, 23, SIZE - 1])
def test_deleted_row_gets_the_careful_verdict(
    template: Path, tmp_path: Path, seq: int, batch: int
) -> None:
    path = _copy(template, tmp_path)
    _edit(path, "DELETE FROM ledger WHERE seq = ?", seq)
    report = _assert_same(path, batch)
    assert report.ok is False and report.first_bad_seq == seq


@pytest.mark.parametrize("batch", [4, 8192])
def test_swapped_rows_get_the_careful_verdict(template: Path, tmp_path: Path, batch: int) -> None:
    path = _copy(template, tmp_path)
    a, b = _entry(path, 10), _entry(path, 30)
    _edit(path, "UPDATE ledger SET entry = ? WHERE seq = 10", b)
    _edit(path, "UPDATE ledger SET entry = ? WHERE seq = 30", a)
    report = _assert_same(path, batch)
    assert report.ok is False and report.first_bad_seq == 10


# -- entries the fast check does not vouch for, but are fine ---------------------------------


def _write_rows(path: Path, entries: list[dict[str, Any]]) -> list[bytes]:
    """A store whose ledger holds ``entries`` (seq and prev_hash filled in); their leaves."""
    SQLiteStore(path, FixedClock()).close()
    prev, leaves = GENESIS_HASH, []
    with contextlib.closing(sqlite3.connect(path)) as db:
        for seq, fields in enumerate(entries):
            data = canonical_json({**fields, "seq": seq, "prev_hash": prev})
            digest = hashlib.sha256(b"\x00" + data).digest()
            leaves.append(digest)
            prev = digest.hex()
            db.execute(
                "INSERT INTO ledger (seq, entry, leaf_hash, type, run_id) VALUES (?, ?, ?, ?, ?)",
                (seq, data, prev, fields["type"], fields["run_id"]),
            )
        db.commit()
    return leaves


@pytest.mark.parametrize("batch", [2, 8192])
def test_timestamps_of_another_length_verify(tmp_path: Path, batch: int) -> None:
    stamps = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000000Z", "", "+12026-01-01T00:00Z"]
    entries = [
        {"ts": stamps[i % len(stamps)], "type": "t", "run_id": "r", "payload": {"i": i}}
        for i in range(23)
    ]
    leaves = _write_rows(tmp_path / "ts.db", entries)
    report = _assert_same(tmp_path / "ts.db", batch)
    assert report.ok and report.root == root(leaves).hex()


# -- the second process ------------------------------------------------------------------------


def test_ranges_the_second_process_claims_and_drops_are_walked_by_the_first(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy(template, tmp_path)
    one, two, _ = _verdicts(path, 8192)

    def claims_two_then_dies(conn: Any, scanner: Any, ranges: Any, *rest: Any) -> None:
        claim = rest[-2]
        with claim.get_lock():
            claim.value += 2
        conn.close()

    monkeypatch.setattr(chain, "_walk_child", claims_two_then_dies)
    _, replaced, _ = _verdicts(path, 8192)
    assert replaced.to_dict() == two.to_dict() == one.to_dict()
    assert one.ok


def test_second_process_that_cannot_read_the_store_fails_cleanly(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    def unreadable(start: int, end: int | None) -> Iterator[Any]:
        raise StoreError("the ledger cannot be read: disk I/O error")
        yield  # a generator, like a real scanner

    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    ranges, bits = chain._chunks(SIZE)
    claim, stop = ctx.Value("q", 0), ctx.Value("q", len(ranges))
    handler = signal.getsignal(signal.SIGINT)
    try:
        chain._walk_child(sender, unreadable, ranges, bits, set(), claim, stop)
    finally:
        signal.signal(signal.SIGINT, handler)  # the child's part ignores ^C
    assert receiver.recv() == ([], "the ledger cannot be read: disk I/O error")

    def fails(conn: Any, *args: Any) -> None:
        conn.send(([], "the ledger cannot be read: disk I/O error"))
        conn.close()

    monkeypatch.setattr(chain, "_walk_child", fails)
    store = SQLiteStore(_copy(template, tmp_path), FixedClock())
    try:
        with parallel_from(0):
            report = verify_store(store, SIGNER.verifier(), workers=2)
    finally:
        store.close()
    assert report.ok is False and report.reason_code == "LEDGER_TAMPERED"
    assert report.message == "the store is damaged: the ledger cannot be read: disk I/O error"


def test_no_second_process_means_one_process(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    path = _copy(template, tmp_path)
    one, _, _ = _verdicts(path, 8192)

    class NoSemaphores:
        def Value(self, *args: Any) -> Any:  # noqa: N802 - multiprocessing's name
            raise OSError(38, "Function not implemented")

    monkeypatch.setattr(multiprocessing, "get_context", lambda method: NoSemaphores())
    _, two, _ = _verdicts(path, 8192)
    assert two.to_dict() == one.to_dict() and one.ok


@pytest.mark.parametrize("deleted", [[], [44], [0], [3, 4, 5], [22], list(range(10, 45))])
def test_end_is_the_size_or_a_boundary_the_store_has(
    template: Path, tmp_path: Path, deleted: list[int]
) -> None:
    path = _copy(template, tmp_path)
    for seq in deleted:
        _edit(path, "DELETE FROM ledger WHERE seq = ?", seq)
    store = SQLiteStore(path, FixedClock())
    try:
        end = chain._end(store)
        present = {r["seq"] for r in store.ledger_rows()}
    finally:
        store.close()
    if not deleted:
        assert end == SIZE
    if 0 in present:
        assert end - 1 in present and end not in present
    else:
        assert end == 0
