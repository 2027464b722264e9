"""The OpenClaw bridge: every mapping between an OpenClaw job and a spine run.

* an OpenClaw job payload -> :class:`JobPayload` (validated) -> a spine invocation;
* a spine run (terminal or checkpoint state) -> an OpenClaw result payload;
* a job's evidence folder (``artifacts/evidence/openclaw/jobs/<job_id>/`` in the main
  checkout, a LifeOS-owned path): job, result and refs (packet and ledger references),
  sealed by a SHA-256 manifest.

A job is reported ``done`` only when its run LANDED and its evidence folder is complete
and its manifest verifies. A job names a backlog task (``task_id``) or carries one inline
(``task``, validated like a backlog entry); its ``budget`` lowers lifeos.yaml's caps for
its run; its ``callback`` URL is POSTed the job's result each time the run stops (when the job
is submitted or polled), until it answers 2xx.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifeos.canonical import canonical_json
from lifeos.config import job_cap_problem
from lifeos.errors import InputError, ReasonCode
from lifeos.fsutil import atomic_write

__all__ = [
    "DEFAULT_MISSION",
    "JOB_FIELDS",
    "JOBS_DIR",
    "JOB_EVIDENCE_DIR",
    "MANIFEST_FILE",
    "SEALED_FILES",
    "STATE_FOR_STATUS",
    "STATUS_FOR_STATE",
    "JobPayload",
    "JobResult",
    "drop_job_record",
    "evidence_problems",
    "job_from_invocation",
    "notify",
    "ledger_ref",
    "parse_ledger_ref",
    "read_job_record",
    "result_payload",
    "spine_invocation",
    "write_evidence",
    "write_job_record",
]

DEFAULT_MISSION = "autonomous_build_cycle"
"""The one mission a job may request for now: a full spine run of one task."""
MISSIONS = (DEFAULT_MISSION,)
REQUIRED_FIELDS = ("job_id", "requester")
OPTIONAL_FIELDS = ("task_id", "task", "repository", "mission", "budget", "callback")
JOB_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
JOBS_DIR = "jobs"
"""Folder under ``.lifeos/`` with one ``<job_id>.json`` record per submitted job."""
JOB_EVIDENCE_DIR = Path("artifacts") / "evidence" / "openclaw" / "jobs"
"""Folder under the main checkout's root with one evidence folder per job (LifeOS-owned:
the clean-tree check, the gate and worktree cleaning leave it alone)."""
MANIFEST_FILE = "manifest.json"
SEALED_FILES = ("job.json", "refs.json", "result.json")
"""The files of a job's evidence folder that its manifest seals."""

STATUS_FOR_STATE = {
    "LANDED": "done",
    "FAILED": "failed",
    "BLOCKED": "blocked",
    "PAUSED": "paused",
    "BUDGET_EXCEEDED": "budget_exceeded",
    "ESCALATED": "escalated",
    "RUNNING": "running",
}
"""Spine state -> OpenClaw job status."""
STATE_FOR_STATUS = {status: state for state, status in STATUS_FOR_STATE.items()}
APPROVAL_POINTS = ("before_build", "before_steward")

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _bad(message: str) -> InputError:
    return InputError(f"job payload: {message}", ReasonCode.INVALID_INPUT)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise _bad(f"field {name!r} must be a non-empty one-line string")
    return value


