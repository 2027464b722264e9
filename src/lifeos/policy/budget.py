"""Budgets: per-run and daily caps on agent usage, checked around every agent call.

A run's budget (the ``budget:`` section of ``lifeos.yaml``, :class:`BudgetCaps`) caps its
tokens, cost in USD, agent calls and wall time, and the tokens and cost of the whole UTC
day summed over every run. A :class:`BudgetMeter` enforces it:

* :meth:`BudgetMeter.before_call` estimates the call (prompt bytes // 4 + the call's
  ``max_tokens``, priced by the model's configured pricing) and raises
  :class:`~lifeos.errors.BudgetExceeded` — with no call made — when spend plus the estimate
  would cross a cap, or when the run's wall time is used up. Otherwise it returns a
  :class:`BudgetDecision` with the warnings for caps the call would take past ``warn_at``
  and the headroom left for the call (for an OpenCode ``UsageLimit``).
* :meth:`BudgetMeter.after_call` records what the call really used. Usage the provider did
  not report, while a token cap (or cost cap) needs it, raises
  :class:`~lifeos.errors.TokenAccountingUnavailable`. A call that used more than
  estimated may take spend over a cap; :class:`BudgetCheck` reports it and the next
  :meth:`~BudgetMeter.before_call` refuses.
* :meth:`BudgetMeter.on_stream_cost` checks a streamed build's running cost (and tokens)
  and raises ``BudgetExceeded`` so the caller aborts the build.

A cap is *crossed* when a figure goes above it (spending exactly the cap is allowed); the
wall-time cap is used up when the run's running time reaches it. Budgets are not covered
by the policy hash, so a run stopped by one resumes once the cap is raised: build a new
meter with the new caps and the run's recorded spend (:meth:`BudgetMeter.snapshot`,
:meth:`Spend.from_snapshot`).

Pure: no I/O, and the only time read is the injected clock's. The daily spend comes from
the ledger — the caller reads it and sums it with :func:`daily_spend`; each agent call is
recorded there as an :data:`AGENT_USAGE` entry whose payload :func:`usage_payload` builds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lifeos.agents.api import AgentCall, Usage
from lifeos.clock import Clock
from lifeos.config import validate_budget
from lifeos.errors import BudgetExceeded, TokenAccountingUnavailable

__all__ = [
    "AGENT_USAGE",
    "DEFAULT_ESTIMATE_MAX_TOKENS",
    "BudgetCaps",
    "BudgetCheck",
    "BudgetDecision",
    "BudgetMeter",
    "Spend",
    "daily_spend",
    "estimate_call",
    "usage_payload",
    "usage_spend",
    "utc_day",
]

AGENT_USAGE = "agent.usage"
"""The ledger entry type of one agent call's usage (payload: :func:`usage_payload`)."""

DEFAULT_ESTIMATE_MAX_TOKENS = 4096
"""The output tokens an estimate assumes for a call that sets no ``max_tokens``."""

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COST_DIGITS = 10
"""Costs are rounded to this many decimals after each sum, as ``Usage.priced`` does."""


def _cost(value: float) -> float:
    return round(value, _COST_DIGITS)


def _usd(value: float) -> str:
    return f"${value:.6f}"


@dataclass(frozen=True)
class Spend:
    """Tokens (input + output), cost in USD, agent calls and wall time in seconds."""

    tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    wall_s: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.tokens + other.tokens,
            _cost(self.cost_usd + other.cost_usd),
            self.calls + other.calls,
            self.wall_s + other.wall_s,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with sorted keys."""
        return {
            "calls": self.calls,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spend:
        """The inverse of :meth:`to_dict`; missing figures are 0."""
        return cls(
            tokens=int(data.get("tokens") or 0),
            cost_usd=float(data.get("cost_usd") or 0.0),
            calls=int(data.get("calls") or 0),
            wall_s=float(data.get("wall_s") or 0.0),
        )

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Spend:
        """A run's spend from a :meth:`BudgetMeter.snapshot`, wall time included."""
        spent = dict(snapshot.get("spent") or {})
        spent["wall_s"] = (snapshot.get("timings") or {}).get("wall_s", 0.0)
        return cls.from_dict(spent)


# config key -> (Spend field, per run rather than per day), in the order caps are checked.
_CAPS: dict[str, tuple[str, bool]] = {
    "calls": ("calls", True),
    "tokens": ("tokens", True),
    "cost_usd": ("cost_usd", True),
    "daily_tokens": ("tokens", False),
    "daily_cost_usd": ("cost_usd", False),
}


