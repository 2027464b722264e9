"""Writing files so a crash never leaves one half-written: temp file, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, chunks: Iterable[bytes] | bytes, *, shareable: bool = True) -> None:
    """Write ``chunks`` to ``path`` atomically.

    The data goes to a temporary file in the same folder, is fsynced, and is renamed
    over ``path``; on any failure the temporary file is removed and ``path`` is as it
    was. ``shareable`` files get the usual permissions (0666 less the umask) rather
    than the temporary file's 0600.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if shareable:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
