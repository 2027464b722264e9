"""The spine's faults, end to end, with the agents answering over real HTTP.

Every run here is the installed ``lifeos`` command on a copy of the demo project
(``lifeos.demo.prepare``) whose designer, builder and reviewer are ``provider: openai``
pointed at ``lifeos llm serve-replay`` on 127.0.0.1, answering from the demo's recorded
cassette; ``GET /_lifeos/calls`` tells how many calls the agents really made. The faults:
a kill -9 in every phase then ``resume``, budget caps, usage a provider does not report,
a task already done, a run's worktree and branch removed while it waits for approval,
``cleanup`` of a run that is not stopped, and a provider that never answers.

After every ``lifeos`` command: no traceback on stderr. After every run: the user's
checkout (HEAD, status, the bytes of every file outside ``.lifeos/``) is unchanged.

The demo's acceptance check runs pytest in the run's worktree; ``PYTEST_DISABLE_PLUGIN_
AUTOLOAD`` keeps the plugins installed in this virtualenv out of it (their import takes
seconds; the demo needs none).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.e2e.cli import LIFEOS, checkout_state, git, lifeos, one_line_error, run_env

from lifeos.demo import demo_source, prepare

DEMO_CASSETTE = demo_source() / "cassettes" / "demo.jsonl"
PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
ROLES = ("default", "designer", "builder", "reviewer")
T1_CALLS = 6  # designer 1, builder 3 turns, reviewers 2 (see tools/record_demo_cassette.py)
T3_CALLS = 11  # designer 1, then twice (a repair): builder 3 turns, reviewers 2
KEEP = object()


def spine(repo: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    """``lifeos spine ARGS --json``: the exit code and the JSON (None when there is none)."""
    proc = lifeos(repo, "spine", *args, "--json", env=env)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, None


def configure(repo: Path, url: str, *, budget: Any = KEEP, timeout_s: float | None = None) -> None:
    """Point every role of the repository's lifeos.yaml at ``url`` and commit it."""
    path = repo / "lifeos.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for role in ROLES:
        spec: dict[str, Any] = {
            "provider": "openai",
            "endpoint": url,
            "model": "demo-model",
            "pricing": dict(PRICING),
        }
        if timeout_s is not None:
            spec["timeout_s"] = timeout_s
        data["models"][role] = spec
    if budget is not KEEP:
        data["budget"] = budget
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    git(repo, "commit", "-qam", "lifeos.yaml: agents over HTTP")


def set_budget(repo: Path, budget: dict[str, Any]) -> None:
    path = repo / "lifeos.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["budget"] = budget
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    git(repo, "commit", "-qam", "lifeos.yaml: another budget")


def ledger_entries(repo: Path, run_id: str) -> list[dict[str, Any]]:
    proc = lifeos(repo, "ledger", "show", "--run", run_id, "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def ledger_verifies(repo: Path) -> None:
    proc = lifeos(repo, "ledger", "verify")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)