@dataclass(frozen=True)
class JobPayload:
    """An OpenClaw job, validated."""

    job_id: str
    task_id: str
    requester: str
    mission: str = DEFAULT_MISSION
    repository: str | None = None
    budget: dict[str, float] = field(default_factory=dict)
    """Caps for the job's run, each lowering lifeos.yaml's (``tokens``, ``cost_usd``,
    ``calls``)."""
    callback: str | None = None
    """An http(s) URL POSTed the job's result whenever its run's state changes."""
    task: dict[str, Any] | None = None
    """An inline task spec (the keys of a backlog entry), when the job gives one."""

    @classmethod
    def from_dict(cls, data: Any, repo_root: Path | None = None) -> JobPayload:
        """Validate a job payload; ``repo_root`` is the repository it must name, if any."""
        if not isinstance(data, Mapping):
            raise _bad("must be a JSON object")
        unknown = sorted(str(k) for k in data if k not in JOB_FIELDS)
        if unknown:
            raise _bad(f"unknown field {unknown[0]!r} (fields: {', '.join(JOB_FIELDS)})")
        for name in REQUIRED_FIELDS:
            if name not in data:
                raise _bad(f"missing field {name!r}")
        job_id = _text(data, "job_id")
        if not _JOB_ID.match(job_id) or ".." in job_id:
            raise _bad("field 'job_id' must be a slug: letters, digits, '.', '_', '-', at most 128")
        task = None
        if data.get("task") is not None:
            task = _inline_task(data["task"]).to_dict()
            if "task_id" in data and data["task_id"] != task["id"]:
                raise _bad("field 'task_id' differs from the inline task's 'id'")
            task_id = task["id"]
        elif "task_id" not in data:
            raise _bad("missing field 'task_id' (or an inline 'task')")
        else:
            task_id = _text(data, "task_id")
        requester = _text(data, "requester")
        mission = _text(data, "mission") if "mission" in data else DEFAULT_MISSION
        if mission not in MISSIONS:
            raise _bad(f"field 'mission': {mission!r} is not one of {', '.join(MISSIONS)}")
        repository = None
        if data.get("repository") is not None:
            repository = _text(data, "repository")
            if repo_root is not None and Path(repository).resolve() != repo_root.resolve():
                raise _bad(f"field 'repository': {repository} is not this repository")
        budget = _budget(data.get("budget"))
        callback = None
        if data.get("callback") is not None:
            callback = _text(data, "callback")
            if not callback.startswith(("http://", "https://")):
                raise _bad("field 'callback' must be an http(s) URL")
        return cls(job_id, task_id, requester, mission, repository, budget, callback, task)

    def inline_task(self) -> Any:
        """The inline task as a :class:`lifeos.backlog.Task` (None without one)."""
        return None if self.task is None else _inline_task(self.task)

    def to_dict(self) -> dict[str, Any]:
        """The payload as OpenClaw sends it (optional fields left out when unset)."""
        out: dict[str, Any] = {
            "job_id": self.job_id,
            "task_id": self.task_id,
            "requester": self.requester,
            "mission": self.mission,
        }
        if self.repository is not None:
            out["repository"] = self.repository
        if self.budget:
            out["budget"] = dict(self.budget)
        if self.callback is not None:
            out["callback"] = self.callback
        if self.task is not None:
            out["task"] = dict(self.task)
        return out


def _inline_task(spec: Any) -> Any:
    from lifeos.backlog import BacklogError, task_from_dict

    try:
        return task_from_dict(spec, "field 'task'")
    except BacklogError as exc:
        raise _bad(str(exc)) from None


