"""Provider overhead: µs per chat-completions call to a local replay server.

Measures ``OpenAICompatProvider(server.url, "m").call(AgentCall(prompt=...))``
against a :class:`~lifeos.agents.replay_server.ReplayServer` on 127.0.0.1 that
answers from an in-memory cassette holding one request recorded many times (reset
before every batch, untimed). The figure is the median wall time per call: building
the body, the retry wrapper, the HTTP round trip on the provider's kept-alive
connection (the server runs on a thread of this process, so its work is in every
figure), JSON decoding and parsing into an ``AgentResponse``.

Target: LifeOS / a raw reused ``httpx.Client`` posting the same body <= 1.2x (median).

References, same process, same server and request, batches interleaved and rotated:
1. one ``httpx.Client`` reused for every call — like the provider, which keeps one
   client and its connections: the target's reference;
2. the provider on one shared ``httpx.HTTPTransport`` against a new ``httpx.Client``
   per call on that transport (client construction cost isolated);
3. ``httpx.post`` per call (a new client, SSL context and connection every call),
   for information: what a client per call would cost.

When the target is missed, a cProfile of the LifeOS call prints where the time goes.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from lifeos.agents.api import AgentCall
from lifeos.agents.cassette import Cassette
from lifeos.agents.providers.openai_compat import OpenAICompatProvider, chat_request
from lifeos.agents.replay_server import ReplayServer

MODEL = "m"
PROMPT = "Summarise the plan for today in one sentence."
ROUNDS = 6
CALLS_DEFAULT = 40
"""Calls per batch for the sides that build a default client (tens of ms each)."""
CALLS_SHARED = 100
"""Calls per batch for the shared-transport sides (a few ms each)."""
CALLS_REUSED = 10
"""Calls per batch for the kept-alive client (stalled by the server, see above)."""
WARMUP_CALLS = 5
CLIENT_ONLY_CALLS = 30
PROFILE_CALLS = 40
RECORDINGS = max(CALLS_DEFAULT, CALLS_SHARED, CALLS_REUSED, PROFILE_CALLS)
TIMEOUT_S = 120.0
TARGET_RATIO = 1.2

RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Write the benchmark, run it, report every figure.",
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 17, "completion_tokens": 11, "total_tokens": 28},
}
EXPECTED_CONTENT = RESPONSE["choices"][0]["message"]["content"]
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def _content(payload: Any) -> str:
    return str(payload["choices"][0]["message"]["content"])


class _Sides:
    """The ways of making the same call, against one server."""

    def __init__(self, server: ReplayServer) -> None:
        self.url = f"{server.url}/chat/completions"
        self.request = AgentCall(prompt=PROMPT)
        self.body = chat_request(self.request, MODEL)
        self.provider = OpenAICompatProvider(server.url, MODEL, timeout_s=TIMEOUT_S)
        self.transport = httpx.HTTPTransport()
        self.provider_shared = OpenAICompatProvider(
            server.url, MODEL, timeout_s=TIMEOUT_S, transport=self.transport
        )
        self.client = httpx.Client(headers=HEADERS)

    def lifeos(self) -> str:
        return self.provider.call(self.request).content

    def raw_new(self) -> str:
        response = httpx.post(self.url, json=self.body, headers=HEADERS, timeout=TIMEOUT_S)
        response.raise_for_status()
        return _content(response.json())

    def lifeos_shared(self) -> str:
        return self.provider_shared.call(self.request).content

    def raw_shared(self) -> str:
        with httpx.Client(transport=self.transport, headers=HEADERS) as client:
            response = client.post(self.url, json=self.body, timeout=TIMEOUT_S)
        response.raise_for_status()
        return _content(response.json())

    def raw_reused(self) -> str:
        response = self.client.post(self.url, json=self.body, timeout=TIMEOUT_S)
        response.raise_for_status()
        return _content(response.json())

    def close(self) -> None:
        self.client.close()
        self.transport.close()


def _batch(cassette: Cassette, call: Callable[[], str], calls: int) -> list[float]:
    """µs for each of ``calls`` calls, the cassette reset first (untimed)."""
    cassette.reset()
    samples: list[float] = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000.0)
    return samples


def _client_only_us() -> float:
    """Median µs to open and close an ``httpx.Client`` with the provider's headers."""
    samples = []
    for _ in range(CLIENT_ONLY_CALLS):
        start = time.perf_counter_ns()
        with httpx.Client(headers=HEADERS):
            pass
        samples.append((time.perf_counter_ns() - start) / 1000.0)
    return statistics.median(samples)


