"""Operations: the registry of handlers that runtime steps name.

Each operation checks its payload before the run starts (``validate``) and then
does its work on the state (``run``), returning None on success or a
:class:`~lifeos.engine.StepFailure`. An operation the registry does not know is
refused before execution with ``UNKNOWN_OPERATION``.

Built in: ``noop``, ``fail``, ``set``, ``append``, ``calc`` (state mutations on
dotted paths), ``mission`` (runs a Tier-3 mission), ``llm_call`` and
``tool_invoke`` (through the injected services), and the daily-loop and
test-report steps the builder's templates use.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from lifeos.canonical import copy_json
from lifeos.engine import StepEnv, StepFailure, StepSpec
from lifeos.errors import (
    EnvelopeViolation,
    InputError,
    LifeOSError,
    ReasonCode,
    WorkflowDefinitionError,
)
from lifeos.statepath import MISSING, StatePathError, get_path, parse_path, set_path

__all__ = ["Operation", "OperationRegistry", "default_registry"]


@functools.lru_cache(maxsize=1024)
def _parse_text(path: str) -> tuple[str, ...]:
    return parse_path(path)


def _parts(path: object) -> tuple[str, ...]:
    """``parse_path``, remembered for string paths (their parts are an immutable tuple).

    Steps name the same few paths in validation and on every run; an invalid path
    raises each time, as ``parse_path`` does.
    """
    return _parse_text(path) if type(path) is str else parse_path(path)


def _bad(step: StepSpec, message: str) -> WorkflowDefinitionError:
    return WorkflowDefinitionError(f"Step '{step.id}' ({step.payload.get('operation')}): {message}")


class Operation:
    """Base class: an operation validates its payload, then runs on the state."""

    name: ClassVar[str]
    fields: ClassVar[frozenset[str]] = frozenset()
    """Payload keys this operation accepts besides ``operation`` and ``description``."""

    def validate(self, step: StepSpec) -> None:
        """Refuse a payload this operation cannot run (unknown keys, wrong types)."""
        unknown = set(step.payload) - self.fields - {"operation", "description"}
        if unknown:
            raise _bad(step, f"unknown payload key(s) {sorted(unknown)}")

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        """Do the step's work on ``state``."""
        raise NotImplementedError


class OperationRegistry:
    """Operations by name; the engine dispatches through it."""

    def __init__(self, operations: Mapping[str, Operation] | None = None) -> None:
        self._ops: dict[str, Operation] = dict(operations or {})

    def register(self, op: Operation) -> None:
        """Add ``op`` under its name; a name is registered once."""
        if op.name in self._ops:
            raise ValueError(f"operation '{op.name}' is already registered")
        self._ops[op.name] = op

    def names(self) -> list[str]:
        """Return the operation names, sorted."""
        return sorted(self._ops)

    def copy(self) -> OperationRegistry:
        """Return a registry with the same operations, to extend without side effects."""
        return OperationRegistry(self._ops)

    def validate(self, step: StepSpec) -> None:
        """Check that the step names a known operation with a valid payload."""
        name = step.payload.get("operation", "noop")
        op = self._ops.get(name) if isinstance(name, str) else None
        if op is None:
            raise EnvelopeViolation(
                f"Step '{step.id}' names unknown operation {name!r}. Known: {self.names()}",
                ReasonCode.UNKNOWN_OPERATION,
            )
        try:
            op.validate(step)
        except WorkflowDefinitionError:
            raise
        except InputError as exc:
            raise WorkflowDefinitionError(
                f"Step '{step.id}' ({name}): {exc.message}", exc.reason
            ) from exc

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        """Run the step's operation; state errors become failures, not crashes."""
        op = self._ops[step.payload.get("operation", "noop")]
        try:
            return op.run(step, state, env)
        except LifeOSError as exc:
            return StepFailure(exc.reason, f"Step '{step.id}': {exc.message}")


# -- simple operations ------------------------------------------------------


class Noop(Operation):
    """Does nothing; the default when a runtime step names no operation."""

    name = "noop"
    fields = frozenset({"params"})

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        return None


class Fail(Operation):
    """Stops the run, failed, with the payload's ``reason``."""

    name = "fail"
    fields = frozenset({"reason"})

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        reason = step.payload.get("reason", "unspecified")
        return StepFailure(ReasonCode.STEP_FAILED, f"Step '{step.id}' failed: {reason}")


def _check_source(op: Operation, step: StepSpec) -> None:
    Operation.validate(op, step)
    _parts(step.payload.get("path"))
    has_value, has_from = "value" in step.payload, "from" in step.payload
    if has_value == has_from:
        raise _bad(step, "give exactly one of 'value' or 'from'")
    if has_from:
        _parts(step.payload["from"])


def _source(step: StepSpec, state: dict[str, Any]) -> Any:
    if "from" in step.payload:
        value = get_path(state, _parts(step.payload["from"]))
        if value is MISSING:
            raise StatePathError(f"state path '{step.payload['from']}' does not exist")
        return copy_json(value)
    return copy_json(step.payload["value"])


