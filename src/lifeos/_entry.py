"""The ``lifeos`` console script.

Before anything else loads, ``lifeos gate check`` starts reading the working tree's
change with git on a thread (see :mod:`lifeos.policy.prefetch`), so that waiting and
loading overlap. When its arguments are plain options, the command then runs without
click and the command modules (see :mod:`lifeos.policy.command`): the same work, the
same output and errors, less to load. Every other command, and ``gate check`` with
anything else (help, an unknown option...), goes to :func:`lifeos.cli.run`.

``gate check`` also runs with the cyclic garbage collector off: it is a short-lived
process that makes no reference cycles worth collecting, while its imports and a
large change make tens of thousands of tuples, lists and dicts, every 700 of which
started a collection that found nothing (about 40 of them on a 10,000-file change,
7-11 ms in all). Memory is still freed by reference counting as before.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Console-script entry point."""
    if sys.argv[1:3] == ["gate", "check"]:
        import gc

        gc.disable()
        from lifeos.policy.prefetch import start

        start(sys.argv[3:])
        from lifeos.policy.command import plain_options, run_plain

        options = plain_options(sys.argv[3:])
        if options is not None:
            sys.exit(run_plain(options))
    from lifeos.cli import run as cli_run

    cli_run()
