"""Tamper with a real SQLite ledger behind the store's back; verification must notice.

A template store holds a ledger of 40 entries and one signed checkpoint covering
all of them. Each test copies the template, edits the copy with the stdlib
``sqlite3`` module (the way an attacker with file access would), then opens it
again and runs :func:`verify_store` against the original trusted key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifeos.canonical import canonical_json
from lifeos.clock import FixedClock
from lifeos.errors import ReasonCode
from lifeos.ledger.chain import (
    GENESIS_HASH,
    VerifyReport,
    export_ledger,
    read_export,
    sign_checkpoint,
    verify_rows,
    verify_store,
)
from lifeos.ledger.note import Signer, Verifier
from lifeos.store import StoreError
from lifeos.store.sqlite import SQLiteStore

SIZE = 40
ORIGIN = "lifeos/test"
TAMPERED = ReasonCode.LEDGER_TAMPERED.value
TRUNCATED = ReasonCode.LEDGER_TRUNCATED.value
SIGNATURE_INVALID = ReasonCode.SIGNATURE_INVALID.value


def examples(n: int) -> settings:
    """Hypothesis settings: ``n`` examples, no deadline (each example copies a file)."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@dataclass(frozen=True)
class Template:
    """A closed store file with :data:`SIZE` entries and one signed checkpoint."""

    path: Path
    signer: Signer
    root: str
    entries: tuple[bytes, ...]
    leaves: tuple[str, ...]

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier()


