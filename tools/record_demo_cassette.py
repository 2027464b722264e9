"""Record examples/demo/cassettes/demo.jsonl: the demo's agent answers.

The demo runs offline on recorded answers. This script makes them: it runs the demo
with a *scripted* model — a small deterministic stand-in for a real model that answers
each designer, builder and reviewer request the way the demo story needs — and records
every request and answer through the same cassette format the replay provider reads.
Run it again after changing the spine's prompts:

    .venv/bin/python tools/record_demo_cassette.py

With ``--builder opencode`` it records examples/demo/cassettes/opencode-builder.jsonl
instead: the answers OpenCode's model gives when OpenCode is the builder
(``lifeos demo --builder opencode``). The demo runs with a real ``opencode serve`` in
each run's worktree (``--opencode PATH``, or ``opencode`` on PATH), whose model is a
scripted stand-in served over HTTP on 127.0.0.1: it reads the files it is about to
replace, writes the same files as the native builder does with OpenCode's ``write``
tool (``filePath``, ``content``), then answers with a short summary. The designer and
the reviewers answer from demo.jsonl, unchanged — a request of theirs that differs from
the recorded ones fails the recording. Run it again after changing the spine's prompts
or upgrading OpenCode:

    .venv/bin/python tools/record_demo_cassette.py --builder opencode --opencode PATH
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from lifeos.agents.api import AgentCall, AgentResponse
from lifeos.agents.cassette import Cassette, Normaliser, Recording, key_material
from lifeos.agents.providers.openai_compat import chat_request, parse_chat_response
from lifeos.agents.replay_server import ReplayServer
from lifeos.canonical import canonical_text
from lifeos.demo import (
    OPENCODE_CASSETTE,
    OPENCODE_MODEL,
    OPENCODE_VERSION,
    demo_source,
    find_opencode,
    opencode_builder,
    opencode_normalisers,
    opencode_version,
    run_demo,
)

ORIGINAL = (demo_source() / "src/wordcount/__init__.py").read_text()

T1_CODE = ORIGINAL.replace(
    "    counts = Counter(words(text))",
    "    counts = Counter(w.lower() for w in words(text))",
)
T1_TEST = """from wordcount import top_words


def test_top_words_ignores_case() -> None:
    assert top_words("The the a", n=2) == [("the", 2), ("a", 1)]
"""
T3_FIRST = (
    ORIGINAL
    + '''

def longest_word(text: str) -> str:
    """The longest word in ``text`` (the first one on ties)."""
    return max(words(text), key=len)
'''
)
T3_FIXED = (
    ORIGINAL
    + '''

def longest_word(text: str) -> str:
    """The longest word in ``text`` (the first one on ties); "" when there is none."""
    found = words(text)
    return max(found, key=len) if found else ""
'''
)
T3_TEST = """from wordcount import longest_word


def test_longest_word_first_on_ties() -> None:
    assert longest_word("a bb cc") == "bb"
"""
T3_TEST_FIXED = (
    T3_TEST
    + """

def test_longest_word_of_nothing() -> None:
    assert longest_word("") == ""
"""
)
USAGE = """# Using wordcount

