"""The spine controller: phases, checkpoints, pauses, resume, terminal states.

The run's durable state is its store record (status, ``config``): the task, the
baseline, the policy hash, the phase reached, each finished phase's output, the repair
attempt and human decisions. A phase's side effects are journaled (see
:class:`~lifeos.spine.model.PhaseEnv`); the phase's output is written with a checkpoint
in one transaction when it ends. Resuming skips finished phases and replays the
journal of the one in progress.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeos.agents.api import AgentCall, AgentError, AgentProvider, AgentResponse, Usage
from lifeos.canonical import sha256_hex, stable_uuid
from lifeos.clock import Clock, iso
from lifeos.config import job_cap_problem
from lifeos.errors import InputError, LifeOSError, ReasonCode
from lifeos.ledger.note import Signer, Verifier
from lifeos.repo import RepoContext
from lifeos.spine.model import EXIT_FOR_STATE, PHASES, PhaseEnv, SpineState, SpineStop
from lifeos.store.base import LeaseLost, Store

if TYPE_CHECKING:
    from lifeos.backlog import Task
    from lifeos.worktree import HardenedGit

__all__ = ["Spine", "SpineDeps", "SpineOutcome"]

APPROVAL_POINTS = ("before_build", "before_steward")
PROJECT_TESTS = "test"
"""The command in ``commands:`` that runs the project's tests; review always runs it."""
EXTERNAL_BUILDERS = ("command", "opencode")
"""Builder providers that are coding agents of their own: they edit the worktree."""
RETRYABLE = frozenset(
    {
        ReasonCode.PROVIDER_TIMEOUT.value,
        ReasonCode.PROVIDER_ERROR.value,
        ReasonCode.STORE_UNAVAILABLE.value,
        ReasonCode.GIT_FAILED.value,
        ReasonCode.TOKEN_ACCOUNTING_UNAVAILABLE.value,
        ReasonCode.WRITE_FAILED.value,
        ReasonCode.WORKTREE_EXISTS.value,
        ReasonCode.BASELINE_MISSING.value,
    }
)
"""Failures a resume may retry: the provider, the disk or git may be back, a person may
have freed the worktree's path or fetched the baseline again; the journal keeps
everything finished, so nothing is repeated."""
MAX_DIFF_CHARS = 20_000

DESIGNER_SYSTEM = (
    "You are the designer of a governed coding run. Turn the task into a build packet. "
    'Answer with one JSON object: {"goal": str, "files": [repository paths to touch], '
    '"acceptance": [names of configured commands that must pass], "notes": str}, or '
    '{"escalate": "why a human must decide"} when the task cannot be built as asked.'
)
BUILDER_SYSTEM = (
    "You are the builder of a governed coding run. Change the repository with the tools "
    "to meet the build packet, run the allowed commands to check your work, and answer "
    "with a short summary and no tool call when you are done."
)
REVIEWER_SYSTEM = (
    "You are a reviewer of a governed coding run, reviewing through the {lens} lens. "
    'Answer with one JSON object: {{"verdict": "approve" | "request_changes" | "block" '
    '| "escalate" (a human must decide), '
    '"issues": [str], "risks": [str], "required_changes": [str], "questions": [str]}}.'
)


class SpineInputError(InputError):
    """A spine command that cannot start: unknown run, task done, dirty tree, ..."""


