"""Load a harness test file (YAML) into a :class:`Suite`, refusing anything off.

Format::

    suite: smoke                      # the suite's name
    scenarios:
      - name: echo round trip
        state: {}                     # optional: the first run's initial state
        runs:
          - mission: echo             # a registered mission ...
            params: {message: hi}
            expect:
              - {path: final_state.mission_result.outputs.message, eq: hi}
          - workflow:                 # ... or an inline workflow
              id: wf-sum
              steps:
                - {id: add, kind: runtime, payload: {operation: calc, path: total,
                                                     op: add, args: [1, 2]}}
            state: {}                 # optional: replaces the carried-over state
            decisions: {confirm: approve}
            expect:
              - {path: final_state.total, eq: 3}

Every workflow is built and checked (limits, step kinds, operations, payloads)
before anything runs; an error names the file, the line and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifeos.engine import Decision, Orchestrator, StepSpec, WorkflowDefinition
from lifeos.errors import HarnessFileError, LifeOSError
from lifeos.harness.expectations import OPERATORS, Expectation
from lifeos.harness.suite import MissionRun, Scenario, Suite
from lifeos.yamlio import YamlDocument, load_yaml_file, validation_message

__all__ = ["load_suite", "load_suite_file"]


def _models() -> Any:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, model_validator

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class ExpectModel(Strict):
        path: str
        id: str | None = None
        eq: Any = None
        ne: Any = None
        exists: bool | None = None
        contains: Any = None
        lt: float | str | None = None
        gt: float | str | None = None

        @model_validator(mode="after")
        def one_operator(self) -> ExpectModel:
            ops = [k for k in OPERATORS if k in self.model_fields_set]
            if len(ops) != 1:
                raise ValueError(f"give exactly one of {', '.join(OPERATORS)}")
            return self

    class StepModel(Strict):
        id: str
        kind: str
        payload: dict[str, Any] = Field(default_factory=dict)

    class WorkflowModel(Strict):
        id: str
        steps: list[StepModel]
        metadata: dict[str, Any] = Field(default_factory=dict)

    class RunModel(Strict):
        name: str | None = None
        mission: str | None = None
        workflow: WorkflowModel | None = None
        params: dict[str, Any] = Field(default_factory=dict)
        state: dict[str, Any] | None = None
        decisions: dict[str, Literal["approve", "reject"]] = Field(default_factory=dict)
        expect: list[ExpectModel] = Field(default_factory=list)

        @model_validator(mode="after")
        def one_target(self) -> RunModel:
            if (self.mission is None) == (self.workflow is None):
                raise ValueError("give exactly one of 'mission' or 'workflow'")
            if self.workflow is not None and self.params:
                raise ValueError("'params' goes with 'mission', not 'workflow'")
            return self

    class ScenarioModel(Strict):
        name: str
        state: dict[str, Any] = Field(default_factory=dict)
        runs: list[RunModel] = Field(min_length=1)

    class SuiteModel(Strict):
        suite: str
        description: str | None = None
        scenarios: list[ScenarioModel] = Field(min_length=1)

    return SuiteModel


def load_suite(doc: YamlDocument, base_dir: Path) -> Suite:
    """Validate a parsed document and build its suite; nothing runs."""
    from pydantic import ValidationError

    if not isinstance(doc.data, dict):
        raise HarnessFileError(f"{doc.source}: the top level must be a mapping with 'suite'")
    try:
        model = _models().model_validate(doc.data)
    except ValidationError as exc:
        raise HarnessFileError(validation_message(exc, doc)) from None

    from lifeos.registry import MISSION_REGISTRY, list_mission_types

    checker = Orchestrator()
    scenarios = []
    for si, sc in enumerate(model.scenarios):
        runs = []
        for ri, run in enumerate(sc.runs):
            loc: tuple[str | int, ...] = ("scenarios", si, "runs", ri)
            line = doc.line_of(loc)
            where = f"{doc.source}:{line}: scenarios[{si}].runs[{ri}]"
            try:
                if run.mission is not None:
                    builder = MISSION_REGISTRY.get(run.mission)
                    if builder is None:
                        raise HarnessFileError(
                            f"unknown mission '{run.mission}' "
                            f"(registered: {', '.join(list_mission_types())})"
                        )
                    workflow = builder(run.params)
                    label = run.name or f"mission {run.mission}"
                else:
                    assert run.workflow is not None
                    workflow = WorkflowDefinition(
                        id=run.workflow.id,
                        steps=[StepSpec(s.id, s.kind, s.payload) for s in run.workflow.steps],
                        metadata=run.workflow.metadata,
                    )
                    label = run.name or f"workflow {run.workflow.id}"
                checker.validate(workflow)
                expect = [
                    Expectation(
                        path=e.path,
                        op=op,
                        value=getattr(e, op),
                        id=e.id,
                    )
                    for e in run.expect
                    for op in OPERATORS
                    if op in e.model_fields_set
                ]
            except LifeOSError as exc:
                raise HarnessFileError(f"{where}: {exc.message}", exc.reason) from None
            except ValueError as exc:
                raise HarnessFileError(f"{where}: {exc}") from None
            runs.append(
                MissionRun(
                    workflow=workflow,
                    label=label,
                    state=run.state,
                    decisions={k: Decision(v) for k, v in run.decisions.items()},
                    expect=expect,
                    line=line,
                )
            )
        scenarios.append(Scenario(name=sc.name, runs=runs, state=sc.state))
    return Suite(name=model.suite, scenarios=scenarios, base_dir=base_dir)


def load_suite_file(path: Path) -> Suite:
    """Read, validate and build the suite in ``path``."""
    doc = load_yaml_file(path, HarnessFileError)
    return load_suite(doc, path.resolve().parent)
