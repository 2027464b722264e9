"""RFC 6962 / RFC 9162 Merkle tree hashes and proofs, with SHA-256.

The tree over leaf hashes ``D[0:n]`` is the one of RFC 9162 section 2.1.1::

    leaf_hash(entry) = SHA-256(0x00 || entry)
    node_hash(l, r)  = SHA-256(0x01 || l || r)
    MTH({})          = SHA-256("")
    MTH(D[n])        = node_hash(MTH(D[0:k]), MTH(D[k:n])), k the largest power of 2 < n

Proof generation follows RFC 9162 sections 2.1.3.1 and 2.1.4.1; verification follows
sections 2.1.3.2 and 2.1.4.2, in the form transparency-dev/merkle uses (``proof/verify.go``),
so the public test vectors of that project hold for this module. Every hash (leaf, root,
proof component) must be exactly 32 bytes; anything else is refused (one exception, from
those vectors: a consistency check between equal sizes only compares the two roots).

Verification raises :class:`ProofError` (reason ``LEDGER_TAMPERED``) for every way a proof
can fail; proof generation raises :class:`ValueError` for arguments no tree can satisfy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lifeos.errors import EXIT_BLOCKED, LifeOSError, ReasonCode

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(LifeOSError):
    """A Merkle inclusion or consistency proof that does not verify."""

    default_reason = ReasonCode.LEDGER_TAMPERED
    exit_code = EXIT_BLOCKED


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 hash of one leaf entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    """Refuse leaf hashes that are not 32-byte strings."""
    if not all(type(h) is bytes and len(h) == HASH_SIZE for h in leaf_hashes):
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")


def _root(level: list[bytes]) -> bytes:
    """Return the tree hash of already checked leaf hashes, level by level.

    Pairing neighbours on each level and carrying an odd last node up unchanged builds
    exactly the RFC 9162 tree (left subtrees are always perfect, of the largest power
    of two below the size).
    """
    if not level:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    prefix = _NODE_PREFIX
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        pairs = iter(level)  # zip(pairs, pairs) yields neighbours and drops an odd last one
        level = [sha256(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if carry is not None:
            level.append(carry)
    return level[0]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (MTH) over ``leaf_hashes``.

    Args:
        leaf_hashes: the leaf hashes in log order, each 32 bytes (see :func:`leaf_hash`).

    Returns:
        The 32-byte root; :data:`EMPTY_ROOT` for no leaves.

    Raises:
        ValueError: a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    return _root(list(leaf_hashes))


def _split(n: int) -> int:
    """Return the largest power of two strictly below ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path (RFC 9162 PATH) for leaf ``index`` in the whole tree.

    Args:
        leaf_hashes: every leaf hash of the tree, in order.
        index: the leaf to prove, ``0 <= index < len(leaf_hashes)``.

    Returns:
        The proof hashes, from the leaf's sibling up to the child of the root.

    Raises:
        ValueError: ``index`` is outside the tree or a leaf hash is not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    leaves = list(leaf_hashes)
    if not 0 <= index < len(leaves):
        raise ValueError(f"index {index} is outside a tree of size {len(leaves)}")
    top_down: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            top_down.append(_root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            top_down.append(_root(leaves[lo : lo + k]))
            lo, m = lo + k, m - k
    top_down.reverse()
    return top_down


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """Return the consistency proof (RFC 9162 PROOF) from tree size ``size1`` to ``size2``.

    Args:
        leaf_hashes: the leaf hashes of a tree of at least ``size2`` leaves.
        size1: the earlier tree size.
        size2: the later tree size, ``size1 <= size2 <= len(leaf_hashes)``.

    Returns:
        The proof hashes; empty when ``size1`` is 0 or equals ``size2``.

    Raises:
        ValueError: the sizes are out of order or beyond the tree, or a leaf hash is
            not 32 bytes.
    """
    _check_leaf_hashes(leaf_hashes)
    if not 0 <= size1 <= size2 <= len(leaf_hashes):
        raise ValueError(
            f"need 0 <= size1 <= size2 <= {len(leaf_hashes)}, got size1={size1} size2={size2}"
        )
    if size1 == 0 or size1 == size2:
        return []
    leaves = list(leaf_hashes[:size2])
    top_down: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            top_down.append(_root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            top_down.append(_root(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        top_down.append(_root(leaves[lo:hi]))
    top_down.reverse()
    return top_down


def _check_hash(value: object, what: str) -> bytes:
    """Return ``value`` if it is a 32-byte hash, else raise :class:`ProofError`."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")
    return value


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    """Return ``proof`` as a list after checking every component is a 32-byte hash."""
    return [_check_hash(h, f"proof component {i}") for i, h in enumerate(proof)]


def _check_size(value: object, what: str) -> int:
    """Return ``value`` if it is a non-negative int, else raise :class:`ProofError`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    """Split the inclusion proof length for ``index`` in ``size`` into (inner, border)."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Hash ``seed`` up through ``proof``, siblings left or right by the bits of ``index``."""
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like :func:`_chain_inner`, keeping only left siblings (the older subtree)."""
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    """Hash ``seed`` up the right border: every proof hash is a left sibling."""
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Args:
        leaf_hash: the 32-byte leaf hash.
        index: the leaf's position, ``0 <= index < size``.
        size: the tree size the proof is for.
        proof: the audit path, as :func:`inclusion_proof` returns it.
        root: the 32-byte root of the tree of ``size``.

    Raises:
        ProofError: the index is outside the tree, a hash is not 32 bytes, the proof
            has the wrong length, or the computed root differs from ``root``.
    """
    index = _check_size(index, "index")
    size = _check_size(size, "size")
    if index >= size:
        raise ProofError(f"index {index} is beyond tree size {size}")
    seed = _check_hash(leaf_hash, "leaf hash")
    expected = _check_hash(root, "root")
    path = _check_proof(proof)
    inner, border = _decomp_incl_proof(index, size)
    if len(path) != inner + border:
        raise ProofError(f"wrong inclusion proof size {len(path)}, want {inner + border}")
    calculated = _chain_inner(seed, path[:inner], index)
    calculated = _chain_border_right(calculated, path[inner:])
    if calculated != expected:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the one of ``size1``.

    Edge cases: ``size1 > size2`` is refused; ``size1 == size2`` needs an empty proof
    and equal roots (only compared, as transparency-dev/merkle does; for size 0 both
    must be :data:`EMPTY_ROOT`); ``size1 == 0`` needs an empty proof and ``root1`` equal to
    :data:`EMPTY_ROOT` (every tree extends the empty tree; ``root2`` cannot be checked
    further); otherwise the proof must be non-empty and yield both roots.

    Args:
        size1: the earlier tree size.
        size2: the later tree size.
        proof: the consistency proof, as :func:`consistency_proof` returns it.
        root1: the 32-byte root of the tree of ``size1``.
        root2: the 32-byte root of the tree of ``size2``.

    Raises:
        ProofError: any of the checks above fails.
    """
    size1 = _check_size(size1, "size1")
    size2 = _check_size(size2, "size2")
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is greater than size2 ({size2})")
    if size1 == size2:
        # As in transparency-dev/merkle, equal sizes only compare the roots (whose
        # length its vectors leave free), except that the empty tree has one root.
        if len(proof) != 0:
            raise ProofError("size1 equals size2, but the proof is not empty")
        if not isinstance(root1, bytes) or not isinstance(root2, bytes) or root1 != root2:
            raise ProofError("size1 equals size2, but the roots differ")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ProofError("root of the empty tree is not SHA-256 of the empty string")
        return
    first = _check_hash(root1, "root1")
    second = _check_hash(root2, "root2")
    path = _check_proof(proof)
    if size1 == 0:
        if path:
            raise ProofError("a proof from the empty tree must be empty")
        if first != EMPTY_ROOT:
            raise ProofError("root of the empty tree is not SHA-256 of the empty string")
        return
    if not path:
        raise ProofError("empty consistency proof")

    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    # The proof starts with the hash of the subtree of size 2^shift that ends at
    # size1, unless size1 is that power of two itself: then root1 is that hash.
    if size1 == 1 << shift:
        seed, rest = first, path
    else:
        seed, rest = path[0], path[1:]
    if len(rest) != inner + border:
        want = len(path) - len(rest) + inner + border
        raise ProofError(f"wrong consistency proof size {len(path)}, want {want}")

    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    hash1 = _chain_border_right(hash1, rest[inner:])
    if hash1 != first:
        raise ProofError("consistency proof does not lead to root1")
    hash2 = _chain_inner(seed, rest[:inner], mask)
    hash2 = _chain_border_right(hash2, rest[inner:])
    if hash2 != second:
        raise ProofError("consistency proof does not lead to root2")