@dataclass(frozen=True)
class SpineOutcome:
    """How a run (or this stretch of it) ended."""

    run_id: str
    task_id: str
    state: SpineState
    reasons: tuple[str, ...]
    message: str
    phase: str
    commit: str | None = None
    branch: str | None = None
    worktree: str | None = None
    evidence: str | None = None
    agent_calls: int = 0
    replayed_calls: int = 0

    @property
    def exit_code(self) -> int:
        """The pinned exit code of the state."""
        return EXIT_FOR_STATE[self.state]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (sorted by the printer)."""
        return {
            "agent_calls": self.agent_calls,
            "branch": self.branch,
            "commit": self.commit,
            "evidence": self.evidence,
            "message": self.message,
            "phase": self.phase,
            "reason_code": self.reasons[0] if self.reasons else None,
            "reason_codes": list(self.reasons),
            "replayed_calls": self.replayed_calls,
            "run_id": self.run_id,
            "state": self.state.value,
            "task_id": self.task_id,
            "worktree": self.worktree,
        }


@dataclass
class SpineDeps:
    """Everything a run touches, injected (the CLI builds the real ones)."""

    repo: RepoContext
    store: Store
    clock: Clock
    settings: Mapping[str, Any]
    """The effective lifeos.yaml data."""
    provider_for: Callable[[str], AgentProvider]
    """The provider of a role (designer, builder, reviewer)."""
    signer: Signer
    verifier: Verifier
    progress: Callable[[str], None] = field(default=lambda _line: None)
    env: Mapping[str, str] = field(default_factory=dict)


def _extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in an agent's answer (fenced or bare), or None."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if isinstance(v, str | int | float)]


class Spine:
    """Runs, resumes and decides spine runs in one repository."""

    def __init__(self, deps: SpineDeps) -> None:
        self.deps = deps
        self.store = deps.store
        spine = deps.settings.get("spine") or {}
        self.repairs = int(spine.get("repairs", 1))
        self.reviewers = [str(r) for r in (spine.get("reviewers") or ["technical"])]
        self.approvals = set(_str_list(spine.get("approvals")))
        self.commands: dict[str, list[str]] = {
            str(name): shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
            for name, cmd in (deps.settings.get("commands") or {}).items()
        }
        self._calls = 0
        self._replayed = 0
        self._meter: Any = None
        self._recovering = False
        """Set by ``resume``: a crash may have left half-done work in the worktree."""

    # -- entry points --------------------------------------------------------------

    def start(
        self,
        task_id: str | None,
        stop_after: str | None = None,
        *,
        inline: Task | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> SpineOutcome:
        """Hydrate ``task_id`` (or the next TODO task) into a new run and run it.

        With ``stop_after`` (a phase), the run stops PAUSED at that mission boundary once
        the phase is done; ``resume`` continues it. ``inline`` and ``budget``: as
        :meth:`hydrate`.
        """
        return self._drive(self.hydrate(task_id, inline=inline, budget=budget), stop_after)

    def hydrate(
        self,
        task_id: str | None,
        engine: Mapping[str, Any] | None = None,
        *,
        inline: Task | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> str:
        """Create the run of ``task_id`` (or the next TODO task) at its first phase,
        without running it, and return its id; ``engine`` names another driver of the
        run (such as a Temporal workflow), kept in the run's config as ``engine``.

        ``inline`` is a task given with the request instead of by the backlog (its id
        must not be a backlog task's); ``budget`` caps (``tokens``, ``cost_usd``,
        ``calls``) lower lifeos.yaml's for this run only, kept in the run's config so a
        resume in any process applies them too."""
        from lifeos.backlog import load_backlog

        backlog = load_backlog(self._backlog_path())
        if inline is not None:
            if inline.id in backlog:
                raise SpineInputError(
                    f"task {inline.id} is in the backlog: name it instead of giving it inline",
                    ReasonCode.INVALID_INPUT,
                )
            task: Task | None = inline
        else:
            task = backlog.get(task_id) if task_id is not None else backlog.next_task()
        if task is None:
            raise SpineInputError("no TODO task in the backlog", ReasonCode.TASK_NOT_FOUND)
        caps = _job_caps(budget)
        self._caps({"budget": caps})  # CONFIG_INVALID before any run exists
        if task.status == "DONE" or self._landed_run(task.id) is not None:
            raise SpineInputError(f"task {task.id} is already done", ReasonCode.TASK_ALREADY_DONE)
        for entry in task.acceptance:
            if self._command_name(entry) is None:
                raise SpineInputError(
                    f"task {task.id}: acceptance check {entry!r} is not a command in "
                    "lifeos.yaml `commands:` (by name or exact command line)",
                    ReasonCode.INVALID_INPUT,
                )
        baseline = self.deps.repo.head
        if baseline is None:
            raise SpineInputError(
                "the repository has no commits: nothing to build on", ReasonCode.INVALID_INPUT
            )
        started = iso(self.deps.clock.now())
        run_id = stable_uuid("spine", task.id, baseline, started)
        task_data = task.to_dict()
        with self.store.transaction():
            self.store.create_run(
                run_id,
                "spine",
                task.id,
                description=task.title,
                priority=task.priority,
                config={
                    "task": task_data,
                    "baseline": baseline,
                    "phase": "hydrate",
                    "attempt": 0,
                    "outputs": {},
                    "decisions": {},
                    "started_at": started,
                    **({"engine": dict(engine)} if engine else {}),
                    **({"inline": True} if inline is not None else {}),
                    **({"budget": caps} if caps else {}),
                },
            )
            self.store.update_run(run_id, status=SpineState.RUNNING.value)
            self.store.add_task(run_id, task.id, task.title, context_files=list(task.context))
            self.store.append_ledger(
                "spine.started", run_id, {"task": task.id, "baseline": baseline}
            )
            self._checkpoint(run_id, "hydrate", "ok", {"task": task.id, "baseline": baseline})
        self.deps.progress(f"run {run_id}: task {task.id} from {baseline[:12]}")
        return run_id

    def resume(self, ref: str, stop_after: str | None = None) -> SpineOutcome:
        """Continue run ``ref`` (a run id or one of its checkpoint ids)."""
        return self._drive(self.reopen(ref), stop_after)

    def reopen(self, ref: str) -> str:
        """Make run ``ref`` RUNNING again after the checks ``resume`` makes, without
        running a phase, and return its id; this spine's next phase is a recovery."""
        run = self._run(ref)
        transient = run["status"] == SpineState.FAILED and run["failure_reason"] in RETRYABLE
        if (
            run["status"]
            in (
                SpineState.LANDED,
                SpineState.BLOCKED,
                SpineState.FAILED,
                SpineState.ESCALATED,
            )
            and not transient
        ):
            raise SpineInputError(
                f"run {run['run_id']} ended {run['status']}"
                + (f" ({run['failure_reason']})" if run["failure_reason"] else "")
                + "; nothing to resume",
                ReasonCode.RESUME_INVALID,
            )
        if run["status"] == SpineState.PAUSED:
            config = run["config"]
            point = config.get("waiting_for")
            if point in APPROVAL_POINTS and point not in config.get("decisions", {}):
                raise SpineInputError(
                    f"run {run['run_id']} waits for approval ({point}): "
                    f"`lifeos spine approve {run['run_id']}` or `reject`",
                    ReasonCode.RESUME_INVALID,
                )
        self._same_policy(run)
        self._take_outside_as_is(run)
        self.store.update_run(run["run_id"], status=SpineState.RUNNING.value)
        self._recovering = True
        return str(run["run_id"])

    def _take_outside_as_is(self, run: Any) -> None:
        """A person resumes or decides: what they changed outside the run's worktree
        while it was stopped (a raised budget in lifeos.yaml, a commit of their own) is
        theirs, not the agent's. The differences are recorded in the ledger and the
        outside snapshot is taken again, so the guard watches this stretch of the run."""
        from lifeos.worktree import OutsideSnapshot, snapshot_outside

        policy = run["config"]["outputs"].get("policy")
        if not policy:
            return
        now = snapshot_outside(self.deps.repo.main_root, None)
        changed = OutsideSnapshot.from_dict(policy["outside"]).diff(now)
        if not changed:
            return
        with self.store.transaction():
            fresh = self.store.get_run(run["run_id"])
            assert fresh is not None
            config = fresh["config"]
            outputs = {**config["outputs"], "policy": {**policy, "outside": now.to_dict()}}
            self.store.update_run(run["run_id"], config={**config, "outputs": outputs})
            self.store.append_ledger(
                "spine.outside_changed_while_stopped", run["run_id"], {"changes": changed[:100]}
            )
        self.deps.progress(f"outside the worktree, changed while stopped: {len(changed)} item(s)")

    def _same_policy(self, run: Any) -> None:
        """Refuse to continue a run under another policy than the one it started with."""
        from lifeos.policy.model import resolve_policy

        recorded = (run["config"]["outputs"].get("policy") or {}).get("policy_hash")
        if recorded is None:
            return
        current = resolve_policy(None, self.deps.settings.get("policy")).hash
        if current != recorded:
            raise SpineInputError(
                f"the policy changed since run {run['run_id']} started "
                f"({recorded[:12]} -> {current[:12]}); restore it to continue",
                ReasonCode.POLICY_HASH_MISMATCH,
            )

    def decide(self, ref: str, approve: bool, note: str) -> SpineOutcome:
        """Record a human decision on a paused run, then continue it."""
        return self._drive(self.record_decision(ref, approve, note))

    def record_decision(self, ref: str, approve: bool, note: str) -> str:
        """Record a human decision on a paused run (it is RUNNING again) without
        continuing it, and return the run's id."""
        run = self._run(ref)
        config = run["config"]
        point = config.get("waiting_for")
        if run["status"] != SpineState.PAUSED or point not in APPROVAL_POINTS:
            raise SpineInputError(
                f"run {run['run_id']} is {run['status']}, not waiting for approval",
                ReasonCode.RESUME_INVALID,
            )
        self._same_policy(run)
        self._take_outside_as_is(run)
        config = self.store.get_run(run["run_id"])["config"]  # type: ignore[index]
        decision = {"approved": approve, "note": note, "at": iso(self.deps.clock.now())}
        with self.store.transaction():
            config = {**config, "decisions": {**config["decisions"], point: decision}}
            self.store.update_run(run["run_id"], config=config, status=SpineState.RUNNING.value)
            self.store.append_ledger(
                "spine.decision", run["run_id"], {"point": point, "approved": approve, "note": note}
            )
        return str(run["run_id"])

    def spend(self) -> dict[str, Any]:
        """The current run's spend so far (tokens, cost, calls), for progress lines."""
        if self._meter is None:
            return {}
        return dict(self._meter.spent().to_dict())

    @property
    def calls(self) -> tuple[int, int]:
        """Agent calls (made, replayed from the journal) since this spine was made or
        last began to drive a run: what an outcome reports, readable between steps."""
        return self._calls, self._replayed

    # -- the phase loop ----------------------------------------------------------------

    def _drive(self, run_id: str, stop_after: str | None = None) -> SpineOutcome:
        """Run phases from where the run stands until it lands or stops (or, with
        ``stop_after``, until that phase is done: a mission boundary)."""
        self._calls = self._replayed = 0
        self._meter = None
        while True:
            outcome = self.step(run_id, stop_after)
            if outcome is not None:
                return outcome

    def step(
        self, run_id: str, stop_after: str | None = None, *, recovering: bool = False
    ) -> SpineOutcome | None:
        """Run the run's next phase: ``None`` while the run goes on, its outcome once it
        lands or stops. This is the unit a worker of a distributed engine executes;
        ``recovering`` says an earlier attempt at this phase may have died half-way
        (the journal replays what it finished)."""
        self._recovering = self._recovering or recovering
        try:
            if self._meter is None:
                self._meter = self._make_meter(run_id)
            run = self.store.get_run(run_id)
            if run is None:
                raise SpineInputError(f"no spine run {run_id!r}", ReasonCode.RESUME_INVALID)
            config = run["config"]
            if run["status"] != SpineState.RUNNING:
                return self._outcome(run)
            if config["phase"] == "done":
                return self._finish(run_id, SpineState.LANDED, [], "landed")
            if stop_after is not None and config["phase"] == stop_after:
                self.store.update_run(
                    run_id, config={**config, "waiting_for": f"mission:{stop_after}"}
                )
                return self._finish(
                    run_id,
                    SpineState.PAUSED,
                    [],
                    f"stopped after {stop_after}: `lifeos spine resume {run_id}` continues",
                )
            self._run_phase(run_id, config["phase"], config)
            return None
        except (SpineInputError, LeaseLost):  # LeaseLost: the run is another driver's now
            raise
        except SpineStop as stop:
            return self._finish(run_id, stop.state, stop.reasons, stop.message)
        except LifeOSError as exc:
            err = SpineStop.from_error(exc)
            return self._finish(run_id, err.state, err.reasons, err.message)
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            # a full disk, a quota, a read-only folder: resumable once fixed
            where = f" {exc.filename}" if exc.filename else ""
            return self._finish(
                run_id,
                SpineState.FAILED,
                [ReasonCode.WRITE_FAILED.value],
                f"cannot write{where}: {exc.strerror or exc}; free space and "
                f"`lifeos spine resume {run_id}`",
            )

    def _make_meter(self, run_id: str) -> Any:
        """The run's budget meter, its spend so far summed from the ledger (the usage
        entries are what was acknowledged, so a resumed run continues from them)."""
        from lifeos.policy.budget import BudgetMeter, daily_spend, usage_spend, utc_day

        run = self.store.get_run(run_id)
        caps = self._caps(run["config"] if run is not None else {})
        spent = usage_spend(json.loads(r["entry"]) for r in self.store.ledger_rows_for_run(run_id))
        today = spent  # only the daily caps look at the whole day's spend
        if caps.daily_cost_usd is not None or caps.daily_tokens is not None:
            day = utc_day(self.deps.clock.now())
            today = daily_spend((json.loads(r["entry"]) for r in self.store.ledger_rows()), day)
        return BudgetMeter(caps, self.deps.clock, spent=spent, today=today)

    def _run_phase(self, run_id: str, phase: str, config: dict[str, Any]) -> str:
        handler = {
            "hydrate": self._policy_hooks,
            "policy": self._design,
            "design": self._build,
            "build": self._review,
            "review": self._steward,
            "steward": self._close,
        }.get(phase)
        if handler is None:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.RESUME_INVALID.value],
                f"the run's record names no known phase ({phase!r}); it cannot go on",
            )
        return handler(run_id, config)

    # -- phases ----------------------------------------------------------------------

    def _policy_hooks(self, run_id: str, config: dict[str, Any]) -> str:
        from lifeos.policy.model import resolve_policy
        from lifeos.spine.hooks import pre_run
        from lifeos.worktree import snapshot_outside

        section = self.deps.settings.get("policy")
        policy = resolve_policy(None, section)  # POLICY_MISSING without a policy section
        snapshot = snapshot_outside(self.deps.repo.main_root, None)
        context = [str(p) for p in config["task"].get("context") or []]
        present = self._in_commit(config["baseline"], context)
        envelope = pre_run(
            dirty=snapshot.checkout,  # git status of the checkout, LifeOS paths aside
            protected=policy.protected,
            context=context,
            in_baseline=present.__contains__,
            max_calls=self._caps(config).max_calls,
            reviewers=len(self.reviewers),
        )
        self._store_phase(
            run_id,
            "policy",
            {"policy_hash": policy.hash, "outside": snapshot.to_dict(), "envelope": envelope},
            policy_hash=policy.hash,
        )
        self.deps.progress(f"policy {policy.name} {policy.hash[:12]}: clean tree, in envelope")
        return "policy"

    def _caps(self, config: Mapping[str, Any]) -> Any:
        """The run's budget caps: lifeos.yaml's, each lowered by the run's own (a job's)."""
        from lifeos.policy.budget import BudgetCaps

        section = dict(self.deps.settings.get("budget") or {})
        for key, cap in (config.get("budget") or {}).items():
            mine = section.get(key)
            section[key] = cap if mine is None else min(mine, cap)
        return BudgetCaps.from_config(section)

    def _in_commit(self, commit: str, paths: Sequence[str]) -> set[str]:
        """Which of ``paths`` the tree of ``commit`` has (by the name without a trailing
        ``/``; one ending in ``/`` must be a folder), read with one ``cat-file
        --batch-check``. A path git cannot be asked about counts as missing."""
        asked = [(p.rstrip("/"), p) for p in paths if p.rstrip("/") and not set(p) & {"\n", "\r"}]
        if not asked:
            return set()
        stdin = "".join(f"{commit}:{name}\n" for name, _ in asked).encode()
        lines = self._git().run("cat-file", "--batch-check", stdin=stdin).splitlines()
        if len(lines) != len(asked):  # answers must pair with questions, or none counts
            return set()
        found = set()
        for (name, path), line in zip(asked, lines, strict=True):
            if line.endswith(" missing"):
                continue
            kind = line.split(" ")[1]  # "<sha> <type> <size>"
            if kind == "tree" or (kind == "blob" and not path.endswith("/")):
                found.add(name)
        return found

    def _design(self, run_id: str, config: dict[str, Any]) -> str:
        task = config["task"]
        env = self._env(run_id, "design", 0, task)
        prompt = (
            f"Task {task['id']}: {task['title']}\n\n{task.get('description') or ''}\n\n"
            f"Context files: {', '.join(task.get('context') or []) or 'none'}\n"
            f"Configured commands: {', '.join(sorted(self.commands)) or 'none'}\n"
            f"Acceptance required by the task: {', '.join(task.get('acceptance') or []) or 'none'}"
        )
        call = AgentCall(
            messages=[{"role": "system", "content": DESIGNER_SYSTEM}],
            prompt=prompt,
            role="designer",
        )
        response = self._agent(env, "designer", call)
        packet = _extract_json(response.content)
        if packet is not None and packet.get("escalate"):
            raise SpineStop(
                SpineState.ESCALATED,
                [ReasonCode.ESCALATION_REQUIRED.value],
                f"the designer asks a human to decide: {str(packet['escalate'])[:300]}",
            )
        if packet is None or not isinstance(packet.get("goal"), str) or not packet["goal"]:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.PACKET_MISSING.value],
                "the designer's answer is not a build packet (a JSON object with a goal)",
            )
        wanted = [*_str_list(packet.get("acceptance")), *task["acceptance"]]
        unknown = [a for a in wanted if self._command_name(a) is None]
        acceptance = sorted({self._command_name(a) or a for a in wanted})
        if unknown:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.PACKET_MISSING.value],
                f"the build packet names acceptance checks that are not configured: {unknown}",
            )
        build_packet = {
            "packet_type": "BUILD_PACKET",
            "task_id": task["id"],
            "goal": packet["goal"],
            "files": _str_list(packet.get("files")),
            "acceptance": acceptance,
            "notes": str(packet.get("notes") or ""),
        }
        self._check_packet("build_packet", build_packet)
        self._store_phase(run_id, "design", build_packet)
        self._artifact(run_id, "packets/build_packet.json", build_packet, "BUILD_PACKET")
        self.deps.progress(f"design: {build_packet['goal']}")
        return "design"

    def _build(self, run_id: str, config: dict[str, Any]) -> str:
        from lifeos.agents.native import NativeBuilderConfig, run_native_builder
        from lifeos.policy.gate import judge, read_change
        from lifeos.policy.model import resolve_policy
        from lifeos.worktree import checkout_commit, commit_tree, create_worktree

        self._approval(run_id, config, "before_build")
        attempt = config["attempt"]
        packet = config["outputs"]["design"]
        repairs = config["outputs"].get("repair_requests", [])
        git = self._git()
        wt = create_worktree(
            git,
            self.deps.repo.lifeos_dir,
            run_id,
            config["task"]["id"],
            config["baseline"],
            reuse=True,
        )
        if config.get("worktree") != str(wt.path):
            self.store.update_run(
                run_id, config={**config, "worktree": str(wt.path), "branch": wt.branch}
            )
        parent = config["outputs"].get("build", {}).get("commit") or config["baseline"]
        if self._recovering or attempt > 0:
            # Start from the parent commit exactly: after a crash the worktree may hold
            # half-done work; the builder's journaled changes are re-applied on replay.
            checkout_commit(git, wt, parent)
        env = self._env(run_id, "build", attempt, {"packet": packet, "repairs": repairs})
        instructions = json.dumps(
            {"build_packet": packet, "required_changes": repairs}, indent=2, sort_keys=True
        )
        self._task_status(run_id, "executing")
        self.deps.progress(f"build (attempt {attempt + 1}) in {wt.path}")
        spec = (self.deps.settings.get("models") or {}).get("builder") or {}
        if isinstance(spec, dict) and spec.get("provider") in EXTERNAL_BUILDERS:
            summary, builder_info = self._external_build(env, wt.path, instructions, spec)
        else:
            live_before = self._calls
            result = run_native_builder(
                _Keyed(self.deps.provider_for("builder"), env),
                wt.path,
                instructions,
                config=NativeBuilderConfig(commands=self.commands),
                once=env.native_once,
                before_call=lambda call: self._before_call("builder", call),
                after_call=lambda response: self._after_call(env, "builder", response),
                system_prompt=BUILDER_SYSTEM,
            )
            self._replayed += result.model_calls - (self._calls - live_before)
            summary, builder_info = result.summary, result.to_dict()
        self._check_outside(config)
        policy = resolve_policy(None, self.deps.settings.get("policy"))
        if policy.hash != config["outputs"]["policy"]["policy_hash"]:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.POLICY_HASH_MISMATCH.value],
                "the policy changed during the run",
            )
        decision = judge(wt.path, read_change(wt.path, config["baseline"]), policy, self.deps.clock)
        self.store.append_ledger(
            "gate.decision",
            run_id,
            {
                "decision_id": decision.decision_id,
                "result": decision.result,
                "reason_codes": decision.reason_codes,
                "tree": decision.tree,
            },
        )
        if not decision.passed:
            raise SpineStop(
                SpineState.BLOCKED,
                decision.reason_codes,
                "the gate blocked the build: "
                + "; ".join(f"{f.code.value} {f.path}" for f in decision.reasons[:5]),
            )
        message = (
            f"lifeos: build {config['task']['id']} (attempt {attempt + 1})\n\n"
            f"Run: {run_id}\nGate: {decision.decision_id} PASS\n"
        )
        commit, replayed = env.once(
            lambda: commit_tree(git, wt.branch, decision.tree, parent, message)
        )
        self._sync(git, wt, commit, replayed)
        changes = [c.to_dict() for c in decision.changes]
        self._store_phase(
            run_id,
            "build",
            {
                "commit": commit,
                "tree": decision.tree,
                "decision": decision.to_dict(),
                "changes": changes,
                "summary": summary,
                "builder": builder_info,
                "branch": wt.branch,
                "worktree": str(wt.path),
            },
        )
        self.deps.progress(
            f"build: commit {commit[:12]}, {len(changes)} changed path(s), gate PASS"
        )
        return "build"

    def _review(self, run_id: str, config: dict[str, Any]) -> str:
        attempt = config["attempt"]
        build = config["outputs"]["build"]
        packet = config["outputs"]["design"]
        wt = Path(build["worktree"])
        env = self._env(run_id, "review", attempt, {"commit": build["commit"]})
        self._task_status(run_id, "review")
        checks: list[dict[str, Any]] = []
        names = list(packet["acceptance"])
        if PROJECT_TESTS in self.commands and PROJECT_TESTS not in names:
            names.append(PROJECT_TESTS)  # the project's own tests, always
        for name in names:
            outcome, _ = env.once(functools.partial(self._run_command, wt, name))
            checks.append(outcome)
        failed = [c["name"] for c in checks if c["exit_code"] != 0]
        diff = self._diff(config["baseline"], build["commit"])
        lenses = []
        for lens in self.reviewers:
            call = AgentCall(
                messages=[{"role": "system", "content": REVIEWER_SYSTEM.format(lens=lens)}],
                prompt=json.dumps(
                    {"build_packet": packet, "checks": checks, "diff": diff},
                    indent=2,
                    sort_keys=True,
                ),
                role="reviewer",
            )
            answer = _extract_json(self._agent(env, "reviewer", call).content) or {}
            verdict = answer.get("verdict")
            if verdict not in ("approve", "request_changes", "block", "escalate"):
                verdict = "block"  # an answer that is not a verdict blocks (fail closed)
            lenses.append(
                {
                    "lens": lens,
                    "verdict": verdict,
                    "issues": _str_list(answer.get("issues")),
                    "risks": _str_list(answer.get("risks")),
                    "required_changes": _str_list(answer.get("required_changes")),
                    "questions": _str_list(answer.get("questions")),
                }
            )
        verdicts = {lens["verdict"] for lens in lenses}
        chair = "approve"
        if "escalate" in verdicts:
            chair = "escalate"
        elif "block" in verdicts:
            chair = "block"
        elif failed or "request_changes" in verdicts:
            chair = "request_changes"
        review = {
            "packet_type": "REVIEW_PACKET",
            "task_id": config["task"]["id"],
            "commit": build["commit"],
            "attempt": attempt,
            "checks": checks,
            "lenses": lenses,
            "verdict": chair,
            "required_changes": sorted(
                {c for lens in lenses for c in lens["required_changes"]}
                | {f"make the acceptance check '{n}' pass" for n in failed}
            ),
        }
        review["packet"] = {
            "subject": f"{config['task']['id']}: {config['task']['title']}",
            "changed_files": [
                {k: v for k, v in c.items() if k in ("status", "path", "old_path")}
                for c in build["changes"]
            ],
            "verdict": {"approve": "PASS", "request_changes": "NEEDS_CHANGES"}.get(chair, "FAIL"),
            "summary": f"{chair}: "
            + ("; ".join(review["required_changes"]) or "no changes required"),
            "lenses": lenses,
            "checks": checks,
        }
        self._check_packet("review_packet", review["packet"])
        self._artifact(
            run_id, f"packets/review_packet_v{attempt + 1}.json", review["packet"], "REVIEW_PACKET"
        )
        opinions = ", ".join(f"{x['lens']} {x['verdict']}" for x in lenses)
        passed = len(checks) - len(failed)
        self.deps.progress(f"review: {chair} ({opinions}; checks {passed}/{len(checks)} pass)")
        if chair == "escalate":
            self._store_phase(run_id, "review", review, next_phase="build")
            raise SpineStop(
                SpineState.ESCALATED,
                [ReasonCode.ESCALATION_REQUIRED.value],
                "a reviewer asks a human to decide: "
                + "; ".join(str(q) for x in lenses for q in [*x["questions"], *x["issues"]])[:300],
            )
        if chair == "block":
            self._store_phase(run_id, "review", review, next_phase="build")
            raise SpineStop(
                SpineState.BLOCKED,
                [ReasonCode.REVIEW_REJECTED.value],
                "a reviewer blocked the change",
            )
        if chair == "request_changes":
            if attempt >= self.repairs:
                self._store_phase(run_id, "review", review, next_phase="build")
                codes = [ReasonCode.REPAIRS_EXHAUSTED.value]
                if failed:
                    codes.append(ReasonCode.TESTS_FAILED.value)
                raise SpineStop(
                    SpineState.FAILED,
                    codes,
                    f"review still requests changes after {attempt} repair(s)",
                )
            # Back to build with the required changes, one more attempt.
            self._store_phase(
                run_id,
                "review",
                review,
                next_phase="design",
                extra={"repair_requests": review["required_changes"]},
                attempt=attempt + 1,
            )
            self._task_status(run_id, "repair_retry", repair_attempt=attempt + 1)
            self.deps.progress(f"repair {attempt + 1} of {self.repairs}")
            return "design"
        self._store_phase(run_id, "review", review)
        return "review"

    def _steward(self, run_id: str, config: dict[str, Any]) -> str:
        from lifeos.evidence.bundle import write_bundle
        from lifeos.fsutil import atomic_write
        from lifeos.policy.gate import worktree_tree
        from lifeos.worktree import Worktree, checkout_commit, commit_tree

        self._approval(run_id, config, "before_steward")
        task = config["task"]
        build = config["outputs"]["build"]
        review = config["outputs"]["review"]
        wt = Path(build["worktree"])
        version = config["attempt"] + 1
        rel = f"artifacts/review_packets/Review_Packet_{task['id']}_v{version}.md"
        env = self._env(run_id, "steward", 0, {"commit": build["commit"]})
        evidence_rel = f".lifeos/evidence/{run_id}"
        text = self._review_markdown(run_id, config, evidence_rel)
        git = self._git()
        handle = Worktree(wt, build["branch"], config["baseline"], run_id)
        if self._recovering:
            checkout_commit(git, handle, build["commit"])  # a crash may have left a commit
        (wt / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(wt / rel, text.encode())
        tree = worktree_tree(wt)
        message = (
            f"lifeos: {task['id']} {task['title']}\n\nRun: {run_id}\n"
            f"Evidence: {evidence_rel}\nReview: {rel} ({review['verdict']})\n"
        )
        commit, replayed = env.once(
            lambda: commit_tree(git, build["branch"], tree, build["commit"], message)
        )
        self._sync(git, handle, commit, replayed)
        decision = build["decision"]
        if self._recovering:
            # A bundle the crashed attempt wrote but never recorded: written again.
            shutil.rmtree(self.deps.repo.lifeos_dir / "evidence" / run_id, ignore_errors=True)
        folder = write_bundle(
            self.deps.repo.lifeos_dir,
            run_id,
            status="PASS",
            reason_codes=[],
            changed_files=[
                {k: v for k, v in c.items() if k in ("status", "path", "old_path")}
                for c in build["changes"]
            ],
            runner_log=self._runner_log(config),
            policy_hash=config["outputs"]["policy"]["policy_hash"],
            base_commit=config["baseline"],
            head_commit=commit,
            decision=decision,
            signer=self.deps.signer,
            clock=self.deps.clock,
            store=self.store,
        )
        self._store_phase(
            run_id,
            "steward",
            {
                "commit": commit,
                "review_packet": rel,
                "evidence": evidence_rel,
                "folder": str(folder),
            },
            top={"evidence": evidence_rel},
        )
        self.deps.progress(f"steward: commit {commit[:12]} with {rel}")
        return "steward"

    def _close(self, run_id: str, config: dict[str, Any]) -> str:
        from lifeos.evidence.bundle import verify_bundle
        from lifeos.ledger.chain import sign_checkpoint
        from lifeos.worktree import Worktree, remove_worktree

        steward = config["outputs"]["steward"]
        build = config["outputs"]["build"]
        report = verify_bundle(self.deps.repo.main_root / steward["evidence"], self.deps.verifier)
        if not report.ok:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.EVIDENCE_INCOMPLETE.value],
                "the evidence bundle does not verify",
            )
        probe = self._git().completed(
            "cat-file", "-e", f"{steward['commit']}:{steward['review_packet']}"
        )
        if probe.returncode != 0:
            raise SpineStop(
                SpineState.FAILED, [ReasonCode.PACKET_MISSING.value], "the review packet is missing"
            )
        self._check_outside(config)
        _, row = self.store.append_ledger(
            "spine.landed",
            run_id,
            {
                "task": config["task"]["id"],
                "commit": steward["commit"],
                "evidence": steward["evidence"],
            },
        )
        sign_checkpoint(self.store, self.deps.signer)
        remove_worktree(
            self._git(),
            Worktree(Path(build["worktree"]), build["branch"], config["baseline"], run_id),
            delete_branch=False,
        )
        self._store_phase(run_id, "close", {"ledger_seq": row["seq"]}, next_phase="done")
        return "close"

    # -- helpers -------------------------------------------------------------------

    def _store_phase(
        self,
        run_id: str,
        phase: str,
        output: Any,
        *,
        next_phase: str | None = None,
        extra: dict[str, Any] | None = None,
        attempt: int | None = None,
        policy_hash: str | None = None,
        top: dict[str, Any] | None = None,
    ) -> None:
        """Write a finished phase's output and its checkpoint in one transaction
        (``top``: keys set on the run's config itself, such as ``evidence``)."""
        with self.store.transaction():
            run = self.store.get_run(run_id)
            assert run is not None
            config = dict(run["config"])
            outputs = {**config["outputs"], phase: output, **(extra or {})}
            config["outputs"] = outputs
            config["phase"] = next_phase or phase
            if attempt is not None:
                config["attempt"] = attempt
            config.update(top or {})
            self.store.update_run(run_id, config=config)
            self._checkpoint(run_id, phase, "ok", output, policy_hash)

    def _checkpoint(
        self, run_id: str, phase: str, status: str, output: Any, policy_hash: str | None = None
    ) -> None:
        run = self.store.get_run(run_id)
        if policy_hash is None and run is not None:
            policy_hash = (run["config"]["outputs"].get("policy") or {}).get("policy_hash")
        count = len(self.store.list_checkpoints(run_id))  # a repaired phase comes again
        self.store.put_checkpoint(
            {
                "checkpoint_id": stable_uuid(run_id, phase, str(count)),
                "run_id": run_id,
                "step_index": count,
                "step_id": phase,
                "step_digest": sha256_hex({"phase": phase}),
                "status": status,
                "state_hash": sha256_hex(output),
                "policy_hash": policy_hash,
                "delta": [],
                "info": {"phase": phase, "phase_index": PHASES.index(phase)},
                "created_at": self.store.now(),
            }
        )

    def _finish(
        self, run_id: str, state: SpineState, reasons: Sequence[str], message: str
    ) -> SpineOutcome:
        run = self.store.get_run(run_id)
        assert run is not None
        config = run["config"]
        with self.store.transaction():
            self.store.update_run(
                run_id,
                status=state.value,
                failure_reason=reasons[0] if reasons else None,
                config={**config, "reasons": list(reasons), "message": message},
            )
            if state is not SpineState.PAUSED:
                self.store.append_ledger(
                    "spine.finished",
                    run_id,
                    {"state": state.value, "reason_codes": list(reasons)},
                )
            if state is SpineState.LANDED:
                steward = config["outputs"].get("steward") or {}
                self._task_status(
                    run_id, "approved", result_artifact_ids=[steward.get("evidence", "")]
                )
            elif state in (SpineState.BLOCKED, SpineState.FAILED, SpineState.ESCALATED):
                self._task_status(run_id, "failed_terminal")
        fresh = self.store.get_run(run_id)
        assert fresh is not None
        return self._outcome(fresh)

    def _outcome(self, run: Any) -> SpineOutcome:
        """The outcome a stopped run's record states."""
        config = run["config"]
        state = SpineState(run["status"])
        build = config["outputs"].get("build") or {}
        steward = config["outputs"].get("steward") or {}
        keep = state is not SpineState.LANDED
        return SpineOutcome(
            run_id=run["run_id"],
            task_id=run["name"],
            state=state,
            reasons=tuple(config.get("reasons") or ()),
            message=str(config.get("message") or ""),
            phase=config["phase"],
            commit=steward.get("commit") or build.get("commit"),
            branch=config.get("branch"),
            worktree=config.get("worktree") if keep else None,
            evidence=steward.get("evidence"),
            agent_calls=self._calls,
            replayed_calls=self._replayed,
        )

    def _approval(self, run_id: str, config: dict[str, Any], point: str) -> None:
        needed = point in self.approvals or point in config["task"].get("approvals", [])
        if not needed:
            return
        decision = config.get("decisions", {}).get(point)
        if decision is None:
            self.store.update_run(run_id, config={**config, "waiting_for": point})
            raise SpineStop(
                SpineState.PAUSED,
                [],
                f"waiting for approval ({point}): lifeos spine approve {run_id}",
            )
        if not decision["approved"]:
            raise SpineStop(
                SpineState.BLOCKED,
                [ReasonCode.HUMAN_REJECTED.value],
                f"rejected at {point}: {decision['note']}",
            )

    def _env(self, run_id: str, phase: str, attempt: int, inputs: Any) -> PhaseEnv:
        return PhaseEnv(self.store, run_id, phase, attempt, inputs)

    def _agent(self, env: PhaseEnv, role: str, call: AgentCall) -> AgentResponse:
        def live() -> dict[str, Any]:
            self._before_call(role, call)
            response = _Keyed(self.deps.provider_for(role), env).call(call)
            self._after_call(env, role, response)
            return response.to_dict()

        data, replayed = env.once(live)
        if replayed:
            self._replayed += 1
        return AgentResponse(
            content=str(data.get("content") or ""),
            usage=Usage.from_dict(data.get("usage") or {}),
            call_id=str(data.get("call_id") or ""),
            model=str(data.get("model") or ""),
        )

    def _before_call(self, role: str, call: AgentCall) -> Any:
        """Let the call through the budget (or stop the run); the budget decision, with
        the headroom left for the call."""
        return self._meter.before_call(call, self._pricing(role))

    def _after_call(self, env: PhaseEnv, role: str, response: AgentResponse) -> None:
        """Account one live call: counted, its usage in the ledger, the run's spend
        updated, then the caps checked (which may stop the run)."""
        from lifeos.policy.budget import AGENT_USAGE, usage_payload

        self._calls += 1
        self.store.append_ledger(
            AGENT_USAGE,
            env.run_id,
            usage_payload(
                response.usage, model=response.model, role=role, call_id=response.call_id
            ),
        )
        check = self._meter.after_call(response.usage, self._pricing(role))
        run = self.store.get_run(env.run_id)
        if run is not None:
            self.store.update_run(
                env.run_id,
                spent_cost_usd=check.spent.cost_usd,
                message_count=run["message_count"] + 1,
            )
        check.raise_if_exceeded()

    def _pricing(self, role: str) -> Mapping[str, float] | None:
        spec = (self.deps.settings.get("models") or {}).get(role) or {}
        pricing = spec.get("pricing") if isinstance(spec, dict) else None
        return pricing if isinstance(pricing, dict) else None

    def _run_command(self, cwd: Path, name: str) -> dict[str, Any]:
        argv = self.commands[name]
        try:
            proc = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
            )
            output = (proc.stdout + proc.stderr)[-4000:]
            code = proc.returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            output, code = str(exc), 127
        return {"name": name, "argv": argv, "exit_code": code, "output_tail": output}

    def _external_build(
        self, env: PhaseEnv, worktree: Path, instructions: str, spec: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Let an external coding agent (a CLI agent, OpenCode) build in the worktree.

        The agent edits files itself, so what it changed is read from the worktree after
        the call and journaled with the response; a replay writes those changes again
        instead of running the agent.
        """
        from lifeos.agents.factory import build_provider
        from lifeos.spine.changes import apply_changes, capture_changes

        call = AgentCall(
            messages=[{"role": "system", "content": BUILDER_SYSTEM}],
            prompt=instructions,
            role="builder",
        )

        def live() -> dict[str, Any]:
            decision = self._before_call("builder", call)
            if spec.get("provider") == "opencode":
                response = self._opencode_build(env, worktree, call, spec, decision)
            else:
                provider = build_provider("builder", spec, self.deps.env, worktree)
                response = provider.call(call)
            self._after_call(env, "builder", response)
            return {"response": response.to_dict(), "changes": capture_changes(worktree)}

        record, replayed = env.once(live)
        if replayed:
            apply_changes(worktree, record["changes"])
            self._replayed += 1
        response = record["response"]
        info = {
            "kind": str(spec.get("provider")),
            "files_written": sorted(c["path"] for c in record["changes"] if not c.get("deleted")),
            "files_deleted": sorted(c["path"] for c in record["changes"] if c.get("deleted")),
            "usage": response.get("usage"),
        }
        return str(response.get("content") or "").strip()[:2000], info

    # -- the OpenCode builder ------------------------------------------------------------

    def _opencode_build(
        self,
        env: PhaseEnv,
        worktree: Path,
        call: AgentCall,
        spec: Mapping[str, Any],
        decision: Any,
    ) -> AgentResponse:
        """One OpenCode build: an ephemeral ``opencode serve --pure`` in the worktree, one
        session, stopped afterwards.

        The server's state lives in a scratch HOME under ``.lifeos/opencode/<run_id>/``
        (LifeOS-owned: never a change, never gated), removed after a build that answered
        and kept, with the server's log, after one that failed. OpenCode's configuration
        (``opencode_config``) is passed inline (``OPENCODE_CONFIG_CONTENT``), never
        written into the worktree. With a token or cost cap, the session's streamed
        usage is watched against the headroom the budget leaves, and the session is
        aborted once it crosses it: what it used is then recorded and the run stops
        ``BUDGET_EXCEEDED`` (resumable once the cap is raised).
        """
        import dataclasses
        import secrets
        import shutil

        from lifeos.agents.providers.opencode import OpenCodeProvider, OpenCodeServer, UsageLimit

        model = str(spec.get("model") or "")
        provider_id, _, model_id = model.partition("/")
        if not provider_id or not model_id:
            raise AgentError(
                "models.builder: an opencode builder needs a model written providerID/modelID",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        timeout = float(spec.get("timeout_s") or 120.0)
        password = secrets.token_urlsafe(24)
        server_env = self._opencode_env(spec, provider_id, password)
        binary = self._opencode_binary(str(spec.get("binary") or "opencode"))
        home = self.deps.repo.lifeos_dir / "opencode" / env.run_id
        _stop_leftover_server(home, worktree)
        shutil.rmtree(home, ignore_errors=True)
        marker = self._opencode_marker(worktree)
        marker_existed = marker is not None and marker.exists()
        server = OpenCodeServer(worktree, binary=binary, home=home, env=server_env)
        limit = None
        if decision.max_tokens is not None or decision.max_cost_usd is not None:
            limit = UsageLimit(
                max_tokens=None if decision.max_tokens is None else max(0, decision.max_tokens),
                max_cost_usd=None
                if decision.max_cost_usd is None
                else max(0.0, decision.max_cost_usd),
            )
        try:
            server.start()
            (home / "server.pid").write_text(f"{server.pid}\n", encoding="ascii")
            provider = OpenCodeProvider(
                server.url,
                provider_id,
                model_id,
                password=password,
                timeout_s=timeout,
                pricing=self._pricing("builder"),
            )
            try:
                response = provider.call(
                    dataclasses.replace(call, timeout_s=timeout), usage_limit=limit
                )
            except AgentError as exc:
                if exc.reason is ReasonCode.BUDGET_EXCEEDED:
                    self.deps.progress(f"build: OpenCode aborted: {exc}")
                    self._account_aborted(env, server.url, password, model_id)
                raise
        except BaseException:
            self.deps.progress(f"build: the OpenCode server's state and log stay in {home}")
            raise
        finally:
            server.stop()
            if marker is not None and not marker_existed:
                # OpenCode caches its project id in the repository's git folder
                # (``.git/opencode``); a file it did not find there is removed again.
                marker.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
        return response

    def _opencode_env(
        self, spec: Mapping[str, Any], provider_id: str, password: str
    ) -> dict[str, str]:
        """The OpenCode server's explicit environment (the rest is inherited, minus
        ``OPENCODE_*`` and ``XDG_*_HOME``, with HOME the scratch folder)."""
        config = json.loads(json.dumps(spec.get("opencode_config") or {}))
        server_env = {
            key: value
            for key, value in self.deps.env.items()
            if key.startswith("OPENCODE_DISABLE_")
        }
        key_env = spec.get("api_key_env")
        if key_env:
            value = self.deps.env.get(str(key_env))
            if not value:
                raise AgentError(
                    f"role 'builder' needs the environment variable {key_env}, which is not set",
                    ReasonCode.PROVIDER_NOT_CONFIGURED,
                )
            server_env[str(key_env)] = value
            providers = config.setdefault("provider", {})
            entry = providers.setdefault(provider_id, {})
            if isinstance(entry, dict):
                options = entry.setdefault("options", {})
                if isinstance(options, dict):
                    options.setdefault("apiKey", "{env:" + str(key_env) + "}")
        server_env.update(
            {
                "OPENCODE_SERVER_PASSWORD": password,
                "OPENCODE_CONFIG_CONTENT": json.dumps(config, sort_keys=True),
                "OPENCODE_DISABLE_AUTOUPDATE": "1",
                "OPENCODE_DISABLE_SHARE": "1",
                # no package is fetched at run time: --pure loads no plugin, and the
                # providers OpenCode bundles need none (its background installs fail quietly)
                "npm_config_offline": "true",
            }
        )
        return server_env

    def _opencode_binary(self, binary: str) -> str:
        """The OpenCode executable: a path (relative to the repository root) or a name
        on PATH."""
        import os
        import shutil

        if "/" in binary:
            path = Path(binary)
            path = path if path.is_absolute() else self.deps.repo.main_root / path
            found = str(path) if os.access(path, os.X_OK) and path.is_file() else None
        else:
            found = shutil.which(binary, path=self.deps.env.get("PATH") or os.environ.get("PATH"))
        if found is None:
            raise AgentError(
                f"the OpenCode builder cannot run {binary!r}: not an executable "
                "(models.builder.binary; install opencode or give its path)",
                ReasonCode.PROVIDER_ERROR,
            )
        return found

    def _opencode_marker(self, worktree: Path) -> Path | None:
        """``opencode`` in the repository's common git folder, where OpenCode caches its
        project id; None when git cannot say where that folder is."""
        from lifeos.worktree import WorktreeError

        try:
            common = self._git().run(
                "rev-parse", "--path-format=absolute", "--git-common-dir", cwd=worktree
            )
        except WorktreeError:
            return None
        return Path(common.strip()) / "opencode" if common.strip() else None

    def _account_aborted(self, env: PhaseEnv, url: str, password: str, model_id: str) -> None:
        """Record what an aborted OpenCode build used (every assistant message the server
        holds), so the run's spend includes it; the caps are checked as for any call."""
        usage = _opencode_server_usage(url, password)
        if usage is None:
            return
        self._after_call(
            env, "builder", AgentResponse(content="", usage=usage, model=model_id, call_id="")
        )

    def _task_status(self, run_id: str, status: str, **changes: Any) -> None:
        """Move the run's mission_tasks row (pending, executing, review, repair_retry,
        approved, failed_terminal), with the tokens the run has consumed so far."""
        run = self.store.get_run(run_id)
        if run is None:
            return
        tokens = int(self._meter.spent().tokens) if self._meter is not None else 0
        self.store.update_task(
            run_id, run["name"], status=status, consumed_tokens=tokens, **changes
        )

    def _check_packet(self, schema: str, packet: Mapping[str, Any]) -> None:
        """Fail closed on a packet that does not validate against its schema."""
        from lifeos.packets.validate import schema_problem

        problem = schema_problem(schema, packet)
        if problem is not None:
            raise SpineStop(
                SpineState.FAILED,
                [ReasonCode.PACKET_MISSING.value],
                f"the {schema.upper()} does not validate: {problem}",
            )

    def _artifact(self, run_id: str, name: str, data: Any, kind: str) -> None:
        """Keep a packet as a store artifact (content-addressed, versioned)."""
        from lifeos.canonical import canonical_json

        self.store.put_artifact(
            run_id, name, canonical_json(data), kind=kind, mime_type="application/json"
        )

    def _sync(self, git: Any, wt: Any, commit: str, replayed: bool) -> None:
        """Bring the worktree's index to a commit just made from its own files (one
        ``reset``); a replayed commit may not be where the branch is: check it out."""
        from lifeos.worktree import checkout_commit

        if replayed or self._recovering:
            checkout_commit(git, wt, commit)
        else:
            git.run("reset", "--quiet", commit, "--", cwd=wt.path)

    def _command_name(self, entry: str) -> str | None:
        """The configured command an acceptance entry names (by name or command line)."""
        if entry in self.commands:
            return entry
        try:
            argv = shlex.split(entry)
        except ValueError:
            return None
        return next((name for name, cmd in self.commands.items() if cmd == argv), None)

    def _diff(self, base: str, head: str) -> str:
        """The change as a unified diff for the reviewers (hardened git: no external diff
        program, no textconv filter, no user or system config)."""
        proc = self._git().completed(
            "diff", "--no-ext-diff", "--no-textconv", "--no-color", base, head, "--"
        )
        return proc.stdout.decode("utf-8", "replace")[:MAX_DIFF_CHARS]

    def _check_outside(self, config: dict[str, Any]) -> None:
        from lifeos.worktree import OutsideSnapshot, snapshot_outside

        before = OutsideSnapshot.from_dict(config["outputs"]["policy"]["outside"])
        now = snapshot_outside(self.deps.repo.main_root, None)
        changed = before.diff(now)
        if changed:
            raise SpineStop(
                SpineState.BLOCKED,
                [ReasonCode.EXTERNAL_CHANGE.value],
                "something outside the run's worktree changed: " + "; ".join(changed[:5]),
            )

    def _git(self) -> HardenedGit:
        from lifeos.worktree import HardenedGit

        return HardenedGit(self.deps.repo.main_root, self.deps.clock)

    def _backlog_path(self) -> Path:
        rel = (self.deps.settings.get("backlog") or {}).get("path") or "config/backlog.yaml"
        return self.deps.repo.main_root / rel

    def _landed_run(self, task_id: str) -> str | None:
        for run in self.store.list_runs(limit=10_000):
            if run["kind"] == "spine" and run["name"] == task_id and run["status"] == "LANDED":
                return run["run_id"]
        return None

    def _run(self, ref: str) -> Any:
        run = self.store.get_run(ref)
        if run is None:
            for candidate in self.store.list_runs(limit=10_000):
                if any(
                    c["checkpoint_id"] == ref
                    for c in self.store.list_checkpoints(candidate["run_id"])
                ):
                    run = candidate
                    break
        if run is None or run["kind"] != "spine":
            raise SpineInputError(f"no spine run {ref!r}", ReasonCode.RESUME_INVALID)
        return run

    def _runner_log(self, config: dict[str, Any]) -> str:
        outputs = config["outputs"]
        lines = [f"task {config['task']['id']}: {config['task']['title']}"]
        lines.append(f"design: {outputs['design']['goal']}")
        lines.append(f"build: {outputs['build']['summary']}")
        for check in outputs["review"]["checks"]:
            lines.append(f"check {check['name']}: exit {check['exit_code']}")
        for lens in outputs["review"]["lenses"]:
            lines.append(f"review {lens['lens']}: {lens['verdict']}")
        return "\n".join(lines) + "\n"

    def _review_markdown(self, run_id: str, config: dict[str, Any], evidence: str) -> str:
        task = config["task"]
        outputs = config["outputs"]
        build, review = outputs["build"], outputs["review"]
        rows = "\n".join(f"| {c['status']} | `{c['path']}` |" for c in build["changes"])
        checks = (
            "\n".join(
                f"| {c['name']} | {'pass' if c['exit_code'] == 0 else 'FAIL'} |"
                for c in review["checks"]
            )
            or "| (none) | |"
        )
        lenses = "\n".join(f"- **{x['lens']}**: {x['verdict']}" for x in review["lenses"])
        files = []
        wt = Path(build["worktree"])
        for change in build["changes"]:
            if change["status"] == "D":
                continue
            try:
                body = (wt / change["path"]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                body = "(not text)"
            files.append(f"### `{change['path']}`\n\n```\n{body}\n```\n")
        return (
            f"# Review packet: {task['id']} — {task['title']}\n\n"
            f"- Run: `{run_id}`\n- Baseline: `{config['baseline']}`\n"
            f"- Build commit: `{build['commit']}`\n- Evidence: `{evidence}`\n\n"
            f"## Summary\n\n{outputs['design']['goal']}\n\n{build['summary']}\n\n"
            f"## Changes\n\n| status | path |\n|---|---|\n{rows}\n\n"
            f"## Gate decision\n\n{build['decision']['result']} "
            f"(policy `{build['decision']['policy_hash'][:12]}`, "
            f"decision `{build['decision']['decision_id']}`)\n\n"
            f"## Tests and acceptance checks\n\n| check | result |\n|---|---|\n{checks}\n\n"
            f"## Review\n\n{lenses}\n\nVerdict: {review['verdict']}\n\n"
            f"## Usage\n\n{json.dumps(build['builder'].get('usage'), sort_keys=True)}\n\n"
            f"## Changed files\n\n" + "\n".join(files)
        )


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})
"""Errors of a disk that cannot take LifeOS's writes now (``WRITE_FAILED``); any other
OSError is not the disk's state and is not turned into a resumable stop."""


