"""X25519 key pairs and public-key validation."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from medrecord_sdk.crypto import LOW_ORDER_POINTS, KeyPair, validate_public_key
from medrecord_sdk.errors import InvalidKeyError

P = 2**255 - 19
A24 = 121665


def reference_x25519(scalar: bytes, u_bytes: bytes) -> bytes:
    """RFC 7748 section 5, written out in Python: an independent check of the blocklist."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(k, "little")
    u = int.from_bytes(u_bytes, "little") & ((1 << 255) - 1)
    x1, x2, z2, x3, z3, swap = u, 1, 0, u, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + A24 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def test_reference_x25519_matches_cryptography() -> None:
    alice, bob = X25519PrivateKey.generate(), KeyPair.generate()
    alice_raw = KeyPair(alice).private_bytes
    assert reference_x25519(alice_raw, bob.public_bytes) == alice.exchange(
        X25519PublicKey.from_public_bytes(bob.public_bytes)
    )


@pytest.mark.parametrize("point", sorted(LOW_ORDER_POINTS), ids=lambda p: p.hex()[:8])
def test_blocklist_entries_really_are_small_order(point: bytes) -> None:
    for _ in range(3):
        assert reference_x25519(os.urandom(32), point) == bytes(32)


def test_generate_gives_distinct_valid_pairs() -> None:
    pairs = [KeyPair.generate() for _ in range(16)]
    assert len({p.public_bytes for p in pairs}) == 16
    assert len({p.private_bytes for p in pairs}) == 16
    for pair in pairs:
        assert len(pair.public_bytes) == len(pair.private_bytes) == 32
        assert validate_public_key(pair.public_bytes) == pair.public_bytes


def test_from_private_bytes_round_trip() -> None:
    pair = KeyPair.generate()
    again = KeyPair.from_private_bytes(pair.private_bytes)
    assert again == pair
    assert again.public_bytes == pair.public_bytes
    assert KeyPair.generate() != pair


def test_public_key_is_the_x25519_base_point_multiple() -> None:
    pair = KeyPair.generate()
    base = (9).to_bytes(32, "little")
    assert reference_x25519(pair.private_bytes, base) == pair.public_bytes


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "a" * 32])
def test_from_private_bytes_checks_length(bad: object) -> None:
    with pytest.raises(InvalidKeyError):
        KeyPair.from_private_bytes(bad)  # type: ignore[arg-type]


def test_repr_never_shows_the_private_key() -> None:
    pair = KeyPair.generate()
    assert pair.private_bytes.hex() not in repr(pair)
    assert pair.public_bytes.hex() in repr(pair)


def test_validate_accepts_bytearray_and_returns_bytes() -> None:
    pair = KeyPair.generate()
    assert validate_public_key(bytearray(pair.public_bytes)) == pair.public_bytes  # type: ignore[arg-type]