```python
from wordcount import top_words, words

words("a cat, a hat!")       # ['a', 'cat', 'a', 'hat']
top_words("b a b c a b", 2)  # [('b', 3), ('a', 2)]
```
"""

DESIGNS = {
    "T-1": {
        "goal": "Count words case-insensitively in top_words",
        "files": ["src/wordcount/__init__.py", "tests/test_case.py"],
        "acceptance": ["test"],
        "notes": "Lower-case each word before counting.",
    },
    "T-2": {
        "goal": "Add a release script",
        "files": ["scripts/release.sh"],
        "acceptance": [],
        "notes": "A shell script that tags the version.",
    },
    "T-3": {
        "goal": "Add longest_word(text)",
        "files": ["src/wordcount/__init__.py", "tests/test_longest.py"],
        "acceptance": ["test"],
        "notes": "Return the first longest word.",
    },
    "T-4": {
        "goal": "Document the wordcount module in docs/usage.md",
        "files": ["docs/usage.md"],
        "acceptance": [],
        "notes": "A short usage section with examples.",
    },
}

# task -> attempt -> builder turns: each a list of (tool, arguments), or the final text
BUILDS: dict[str, list[list[Any]]] = {
    "T-1": [
        [
            [
                ("write_file", {"path": "src/wordcount/__init__.py", "content": T1_CODE}),
                ("write_file", {"path": "tests/test_case.py", "content": T1_TEST}),
            ],
            [("run_command", {"name": "test"})],
            "top_words now lower-cases words before counting; added tests/test_case.py.",
        ]
    ],
    "T-2": [
        [
            [
                (
                    "write_file",
                    {
                        "path": "scripts/release.sh",
                        "content": "#!/bin/sh\ngit tag v$(cat VERSION)\n",
                    },
                )
            ],
            "Added scripts/release.sh.",
        ]
    ],
    "T-3": [
        [
            [
                ("write_file", {"path": "src/wordcount/__init__.py", "content": T3_FIRST}),
                ("write_file", {"path": "tests/test_longest.py", "content": T3_TEST}),
            ],
            [("run_command", {"name": "test"})],
            "Added longest_word and a test.",
        ],
        [
            [
                ("write_file", {"path": "src/wordcount/__init__.py", "content": T3_FIXED}),
                ("write_file", {"path": "tests/test_longest.py", "content": T3_TEST_FIXED}),
            ],
            [("run_command", {"name": "test"})],
            "longest_word('') now returns ''; added a test for it.",
        ],
    ],
    "T-4": [
        [
            [("write_file", {"path": "docs/usage.md", "content": USAGE})],
            "Added docs/usage.md.",
        ]
    ],
}

APPROVE = {"verdict": "approve", "issues": [], "risks": [], "required_changes": [], "questions": []}
REQUEST = {
    "verdict": "request_changes",
    "issues": ["longest_word('') raises ValueError (max of an empty sequence)."],
    "risks": ["Callers with empty input crash."],
    "required_changes": ["Return '' from longest_word for text without words, with a test."],
    "questions": [],
}


def _task_of(text: str) -> str:
    found = re.search(r'"task_id": "(T-\d+)"|Task (T-\d+):', text)
    assert found, text[:200]
    return found.group(1) or found.group(2)


class ScriptedModel:
    """Stands in for a real model while recording; answers by role, task and turn."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette
        self.reviews: dict[tuple[str, str], int] = {}
        self.count = 0

    def call(self, call: AgentCall) -> AgentResponse:
        request = chat_request(call, "demo-model")
        messages = request["messages"]
        system = str(messages[0]["content"])
        user = str(next(m["content"] for m in messages if m["role"] == "user"))
        task = _task_of(user)
        tool_calls: list[dict[str, Any]] = []
        content: str | None
        if "designer" in system:
            content = json.dumps(DESIGNS[task], sort_keys=True)
        elif "reviewer" in system:
            lens = re.search(r"through the (\w+) lens", system).group(1)  # type: ignore[union-attr]
            seen = self.reviews.get((task, lens), 0)
            self.reviews[(task, lens)] = seen + 1
            verdict = REQUEST if (task, lens, seen) == ("T-3", "testing", 0) else APPROVE
            content = json.dumps(verdict, sort_keys=True)
        else:
            attempt = 1 if '"required_changes": [\n    "' in user else 0
            turn = sum(1 for m in messages if m["role"] == "assistant")
            step = BUILDS[task][attempt][turn]
            if isinstance(step, str):
                content = step
            else:
                content = None
                for i, (name, args) in enumerate(step):
                    tool_calls.append(
                        {
                            "id": f"call_{task}_{attempt}_{turn}_{i}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    )
        self.count += 1
        prompt_tokens = len(json.dumps(messages)) // 4
        completion_tokens = max(1, len(json.dumps([content, tool_calls])) // 4)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        body = {
            "id": f"demo-{self.count}",
            "object": "chat.completion",
            "model": "demo-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self.cassette.record(request, body)
        return parse_chat_response(body, None)


# -- OpenCode as the builder -----------------------------------------------------------

OPENCODE_SYSTEM_TOKENS = 2500
"""About what OpenCode's system prompt weighs in tokens; the key leaves the prompt out,
so the stand-in's usage counts it as this constant (the same on every machine)."""


def _writes(turns: list[Any]) -> tuple[list[tuple[str, str]], str]:
    """The files a native build writes (path, content) and its final text."""
    writes = [
        (str(args["path"]), str(args["content"]))
        for turn in turns
        if isinstance(turn, list)
        for name, args in turn
        if name == "write_file"
    ]
    final = next(turn for turn in reversed(turns) if isinstance(turn, str))
    return writes, final


def opencode_builds() -> dict[str, list[list[Any]]]:
    """The OpenCode builder's turns per task and attempt, from the native ones: read
    every file it replaces (OpenCode refuses to overwrite a file it has not read), write
    the same files with ``write``, then the same summary."""
    source = demo_source()
    plans: dict[str, list[list[Any]]] = {}
    for task, attempts in BUILDS.items():
        written: set[str] = set()
        plans[task] = []
        for turns in attempts:
            writes, final = _writes(turns)
            reads = [
                ("read", {"filePath": path})
                for path, _ in writes
                if (source / path).is_file() or path in written
            ]
            plan: list[Any] = [reads] if reads else []
            plan.append([("write", {"filePath": path, "content": text}) for path, text in writes])
            plan.append(final)
            plans[task].append(plan)
            written.update(path for path, _ in writes)
    return plans


class ScriptedOpenCodeModel(ReplayServer):
    """Stands in for OpenCode's model while recording: answers OpenCode's chat
    completions by task, attempt and turn, and records each exchange."""

    def __init__(self, cassette: Cassette) -> None:
        super().__init__(cassette)
        self.plans = opencode_builds()
        self.count = 0
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def complete(self, body: dict[str, Any], authorization: str | None) -> dict[str, Any]:
        messages = body.get("messages") or []
        user = next(m for m in messages if m.get("role") == "user")
        content = user.get("content")
        text = (
            content
            if isinstance(content, str)
            else "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        )
        task = _task_of(text)
        attempt = 1 if '"required_changes": [\n    "' in text else 0
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        for earlier in messages:
            result = str(earlier.get("content"))
            if earlier.get("role") == "tool" and re.search(r"(?i)\berror\b|must read", result):
                self.problems.append(f"{task}: a tool failed: {result[:300]}")
        step = self.plans[task][attempt][turn]
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if isinstance(step, str):
            message["content"] = step
        else:
            message["tool_calls"] = [
                {
                    "id": f"call_{task}_{attempt}_{turn}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(step)
            ]
        material = key_material(body, self.cassette.normalisers)
        tools = json.dumps(body.get("tools") or [], sort_keys=True)
        prompt_tokens = OPENCODE_SYSTEM_TOKENS + (len(canonical_text(material)) + len(tools)) // 4
        completion_tokens = max(1, len(json.dumps(message, sort_keys=True)) // 4)
        with self._lock:
            self.count += 1
            number = self.count
        answer = {
            "id": f"opencode-demo-{number}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": OPENCODE_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self.cassette.add(slim_recording(self.cassette, body, answer))
        return answer


def slim_recording(cassette: Cassette, body: dict[str, Any], answer: dict[str, Any]) -> Recording:
    """The recording of ``answer`` to ``body``, keeping of the request what its key reads,
    normalised: the model, each message's role, content and tool calls, the tool names.
    OpenCode's system prompt (the worktree path, today's date) and its tool schemas stay
    out of the file; the key is the full request's."""
    rules = [(n.compiled(), n.replace) for n in cassette.normalisers]

    def norm(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        for pattern, replace in rules:
            text = pattern.sub(replace, text)
        return text

    messages = []
    for message in body.get("messages") or []:
        kept = {k: v for k, v in message.items() if k in ("role", "tool_call_id", "tool_calls")}
        content = message.get("content")
        kept["content"] = (
            [{**p, "text": norm(p.get("text"))} if isinstance(p, dict) else p for p in content]
            if isinstance(content, list)
            else norm(content)
        )
        messages.append(kept)
    tools = [
        {"type": "function", "function": {"name": t.get("function", {}).get("name")}}
        for t in body.get("tools") or []
    ]
    request = {"model": body.get("model"), "messages": messages, "tools": tools}
    key = cassette.key(body)
    assert cassette.key(request) == key, "the slim request must keep the key"
    return Recording(key, request, answer, dict(answer["usage"]))


def record_opencode(binary: str | None) -> int:
    """Record the OpenCode builder's cassette with a real ``opencode serve``."""
    found = find_opencode(binary)
    version = opencode_version(found)
    if version != OPENCODE_VERSION:
        print(f"note: this is OpenCode {version}; the demo pins {OPENCODE_VERSION}")
    cassette = Cassette(normalisers=opencode_normalisers())
    model = ScriptedOpenCodeModel(cassette)
    model.start()
    try:
        with tempfile.TemporaryDirectory(prefix="lifeos-record-") as tmp:
            report = run_demo(Path(tmp), builder=opencode_builder(found, model.url))
    finally:
        model.stop()
    for row in report.rows:
        print(row["task"], row["state"], row["reasons"])
    for problem in model.problems:
        print(problem, file=sys.stderr)
    if not report.ok or model.problems:
        print("the recorded run did not end as the demo expects", file=sys.stderr)
        return 1
    target = demo_source() / OPENCODE_CASSETTE
    cassette.dump(target)
    print(f"recorded {model.count} answers of OpenCode {version}'s model to {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builder", choices=("native", "opencode"), default="native")
    parser.add_argument("--opencode", default=None, help="the opencode executable")
    args = parser.parse_args(argv)
    if args.builder == "opencode":
        return record_opencode(args.opencode)
    return record_native()


def record_native() -> int:
    cassette = Cassette(
        normalisers=[
            Normaliser(r"in \d+\.\d+s", "in <SECONDS>s"),
            Normaliser(r"/tmp/[^\s\"']+", "<TMP>"),
        ]
    )
    model = ScriptedModel(cassette)
    with tempfile.TemporaryDirectory(prefix="lifeos-record-") as tmp:
        report = run_demo(Path(tmp), provider_for=lambda _role: model)
    for row in report.rows:
        print(row["task"], row["state"], row["reasons"])
    if not report.ok:
        print("the recorded run did not end as the demo expects", file=sys.stderr)
        return 1
    target = demo_source() / "cassettes" / "demo.jsonl"
    target.parent.mkdir(exist_ok=True)
    cassette.dump(target)
    print(f"recorded {model.count} answers to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