def _summary(label: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p10 = ordered[len(ordered) // 10]
    p90 = ordered[len(ordered) * 9 // 10]
    print(
        f"{label:<34} {len(samples):>5} calls: median {median:8.1f} µs/call "
        f"(p10 {p10:8.1f}, p90 {p90:8.1f}, min {ordered[0]:8.1f})"
    )
    return median


def _profile(cassette: Cassette, label: str, call: Callable[[], str]) -> None:
    cassette.reset()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILE_CALLS):
        call()
    profiler.disable()
    entries = pstats.Stats(profiler).stats.items()  # type: ignore[attr-defined]
    rows = [
        (
            f"{func} ({Path(filename).name}:{line})" if line else func,
            ncalls,
            tottime,
            cumtime,
            f"{os.sep}lifeos{os.sep}" in filename,
        )
        for (filename, line, func), (_, ncalls, tottime, cumtime, _) in entries
    ]
    total = sum(r[2] for r in rows) / PROFILE_CALLS * 1e6
    print(
        f"  cProfile of {label} ({PROFILE_CALLS} calls, main thread only, profiled "
        f"so inflated: {total:.1f} µs/call in all), top own time, µs/call:"
    )
    for name, ncalls, tottime, cumtime, _ in sorted(rows, key=lambda r: r[2], reverse=True)[:15]:
        print(
            f"    {tottime / PROFILE_CALLS * 1e6:8.1f} own {cumtime / PROFILE_CALLS * 1e6:8.1f} "
            f"cum {ncalls / PROFILE_CALLS:6.1f} calls/call  {name}"
        )
    print("  cProfile, LifeOS functions by cumulative time, µs/call:")
    ours = sorted((r for r in rows if r[4]), key=lambda r: r[3], reverse=True)
    for name, ncalls, _, cumtime, _ in ours[:8]:
        print(
            f"    {cumtime / PROFILE_CALLS * 1e6:8.1f} cum {ncalls / PROFILE_CALLS:6.1f} "
            f"calls/call  {name}"
        )


def _ratio_line(label: str, ratio: float, per_round: list[float], tail: str) -> None:
    print(
        f"ratio {label}: {ratio:.2f}x (median per call; per-round medians "
        f"{min(per_round):.2f}-{max(per_round):.2f}x){tail}"
    )


def main() -> None:
    cassette = Cassette()
    body = chat_request(AgentCall(prompt=PROMPT), MODEL)
    for _ in range(RECORDINGS):
        cassette.record(body, RESPONSE)
    server = ReplayServer(cassette)
    server.start()
    sides = _Sides(server)
    try:
        lifeos, raw_new = "LifeOS provider.call", "raw httpx.post"
        lifeos_shared, raw_shared = "LifeOS, shared transport", "raw new Client, shared transport"
        reused = "raw httpx.Client reused"
        variants: list[tuple[str, Callable[[], str], int]] = [
            (lifeos, sides.lifeos, CALLS_DEFAULT),
            (raw_new, sides.raw_new, CALLS_DEFAULT),
            (lifeos_shared, sides.lifeos_shared, CALLS_SHARED),
            (raw_shared, sides.raw_shared, CALLS_SHARED),
            (reused, sides.raw_reused, CALLS_REUSED),
        ]
        for label, call, _ in variants:
            cassette.reset()
            got = call()
            if got != EXPECTED_CONTENT:
                raise RuntimeError(f"{label} did not get the recorded answer: {got!r}")
            _batch(cassette, call, WARMUP_CALLS)
        print(
            f"one recorded request served by ReplayServer on 127.0.0.1, {ROUNDS} interleaved "
            "rounds; every side a new connection per call except the reused client"
        )
        samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        round_medians: dict[str, list[float]] = {label: [] for label, _, _ in variants}
        for number in range(ROUNDS):
            shift = number % len(variants)
            for label, call, calls in variants[shift:] + variants[:shift]:
                batch = _batch(cassette, call, calls)
                samples[label].extend(batch)
                round_medians[label].append(statistics.median(batch))
        served = cassette.calls()
        if served["unmatched"]:
            raise RuntimeError(f"the replay server missed requests: {served['unmatched'][:3]}")

        median = {label: _summary(label, samples[label]) for label, _, _ in variants}
        print(
            f"{'httpx.Client() open+close alone':<34} {CLIENT_ONLY_CALLS:>5} times: "
            f"median {_client_only_us():8.1f} µs (no request)"
        )

        def per_round(over: str, under: str) -> list[float]:
            return [a / b for a, b in zip(round_medians[over], round_medians[under], strict=True)]

        ratio = median[lifeos] / median[reused]
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        _ratio_line(
            "LifeOS / raw reused httpx.Client (both keep their connection; the target)",
            ratio,
            per_round(lifeos, reused),
            f"; {verdict} the target of <= {TARGET_RATIO}x",
        )
        shared = median[lifeos_shared] / median[raw_shared]
        _ratio_line(
            "LifeOS / raw new Client per call, both on one shared transport",
            shared,
            per_round(lifeos_shared, raw_shared),
            f"; difference {median[lifeos_shared] - median[raw_shared]:.1f} µs/call",
        )
        _ratio_line(
            "LifeOS / raw httpx.post (a new client and connection per call; information)",
            median[lifeos] / median[raw_new],
            per_round(lifeos, raw_new),
            "; shows what building an httpx.Client per call would cost",
        )
        if ratio > TARGET_RATIO:
            _profile(cassette, lifeos, sides.lifeos)
    finally:
        sides.close()
        server.stop()


if __name__ == "__main__":
    main()
