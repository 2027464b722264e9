"""The OpenCode provider: drive an ``opencode serve`` HTTP server, one session per call.

Two pieces:

* :class:`OpenCodeServer` starts an ephemeral ``opencode serve --pure`` in a repository
  (its own process group, a scratch ``HOME``, a free 127.0.0.1 port), waits until
  ``GET /global/health`` answers and kills the whole process group on :meth:`stop`.
* :class:`OpenCodeProvider` attaches to a server URL. :meth:`OpenCodeProvider.call`
  creates a session, sends the prompt as one user message with the configured
  ``{providerID, modelID}`` and parses the assistant reply: the text parts joined, the
  tools it ran, and usage — tokens and cost summed over every assistant message of the
  turn (a turn with a tool call has several), unavailable when OpenCode reported none.
  On timeout the session is aborted before :class:`AgentTimeout` is raised. With a
  :class:`UsageLimit`, a background thread follows ``GET /event`` while the message runs,
  sums the session's assistant usage and aborts the session once the limit is crossed;
  the call then raises ``BUDGET_EXCEEDED``.
  :meth:`OpenCodeProvider.changed_files` lists the files a turn changed.

HTTP failures are translated to :class:`AgentError` in one place (:meth:`_request`):
connection errors and 5xx are retryable, other statuses are not. Nothing is retried
here: a message may already have run tools, so the caller decides.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from lifeos.agents.api import (
    AgentCall,
    AgentError,
    AgentResponse,
    AgentTimeout,
    ToolCall,
    Usage,
    usage_from_counts,
)
from lifeos.errors import ReasonCode

__all__ = ["ChangedFile", "OpenCodeProvider", "OpenCodeServer", "UsageLimit", "parse_turn"]

_BODY_EXCERPT = 300
_LOG_TAIL = 2000
_XDG_DIRS = frozenset({"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"})
"""Inherited variables that would send OpenCode's state outside the scratch HOME."""
_SHORT_TIMEOUT_S = 30.0
"""The most a bookkeeping request (health, session, abort, diff) may take."""
_WATCH_JOIN_S = 5.0
"""The most stopping the event watcher may wait for its thread (beyond an abort it sends)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OpenCodeServer:
    """An ephemeral ``opencode serve --pure`` in ``directory``; a context manager."""

    def __init__(
        self,
        directory: Path,
        *,
        binary: str = "opencode",
        port: int | None = None,
        home: Path,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        """Configure the server (nothing starts until :meth:`start`).

        Args:
            directory: The repository OpenCode works in (its ``opencode.json`` applies).
            binary: The ``opencode`` executable.
            port: The port on 127.0.0.1; a free one when None.
            home: The scratch ``HOME`` (OpenCode keeps its state and logs under it).
            env: Extra environment variables (``OPENCODE_SERVER_PASSWORD`` among them).
                Inherited ``OPENCODE_*`` and ``XDG_*_HOME`` variables are dropped, so the
                server sees only this configuration and keeps its state under ``home``.
            startup_timeout_s: How long to wait for the health check to pass.
        """
        self.directory = Path(directory)
        self.binary = binary
        self.port = port
        self.home = Path(home)
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.home / "opencode-serve.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if self._proc is None or self.port is None:
            raise RuntimeError("the OpenCode server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id) while running."""
        return self._proc.pid if self._proc is not None else None

    def log_tail(self) -> str:
        """The end of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-_LOG_TAIL:].strip() or "(empty log)"

    def _fail(self, what: str) -> AgentError:
        return AgentError(
            f"OpenCode server in {self.directory} {what}; log {self.log_path}: {self.log_tail()}",
            ReasonCode.PROVIDER_ERROR,
        )

    def start(self) -> None:
        """Start the server and wait until ``GET /global/health`` answers 200.

        Raises:
            AgentError: ``PROVIDER_ERROR`` naming the log tail when the binary cannot be
                run, the process exits, or it is not healthy within the start-up timeout
                (the process group is killed then).
        """
        if self._proc is not None:
            return
        if self.port is None:
            self.port = _free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OPENCODE_") and k not in _XDG_DIRS
        }
        env = {**inherited, **self.env, "HOME": str(self.home)}
        args = [
            self.binary,
            "serve",
            "--pure",
            "--port",
            str(self.port),
            "--hostname",
            "127.0.0.1",
        ]
        with self.log_path.open("wb") as log:
            try:
                self._proc = subprocess.Popen(
                    args,
                    cwd=self.directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise AgentError(
                    f"cannot run {self.binary!r}: {exc.strerror or exc}",
                    ReasonCode.PROVIDER_ERROR,
                ) from exc
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        proc = self._proc
        assert proc is not None
        url = f"{self.url}/global/health"
        auth = _auth(self.env.get("OPENCODE_SERVER_PASSWORD"))
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(auth=auth, timeout=2.0) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise self._fail(f"exited with status {code} before it was healthy")
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise self._fail(f"was not healthy within {self.startup_timeout_s:g}s")
                time.sleep(0.1)

    def stop(self) -> None:
        """Kill the process group (SIGTERM, then SIGKILL after 5 s); harmless if stopped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                # the leader is gone; make sure no child of the group lingers
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.wait(timeout=5.0)

    def __enter__(self) -> OpenCodeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _auth(password: str | None) -> httpx.BasicAuth | None:
    return httpx.BasicAuth("opencode", password) if password else None


