"""The backlog: the user's tasks, read from a YAML file and never written by LifeOS.

The file (``config/backlog.yaml`` by default, or lifeos.yaml's ``backlog.path``) holds
either a list of tasks or a mapping ``{tasks: [...]}``. Each task::

    - id: T-12                 # required; a slug: [A-Za-z0-9][A-Za-z0-9._-]*
      title: Add a CSV export  # required, non-empty
      description: ...         # optional, default ""
      priority: P1             # P0..P3, default P3
      status: TODO             # TODO | IN_PROGRESS | DONE | BLOCKED, default TODO
      acceptance: [make test]  # commands that must pass, default []
      context: [src/export/]   # safe repository-relative paths, default []
      approvals: [before_build]  # before_build | before_steward, default []

Every problem is one :class:`BacklogError` line naming the file, the line and the
field, with reason ``INVALID_INPUT`` (exit 2): the backlog is the user's input, like a
``--params`` value, not LifeOS's own configuration (``CONFIG_INVALID`` stays with
lifeos.yaml). A task id that is not in the backlog is :class:`TaskNotFound`
(``TASK_NOT_FOUND``, exit 2).

:func:`find_contradictions` compares a backlog with the recorded spine runs (store runs
of kind ``spine`` named after their task) and reports what does not add up; it does
no I/O of its own — evidence is checked through the callable it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from lifeos.errors import InputError, ReasonCode

if TYPE_CHECKING:
    from lifeos.yamlio import YamlDocument

__all__ = [
    "APPROVALS",
    "CONTRADICTION_CODES",
    "EVIDENCE_REQUIRED",
    "PRIORITIES",
    "SPINE_STATUSES",
    "STATUSES",
    "TASK_ID",
    "Backlog",
    "BacklogError",
    "Contradiction",
    "EvidenceCheck",
    "EvidenceFailure",
    "Task",
    "TaskNotFound",
    "find_contradictions",
    "load_backlog",
    "parse_backlog",
    "task_from_dict",
]

PRIORITIES: Final = ("P0", "P1", "P2", "P3")
"""Task priorities, most urgent first."""
STATUSES: Final = ("TODO", "IN_PROGRESS", "DONE", "BLOCKED")
"""Task statuses as the backlog file writes them."""
APPROVALS: Final = ("before_build", "before_steward")
"""Human approvals a task may ask for."""
SPINE_STATUSES: Final = (
    "LANDED",
    "BLOCKED",
    "FAILED",
    "PAUSED",
    "BUDGET_EXCEEDED",
    "ESCALATED",
    "RUNNING",
)
"""The statuses of a spine run (compared case-insensitively: the store starts runs as
``running``)."""
EVIDENCE_REQUIRED: Final = frozenset({"LANDED"})
"""Spine statuses after which a run must have recorded its evidence folder. Evidence is
written by the steward phase, so a run that stopped earlier (BLOCKED by the gate, FAILED,
PAUSED, ...) or is still going may have none; when it names a folder, that folder must
verify all the same."""
CONTRADICTION_CODES: Final = (
    "DONE_WITHOUT_EVIDENCE",
    "LANDED_NOT_DONE",
    "EVIDENCE_MISSING",
    "EVIDENCE_INVALID",
    "WIP_EXCEEDED",
)
"""The codes :func:`find_contradictions` reports (stable strings, not reason codes)."""

TASK_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A task id: it becomes part of a git branch name, so a short slug."""

_TASK_KEYS: Final = (
    "id",
    "title",
    "description",
    "priority",
    "status",
    "acceptance",
    "context",
    "approvals",
)
_PRIORITY_RANK: Final = {p: i for i, p in enumerate(PRIORITIES)}

Priority = Literal["P0", "P1", "P2", "P3"]
Status = Literal["TODO", "IN_PROGRESS", "DONE", "BLOCKED"]
Approval = Literal["before_build", "before_steward"]


class BacklogError(InputError):
    """A backlog file that is missing, does not parse or does not validate (exit 2)."""

    default_reason = ReasonCode.INVALID_INPUT


class TaskNotFound(BacklogError):
    """A task id that is not in the backlog (exit 2)."""

    default_reason = ReasonCode.TASK_NOT_FOUND