def _remove_sidecars(path: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("template") / "lifeos.db"
    signer = Signer.generate(ORIGIN)
    store = SQLiteStore(path, FixedClock())
    try:
        for i in range(SIZE):
            store.append_ledger(
                "test.event" if i % 5 else "run.started",
                f"run-{i % 3}",
                {"i": i, "text": "x" * (i * 7), "nested": {"list": list(range(i % 4))}},
            )
        sign_checkpoint(store, signer)
        report = verify_store(store, signer.verifier(), ORIGIN)
        rows = list(store.ledger_rows())
    finally:
        store.close()
    assert report.ok and report.size == SIZE, report
    _remove_sidecars(path)
    return Template(
        path=path,
        signer=signer,
        root=report.root,
        entries=tuple(r["entry"] for r in rows),
        leaves=tuple(r["leaf_hash"] for r in rows),
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


def fresh_copy(template: Template, workdir: Path, name: str = "work.db") -> Path:
    """A private copy of the template store (overwriting an earlier one)."""
    target = workdir / name
    _remove_sidecars(target)
    shutil.copyfile(template.path, target)
    return target


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """The stdlib sqlite3 on the file: commit on success, always close."""
    db = sqlite3.connect(str(path))
    try:
        yield db
        db.commit()
    finally:
        db.close()


def verify_file(path: Path, verifier: Verifier | None, origin: str | None = ORIGIN) -> VerifyReport:
    store = SQLiteStore(path, FixedClock())
    try:
        return verify_store(store, verifier, origin)
    finally:
        store.close()


def entry_of(path: Path, seq: int) -> bytes:
    with raw(path) as db:
        row = db.execute("SELECT entry FROM ledger WHERE seq = ?", (seq,)).fetchone()
    return bytes(row[0])


def assert_bad(report: VerifyReport, reason: str, seq: int) -> None:
    assert report.ok is False, report
    assert report.reason_code == reason, report
    assert report.first_bad_seq == seq, report


# -- the untouched copy ---------------------------------------------------------------


def test_untouched_copy_verifies(template: Template, workdir: Path) -> None:
    report = verify_file(fresh_copy(template, workdir), template.verifier)
    assert report.ok is True
    assert report.size == SIZE and report.root == template.root
    assert report.checkpoints == 1 and report.latest_checkpoint_size == SIZE
    assert report.reason_code is None and report.first_bad_seq is None


def test_untouched_copy_with_wrong_origin_fails(template: Template, workdir: Path) -> None:
    report = verify_file(fresh_copy(template, workdir), template.verifier, "lifeos/other")
    assert report.ok is False and report.reason_code == SIGNATURE_INVALID


# -- (a) one byte of one stored entry ------------------------------------------------------


@examples(200)
@given(data=st.data())
def test_any_changed_entry_byte_names_its_seq(
    template: Template, workdir: Path, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    original = template.entries[seq]
    offset = data.draw(st.integers(0, len(original) - 1), label="offset")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[offset]), label="byte")
    path = fresh_copy(template, workdir)
    changed = bytearray(original)
    changed[offset] = value
    with raw(path) as db:
        db.execute("UPDATE ledger SET entry = ? WHERE seq = ?", (bytes(changed), seq))
    assert entry_of(path, seq) == bytes(changed)
    assert_bad(verify_file(path, template.verifier), TAMPERED, seq)


@examples(60)
@given(data=st.data())
def test_changed_entry_with_matching_leaf_hash_is_still_caught(
    template: Template, workdir: Path, data: st.DataObject
) -> None:
    """Rewrite an entry *and* its leaf hash: the next link (or the signed root) breaks."""
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    entry = json.loads(template.entries[seq])
    entry["payload"]["i"] = -1
    forged = canonical_json(entry)
    leaf = hashlib.sha256(b"\x00" + forged).hexdigest()
    path = fresh_copy(template, workdir)
    with raw(path) as db:
        db.execute("UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = ?", (forged, leaf, seq))
    report = verify_file(path, template.verifier)
    assert report.ok is False and report.reason_code == TAMPERED, report
    # The walk cannot tell a forged entry from a forged link: it names the break.
    expected = seq + 1 if seq < SIZE - 1 else SIZE - 1
    assert report.first_bad_seq == expected, report


# -- (b) one character of a stored leaf hash ----------------------------------------------


@examples(80)
@given(data=st.data())
def test_changed_leaf_hash_names_its_seq(
    template: Template, workdir: Path, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(0, SIZE - 1), label="seq")
    leaf = template.leaves[seq]
    pos = data.draw(st.integers(0, len(leaf) - 1), label="pos")
    char = data.draw(st.sampled_from("0123456789abcdefABCDEF").filter(lambda c: c != leaf[pos]))
    forged = leaf[:pos] + char + leaf[pos + 1 :]
    path = fresh_copy(template, workdir)
    with raw(path) as db:
        db.execute("UPDATE ledger SET leaf_hash = ? WHERE seq = ?", (forged, seq))
    assert_bad(verify_file(path, template.verifier), TAMPERED, seq)


def test_relabelled_run_id_column_is_detected(template: Template, workdir: Path) -> None:
    path = fresh_copy(template, workdir)
    with raw(path) as db:
        db.execute("UPDATE ledger SET run_id = 'someone-else' WHERE seq = 3")
    store = SQLiteStore(path, FixedClock())
    try:
        assert 3 not in [r["seq"] for r in store.ledger_rows_for_run("run-0")]
        report = verify_store(store, template.verifier, ORIGIN)
    finally:
        store.close()
    assert_bad(report, TAMPERED, 3)


# -- (c) one row deleted -------------------------------------------------------------------


@pytest.mark.parametrize("seq", range(SIZE))
def test_deleted_row_is_detected(template: Template, workdir: Path, seq: int) -> None:
    path = fresh_copy(template, workdir, f"delete-{seq}.db")
    with raw(path) as db:
        assert db.execute("DELETE FROM ledger WHERE seq = ?", (seq,)).rowcount == 1
    report = verify_file(path, template.verifier)
    if seq == SIZE - 1:
        assert_bad(report, TRUNCATED, seq)
    else:
        assert_bad(report, TAMPERED, seq)


# -- (d) two rows swapped ------------------------------------------------------------------


def _swap(path: Path, i: int, j: int, columns: str) -> None:
    with raw(path) as db:
        a = db.execute(f"SELECT {columns} FROM ledger WHERE seq = ?", (i,)).fetchone()
        b = db.execute(f"SELECT {columns} FROM ledger WHERE seq = ?", (j,)).fetchone()
        sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
        db.execute(f"UPDATE ledger SET {sets} WHERE seq = ?", (*b, i))
        db.execute(f"UPDATE ledger SET {sets} WHERE seq = ?", (*a, j))


@examples(60)
@given(
    pair=st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2, unique=True).map(sorted),
    columns=st.sampled_from(["entry", "entry, leaf_hash", "entry, leaf_hash, type, run_id"]),
)
def test_swapped_rows_name_the_lower_seq(
    template: Template, workdir: Path, pair: list[int], columns: str
) -> None:
    i, j = pair
    path = fresh_copy(template, workdir)
    _swap(path, i, j, columns)
    assert_bad(verify_file(path, template.verifier), TAMPERED, i)


# -- (e) the tail cut off ------------------------------------------------------------------


