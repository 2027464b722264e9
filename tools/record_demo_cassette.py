"""Record examples/demo/cassettes/demo.jsonl: the demo's agent answers.

The demo runs offline on recorded answers. This script makes them: it runs the demo
with a *scripted* model — a small deterministic stand-in for a real model that answers
each designer, builder and reviewer request the way the demo story needs — and records
every request and answer through the same cassette format the replay provider reads.
Run it again after changing the spine's prompts:

    .venv/bin/python tools/record_demo_cassette.py
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from lifeos.agents.api import AgentCall, AgentResponse
from lifeos.agents.cassette import Cassette, Normaliser
from lifeos.agents.providers.openai_compat import chat_request, parse_chat_response
from lifeos.demo import demo_source, run_demo

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


def main() -> int:
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
