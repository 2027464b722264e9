"""The replay provider: record into a cassette, replay, misses, order and shuffling."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from lifeos.agents.api import AgentCall, AgentProvider, ReplayMiss
from lifeos.agents.cassette import Cassette, Normaliser
from lifeos.agents.providers.openai_compat import chat_request
from lifeos.agents.providers.replay import ReplayProvider


def body(text: str, prompt_tokens: int = 10) -> dict[str, Any]:
    return {
        "id": f"id-{text}",
        "model": "m-1",
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 3},
    }


CALLS = [AgentCall(prompt=f"question {i}", model="m-1") for i in range(6)]


def recorded() -> Cassette:
    cassette = Cassette()
    for i, call in enumerate(CALLS):
        cassette.record(chat_request(call, None), body(f"answer {i}"))
    return cassette


def test_is_a_provider() -> None:
    assert isinstance(ReplayProvider(Cassette()), AgentProvider)


def test_record_then_replay() -> None:
    provider = ReplayProvider(recorded())
    for i, call in enumerate(CALLS):
        response = provider.call(call)
        assert response.content == f"answer {i}"
        assert response.call_id == f"id-answer {i}"
        assert response.usage.available
        assert response.usage.input_tokens == 10
        assert response.latency_ms is None


def test_pricing_applies() -> None:
    provider = ReplayProvider(recorded(), pricing={"input_per_mtok": 1_000_000.0})
    usage = provider.call(CALLS[0]).usage
    assert usage.cost_source == "computed"
    assert usage.cost_usd == pytest.approx(10.0)


def test_default_model_joins_the_key() -> None:
    cassette = Cassette()
    cassette.record(chat_request(AgentCall(prompt="q"), "m-2"), body("a"))
    assert ReplayProvider(cassette, model="m-2").call(AgentCall(prompt="q")).content == "a"
    with pytest.raises(ReplayMiss):
        ReplayProvider(cassette).call(AgentCall(prompt="q"))


def test_one_character_change_is_a_miss_naming_the_key() -> None:
    cassette = recorded()
    changed = AgentCall(prompt="question 0!", model="m-1")
    with pytest.raises(ReplayMiss) as info:
        ReplayProvider(cassette).call(changed)
    key = cassette.key(chat_request(changed, None))
    assert info.value.key == key
    assert key in str(info.value)


def test_normalised_text_does_not_change_the_key() -> None:
    cassette = Cassette(normalisers=[Normaliser(r"/tmp/\S+", "<TMP>")])
    cassette.record(chat_request(AgentCall(prompt="in /tmp/abc1"), None), body("ok"))
    assert ReplayProvider(cassette).call(AgentCall(prompt="in /tmp/zz9")).content == "ok"


def test_same_key_served_in_order_then_miss() -> None:
    cassette = Cassette()
    call = AgentCall(prompt="again", model="m-1")
    for text in ("first", "second", "third"):
        cassette.record(chat_request(call, None), body(text))
    provider = ReplayProvider(cassette)
    assert [provider.call(call).content for _ in range(3)] == ["first", "second", "third"]
    with pytest.raises(ReplayMiss, match="all its recordings were served"):
        provider.call(call)


def test_shuffled_cassette_file_gives_identical_results(tmp_path: Path) -> None:
    cassette = recorded()
    repeat = AgentCall(prompt="again", model="m-1")
    for text in ("first", "second"):
        cassette.record(chat_request(repeat, None), body(text))
    path = tmp_path / "c.jsonl"
    cassette.dump(path)

    header, *lines = path.read_text(encoding="utf-8").splitlines()
    # Shuffle lines of different keys, keeping the two same-key lines in their order.
    same = [line for line in lines if '"content":"again"' in line]
    others = [line for line in lines if line not in same]
    assert len(same) == 2 and len(others) == len(CALLS)
    random.Random(7).shuffle(others)
    shuffled = [others[0], same[0], *others[1:4], same[1], *others[4:]]
    assert shuffled != lines
    shuffled_path = tmp_path / "shuffled.jsonl"
    shuffled_path.write_text("\n".join([header, *shuffled]) + "\n", encoding="utf-8")

    sequence = [*CALLS, repeat, repeat]

    def play(p: Path) -> list[Any]:
        provider = ReplayProvider(Cassette.load(p))
        return [provider.call(call) for call in sequence]

    original = play(path)
    assert play(shuffled_path) == original
    assert [r.to_dict() for r in play(shuffled_path)] == [r.to_dict() for r in original]
    assert [r.content for r in original[-2:]] == ["first", "second"]
