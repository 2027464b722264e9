"""``lifeos llm serve-replay|record``: an offline OpenAI-compatible model, and its recorder."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from lifeos.errors import InputError

if TYPE_CHECKING:
    from lifeos.agents.replay_server import RecordingProxy, ReplayServer


@click.group()
def llm() -> None:
    """Serve recorded model answers, or record them from a real model."""


def _serve_until_interrupted(server: ReplayServer | RecordingProxy) -> None:
    """Start ``server``, print its URL, block until Ctrl-C or SIGTERM, then stop it."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            server.start()
        except OSError as exc:
            raise InputError(f"cannot listen: {exc.strerror or exc}") from None
        try:
            click.echo(server.url)
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
        finally:
            server.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)


@llm.command("serve-replay")
@click.option(
    "--cassette",
    "cassette_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The cassette (JSONL) to answer from.",
)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (0: any free).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def serve_replay_cmd(cassette_file: str, port: int, host: str) -> int:
    """Answer OpenAI-compatible chat completions from a cassette until interrupted.

    Prints the base URL (http://HOST:PORT/v1) and serves POST /v1/chat/completions,
    streamed or not; GET /_lifeos/calls reports what was served.
    """
    from lifeos.agents.cassette import Cassette
    from lifeos.agents.replay_server import ReplayServer

    cassette = Cassette.load(Path(cassette_file))
    _serve_until_interrupted(ReplayServer(cassette, host=host, port=port))
    return 0


@llm.command("record")
@click.option("--upstream", required=True, metavar="URL", help="The real model's base URL.")
@click.option(
    "--cassette",
    "cassette_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The cassette to write (recordings are added when it exists).",
)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (0: any free).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def record_cmd(upstream: str, cassette_file: str, port: int, host: str) -> int:
    """Proxy chat completions to --upstream and record every exchange in a cassette.

    Prints the base URL to point the client at. Headers (Authorization included) are
    passed on but never recorded; the cassette is written after every call.
    """
    from lifeos.agents.cassette import Cassette
    from lifeos.agents.replay_server import RecordingProxy

    if not upstream.startswith(("http://", "https://")):
        raise InputError(f"--upstream must be an http(s) URL, not {upstream!r}")
    path = Path(cassette_file)
    cassette = Cassette.load(path) if path.exists() else Cassette(source=str(path))
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such directory for the cassette")
    _serve_until_interrupted(RecordingProxy(upstream, cassette, path, host=host, port=port))
    return 0
