"""Ledger verify: entries/s of ``verify_store`` over a 1,000,000-entry ledger.

Measures: a ledger of ``LIFEOS_BENCH_LEDGER_N`` entries (default 1,000,000) is
built in a temporary ``SQLiteStore``: all but the last entry are inserted
straight into its ``ledger`` table with the stdlib ``sqlite3`` (``executemany``,
``synchronous=OFF``), each entry the canonical JSON of ``{seq, ts, type, run_id,
payload, prev_hash}`` with leaf hash SHA-256(0x00 || entry) chained through
``prev_hash`` exactly as ``SQLiteStore.append_ledger`` does; the last entry is
appended through ``append_ledger`` itself, so the verify proves the two agree.
The entries look like a recorded workflow's: per run a ``run.started``, five
``step`` entries (checkpoint id, index, state hash, status, step id) and a
``run.finished``. The figure is the wall time of ``verify_store(store, None)``
on a freshly opened store, best of a few passes, reported as entries/s: with its
defaults (two processes on a machine with two or more cores: what ``lifeos ledger
verify`` runs) and with ``workers=1`` (one process); the build time is printed too.

Target: verify rate >= 35% of the reference rate, judged on the default
(two-process) path the CLI uses; 1M entries in <= 8 s (<= 5 s using both cores is
a stretch target). The one-process ratio is printed beside it.

Reference: a per-entry ``hashlib.sha256(entry).digest()`` loop over the same
entry bytes, read into memory in chunks beforehand (only the loop is timed), in
the same run; its passes alternate with the default verify's, so both see the
same machine. Beside them, for the breakdown: iterating ``store.ledger_scan()``
alone (the read ``verify_store`` does, in each process), ``store.ledger_rows()``
(one record per row) and a plain ``sqlite3`` cursor over the same five columns.
"""

from __future__ import annotations

import cProfile
import hashlib
import os
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lifeos.canonical import canonical_json
from lifeos.clock import FixedClock
from lifeos.ledger import chain
from lifeos.ledger.chain import verify_store
from lifeos.store.sqlite import GENESIS_HASH, SQLiteStore

DEFAULT_N = 1_000_000
CHUNK = 50_000
VERIFY_PASSES = 5
"""Passes of the default verify and of the reference loop, alternating; best of each."""
OTHER_PASSES = 3
"""Passes of the breakdown figures (one process, reads alone)."""
PROFILE_ENTRIES = 200_000
TARGET_FRACTION = 0.35
TARGET_SECONDS_1M = 8.0
STRETCH_SECONDS_1M = 5.0
STEP_IDS = ("set", "append", "add", "mul", "set-from")


def _entry_count() -> int:
    return max(1, int(os.environ.get("LIFEOS_BENCH_LEDGER_N", str(DEFAULT_N))))


