"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, and checkpoint bodies.

A signed note is a text ending in a newline, a blank line, then one or more signature
lines ``— <key name> base64(key id || signature)`` (em dash U+2014). The key id is the
first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || 32-byte public key).
Keys travel as text, as in golang.org/x/mod/sumdb/note::

    verifier key  <name>+<8 hex key id>+base64(0x01 || public key)
    signer key    PRIVATE+KEY+<name>+<8 hex key id>+base64(0x01 || private key seed)

Opening a note fails closed with :class:`NoteError` (reason ``SIGNATURE_INVALID``): a
malformed note, a signature from a known key that does not verify, an ambiguous key, or
no verified signature from any known key. Signatures from unknown keys are kept apart,
unverified, and do not count.

A checkpoint body (https://c2sp.org/tlog-checkpoint) is the note text
``<origin>\\n<tree size>\\n<base64 root>\\n``; :func:`parse_checkpoint` refuses any other
form with :class:`ParseError` (reason ``LEDGER_TAMPERED``).

``cryptography`` is imported inside the functions that need it, so importing this module
stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from lifeos.errors import EXIT_BLOCKED, LifeOSError, ReasonCode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteError",
    "ParseError",
    "Signature",
    "Signer",
    "Verifier",
    "format_checkpoint",
    "generate_key",
    "open_note",
    "parse_checkpoint",
    "sign",
]

