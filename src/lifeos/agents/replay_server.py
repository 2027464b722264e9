"""An OpenAI-compatible chat-completions server answering from a cassette, and its recorder.

:class:`ReplayServer` serves ``POST /v1/chat/completions`` (and ``/chat/completions``)
from a :class:`~lifeos.agents.cassette.Cassette`: the recorded response as JSON, or — when
the request asks for ``"stream": true`` — as Server-Sent Events in OpenAI's
``chat.completion.chunk`` format (role, content, tool-call deltas, the finish reason,
the usage chunk when ``stream_options.include_usage`` is set, then ``[DONE]``). A request
with no recording is answered 404 with an OpenAI-style error naming its key.
``GET /_lifeos/calls`` reports what was served, ``GET /v1/models`` the models seen in the
cassette and ``GET /health`` says ok. A request carrying an ``Idempotency-Key`` it has
answered before gets that answer again without using a recording (counted apart, as
``idempotent_repeats``), as a provider that honours idempotency keys would.

:class:`RecordingProxy` forwards chat completions to a real upstream (always non-streamed),
records each exchange in a cassette, writes the cassette after every call and answers
the client in the form it asked for. Request headers — Authorization included — are
never stored. Both run on the standard library's threading HTTP server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from lifeos.agents.api import ReplayMiss
from lifeos.agents.cassette import Cassette

__all__ = ["RecordingProxy", "ReplayServer", "sse_events"]

COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
CONTENT_PIECE = 64
"""Streamed content is sent in pieces of at most this many characters."""


class HTTPFailure(Exception):
    """An error answer: an HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, kind: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "code": code}}


def _pieces(text: str, size: int = CONTENT_PIECE) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse_events(response: Mapping[str, Any], *, include_usage: bool = False) -> Iterator[str]:
    """Turn a non-streamed chat-completions response into streamed chunks.

    Args:
        response: The ``chat.completion`` body, as recorded.
        include_usage: Add the final chunk with empty ``choices`` and the usage, as
            OpenAI does for ``stream_options.include_usage``.

    Yields:
        Each Server-Sent Event (``data: ...\\n\\n``), ending with ``data: [DONE]``.
    """
    base: dict[str, Any] = {
        "id": response.get("id") or "chatcmpl-lifeos-replay",
        "object": "chat.completion.chunk",
        "created": response.get("created") or 0,
        "model": response.get("model") or "",
    }
    if response.get("system_fingerprint"):
        base["system_fingerprint"] = response["system_fingerprint"]

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {**base, "choices": choices, **extra}
        if include_usage and "usage" not in extra:
            chunk["usage"] = None
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def delta(index: int, body: dict[str, Any], finish: Any = None) -> list[dict[str, Any]]:
        return [{"index": index, "delta": body, "logprobs": None, "finish_reason": finish}]

    for position, choice in enumerate(response.get("choices") or []):
        index = int(choice.get("index", position))
        message = choice.get("message") or {}
        yield event(delta(index, {"role": message.get("role") or "assistant", "content": ""}))
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            for piece in _pieces(reasoning):
                yield event(delta(index, {"reasoning_content": piece}))
        content = message.get("content")
        if isinstance(content, str) and content:
            for piece in _pieces(content):
                yield event(delta(index, {"content": piece}))
        for number, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            start = {
                "index": number,
                "id": call.get("id") or f"call_{number}",
                "type": call.get("type") or "function",
                "function": {"name": function.get("name") or "", "arguments": ""},
            }
            yield event(delta(index, {"tool_calls": [start]}))
            arguments = function.get("arguments") or ""
            if arguments:
                more = {"index": number, "function": {"arguments": arguments}}
                yield event(delta(index, {"tool_calls": [more]}))
        finish = choice.get("finish_reason") or (
            "tool_calls" if message.get("tool_calls") else "stop"
        )
        yield event(delta(index, {}, finish))
    if include_usage:
        yield event([], usage=response.get("usage") or {})
    yield "data: [DONE]\n\n"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: _ChatServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a timeout, an abort) is not an error."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "LifeOSReplay/1"
    disable_nagle_algorithm = True  # headers and body go out at once on kept-alive sockets

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the server is used in tests and behind the CLI."""

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, events: Iterator[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in events:
            data = text.encode("utf-8")
            self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        """Health, models and the served-calls report."""
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        owner = self.server.owner
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "lifeos-replay"}
                for m in owner.models()
            ]
            self._send_json(200, {"object": "list", "data": models})
        elif path == "/_lifeos/calls":
            self._send_json(200, owner.calls())
        else:
            self._not_found(path)

    def _not_found(self, path: str) -> None:
        failure = HTTPFailure(404, f"no such endpoint: {path}", "invalid_request_error", "404")
        self._send_json(failure.status, failure.body)

    def do_POST(self) -> None:
        """Chat completions."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in COMPLETION_PATHS:
            self._not_found(path)
            return
        try:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HTTPFailure(
                    400, f"the request body is not JSON: {exc}", "invalid_request_error", "bad_json"
                ) from None
            if not isinstance(body, dict):
                raise HTTPFailure(
                    400,
                    "the request body must be a JSON object",
                    "invalid_request_error",
                    "bad_json",
                )
            authorization = self.headers.get("Authorization")
            key = self.headers.get("Idempotency-Key")
            response = self.server.owner.answer(body, authorization, key)
        except HTTPFailure as failure:
            self._send_json(failure.status, failure.body)
            return
        if body.get("stream") is True:
            options = body.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            self._send_stream(sse_events(response, include_usage=include))
        else:
            self._send_json(200, response)