def test_truncated_tail_names_the_first_missing_seq(template: Template, workdir: Path) -> None:
    for keep in range(SIZE):
        path = fresh_copy(template, workdir, "truncate.db")
        with raw(path) as db:
            db.execute("DELETE FROM ledger WHERE seq >= ?", (keep,))
        report = verify_file(path, template.verifier)
        assert_bad(report, TRUNCATED, keep)
        assert report.size == keep and report.latest_checkpoint_size == SIZE


def test_truncated_then_regrown_history_breaks_the_signed_root(
    template: Template, workdir: Path
) -> None:
    """Roll the log back to 30 entries and append 10 others: a consistent chain, wrong root."""
    path = fresh_copy(template, workdir)
    with raw(path) as db:
        db.execute("DELETE FROM ledger WHERE seq >= 30")
    store = SQLiteStore(path, FixedClock())
    try:
        for i in range(30, SIZE):
            store.append_ledger("test.event", "run-x", {"i": i, "rewritten": True})
        report = verify_store(store, template.verifier, ORIGIN)
        assert verify_store(store, None).ok is False  # checkpoints need a key
    finally:
        store.close()
    assert report.ok is False and report.reason_code == TAMPERED, report
    assert report.size == SIZE and report.root != template.root


# -- (f) tampered data re-signed with another key -------------------------------------------


def _rewrite_consistently(path: Path, seq: int) -> None:
    """Change entry ``seq`` and recompute every later link and leaf hash."""
    with raw(path) as db:
        rows = db.execute("SELECT seq, entry FROM ledger ORDER BY seq").fetchall()
        prev = GENESIS_HASH
        for s, blob in rows:
            entry = json.loads(bytes(blob))
            if s == seq:
                entry["payload"]["text"] = "forged"
            entry["prev_hash"] = prev
            data = canonical_json(entry)
            prev = hashlib.sha256(b"\x00" + data).hexdigest()
            db.execute("UPDATE ledger SET entry = ?, leaf_hash = ? WHERE seq = ?", (data, prev, s))
        db.execute("DELETE FROM ledger_checkpoints")


@pytest.mark.parametrize("seq", [0, 17, SIZE - 1])
def test_resigned_forgery_fails_against_the_trusted_key(
    template: Template, workdir: Path, seq: int
) -> None:
    path = fresh_copy(template, workdir)
    _rewrite_consistently(path, seq)
    forger = Signer.generate(ORIGIN)  # same name, fresh key
    store = SQLiteStore(path, FixedClock())
    try:
        note = sign_checkpoint(store, forger)
        # The forgery is internally consistent: the forger's own key accepts it ...
        forged_view = verify_store(store, forger.verifier(), ORIGIN)
        # ... and the repository's key does not.
        trusted_view = verify_store(store, template.verifier, ORIGIN)
    finally:
        store.close()
    assert note.startswith(f"{ORIGIN}\n{SIZE}\n")
    assert forged_view.ok is True and forged_view.root != template.root
    assert trusted_view.ok is False
    assert trusted_view.reason_code == SIGNATURE_INVALID, trusted_view


def test_forged_checkpoint_added_beside_the_real_one_fails(
    template: Template, workdir: Path
) -> None:
    path = fresh_copy(template, workdir)
    store = SQLiteStore(path, FixedClock())
    try:
        sign_checkpoint(store, Signer.generate(ORIGIN))
        report = verify_store(store, template.verifier, ORIGIN)
    finally:
        store.close()
    assert report.ok is False and report.reason_code == SIGNATURE_INVALID


# -- (g) a damaged database file -------------------------------------------------------------


def _page_of(data: bytes, marker: bytes, page_size: int = 4096) -> int:
    offset = data.find(marker)
    assert offset > 0, marker
    return offset // page_size


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _header(data: bytes) -> bytes:
    return b"\xff" * 100 + data[100:]


def _first_page(data: bytes) -> bytes:
    return b"\x00" * 4096 + data[4096:]


def _ledger_page(data: bytes) -> bytes:
    page = _page_of(data, b'"seq":20,')
    return data[: page * 4096] + b"\xa5" * 4096 + data[(page + 1) * 4096 :]


def _checkpoint_page(data: bytes) -> bytes:
    page = _page_of(data, f"{ORIGIN}\n{SIZE}\n".encode())
    return data[: page * 4096] + b"\x00" * 4096 + data[(page + 1) * 4096 :]