def _figure(key: str, run: Spend, day: Spend) -> float:
    """The figure the cap ``key`` limits: from the run's spend or the day's."""
    field, per_run = _CAPS[key]
    return float(getattr(run if per_run else day, field))


def _show(key: str, value: float) -> str:
    if key.endswith("cost_usd"):
        return _usd(value)
    if key == "wall_s":
        return f"{value:g}s"
    return str(int(value))


@dataclass(frozen=True)
class BudgetCaps:
    """The caps of one run; None means no cap. Read from ``budget:`` by :meth:`from_config`."""

    max_tokens: int | None = None
    """Input + output tokens per run (``budget.tokens``)."""
    max_cost_usd: float | None = None
    """Cost in USD per run (``budget.cost_usd``)."""
    max_calls: int | None = None
    """Agent calls per run (``budget.calls``)."""
    max_wall_s: float | None = None
    """Seconds of running time per run (``budget.wall_s``)."""
    daily_cost_usd: float | None = None
    """Cost in USD of every run in a UTC day (``budget.daily_cost_usd``)."""
    daily_tokens: int | None = None
    """Tokens of every run in a UTC day (``budget.daily_tokens``)."""
    warn_at: float = 0.8
    """Warn when spend reaches this fraction of a cap (``budget.warn_at``, in (0, 1])."""

    def __post_init__(self) -> None:
        validate_budget(self.to_dict())

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> BudgetCaps:
        """The caps of a ``budget:`` section.

        Raises:
            ConfigError: ``CONFIG_INVALID`` naming the key path: an unknown key, a count
                that is not an integer >= 0, an amount that is not a number >= 0, or
                ``warn_at`` outside (0, 1].
        """
        values = validate_budget(dict(section) if section is not None else None)
        return cls(
            max_tokens=values.get("tokens"),
            max_cost_usd=values.get("cost_usd"),
            max_calls=values.get("calls"),
            max_wall_s=values.get("wall_s"),
            daily_cost_usd=values.get("daily_cost_usd"),
            daily_tokens=values.get("daily_tokens"),
            warn_at=values.get("warn_at", 0.8),
        )

    def to_dict(self) -> dict[str, Any]:
        """The caps under their ``budget:`` keys (sorted; caps that are not set left out)."""
        values = {
            "calls": self.max_calls,
            "cost_usd": self.max_cost_usd,
            "daily_cost_usd": self.daily_cost_usd,
            "daily_tokens": self.daily_tokens,
            "tokens": self.max_tokens,
            "wall_s": self.max_wall_s,
        }
        out: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        out["warn_at"] = self.warn_at
        return out

    def cap(self, key: str) -> float | None:
        """The value of the cap named by its ``budget:`` key, or None."""
        if key == "warn_at":
            return None
        value = self.to_dict().get(key)
        return None if value is None else float(value)

    @property
    def needs_tokens(self) -> bool:
        """Whether a token cap is set, so every call's tokens must be known."""
        return self.max_tokens is not None or self.daily_tokens is not None

    @property
    def needs_cost(self) -> bool:
        """Whether a cost cap is set, so every call's cost must be known."""
        return self.max_cost_usd is not None or self.daily_cost_usd is not None