@dataclasses.dataclass(frozen=True)
class ChangedFile:
    """One file a turn changed, from ``GET /session/{id}/diff``."""

    file: str
    status: str = ""
    """``added``, ``modified``, ``deleted`` (as OpenCode reports it)."""
    additions: int = 0
    deletions: int = 0
    patch: str = ""


def _bad_body(detail: str) -> AgentError:
    return AgentError(f"malformed OpenCode response: {detail}", ReasonCode.PROVIDER_ERROR)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _turn_usage(infos: Sequence[Mapping[str, Any]], did_work: bool) -> Usage:
    """Tokens and cost summed over a turn's assistant messages; unavailable if unreported."""
    totals = {"input": 0, "output": 0, "reasoning": 0, "read": 0, "write": 0}
    cost = 0.0
    reported = False
    for info in infos:
        tokens = info.get("tokens")
        if not isinstance(tokens, Mapping):
            continue
        input_tokens, output_tokens = _count(tokens.get("input")), _count(tokens.get("output"))
        if input_tokens is None or output_tokens is None:
            continue
        reported = True
        cache = _mapping(tokens.get("cache"))
        totals["input"] += input_tokens
        totals["output"] += output_tokens
        totals["reasoning"] += _count(tokens.get("reasoning")) or 0
        totals["read"] += _count(cache.get("read")) or 0
        totals["write"] += _count(cache.get("write")) or 0
        cost += _number(info.get("cost")) or 0.0
    if not reported:
        return Usage()
    usage = usage_from_counts(
        totals["input"],
        totals["output"],
        did_work,
        reasoning_tokens=totals["reasoning"],
        cache_read_tokens=totals["read"],
        cache_write_tokens=totals["write"],
    )
    if usage.available and cost > 0:
        usage = dataclasses.replace(usage, cost_usd=round(cost, 10), cost_source="reported")
    return usage


def _message_error(info: Mapping[str, Any]) -> AgentError | None:
    error = info.get("error")
    if not isinstance(error, Mapping):
        return None
    name = str(error.get("name") or "error")
    data = _mapping(error.get("data"))
    message = str(data.get("message") or error.get("message") or name)
    status = _count(data.get("statusCode"))
    retryable = bool(data.get("isRetryable")) or (status is not None and status >= 500)
    return AgentError(
        f"OpenCode reported {name}: {message}",
        ReasonCode.PROVIDER_ERROR,
        retryable=retryable,
        status=status,
    )


def parse_turn(
    reply: Any,
    turn: Sequence[Mapping[str, Any]] = (),
    latency_ms: float | None = None,
) -> AgentResponse:
    """An :class:`AgentResponse` from OpenCode's answer to one user message.

    Args:
        reply: The ``POST /session/{id}/message`` body: ``{info, parts}`` of the last
            assistant message.
        turn: The ``info`` of every assistant message of the turn (each answers the same
            user message); usage is summed over them. Empty: the reply's own ``info``.
        latency_ms: The wall time of the call, if measured.

    Returns:
        Content from the text parts, tool calls from the tool parts, ``call_id`` the
        assistant message id, ``model`` its model id, and the turn's usage (unavailable
        when OpenCode reported no tokens, or zero tokens for a reply with content; the
        cost is unavailable when absent or zero).

    Raises:
        AgentError: The body is malformed, or the message carries an error.
    """
    if not isinstance(reply, Mapping):
        raise _bad_body("the message reply is not a JSON object")
    info = reply.get("info")
    if not isinstance(info, Mapping):
        raise _bad_body("the message reply has no info")
    error = _message_error(info)
    if error is not None:
        raise error
    parts = reply.get("parts")
    if not isinstance(parts, list):
        raise _bad_body("the message reply has no parts list")
    texts: list[str] = []
    tools: list[ToolCall] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            if not part.get("synthetic"):
                texts.append(part["text"])
        elif part.get("type") == "tool":
            state = _mapping(part.get("state"))
            arguments = json.dumps(state.get("input") or {}, sort_keys=True)
            tools.append(
                ToolCall(
                    id=str(part.get("callID") or part.get("id") or ""),
                    name=str(part.get("tool") or ""),
                    arguments=arguments,
                )
            )
    content = "".join(texts)
    infos = list(turn) or [info]
    finish = info.get("finish")
    return AgentResponse(
        content=content,
        tool_calls=tuple(tools),
        finish_reason=finish if isinstance(finish, str) else None,
        usage=_turn_usage(infos, did_work=bool(content or tools)),
        call_id=str(info.get("id") or ""),
        model=str(info.get("modelID") or ""),
        latency_ms=latency_ms,
        raw=reply,
    )


