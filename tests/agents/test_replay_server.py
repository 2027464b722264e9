"""The replay server and the recording proxy, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeos.agents.cassette import Cassette
from lifeos.agents.replay_server import RecordingProxy, ReplayServer

MODEL = "scripted/model"
TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}]


def request(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def answer(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


LONG = "Hello from the cassette. " * 10
TOOL_CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "write", "arguments": json.dumps({"filePath": "a.txt", "content": "x"})},
}


def make_cassette() -> Cassette:
    cassette = Cassette()
    cassette.record(request("hi"), answer(LONG))
    cassette.record(request("write it", tools=TOOLS), answer(None, [TOOL_CALL]))
    cassette.record(request("again"), answer("first"))
    cassette.record(request("again"), answer("second"))
    return cassette


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(make_cassette()) as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def stream(client: httpx.Client, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streamed request; return the parsed chunks (checking the [DONE] end)."""
    chunks: list[dict[str, Any]] = []
    done = False
    with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line[len("data: ") :]
            assert not done, "data after [DONE]"
            if data == "[DONE]":
                done = True
                continue
            chunks.append(json.loads(data))
    assert done
    return chunks


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild the assistant message and finish reason from stream chunks."""
    message: dict[str, Any] = {"role": None, "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("role"):
                message["role"] = delta["role"]
            message["content"] += delta.get("content") or ""
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    tc["index"],
                    {"id": None, "type": None, "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = tc.get("id") or slot["id"]
                slot["type"] = tc.get("type") or slot["type"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish_reason": finish}


def test_non_streaming_round_trip(server: ReplayServer, client: httpx.Client) -> None:
    resp = client.post(
        f"{server.url}/chat/completions",
        json=request("hi"),
        headers={"Authorization": "Bearer sk-secret"},
    )
    assert resp.status_code == 200
    assert resp.json() == answer(LONG)
    # the path without /v1 works too
    base = server.url.removesuffix("/v1")
    resp = client.post(f"{base}/chat/completions", json=request("again"))
    assert resp.json()["choices"][0]["message"]["content"] == "first"


def test_streaming_content(server: ReplayServer, client: httpx.Client) -> None:
    chunks = stream(client, server.url, request("hi", stream=True))
    assert len(chunks) > 3  # role, several content pieces, finish
    assert all("usage" not in c for c in chunks)
    got = reassemble(chunks)
    assert got == {"message": {"role": "assistant", "content": LONG}, "finish_reason": "stop"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[0]["id"] == "chatcmpl-1" and chunks[0]["model"] == MODEL


def test_streaming_tool_call_and_usage(server: ReplayServer, client: httpx.Client) -> None:
    body = request("write it", tools=TOOLS, stream=True, stream_options={"include_usage": True})
    chunks = stream(client, server.url, body)
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == answer(None)["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    got = reassemble(chunks[:-1])
    assert got["finish_reason"] == "tool_calls"
    assert got["message"]["tool_calls"] == [TOOL_CALL]
    assert got["message"]["content"] == ""
    first_tc = next(c for c in chunks if c["choices"][0]["delta"].get("tool_calls"))
    start = first_tc["choices"][0]["delta"]["tool_calls"][0]
    assert start["index"] == 0 and start["id"] == "call_abc" and start["type"] == "function"
    assert start["function"]["name"] == "write"


def test_unmatched_request_is_404_and_reported(server: ReplayServer, client: httpx.Client) -> None:
    body = request("never recorded")
    key = server.cassette.key(body)
    resp = client.post(f"{server.url}/chat/completions", json=body)
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {
            "message": f"no recording for request key {key}",
            "type": "lifeos_replay_miss",
            "code": "replay_miss",
        }
    }
    base = server.url.removesuffix("/v1")
    calls = client.get(f"{base}/_lifeos/calls").json()
    assert [m["key"] for m in calls["unmatched"]] == [key]
    assert calls["total"] == 0


def test_calls_count_per_key_and_same_key_in_order(
    server: ReplayServer, client: httpx.Client
) -> None:
    url = f"{server.url}/chat/completions"
    contents = [
        client.post(url, json=request("again")).json()["choices"][0]["message"]["content"]
        for _ in range(2)
    ]
    assert contents == ["first", "second"]
    assert client.post(url, json=request("again")).status_code == 404  # all served
    assert client.post(url, json=request("hi")).status_code == 200
    calls = client.get(f"{server.url.removesuffix('/v1')}/_lifeos/calls").json()
    cassette = server.cassette
    assert calls["served"] == {
        cassette.key(request("again")): 2,
        cassette.key(request("hi")): 1,
    }
    assert calls["total"] == 3
    assert calls["unmatched"] == [{"key": cassette.key(request("again")), "served_before": 2}]


def test_malformed_json_is_400(server: ReplayServer, client: httpx.Client) -> None:
    url = f"{server.url}/chat/completions"
    resp = client.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "bad_json"
    assert client.post(url, json=[1, 2]).status_code == 400
    assert server.cassette.calls()["unmatched"] == []


def test_health_and_models(server: ReplayServer, client: httpx.Client) -> None:
    base = server.url.removesuffix("/v1")
    assert client.get(f"{base}/health").json() == {"status": "ok"}
    models = client.get(f"{server.url}/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert client.get(f"{base}/nowhere").status_code == 404


def test_url_needs_start() -> None:
    srv = ReplayServer(Cassette())
    with pytest.raises(RuntimeError):
        _ = srv.url
    srv.stop()  # stopping a server never started is harmless


def test_recording_proxy_writes_a_cassette_that_replays(
    tmp_path: Path, client: httpx.Client
) -> None:
    path = tmp_path / "recorded.jsonl"
    upstream_cassette = make_cassette()
    secret = "Bearer sk-very-secret-token"
    with (
        ReplayServer(upstream_cassette) as upstream,
        RecordingProxy(upstream.url, Cassette(), path) as proxy,
    ):
        url = f"{proxy.url}/chat/completions"
        headers = {"Authorization": secret}
        plain = client.post(url, json=request("hi"), headers=headers)
        assert plain.status_code == 200 and plain.json() == answer(LONG)
        assert path.is_file()  # written after the first call
        streamed_body = request(
            "write it", tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
        with client.stream("POST", url, json=streamed_body, headers=headers) as resp:
            lines = [line for line in resp.iter_lines() if line]
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        assert lines[-1] == "data: [DONE]"
        assert reassemble(chunks[:-1])["message"]["tool_calls"] == [TOOL_CALL]
        assert chunks[-1]["usage"] == answer(None)["usage"]
        missing = client.post(url, json=request("not upstream either"), headers=headers)
        assert missing.status_code == 404
        # the upstream was asked without streaming
        upstream_calls = upstream_cassette.calls()
        assert upstream_calls["total"] == 2

    text = path.read_text(encoding="utf-8")
    assert "sk-very-secret-token" not in text
    assert "authorization" not in text.lower()
    replayed = Cassette.load(path)
    assert sum(len(v) for v in replayed.recordings.values()) == 2
    with ReplayServer(replayed) as again:
        url = f"{again.url}/chat/completions"
        assert client.post(url, json=request("hi")).json() == answer(LONG)
        assert client.post(url, json=request("write it", tools=TOOLS)).json() == answer(
            None, [TOOL_CALL]
        )


def test_a_repeated_idempotency_key_gets_the_first_answer_again(
    server: ReplayServer, client: httpx.Client
) -> None:
    """A client that lost an answer (it crashed before recording it) asks again with the
    same key: the same answer, no recording used, the repeat counted apart."""
    url = f"{server.url}/chat/completions"

    def ask(key: str | None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        resp = client.post(url, json=request("again"), headers=headers)
        assert resp.status_code == 200
        return str(resp.json()["choices"][0]["message"]["content"])

    assert [ask("k-1"), ask("k-1"), ask("k-2"), ask("k-1")] == ["first", "first", "second", "first"]
    assert client.post(url, json=request("again")).status_code == 404  # both recordings used
    calls = client.get(f"{server.url.removesuffix('/v1')}/_lifeos/calls").json()
    assert calls["total"] == 2 and calls["idempotent_repeats"] == 2


def test_an_idempotency_key_reused_for_another_request_is_refused(
    server: ReplayServer, client: httpx.Client
) -> None:
    url = f"{server.url}/chat/completions"
    headers = {"Idempotency-Key": "k-9"}
    assert client.post(url, json=request("hi"), headers=headers).status_code == 200
    other = client.post(url, json=request("again"), headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
