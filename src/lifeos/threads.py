"""Run one call on a thread while the caller goes on (for work that mostly waits on a
subprocess, such as git), without the start-up cost of an executor."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["in_background"]

T = TypeVar("T")


def in_background(fn: Callable[[], T], name: str = "lifeos-background") -> Callable[[], T]:
    """Start ``fn`` on a daemon thread; the returned call waits for its result.

    The result call returns ``fn``'s value, or re-raises its exception in the caller's
    thread; it may be called more than once.
    """
    box: list[tuple[bool, object]] = []

    def work() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread
            box.append((False, exc))

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = box[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]

    return result
