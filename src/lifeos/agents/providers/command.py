"""The command provider: runs any CLI coding agent (OpenCode, Claude Code, Codex, ...).

The argv template's items may contain ``{prompt}`` and ``{model}``; they are substituted
item by item and nothing goes through a shell, so quotes and spaces in a prompt reach the
agent unchanged. The agent runs in its own session (process group) with stdin closed; on
timeout the whole group is sent SIGTERM, then SIGKILL after a short grace, so children
the agent started die with it.

Usage is parsed from the agent's output according to ``output_format``:

* ``opencode`` -- ``opencode run --format json`` JSON lines: ``step_finish`` events are
  summed (``part.tokens`` / ``part.cost``, or the same fields on the event itself); the
  content is the concatenated text of ``text`` events.
* ``claude`` -- ``claude -p --output-format json``: one object with ``result``,
  ``total_cost_usd`` and ``usage``.
* ``codex`` -- ``codex exec --json`` JSON lines: ``usage`` / ``token_count`` events; the
  content is the last agent message.
* ``text`` -- the content is stdout; usage is unavailable.

Output of a JSON format that does not parse gives unavailable usage (never zero) and the
raw stdout as content.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lifeos.agents.api import (
    AgentCall,
    AgentError,
    AgentResponse,
    AgentTimeout,
    Usage,
    usage_from_counts,
)
from lifeos.errors import ReasonCode
from lifeos.procs import stop_group

__all__ = ["CommandProvider", "OutputFormat", "parse_output"]

OutputFormat = Literal["opencode", "claude", "codex", "text"]

_PLACEHOLDER = re.compile(r"\{(prompt|model)\}")
_EXCERPT = 300


def _int(value: Any) -> int | None:
    """``value`` as an int when it is a (non-bool) number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _with_cost(usage: Usage, cost: float | None) -> Usage:
    if cost is None:
        return usage
    return dataclasses.replace(usage, cost_usd=cost, cost_source="reported")


def _json_lines(stdout: str) -> list[dict[str, Any]] | None:
    """The JSON objects among ``stdout``'s lines; None when no line is one."""
    events: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            events.append(obj)
    return events or None


def _parse_opencode(stdout: str) -> tuple[str, Usage, str] | None:
    events = _json_lines(stdout)
    if events is None:
        return None
    texts: list[str] = []
    totals = {"input": 0, "output": 0, "reasoning": 0, "read": 0, "write": 0}
    cost: float | None = None
    steps = 0
    session = ""
    for event in events:
        part = _dict(event.get("part"))
        if not session and isinstance(event.get("sessionID"), str):
            session = event["sessionID"]
        kind = event.get("type")
        if kind == "text":
            text = part.get("text", event.get("text"))
            if isinstance(text, str):
                texts.append(text)
        elif kind == "step_finish":
            tokens = _dict(part.get("tokens")) or _dict(event.get("tokens"))
            inp, out = _int(tokens.get("input")), _int(tokens.get("output"))
            if inp is not None and out is not None:
                steps += 1
                cache = _dict(tokens.get("cache"))
                totals["input"] += inp
                totals["output"] += out
                totals["reasoning"] += _int(tokens.get("reasoning")) or 0
                totals["read"] += _int(cache.get("read")) or 0
                totals["write"] += _int(cache.get("write")) or 0
            step_cost = _float(part.get("cost", event.get("cost")))
            if step_cost is not None:
                cost = (cost or 0.0) + step_cost
    usage = Usage()
    if steps:
        usage = usage_from_counts(
            totals["input"],
            totals["output"],
            True,
            reasoning_tokens=totals["reasoning"],
            cache_read_tokens=totals["read"],
            cache_write_tokens=totals["write"],
        )
    return "".join(texts), _with_cost(usage, cost), session


def _parse_claude(stdout: str) -> tuple[str, Usage, str] | None:
    body: Any = None
    try:
        body = json.loads(stdout)
    except ValueError:
        lines = [line for line in stdout.splitlines() if line.strip()]
        if lines:
            try:
                body = json.loads(lines[-1])
            except ValueError:
                body = None
    if not isinstance(body, dict):
        return None
    result = body.get("result")
    content = result if isinstance(result, str) else ""
    raw_usage = _dict(body.get("usage"))
    usage = usage_from_counts(
        _int(raw_usage.get("input_tokens")),
        _int(raw_usage.get("output_tokens")),
        True,
        cache_read_tokens=_int(raw_usage.get("cache_read_input_tokens")) or 0,
        cache_write_tokens=_int(raw_usage.get("cache_creation_input_tokens")) or 0,
    )
    session = body.get("session_id")
    return (
        content,
        _with_cost(usage, _float(body.get("total_cost_usd"))),
        session if isinstance(session, str) else "",
    )