class _ChatServer:
    """Runs the HTTP server on a background thread; subclasses answer completions."""

    def __init__(self, cassette: Cassette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cassette = cassette
        self.host = host
        self.port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._answered: dict[str, tuple[str, dict[str, Any]]] = {}
        self._repeats = 0
        self._lock = threading.Lock()

    def answer(
        self, body: dict[str, Any], authorization: str | None, idempotency_key: str | None
    ) -> dict[str, Any]:
        """Answer a request: again with the first answer for an idempotency key seen
        before (a key reused for another request is refused, 422), else through
        :meth:`complete`."""
        if not idempotency_key:
            return self.complete(body, authorization)
        asked = json.dumps(body, sort_keys=True)
        with self._lock:
            first = self._answered.get(idempotency_key)
            if first is not None:
                if first[0] != asked:
                    raise HTTPFailure(
                        422,
                        f"idempotency key {idempotency_key} was used for another request",
                        "invalid_request_error",
                        "idempotency_key_reused",
                    )
                self._repeats += 1
                return first[1]
        response = self.complete(body, authorization)
        with self._lock:
            return self._answered.setdefault(idempotency_key, (asked, response))[1]

    def calls(self) -> dict[str, Any]:
        """The cassette's served-calls report, with the idempotent repeats."""
        with self._lock:
            repeats = self._repeats
        return {**self.cassette.calls(), "idempotent_repeats": repeats}

    def complete(self, body: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        """Answer one chat-completions request (non-streamed form)."""
        raise NotImplementedError

    def models(self) -> list[str]:
        """The models named by the cassette's recorded requests, sorted."""
        names = {
            str(rec.request.get("model"))
            for recs in list(self.cassette.recordings.values())
            for rec in recs
            if rec.request.get("model")
        }
        return sorted(names)

    def start(self) -> None:
        """Bind the port and serve on a background thread."""
        if self._httpd is not None:
            return
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"lifeos-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL clients use (``http://HOST:PORT/v1``)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread."""
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> _ChatServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ReplayServer(_ChatServer):
    """Answer chat completions from a cassette's recordings, in order per key."""

    def complete(self, body: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        """The next recorded response for ``body``; a 404 failure when there is none."""
        try:
            recording = self.cassette.next(body)
        except ReplayMiss as miss:
            raise HTTPFailure(
                404, f"no recording for request key {miss.key}", "lifeos_replay_miss", "replay_miss"
            ) from None
        response = dict(recording.response)
        if "usage" not in response and recording.usage:
            response["usage"] = recording.usage
        return response

    def __enter__(self) -> ReplayServer:
        self.start()
        return self


class RecordingProxy(_ChatServer):
    """Forward chat completions to an upstream and record each exchange in a cassette.

    The upstream is always asked for a non-streamed answer; a client that asked for a
    stream gets it as Server-Sent Events built from that answer. The cassette is written
    to ``cassette_path`` after every recorded call. Headers are never recorded; the
    client's Authorization header is only passed on to the upstream.
    """

    def __init__(
        self,
        upstream_base_url: str,
        cassette: Cassette,
        cassette_path: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 600.0,
    ) -> None:
        super().__init__(cassette, host, port)
        self.upstream = upstream_base_url.rstrip("/")
        self.cassette_path = Path(cassette_path)
        self.timeout = timeout
        self._write_lock = threading.Lock()

    def complete(self, body: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        """Ask the upstream (non-streamed), record the exchange, return its answer."""
        import httpx

        forward = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        forward["stream"] = False
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            reply = httpx.post(
                f"{self.upstream}/chat/completions",
                json=forward,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise HTTPFailure(
                502, f"the upstream failed: {exc}", "lifeos_upstream_error", "upstream_error"
            ) from None
        try:
            answer = reply.json()
        except ValueError:
            answer = None
        if reply.status_code != 200 or not isinstance(answer, dict):
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                error = answer["error"]
                message = str(error.get("message") or error)
            else:
                message = f"the upstream answered HTTP {reply.status_code}"
            status = reply.status_code if reply.status_code != 200 else 502
            raise HTTPFailure(status, message, "lifeos_upstream_error", "upstream_error")
        self.cassette.record(body, answer)
        with self._write_lock:
            self.cassette.dump(self.cassette_path)
        return answer

    def __enter__(self) -> RecordingProxy:
        self.start()
        return self