def _job_caps(budget: Mapping[str, float] | None) -> dict[str, float]:
    caps: dict[str, float] = {}
    for key, value in (budget or {}).items():
        problem = job_cap_problem(key, value)
        if problem is not None:
            raise SpineInputError(f"budget: {problem}", ReasonCode.INVALID_INPUT)
        caps[key] = value
    return caps


class _Keyed:
    """A provider whose calls carry the idempotency key of the journaled call they
    belong to (see :attr:`AgentCall.idempotency_key`)."""

    def __init__(self, inner: AgentProvider, env: PhaseEnv) -> None:
        self.inner = inner
        self.env = env

    def call(self, request: AgentCall) -> AgentResponse:
        key = self.env.current_key
        if key is not None and request.idempotency_key is None:
            asked = sha256_hex(
                {
                    "max_tokens": request.max_tokens,
                    "messages": request.chat_messages(),
                    "model": request.model,
                    "role": request.role,
                    "tools": list(request.tools),
                }
            )
            request = dataclasses.replace(request, idempotency_key=stable_uuid(key, asked))
        return self.inner.call(request)


def _stop_leftover_server(home: Path, worktree: Path) -> None:
    """Kill an OpenCode server a crashed build left running in ``worktree`` (its pid is
    in ``home/server.pid``; it is only killed while its working folder is the worktree)."""
    import os
    import signal

    try:
        pid = int((home / "server.pid").read_text(encoding="ascii").strip())
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError):
        return
    if cwd.resolve() == worktree.resolve():
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _opencode_server_usage(url: str, password: str) -> Usage | None:
    """Tokens and cost summed over every assistant message an OpenCode server holds
    (the ephemeral builder server holds one session); None when it cannot be read."""
    import httpx

    totals = {"input": 0, "output": 0, "reasoning": 0, "read": 0, "write": 0}
    cost = 0.0
    seen = False
    try:
        with httpx.Client(
            base_url=url, auth=httpx.BasicAuth("opencode", password), timeout=30.0
        ) as client:
            sessions = client.get("/session").raise_for_status().json()
            for session in sessions if isinstance(sessions, list) else []:
                sid = session.get("id") if isinstance(session, dict) else None
                if not isinstance(sid, str):
                    continue
                messages = client.get(f"/session/{sid}/message").raise_for_status().json()
                for message in messages if isinstance(messages, list) else []:
                    info = message.get("info") if isinstance(message, dict) else None
                    if not isinstance(info, dict) or info.get("role") != "assistant":
                        continue
                    tokens = _as_dict(info.get("tokens"))
                    cache = _as_dict(tokens.get("cache"))
                    for name, value in (
                        ("input", tokens.get("input")),
                        ("output", tokens.get("output")),
                        ("reasoning", tokens.get("reasoning")),
                        ("read", cache.get("read")),
                        ("write", cache.get("write")),
                    ):
                        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                            totals[name] += value
                            seen = True
                    spent = info.get("cost")
                    if isinstance(spent, int | float) and not isinstance(spent, bool) and spent > 0:
                        cost += float(spent)
    except (httpx.HTTPError, ValueError):
        return None
    if not seen:
        return None
    return Usage.reported(
        totals["input"],
        totals["output"],
        reasoning_tokens=totals["reasoning"],
        cache_read_tokens=totals["read"],
        cache_write_tokens=totals["write"],
        cost_usd=round(cost, 10) if cost > 0 else None,
    )
