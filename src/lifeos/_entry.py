"""The ``lifeos`` console script.

Before the command line interface loads (click and the command modules, tens of
milliseconds), ``lifeos gate check`` starts reading the working tree's change with git
on a thread (see :mod:`lifeos.policy.prefetch`), so that waiting and loading overlap.
Every other command goes straight to :func:`lifeos.cli.run`.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Console-script entry point."""
    if sys.argv[1:3] == ["gate", "check"]:
        from lifeos.policy.prefetch import start

        start(sys.argv[3:])
    from lifeos.cli import run as cli_run

    cli_run()
