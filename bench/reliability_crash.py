"""Crash reliability: SIGKILL a recorded run at random moments, resume it, count what broke.

Runs the trial of ``tests/e2e/test_crash_resume.py`` many times (200 by default, or
the number given as the first argument). Each trial kills a child process running a
four-tool-step workflow one to three times at random moments, restarts it with the
same run id until it completes, and checks the store and the side-effect counter
after every kill. Prints the number of trials, kills, side effects called again
after a crash (the window between a side effect and its journal commit), side
effects applied more than once (must be 0), ledger verify failures (must be 0), and
any trial that broke a promise. Not part of ``bench/run_all.py`` (no ``bench_``
prefix): it takes minutes, not seconds.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
TRIAL_MODULE = ROOT / "tests" / "e2e" / "test_crash_resume.py"


def _load_trial_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lifeos_crash_trial", TRIAL_MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def main(trials: int | None = None) -> int:
    """Run the trials and print the counts; return 1 if any trial broke a promise."""
    if trials is None:
        trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    crash = _load_trial_module()
    base = random.SystemRandom().randrange(2**32)
    started = time.perf_counter()
    kills = runs = recalled = repeated = verify_failures = 0
    max_invocations = 0
    kills_per_trial: Counter[int] = Counter()
    broken: list[tuple[int, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="lifeos-crash-") as tmp:
        for i in range(trials):
            trial = crash.run_trial(Path(tmp) / f"trial-{i}", seed=base + i)
            kills += trial.kills
            runs += trial.runs
            kills_per_trial[trial.kills] += 1
            recalled += sum(n - 1 for n in trial.invocations.values())
            repeated += max(trial.repeated_effects, 0)
            verify_failures += trial.verify_failures
            max_invocations = max(max_invocations, trial.max_invocations)
            if trial.problems:
                broken.append((trial.seed, trial.problems))
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{trials} trials, {kills} kills", flush=True)
    elapsed = time.perf_counter() - started
    print(f"trials:                                {trials} (seeds {base}..{base + trials - 1})")
    print(f"child runs:                            {runs}")
    print(f"kills:                                 {kills}")
    print(
        "kills per trial:                       "
        + ", ".join(f"{k}: {n}" for k, n in sorted(kills_per_trial.items()))
    )
    print(
        f"side effects called again after crash: {recalled} (max calls of one key: "
        f"{max_invocations})"
    )
    print(f"side effects applied more than once:   {repeated}")
    print(f"ledger verify failures:                {verify_failures}")
    print(f"trials that broke a promise:           {len(broken)}")
    for seed, problems in broken[:10]:
        print(f"  seed {seed}: {problems[:3]}")
    print(f"took {elapsed:.1f} s ({elapsed / max(trials, 1):.2f} s per trial)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
