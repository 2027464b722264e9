"""The repository's Ed25519 key pair and the ledger's origin.

The private key lives in ``.lifeos/signing.key`` (mode 0600, never committed); the
public key is committed as ``lifeos.pub`` at the repository root. Verification
trusts ``lifeos.pub`` or a key file given explicitly — never a key found only in
``.lifeos/``, so data re-signed with a new key cannot pass.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lifeos.errors import LifeOSError, ReasonCode
from lifeos.ledger.note import NoteError, Signer, Verifier
from lifeos.repo import RepoContext

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "KeyFileError",
    "ensure_keypair",
    "ledger_origin",
    "load_signer",
    "load_verifier",
]

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "lifeos.pub"


class KeyFileError(LifeOSError):
    """A key that is missing, unreadable or does not match."""

    default_reason = ReasonCode.KEY_MISSING
    exit_code = 2


def ledger_origin(repo: RepoContext) -> str:
    """``lifeos/<root commit id>``: the log's identity (``lifeos/local`` before a commit)."""
    if repo.in_git and repo.head:
        proc = subprocess.run(
            ["git", "rev-list", "--max-parents=0", "HEAD"],
            cwd=repo.main_root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        roots = sorted(proc.stdout.split())
        if proc.returncode == 0 and roots:
            return f"lifeos/{roots[0]}"
    return "lifeos/local"


def _write_new(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.link(tmp, path)  # fails if someone else created the file meanwhile
    finally:
        os.unlink(tmp)


def ensure_keypair(repo: RepoContext) -> tuple[Signer, bool]:
    """Return the repository's signer, creating the key pair on first use.

    Returns:
        The signer and whether it was created now.

    Raises:
        KeyFileError: ``lifeos.pub`` exists but the private key is not here (a fresh
            clone), or the two do not match.
    """
    from lifeos.store import ensure_lifeos_dir

    private = ensure_lifeos_dir(repo.lifeos_dir) / PRIVATE_KEY_FILE
    public = repo.main_root / PUBLIC_KEY_FILE
    if private.exists():
        signer = load_signer(repo)
        if public.exists():
            trusted = load_verifier(repo)
            if trusted.key_text != signer.verifier().key_text:
                raise KeyFileError(f"{public} does not match the private key in {private}")
        else:
            _write_new(public, signer.verifier().key_text + "\n", 0o644)
        return signer, False
    if public.exists():
        raise KeyFileError(
            f"{public} exists but its private key is not in {private.parent}; only the "
            "key holder can sign this ledger"
        )
    signer = Signer.generate(ledger_origin(repo))
    _write_new(private, signer.private_key_text() + "\n", 0o600)
    _write_new(public, signer.verifier().key_text + "\n", 0o644)
    return signer, True


def load_signer(repo: RepoContext) -> Signer:
    """The private key from ``.lifeos/signing.key``."""
    path = repo.lifeos_dir / PRIVATE_KEY_FILE
    try:
        return Signer.from_text(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise KeyFileError(f"no signing key at {path}; run 'lifeos init'") from None
    except (OSError, NoteError, ValueError) as exc:
        raise KeyFileError(f"{path}: unreadable signing key: {exc}") from None


def load_verifier(repo: RepoContext, key_file: Path | None = None) -> Verifier:
    """The trusted public key: ``key_file`` or ``lifeos.pub`` at the repository root."""
    path = key_file if key_file is not None else repo.main_root / PUBLIC_KEY_FILE
    try:
        return Verifier.from_text(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise KeyFileError(f"no public key at {path}; run 'lifeos init' or pass --key") from None
    except (OSError, NoteError, ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a LifeOS public key: {exc}") from None
