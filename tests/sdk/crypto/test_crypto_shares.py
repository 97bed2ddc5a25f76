"""Recovery shares: SLIP-39 splitting (shamir-mnemonic) and HPKE sealing to trustees."""

from __future__ import annotations

import itertools
import os
from collections import Counter

import pytest

from medrecord_sdk.crypto import KeyPair
from medrecord_sdk.crypto._shares import (
    ShareBinding,
    combine_shares,
    seal_share,
    share_indices,
    split_secret,
    unseal_share,
)
from medrecord_sdk.errors import EnvelopeFormatError, ShareError, WrongKeyError

REGISTRY = "0x" + "11" * 20
PATIENT = "0x" + "22" * 20


def binding(keypair: KeyPair, context: int = 1, patient: str = PATIENT) -> ShareBinding:
    return ShareBinding(31337, REGISTRY, patient, context, keypair.public_bytes)


@pytest.mark.parametrize(("k", "n"), [(2, 2), (2, 3), (3, 5)])
def test_every_k_subset_recovers(k: int, n: int) -> None:
    secret = os.urandom(32)
    shares = split_secret(secret, k, n)
    assert len(shares) == n
    assert sorted(share_indices(shares)) == list(range(n))
    for subset in itertools.combinations(shares, k):
        assert combine_shares(subset) == secret
    assert combine_shares(shares) == secret


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5)])
def test_fewer_than_k_shares_recover_nothing(k: int, n: int) -> None:
    shares = split_secret(os.urandom(32), k, n)
    for subset in itertools.combinations(shares, k - 1):
        with pytest.raises(ShareError, match="do not combine"):
            combine_shares(subset)
    # a share repeated does not count twice
    with pytest.raises(ShareError):
        combine_shares([shares[0]] * k)


def _share_bytes(mnemonic: str) -> bytes:
    from shamir_mnemonic import Share

    return Share.from_mnemonic(mnemonic).value


def test_k_minus_one_shares_carry_no_information() -> None:
    """The value of one share of a 2-of-3 split is uniform whatever the secret.

    Two opposite secrets (all zeros, all ones): the bytes of share #0 over many splits fall
    evenly into 16 buckets for both (chi-square, 15 degrees of freedom, p = 0.001 bound 37.7),
    and the two distributions cannot be told apart, while the secret's own bytes would be
    one bucket each. A scheme that leaked the secret into a lone share (e.g. share = secret
    XOR a constant) fails both checks.
    """
    rounds = 120
    histograms = []
    for secret in (bytes(32), b"\xff" * 32):
        counts: Counter[int] = Counter()
        for _ in range(rounds):
            value = _share_bytes(split_secret(secret, 2, 3)[0])
            counts.update(b >> 4 for b in value)
        histograms.append(counts)
    total = rounds * 32
    expected = total / 16
    for counts in histograms:
        chi2 = sum((counts[b] - expected) ** 2 / expected for b in range(16))
        assert chi2 < 37.7, counts
    # homogeneity of the two: the same test on the difference
    chi2_pair = sum(
        (histograms[0][b] - histograms[1][b]) ** 2 / (histograms[0][b] + histograms[1][b])
        for b in range(16)
    )
    assert chi2_pair < 37.7


def test_altered_share_is_refused() -> None:
    shares = split_secret(os.urandom(32), 2, 3)
    words = shares[1].split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(ShareError):
        combine_shares([shares[0], " ".join(words)])


def test_shares_of_different_splits_do_not_mix() -> None:
    a = split_secret(os.urandom(32), 2, 3)
    b = split_secret(os.urandom(32), 2, 3)
    with pytest.raises(ShareError):
        combine_shares([a[0], b[1]])


@pytest.mark.parametrize(("k", "n"), [(1, 3), (4, 3), (2, 17), (0, 0)])
def test_bad_threshold(k: int, n: int) -> None:
    with pytest.raises(ShareError, match="threshold"):
        split_secret(os.urandom(32), k, n)


def test_split_needs_a_32_byte_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        split_secret(b"short", 2, 3)


def test_seal_roundtrip_and_wrong_key() -> None:
    trustee, other = KeyPair.generate(), KeyPair.generate()
    share = split_secret(os.urandom(32), 2, 2)[0]
    sealed = seal_share(share, trustee.public_bytes, binding(trustee))
    assert sealed[0] == 0x11
    assert unseal_share(sealed, trustee, binding(trustee)) == share
    with pytest.raises(WrongKeyError):
        unseal_share(sealed, other, binding(other))


@pytest.mark.parametrize("change", ["context", "patient", "chain"])
def test_sealed_share_is_bound_to_its_context(change: str) -> None:
    trustee = KeyPair.generate()
    share = split_secret(os.urandom(32), 2, 2)[0]
    sealed = seal_share(share, trustee.public_bytes, binding(trustee))
    wrong = {
        "context": binding(trustee, context=2),
        "patient": binding(trustee, patient="0x" + "33" * 20),
        "chain": ShareBinding(1, REGISTRY, PATIENT, 1, trustee.public_bytes),
    }[change]
    with pytest.raises(WrongKeyError):
        unseal_share(sealed, trustee, wrong)


def test_tampered_sealed_share() -> None:
    trustee = KeyPair.generate()
    share = split_secret(os.urandom(32), 2, 2)[0]
    sealed = bytearray(seal_share(share, trustee.public_bytes, binding(trustee)))
    sealed[-1] ^= 1
    with pytest.raises(WrongKeyError):
        unseal_share(bytes(sealed), trustee, binding(trustee))
    with pytest.raises(EnvelopeFormatError):
        unseal_share(b"\x01" + bytes(sealed[1:]), trustee, binding(trustee))


def test_seal_binding_must_name_the_recipient() -> None:
    trustee, other = KeyPair.generate(), KeyPair.generate()
    with pytest.raises(ShareError):
        seal_share("x", trustee.public_bytes, binding(other))


def test_recovered_secret_is_the_patient_key_pair() -> None:
    patient = KeyPair.generate()
    shares = split_secret(patient.private_bytes, 2, 3)
    rebuilt = KeyPair.from_private_bytes(combine_shares(shares[1:]))
    assert rebuilt.public_bytes == patient.public_bytes
