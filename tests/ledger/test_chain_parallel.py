"""The two-process ledger walk gives the same verdicts as the one-process walk."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeos.clock import FixedClock
from lifeos.ledger import chain
from lifeos.ledger.chain import sign_checkpoint, verify_store
from lifeos.ledger.note import Signer, Verifier
from lifeos.store.sqlite import SQLiteStore

SIZE = 75
RANGES, _ = chain._chunks(SIZE)  # of 8 entries: 0..8, 8..16, ..., 72.. (open)
SPLIT = 32  # one range boundary among others; 64..75 is no complete subtree
SIGNER = Signer.generate("lifeos/parallel")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "template.db"
    store = SQLiteStore(path, FixedClock())
    try:
        for i in range(SIZE):
            store.append_ledger("t", f"run-{i % 3}", {"i": i})
            if i in (10, 64, 70):
                sign_checkpoint(store, SIGNER)
        sign_checkpoint(store, SIGNER)
    finally:
        store.close()
    return path


@pytest.fixture(autouse=True)
def always_parallel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(chain, "PARALLEL_MIN_ENTRIES", 0)
    yield


def _both(path: Path, verifier: Verifier) -> tuple[dict[str, object], dict[str, object]]:
    store = SQLiteStore(path, FixedClock())
    try:
        one = verify_store(store, verifier, workers=1).to_dict()
        two = verify_store(store, verifier, workers=2).to_dict()
    finally:
        store.close()
    return one, two


def _copy(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ledger.db"
    shutil.copy(template, target)
    return target


def test_intact_ledger_same_verdict(template: Path, tmp_path: Path) -> None:
    one, two = _both(_copy(template, tmp_path), SIGNER.verifier())
    assert one["ok"] is True
    assert one == two


def test_ranges_cover_the_ledger() -> None:
    assert RANGES[0] == (0, 8) and RANGES[-1] == (72, None)
    assert all(b == c for (_, b), (c, _) in zip(RANGES, RANGES[1:], strict=False))


@pytest.mark.parametrize("seq", [0, 5, SPLIT - 1, SPLIT, SPLIT + 1, 63, 64, 65, 74])
def test_changed_entry_same_verdict(template: Path, tmp_path: Path, seq: int) -> None:
    path = _copy(template, tmp_path)
    with sqlite3.connect(path) as db:
        (entry,) = db.execute("SELECT entry FROM ledger WHERE seq = ?", (seq,)).fetchone()
        db.execute(
            "UPDATE ledger SET entry = ? WHERE seq = ?", (entry.replace(b'"i":', b'"j":'), seq)
        )
    one, two = _both(path, SIGNER.verifier())
    assert one["ok"] is False and one["first_bad_seq"] == seq
    assert one == two


@pytest.mark.parametrize("seq", [3, SPLIT - 1, SPLIT, SPLIT + 1, 63, 64, 70])
def test_deleted_row_same_verdict(template: Path, tmp_path: Path, seq: int) -> None:
    path = _copy(template, tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM ledger WHERE seq = ?", (seq,))
    one, two = _both(path, SIGNER.verifier())
    assert one["ok"] is False and one["first_bad_seq"] == seq
    assert one["reason_code"] == two["reason_code"] == "LEDGER_TAMPERED"
    assert two["first_bad_seq"] == seq


def test_truncated_tail_same_verdict(template: Path, tmp_path: Path) -> None:
    path = _copy(template, tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM ledger WHERE seq >= 72")
    one, two = _both(path, SIGNER.verifier())
    assert one["reason_code"] == "LEDGER_TRUNCATED" and one["first_bad_seq"] == 72
    assert one == two


@pytest.mark.parametrize(
    "run_id", ["plain", "with space", 'quo"te', "back\\slash", "tab\there", "é ü", "\u2028", ""]
)
def test_indexed_run_id_check_agrees_with_canonical_json(tmp_path: Path, run_id: str) -> None:
    store = SQLiteStore(tmp_path / "ids.db", FixedClock())
    try:
        store.append_ledger("t", run_id, {})
        store.append_ledger("t", None, {})
        assert verify_store(store, None, workers=1).ok
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "ids.db") as db:
        db.execute("UPDATE ledger SET run_id = ? WHERE seq = 0", (run_id + "x",))
    store = SQLiteStore(tmp_path / "ids.db", FixedClock())
    try:
        report = verify_store(store, None, workers=1)
    finally:
        store.close()
    assert report.ok is False and report.first_bad_seq == 0
