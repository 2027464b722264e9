"""C2SP signed notes with Ed25519: the golang/mod vectors, rejections, round trips, checkpoints."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.errors import EXIT_BLOCKED, LifeOSError, ReasonCode
from lifeos.ledger.merkle import leaf_hash, root
from lifeos.ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteError,
    ParseError,
    Signature,
    Signer,
    Verifier,
    format_checkpoint,
    generate_key,
    open_note,
    parse_checkpoint,
    sign,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "signed-note"
MISSING = "shared test vectors are absent (no ../shared/vectors next to the repository)"


@pytest.fixture(scope="module")
def vec() -> dict[str, Any]:
    path = VECTORS / "vectors.json"
    if not path.is_file():
        pytest.skip(MISSING)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def peter(vec: dict[str, Any]) -> Verifier:
    return Verifier.from_text(vec["verifier_keys"]["PeterNeumann"])


@pytest.fixture(scope="module")
def enoch(vec: dict[str, Any]) -> Verifier:
    return Verifier.from_text(vec["verifier_keys"]["EnochRoot"])


def _sig(line: str) -> Signature:
    """The Signature a vector signature line stands for."""
    name, b64 = line.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    return Signature(name=name, key_id=int.from_bytes(base64.b64decode(b64)[:4], "big"), base64=b64)


# --- keys ---------------------------------------------------------------------


def test_vector_verifier_keys_parse_and_round_trip(vec: dict[str, Any]) -> None:
    for name, vkey in vec["verifier_keys"].items():
        v = Verifier.from_text(vkey)
        assert v.name == name
        assert f"{v.key_id:08x}" == vkey.split("+")[1]
        assert v.key_text == vkey
        assert len(v.public_key) == 32
        # The key id is SHA-256(name || 0x0A || 0x01 || public key)[:4].
        digest = hashlib.sha256(name.encode() + b"\n\x01" + v.public_key).digest()
        assert v.key_id == int.from_bytes(digest[:4], "big")


def test_vector_signer_key_parses_and_matches_its_verifier(vec: dict[str, Any]) -> None:
    skey = vec["signer_keys"]["PeterNeumann"]
    assert "+" in skey.split("+", 4)[4], "the vector exercises a '+' inside the base64 part"
    signer = Signer.from_text(skey)
    assert signer.name == "PeterNeumann"
    assert signer.private_key_text() == skey
    assert signer.verifier().key_text == vec["verifier_keys"]["PeterNeumann"]
    assert "PRIVATE" not in repr(signer)


def test_must_reject_verifier_keys(vec: dict[str, Any]) -> None:
    assert vec["must_reject_verifier_keys"]
    for bad in vec["must_reject_verifier_keys"]:
        with pytest.raises(NoteError):
            Verifier.from_text(bad)


def _manglings(key: str) -> list[str]:
    """Every proper substring of ``key`` and every one-byte increment of it."""
    raw = key.encode("ascii")
    out = {raw[i:j].decode("ascii") for i in range(len(raw) + 1) for j in range(i, len(raw) + 1)}
    out.discard(key)
    for i in range(len(raw)):
        bumped = bytearray(raw)
        bumped[i] += 1
        out.add(bumped.decode("ascii"))
    return sorted(out)


def test_every_substring_and_increment_of_a_verifier_key_is_rejected(
    vec: dict[str, Any],
) -> None:
    vkey = vec["verifier_keys"]["PeterNeumann"]
    accepted = []
    for bad in _manglings(vkey):
        try:
            Verifier.from_text(bad)
        except NoteError:
            continue
        accepted.append(bad)
    assert accepted == []


def test_every_substring_and_increment_of_a_signer_key_is_rejected(vec: dict[str, Any]) -> None:
    skey = vec["signer_keys"]["PeterNeumann"]
    accepted = []
    for bad in _manglings(skey):
        try:
            Signer.from_text(bad)
        except NoteError:
            continue
        accepted.append(bad)
    assert accepted == []


def _vkey(name: str, payload: bytes, key_id: int | None = None) -> str:
    if key_id is None:
        key_id = int.from_bytes(hashlib.sha256(name.encode() + b"\n" + payload).digest()[:4], "big")
    return f"{name}+{key_id:08x}+{base64.b64encode(payload).decode()}"


def test_verifier_key_checks() -> None:
    seed = hashlib.sha256(b"a fixed test seed").digest()
    signer = Signer(name="k", private_key=Ed25519PrivateKey.from_private_bytes(seed))
    pub = signer.verifier().public_key
    good = _vkey("k", b"\x01" + pub)
    assert Verifier.from_text(good).public_key == pub
    name, hex_id, key64 = good.split("+", 2)
    assert any(c in "abcdef" for c in hex_id), "the fixed key id must have a hex letter"
    bad_keys = {
        "wrong algorithm byte": _vkey("k", b"\x02" + pub),
        "short key": _vkey("k", b"\x01" + pub[:31]),
        "long key": _vkey("k", b"\x01" + pub + b"\x00"),
        "key id mismatch": _vkey("k", b"\x01" + pub, key_id=0),
        "upper-case hex": f"{name}+{hex_id.upper()}+{key64}",
        "name with a space": _vkey("a b", b"\x01" + pub),
        "name with a tab": _vkey("a\tb", b"\x01" + pub),
        "name with a no-break space": _vkey("a\u00a0b", b"\x01" + pub),
        "empty name": _vkey("", b"\x01" + pub),
        "two fields": "k+01020304",
        "altered key byte": good[:-1] + ("B" if good[-1] != "B" else "C"),
        "bad base64": f"{name}+{hex_id}+{key64[:-1]}!",
    }
    for why, bad in bad_keys.items():
        with pytest.raises(NoteError):
            Verifier.from_text(bad)
        assert why
    with pytest.raises(NoteError, match="algorithm"):
        Verifier.from_text(bad_keys["wrong algorithm byte"])
    with pytest.raises(NoteError, match="does not match"):
        Verifier.from_text(bad_keys["key id mismatch"])
    with pytest.raises(NoteError):
        Verifier("k", pub[:31])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\nb", "tab\there", "\u2003em-space"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteError):
        generate_key(name)


def test_generate_key_round_trips() -> None:
    skey, vkey = generate_key("lifeos/0123abcd")
    signer, verifier = Signer.from_text(skey), Verifier.from_text(vkey)
    assert skey.startswith("PRIVATE+KEY+lifeos/0123abcd+")
    assert signer.key_id == verifier.key_id
    assert signer.verifier().key_text == vkey
    assert verifier.verify(b"hi", signer.sign_bytes(b"hi"))
    assert not verifier.verify(b"ho", signer.sign_bytes(b"hi"))
    assert not verifier.verify(b"hi", b"\x00" * 64)
    assert not verifier.verify(b"hi", b"short")


# --- the golang/mod note vectors ----------------------------------------------


def test_signing_reproduces_the_vector_note(vec: dict[str, Any]) -> None:
    signer = Signer.from_text(vec["signer_keys"]["PeterNeumann"])
    note = sign(vec["text"], signer)
    assert note == vec["signed_by_peter"]
    assert note == vec["text"] + "\n" + vec["signature_lines"]["PeterNeumann"]
    assert sign(vec["text"], [signer]) == note


def test_opening_the_vector_note(vec: dict[str, Any], peter: Verifier, enoch: Verifier) -> None:
    lines = vec["signature_lines"]
    both = vec["text"] + "\n" + lines["PeterNeumann"] + lines["EnochRoot"]
    p_sig, e_sig = _sig(lines["PeterNeumann"]), _sig(lines["EnochRoot"])

    n = open_note(vec["signed_by_peter"], [peter])
    assert n == Note(text=vec["text"], sigs=(p_sig,), unverified_sigs=())

    n = open_note(both, [peter])  # Enoch's key is unknown here: kept, not trusted
    assert n.text == vec["text"]
    assert n.sigs == (p_sig,)
    assert n.unverified_sigs == (e_sig,)

    n = open_note(both, [peter, enoch])
    assert n.sigs == (p_sig, e_sig)
    assert n.unverified_sigs == ()

    n = open_note(both.encode("utf-8"), peter)  # bytes and a single verifier work too
    assert n.sigs == (p_sig,)


def test_no_known_signature_is_rejected(vec: dict[str, Any], enoch: Verifier) -> None:
    lines = vec["signature_lines"]
    both = vec["text"] + "\n" + lines["PeterNeumann"] + lines["EnochRoot"]
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_note(both, [])
    with pytest.raises(NoteError, match="no verifiable signatures"):
        open_note(vec["signed_by_peter"], [enoch])  # signed, but by an unknown key


def test_bad_signature_from_a_known_key_is_rejected(vec: dict[str, Any], peter: Verifier) -> None:
    line = vec["signature_lines"]["PeterNeumann"]
    forged = vec["text"] + "\n" + line[:60] + "ABCD" + line[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3"):
        open_note(forged, [peter])
    # A valid signature does not excuse a bad one from the same key.
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(vec["signed_by_peter"] + line[:60] + "ABCD" + line[60:], [peter])
    tampered = vec["signed_by_peter"].replace("cryptography", "Cryptography")
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, [peter])


def test_ambiguous_verifiers(vec: dict[str, Any], peter: Verifier, enoch: Verifier) -> None:
    lines = vec["signature_lines"]
    with pytest.raises(NoteError, match="ambiguous key EnochRoot\\+af0cfe78"):
        open_note(vec["text"] + "\n" + lines["EnochRoot"], [enoch, peter, enoch])
    # A duplicated verifier that no signature uses does no harm.
    n = open_note(vec["text"] + "\n" + lines["PeterNeumann"], [enoch, peter, enoch])
    assert [s.name for s in n.sigs] == ["PeterNeumann"]


def test_repeated_signatures_are_listed_once(vec: dict[str, Any], peter: Verifier) -> None:
    p_line, e_line = vec["signature_lines"]["PeterNeumann"], vec["signature_lines"]["EnochRoot"]
    e_abcd = e_line[:60] + "ABCD" + e_line[60:]
    note = vec["text"] + "\n" + p_line + p_line + e_line + e_line + e_abcd
    n = open_note(note, [peter])
    assert n.sigs == (_sig(p_line),)
    assert n.unverified_sigs == (_sig(e_line), _sig(e_abcd))


def test_too_many_signatures(vec: dict[str, Any], peter: Verifier) -> None:
    line = vec["signature_lines"]["PeterNeumann"]
    assert len(open_note(vec["text"] + "\n" + line * MAX_SIGNATURES, [peter]).sigs) == 1
    for known in ([peter], []):
        with pytest.raises(NoteError, match="more than 100 signatures"):
            open_note(vec["text"] + "\n" + line * (MAX_SIGNATURES + 1), known)


def test_malformed_notes_are_rejected(vec: dict[str, Any], peter: Verifier) -> None:
    text, line = vec["text"], vec["signature_lines"]["PeterNeumann"]
    bad_notes: dict[str, str | bytes] = {
        "text only": text,
        "no signatures": text + "\n",
        "signature without final newline": text + "\n" + line[:-1],
        "control character": "\x01" + text + "\n" + line,
        "carriage return": text.replace("\n", "\r\n", 1) + "\n" + line,
        "tab": "\t" + text + "\n" + line,
        "NUL": text + "\n" + line.replace("PeterNeumann", "Peter\x00"),
        "invalid UTF-8": b"\xff" + (text + "\n" + line).encode("utf-8"),
        "lone surrogate": "\ud800" + text + "\n" + line,
        "bad key name": text + "\n" + line.replace("PeterNeumann", "Bad Name"),
        "unexpected line": text + "\n" + line + "Unexpected line.\n",
        "hyphen not em dash": text + "\n" + line.replace("\u2014", "-"),
        "no signature": text + "\n" + "\u2014 PeterNeumann\n",
        "signature too short": text + "\n" + "\u2014 PeterNeumann AAAAAA==\n",
        "bad base64": text + "\n" + line.replace("x08go", "x08g!"),
        "non-canonical base64": text + "\n" + line.replace("AM=\n", "AN=\n"),
        "empty note": "",
        "blank lines only": "\n\n",
    }
    for why, bad in bad_notes.items():
        with pytest.raises(NoteError, match="malformed note"):
            open_note(bad, [peter])
        assert why


def test_the_text_is_split_at_the_last_blank_line() -> None:
    signer = Signer.generate("k")
    text = "first paragraph\n\nsecond paragraph\n\n\n"
    n = open_note(sign(text, signer), [signer.verifier()])
    assert n.text == text


@pytest.mark.parametrize("text", ["", "abc", "no final newline\nx", "tab\there\n", "\x00\n"])
def test_sign_refuses_texts_no_note_can_carry(text: str) -> None:
    with pytest.raises(NoteError, match="malformed note"):
        sign(text, Signer.generate("k"))


def test_sign_refuses_no_repeated_or_too_many_signers() -> None:
    signer = Signer.generate("k")
    with pytest.raises(NoteError):
        sign("x\n", [])
    with pytest.raises(NoteError):
        sign("x\n", [signer, signer])
    with pytest.raises(NoteError):
        sign("x\n", [Signer.generate(f"k{i}") for i in range(MAX_SIGNATURES + 1)])


# --- round trips and re-signing -----------------------------------------------


def test_round_trip_with_generated_keys() -> None:
    a, b = Signer.generate("lifeos/aaaa"), Signer.generate("witness.example/b")
    text = "lifeos/aaaa\n3\n" + base64.b64encode(b"\x07" * 32).decode() + "\n"
    note = sign(text, [a, b])
    assert note.count("\n\u2014 ") == 2
    n = open_note(note, [a.verifier(), b.verifier()])
    assert n.text == text
    assert [s.name for s in n.sigs] == ["lifeos/aaaa", "witness.example/b"]
    assert open_note(note, [b.verifier()]).unverified_sigs[0].name == "lifeos/aaaa"


def test_a_note_re_signed_with_a_new_key_under_the_same_name_fails() -> None:
    skey, vkey = generate_key("lifeos/0123abcd")
    original = Verifier.from_text(vkey)
    text = "lifeos/0123abcd\n1\n" + base64.b64encode(b"\x01" * 32).decode() + "\n"
    assert open_note(sign(text, Signer.from_text(skey)), [original]).text == text

    tampered_text = text.replace("\n1\n", "\n2\n")
    impostor = Signer.generate("lifeos/0123abcd")
    assert impostor.name == original.name
    with pytest.raises(NoteError) as info:
        open_note(sign(tampered_text, impostor), [original])
    assert info.value.reason is ReasonCode.SIGNATURE_INVALID
    # Even if the impostor copies the real key id onto its line, the signature fails.
    forged = sign(tampered_text, impostor)
    head, _, b64 = forged.removesuffix("\n").rpartition(" ")
    raw = base64.b64decode(b64)
    faked = original.key_id.to_bytes(4, "big") + raw[4:]
    forged = f"{head} {base64.b64encode(faked).decode()}\n"
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(forged, [original])


_SIGNER = Signer.generate("prop.example/key")
TEXT_LINES = st.text(
    alphabet=st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(TEXT_LINES, min_size=1, max_size=5))
def test_any_carriable_text_round_trips(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    n = open_note(sign(text, _SIGNER), [_SIGNER.verifier()])
    assert n.text == text


def test_errors_are_lifeos_errors() -> None:
    with pytest.raises(LifeOSError) as info:
        open_note("x\n", [])
    assert isinstance(info.value, NoteError)
    assert info.value.reason is ReasonCode.SIGNATURE_INVALID
    assert info.value.exit_code == EXIT_BLOCKED
    with pytest.raises(LifeOSError) as parse_info:
        parse_checkpoint("x\n")
    assert isinstance(parse_info.value, ParseError)
    assert parse_info.value.reason is ReasonCode.LEDGER_TAMPERED


# --- checkpoint bodies --------------------------------------------------------


def test_checkpoint_round_trip_through_a_signed_note() -> None:
    hashes = [leaf_hash(b"entry %d" % i) for i in range(5)]
    body = format_checkpoint("lifeos/0123abcd", 5, root(hashes))
    assert body == f"lifeos/0123abcd\n5\n{base64.b64encode(root(hashes)).decode()}\n"
    signer = Signer.generate("lifeos/0123abcd")
    opened = open_note(sign(body, signer), [signer.verifier()])
    cp = parse_checkpoint(opened.text)
    assert cp == Checkpoint(origin="lifeos/0123abcd", size=5, root=root(hashes))
    origin, size, top = cp
    assert (origin, size, top) == ("lifeos/0123abcd", 5, root(hashes))
    assert parse_checkpoint(format_checkpoint("o", 0, root([]))).size == 0
    assert parse_checkpoint(format_checkpoint("o", 2**64 - 1, b"\x00" * 32)).size == 2**64 - 1


ROOT64 = base64.b64encode(bytes(range(32))).decode()
_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
# Same 32 bytes, but with a padding bit set in the last character.
NON_CANONICAL_ROOT64 = ROOT64[:42] + _ALPHABET[_ALPHABET.index(ROOT64[42]) | 1] + "="


@pytest.mark.parametrize(
    "body",
    [
        f"o\n01\n{ROOT64}\n",  # leading zero
        f"o\n00\n{ROOT64}\n",
        f"o\n-1\n{ROOT64}\n",
        f"o\n+1\n{ROOT64}\n",
        f"o\n 1\n{ROOT64}\n",
        f"o\n1 \n{ROOT64}\n",
        f"o\n1_0\n{ROOT64}\n",
        f"o\n\u0661\n{ROOT64}\n",  # ARABIC-INDIC DIGIT ONE
        f"o\n{2**64}\n{ROOT64}\n",
        f"o\n\n{ROOT64}\n",
        f"o\n1\n{ROOT64}",  # no final newline
        f"o\n1\n{ROOT64}\n\n",
        f"o\n1\n{ROOT64}\next\n",  # extension lines are refused
        f"\n1\n{ROOT64}\n",  # empty origin
        f"o\r\n1\n{ROOT64}\n",
        "o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",  # short root
        "o\n1\n" + base64.b64encode(bytes(33)).decode() + "\n",
        f"o\n1\n{ROOT64[:-2]}=\n",  # bad padding
        f"o\n1\n{NON_CANONICAL_ROOT64}\n",  # non-canonical trailing bits
        f"o\n1\n{ROOT64.replace('A', '-')}\n",  # URL-safe alphabet
        "o\n1\n\n",
        "o\n1\n",
        "",
    ],
)
def test_parse_checkpoint_is_strict(body: str) -> None:
    with pytest.raises(ParseError):
        parse_checkpoint(body)


@pytest.mark.parametrize(
    ("origin", "size", "top"),
    [
        ("", 1, bytes(32)),
        ("a\nb", 1, bytes(32)),
        ("a\x00", 1, bytes(32)),
        ("o", -1, bytes(32)),
        ("o", 2**64, bytes(32)),
        ("o", True, bytes(32)),
        ("o", 1, bytes(31)),
    ],
)
def test_format_checkpoint_refuses_bad_fields(origin: str, size: int, top: bytes) -> None:
    with pytest.raises(ValueError):
        format_checkpoint(origin, size, top)
