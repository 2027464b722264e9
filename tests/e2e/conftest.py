"""Shared end-to-end fixtures: the pinned OpenCode, installed from npm once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

OPENCODE_VERSION = "1.18.33"
"""The pinned ``opencode-ai`` release (the demo's OpenCode cassette was recorded with it)."""
OPENCODE_CACHE = Path.home() / ".cache" / "lifeos-test" / f"opencode-{OPENCODE_VERSION}"
INSTALL_TIMEOUT_S = 300


def _binary(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "opencode"


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    """The pinned ``opencode`` binary, installed with npm into the cache once (skipped,
    with the reason, when npm is missing or the install fails)."""
    binary = _binary(OPENCODE_CACHE)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH; cannot install opencode-ai")
    OPENCODE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = OPENCODE_CACHE.parent / f".{OPENCODE_CACHE.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    args = [npm, "install", "--prefix", str(staging), f"opencode-ai@{OPENCODE_VERSION}"]
    args += ["--no-audit", "--no-fund"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        reason = f"npm install opencode-ai@{OPENCODE_VERSION} timed out after {INSTALL_TIMEOUT_S}s"
        log.warning(reason)
        pytest.skip(reason)
    if proc.returncode != 0 or not _binary(staging).exists():
        shutil.rmtree(staging, ignore_errors=True)
        tail = (proc.stderr or proc.stdout)[-800:]
        reason = (
            f"npm install opencode-ai@{OPENCODE_VERSION} failed (exit {proc.returncode}): {tail}"
        )
        log.warning(reason)
        pytest.skip(reason)
    log.info("installed opencode-ai@%s in %.1fs", OPENCODE_VERSION, time.monotonic() - started)
    try:
        os.replace(staging, OPENCODE_CACHE)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    if not binary.exists():
        pytest.skip(f"the opencode binary is missing after the install: {binary}")
    return binary
