"""Drive `lifeos llm serve-replay` as a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lifeos.agents.cassette import Cassette

LIFEOS = str(Path(sys.executable).parent / "lifeos")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_cassette_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not a cassette\n", encoding="utf-8")
    proc = subprocess.run(
        [LIFEOS, "llm", "serve-replay", "--cassette", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lifeos: error:") and err.endswith("[INVALID_INPUT]"), err
    assert "bad.jsonl" in err and "Traceback" not in proc.stderr


def test_serve_replay_answers_then_stops(tmp_path: Path) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    response = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    cassette = Cassette()
    cassette.record(body, response)
    good = tmp_path / "good.jsonl"
    cassette.dump(good)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [LIFEOS, "llm", "serve-replay", "--cassette", str(good), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the server never became healthy"
                time.sleep(0.1)
            got = client.post(f"{base}/v1/chat/completions", json=body)
            assert got.status_code == 200 and got.json() == response
            calls = client.get(f"{base}/_lifeos/calls").json()
            assert calls["total"] == 1
        proc.terminate()
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, (out, err)
        assert out.strip() == f"{base}/v1"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
