"""``lifeos llm call|serve-replay|record``: one model call, an offline model, its recorder."""

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
    """Call a configured model, serve recorded answers, or record them."""


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


@llm.command("call")
@click.option("--role", default=None, help="The configured role (default: 'default').")
@click.option("--prompt", required=True, help="The prompt to send.")
@click.option("--model", default=None, help="Override the role's model.")
@click.option("--max-tokens", default=None, type=click.IntRange(min=1), help="Output cap.")
@click.option("--json", "as_json", is_flag=True, help="Print the response and usage as JSON.")
def call_cmd(
    role: str | None, prompt: str, model: str | None, max_tokens: int | None, as_json: bool
) -> int:
    """Send one prompt to a configured role's model and print the answer and its usage."""
    import os

    from lifeos.agents.api import AgentCall
    from lifeos.agents.factory import build_provider, role_spec
    from lifeos.canonical import pretty_json
    from lifeos.cli._common import load_settings, repo

    where = repo()
    settings = load_settings(where.main_root, None)
    name, spec = role_spec(settings.data.get("models") or {}, role)
    provider = build_provider(name, spec, os.environ, where.root)
    response = provider.call(
        AgentCall(
            prompt=prompt,
            model=model or spec.get("model"),
            role=name,
            max_tokens=max_tokens or spec.get("max_tokens"),
            timeout_s=float(spec.get("timeout_s") or 120.0),
        )
    )
    if as_json:
        click.echo(pretty_json(response.to_dict()))
        return 0
    click.echo(response.content)
    u = response.usage
    if u.available:
        cost = f", ${u.cost_usd:.6f} ({u.cost_source})" if u.cost_usd is not None else ""
        click.echo(
            f"[{response.model or name}] {u.input_tokens} in, {u.output_tokens} out{cost}",
            err=True,
        )
    else:
        click.echo(f"[{response.model or name}] usage unavailable", err=True)
    return 0
