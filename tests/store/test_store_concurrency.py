"""Many writers on one SQLite file: the ledger stays one linear, gap-free hash chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from lifeos.clock import FixedClock, SystemClock
from lifeos.store.sqlite import GENESIS_HASH, SQLiteStore

WORKERS = 4
APPENDS = 500


def _append_worker(path: str, worker: int, appends: int, barrier: Barrier) -> None:
    """Runs in a child process: open a store of its own and append ``appends`` entries."""
    store = SQLiteStore(path, SystemClock())
    try:
        barrier.wait(timeout=60)
        for n in range(appends):
            store.append_ledger("load.test", f"run-{worker}", {"worker": worker, "n": n})
    finally:
        store.close()


def test_concurrent_processes_append_one_linear_chain(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    # Create the schema first: concurrent *first* opens of a new file can fail (see
    # test_opening_a_new_store_waits_for_a_writer_holding_the_lock below).
    SQLiteStore(path, SystemClock()).close()

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    processes = [
        ctx.Process(target=_append_worker, args=(str(path), i, APPENDS, barrier))
        for i in range(WORKERS)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    elapsed = time.perf_counter() - started
    assert [p.exitcode for p in processes] == [0] * WORKERS
    print(f"{WORKERS} processes x {APPENDS} appends: {elapsed:.2f}s")

    with closing(SQLiteStore(path, SystemClock())) as store:
        assert store.ledger_size() == WORKERS * APPENDS
        rows = list(store.ledger_rows())
        per_run = {i: store.ledger_rows_for_run(f"run-{i}") for i in range(WORKERS)}

    assert [row["seq"] for row in rows] == list(range(WORKERS * APPENDS))
    previous = GENESIS_HASH
    seen: Counter[tuple[int, int]] = Counter()
    for row in rows:
        assert row["leaf_hash"] == hashlib.sha256(b"\x00" + row["entry"]).hexdigest()
        entry = json.loads(row["entry"])
        assert entry["seq"] == row["seq"]
        assert entry["prev_hash"] == previous
        previous = row["leaf_hash"]
        payload = entry["payload"]
        assert entry["run_id"] == f"run-{payload['worker']}"
        seen[(payload["worker"], payload["n"])] += 1
    assert seen == Counter({(w, n): 1 for w in range(WORKERS) for n in range(APPENDS)})
    for worker, worker_rows in per_run.items():
        assert len(worker_rows) == APPENDS
        # each worker's own entries appear in the order it appended them
        ns = [json.loads(r["entry"])["payload"]["n"] for r in worker_rows]
        assert ns == list(range(APPENDS)), worker


def test_opening_an_existing_store_waits_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    SQLiteStore(path, FixedClock()).close()
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, other.execute, ("COMMIT",))
        release.start()
        try:
            with closing(SQLiteStore(path, FixedClock(), busy_timeout_s=10)) as store:
                assert store.ledger_size() == 0
        finally:
            release.join()


def test_opening_a_new_store_waits_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("BEGIN IMMEDIATE")  # as another opener initialising the file would
        release = threading.Timer(0.3, other.execute, ("ROLLBACK",))
        release.start()
        try:
            with closing(SQLiteStore(path, FixedClock(), busy_timeout_s=10)) as store:
                store.append_ledger("e", None, {})
                assert store.ledger_size() == 1
        finally:
            release.join()


def test_two_stores_in_one_process_interleave_appends(tmp_path: Path) -> None:
    path = tmp_path / "lifeos.db"
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with (
        closing(SQLiteStore(path, FixedClock(start))) as one,
        closing(SQLiteStore(path, FixedClock(start))) as two,
    ):
        for i in range(10):
            (one if i % 2 else two).append_ledger("e", None, {"i": i})
        rows = list(one.ledger_rows())
        assert rows == list(two.ledger_rows())
    assert [r["seq"] for r in rows] == list(range(10))
    for before, after in zip(rows, rows[1:], strict=False):
        assert json.loads(after["entry"])["prev_hash"] == before["leaf_hash"]