UNHANDLED_SQLITE_ERROR = (
    "bug: SQLiteStore opens the file (its schema pages are intact) but reading the damaged "
    "ledger/checkpoint pages raises a raw sqlite3.DatabaseError ('database disk image is "
    "malformed') out of ledger_rows()/list_signed_checkpoints() instead of a StoreError, so "
    "`lifeos ledger verify` would crash with a traceback instead of failing cleanly"
)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_half, id="truncated-to-half"),
        pytest.param(_header, id="header-overwritten"),
        pytest.param(_first_page, id="first-page-zeroed"),
        pytest.param(
            _ledger_page,
            id="ledger-page-garbage",
        ),
        pytest.param(
            _checkpoint_page,
            id="checkpoint-page-zeroed",
        ),
    ],
)
def test_damaged_file_fails_cleanly(
    template: Template, workdir: Path, damage: Callable[[bytes], bytes]
) -> None:
    path = workdir / f"damaged-{damage.__name__}.db"
    _remove_sidecars(path)
    path.write_bytes(damage(template.path.read_bytes()))
    before = path.read_bytes()
    try:
        store = SQLiteStore(path, FixedClock())
    except StoreError as exc:
        assert exc.reason == ReasonCode.STORE_UNAVAILABLE
        assert path.read_bytes() == before  # nothing written to a file it refused
        return
    try:
        report = verify_store(store, template.verifier, ORIGIN)
    except StoreError:
        return
    finally:
        store.close()
    assert report.ok is False, report


# -- (h) export and read back ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("export") / "ledger.jsonl"
    store = SQLiteStore(fresh_copy(template, target.parent, "export-src.db"), FixedClock())
    try:
        assert export_ledger(store, target) == SIZE
    finally:
        store.close()
    return target


def test_export_round_trip_verifies(template: Template, exported: Path) -> None:
    lines = exported.read_bytes().split(b"\n")
    assert lines[-1] == b"" and tuple(lines[:-1]) == template.entries
    rows, notes = read_export(exported)
    assert len(rows) == SIZE and len(notes) == 1
    report = verify_rows(rows, notes, template.verifier, ORIGIN)
    assert report.ok is True, report
    assert report.size == SIZE and report.root == template.root and report.checkpoints == 1


def _export_copy(exported: Path, workdir: Path, data: bytes, notes: bytes | None = None) -> Path:
    target = workdir / "edited.jsonl"
    target.write_bytes(data)
    notes_src = exported.with_name(exported.name + ".notes")
    target.with_name(target.name + ".notes").write_bytes(
        notes if notes is not None else notes_src.read_bytes()
    )
    return target


@examples(150)
@given(data=st.data())
def test_any_changed_export_byte_is_detected(
    template: Template, exported: Path, workdir: Path, data: st.DataObject
) -> None:
    original = exported.read_bytes()
    offset = data.draw(st.integers(0, len(original) - 1), label="offset")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[offset]), label="byte")
    changed = bytearray(original)
    changed[offset] = value
    rows, notes = read_export(_export_copy(exported, workdir, bytes(changed)))
    report = verify_rows(rows, notes, template.verifier, ORIGIN)
    assert report.ok is False, report
    assert report.reason_code in (TAMPERED, TRUNCATED), report
    # An export carries no leaf hashes: the walk names the changed line or the next one.
    line = original[:offset].count(b"\n")
    assert report.first_bad_seq is not None
    assert line <= report.first_bad_seq <= min(line + 1, SIZE - 1), (line, report)


def test_export_missing_last_line_is_truncated(
    template: Template, exported: Path, workdir: Path
) -> None:
    lines = exported.read_bytes().split(b"\n")[:-1]
    edited = _export_copy(exported, workdir, b"\n".join(lines[:-1]) + b"\n")
    rows, notes = read_export(edited)
    assert_bad(verify_rows(rows, notes, template.verifier, ORIGIN), TRUNCATED, SIZE - 1)


def test_export_with_edited_note_fails_signature(
    template: Template, exported: Path, workdir: Path
) -> None:
    notes = exported.with_name(exported.name + ".notes").read_bytes()
    edited_notes = notes.replace(f"\n{SIZE}\n".encode(), f"\n{SIZE - 1}\n".encode(), 1)
    assert edited_notes != notes
    rows, got = read_export(_export_copy(exported, workdir, exported.read_bytes(), edited_notes))
    report = verify_rows(rows, got, template.verifier, ORIGIN)
    assert report.ok is False and report.reason_code == SIGNATURE_INVALID, report
