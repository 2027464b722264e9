"""The OpenCode usage limit against a fake ``opencode serve`` on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lifeos.agents.api import AgentCall, AgentError
from lifeos.agents.providers.opencode import OpenCodeProvider, UsageLimit
from lifeos.errors import ReasonCode

SESSION = "ses_limit"
OTHER = "ses_other"
USER_MSG = "msg_user"
PASSWORD = "s3cret"


def updated(session: str, msg_id: str, tokens: int, cost: float = 0.0) -> dict[str, Any]:
    """A ``message.updated`` event for an assistant message with ``tokens`` input tokens."""
    return {
        "type": "message.updated",
        "properties": {
            "info": {
                "id": msg_id,
                "sessionID": session,
                "parentID": USER_MSG,
                "role": "assistant",
                "modelID": "scripted",
                "providerID": "lifeos-replay",
                "tokens": {
                    "input": tokens,
                    "output": 0,
                    "reasoning": 0,
                    "cache": {"read": 0, "write": 0},
                },
                "cost": cost,
            }
        },
    }


def assistant(msg_id: str, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": msg_id,
        "sessionID": SESSION,
        "parentID": USER_MSG,
        "role": "assistant",
        "modelID": "scripted",
        "providerID": "lifeos-replay",
        "finish": "stop",
        "cost": 0.001,
        "tokens": {"input": 100, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}},
    }
    info.update(extra)
    return info


class FakeOpenCode:
    """A scripted OpenCode server: sessions, the event stream, messages and aborts."""

    def __init__(
        self,
        script: list[dict[str, Any]],
        *,
        complete: bool = False,
        event_status: int = 200,
        interval_s: float = 0.05,
    ) -> None:
        self.script = script
        self.complete = complete
        self.event_status = event_status
        self.interval_s = interval_s
        self.message_started = threading.Event()
        self.events_done = threading.Event()
        self.aborted = threading.Event()
        self.closing = threading.Event()
        self.abort_calls: list[str] = []
        self.requests: list[str] = []
        self.auth_headers: list[str | None] = []
        self.reply = {
            "info": assistant("msg_a1"),
            "parts": [{"type": "text", "text": "Done."}],
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.requests.append(f"{self.command} {self.path}")
                fake.auth_headers.append(self.headers.get("Authorization"))

            def do_GET(self) -> None:
                self._record()
                if self.path == "/event":
                    fake.serve_events(self)
                elif self.path == f"/session/{SESSION}/message":
                    user = {"info": {"id": USER_MSG, "role": "user", "sessionID": SESSION}}
                    self._json(200, [{**user, "parts": []}, fake.reply])
                else:
                    self._json(404, {"error": "no route"})

            def do_POST(self) -> None:
                self._record()
                if self.path == "/session":
                    self._json(200, {"id": SESSION, "title": "lifeos"})
                elif self.path == f"/session/{SESSION}/message":
                    fake.message_started.set()
                    if fake.complete:
                        if "GET /event" in fake.requests:
                            fake.events_done.wait(10.0)
                        self._json(200, fake.reply)
                        return
                    fake.aborted.wait(10.0)
                    error = {
                        "name": "MessageAbortedError",
                        "data": {"message": "The operation was aborted."},
                    }
                    self._json(200, {"info": assistant("msg_a2", error=error), "parts": []})
                elif self.path.startswith("/session/") and self.path.endswith("/abort"):
                    fake.abort_calls.append(self.path.split("/")[2])
                    fake.aborted.set()
                    self._json(200, True)
                else:
                    self._json(404, {"error": "no route"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False
        self.server.block_on_close = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_events(self, handler: BaseHTTPRequestHandler) -> None:
        """The SSE stream: connected, the script once the message runs, then keep-alives."""
        if self.event_status != 200:
            handler.send_response(self.event_status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()

        def emit(chunk: bytes) -> bool:
            try:
                handler.wfile.write(chunk)
                handler.wfile.flush()
            except OSError:
                return False
            return True

        def event(body: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(body)}\n\n".encode()

        if not emit(event({"type": "server.connected", "properties": {}})):
            return
        while not self.message_started.wait(0.02):
            if self.closing.is_set():
                return
        for body in self.script:
            if self.closing.is_set() or not emit(event(body)):
                self.events_done.set()
                return
            time.sleep(self.interval_s)
        self.events_done.set()
        # keep the stream open (as OpenCode does) until the client goes away
        while not self.closing.wait(0.05):
            if not emit(b": keep-alive\n\n"):
                return

    def __enter__(self) -> FakeOpenCode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.aborted.set()
        self.events_done.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("opencode-usage")]


@pytest.fixture(autouse=True)
def no_leaked_watchers() -> Iterator[None]:
    yield
    assert watcher_threads() == []


def provider(fake: FakeOpenCode, **kwargs: Any) -> OpenCodeProvider:
    return OpenCodeProvider(fake.url, "lifeos-replay", "scripted", password=PASSWORD, **kwargs)


CALL = AgentCall(prompt="write hello.txt", timeout_s=30.0)

# other-session noise first; msg_a1 updated three times (latest 600, not 1200 summed);
# msg_a2 brings the session total to 900, then 1100 (crossed); the rest is never needed
CROSSING = [
    updated(OTHER, "msg_x", 1_000_000, cost=50.0),
    updated(SESSION, "msg_a1", 200, cost=0.002),
    updated(SESSION, "msg_a1", 400, cost=0.004),
    updated(SESSION, "msg_a1", 600, cost=0.006),
    updated(OTHER, "msg_x", 2_000_000, cost=90.0),
    updated(SESSION, "msg_a2", 300, cost=0.003),
    updated(SESSION, "msg_a2", 500, cost=0.005),
    updated(SESSION, "msg_a2", 900, cost=0.009),
    updated(SESSION, "msg_a3", 5000, cost=0.05),
]


def test_token_limit_aborts_the_session_mid_task() -> None:
    with FakeOpenCode(CROSSING) as fake:
        started = time.monotonic()
        with pytest.raises(AgentError) as caught:
            provider(fake).call(CALL, usage_limit=UsageLimit(max_tokens=1000))
        elapsed = time.monotonic() - started
        assert fake.abort_calls == [SESSION]
    err = caught.value
    assert err.reason == ReasonCode.BUDGET_EXCEEDED
    assert err.retryable is False
    assert "max_tokens=1000" in str(err)
    assert "seen 1100 tokens" in str(err)  # latest per message, summed; other session ignored
    assert "session aborted" in str(err)
    assert elapsed < 3.0


def test_cost_limit_from_the_constructor() -> None:
    with FakeOpenCode(CROSSING) as fake:
        oc = provider(fake, usage_limit=UsageLimit(max_cost_usd=0.01))
        with pytest.raises(AgentError) as caught:
            oc.call(CALL)
        assert fake.abort_calls == [SESSION]
    assert caught.value.reason == ReasonCode.BUDGET_EXCEEDED
    assert "max_cost_usd=0.01" in str(caught.value)
    assert "$0.011000" in str(caught.value)


def test_a_limit_never_crossed_lets_the_call_complete() -> None:
    script = [
        updated(SESSION, "msg_a1", 50, cost=0.0005),
        updated(SESSION, "msg_a1", 120, cost=0.001),
    ]
    with FakeOpenCode(script, complete=True) as fake:
        response = provider(fake).call(CALL, usage_limit=UsageLimit(max_tokens=1000))
        assert fake.abort_calls == []
        paths = list(fake.requests)
        auth = set(fake.auth_headers)
    assert response.content == "Done."
    assert response.usage.input_tokens == 100
    assert paths[:3] == ["POST /session", "GET /event", f"POST /session/{SESSION}/message"]
    assert len(auth) == 1 and all(a is not None and a.startswith("Basic ") for a in auth)


def test_events_from_other_sessions_are_ignored() -> None:
    script = [
        updated(OTHER, "msg_x", 1_000_000, cost=50.0),
        updated(OTHER, "msg_y", 2_000_000, cost=90.0),
        updated(SESSION, "msg_a1", 10, cost=0.0001),
    ]
    with FakeOpenCode(script, complete=True) as fake:
        response = provider(fake).call(
            CALL, usage_limit=UsageLimit(max_tokens=100, max_cost_usd=1.0)
        )
        assert fake.abort_calls == []
    assert response.content == "Done."


def test_no_limit_does_not_follow_events() -> None:
    with FakeOpenCode([], complete=True) as fake:
        provider(fake).call(CALL)
        assert "GET /event" not in fake.requests


def test_an_event_stream_that_cannot_be_followed_fails_before_the_message() -> None:
    with FakeOpenCode(CROSSING, event_status=404) as fake:
        with pytest.raises(AgentError) as caught:
            provider(fake).call(CALL, usage_limit=UsageLimit(max_tokens=1000))
        assert f"POST /session/{SESSION}/message" not in fake.requests
    assert caught.value.reason == ReasonCode.PROVIDER_ERROR
    assert caught.value.status == 404


def test_usage_limit_validation() -> None:
    with pytest.raises(ValueError, match="max_tokens or max_cost_usd"):
        UsageLimit()
    with pytest.raises(ValueError):
        UsageLimit(max_tokens=-1)
    with pytest.raises(ValueError):
        UsageLimit(max_cost_usd=float("nan"))
    assert UsageLimit(max_tokens=10).crossed(10, 0.0) is None
    assert UsageLimit(max_tokens=10).crossed(11, 0.0) == "max_tokens=10"