class ReplayHTTP:
    """``lifeos llm serve-replay`` as a process on a free 127.0.0.1 port."""

    def __init__(self, cassette: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [LIFEOS, "llm", "serve-replay", "--cassette", str(cassette), "--port", "0"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env(),
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()  # http://127.0.0.1:PORT/v1
        if not re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", self.url):
            self.stop()
            raise AssertionError(f"serve-replay printed {self.url!r}")
        self.base = self.url.removesuffix("/v1")
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve-replay never became healthy"
            time.sleep(0.05)

    def calls(self) -> dict[str, Any]:
        got = httpx.get(f"{self.base}/_lifeos/calls", timeout=10)
        assert got.status_code == 200
        return dict(got.json())

    @property
    def served(self) -> int:
        return int(self.calls()["total"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=15)
        assert "Traceback" not in err, err


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], ReplayHTTP]]:
    """Start replay servers; every one is stopped at the end of the test."""
    started: list[ReplayHTTP] = []

    def start(cassette: Path) -> ReplayHTTP:
        server = ReplayHTTP(cassette, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def http_repo(tmp_path: Path, serve: Callable[[Path], ReplayHTTP]) -> tuple[Path, ReplayHTTP]:
    """A fresh demo repository whose agents answer from its own cassette, over HTTP."""
    repo = prepare(tmp_path / "demo")
    server = serve(repo / "cassettes" / "demo.jsonl")
    configure(repo, server.url)
    return repo, server


# -- 1. agents over real HTTP -----------------------------------------------------------


def test_a_task_lands_with_every_agent_over_http(http_repo: tuple[Path, ReplayHTTP]) -> None:
    repo, server = http_repo
    before = checkout_state(repo)
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 0 and out["state"] == "LANDED", out
    calls = server.calls()
    assert calls["unmatched"] == [], calls
    assert calls["total"] == out["agent_calls"] == T1_CALLS, (calls, out)
    assert set(calls["served"].values()) == {1}  # every recorded answer used once
    assert out["replayed_calls"] == 0
    usage = [e for e in ledger_entries(repo, out["run_id"]) if e["type"] == "agent.usage"]
    assert len(usage) == calls["total"]
    assert all(e["payload"]["tokens_source"] == "reported" for e in usage)
    assert all(e["payload"]["cost_source"] == "computed" for e in usage)
    files = git(repo, "ls-tree", "-r", "--name-only", out["commit"]).splitlines()
    assert "artifacts/review_packets/Review_Packet_T-1_v1.md" in files
    assert "tests/test_case.py" in files
    assert git(repo, "rev-parse", out["branch"]) == out["commit"]
    assert lifeos(repo, "evidence", "verify", out["run_id"]).returncode == 0
    ledger_verifies(repo)
    assert checkout_state(repo) == before


# -- 2. kill -9 in every phase, then resume ---------------------------------------------


def _journal(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


def journaled_agent_calls(db: Path) -> int:
    """Agent calls with a journal record: the designer's and reviewers' answers (an
    AgentResponse: call_id and usage) and the builder's model turns (kind model_call)."""
    count = 0
    for (text,) in _journal(db, "SELECT result_json FROM journal"):
        result = json.loads(text)
        if isinstance(result, dict) and (
            result.get("kind") == "model_call" or {"call_id", "usage"} <= result.keys()
        ):
            count += 1
    return count


class JournalWatch:
    """Counts the store's journal rows of a phase, read-only, on one connection (each
    query sees the writer's latest commit)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    def rows(self, phase: str) -> int:
        try:
            if self.conn is None:
                self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
            query = "SELECT count(*) FROM journal WHERE step = ?"
            return int(self.conn.execute(query, (phase,)).fetchone()[0])
        except sqlite3.Error:  # not created yet, or mid-migration
            self.close()
            return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def kill_when(repo: Path, task: str, ready: Callable[[], bool], stderr: Path) -> None:
    """Run ``task`` and SIGKILL the process as soon as ``ready()`` holds."""
    with stderr.open("w") as err:
        child = subprocess.Popen(
            [LIFEOS, "spine", "run", "--task", task, "--json"],
            cwd=repo,
            env=run_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 90
    try:
        while child.poll() is None:
            assert time.monotonic() < deadline, "the run never reached the kill point"
            if ready():
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the run ended by itself ({child.returncode})"
    assert "Traceback" not in stderr.read_text()


def kill_when_journaled(repo: Path, task: str, phase: str, rows: int, stderr: Path) -> None:
    """Run ``task``; SIGKILL it once the journal holds ``rows`` rows for ``phase``."""
    watch = JournalWatch(repo / ".lifeos" / "lifeos.db")
    try:
        kill_when(repo, task, lambda: watch.rows(phase) >= rows, stderr)
    finally:
        watch.close()


def _normalised(text: bytes) -> bytes:
    """A review packet without what names this very run (its id, commits, decision)."""
    text = re.sub(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", b"<id>", text)
    return re.sub(rb"\b[0-9a-f]{40}\b", b"<commit>", text)


def landed_files(repo: Path, commit: str) -> dict[str, bytes]:
    """Every file of ``commit``; review packets with the run's own ids normalised."""
    files = {}
    for path in git(repo, "ls-tree", "-r", "--name-only", commit).splitlines():
        body = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{path}"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout
        files[path] = _normalised(body) if path.startswith("artifacts/review_packets/") else body
    return files


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run of T-3 that the crashed ones must match."""

    served: int
    build_tree: str
    files: dict[str, bytes]


def _cassette_served_many_times(target: Path, times: int) -> Path:
    """The demo cassette with every recording ``times`` times: one server then answers
    the same request again (a call the server answered but the killed run never
    journaled is made again by the resume)."""
    lines = DEMO_CASSETTE.read_text(encoding="utf-8").splitlines()
    header, recordings = lines[0], [line for line in lines[1:] if line.strip()]
    target.write_text(
        "\n".join([header, *[r for r in recordings for _ in range(times)]]) + "\n",
        encoding="utf-8",
    )
    return target


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayHTTP]:
    """One replay server for this module's kill tests (one per xdist worker); a test
    counts the calls it made as the difference of the totals (tests run one at a time)."""
    where = tmp_path_factory.mktemp("shared-server")
    server = ReplayHTTP(_cassette_served_many_times(where / "many.jsonl", 12), where)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, shared_server: ReplayHTTP) -> Path:
    """A demo repository pointed at the shared server, copied for every kill test so
    every run starts from the same baseline commit and key."""
    repo = prepare(tmp_path_factory.mktemp("pristine"))
    configure(repo, shared_server.url)
    return repo


def copy_of(pristine: Path, where: Path) -> Path:
    return Path(shutil.copytree(pristine, where / "repo", symlinks=True))


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, pristine: Path, shared_server: ReplayHTTP
) -> Reference:
    repo = copy_of(pristine, tmp_path_factory.mktemp("reference"))
    before = shared_server.served
    code, out = spine(repo, "run", "--task", "T-3")
    assert code == 0 and out["state"] == "LANDED", out
    served = shared_server.served - before
    assert served == out["agent_calls"] == T3_CALLS, (served, out)
    return Reference(
        served=served,
        build_tree=git(repo, "rev-parse", f"{out['commit']}^^{{tree}}"),
        files=landed_files(repo, out["commit"]),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("phase", "rows"),
    [
        pytest.param("design", 1, id="design"),
        # build attempt 1: model turn 1 and one of its two file writes are journaled
        pytest.param("build", 2, id="build-mid-turn"),
        # build attempt 2 (the repair): attempt 1 left 7 rows (3 turns, 2 writes, the
        # test command, the commit), then turn 1 of the repair and its first write
        pytest.param("build", 9, id="build-repair"),
        pytest.param("review", 1, id="review"),
        pytest.param("steward", 1, id="steward"),
        # not a journal row: the server has just answered the builder's second turn, so
        # the kill most likely lands before the answer is journaled (a lost call)
        pytest.param("answered", 3, id="build-answered-not-journaled"),
    ],
)
def test_kill_9_in_a_phase_then_resume_lands_the_same_tree(
    tmp_path: Path,
    pristine: Path,
    reference: Reference,
    shared_server: ReplayHTTP,
    phase: str,
    rows: int,
) -> None:
    repo = copy_of(pristine, tmp_path)
    db = repo / ".lifeos" / "lifeos.db"
    before = checkout_state(repo)
    served_before = shared_server.served
    if phase == "answered":
        answered = lambda: shared_server.served - served_before >= rows  # noqa: E731
        kill_when(repo, "T-3", answered, tmp_path / "killed.stderr")
    else:
        kill_when_journaled(repo, "T-3", phase, rows, tmp_path / "killed.stderr")
    assert checkout_state(repo) == before
    code, listed = spine(repo, "list")
    assert code == 0 and len(listed["runs"]) == 1, listed
    run = listed["runs"][0]
    # killed mid-way, not stopped by itself (the case: see the test after this one)
    assert run["state"].upper() == "RUNNING", run

    time.sleep(0.2)  # a request the killed process had sent is answered (and counted)
    served_by_killed = shared_server.served - served_before
    repeats_before = shared_server.calls()["idempotent_repeats"]
    # An agent call's journal record is committed after the server answered it: a kill
    # between the two leaves one answer unrecorded (calls are made one at a time), and
    # the resume asks again — with the same idempotency key, so the server answers it
    # from the first answer instead of serving another call.
    lost = served_by_killed - journaled_agent_calls(db)
    assert lost in (0, 1), (served_by_killed, lost)

    code, resumed = spine(repo, "resume", run["run_id"])
    assert code == 0 and resumed["state"] == "LANDED", resumed
    assert shared_server.served - served_before == reference.served
    assert shared_server.calls()["idempotent_repeats"] - repeats_before == lost
    assert shared_server.calls()["unmatched"] == []
    assert git(repo, "rev-parse", f"{resumed['commit']}^^{{tree}}") == reference.build_tree
    assert landed_files(repo, resumed["commit"]) == reference.files
    assert lifeos(repo, "evidence", "verify", run["run_id"]).returncode == 0
    ledger_verifies(repo)
    assert checkout_state(repo) == before
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_killed_run_is_running_and_cleanup_refuses_it(
    tmp_path: Path, pristine: Path, shared_server: ReplayHTTP
) -> None:
    repo = copy_of(pristine, tmp_path)
    kill_when_journaled(repo, "T-3", "build", 2, tmp_path / "killed.stderr")  # worktree made
    code, listed = spine(repo, "list")
    run = listed["runs"][0]
    proc = lifeos(repo, "spine", "cleanup", run["run_id"])
    worktree = repo / ".lifeos" / "worktrees" / run["run_id"]
    assert proc.returncode == 2, (proc.stdout, proc.stderr, worktree.exists())
    one_line_error(proc, 2, "INVALID_INPUT")
    assert run["state"] == "RUNNING", run  # spine states are upper case (SpineState)


# -- 3. budgets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "served", "raise_env"),
    [
        # below the fewest calls a run makes (design, build, two lenses): refused before
        # any call by the pre-run envelope hook
        pytest.param({"calls": 0}, 0, {"LIFEOS_BUDGET_CALLS": "40"}, id="calls-0"),
        pytest.param({"calls": 3}, 0, {"LIFEOS_BUDGET_CALLS": "40"}, id="calls-3"),
        # the designer and three builder turns, then the first lens would be one too many
        pytest.param({"calls": 4}, 4, {"LIFEOS_BUDGET_CALLS": "40"}, id="calls-4"),
        # a call's estimate (prompt bytes / 4 + 4096 output tokens at $15/Mtok) is ~$0.06
        pytest.param({"cost_usd": 0.0001}, 0, {"LIFEOS_BUDGET_COST_USD": "1.0"}, id="cost"),
    ],
)
def test_a_budget_cap_stops_the_run_and_a_raised_cap_resumes_it(
    tmp_path: Path,
    serve: Callable[[Path], ReplayHTTP],
    cap: dict[str, Any],
    served: int,
    raise_env: dict[str, str],
) -> None:
    repo = prepare(tmp_path / "demo")
    server = serve(repo / "cassettes" / "demo.jsonl")
    configure(repo, server.url, budget=cap)
    before = checkout_state(repo)
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 5, out
    assert out["state"] == "BUDGET_EXCEEDED" and out["reason_code"] == "BUDGET_EXCEEDED", out
    assert out["reason_codes"] == ["BUDGET_EXCEEDED"]
    assert server.served == served == out["agent_calls"]  # no call past the cap was made
    assert checkout_state(repo) == before
    # The policy hash does not cover budgets: with the cap raised the run goes on.
    code, done = spine(repo, "resume", out["run_id"], env=raise_env)
    assert code == 0 and done["state"] == "LANDED", done
    assert server.served == T1_CALLS  # nothing made twice
    ledger_verifies(repo)
    assert checkout_state(repo) == before


def test_a_cap_raised_in_lifeos_yaml_resumes_the_run(http_repo: tuple[Path, ReplayHTTP]) -> None:
    repo, server = http_repo
    set_budget(repo, {"calls": 0})
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 5 and out["state"] == "BUDGET_EXCEEDED", out
    set_budget(repo, {"calls": 40})  # README: "raise the cap and `lifeos spine resume`"
    before = checkout_state(repo)
    code, done = spine(repo, "resume", out["run_id"])
    assert checkout_state(repo) == before
    assert code == 0 and done["state"] == "LANDED", (done, server.served)


def test_a_resumed_build_counts_only_the_calls_it_made(
    http_repo: tuple[Path, ReplayHTTP],
) -> None:
    repo, server = http_repo
    # Stop at the design boundary, then go on under a cap of 2 calls: the designer's
    # and the builder's first turn (the pre-run hooks, which would refuse a cap below a
    # run's fewest calls, are behind). The second turn stops the run mid-build.
    proc = lifeos(repo, "run-mission", "--from-backlog", "T-1", "--mission-type", "design")
    assert proc.returncode == 0 and server.served == 1, proc.stdout + proc.stderr
    code, listed = spine(repo, "list")
    run_id = listed["runs"][0]["run_id"]
    code, out = spine(repo, "resume", run_id, env={"LIFEOS_BUDGET_CALLS": "2"})
    assert code == 5 and out["phase"] == "design" and server.served == 2, out
    code, done = spine(repo, "resume", out["run_id"], env={"LIFEOS_BUDGET_CALLS": "40"})
    assert code == 0 and done["state"] == "LANDED", done
    made = server.served - 2
    assert made == T1_CALLS - 2
    # builder turns 2 and 3 and both reviewers are made; builder turn 1 is replayed
    assert (done["agent_calls"], done["replayed_calls"]) == (made, 1), done


def test_spine_show_reports_what_a_run_spent(http_repo: tuple[Path, ReplayHTTP]) -> None:
    repo, server = http_repo
    set_budget(repo, {"calls": 4})
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 5 and server.served == 4, out
    usage = [e for e in ledger_entries(repo, out["run_id"]) if e["type"] == "agent.usage"]
    cost = sum(e["payload"]["cost_usd"] for e in usage)
    assert cost > 0
    code, shown = spine(repo, "show", out["run_id"])
    assert code == 0
    assert shown["spent_cost_usd"] == pytest.approx(cost), shown


# -- 4. usage not reported while a cap needs it ------------------------------------------


def _cassette_without_usage(target: Path) -> Path:
    lines = DEMO_CASSETTE.read_text(encoding="utf-8").splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        if line.strip():
            recording = json.loads(line)
            recording["response"].pop("usage", None)
            recording["usage"] = {}
            out.append(json.dumps(recording, sort_keys=True))
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    return target


@pytest.fixture
def usage_free_repo(tmp_path: Path, serve: Callable[[Path], ReplayHTTP]) -> tuple[Path, ReplayHTTP]:
    repo = prepare(tmp_path / "demo")
    server = serve(_cassette_without_usage(tmp_path / "no-usage.jsonl"))
    configure(repo, server.url, budget={"tokens": 100000})
    return repo, server


def test_usage_not_reported_under_a_token_cap_fails_the_run(
    usage_free_repo: tuple[Path, ReplayHTTP],
) -> None:
    repo, server = usage_free_repo
    before = checkout_state(repo)
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 1 and out["state"] == "FAILED", out
    assert out["reason_codes"] == ["TOKEN_ACCOUNTING_UNAVAILABLE"], out
    assert server.served == 1  # the designer's call, whose usage is unknown; no other
    usage = [e for e in ledger_entries(repo, out["run_id"]) if e["type"] == "agent.usage"]
    assert [e["payload"]["tokens"] for e in usage] == [None]
    assert usage[0]["payload"]["tokens_source"] == "unavailable"
    ledger_verifies(repo)
    assert checkout_state(repo) == before


def test_a_call_whose_usage_is_unknown_still_counts_as_made(
    usage_free_repo: tuple[Path, ReplayHTTP],
) -> None:
    repo, server = usage_free_repo
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 1 and out["reason_codes"] == ["TOKEN_ACCOUNTING_UNAVAILABLE"], out
    assert out["agent_calls"] == server.served == 1, out


# -- 5. bad inputs ------------------------------------------------------------------------


def test_a_task_marked_done_is_refused(tmp_path: Path) -> None:
    repo = prepare(tmp_path / "demo")
    backlog = repo / "config" / "backlog.yaml"
    tasks = yaml.safe_load(backlog.read_text(encoding="utf-8"))
    tasks[0]["status"] = "DONE"
    assert tasks[0]["id"] == "T-1"
    backlog.write_text(yaml.safe_dump(tasks, sort_keys=False), encoding="utf-8")
    git(repo, "commit", "-qam", "T-1 is done")
    before = checkout_state(repo)
    one_line_error(lifeos(repo, "spine", "run", "--task", "T-1"), 2, "TASK_ALREADY_DONE")
    code, listed = spine(repo, "list")
    assert code == 0 and listed["runs"] == []  # no run was started
    assert checkout_state(repo) == before


def test_a_paused_run_whose_worktree_and_branch_vanished_fails_cleanly(tmp_path: Path) -> None:
    """T-4 pauses before the steward; its worktree and branch (the build commit) are
    removed behind LifeOS's back; approving it fails with a reason, not a traceback."""
    repo = prepare(tmp_path / "demo")  # the in-process replay provider
    before = checkout_state(repo)
    code, out = spine(repo, "run", "--task", "T-4")
    assert code == 4 and out["state"] == "PAUSED", out
    # A paused run is not stopped: cleanup is refused.
    one_line_error(lifeos(repo, "spine", "cleanup", out["run_id"]), 2, "INVALID_INPUT")
    assert Path(out["worktree"]).is_dir()
    git(repo, "worktree", "remove", "--force", out["worktree"])
    git(repo, "branch", "-D", out["branch"])
    code, done = spine(repo, "approve", out["run_id"], "--note", "go")
    assert checkout_state(repo) == before
    assert code == 1 and done["state"] == "FAILED", done
    # One stable code of the worktree service: the worktree is gone (WORKTREE_INVALID,
    # when the steward checks the worktree out first) or the run's branch is (BRANCH_MOVED,
    # when it commits on the branch straight away).
    assert done["reason_codes"] in (["WORKTREE_INVALID"], ["BRANCH_MOVED"]), done
    assert done["agent_calls"] == 0
    code, listed = spine(repo, "list")
    assert [(r["state"], r["reason_codes"]) for r in listed["runs"]] == [
        ("FAILED", done["reason_codes"])
    ]
    ledger_verifies(repo)
    assert checkout_state(repo) == before


class HangingProxy:
    """An OpenAI-compatible endpoint on 127.0.0.1 that forwards chat completions to
    ``upstream`` but never answers the requests whose number is in ``hang`` (counted
    from 0) — until the test ends."""

    def __init__(self, upstream: str, hang: set[int]) -> None:
        self.upstream = upstream
        self.hang = set(hang)
        self.requests = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner._lock:
                    number = owner.requests
                    owner.requests += 1
                    hang = number in owner.hang
                if hang:
                    owner.release.wait(60)
                    return
                reply = httpx.post(
                    f"{owner.upstream}{self.path.removeprefix('/v1')}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def hanging(
    tmp_path: Path, serve: Callable[[Path], ReplayHTTP]
) -> Iterator[Callable[[set[int]], tuple[Path, ReplayHTTP, HangingProxy]]]:
    """A demo repository whose agents (timeout_s: 1) go through a HangingProxy."""
    proxies: list[HangingProxy] = []

    def make(hang: set[int]) -> tuple[Path, ReplayHTTP, HangingProxy]:
        repo = prepare(tmp_path / "demo")
        server = serve(repo / "cassettes" / "demo.jsonl")
        proxy = HangingProxy(server.url, hang)
        proxies.append(proxy)
        configure(repo, proxy.url, timeout_s=1)
        return repo, server, proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def test_an_agent_that_never_answers_fails_the_run_with_provider_timeout(
    hanging: Callable[[set[int]], tuple[Path, ReplayHTTP, HangingProxy]],
) -> None:
    repo, server, proxy = hanging({0})  # the designer's call hangs
    before = checkout_state(repo)
    started = time.monotonic()
    code, out = spine(repo, "run", "--task", "T-1")
    assert time.monotonic() - started < 30  # the call's timeout, not the default 120 s
    assert code == 1 and out["state"] == "FAILED", out
    assert out["reason_codes"] == ["PROVIDER_TIMEOUT"], out
    assert proxy.requests == 1 and server.served == 0 and out["agent_calls"] == 0
    code, listed = spine(repo, "list")
    assert [(r["state"], r["reason_codes"]) for r in listed["runs"]] == [
        ("FAILED", ["PROVIDER_TIMEOUT"])
    ]
    ledger_verifies(repo)
    assert checkout_state(repo) == before


def test_a_run_stopped_by_a_provider_timeout_resumes_once_the_provider_answers(
    hanging: Callable[[set[int]], tuple[Path, ReplayHTTP, HangingProxy]],
) -> None:
    repo, server, proxy = hanging({2})  # the builder's second turn hangs
    before = checkout_state(repo)
    code, out = spine(repo, "run", "--task", "T-1")
    assert code == 1 and out["reason_codes"] == ["PROVIDER_TIMEOUT"], out
    assert server.served == 2  # the designer and the builder's first turn
    proxy.hang.clear()  # the provider is back
    proc = lifeos(repo, "spine", "resume", out["run_id"], "--json")
    assert checkout_state(repo) == before
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["state"] == "LANDED", done
    assert server.served == T1_CALLS  # the journaled calls are not made again