@dataclass(frozen=True, slots=True)
class Task:
    """One backlog task, as the file gives it."""

    id: str
    title: str
    description: str = ""
    priority: Priority = "P3"
    status: Status = "TODO"
    acceptance: tuple[str, ...] = ()
    """Commands that must pass before the task counts as built."""
    context: tuple[str, ...] = ()
    """Repository-relative paths the agent should read first (a folder may end in ``/``)."""
    approvals: tuple[Approval, ...] = ()
    """Where a human must approve: ``before_build``, ``before_steward``."""
    line: int | None = field(default=None, compare=False)
    """The line the task starts on, for messages (not part of the task's identity)."""

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON (without its line)."""
        return {
            "acceptance": list(self.acceptance),
            "approvals": list(self.approvals),
            "context": list(self.context),
            "description": self.description,
            "id": self.id,
            "priority": self.priority,
            "status": self.status,
            "title": self.title,
        }


@dataclass(frozen=True, slots=True)
class Backlog:
    """The tasks of one backlog file, in file order."""

    tasks: tuple[Task, ...]
    source: str = "(backlog)"
    """The file the tasks came from, for messages."""

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return any(t.id == task_id for t in self.tasks)

    def get(self, task_id: str) -> Task:
        """The task with this id.

        Raises:
            TaskNotFound: no task has this id (``TASK_NOT_FOUND``, exit 2).
        """
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise TaskNotFound(f"no task {task_id!r} in the backlog {self.source}")

    def next_task(self) -> Task | None:
        """The TODO task to work on next: highest priority (P0 first), then file order."""
        todo = [t for t in self.tasks if t.status == "TODO"]
        if not todo:
            return None
        return min(todo, key=lambda t: _PRIORITY_RANK[t.priority])  # min is stable

    def by_status(self) -> dict[str, int]:
        """How many tasks have each status (every status listed, zero included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for task in self.tasks:
            counts[task.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """``{"tasks": [...], "counts": {...}}`` (what ``lifeos backlog list --json`` prints)."""
        return {"counts": self.by_status(), "tasks": [t.to_dict() for t in self.tasks]}


# --- reading -------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def load_backlog(path: Path) -> Backlog:
    """Read and validate the backlog file at ``path`` (never writes it).

    Raises:
        BacklogError: no file at ``path`` (``no backlog at PATH``), invalid YAML, or a
            task that does not validate — one line naming the file, line and field.
    """
    from lifeos.yamlio import load_yaml_file

    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise BacklogError(f"no backlog at {path} ({what})")
    return parse_backlog(load_yaml_file(path, BacklogError))


def parse_backlog(doc: YamlDocument) -> Backlog:
    """Validate a parsed backlog (a :class:`lifeos.yamlio.YamlDocument`).

    Raises:
        BacklogError: as :func:`load_backlog`.
    """
    data = doc.data
    items_loc: tuple[str | int, ...] = ()
    if isinstance(data, dict):
        for key in data:
            if key != "tasks":
                line = doc.line_of((key,))
                where = f"{doc.source}:{line}" if line else doc.source
                raise BacklogError(
                    f"{where}: unknown top-level key '{key}' (a backlog is a list of tasks "
                    "or a mapping with 'tasks')"
                )
        data = data.get("tasks")
        items_loc = ("tasks",)
    if data is None:
        return Backlog((), doc.source)
    if not isinstance(data, list):
        line = doc.line_of(items_loc)
        where = f"{doc.source}:{line}" if line else doc.source
        raise BacklogError(f"{where}: the backlog must be a list of tasks")
    tasks: list[Task] = []
    first_line: dict[str, int | None] = {}
    for index, item in enumerate(data):
        loc = (*items_loc, index)
        label = f"task #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            label = f"task '{item['id']}'"
        try:
            task = _task(item, doc.line_of(loc))
            if task.id in first_line:
                first = first_line[task.id]
                raise _Invalid(
                    ("id",),
                    "duplicate id" + (f" (first used on line {first})" if first else ""),
                )
        except _Invalid as exc:
            line = doc.line_of((*loc, *exc.loc))
            where = f"{doc.source}:{line}" if line else doc.source
            named = f" key '{'.'.join(str(p) for p in exc.loc)}':" if exc.loc else ""
            raise BacklogError(f"{where}: {label}:{named} {exc.message}") from None
        first_line[task.id] = task.line
        tasks.append(task)
    return Backlog(tuple(tasks), doc.source)


def _text(item: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = item.get(key)
    if value is None:
        if required:
            raise _Invalid((key,), "required key is missing")
        return ""
    if not isinstance(value, str):
        raise _Invalid((key,), f"should be a string, not {value!r}")
    if required and not value.strip():
        raise _Invalid((key,), "should not be empty")
    return value


def _choice(item: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    value = item.get(key, default)
    if value not in choices or not isinstance(value, str):
        raise _Invalid((key,), f"should be one of {', '.join(choices)}, not {value!r}")
    return value


def _strings(item: Mapping[str, Any], key: str) -> list[str]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid((key,), "should be a list")
    for i, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise _Invalid((key, i), f"should be a non-empty string, not {entry!r}")
    return value


def _task_id(value: Any) -> str:
    if value is None:
        raise _Invalid(("id",), "required key is missing")
    if not isinstance(value, str):
        raise _Invalid(("id",), f"should be a string, not {value!r} (quote it)")
    if not TASK_ID.fullmatch(value) or ".." in value or value.endswith((".", ".lock")):
        raise _Invalid(
            ("id",),
            f"{value!r} is not a task id: letters, digits, '.', '_' and '-', starting with "
            "a letter or digit, at most 100 characters, no '..' and no trailing '.' or "
            "'.lock' (it becomes part of a git branch name)",
        )
    return value


def task_from_dict(data: Any, source: str = "task") -> Task:
    """One task given inline (an OpenClaw job's ``task``), validated like a backlog
    entry; it must be TODO.

    Raises:
        BacklogError: naming the key and what is wrong with it.
    """
    try:
        task = _task(data, None)
        if task.status != "TODO":
            raise _Invalid(("status",), f"an inline task is TODO, not {task.status}")
    except _Invalid as exc:
        named = f" key '{'.'.join(str(p) for p in exc.loc)}':" if exc.loc else ""
        raise BacklogError(f"{source}:{named} {exc.message}") from None
    return task


def _task(item: Any, line: int | None) -> Task:
    from lifeos.policy.paths import unsafe_reason

    if not isinstance(item, dict):
        raise _Invalid((), f"should be a mapping of task keys (id, title, ...), not {item!r}")
    for key in item:
        if key not in _TASK_KEYS:
            raise _Invalid((str(key),), f"unknown key (allowed: {', '.join(_TASK_KEYS)})")
    task_id = _task_id(item.get("id"))
    title = _text(item, "title", required=True)
    description = _text(item, "description", required=False)
    priority = _choice(item, "priority", PRIORITIES, "P3")
    status = _choice(item, "status", STATUSES, "TODO")
    acceptance = _strings(item, "acceptance")
    context = _strings(item, "context")
    for i, path in enumerate(context):
        bare = path[:-1] if path.endswith("/") and len(path) > 1 else path
        reason = unsafe_reason(bare)
        if reason is not None:
            raise _Invalid(("context", i), f"unsafe path {path!r}: {reason}")
    approvals = _strings(item, "approvals")
    for i, approval in enumerate(approvals):
        if approval not in APPROVALS:
            raise _Invalid(
                ("approvals", i), f"should be one of {', '.join(APPROVALS)}, not {approval!r}"
            )
        if approval in approvals[:i]:
            raise _Invalid(("approvals", i), f"{approval!r} is listed twice")
    return Task(
        id=task_id,
        title=title,
        description=description,
        priority=priority,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        acceptance=tuple(acceptance),
        context=tuple(context),
        approvals=tuple(approvals),  # type: ignore[arg-type]
        line=line,
    )


# --- contradictions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvidenceFailure:
    """Why a run's evidence does not count: missing, or present but not verifying."""

    code: Literal["EVIDENCE_MISSING", "EVIDENCE_INVALID"]
    detail: str


EvidenceCheck = Callable[[str, str], EvidenceFailure | None]
"""``check(run_id, evidence_path)``: None when the bundle at ``evidence_path`` (relative
to the main repository root, from the run's ``config["evidence"]``) verifies as the
evidence of ``run_id``, else why not."""


@dataclass(frozen=True, slots=True)
class Contradiction:
    """One thing the backlog and the recorded runs disagree on."""

    code: str
    """One of :data:`CONTRADICTION_CODES`."""
    message: str
    task_id: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The contradiction as JSON."""
        return {
            "code": self.code,
            "message": self.message,
            "run_id": self.run_id,
            "task_id": self.task_id,
        }


def _evidence_path(config: Any) -> Any:
    """The evidence folder a spine run's config names (None when it names none)."""
    if not isinstance(config, Mapping):
        return None
    if "evidence" in config:
        return config["evidence"]
    outputs = config.get("outputs")
    steward = outputs.get("steward") if isinstance(outputs, Mapping) else None
    return steward.get("evidence") if isinstance(steward, Mapping) else None


def find_contradictions(
    backlog: Backlog,
    runs: Iterable[Mapping[str, Any]],
    check_evidence: EvidenceCheck,
    *,
    max_wip: int,
) -> list[Contradiction]:
    """What the backlog and the recorded spine runs disagree on.

    Only runs with ``kind == "spine"`` count; their ``name`` is the task id, their
    ``config["evidence"]`` (or, as the spine records it per phase,
    ``config["outputs"]["steward"]["evidence"]``) the evidence folder relative to the
    main repository root. ``check_evidence`` is called once per spine run that names an
    evidence folder.

    Reported in this order, the same whatever order ``runs`` come in — first, for each
    spine run (sorted by task id, then run id):

    * ``EVIDENCE_MISSING`` / ``EVIDENCE_INVALID``: the evidence folder it names is
      missing or does not verify; a LANDED run that names no folder is
      ``EVIDENCE_MISSING`` too;
    * ``LANDED_NOT_DONE``: it LANDED but its task is not DONE (or not in the backlog,
      unless it was given inline — ``config["inline"]`` — as an OpenClaw job can);

    then:

    * ``DONE_WITHOUT_EVIDENCE``: a DONE task with no LANDED spine run whose evidence
      verifies (tasks in file order);
    * ``WIP_EXCEEDED``: more IN_PROGRESS tasks than ``max_wip``.
    """
    spine = sorted(
        (r for r in runs if r.get("kind") == "spine"),
        key=lambda r: (str(r.get("name")), str(r.get("run_id"))),
    )
    statuses = {t.id: t.status for t in backlog.tasks}
    out: list[Contradiction] = []
    verified_landed: set[str] = set()
    for run in spine:
        run_id = str(run.get("run_id"))
        task_id = str(run.get("name"))
        status = str(run.get("status", "")).upper()
        evidence = _evidence_path(run.get("config"))
        failure: EvidenceFailure | None = None
        if isinstance(evidence, str) and evidence:
            failure = check_evidence(run_id, evidence)
        elif evidence is not None:
            failure = EvidenceFailure(
                "EVIDENCE_INVALID", f"the recorded evidence folder {evidence!r} is not a path"
            )
        elif status in EVIDENCE_REQUIRED:
            failure = EvidenceFailure("EVIDENCE_MISSING", "the run recorded no evidence folder")
        if failure is not None:
            out.append(
                Contradiction(
                    failure.code,
                    f"spine run {run_id} ({status}) for task {task_id!r}: {failure.detail}",
                    task_id,
                    run_id,
                )
            )
        if status != "LANDED":
            continue
        if failure is None:
            verified_landed.add(task_id)
        task_status = statuses.get(task_id)
        config = run.get("config")
        inline = isinstance(config, Mapping) and config.get("inline") is True
        if task_status != "DONE" and not (inline and task_status is None):
            state = "is not in the backlog" if task_status is None else f"is {task_status}"
            out.append(
                Contradiction(
                    "LANDED_NOT_DONE",
                    f"spine run {run_id} LANDED task {task_id!r}, which {state} in the backlog",
                    task_id,
                    run_id,
                )
            )
    for task in backlog.tasks:
        if task.status == "DONE" and task.id not in verified_landed:
            out.append(
                Contradiction(
                    "DONE_WITHOUT_EVIDENCE",
                    f"task {task.id!r} is DONE but no LANDED spine run with verified "
                    "evidence is recorded for it",
                    task.id,
                )
            )
    wip = [t.id for t in backlog.tasks if t.status == "IN_PROGRESS"]
    if len(wip) > max_wip:
        out.append(
            Contradiction(
                "WIP_EXCEEDED",
                f"{len(wip)} tasks are IN_PROGRESS ({', '.join(wip)}), more than "
                f"backlog.max_wip={max_wip}",
            )
        )
    return out