@dataclasses.dataclass(frozen=True)
class UsageLimit:
    """The most one OpenCode call may use before its session is aborted.

    Tokens are input + output + reasoning summed over the session's assistant messages
    (cache reads and writes are not counted); the cost is OpenCode's reported cost, or the
    provider's pricing applied to the tokens when OpenCode reports none. The limit is
    crossed when a figure goes *above* its maximum.
    """

    max_tokens: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("a usage limit needs max_tokens or max_cost_usd")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool) or self.max_tokens < 0
        ):
            raise ValueError(f"max_tokens must be a non-negative int, not {self.max_tokens!r}")
        if self.max_cost_usd is not None and not self.max_cost_usd >= 0:
            raise ValueError(f"max_cost_usd must be non-negative, not {self.max_cost_usd!r}")

    def crossed(self, tokens: int, cost_usd: float) -> str | None:
        """Which maximum ``tokens`` / ``cost_usd`` exceed, described; None when within."""
        if self.max_tokens is not None and tokens > self.max_tokens:
            return f"max_tokens={self.max_tokens}"
        if self.max_cost_usd is not None and cost_usd > self.max_cost_usd:
            return f"max_cost_usd={self.max_cost_usd:g}"
        return None


def _message_usage(
    info: Mapping[str, Any], pricing: Mapping[str, float] | None
) -> tuple[int, float]:
    """The tokens (input + output + reasoning) and cost of one assistant message info."""
    tokens = _mapping(info.get("tokens"))
    cache = _mapping(tokens.get("cache"))
    inp = _count(tokens.get("input")) or 0
    out = _count(tokens.get("output")) or 0
    reasoning = _count(tokens.get("reasoning")) or 0
    cost = _number(info.get("cost")) or 0.0
    if cost == 0.0 and pricing:
        usage = Usage.reported(
            inp,
            out,
            cache_read_tokens=_count(cache.get("read")) or 0,
            cache_write_tokens=_count(cache.get("write")) or 0,
        ).priced(pricing)
        cost = usage.cost_usd or 0.0
    return inp + out + reasoning, cost


