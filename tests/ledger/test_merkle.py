"""RFC 6962/9162 Merkle trees: the RFC test tree, generated proofs, and mutated proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifeos.errors import EXIT_BLOCKED, LifeOSError, ReasonCode
from lifeos.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 test tree (transparency-dev/merkle proof/verify_test.go, testonly/).
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
RFC_HASHES = [leaf_hash(d) for d in RFC_LEAVES]

# Known proofs over the test tree, same source: (index or size1, size, proof).
KNOWN_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
KNOWN_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 section 2.1.1 (recursive split at a power of two)."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def flip_bit(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    mutated = list(proof)
    component = bytearray(mutated[i])
    component[bit // 8] ^= 1 << (bit % 8)
    mutated[i] = bytes(component)
    return mutated


# --- hashing and roots --------------------------------------------------------


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == RFC_ROOTS[0]
    assert HASH_SIZE == 32


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_test_tree_roots(size: int) -> None:
    assert root(RFC_HASHES[:size]) == RFC_ROOTS[size]
    assert reference_root(RFC_HASHES[:size]) == RFC_ROOTS[size]


def test_root_matches_the_rfc_definition_for_many_sizes() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    for n in range(len(hashes) + 1):
        assert root(hashes[:n]) == reference_root(hashes[:n]), n


def test_root_accepts_any_sequence_and_does_not_mutate_it() -> None:
    hashes = tuple(RFC_HASHES)
    assert root(hashes) == RFC_ROOTS[8]
    assert hashes == tuple(RFC_HASHES)


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, bytearray(32)])
def test_root_refuses_leaf_hashes_that_are_not_32_bytes(bad: object) -> None:
    with pytest.raises(ValueError):
        root([RFC_HASHES[0], bad])  # type: ignore[list-item]


def test_root_of_a_large_tree_matches_the_recursive_definition() -> None:
    """The iterative root() agrees with RFC 6962's recursive MTH on a large, ragged tree
    (speed is measured by bench/bench_ledger.py, never asserted here)."""
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range((1 << 17) + 5)]

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi)).digest()

    assert root(hashes) == mth(0, len(hashes))


# --- proofs over the test tree ------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), KNOWN_INCLUSION)
def test_inclusion_proofs_match_the_known_ones(index: int, size: int, proof: list[str]) -> None:
    generated = inclusion_proof(RFC_HASHES[:size], index)
    assert generated == [bytes.fromhex(h) for h in proof]
    verify_inclusion(RFC_HASHES[index], index, size, generated, RFC_ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), KNOWN_CONSISTENCY)
def test_consistency_proofs_match_the_known_ones(size1: int, size2: int, proof: list[str]) -> None:
    generated = consistency_proof(RFC_HASHES, size1, size2)
    assert generated == [bytes.fromhex(h) for h in proof]
    verify_consistency(size1, size2, generated, RFC_ROOTS[size1], RFC_ROOTS[size2])


def test_every_inclusion_proof_up_to_eight_leaves_verifies() -> None:
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(RFC_HASHES[:size], index)
            verify_inclusion(RFC_HASHES[index], index, size, proof, RFC_ROOTS[size])
            for other in range(size):
                if other != index:
                    with pytest.raises(ProofError):
                        verify_inclusion(RFC_HASHES[index], other, size, proof, RFC_ROOTS[size])


def test_every_consistency_proof_up_to_eight_leaves_verifies() -> None:
    for size2 in range(9):
        for size1 in range(size2 + 1):
            proof = consistency_proof(RFC_HASHES, size1, size2)
            verify_consistency(size1, size2, proof, RFC_ROOTS[size1], RFC_ROOTS[size2])
            if 0 < size1 < size2:
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, proof, RFC_ROOTS[size2], RFC_ROOTS[size1])


# --- edge cases ---------------------------------------------------------------


def test_consistency_edge_cases() -> None:
    r1, r8 = RFC_ROOTS[1], RFC_ROOTS[8]
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 8, [], EMPTY_ROOT, r8)  # every tree extends the empty tree
    verify_consistency(1, 1, [], r1, r1)
    cases = [
        (0, 0, [], r1, r1, "the empty tree has one root"),
        (0, 8, [], r1, r8, "root1 is not the empty root"),
        (0, 8, [r1], EMPTY_ROOT, r8, "a proof from the empty tree is empty"),
        (1, 1, [r1], r1, r1, "equal sizes need an empty proof"),
        (1, 1, [], r1, r8, "equal sizes need equal roots"),
        (8, 1, [], r8, r1, "time travel"),
        (1, 8, [], r1, r8, "empty proof"),
        (1, 8, [b"x" * 31] * 3, r1, r8, "short proof components"),
        (-1, 8, [], r1, r8, "negative size"),
    ]
    for size1, size2, proof, root1, root2, why in cases:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, root2)
        assert why


def test_inclusion_edge_cases() -> None:
    h0, r1 = RFC_HASHES[0], RFC_ROOTS[1]
    verify_inclusion(h0, 0, 1, [], r1)
    for index, size, leaf, proof, expected in [
        (0, 0, h0, [], EMPTY_ROOT),  # nothing is in the empty tree
        (1, 1, h0, [], r1),  # index beyond the tree
        (-1, 1, h0, [], r1),
        (0, 1, h0[:31], [], r1[:31]),  # short hashes
        (0, 1, h0, [h0], r1),  # proof too long
        (0, 2, h0, [], RFC_ROOTS[2]),  # proof too short
        (0, 1, h0, [], RFC_ROOTS[2]),  # wrong root
    ]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof, expected)


def test_proof_error_is_a_lifeos_error_with_the_tamper_reason() -> None:
    with pytest.raises(LifeOSError) as info:
        verify_inclusion(RFC_HASHES[0], 0, 1, [], RFC_ROOTS[2])
    assert isinstance(info.value, ProofError)
    assert info.value.reason is ReasonCode.LEDGER_TAMPERED
    assert info.value.exit_code == EXIT_BLOCKED


def test_proof_generation_refuses_impossible_arguments() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(RFC_HASHES, 8)
    with pytest.raises(ValueError):
        inclusion_proof([], 0)
    with pytest.raises(ValueError):
        inclusion_proof(RFC_HASHES, -1)
    for size1, size2 in [(2, 1), (1, 9), (-1, 3)]:
        with pytest.raises(ValueError):
            consistency_proof(RFC_HASHES, size1, size2)


# --- properties over random trees -------------------------------------------


@st.composite
def trees(draw: st.DrawFn) -> list[bytes]:
    """1..200 distinct leaf hashes (distinct, so no two subtrees share a hash)."""
    size = draw(st.integers(min_value=1, max_value=200))
    salt = draw(st.binary(max_size=8))
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def mutations(proof: list[bytes], data: st.DataObject) -> list[tuple[str, list[bytes]]]:
    """A flipped bit, a dropped and an extra component, as (description, proof) pairs."""
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    where = data.draw(st.integers(0, len(proof)), label="insert at")
    out = [("extra component", [*proof[:where], extra, *proof[where:]])]
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="component")
        bit = data.draw(st.integers(0, 255), label="bit")
        out.append(("flipped bit", flip_bit(proof, i, bit)))
        j = data.draw(st.integers(0, len(proof) - 1), label="dropped")
        out.append(("dropped component", proof[:j] + proof[j + 1 :]))
    return out


@settings(max_examples=150, deadline=None)
@given(hashes=trees(), data=st.data())
def test_random_inclusion_proofs_verify_and_mutations_fail(
    hashes: list[bytes], data: st.DataObject
) -> None:
    size = len(hashes)
    top = root(hashes)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(hashes, index)
    verify_inclusion(hashes[index], index, size, proof, top)

    for why, bad in mutations(proof, data):
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, bad, top)
        assert why

    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], other, size, proof, top)  # wrong index
        with pytest.raises(ProofError):
            verify_inclusion(hashes[other], index, size, proof, top)  # wrong leaf

    # A wrong size, checked against the true root of that size: refused unless the
    # proof for that size happens to be the very same list of hashes.
    wrong = data.draw(st.integers(index + 1, 2 * size).filter(lambda n: n != size), label="size")
    bigger = hashes + [leaf_hash(b"extra" + i.to_bytes(4, "big")) for i in range(wrong - size)]
    wrong_root = root(bigger[:wrong])
    if proof == inclusion_proof(bigger[:wrong], index):
        verify_inclusion(hashes[index], index, wrong, proof, wrong_root)
    else:
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, wrong, proof, wrong_root)


@settings(max_examples=150, deadline=None)
@given(hashes=trees(), data=st.data())
def test_random_consistency_proofs_verify_and_mutations_fail(
    hashes: list[bytes], data: st.DataObject
) -> None:
    n = len(hashes)
    size2 = data.draw(st.integers(1, n), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = consistency_proof(hashes, size1, size2)
    root1, root2 = root(hashes[:size1]), root(hashes[:size2])
    verify_consistency(size1, size2, proof, root1, root2)

    if size1 == size2:
        assert proof == []
    for why, bad in mutations(proof, data):
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)
        assert why

    # Wrong sizes, checked against the true roots of those sizes: refused unless the
    # proof for those sizes is the very same list of hashes.
    w1 = data.draw(st.integers(1, n), label="wrong size1")
    w2 = data.draw(st.integers(w1, n), label="wrong size2")
    if (w1, w2) != (size1, size2):
        args = (w1, w2, proof, root(hashes[:w1]), root(hashes[:w2]))
        if proof == consistency_proof(hashes, w1, w2):
            verify_consistency(*args)
        else:
            with pytest.raises(ProofError):
                verify_consistency(*args)
    if size1 < size2:
        with pytest.raises(ProofError):
            verify_consistency(size2, size1, proof, root2, root1)  # swapped
