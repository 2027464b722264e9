"""A scripted OpenAI-compatible model for benchmarks: any number of tasks, fixed latency.

The workers benchmark drains many backlog tasks; a cassette would need a recording per
task. This server answers by role instead, the same way for every task, after a fixed
``latency_s`` (the stand-in for a real model's time):

* the designer (system prompt "You are the designer"): a build packet whose one file
  is ``docs/notes/<task>.md``;
* the builder (a request with tools): first a ``write_file`` of that note, then, once a
  tool result is in the conversation, a short summary and no tool call;
* a reviewer ("You are a reviewer"): ``approve``.

Every answer reports usage. It is a benchmark fixture, not a model: it only exists so
agent time can be held fixed while LifeOS's workers are measured.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TASK = re.compile(r"Task ([A-Za-z0-9._-]+):")
_NOTE = re.compile(r"docs/notes/[A-Za-z0-9._-]+\.md")


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or []
    system = str(messages[0].get("content") or "") if messages else ""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if system.startswith("You are the designer"):
        found = _TASK.search(text)
        task = found.group(1) if found else "task"
        packet = {
            "goal": f"Write the note of {task}",
            "files": [f"docs/notes/{task}.md"],
            "acceptance": [],
            "notes": "one new Markdown file",
        }
        message["content"] = json.dumps(packet)
    elif body.get("tools"):
        if any(m.get("role") == "tool" for m in messages):
            message["content"] = "Wrote the note."
        else:
            found = _NOTE.search(text)
            path = found.group(0) if found else "docs/notes/task.md"
            arguments = json.dumps({"path": path, "content": f"# {path}\n\nDone.\n"})
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "write_file", "arguments": arguments},
                }
            ]
            finish = "tool_calls"
    else:
        verdict = {
            "verdict": "approve",
            "issues": [],
            "risks": [],
            "required_changes": [],
            "questions": [],
        }
        message["content"] = json.dumps(verdict)
    return {
        "id": "scripted",
        "object": "chat.completion",
        "created": 0,
        "model": str(body.get("model") or "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


class ScriptedModel:
    """The server on 127.0.0.1, on a background thread; counts the calls it answers."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.calls = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(owner.latency_s)
                data = json.dumps(_answer(json.loads(raw))).encode()
                with owner._lock:
                    owner.calls += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