MAX_SIGNATURES = 100
"""Most signature lines a note may carry; more make the note malformed."""

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in the key id and the key encodings."""

_SIG_PREFIX = "\u2014 "
_HEX8 = re.compile(r"[0-9a-f]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = 2**64 - 1
_ROOT_SIZE = 32


class NoteError(LifeOSError):
    """A signed note or a note key that fails to parse or verify."""

    default_reason = ReasonCode.SIGNATURE_INVALID
    exit_code = EXIT_BLOCKED


class ParseError(LifeOSError):
    """A checkpoint body that is not in the strict tlog-checkpoint form."""

    default_reason = ReasonCode.LEDGER_TAMPERED
    exit_code = EXIT_BLOCKED


def _key_id(name: str, encoded_public_key: bytes) -> int:
    """Return the key id: SHA-256(name || "\\n" || 0x01 || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + encoded_public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _has_control(text: str) -> bool:
    """Report whether ``text`` holds an ASCII control character other than newline."""
    return any(ch < " " and ch != "\n" for ch in text)


def _is_valid_name(name: str) -> bool:
    """A key name: non-empty UTF-8 without Unicode spaces, '+' or control characters."""
    if not name or "+" in name or _has_control(name):
        return False
    if any(ch.isspace() for ch in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64decode(text: str) -> bytes | None:
    """Decode canonical standard base64; return None for anything else."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None  # non-canonical padding bits or padding
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Verifier:
    """An Ed25519 verifier key with its name and key id."""

    __slots__ = ("_public_key", "key_id", "name")

    def __init__(self, name: str, public_key: bytes) -> None:
        """Make a verifier from a key name and a raw 32-byte Ed25519 public key.

        Raises:
            NoteError: the name is not a valid key name or the key is not 32 bytes.
        """
        if not _is_valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self._public_key = bytes(public_key)
        self.key_id = _key_id(name, bytes([ALG_ED25519]) + self._public_key)

    @classmethod
    def from_text(cls, vkey: str) -> Verifier:
        """Parse a verifier key ``name+hex8+base64(0x01 || public key)``.

        Raises:
            NoteError: a malformed key, a key id that does not match, or an algorithm
                other than Ed25519.
        """
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("malformed verifier key")
        name, hex_id, key64 = parts
        key = _b64decode(key64)
        if not _HEX8.fullmatch(hex_id) or key is None or not key or not _is_valid_name(name):
            raise NoteError("malformed verifier key")
        if int(hex_id, 16) != _key_id(name, key):
            raise NoteError("verifier key id does not match the key")
        if key[0] != ALG_ED25519:
            raise NoteError("unknown verifier key algorithm")
        if len(key) != 33:
            raise NoteError("malformed verifier key")
        return cls(name, key[1:])

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def key_text(self) -> str:
        """The verifier key as text: ``name+hex8+base64(0x01 || public key)``."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self._public_key)
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether ``signature`` is this key's Ed25519 signature of ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self._public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.key_text!r})"


class Signer:
    """An Ed25519 signing key with its name and key id."""

    __slots__ = ("_private_key", "key_id", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Make a signer from a key name and an Ed25519 private key.

        Raises:
            NoteError: the name is not a valid key name.
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not _is_valid_name(name):
            raise NoteError(f"invalid key name {name!r}")
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("a signer needs an Ed25519 private key")
        self.name = name
        self._private_key = private_key
        self.key_id = _key_id(name, bytes([ALG_ED25519]) + self._public_bytes())

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Make a signer with a fresh random Ed25519 key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, skey: str) -> Signer:
        """Parse a signer key ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)``.

        Raises:
            NoteError: a malformed key, an algorithm other than Ed25519, or a key id
                that does not match the public key derived from the seed.
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("malformed signer key")
        _, _, name, hex_id, key64 = parts
        key = _b64decode(key64)
        if not _HEX8.fullmatch(hex_id) or key is None or not key or not _is_valid_name(name):
            raise NoteError("malformed signer key")
        if key[0] != ALG_ED25519:
            raise NoteError("unknown signer key algorithm")
        if len(key) != 33:
            raise NoteError("malformed signer key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key[1:]))
        if signer.key_id != int(hex_id, 16):
            raise NoteError("signer key id does not match the key")
        return signer

    def _public_bytes(self) -> bytes:
        return self._private_key.public_key().public_bytes_raw()

    def private_key_text(self) -> str:
        """Return the signer key as text; it holds the private key, keep it secret."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self._private_key.private_bytes_raw())
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def verifier(self) -> Verifier:
        """Return the verifier for this signer's public key."""
        return Verifier(self.name, self._public_bytes())

    def sign_bytes(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


def generate_key(name: str) -> tuple[str, str]:
    """Generate an Ed25519 key pair for ``name``.

    Returns:
        ``(signer_key_text, verifier_key_text)``; the first one is secret.

    Raises:
        NoteError: ``name`` is not a valid key name.
    """
    signer = Signer.generate(name)
    return signer.private_key_text(), signer.verifier().key_text


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note."""

    name: str
    """Key name on the signature line."""
    key_id: int
    """Key id: the first 4 bytes of the decoded signature, big-endian."""
    base64: str
    """The base64 text of key id and signature, as on the line."""


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text and its signatures."""

    text: str
    """The signed text, ending in a newline."""
    sigs: tuple[Signature, ...]
    """Signatures from known keys, each verified (at least one)."""
    unverified_sigs: tuple[Signature, ...] = ()
    """Signatures from unknown keys, not verified and not to be trusted."""


def _check_text(text: str) -> None:
    """Refuse a note text that no note can carry."""
    if not text.endswith("\n"):
        raise NoteError("malformed note: text must end in a newline")
    if _has_control(text):
        raise NoteError("malformed note: control character in text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("malformed note: text is not valid UTF-8") from None


def sign(text: str, signers: Signer | Iterable[Signer]) -> str:
    """Sign ``text`` and return the note: text, blank line, one line per signer.

    Args:
        text: the note text; must end in a newline and hold no control characters
            other than newline.
        signers: one signer or several (at most 100, each key once), in line order.

    Raises:
        NoteError: a text no note can carry, no signer, too many or repeated signers.
    """
    _check_text(text)
    group = [signers] if isinstance(signers, Signer) else list(signers)
    if not group:
        raise NoteError("a note needs at least one signer")
    if len(group) > MAX_SIGNATURES:
        raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures")
    if len({(s.name, s.key_id) for s in group}) != len(group):
        raise NoteError("the same key signs a note only once")
    message = text.encode("utf-8")
    lines = []
    for signer in group:
        raw = signer.key_id.to_bytes(4, "big") + signer.sign_bytes(message)
        lines.append(f"{_SIG_PREFIX}{signer.name} {_b64encode(raw)}\n")
    return text + "\n" + "".join(lines)


def _index_verifiers(
    verifiers: Verifier | Iterable[Verifier],
) -> dict[tuple[str, int], list[Verifier]]:
    group = [verifiers] if isinstance(verifiers, Verifier) else list(verifiers)
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in group:
        known.setdefault((v.name, v.key_id), []).append(v)
    return known


def open_note(note: str | bytes, verifiers: Verifier | Iterable[Verifier]) -> Note:
    """Parse ``note`` and verify its signatures against the known ``verifiers``.

    Every signature whose name and key id match a known key is verified; signatures
    from unknown keys are returned unverified and ignored. Repeated lines are listed
    once.

    Args:
        note: the note text (bytes must be UTF-8).
        verifiers: the trusted keys.

    Returns:
        The text and the signatures, at least one of them verified.

    Raises:
        NoteError: the note is malformed (not UTF-8, a control character, no blank
            line before the signatures, a bad signature line, more than 100
            signatures), a known key's signature does not verify, two known keys
            share a name and key id, or no known key signed the note.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("malformed note: not valid UTF-8") from None
    if _has_control(note):
        raise NoteError("malformed note: control character")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: signatures must end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")

    known = _index_verifiers(verifiers)
    message = text.encode("utf-8")
    verified: dict[tuple[str, int], Signature] = {}
    unverified: dict[str, Signature] = {}
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed note: a signature line must start with an em dash")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(b64)
        if raw is None or not _is_valid_name(name) or len(raw) < 5:
            raise NoteError("malformed note: bad signature line")
        key_id = int.from_bytes(raw[:4], "big")
        sig = Signature(name=name, key_id=key_id, base64=b64)
        candidates = known.get((name, key_id))
        if candidates is None:
            unverified.setdefault(line, sig)
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {name}+{key_id:08x}")
        if not candidates[0].verify(message, raw[4:]):
            raise NoteError(f"invalid signature for key {name}+{key_id:08x}")
        verified.setdefault((name, key_id), sig)
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified.values())
        raise NoteError(f"note has no verifiable signatures (unknown keys: {names})")
    return Note(
        text=text, sigs=tuple(verified.values()), unverified_sigs=tuple(unverified.values())
    )


class Checkpoint(NamedTuple):
    """The three lines of a checkpoint body."""

    origin: str
    """The log's identity, e.g. ``lifeos/<root commit id>``."""
    size: int
    """The tree size."""
    root: bytes
    """The 32-byte Merkle root at that size."""


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """Return the checkpoint body ``origin\\nsize\\nbase64(root)\\n``.

    Raises:
        ValueError: an empty origin or one with a control character, a size that is
            not an integer in [0, 2**64), or a root that is not 32 bytes.
    """
    if not origin or _has_control(origin) or "\n" in origin:
        raise ValueError(f"invalid checkpoint origin {origin!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_TREE_SIZE:
        raise ValueError(f"invalid tree size {size!r}")
    if not isinstance(root, bytes) or len(root) != _ROOT_SIZE:
        raise ValueError(f"a checkpoint root is {_ROOT_SIZE} bytes")
    return f"{origin}\n{size}\n{_b64encode(root)}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body in the exact form :func:`format_checkpoint` writes.

    Extension lines are refused: LifeOS never writes them.

    Raises:
        ParseError: not three newline-terminated lines, an empty origin, a size with
            leading zeros, a sign or non-digits or beyond 2**64 - 1, or a root that is
            not canonical base64 of 32 bytes.
    """
    if not text.endswith("\n") or _has_control(text):
        raise ParseError("malformed checkpoint: must be newline-terminated lines")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise ParseError(f"malformed checkpoint: expected 3 lines, got {len(lines)}")
    origin, size_text, root_text = lines
    if not origin:
        raise ParseError("malformed checkpoint: empty origin")
    if not _TREE_SIZE.fullmatch(size_text) or int(size_text) > _MAX_TREE_SIZE:
        raise ParseError(f"malformed checkpoint: bad tree size {size_text!r}")
    root = _b64decode(root_text)
    if root is None or len(root) != _ROOT_SIZE:
        raise ParseError("malformed checkpoint: root is not base64 of 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root)