@dataclass(frozen=True)
class BudgetDecision:
    """A call :meth:`BudgetMeter.before_call` lets through."""

    estimate: Spend
    """What the call is expected to add (tokens, cost, one call)."""
    projected: Spend
    """The run's spend if the call uses exactly its estimate."""
    warnings: tuple[str, ...] = ()
    """One line per cap the projected spend takes to ``warn_at`` or beyond."""
    max_tokens: int | None = None
    """The most tokens the call may use before a cap is crossed (None: no token cap)."""
    max_cost_usd: float | None = None
    """The most the call may cost before a cap is crossed (None: no cost cap)."""
    max_wall_s: float | None = None
    """The run's running time left (None: no wall-time cap); a bound for the call's timeout."""
    priced: bool = True
    """Whether the estimate's cost came from pricing (False: no pricing, cost taken as 0)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with sorted keys."""
        return {
            "estimate": self.estimate.to_dict(),
            "max_cost_usd": self.max_cost_usd,
            "max_tokens": self.max_tokens,
            "max_wall_s": self.max_wall_s,
            "priced": self.priced,
            "projected": self.projected.to_dict(),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class BudgetCheck:
    """What :meth:`BudgetMeter.after_call` recorded and found."""

    spent: Spend
    """The run's spend after the call (wall time read from the clock)."""
    exceeded: tuple[str, ...] = ()
    """One line per cap the recorded spend has crossed; the next call will be refused."""
    warnings: tuple[str, ...] = ()
    """One line per cap the recorded spend has reached ``warn_at`` of."""
    crossed: tuple[str, ...] = ()
    """The ``budget:`` keys of the crossed caps, in the order of ``exceeded``."""

    def raise_if_exceeded(self) -> None:
        """Raise ``BudgetExceeded`` naming the first crossed cap, if any."""
        if self.exceeded:
            raise BudgetExceeded(self.exceeded[0], cap=self.crossed[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with sorted keys."""
        return {
            "crossed": list(self.crossed),
            "exceeded": list(self.exceeded),
            "spent": self.spent.to_dict(),
            "warnings": list(self.warnings),
        }


def _content_bytes(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content.encode("utf-8"))
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8"))


def estimate_call(call: AgentCall, pricing: Mapping[str, float] | None = None) -> Spend:
    """The estimated spend of ``call``: one call, its tokens and its cost.

    Tokens are the UTF-8 bytes of every message's content (system messages and the
    ``prompt`` included; non-text content as compact JSON) // 4, plus the call's
    ``max_tokens`` (:data:`DEFAULT_ESTIMATE_MAX_TOKENS` when it sets none). The cost prices
    the first as input and the second as output tokens with the model's per-million-token
    ``pricing`` (as :meth:`Usage.priced` does); without pricing it is 0.
    """
    prompt = sum(_content_bytes(m.get("content")) for m in call.chat_messages())
    output = call.max_tokens if call.max_tokens is not None else DEFAULT_ESTIMATE_MAX_TOKENS
    usage = Usage(input_tokens=prompt // 4, output_tokens=output, tokens_source="computed")
    return Spend(
        tokens=prompt // 4 + output,
        cost_usd=usage.priced(pricing).cost_usd or 0.0,
        calls=1,
    )


def utc_day(moment: dt.datetime) -> str:
    """The UTC day of ``moment`` as ``YYYY-MM-DD``, the prefix of that day's ledger ``ts``."""
    if moment.tzinfo is None:
        raise ValueError("utc_day needs a timezone-aware datetime")
    return moment.astimezone(dt.UTC).date().isoformat()


def usage_payload(
    usage: Usage,
    *,
    model: str | None = None,
    role: str | None = None,
    call_id: str | None = None,
) -> dict[str, Any]:
    """The payload of an :data:`AGENT_USAGE` ledger entry for one call.

    ``{"calls": 1, "call_id", "cost_source", "cost_usd", "input_tokens", "model",
    "output_tokens", "role", "tokens", "tokens_source"}``: ``tokens`` is input + output
    (None when unavailable) and ``cost_usd`` the reported or computed cost (None when
    unavailable) — price ``usage`` first (``usage.priced(pricing)``).
    """
    return {
        "call_id": call_id,
        "calls": 1,
        "cost_source": usage.cost_source,
        "cost_usd": usage.cost_usd,
        "input_tokens": usage.input_tokens,
        "model": model,
        "output_tokens": usage.output_tokens,
        "role": role,
        "tokens": usage.total_tokens,
        "tokens_source": usage.tokens_source,
    }


def daily_spend(entries: Iterable[Mapping[str, Any]], day: str) -> Spend:
    """The tokens, cost and calls of the :data:`AGENT_USAGE` ledger entries of ``day``.

    Args:
        entries: ledger entries ``{seq, ts, type, run_id, payload, prev_hash}`` (decoded,
            for example ``json.loads(row["entry"])``); other types are skipped.
        day: ``YYYY-MM-DD``; an entry counts when its ``ts`` starts with it (UTC).

    Unknown figures (None) count as 0; ``wall_s`` is always 0.
    """
    if not _DAY.match(day):
        raise ValueError(f"day should be YYYY-MM-DD, not {day!r}")
    return usage_spend(e for e in entries if str(e.get("ts", "")).startswith(day))


def usage_spend(entries: Iterable[Mapping[str, Any]]) -> Spend:
    """The tokens, cost and calls of every :data:`AGENT_USAGE` entry in ``entries``
    (other types skipped; unknown figures count as 0)."""
    tokens = calls = 0
    cost = 0.0
    for entry in entries:
        if entry.get("type") != AGENT_USAGE:
            continue
        payload = entry.get("payload") or {}
        tokens += int(payload.get("tokens") or 0)
        cost = _cost(cost + float(payload.get("cost_usd") or 0.0))
        calls += int(payload.get("calls", 1) or 0)
    return Spend(tokens=tokens, cost_usd=cost, calls=calls)


class BudgetMeter:
    """Enforces one run's :class:`BudgetCaps` around its agent calls.

    Args:
        caps: the run's caps.
        clock: the injected clock; the run's wall time is ``spent.wall_s`` plus the time
            since the meter was made (time the run was stopped or paused is not counted).
        spent: the run's spend so far, for a resumed run (:meth:`Spend.from_snapshot`).
        today: the spend of today's :data:`AGENT_USAGE` ledger entries (:func:`daily_spend`),
            this run's own earlier entries included; the meter adds the calls it records.
    """

    def __init__(
        self,
        caps: BudgetCaps,
        clock: Clock,
        *,
        spent: Spend | None = None,
        today: Spend | None = None,
    ) -> None:
        self.caps = caps
        self._clock = clock
        self._started = clock.now()
        self._base = spent or Spend()
        self._today = today or Spend()
        self._session = Spend()
        """What this meter recorded: added to both the run's and the day's spend."""
        self._unaccounted: str | None = None

    # -- spend ------------------------------------------------------------------------

    def _wall_s(self) -> float:
        return self._base.wall_s + (self._clock.now() - self._started).total_seconds()

    def _run(self) -> Spend:
        """The run's tokens, cost and calls (wall time left at the recorded base)."""
        return self._base + self._session

    def _day(self) -> Spend:
        return self._today + self._session

    def spent(self) -> Spend:
        """The run's spend so far, wall time read from the clock."""
        run = self._run()
        return Spend(run.tokens, run.cost_usd, run.calls, self._wall_s())

    # -- before a call ----------------------------------------------------------------

    def estimate(self, call: AgentCall, pricing: Mapping[str, float] | None = None) -> Spend:
        """What ``call`` is expected to spend (:func:`estimate_call`)."""
        return estimate_call(call, pricing)

    def before_call(
        self, call: AgentCall, pricing: Mapping[str, float] | None = None
    ) -> BudgetDecision:
        """Let ``call`` through, or refuse it before it is made.

        Args:
            call: the call about to be made; its ``max_tokens`` bounds its output.
            pricing: the model's per-million-token pricing (``models.<role>.pricing``).

        Raises:
            BudgetExceeded: spend plus the estimate would cross a cap, spend already
                crossed one, or the run's wall time is used up; the message names the cap,
                its value, the spend so far and the estimate.
            TokenAccountingUnavailable: an earlier call's usage was unknown while a cap
                needs it.
        """
        self._refuse_unaccounted()
        estimate = self.estimate(call, pricing)
        priced = bool(pricing)
        wall = self._wall_s()
        cap_wall = self.caps.max_wall_s
        if cap_wall is not None and wall >= cap_wall:
            raise BudgetExceeded(
                f"budget cap budget.wall_s={cap_wall:g}s is used up: the run has run "
                f"{wall:g}s; no call was made (raise the cap and resume)",
                cap="wall_s",
                limit=cap_wall,
                spent=wall,
                estimate=0.0,
            )
        run, day = self._run(), self._day()
        projected_run, projected_day = run + estimate, day + estimate
        headroom: dict[str, float] = {}
        for key, (field, _) in _CAPS.items():
            cap = self.caps.cap(key)
            if cap is None:
                continue
            now = _figure(key, run, day)
            after = _figure(key, projected_run, projected_day)
            add = float(getattr(estimate, field))
            unknown_cost = field == "cost_usd" and not priced
            if after > cap or (unknown_cost and now >= cap):
                what = "would be crossed" if now <= cap else "is crossed"
                note = " (the model has no pricing: cost not estimated)" if unknown_cost else ""
                raise BudgetExceeded(
                    f"budget cap budget.{key}={_show(key, cap)} {what}: spent "
                    f"{_show(key, now)}, this call's estimate {_show(key, add)}"
                    f"{note}; no call was made (raise the cap and resume)",
                    cap=key,
                    limit=cap,
                    spent=now,
                    estimate=add,
                )
            if field != "calls":
                headroom[field] = min(headroom.get(field, cap - now), cap - now)
        warnings = self._warnings(projected_run, projected_day, wall, "projected")
        if self.caps.needs_cost and not priced:
            warnings = (
                *warnings,
                "the model has no pricing: this call's cost is not estimated",
            )
        return BudgetDecision(
            estimate=estimate,
            projected=Spend(
                projected_run.tokens, projected_run.cost_usd, projected_run.calls, wall
            ),
            warnings=warnings,
            max_tokens=int(headroom["tokens"]) if "tokens" in headroom else None,
            max_cost_usd=_cost(headroom["cost_usd"]) if "cost_usd" in headroom else None,
            max_wall_s=None if cap_wall is None else cap_wall - wall,
            priced=priced,
        )

    def _refuse_unaccounted(self) -> None:
        if self._unaccounted is not None:
            raise TokenAccountingUnavailable(self._unaccounted)

    def _warnings(self, run: Spend, day: Spend, wall: float, label: str) -> tuple[str, ...]:
        out: list[str] = []
        checks = [(key, _figure(key, run, day)) for key in _CAPS]
        checks.append(("wall_s", wall))
        for key, value in checks:
            cap = self.caps.cap(key)
            if cap is None or cap <= 0 or value > cap:
                continue
            if value >= self.caps.warn_at * cap:
                out.append(
                    f"budget.{key}: {label} {_show(key, value)} of "
                    f"{_show(key, cap)} ({value / cap:.0%}, warn_at {self.caps.warn_at:g})"
                )
        return tuple(out)

    def _exceeded(self, run: Spend, day: Spend) -> tuple[tuple[str, str], ...]:
        """``(key, message)`` for every cap ``run`` / ``day`` spend has crossed."""
        out: list[tuple[str, str]] = []
        for key in _CAPS:
            cap = self.caps.cap(key)
            value = _figure(key, run, day)
            if cap is not None and value > cap:
                message = (
                    f"budget cap budget.{key}={_show(key, cap)} is crossed: spent "
                    f"{_show(key, value)} (raise the cap to resume)"
                )
                out.append((key, message))
        return tuple(out)

    # -- after a call -----------------------------------------------------------------

    def after_call(self, usage: Usage, pricing: Mapping[str, float] | None = None) -> BudgetCheck:
        """Record what a call used; report the caps it reached or crossed.

        The call is always recorded (one more call; unknown figures as 0). ``usage`` is
        priced with ``pricing`` when the provider gave no cost.

        Raises:
            TokenAccountingUnavailable: the call's tokens are unknown while a token cap is
                set, or its cost is unknown while a cost cap is set; every later
                :meth:`before_call` refuses too.
        """
        usage = usage.priced(pricing)
        tokens = usage.total_tokens
        cost = usage.cost_usd
        self._session = self._session + Spend(tokens or 0, cost or 0.0, 1)
        missing: list[str] = []
        if tokens is None and self.caps.needs_tokens:
            missing.append("tokens (a token cap is set)")
        if cost is None and self.caps.needs_cost:
            missing.append("cost (a cost cap is set; configure the model's pricing)")
        if missing:
            self._unaccounted = (
                f"the provider reported no {' and no '.join(missing)}; the budget cannot "
                "be enforced"
            )
            raise TokenAccountingUnavailable(self._unaccounted)
        spent = self.spent()
        run, day = self._run(), self._day()
        exceeded = self._exceeded(run, day)
        return BudgetCheck(
            spent=spent,
            exceeded=tuple(message for _, message in exceeded),
            warnings=self._warnings(run, day, spent.wall_s, "spent"),
            crossed=tuple(key for key, _ in exceeded),
        )

    # -- during a streamed call -------------------------------------------------------

    def on_stream_cost(self, cost_usd: float, tokens: int | None = None) -> None:
        """Check a streamed call's running cost (and tokens) against the caps.

        Args:
            cost_usd: what the call in flight has cost so far (not yet recorded).
            tokens: its tokens so far, when known.

        Raises:
            BudgetExceeded: the run's or the day's spend with this call's would cross a
                cost or token cap; the caller aborts the build, then records the usage it
                saw with :meth:`after_call`.
        """
        streamed = Spend(tokens or 0, _cost(cost_usd))
        run, day = self._run() + streamed, self._day() + streamed
        for key, (field, _) in _CAPS.items():
            cap = self.caps.cap(key)
            if cap is None or field == "calls":
                continue
            value = _figure(key, run, day)
            if value > cap:
                now = _figure(key, self._run(), self._day())
                raise BudgetExceeded(
                    f"budget cap budget.{key}={_show(key, cap)} crossed while "
                    f"streaming: spent {_show(key, now)} before this call, "
                    f"{_show(key, value - now)} in it; abort the build",
                    cap=key,
                    limit=cap,
                    spent=now,
                    estimate=value - now,
                )

    # -- state ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The meter's state for a checkpoint or ``status``: JSON-able, keys sorted.

        ``timings.wall_s`` is a duration: keep it out of hashed or compared results.
        """
        run, day = self._run(), self._day()
        return {
            "caps": self.caps.to_dict(),
            "exceeded": [message for _, message in self._exceeded(run, day)],
            "spent": {"calls": run.calls, "cost_usd": run.cost_usd, "tokens": run.tokens},
            "timings": {"wall_s": self._wall_s()},
            "today": {"calls": day.calls, "cost_usd": day.cost_usd, "tokens": day.tokens},
            "unaccounted": self._unaccounted,
        }