def _sse_events(lines: Iterator[str]) -> Iterator[Any]:
    """The decoded JSON ``data`` of each server-sent event (others skipped)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    yield json.loads("\n".join(data))
                except json.JSONDecodeError:
                    pass
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        try:
            yield json.loads("\n".join(data))
        except json.JSONDecodeError:
            pass


class _UsageWatcher:
    """Follows ``GET /event`` in a thread; aborts ``session_id`` once ``limit`` is crossed.

    The stream is opened synchronously by :meth:`start` (so a failure surfaces before the
    message is sent), read in a daemon thread, and always closed by :meth:`stop`.
    """

    def __init__(
        self,
        provider: OpenCodeProvider,
        session_id: str,
        limit: UsageLimit,
    ) -> None:
        self._provider = provider
        self._session_id = session_id
        self._limit = limit
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, float]] = {}
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._thread: threading.Thread | None = None
        self.crossed: str | None = None
        """The maximum crossed (``max_tokens=...``), once it has been."""
        self.aborted = False
        """Whether the server confirmed the abort."""
        self.tokens = 0
        self.cost_usd = 0.0

    def start(self, timeout_s: float) -> None:
        """Open the event stream and start following it.

        Raises:
            AgentTimeout: The stream did not open within ``timeout_s``.
            AgentError: It could not be opened (``PROVIDER_ERROR``).
        """
        url = f"{self._provider.base_url}/event"
        if timeout_s <= 0:
            raise AgentTimeout(f"GET {url}: no time left")
        client = self._provider._client()
        self._client = client
        try:
            request = client.build_request(
                "GET",
                "/event",
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(timeout_s, read=None),
            )
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            self.stop()
            raise AgentTimeout(f"GET {url}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self.stop()
            raise AgentError(
                f"GET {url}: cannot follow the OpenCode events: {exc}",
                ReasonCode.PROVIDER_ERROR,
                retryable=True,
            ) from exc
        self._response = response
        if response.status_code != 200:
            status = response.status_code
            self.stop()
            raise AgentError(
                f"GET {url}: HTTP {status}, cannot follow the events to enforce the usage limit",
                ReasonCode.PROVIDER_ERROR,
                retryable=status >= 500 or status == 429,
                status=status,
            )
        self._thread = threading.Thread(
            target=self._run, name=f"opencode-usage-{self._session_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        response = self._response
        assert response is not None
        try:
            for event in _sse_events(response.iter_lines()):
                if self._stopping.is_set():
                    return
                if self._observe(event):
                    self._abort()
                    return
        except (httpx.HTTPError, OSError):
            return  # the stream was closed under us (stop) or broke; nothing to enforce

    def _observe(self, event: Any) -> bool:
        """Record one event; whether the limit was just crossed."""
        if not isinstance(event, Mapping) or event.get("type") != "message.updated":
            return False
        info = _mapping(_mapping(event.get("properties")).get("info"))
        if info.get("sessionID") != self._session_id or info.get("role") != "assistant":
            return False
        message_id = info.get("id")
        if not isinstance(message_id, str):
            return False
        with self._lock:
            self._latest[message_id] = _message_usage(info, self._provider.pricing)
            self.tokens = sum(t for t, _ in self._latest.values())
            self.cost_usd = sum(c for _, c in self._latest.values())
            if self.crossed is None:
                self.crossed = self._limit.crossed(self.tokens, self.cost_usd)
                return self.crossed is not None
        return False

    def _abort(self) -> None:
        with self._provider._client() as client:
            self.aborted = self._provider._abort(client, self._session_id)

    def stop(self) -> None:
        """Stop following: wake the reader, join it, close the stream and the client."""
        self._stopping.set()
        response, thread = self._response, self._thread
        if thread is not None and thread.is_alive() and response is not None:
            # a blocked read only wakes when the socket is shut down under it
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            if thread is not None:
                thread.join(_SHORT_TIMEOUT_S + _WATCH_JOIN_S)
        finally:
            try:
                if response is not None:
                    response.close()
            finally:
                if self._client is not None:
                    self._client.close()
            self._response = None
            self._client = None

    def error(self, cause: str = "") -> AgentError:
        """The ``BUDGET_EXCEEDED`` error naming the limit and the usage seen."""
        note = "session aborted" if self.aborted else "the abort was not confirmed"
        extra = f"; {cause}" if cause else ""
        return AgentError(
            f"OpenCode usage limit crossed ({self.crossed}): seen {self.tokens} tokens, "
            f"${self.cost_usd:.6f} ({note}: {self._session_id}){extra}",
            ReasonCode.BUDGET_EXCEEDED,
            retryable=False,
        )


def _prompt_text(call: AgentCall) -> tuple[str, str | None]:
    """The user text and the system text (from system messages) of ``call``."""
    system: list[str] = []
    user: list[str] = []
    for message in call.chat_messages():
        content = message.get("content")
        if not isinstance(content, str):
            continue
        (system if message.get("role") == "system" else user).append(content)
    if not user:
        raise AgentError("an OpenCode call needs a prompt", ReasonCode.INVALID_INPUT)
    return "\n\n".join(user), ("\n\n".join(system) or None)


class OpenCodeProvider:
    """An :class:`~lifeos.agents.api.AgentProvider` backed by an ``opencode serve`` server."""

    def __init__(
        self,
        base_url: str,
        provider_id: str,
        model_id: str,
        *,
        password: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 600.0,
        pricing: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        usage_limit: UsageLimit | None = None,
    ) -> None:
        """Configure the provider.

        Args:
            base_url: The server root, such as ``http://127.0.0.1:4096``.
            provider_id: The OpenCode provider id (a key of ``provider`` in opencode.json).
            model_id: The model id under that provider.
            password: The server password (HTTP basic auth, user ``opencode``).
            transport: The httpx transport (``httpx.MockTransport`` in tests).
            timeout_s: The most a call may take (a call's own ``timeout_s`` may lower it).
            pricing: Per-million-token prices used when OpenCode reports no cost.
            clock: Seconds, for latency and the deadline.
            usage_limit: The default usage limit of every call (None: unlimited).
        """
        self.base_url = base_url.rstrip("/")
        self.provider_id = provider_id
        self.model_id = model_id
        self._auth = _auth(password)
        self._transport = transport
        self.timeout_s = timeout_s
        self.pricing = dict(pricing) if pricing else None
        self._clock = clock
        self.usage_limit = usage_limit

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            transport=self._transport,
            auth=self._auth,
            headers={"Accept": "application/json"},
        )

    def _request(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        *,
        timeout_s: float,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request and decode its JSON; every failure mapped here, once."""
        url = f"{self.base_url}{path}"
        if timeout_s <= 0:
            raise AgentTimeout(f"{method} {url}: no time left")
        try:
            response = client.request(
                method, path, json=body, params=params, timeout=httpx.Timeout(timeout_s)
            )
        except httpx.TimeoutException as exc:
            raise AgentTimeout(f"{method} {url}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise AgentError(
                f"{method} {url}: cannot reach the OpenCode server: {exc}",
                ReasonCode.PROVIDER_ERROR,
                retryable=True,
            ) from exc
        status = response.status_code
        if status >= 300:
            excerpt = " ".join(response.text[:_BODY_EXCERPT].split())
            if status in (401, 403):
                what = "authentication failed (check the server password)"
            elif status == 404:
                what = "not found"
            elif status >= 500:
                what = "server error"
            else:
                what = "request refused"
            raise AgentError(
                f"{method} {url}: HTTP {status}, {what}: {excerpt}",
                ReasonCode.PROVIDER_ERROR,
                retryable=status >= 500 or status == 429,
                status=status,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AgentError(
                f"{method} {url}: the response body is not JSON: {response.text[:_BODY_EXCERPT]!r}",
                ReasonCode.PROVIDER_ERROR,
            ) from exc

    def health(self) -> dict[str, Any]:
        """``GET /global/health``: ``{"healthy": true, "version": ...}``."""
        with self._client() as client:
            body = self._request(client, "GET", "/global/health", timeout_s=_SHORT_TIMEOUT_S)
        if not isinstance(body, dict):
            raise _bad_body("the health answer is not an object")
        return body

    def create_session(self, title: str = "lifeos") -> str:
        """``POST /session``; the new session's id."""
        with self._client() as client:
            return self._create_session(client, title, _SHORT_TIMEOUT_S)

    def _create_session(self, client: httpx.Client, title: str, timeout_s: float) -> str:
        body = self._request(client, "POST", "/session", body={"title": title}, timeout_s=timeout_s)
        session_id = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(session_id, str) or not session_id:
            raise _bad_body("the new session has no id")
        return session_id

    def abort(self, session_id: str) -> bool:
        """``POST /session/{id}/abort``; whether the server confirmed it (never raises)."""
        with self._client() as client:
            return self._abort(client, session_id)

    def _abort(self, client: httpx.Client, session_id: str) -> bool:
        try:
            answer = self._request(
                client, "POST", f"/session/{session_id}/abort", timeout_s=_SHORT_TIMEOUT_S
            )
        except AgentError:
            return False
        return answer is True

    def diff(self, session_id: str, message_id: str) -> list[ChangedFile]:
        """The files changed since ``message_id`` (the turn's *user* message id)."""
        with self._client() as client:
            body = self._request(
                client,
                "GET",
                f"/session/{session_id}/diff",
                params={"messageID": message_id},
                timeout_s=_SHORT_TIMEOUT_S,
            )
        if not isinstance(body, list):
            raise _bad_body("the session diff is not a list")
        out = []
        for item in body:
            if not isinstance(item, Mapping) or not isinstance(item.get("file"), str):
                raise _bad_body("a session diff entry has no file")
            out.append(
                ChangedFile(
                    file=item["file"],
                    status=str(item.get("status") or ""),
                    additions=_count(item.get("additions")) or 0,
                    deletions=_count(item.get("deletions")) or 0,
                    patch=str(item.get("patch") or ""),
                )
            )
        return out

    def changed_files(self, session_id: str, message_id: str) -> list[str]:
        """The sorted paths (relative to the repository) a turn changed.

        Args:
            session_id: The session (``response.raw["info"]["sessionID"]``).
            message_id: The turn's user message id (``response.raw["info"]["parentID"]``);
                OpenCode lists nothing for the assistant message's own id.
        """
        return sorted({change.file for change in self.diff(session_id, message_id)})

    def call(self, request: AgentCall, *, usage_limit: UsageLimit | None = None) -> AgentResponse:
        """Answer ``request`` in a new session: one user message, one assistant turn.

        Args:
            request: The agent call; ``prompt`` (and any non-system messages) become the
                user text, system messages OpenCode's ``system`` field, and ``model`` —
                ``provider/model`` or just a model id — overrides the configured model.
            usage_limit: Overrides the provider's ``usage_limit`` for this call. When set,
                the session's events (``GET /event``) are followed while the message
                runs, and the session is aborted as soon as its usage crosses the limit.

        Returns:
            The parsed reply, usage summed over the turn and priced when OpenCode gave
            no cost; ``raw`` is the reply body (``info.sessionID``, ``info.parentID``).

        Raises:
            AgentTimeout: No answer within the timeout (the session is aborted first).
            AgentError: ``BUDGET_EXCEEDED`` (not retryable) when the usage limit was
                crossed, naming the limit and the usage seen; any other failure with its
                reason and retryability (``PROVIDER_ERROR`` when the events cannot be
                followed, before the message is sent).
        """
        limit = usage_limit if usage_limit is not None else self.usage_limit
        text, system = _prompt_text(request)
        provider_id, model_id = self.provider_id, self.model_id
        if request.model:
            if "/" in request.model:
                provider_id, model_id = request.model.split("/", 1)
            else:
                model_id = request.model
        start = self._clock()
        deadline = start + min(self.timeout_s, request.timeout_s)

        def left(cap: float | None = None) -> float:
            remaining = deadline - self._clock()
            return remaining if cap is None else min(cap, remaining)

        body: dict[str, Any] = {
            "parts": [{"type": "text", "text": text}],
            "model": {"providerID": provider_id, "modelID": model_id},
        }
        if system:
            body["system"] = system
        with self._client() as client:
            session_id = self._create_session(client, "lifeos", left(_SHORT_TIMEOUT_S))
            reply = self._send_message(client, session_id, body, limit, left)
            turn = self._turn_infos(client, session_id, reply, left(_SHORT_TIMEOUT_S))
        latency_ms = (self._clock() - start) * 1000.0
        response = parse_turn(reply, turn, latency_ms)
        return dataclasses.replace(response, usage=response.usage.priced(self.pricing))

    def _send_message(
        self,
        client: httpx.Client,
        session_id: str,
        body: Mapping[str, Any],
        limit: UsageLimit | None,
        left: Callable[..., float],
    ) -> Any:
        """``POST /session/{id}/message``, watched against ``limit`` when one is set."""
        watcher = None
        if limit is not None:
            watcher = _UsageWatcher(self, session_id, limit)
            watcher.start(left(_SHORT_TIMEOUT_S))
        failure: AgentError | None = None
        reply: Any = None
        try:
            reply = self._request(
                client, "POST", f"/session/{session_id}/message", body=body, timeout_s=left()
            )
        except AgentError as exc:
            failure = exc
        finally:
            if watcher is not None:
                watcher.stop()
        if watcher is not None and watcher.crossed is not None:
            raise watcher.error(str(failure) if failure else "") from failure
        if isinstance(failure, AgentTimeout):
            aborted = self._abort(client, session_id)
            note = "session aborted" if aborted else "the abort was not confirmed"
            raise AgentTimeout(f"{failure} ({note}: {session_id})") from failure
        if failure is not None:
            raise failure
        return reply

    def _turn_infos(
        self, client: httpx.Client, session_id: str, reply: Any, timeout_s: float
    ) -> list[Mapping[str, Any]]:
        """The infos of every assistant message answering the reply's user message."""
        info = reply.get("info") if isinstance(reply, Mapping) else None
        parent = info.get("parentID") if isinstance(info, Mapping) else None
        if not isinstance(parent, str) or info is None or info.get("error"):
            return []
        messages = self._request(
            client, "GET", f"/session/{session_id}/message", timeout_s=timeout_s
        )
        if not isinstance(messages, list):
            raise _bad_body("the session's message list is not a list")
        infos = [
            m["info"]
            for m in messages
            if isinstance(m, Mapping)
            and isinstance(m.get("info"), Mapping)
            and m["info"].get("role") == "assistant"
            and m["info"].get("parentID") == parent
        ]
        return infos