def _ts(seq: int) -> str:
    """The store's ISO form (``2026-01-01T00:00:00.000000Z``), one millisecond per entry."""
    seconds, ms = divmod(seq, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-01-01T{hours % 24:02d}:{minutes:02d}:{seconds:02d}.{ms * 1000:06d}Z"


def _entry(seq: int, prev_hash: str) -> dict[str, Any]:
    run, position = divmod(seq, 7)
    run_id = f"{run:08x}-5b8e-5000-8000-{run:012x}"
    if position == 0:
        kind, payload = "run.started", {"kind": "workflow", "name": "bench-ledger"}
    elif position == 6:
        kind, payload = "run.finished", {"status": "completed", "steps": 5}
    else:
        kind = "step"
        payload = {
            "checkpoint_id": f"{seq:08x}-0c4e-5000-8000-{seq:012x}",
            "index": position - 1,
            "state_hash": hashlib.sha256(seq.to_bytes(8, "big")).hexdigest(),
            "status": "ok",
            "step_id": STEP_IDS[position - 1],
        }
    return {
        "seq": seq,
        "ts": _ts(seq),
        "type": kind,
        "run_id": run_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }


def _build(path: Path, n: int) -> None:
    """n - 1 entries inserted directly, the last one through ``append_ledger``."""
    SQLiteStore(path, FixedClock(), synchronous="OFF").close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    sha = hashlib.sha256
    prev = GENESIS_HASH
    for start in range(0, n - 1, CHUNK):
        rows: list[tuple[int, bytes, str, str, str]] = []
        for seq in range(start, min(start + CHUNK, n - 1)):
            entry = _entry(seq, prev)
            data = canonical_json(entry)
            prev = sha(b"\x00" + data).hexdigest()
            rows.append((seq, data, prev, entry["type"], entry["run_id"]))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO ledger (seq, entry, leaf_hash, type, run_id) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    db.close()
    store = SQLiteStore(path, FixedClock(), synchronous="OFF")
    try:
        store.append_ledger("run.finished", None, {"status": "completed", "steps": 0})
    finally:
        store.close()


def _entry_chunks(path: Path) -> Iterator[list[bytes]]:
    db = sqlite3.connect(str(path))
    try:
        cur = db.execute("SELECT entry FROM ledger ORDER BY seq")
        while chunk := cur.fetchmany(CHUNK):
            yield [bytes(row[0]) for row in chunk]
    finally:
        db.close()


def _hashlib_seconds(path: Path) -> float:
    """Time of a ``sha256(entry).digest()`` loop over every entry (loading untimed)."""
    sha = hashlib.sha256
    total = 0
    for chunk in _entry_chunks(path):
        start = time.perf_counter_ns()
        for entry in chunk:
            sha(entry).digest()
        total += time.perf_counter_ns() - start
    return total / 1e9


def _read_seconds(path: Path, rows: bool = False) -> float:
    """Iterating ``store.ledger_scan()`` (or, with ``rows``, ``store.ledger_rows()``)."""
    store = SQLiteStore(path, FixedClock())
    try:
        start = time.perf_counter_ns()
        if rows:
            for _ in store.ledger_rows():
                pass
        else:
            for _ in store.ledger_scan():
                pass
        return (time.perf_counter_ns() - start) / 1e9
    finally:
        store.close()


def _plain_read_seconds(path: Path) -> float:
    """A plain sqlite3 cursor over the same columns, tuples, no row objects."""
    db = sqlite3.connect(str(path))
    try:
        start = time.perf_counter_ns()
        for _ in db.execute("SELECT seq, entry, leaf_hash, type, run_id FROM ledger ORDER BY seq"):
            pass
        return (time.perf_counter_ns() - start) / 1e9
    finally:
        db.close()


def _verify_seconds(path: Path, n: int, workers: int | None = None) -> float:
    """``verify_store`` on a freshly opened store; ``workers=None`` is the default path."""
    store = SQLiteStore(path, FixedClock())
    try:
        start = time.perf_counter_ns()
        report = verify_store(store, None, workers=workers)
        elapsed = (time.perf_counter_ns() - start) / 1e9
    finally:
        store.close()
    if not report.ok or report.size != n:
        raise RuntimeError(f"verify_store did not verify the built ledger: {report.to_dict()}")
    return elapsed


def _profile(path: Path, n: int) -> None:
    """cProfile of the one-process walk ``verify_store`` does, over the first entries."""
    count = min(n, PROFILE_ENTRIES)
    store = SQLiteStore(path, FixedClock())
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        walk = chain._walk(store.ledger_scan(0, count), 0, chain._GENESIS, set())
        profiler.disable()
    finally:
        store.close()
    if walk.bad is not None or walk.end != count:
        raise RuntimeError(f"the walk failed on the first {count} entries: {walk.bad}")
    stats = pstats.Stats(profiler).stats.items()  # type: ignore[attr-defined]
    rows_by_own = sorted(stats, key=lambda item: item[1][2], reverse=True)
    print(
        f"cProfile of the verify walk over store.ledger_scan() for {count:,} entries "
        "(profiled, so inflated), top own time, µs/entry:"
    )
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in rows_by_own[:10]:
        where = f" ({Path(filename).name}:{line})" if line else ""
        print(
            f"  {tottime / count * 1e6:6.2f} own {cumtime / count * 1e6:6.2f} cum "
            f"{ncalls / count:5.2f} calls/entry  {func}{where}"
        )


def main() -> None:
    n = _entry_count()
    print(f"ledger of {n:,} entries (LIFEOS_BENCH_LEDGER_N to change)")
    with tempfile.TemporaryDirectory(prefix="lifeos-bench-ledger-") as tmp:
        path = Path(tmp) / "lifeos.db"
        start = time.perf_counter()
        _build(path, n)
        build = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        print(f"build: {build:.1f} s ({n / build:,.0f} entries/s), {size_mb:.0f} MB on disk")

        verify: list[float] = []
        hashes: list[float] = []
        for _ in range(VERIFY_PASSES):  # alternating, so both see the same machine
            verify.append(_verify_seconds(path, n))
            hashes.append(_hashlib_seconds(path))
        single = min(_verify_seconds(path, n, workers=1) for _ in range(OTHER_PASSES))
        scan = min(_read_seconds(path) for _ in range(OTHER_PASSES))
        rows = min(_read_seconds(path, rows=True) for _ in range(OTHER_PASSES))
        plain = min(_plain_read_seconds(path) for _ in range(OTHER_PASSES))
        best, hashing = min(verify), min(hashes)
        rate, hash_rate = n / best, n / hashing
        workers = 2 if (os.cpu_count() or 1) > 1 and n >= chain.PARALLEL_MIN_ENTRIES else 1
        print(
            f"verify_store, default path ({workers} process{'es' if workers > 1 else ''}, "
            f"what the CLI runs): best {best:.2f} s of {VERIFY_PASSES} "
            f"({', '.join(f'{v:.2f}' for v in verify)} s) = {rate:,.0f} entries/s, "
            f"{best / n * 1e6:.2f} µs/entry"
        )
        print(
            f"verify_store, one process: best {single:.2f} s of {OTHER_PASSES} = "
            f"{n / single:,.0f} entries/s, "
            f"{single / n * 1e6:.2f} µs/entry ({n / single / hash_rate:.1%} of the sha256 loop)"
        )
        print(
            f"reference sha256 loop: best {hashing:.2f} s of {VERIFY_PASSES} "
            f"({', '.join(f'{h:.2f}' for h in hashes)} s) = {hash_rate:,.0f} entries/s, "
            f"{hashing / n * 1e6:.2f} µs/entry"
        )
        print(
            f"read alone: store.ledger_scan() {scan:.2f} s = {scan / n * 1e6:.2f} µs/entry "
            f"(the read verify_store does); store.ledger_rows() {rows / n * 1e6:.2f} µs/entry; "
            f"a plain sqlite3 cursor over the same columns {plain / n * 1e6:.2f} µs/entry"
        )
        fraction = rate / hash_rate
        verdict = "meets" if fraction >= TARGET_FRACTION else "MISSES"
        print(
            f"verify rate / sha256 loop rate, default path: {fraction:.1%} ({verdict} the "
            f"target of >= {TARGET_FRACTION:.0%}, judged on this default path); one process: "
            f"{n / single / hash_rate:.1%}"
        )
        per_million = best / n * 1_000_000
        verdict = "meets" if per_million <= TARGET_SECONDS_1M else "MISSES"
        stretch = "within" if per_million <= STRETCH_SECONDS_1M else "outside"
        print(
            f"time per 1M entries: {single / n * 1e6:.2f} s in one process, {per_million:.2f} s "
            f"on the default path ({verdict} the target of <= {TARGET_SECONDS_1M:.0f} s; "
            f"{stretch} the {STRETCH_SECONDS_1M:.0f} s target for both cores)"
        )
        if fraction < TARGET_FRACTION or per_million > TARGET_SECONDS_1M:
            _profile(path, n)


if __name__ == "__main__":
    main()
