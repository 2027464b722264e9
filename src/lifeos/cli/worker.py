"""``lifeos worker``: run spine phases as Temporal activities (see lifeos.temporal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from lifeos.cli._common import config_option
from lifeos.temporal.contract import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE

if TYPE_CHECKING:
    from lifeos.spine import Spine
    from lifeos.store import Store


def temporal_options(fn: Callable[..., int]) -> Callable[..., int]:
    """``--temporal HOST:PORT`` (or $TEMPORAL_ADDRESS) and ``--task-queue Q``."""
    fn = click.option(
        "--task-queue",
        default=DEFAULT_TASK_QUEUE,
        show_default=True,
        help="The Temporal task queue of LifeOS runs.",
    )(fn)
    return click.option(
        "--temporal",
        "address",
        metavar="HOST:PORT",
        envvar="TEMPORAL_ADDRESS",
        default=DEFAULT_ADDRESS,
        show_default=True,
        help="The Temporal server's frontend (default from $TEMPORAL_ADDRESS).",
    )(fn)


def _alive(store: Store) -> bool:
    """Whether ``store`` still answers (one cheap read)."""
    from lifeos.errors import LifeOSError

    try:
        store.schema_version()
    except LifeOSError:
        return False
    return True


def engine_options(fn: Callable[..., int]) -> Callable[..., int]:
    """``--engine local|temporal``, the Temporal options and ``--no-wait``: who runs a
    run's phases, and whether the command waits for the run to stop."""
    fn = click.option(
        "--no-wait",
        is_flag=True,
        help="With --engine temporal: return once the run is submitted, without waiting.",
    )(fn)
    fn = temporal_options(fn)
    return click.option(
        "--engine",
        type=click.Choice(["local", "temporal"]),
        default="local",
        show_default=True,
        help="Who runs the phases: this process, or `lifeos worker`s through Temporal.",
    )(fn)


def on_temporal(body: Callable[[], int]) -> int:
    """Run the Temporal part of a command; the process then ends with its exit code
    without the interpreter's teardown (see ``exit_without_teardown``)."""
    from lifeos.errors import LifeOSError
    from lifeos.temporal.client import exit_without_teardown

    try:
        code = body()
    except LifeOSError as exc:
        exit_without_teardown(exc.exit_code)
        raise
    except KeyboardInterrupt:
        exit_without_teardown(130)
        raise
    except BaseException:
        exit_without_teardown(1)
        raise
    exit_without_teardown(code)
    return code


@click.command()
@temporal_options
@click.option(
    "--identity",
    default=None,
    metavar="NAME",
    help="This worker's name in Temporal and in its log lines (default: host:pid).",
)
@click.option(
    "--phases",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Phases (of different runs) this worker runs at the same time.",
)
@config_option
def worker(
    address: str, task_queue: str, identity: str | None, phases: int, config_path: str | None
) -> int:
    """Run spine phases as Temporal activities.

    Start it in the repository, as many as you like (on several machines, share the
    store through LIFEOS_STORE_URL); `lifeos spine run --engine temporal` submits runs
    to them. It runs until SIGINT or SIGTERM; log lines go to stderr.
    """
    import os
    import socket
    import threading

    from lifeos.cli._common import load_settings, open_repo_store, repo
    from lifeos.errors import InputError
    from lifeos.spine.setup import repo_spine
    from lifeos.temporal.activities import SpineActivities
    from lifeos.temporal.client import run_sync
    from lifeos.temporal.worker import serve

    where = repo()
    if not where.in_git:
        raise InputError(f"{where.root}: not inside a git repository")
    _, store = open_repo_store(where)  # a store that cannot be opened fails now
    store.close()
    load_settings(where.main_root, config_path)  # a broken lifeos.yaml is refused now
    name = identity or f"{socket.gethostname()}:{os.getpid()}"

    def say(line: str) -> None:
        click.echo(f"[worker {name}] {line}", err=True)

    kept = threading.local()

    @contextmanager
    def open_spine(progress: Callable[[str], None]) -> Iterator[Spine]:
        # Each phase thread keeps its store open for its next phase (a PostgreSQL
        # connection costs the server a new backend); one an error went through is
        # closed, and the next phase opens a fresh one. A kept store is asked one cheap
        # question first: a connection the server ended meanwhile (a restart, an idle
        # timeout) is replaced rather than failing the phase.
        store = getattr(kept, "store", None)
        kept.store = None
        if store is not None and not _alive(store):
            store.close()
            store = None
        if store is None:
            _, store = open_repo_store(where)
        try:
            settings = load_settings(where.main_root, config_path).data
            yield repo_spine(where, store, settings, env=os.environ, progress=progress)
        except BaseException:
            store.close()
            raise
        kept.store = store

    @contextmanager
    def open_store() -> Iterator[Store]:
        _, store = open_repo_store(where)
        try:
            yield store
        finally:
            store.close()

    activities = SpineActivities(open_spine, open_store=open_store, say=say)

    def work() -> int:
        run_sync(
            lambda: serve(address, task_queue, activities, identity=name, phases=phases, say=say)
        )
        return 0

    return on_temporal(work)
