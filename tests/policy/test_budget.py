"""Budgets: caps refused before the call, warnings, resumed and daily spend, accounting."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.agents.api import AgentCall, AgentProvider, AgentResponse, Usage
from lifeos.errors import (
    EXIT_BUDGET,
    BudgetExceeded,
    ConfigError,
    LifeOSError,
    ReasonCode,
    TokenAccountingUnavailable,
)
from lifeos.policy.budget import (
    AGENT_USAGE,
    DEFAULT_ESTIMATE_MAX_TOKENS,
    BudgetCaps,
    BudgetCheck,
    BudgetMeter,
    Spend,
    daily_spend,
    estimate_call,
    usage_payload,
    usage_spend,
    utc_day,
)

PRICING = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
START = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.moment = start

    def now(self) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


class CountingProvider:
    """A provider that answers every call with the next scripted usage and counts calls.

    It stands in for a real provider only because the budget logic is what is under test:
    the meter has to refuse *before* a call reaches the provider, which the count proves.
    """

    def __init__(self, *usages: Usage) -> None:
        self.usages = list(usages) or [Usage.reported(100, 50)]
        self.calls = 0

    def call(self, request: AgentCall) -> AgentResponse:
        usage = self.usages[min(self.calls, len(self.usages) - 1)]
        self.calls += 1
        return AgentResponse(content="ok", usage=usage, call_id=f"c{self.calls}")


def governed_call(
    meter: BudgetMeter,
    provider: AgentProvider,
    call: AgentCall,
    pricing: dict[str, float] | None = PRICING,
) -> BudgetCheck:
    """What the spine does around each agent call."""
    meter.before_call(call, pricing)
    response = provider.call(call)
    return meter.after_call(response.usage, pricing)


def small_call(prompt_bytes: int = 400, max_tokens: int = 100) -> AgentCall:
    return AgentCall(prompt="x" * prompt_bytes, max_tokens=max_tokens)


# small_call(): 400 bytes // 4 = 100 input tokens + 100 output tokens.
SMALL_TOKENS = 200
SMALL_COST = (100 * 3.0 + 100 * 15.0) / 1_000_000


# -- estimates ----------------------------------------------------------------------


def test_estimate_counts_prompt_bytes_over_four_plus_max_tokens() -> None:
    call = AgentCall(
        messages=[{"role": "system", "content": "s" * 40}, {"role": "user", "content": "é" * 10}],
        prompt="x" * 400,
        max_tokens=100,
    )
    est = estimate_call(call, PRICING)
    # 40 + 20 (é is two UTF-8 bytes) + 400 = 460 bytes -> 115 input tokens.
    assert est == Spend(tokens=115 + 100, cost_usd=(115 * 3.0 + 100 * 15.0) / 1e6, calls=1)


def test_estimate_without_max_tokens_uses_the_documented_default() -> None:
    est = estimate_call(AgentCall(prompt="abcd"), None)
    assert est.tokens == 1 + DEFAULT_ESTIMATE_MAX_TOKENS
    assert est.cost_usd == 0.0


def test_estimate_counts_structured_content_as_compact_json() -> None:
    call = AgentCall(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    body = json.dumps([{"text": "hi", "type": "text"}], separators=(",", ":"))
    assert estimate_call(call).tokens == len(body) // 4 + DEFAULT_ESTIMATE_MAX_TOKENS


def test_estimate_is_the_meters_estimate() -> None:
    meter = BudgetMeter(BudgetCaps(), ManualClock())
    assert meter.estimate(small_call(), PRICING) == estimate_call(small_call(), PRICING)


# -- every cap refuses before the call ----------------------------------------------


@pytest.mark.parametrize(
    ("caps", "today", "key"),
    [
        (BudgetCaps(max_tokens=SMALL_TOKENS - 1), Spend(), "tokens"),
        (BudgetCaps(max_cost_usd=SMALL_COST / 2), Spend(), "cost_usd"),
        (BudgetCaps(max_calls=0), Spend(), "calls"),
        (BudgetCaps(max_wall_s=0), Spend(), "wall_s"),
        (BudgetCaps(daily_tokens=1000), Spend(tokens=900), "daily_tokens"),
        (BudgetCaps(daily_cost_usd=1.0), Spend(cost_usd=0.9999), "daily_cost_usd"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_cap_refuses_before_the_call(caps: BudgetCaps, today: Spend, key: str) -> None:
    provider = CountingProvider()
    meter = BudgetMeter(caps, ManualClock(), today=today)
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call())
    err = info.value
    assert provider.calls == 0
    assert err.reason is ReasonCode.BUDGET_EXCEEDED
    assert err.exit_code == EXIT_BUDGET == 5
    assert err.cap == key
    assert err.limit == caps.cap(key)
    assert f"budget.{key}=" in err.message
    assert "no call was made" in err.message
    assert "\n" not in err.one_line()
    assert meter.spent().calls == 0


def test_refusal_names_cap_spend_and_estimate() -> None:
    meter = BudgetMeter(BudgetCaps(max_tokens=1000), ManualClock(), spent=Spend(tokens=900))
    with pytest.raises(BudgetExceeded) as info:
        meter.before_call(small_call(), PRICING)
    assert info.value.message == (
        "budget cap budget.tokens=1000 would be crossed: spent 900, this call's estimate 200; "
        "no call was made (raise the cap and resume)"
    )
    assert (info.value.spent, info.value.estimate) == (900, 200)


def test_spending_exactly_the_cap_is_allowed() -> None:
    provider = CountingProvider(Usage.reported(100, 100))
    meter = BudgetMeter(BudgetCaps(max_tokens=SMALL_TOKENS), ManualClock())
    check = governed_call(meter, provider, small_call())
    assert check.exceeded == ()
    assert meter.spent().tokens == SMALL_TOKENS
    with pytest.raises(BudgetExceeded):
        governed_call(meter, provider, small_call())
    assert provider.calls == 1


def test_call_cap_allows_that_many_calls() -> None:
    provider = CountingProvider()
    meter = BudgetMeter(BudgetCaps(max_calls=2), ManualClock())
    governed_call(meter, provider, small_call())
    governed_call(meter, provider, small_call())
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call())
    assert info.value.cap == "calls"
    assert provider.calls == 2


def test_wall_time_cap_counts_the_injected_clock_only() -> None:
    clock = ManualClock()
    provider = CountingProvider()
    meter = BudgetMeter(BudgetCaps(max_wall_s=60), clock, spent=Spend(wall_s=30))
    clock.advance(20)
    decision = meter.before_call(small_call(), PRICING)
    assert decision.max_wall_s == 10
    clock.advance(10)
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call())
    assert info.value.cap == "wall_s"
    assert "is used up" in info.value.message
    assert provider.calls == 0


def test_crossing_on_actual_usage_is_reported_and_the_next_call_refused() -> None:
    provider = CountingProvider(Usage.reported(900, 300))
    meter = BudgetMeter(BudgetCaps(max_tokens=1000, max_cost_usd=1.0), ManualClock())
    check = governed_call(meter, provider, small_call())
    assert check.crossed == ("tokens",)
    assert check.exceeded == (
        "budget cap budget.tokens=1000 is crossed: spent 1200 (raise the cap to resume)",
    )
    with pytest.raises(BudgetExceeded) as raised:
        check.raise_if_exceeded()
    assert raised.value.cap == "tokens"
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call(prompt_bytes=0, max_tokens=1))
    assert "is crossed" in info.value.message
    assert provider.calls == 1
    assert meter.snapshot()["exceeded"] == list(check.exceeded)


# -- warnings and headroom ----------------------------------------------------------


def test_warning_when_the_projection_reaches_warn_at() -> None:
    caps = BudgetCaps(max_tokens=400, max_calls=10, warn_at=0.5)
    meter = BudgetMeter(caps, ManualClock())
    quiet = meter.before_call(small_call(max_tokens=50), PRICING)
    assert quiet.warnings == ()
    loud = meter.before_call(small_call(max_tokens=100), PRICING)
    assert loud.warnings == ("budget.tokens: projected 200 of 400 (50%, warn_at 0.5)",)
    assert loud.projected.tokens == 200


def test_warnings_after_the_call_use_actual_spend() -> None:
    provider = CountingProvider(Usage.reported(500, 400))
    meter = BudgetMeter(BudgetCaps(max_tokens=1000), ManualClock())
    check = governed_call(meter, provider, small_call())
    assert check.warnings == ("budget.tokens: spent 900 of 1000 (90%, warn_at 0.8)",)
    assert check.exceeded == ()


def test_headroom_is_the_tightest_run_or_daily_cap() -> None:
    caps = BudgetCaps(max_tokens=10_000, daily_tokens=5_000, max_cost_usd=2.0)
    meter = BudgetMeter(caps, ManualClock(), spent=Spend(tokens=1_000, cost_usd=0.5))
    decision = meter.before_call(small_call(), PRICING)
    assert decision.max_tokens == 5_000
    assert decision.max_cost_usd == 1.5
    assert decision.max_wall_s is None
    assert decision.priced is True
    json.dumps(decision.to_dict())


def test_no_caps_lets_everything_through() -> None:
    provider = CountingProvider(Usage.reported(10**6, 10**6))
    meter = BudgetMeter(BudgetCaps(), ManualClock())
    for _ in range(5):
        check = governed_call(meter, provider, small_call())
        assert check.exceeded == () and check.warnings == ()
    assert provider.calls == 5


def test_without_pricing_a_cost_cap_needs_headroom_left() -> None:
    provider = CountingProvider(Usage.reported(100, 100, cost_usd=0.25))
    meter = BudgetMeter(BudgetCaps(max_cost_usd=0.5), ManualClock())
    decision = meter.before_call(small_call(), None)
    assert decision.priced is False
    assert "the model has no pricing" in decision.warnings[-1]
    governed_call(meter, provider, small_call(), None)
    governed_call(meter, provider, small_call(), None)
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call(), None)
    assert "cost not estimated" in info.value.message
    assert provider.calls == 2


# -- resumed runs -------------------------------------------------------------------


def test_a_resumed_run_continues_from_its_recorded_spend() -> None:
    clock = ManualClock()
    caps = BudgetCaps(max_tokens=1000, max_calls=10)
    provider = CountingProvider(Usage.reported(300, 150, cost_usd=0.01))
    first = BudgetMeter(caps, clock)
    governed_call(first, provider, small_call())
    governed_call(first, provider, small_call())
    clock.advance(42)
    snap = json.loads(json.dumps(first.snapshot()))
    spent = Spend.from_snapshot(snap)
    assert spent == Spend(tokens=900, cost_usd=0.02, calls=2, wall_s=42.0)

    resumed = BudgetMeter(caps, ManualClock(clock.moment + dt.timedelta(hours=5)), spent=spent)
    assert resumed.spent() == spent
    with pytest.raises(BudgetExceeded) as info:
        governed_call(resumed, provider, small_call())
    assert info.value.spent == 900
    assert provider.calls == 2

    raised = BudgetMeter(BudgetCaps.from_config({"tokens": 2000}), ManualClock(), spent=spent)
    governed_call(raised, provider, small_call())
    assert raised.spent().tokens == 1350
    assert provider.calls == 3


def test_snapshot_is_deterministic_and_sorted() -> None:
    def run() -> dict[str, Any]:
        meter = BudgetMeter(
            BudgetCaps(max_cost_usd=1.0, daily_tokens=10_000), ManualClock(), today=Spend(5, 0.1, 1)
        )
        governed_call(meter, CountingProvider(), small_call())
        return meter.snapshot()

    one, two = run(), run()
    assert one == two
    assert json.dumps(one) == json.dumps(one, sort_keys=True)
    assert one == {
        "caps": {"cost_usd": 1.0, "daily_tokens": 10_000, "warn_at": 0.8},
        "exceeded": [],
        "spent": {"calls": 1, "cost_usd": 0.00105, "tokens": 150},
        "timings": {"wall_s": 0.0},
        "today": {"calls": 2, "cost_usd": 0.10105, "tokens": 155},
        "unaccounted": None,
    }


# -- daily caps from the ledger -----------------------------------------------------


def _entry(seq: int, ts: str, payload: dict[str, Any], type: str = AGENT_USAGE) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": ts,
        "type": type,
        "run_id": f"run-{seq}",
        "payload": payload,
        "prev_hash": "0" * 64,
    }


def test_daily_spend_sums_the_days_agent_usage_entries() -> None:
    used = usage_payload(Usage.reported(1000, 500).priced(PRICING), model="m", role="builder")
    assert used == {
        "call_id": None,
        "calls": 1,
        "cost_source": "computed",
        "cost_usd": 0.0105,
        "input_tokens": 1000,
        "model": "m",
        "output_tokens": 500,
        "role": "builder",
        "tokens": 1500,
        "tokens_source": "reported",
    }
    entries = [
        _entry(0, "2026-03-03T23:59:59.999999Z", used),  # yesterday
        _entry(1, "2026-03-04T00:00:00.000000Z", used),
        _entry(2, "2026-03-04T08:00:00.000000Z", {"run": 1}, type="run.started"),
        _entry(3, "2026-03-04T09:00:00.000000Z", used),
        _entry(4, "2026-03-04T10:00:00.000000Z", usage_payload(Usage())),  # unavailable
        _entry(5, "2026-03-05T00:00:00.000000Z", used),  # tomorrow
    ]
    day = daily_spend(entries, utc_day(START))
    assert day == Spend(tokens=3000, cost_usd=0.021, calls=3)
    assert daily_spend([], "2026-03-04") == Spend()
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        daily_spend(entries, "2026-3-4")
    # a run's spend: every usage entry, whatever its day
    assert usage_spend(entries) == Spend(tokens=6000, cost_usd=0.042, calls=5)


def test_utc_day_converts_to_utc() -> None:
    late = dt.datetime(2026, 3, 4, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert utc_day(late) == "2026-03-05"
    with pytest.raises(ValueError):
        utc_day(dt.datetime(2026, 3, 4))


def test_daily_cap_counts_earlier_runs_from_the_ledger() -> None:
    used = usage_payload(Usage.reported(1000, 500, cost_usd=0.4))
    entries = [_entry(i, f"2026-03-04T0{i}:00:00.000000Z", used) for i in range(2)]
    provider = CountingProvider(Usage.reported(100, 50, cost_usd=0.15))
    meter = BudgetMeter(
        BudgetCaps(daily_cost_usd=1.0, max_cost_usd=5.0),
        ManualClock(),
        today=daily_spend(entries, utc_day(START)),
    )
    governed_call(meter, provider, small_call())  # 0.8 + 0.15: within the cap
    assert meter.snapshot()["today"]["cost_usd"] == pytest.approx(0.95)
    # Let through on its estimate (0.95 + 0.0018); its actual cost crosses the cap.
    check = governed_call(meter, provider, small_call())
    assert check.crossed == ("daily_cost_usd",)
    with pytest.raises(BudgetExceeded) as info:
        governed_call(meter, provider, small_call())
    assert info.value.cap == "daily_cost_usd"
    assert provider.calls == 2
    assert meter.spent().cost_usd == pytest.approx(0.3)


# -- token accounting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "usage", "missing"),
    [
        (BudgetCaps(max_tokens=10_000), Usage(), "tokens"),
        (BudgetCaps(daily_tokens=10_000), Usage(), "tokens"),
        (BudgetCaps(max_cost_usd=1.0), Usage(), "cost"),
        (BudgetCaps(daily_cost_usd=1.0), Usage(), "cost"),
    ],
)
def test_unavailable_usage_with_a_cap_stops_the_run(
    caps: BudgetCaps, usage: Usage, missing: str
) -> None:
    provider = CountingProvider(usage)
    meter = BudgetMeter(caps, ManualClock())
    with pytest.raises(TokenAccountingUnavailable) as info:
        governed_call(meter, provider, small_call())
    err = info.value
    assert err.reason is ReasonCode.TOKEN_ACCOUNTING_UNAVAILABLE
    assert f"reported no {missing}" in err.message
    assert provider.calls == 1
    assert meter.spent().calls == 1
    with pytest.raises(TokenAccountingUnavailable):
        governed_call(meter, provider, small_call())
    assert provider.calls == 1
    assert meter.snapshot()["unaccounted"] == err.message


def test_unknown_cost_without_pricing_under_a_cost_cap_stops_the_run() -> None:
    provider = CountingProvider(Usage.reported(100, 50))
    meter = BudgetMeter(BudgetCaps(max_cost_usd=1.0), ManualClock())
    with pytest.raises(TokenAccountingUnavailable, match="configure the model's pricing"):
        governed_call(meter, provider, small_call(), None)
    priced = BudgetMeter(BudgetCaps(max_cost_usd=1.0), ManualClock())
    check = governed_call(priced, provider, small_call(), PRICING)
    assert check.spent.cost_usd == (100 * 3.0 + 50 * 15.0) / 1e6


@pytest.mark.parametrize(
    "caps", [BudgetCaps(), BudgetCaps(max_calls=5, max_wall_s=600)], ids=["none", "calls-wall"]
)
def test_unavailable_usage_without_a_usage_cap_is_allowed(caps: BudgetCaps) -> None:
    provider = CountingProvider(Usage())
    meter = BudgetMeter(caps, ManualClock())
    for _ in range(3):
        check = governed_call(meter, provider, small_call())
    assert check.spent == Spend(tokens=0, cost_usd=0.0, calls=3, wall_s=0.0)
    assert provider.calls == 3


# -- streamed builds ----------------------------------------------------------------


def test_stream_cost_crossing_the_cap_aborts() -> None:
    meter = BudgetMeter(BudgetCaps(max_cost_usd=1.0), ManualClock(), spent=Spend(cost_usd=0.5))
    meter.on_stream_cost(0.2)
    meter.on_stream_cost(0.5)  # exactly the cap
    with pytest.raises(BudgetExceeded) as info:
        meter.on_stream_cost(0.51)
    assert info.value.cap == "cost_usd"
    assert "crossed while streaming" in info.value.message
    assert "abort the build" in info.value.message


def test_stream_tokens_and_daily_caps() -> None:
    meter = BudgetMeter(
        BudgetCaps(max_tokens=10_000, daily_cost_usd=2.0), ManualClock(), today=Spend(cost_usd=1.9)
    )
    meter.on_stream_cost(0.05, tokens=9_000)
    with pytest.raises(BudgetExceeded) as tokens:
        meter.on_stream_cost(0.05, tokens=10_001)
    assert tokens.value.cap == "tokens"
    with pytest.raises(BudgetExceeded) as daily:
        meter.on_stream_cost(0.2)
    assert daily.value.cap == "daily_cost_usd"


# -- configuration ------------------------------------------------------------------


def test_caps_from_config() -> None:
    caps = BudgetCaps.from_config(
        {"tokens": 1000, "cost_usd": 2, "calls": 3, "wall_s": 60, "daily_tokens": 10**6}
        | {"daily_cost_usd": 20, "warn_at": 0.9}
    )
    assert caps == BudgetCaps(
        max_tokens=1000,
        max_cost_usd=2.0,
        max_calls=3,
        max_wall_s=60.0,
        daily_cost_usd=20.0,
        daily_tokens=10**6,
        warn_at=0.9,
    )
    assert BudgetCaps.from_config(None) == BudgetCaps.from_config({}) == BudgetCaps()
    assert BudgetCaps.from_config(caps.to_dict()) == caps


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"tokens": -1}, "key 'budget.tokens': should be greater than or equal to 0"),
        ({"tokens": 2.5}, "key 'budget.tokens': should be a valid integer"),
        ({"calls": False}, "key 'budget.calls': should be a valid integer"),
        ({"cost_usd": "1"}, "key 'budget.cost_usd': should be a valid number"),
        ({"wall_s": -3}, "key 'budget.wall_s': should be greater than or equal to 0"),
        (
            {"daily_cost_usd": float("nan")},
            "key 'budget.daily_cost_usd': should be a finite number",
        ),
        ({"warn_at": 0}, "key 'budget.warn_at': should be greater than 0 and at most 1"),
        ({"warn_at": 1.01}, "key 'budget.warn_at': should be greater than 0 and at most 1"),
        ({"max_tokens": 5}, "key 'budget.max_tokens': unknown key"),
    ],
)
def test_bad_config_values_are_one_line_config_errors(
    section: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        BudgetCaps.from_config(section)
    assert info.value.reason is ReasonCode.CONFIG_INVALID
    assert info.value.exit_code == 2
    assert info.value.one_line() == f"{message} [CONFIG_INVALID]"


def test_caps_built_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="budget.warn_at"):
        BudgetCaps(warn_at=0.0)


def test_budget_errors_in_the_hierarchy() -> None:
    exceeded = BudgetExceeded("over")
    assert isinstance(exceeded, LifeOSError)
    assert (exceeded.reason, exceeded.exit_code) == (ReasonCode.BUDGET_EXCEEDED, 5)
    unknown = TokenAccountingUnavailable("no usage")
    assert isinstance(unknown, LifeOSError)
    assert (unknown.reason, unknown.exit_code) == (ReasonCode.TOKEN_ACCOUNTING_UNAVAILABLE, 1)


# -- property: the meter holds the caps ---------------------------------------------

_optional_int = st.one_of(st.none(), st.integers(0, 20_000))
_optional_cost = st.one_of(st.none(), st.floats(0, 0.2, allow_nan=False))
_steps = st.lists(
    st.tuples(
        st.integers(0, 2_000),  # prompt bytes
        st.integers(1, 1_000),  # max_tokens
        st.integers(0, 1_500),  # actual input tokens
        st.integers(0, 1_500),  # actual output tokens
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(
    max_tokens=_optional_int,
    max_cost=_optional_cost,
    max_calls=st.one_of(st.none(), st.integers(0, 12)),
    daily_tokens=_optional_int,
    daily_cost=_optional_cost,
    today_tokens=st.integers(0, 3_000),
    today_cost=st.floats(0, 0.02, allow_nan=False),
    steps=_steps,
)
def test_meter_never_lets_spend_past_a_cap_beyond_the_last_overshoot(
    max_tokens: int | None,
    max_cost: float | None,
    max_calls: int | None,
    daily_tokens: int | None,
    daily_cost: float | None,
    today_tokens: int,
    today_cost: float,
    steps: list[tuple[int, int, int, int]],
) -> None:
    caps = BudgetCaps(
        max_tokens=max_tokens,
        max_cost_usd=max_cost,
        max_calls=max_calls,
        daily_tokens=daily_tokens,
        daily_cost_usd=daily_cost,
    )
    today = Spend(tokens=today_tokens, cost_usd=today_cost)
    meter = BudgetMeter(caps, ManualClock(), today=today)
    provider = CountingProvider()
    eps = 1e-9
    over_tokens = over_cost = 0.0  # the last call's actual-minus-estimate overshoot
    for prompt_bytes, out_tokens, used_in, used_out in steps:
        call = AgentCall(prompt="x" * prompt_bytes, max_tokens=out_tokens)
        before = meter.spent()
        est = estimate_call(call, PRICING)
        limits = [
            (max_tokens, before.tokens, est.tokens),
            (max_cost, before.cost_usd, est.cost_usd),
            (max_calls, before.calls, 1),
            (daily_tokens, today.tokens + before.tokens, est.tokens),
            (daily_cost, today.cost_usd + before.cost_usd, est.cost_usd),
        ]
        crosses = any(cap is not None and now + add > cap + eps for cap, now, add in limits)
        fits = all(cap is None or now + add <= cap - eps for cap, now, add in limits)
        calls_before = provider.calls
        try:
            meter.before_call(call, PRICING)
        except BudgetExceeded:
            assert not fits, "refused a call that fits every cap"
            assert provider.calls == calls_before
            continue
        assert not crosses, "let through a call whose estimate crosses a cap"
        usage = Usage.reported(used_in, used_out)
        provider.usages = [usage]
        response = provider.call(call)
        meter.after_call(response.usage, PRICING)
        actual = usage.priced(PRICING)
        over_tokens = float((actual.total_tokens or 0) - est.tokens)
        over_cost = (actual.cost_usd or 0.0) - est.cost_usd

        after = meter.spent()
        if max_tokens is not None:
            assert after.tokens <= max_tokens + max(0.0, over_tokens)
        if max_cost is not None:
            assert after.cost_usd <= max_cost + max(0.0, over_cost) + eps
        if max_calls is not None:
            assert after.calls <= max_calls
        if daily_tokens is not None:
            assert today.tokens + after.tokens <= daily_tokens + max(0.0, over_tokens)
        if daily_cost is not None:
            assert today.cost_usd + after.cost_usd <= daily_cost + max(0.0, over_cost) + eps
    assert meter.spent().calls == provider.calls