def _budget(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad("field 'budget' must be an object")
    out: dict[str, float] = {}
    for key, amount in value.items():
        problem = job_cap_problem(key, amount)
        if problem is not None:
            raise _bad(f"field 'budget': {problem}")
        out[str(key)] = amount
    return out


def spine_invocation(job: JobPayload) -> dict[str, Any]:
    """The spine call a job asks for, a full build cycle: ``Spine.start(task_id,
    inline=..., budget=...)`` with the inline task (None for a backlog task) and the
    job's caps."""
    return {
        "call": "start",
        "task_id": job.task_id,
        "inline": job.task,
        "budget": dict(job.budget),
        "job": job.to_dict(),
    }


def job_from_invocation(invocation: Mapping[str, Any]) -> JobPayload:
    """The job behind a spine invocation (the inverse of :func:`spine_invocation`)."""
    job = JobPayload.from_dict(invocation["job"])
    if (
        invocation.get("call") != "start"
        or invocation.get("task_id") != job.task_id
        or invocation.get("inline") != job.task
        or invocation.get("budget") != job.budget
    ):
        raise _bad("the invocation does not match its job")
    return job


def ledger_ref(seq: int, leaf_hash: str) -> str:
    """``ledger:<seq>:<leaf_hash>``: one ledger entry, by position and hash."""
    return f"ledger:{seq}:{leaf_hash}"


def parse_ledger_ref(ref: str) -> tuple[int, str]:
    """``(seq, leaf_hash)`` of a :func:`ledger_ref`."""
    kind, seq, leaf = ref.split(":")
    if kind != "ledger" or not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", leaf):
        raise ValueError(f"not a ledger ref: {ref!r}")
    return int(seq), leaf


@dataclass(frozen=True)
class JobResult:
    """What OpenClaw is told about a job."""

    job_id: str
    status: str
    reason_codes: tuple[str, ...] = ()
    run_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    evidence: str | None = None
    """The job's evidence folder (relative to the repository root)."""
    spine_evidence: str | None = None
    """The run's signed evidence bundle (relative to the repository root)."""
    usage: dict[str, Any] = field(default_factory=dict)
    approval_needed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "approval_needed": self.approval_needed,
            "branch": self.branch,
            "commit": self.commit,
            "evidence": self.evidence,
            "job_id": self.job_id,
            "reason_codes": list(self.reason_codes),
            "run_id": self.run_id,
            "spine_evidence": self.spine_evidence,
            "status": self.status,
            "usage": dict(self.usage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        if data["status"] not in STATE_FOR_STATUS:
            raise _bad(f"unknown job status {data['status']!r}")
        return cls(
            job_id=data["job_id"],
            status=data["status"],
            reason_codes=tuple(data.get("reason_codes") or ()),
            run_id=data.get("run_id"),
            branch=data.get("branch"),
            commit=data.get("commit"),
            evidence=data.get("evidence"),
            spine_evidence=data.get("spine_evidence"),
            usage=dict(data.get("usage") or {}),
            approval_needed=data.get("approval_needed"),
        )

    @property
    def exit_code(self) -> int:
        """The spine's pinned exit code for the job's status."""
        from lifeos.spine.model import EXIT_FOR_STATE, SpineState

        return EXIT_FOR_STATE[SpineState(STATE_FOR_STATUS[self.status])]


def result_payload(
    job: JobPayload,
    run: Mapping[str, Any] | None,
    *,
    usage: Mapping[str, Any] | None = None,
    evidence: str | None = None,
    evidence_problem: str | None = None,
) -> JobResult:
    """The result of ``job`` from its spine run record (``None``: not started yet).

    A LANDED run is ``done`` only when ``evidence_problem`` is None (the job's evidence
    folder is complete and verifies); otherwise the job is ``failed`` with
    ``EVIDENCE_INCOMPLETE``.
    """
    if run is None:
        return JobResult(job.job_id, "running", evidence=evidence)
    config = run.get("config") or {}
    outputs = config.get("outputs") or {}
    steward = outputs.get("steward") or {}
    state = str(run["status"]).upper()
    status = STATUS_FOR_STATE.get(state, "running")
    reasons = [str(r) for r in config.get("reasons") or []]
    if status == "done" and evidence_problem is not None:
        status = "failed"
        reasons = [ReasonCode.EVIDENCE_INCOMPLETE.value]
    approval = None
    point = config.get("waiting_for")
    if state == "PAUSED" and point in APPROVAL_POINTS:
        run_id = run["run_id"]
        approval = {
            "point": point,
            "approve": f"lifeos spine approve {run_id} --note WHY",
            "reject": f"lifeos spine reject {run_id} --note WHY",
        }
    return JobResult(
        job_id=job.job_id,
        status=status,
        reason_codes=tuple(reasons),
        run_id=run["run_id"],
        branch=config.get("branch"),
        commit=steward.get("commit") or (outputs.get("build") or {}).get("commit"),
        evidence=evidence,
        spine_evidence=steward.get("evidence"),
        usage=dict(usage or {"cost_usd": run.get("spent_cost_usd", 0.0)}),
        approval_needed=approval,
    )


# -- job records and evidence folders ------------------------------------------------------


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def write_job_record(lifeos_dir: Path, record: Mapping[str, Any]) -> None:
    """Keep ``.lifeos/jobs/<job_id>.json`` (atomically)."""
    folder = lifeos_dir / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{record['job']['job_id']}.json", _dump(dict(record)))


def drop_job_record(lifeos_dir: Path, job_id: str) -> None:
    """Forget job ``job_id`` (a submit that started nothing): it can be submitted again."""
    (lifeos_dir / JOBS_DIR / f"{job_id}.json").unlink(missing_ok=True)


def read_job_record(lifeos_dir: Path, job_id: str) -> dict[str, Any] | None:
    """The record of job ``job_id``, or None when there is no such job."""
    if not _JOB_ID.match(job_id) or ".." in job_id:
        raise InputError(f"{job_id!r} is not a job id", ReasonCode.INVALID_INPUT)
    path = lifeos_dir / JOBS_DIR / f"{job_id}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_evidence(
    folder: Path,
    job: JobPayload,
    result: JobResult,
    packet_refs: Iterable[Mapping[str, Any]],
    ledger_refs: Iterable[str],
) -> None:
    """Write a job's evidence folder: job, result, refs, and the manifest sealing them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "job.json": _dump(job.to_dict()),
        "refs.json": _dump(
            {
                "ledger": list(ledger_refs),
                "packets": [dict(p) for p in packet_refs],
                "spine_evidence": result.spine_evidence,
            }
        ),
        "result.json": _dump(result.to_dict()),
    }
    for name, data in files.items():
        atomic_write(folder / name, data)
    manifest = {"files": {name: _sha256(data) for name, data in sorted(files.items())}}
    atomic_write(folder / MANIFEST_FILE, canonical_json(manifest) + b"\n")


def evidence_problems(
    folder: Path,
    *,
    known_ledger_refs: Iterable[str] | None = None,
    repo_root: Path | None = None,
) -> list[str]:
    """Why a landed job's evidence folder is incomplete or does not verify ([] if sound).

    The manifest must seal exactly :data:`SEALED_FILES` with matching hashes; the refs
    must name the run's build and review packets and at least one ledger entry (each
    one of ``known_ledger_refs`` when given) and the run's evidence bundle (present
    under ``repo_root`` when given).
    """
    if not folder.is_dir():
        return [f"no evidence folder {folder}"]
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_bytes())
        sealed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{MANIFEST_FILE} is missing or unreadable"]
    problems: list[str] = []
    if not isinstance(sealed, dict) or sorted(sealed) != sorted(SEALED_FILES):
        problems.append(f"{MANIFEST_FILE} does not seal exactly {', '.join(SEALED_FILES)}")
        return problems
    extra = sorted(p.name for p in folder.iterdir() if p.name not in {*SEALED_FILES, MANIFEST_FILE})
    if extra:
        problems.append(f"unsealed file(s) in the evidence folder: {', '.join(extra)}")
    for name in SEALED_FILES:
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif _sha256(path.read_bytes()) != sealed[name]:
            problems.append(f"{name} does not match its hash in {MANIFEST_FILE}")
    if problems:
        return problems
    refs = json.loads((folder / "refs.json").read_bytes())
    kinds = {p.get("kind") for p in refs.get("packets") or []}
    for kind in ("BUILD_PACKET", "REVIEW_PACKET"):
        if kind not in kinds:
            problems.append(f"refs.json names no {kind}")
    ledger = list(refs.get("ledger") or [])
    if not ledger:
        problems.append("refs.json names no ledger entry")
    known = None if known_ledger_refs is None else set(known_ledger_refs)
    for ref in ledger:
        try:
            parse_ledger_ref(ref)
        except ValueError:
            problems.append(f"refs.json: {ref!r} is not a ledger ref")
            continue
        if known is not None and ref not in known:
            problems.append(f"refs.json: {ref} is not in the ledger")
    spine_evidence = refs.get("spine_evidence")
    if not spine_evidence:
        problems.append("refs.json names no spine evidence bundle")
    elif repo_root is not None and not (repo_root / spine_evidence).is_dir():
        problems.append(f"the spine evidence bundle {spine_evidence} is missing")
    return problems


# -- a job against a repository's store ----------------------------------------------------


def _find_run(store: Any, record: Mapping[str, Any]) -> Any:
    """The job's run: by id, or (a submit that stopped before recording it) the newest
    spine run of its task started since the job was submitted."""
    if record.get("run_id"):
        return store.get_run(record["run_id"])
    since = record.get("submitted_at") or ""
    for run in store.list_runs(limit=1000):
        if (
            run["kind"] == "spine"
            and run["name"] == record["job"]["task_id"]
            and run["created_at"] >= since
        ):
            return run
    return None


Poster = Callable[[str, Mapping[str, Any]], int]
"""POSTs a JSON body to a URL and returns the HTTP status (raises OSError-like errors
when the URL cannot be reached)."""


def notify(
    record: dict[str, Any], result: JobResult, state: str, post: Poster, stop: str | None = None
) -> bool:
    """POST ``result`` to the job's callback once per stop of its run (``stop`` tells one
    stop from another — a second pause, a failure after a resume — and defaults to the
    state); whether the job record changed. A delivery that fails is kept in the record
    (``callback_error``) and tried again the next time the job is polled."""
    url = record["job"].get("callback")
    stop = stop or state
    if not url or state == "RUNNING" or record.get("notified") == stop:
        return False
    try:
        status = post(url, result.to_dict())
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except Exception as exc:  # any failure to deliver is recorded, never raised
        error = f"{type(exc).__name__}: {exc}"
    if error is None:
        record["notified"], record["notified_state"] = stop, state
        record.pop("callback_error", None)
    else:
        record["callback_error"] = error
    return True


def job_result(
    main_root: Path, store: Any, record: dict[str, Any], post: Poster | None = None
) -> JobResult:
    """The job's result now, its evidence folder written when its run changed state and
    its callback (with ``post``) told.

    The folder is written once per stop of the run (its state and the time it was
    recorded, kept as ``evidence_state`` in the job record), never repaired: a tampered
    folder stays tampered and a landed job with it is reported ``failed`` with
    ``EVIDENCE_INCOMPLETE``.
    """
    job = JobPayload.from_dict(record["job"])
    run = _find_run(store, record)
    lifeos_dir = main_root / ".lifeos"
    folder = main_root / JOB_EVIDENCE_DIR / job.job_id
    rel = folder.relative_to(main_root).as_posix()
    if run is None:
        return result_payload(job, None, evidence=None)
    run_id = run["run_id"]
    tokens = sum(int(t.get("consumed_tokens") or 0) for t in store.list_tasks(run_id))
    usage = {"cost_usd": run["spent_cost_usd"], "tokens": tokens}
    rows = store.ledger_rows_for_run(run_id)
    ledger = [ledger_ref(r["seq"], r["leaf_hash"]) for r in rows]
    state = str(run["status"]).upper()
    stop = state if state == "RUNNING" else f"{state}@{run['updated_at']}"
    if record.get("evidence_state") != stop or record.get("run_id") != run_id:
        packets = [
            {
                "artifact_id": a["artifact_id"],
                "checksum": a["checksum"],
                "file_path": a["file_path"],
                "kind": a["kind"],
                "version": a["version_number"],
            }
            for a in store.list_artifacts(run_id)
            if a["kind"] in ("BUILD_PACKET", "REVIEW_PACKET")
        ]
        sound = result_payload(job, run, usage=usage, evidence=rel)
        write_evidence(folder, job, sound, packets, ledger)
        record = {**record, "run_id": run_id, "evidence_state": stop}
        write_job_record(lifeos_dir, record)
    problem = None
    if state == "LANDED":
        problems = evidence_problems(folder, known_ledger_refs=ledger, repo_root=main_root)
        problem = problems[0] if problems else None
    result = result_payload(job, run, usage=usage, evidence=rel, evidence_problem=problem)
    if post is not None and notify(record, result, state, post, stop):
        write_job_record(lifeos_dir, record)
    return result