def _codex_counts(raw: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    inp, out = _int(raw.get("input_tokens")), _int(raw.get("output_tokens"))
    if inp is None or out is None:
        return None
    return (
        inp,
        out,
        _int(raw.get("cached_input_tokens")) or 0,
        _int(raw.get("reasoning_output_tokens")) or 0,
    )


def _parse_codex(stdout: str) -> tuple[str, Usage, str] | None:
    events = _json_lines(stdout)
    if events is None:
        return None
    message = ""
    cumulative: tuple[int, int, int, int] | None = None
    summed = [0, 0, 0, 0]
    seen = False
    session = ""
    for event in events:
        msg = _dict(event.get("msg"))
        item = _dict(event.get("item"))
        if not session and isinstance(event.get("thread_id"), str):
            session = event["thread_id"]
        if msg.get("type") == "agent_message" and isinstance(msg.get("message"), str):
            message = msg["message"]
        item_type = item.get("type", item.get("item_type"))
        if item_type in ("agent_message", "assistant_message") and isinstance(
            item.get("text"), str
        ):
            message = item["text"]
        total = _dict(_dict(msg.get("info")).get("total_token_usage")) or _dict(
            _dict(event.get("info")).get("total_token_usage")
        )
        if total:
            cumulative = _codex_counts(total) or cumulative
            continue
        for raw in (event.get("usage"), msg.get("usage"), event.get("token_count")):
            counts = _codex_counts(_dict(raw))
            if counts is not None:
                summed = [a + b for a, b in zip(summed, counts, strict=True)]
                seen = True
        if msg.get("type") == "token_count":
            counts = _codex_counts(msg)
            if counts is not None:
                summed = [a + b for a, b in zip(summed, counts, strict=True)]
                seen = True
    chosen = cumulative or (tuple(summed) if seen else None)
    usage = Usage()
    if chosen is not None:
        inp, out, cached, reasoning = chosen
        usage = usage_from_counts(
            inp, out, True, cache_read_tokens=cached, reasoning_tokens=reasoning
        )
    return message, usage, session


_PARSERS: dict[str, Callable[[str], tuple[str, Usage, str] | None]] = {
    "opencode": _parse_opencode,
    "claude": _parse_claude,
    "codex": _parse_codex,
}


def parse_output(output_format: OutputFormat, stdout: str) -> tuple[str, Usage, str]:
    """``(content, usage, session id)`` from an agent's stdout in ``output_format``.

    Output that does not parse gives the raw stdout and unavailable usage.
    """
    parser = _PARSERS.get(output_format)
    if parser is None:
        return stdout, Usage(), ""
    parsed = parser(stdout)
    if parsed is None:
        return stdout, Usage(), ""
    return parsed


def _prompt_text(call: AgentCall) -> str:
    parts: list[str] = []
    for message in call.chat_messages():
        content = message.get("content")
        if isinstance(content, str) and content:
            parts.append(content)
    return "\n\n".join(parts)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:_EXCERPT] if lines else ""


class CommandProvider:
    """Runs a CLI coding agent per call and parses its answer and usage."""

    def __init__(
        self,
        argv_template: Sequence[str],
        cwd: Path,
        *,
        timeout_s: float = 600.0,
        output_format: OutputFormat = "text",
        env: Mapping[str, str] | None = None,
        pricing: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        model: str | None = None,
    ) -> None:
        """Configure the provider.

        Args:
            argv_template: The command; items may contain ``{prompt}`` and ``{model}``.
            cwd: The directory the agent runs in (the worktree).
            timeout_s: Seconds before the agent's process group is killed.
            output_format: How stdout is parsed (see the module docstring).
            env: Variables set on top of the current environment for the agent.
            pricing: Per-million-token pricing used when the agent reports no cost.
            clock: Monotonic seconds, for the latency.
            model: The model for ``{model}`` when the call names none.
        """
        if not argv_template:
            raise AgentError("empty agent command", ReasonCode.PROVIDER_NOT_CONFIGURED)
        self.argv_template = tuple(argv_template)
        self.cwd = Path(cwd)
        self.timeout_s = timeout_s
        self.output_format: OutputFormat = output_format
        self.env = dict(env) if env is not None else None
        self.pricing = pricing
        self.clock = clock
        self.model = model

    def argv(self, call: AgentCall) -> list[str]:
        """The command for ``call``, with ``{prompt}`` and ``{model}`` substituted."""
        model = call.model or self.model
        values = {"prompt": _prompt_text(call), "model": model or ""}
        uses_model = any("{model}" in item for item in self.argv_template)
        if uses_model and not model:
            raise AgentError(
                "the agent command uses {model} but no model is configured",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            )
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], item) for item in self.argv_template]

    def call(self, request: AgentCall) -> AgentResponse:
        """Run the agent for ``request``; raise :class:`AgentError` on failure."""
        argv = self.argv(request)
        env = {**os.environ, **self.env} if self.env is not None else None
        started = self.clock()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise AgentError(
                f"cannot start agent command {argv[0]!r}: {exc.strerror or exc}",
                ReasonCode.PROVIDER_NOT_CONFIGURED,
            ) from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            raise AgentTimeout(
                f"agent command {argv[0]!r} timed out after {self.timeout_s:g}s"
            ) from None
        except BaseException:
            stop_group(proc)
            raise
        latency_ms = (self.clock() - started) * 1000.0
        if proc.returncode != 0:
            code = proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            detail = _last_line(stderr) or "(no stderr)"
            raise AgentError(f"agent command {argv[0]!r} {how}: {detail}", retryable=False)
        content, usage, session = parse_output(self.output_format, stdout)
        return AgentResponse(
            content=content,
            finish_reason="stop",
            usage=usage.priced(self.pricing),
            call_id=session,
            model=request.model or self.model or "",
            latency_ms=latency_ms,
        )