class Set(Operation):
    """Sets ``path`` to ``value`` (or to the value at ``from``)."""

    name = "set"
    fields = frozenset({"path", "value", "from"})

    def validate(self, step: StepSpec) -> None:
        _check_source(self, step)

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        set_path(state, _parts(step.payload["path"]), _source(step, state))
        return None


class Append(Operation):
    """Appends ``value`` (or the value at ``from``) to the list at ``path``, creating it."""

    name = "append"
    fields = frozenset({"path", "value", "from"})

    def validate(self, step: StepSpec) -> None:
        _check_source(self, step)

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        parts = _parts(step.payload["path"])
        target = get_path(state, parts)
        value = _source(step, state)
        if target is MISSING:
            set_path(state, parts, [value])
        elif isinstance(target, list):
            target.append(value)
        else:
            raise InputError(
                f"append needs a list at '{step.payload['path']}', found {type(target).__name__}",
                ReasonCode.STATE_TYPE_INVALID,
            )
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_CALC: dict[str, tuple[int, Callable[[list[float]], float]]] = {
    "add": (1, lambda xs: math.fsum(xs) if any(isinstance(x, float) for x in xs) else sum(xs)),
    "sub": (2, lambda xs: xs[0] - sum(xs[1:])),
    "mul": (1, math.prod),
    "div": (2, lambda xs: _divide(xs)),
    "min": (1, min),
    "max": (1, max),
}


def _divide(xs: list[float]) -> float:
    result = xs[0]
    for x in xs[1:]:
        if x == 0:
            raise InputError("division by zero", ReasonCode.STATE_TYPE_INVALID)
        result = result / x
    return result


class Calc(Operation):
    """Stores ``op`` (add, sub, mul, div, min, max) over ``args`` at ``path``.

    Each argument is a number or ``{"path": "dotted.path"}``; strings are never
    evaluated.
    """

    name = "calc"
    fields = frozenset({"path", "op", "args"})

    def validate(self, step: StepSpec) -> None:
        super().validate(step)
        _parts(step.payload.get("path"))
        op = step.payload.get("op")
        if op not in _CALC:
            raise _bad(step, f"'op' must be one of {sorted(_CALC)}, not {op!r}")
        args = step.payload.get("args")
        if not isinstance(args, list) or len(args) < _CALC[op][0]:
            raise _bad(step, f"'args' must be a list of at least {_CALC[op][0]} operand(s)")
        for i, arg in enumerate(args):
            if isinstance(arg, dict) and set(arg) == {"path"}:
                _parts(arg["path"])
            elif not _is_number(arg):
                raise _bad(step, f"args[{i}] is {arg!r}: give a number or {{'path': ...}}")
            elif isinstance(arg, float) and not math.isfinite(arg):
                raise _bad(step, f"args[{i}] is not a finite number")

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        values: list[float] = []
        for arg in step.payload["args"]:
            if isinstance(arg, dict):
                value = get_path(state, _parts(arg["path"]))
                if not _is_number(value):
                    found = "nothing" if value is MISSING else type(value).__name__
                    raise InputError(
                        f"calc needs a number at '{arg['path']}', found {found}",
                        ReasonCode.STATE_TYPE_INVALID,
                    )
                values.append(value)
            else:
                values.append(arg)
        try:
            result = _CALC[step.payload["op"]][1](values)
        except (OverflowError, ValueError) as exc:
            raise InputError(
                f"calc {step.payload['op']} cannot be computed: {exc}",
                ReasonCode.STATE_TYPE_INVALID,
            ) from None
        if isinstance(result, float) and not math.isfinite(result):
            raise InputError("calc result is not a finite number", ReasonCode.STATE_TYPE_INVALID)
        set_path(state, _parts(step.payload["path"]), result)
        return None


# -- side-effecting operations ------------------------------------------------


class MissionOp(Operation):
    """Runs a Tier-3 mission directly and stores its result in the state.

    ``mission_result`` holds the last mission's result; ``mission_results`` holds
    each step's, by step id. A mission error becomes a failed result.
    """

    name = "mission"
    fields = frozenset({"mission_type", "params", "inputs"})

    def validate(self, step: StepSpec) -> None:
        super().validate(step)
        from lifeos.missions import get_mission_class

        mission_type = step.payload.get("mission_type")
        if not isinstance(mission_type, str) or not mission_type:
            raise _bad(step, "mission_type not specified in step payload")
        get_mission_class(mission_type)
        for key in ("params", "inputs"):
            if key in step.payload and not isinstance(step.payload[key], dict):
                raise _bad(step, f"'{key}' must be an object")

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        from lifeos.missions import execute_mission

        mission_type: str = step.payload["mission_type"]
        inputs = step.payload.get("inputs") or step.payload.get("params") or {}
        results = state.setdefault("mission_results", {})
        if not isinstance(results, dict):
            raise InputError(
                "state key 'mission_results' is not an object", ReasonCode.STATE_TYPE_INVALID
            )
        result, _ = env.once(lambda: execute_mission(mission_type, env, inputs).to_dict())
        state["mission_result"] = result
        results[step.id] = copy_json(result)
        if result["success"]:
            return None
        error = result.get("error") or "Mission failed without error message"
        escalated = result.get("escalation_reason") is not None
        reason = result.get("reason_code") or ReasonCode.MISSION_FAILED.value
        return StepFailure(
            ReasonCode(reason),
            f"Mission '{mission_type}' failed: {error}",
            "escalated" if escalated else "failed",
        )


