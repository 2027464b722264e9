"""The transparency-dev/merkle proof vectors: happy paths verify, every mutation is refused.

The vectors live in ``/work/shared/vectors/transparency-dev-merkle`` (see its README);
each file is one probe with ``wantErr``. The tests skip when the folder is absent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from lifeos.errors import LifeOSError, ReasonCode
from lifeos.ledger.merkle import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "transparency-dev-merkle"
MISSING = "shared test vectors are absent (no ../shared/vectors next to the repository)"


def _files(kind: str) -> list[Any]:
    """Every vector file under ``kind`` (recursively), or one skipped placeholder."""
    folder = VECTORS / kind
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id=f"{kind}-absent")]
    files = sorted(folder.rglob("*.json"))
    return [pytest.param(f, id=f.relative_to(VECTORS).as_posix()) for f in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("path", _files("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(h) for h in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _files("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (
        v["size1"],
        v["size2"],
        [_b64(h) for h in v["proof"] or []],
        _b64(v["root1"]),
        _b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError) as info:
            verify_consistency(*args)
        assert isinstance(info.value, LifeOSError)
        assert info.value.reason is ReasonCode.LEDGER_TAMPERED
    else:
        verify_consistency(*args)


def test_vector_set_is_complete() -> None:
    """Guard against a partial copy: every folder the README names is there, both outcomes."""
    if not VECTORS.is_dir():
        pytest.skip(MISSING)
    for kind in ("inclusion", "consistency"):
        files = list((VECTORS / kind).rglob("*.json"))
        outcomes = {_load(f)["wantErr"] for f in files}
        assert outcomes == {True, False}, kind
        assert (VECTORS / kind / "additional").is_dir()
    assert (VECTORS / "inclusion" / "single-entry").is_dir()
    assert len(list(VECTORS.rglob("*.json"))) >= 190
