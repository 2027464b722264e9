"""Run every ``bench/bench_*.py`` module's ``main()`` in turn, sorted by file name.

Benchmarks print figures and ratios against a reference measured in the same
run; none of them asserts a timing. A benchmark that raises is reported and the
rest still run; the exit status is then 1.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def _modules() -> list[str]:
    return [path.stem for path in sorted(BENCH_DIR.glob("bench_*.py"))]


def main() -> None:
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    failed: list[str] = []
    for name in _modules():
        print(f"\n=== {name} " + "=" * max(0, 70 - len(name)), flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(name)
            summary = (module.__doc__ or "").strip().splitlines()
            if summary:
                print(summary[0])
            module.main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"--- {name} took {time.perf_counter() - start:.1f} s", flush=True)
    if failed:
        print(f"\nbenchmarks that raised: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