class LLMCall(Operation):
    """Sends ``prompt`` to the configured LLM (by ``role`` or ``model``).

    The reply's content goes to ``output_key`` (default ``llm_response``) and its
    call id, model, latency and usage to ``<output_key>_metadata``.
    """

    name = "llm_call"
    fields = frozenset({"prompt", "model", "role", "output_key", "max_tokens"})

    def validate(self, step: StepSpec) -> None:
        super().validate(step)
        prompt = step.payload.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _bad(step, "llm_call missing required 'prompt' field")
        for key in ("model", "role"):
            if key in step.payload and not isinstance(step.payload[key], str):
                raise _bad(step, f"'{key}' must be a string")
        max_tokens = step.payload.get("max_tokens", 1)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad(step, "'max_tokens' must be a positive integer")
        _parts(step.payload.get("output_key", "llm_response"))

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        llm = env.services.llm
        if llm is None:
            return StepFailure(
                ReasonCode.PROVIDER_NOT_CONFIGURED,
                f"Step '{step.id}': llm_call needs an LLM provider and none is configured",
            )
        p = step.payload
        request = {
            "max_tokens": p.get("max_tokens"),
            "model": p.get("model"),
            "prompt": p["prompt"],
            "role": p.get("role"),
        }
        store = env.services.store

        def ledger(reply: Any) -> None:
            if store is not None:
                store.append_ledger(
                    "agent.call",
                    env.run_id,
                    {
                        "call_id": reply.get("call_id"),
                        "model": reply.get("model"),
                        "role": request["role"],
                        "step_id": step.id,
                        "usage": reply.get("usage"),
                    },
                )

        try:
            reply, _ = env.once(lambda: dict(llm.complete(request)), ledger)
        except LifeOSError as exc:
            return StepFailure(exc.reason, f"Step '{step.id}' llm_call failed: {exc.message}")
        content = reply.get("content")
        if not isinstance(content, str):
            return StepFailure(
                ReasonCode.PROVIDER_ERROR, f"Step '{step.id}' llm_call: reply has no content"
            )
        key = p.get("output_key", "llm_response")
        set_path(state, _parts(key), content)
        meta = {k: reply[k] for k in ("call_id", "model", "latency_ms", "usage") if k in reply}
        set_path(state, _parts(f"{key}_metadata"), meta)
        return None


class ToolInvoke(Operation):
    """Calls the named tool with ``args``; its result goes to ``output_key``."""

    name = "tool_invoke"
    fields = frozenset({"tool", "args", "output_key"})

    def validate(self, step: StepSpec) -> None:
        super().validate(step)
        if not isinstance(step.payload.get("tool"), str) or not step.payload["tool"]:
            raise _bad(step, "tool_invoke needs a 'tool' name")
        if not isinstance(step.payload.get("args", {}), dict):
            raise _bad(step, "'args' must be an object")
        _parts(step.payload.get("output_key", f"tool_results.{step.id}"))

    def run(self, step: StepSpec, state: dict[str, Any], env: StepEnv) -> StepFailure | None:
        name = step.payload["tool"]
        tool = env.services.tools.get(name)
        if tool is None:
            return StepFailure(
                ReasonCode.UNKNOWN_TOOL,
                f"Step '{step.id}': no tool named '{name}' is registered "
                f"(registered: {env.services.tools.names()})",
            )
        args = step.payload.get("args", {})
        tool.check_args(args)

        def call() -> Any:
            kwargs = copy_json(args)
            if tool.takes_key and env.current_key is not None:
                kwargs["idempotency_key"] = ":".join(str(p) for p in env.current_key)
            return tool.fn(**kwargs)

        try:
            result, _ = env.once(call)
        except LifeOSError:
            raise
        except Exception as exc:  # a tool's own failure is the step's failure
            return StepFailure(ReasonCode.PROVIDER_ERROR, f"Step '{step.id}' tool '{name}': {exc}")
        key = step.payload.get("output_key", f"tool_results.{step.id}")
        set_path(state, _parts(key), result)
        return None


_DEFAULT: OperationRegistry | None = None


def default_registry() -> OperationRegistry:
    """Return a copy of the built-in registry (extend it freely)."""
    global _DEFAULT
    if _DEFAULT is None:
        from lifeos.missions.daily_loop import DAILY_OPERATIONS
        from lifeos.missions.run_tests import TestsReport

        ops: list[Operation] = [
            Noop(),
            Fail(),
            Set(),
            Append(),
            Calc(),
            MissionOp(),
            LLMCall(),
            ToolInvoke(),
            TestsReport(),
            *DAILY_OPERATIONS,
        ]
        _DEFAULT = OperationRegistry({op.name: op for op in ops})
    return _DEFAULT.copy()
