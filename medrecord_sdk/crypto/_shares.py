"""Threshold shares of a patient's recovery secret, each sealed to one trustee (issue 18).

The recovery secret is the patient's X25519 private key itself: every record key was released
to the patient wrapped for that key, so whoever rebuilds it reads every record the patient could
read before the loss, with no second release per record (the design choice of docs/recovery.md).

Splitting is SLIP-39 through the reviewed ``shamir-mnemonic`` package (Trezor's reference
implementation): one group, member threshold *k* of *n*. Shamir is never written here. SLIP-39
first encrypts the secret with a public, passphrase-less Feistel cipher (a bijection), then splits
that over GF(256): any *k* - 1 shares are uniformly distributed whatever the secret, so they say
nothing about it (``tests/sdk/crypto/test_crypto_shares.py`` checks this). Each share carries a
RS1024 checksum, so an altered share is refused rather than silently combined.

A share travels sealed with HPKE (RFC 9180, the suite of :mod:`._wrap`) to one trustee's
published key; the ``info`` binds chain, contract, patient, the policy version (or request id)
and the recipient, so a share cannot be replayed into another patient's or another request's
context. Threat model: *k* colluding trustees rebuild the key (the on-chain delay and cancel are
what stands against that, see ``docs/SECURITY.md``); fewer learn nothing.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from medrecord_sdk.crypto._encoding import (
    address_to_bytes,
    check_chain_id,
    check_key32,
    normalise_address,
)
from medrecord_sdk.crypto._keys import KeyPair, validate_public_key
from medrecord_sdk.errors import EnvelopeFormatError, ShareError, WrongKeyError

__all__ = [
    "MAX_TRUSTEES",
    "SHARE_FORMAT",
    "ShareBinding",
    "combine_shares",
    "seal_bytes",
    "seal_share",
    "split_secret",
    "unseal_bytes",
    "unseal_share",
]

MAX_TRUSTEES = 16
"""SLIP-39 allows at most 16 members in a group."""

SHARE_FORMAT = 0x11
"""First byte of a sealed share (0x01/0x02 are the record-key wrap formats)."""

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_LABEL = b"MedRecord recovery share v1\x00"
_BINDING = struct.Struct(">Q20s20sQ32s")
# 2**0 PBKDF2 rounds (x 10,000): the passphrase is empty, the secret is 256 random bits, so
# key stretching protects nothing and would only slow every split and combine.
_ITERATION_EXPONENT = 0


@dataclass(frozen=True)
class ShareBinding:
    """The context a sealed share is bound to (HPKE ``info``).

    ``context`` is the policy version for a share deposited with the policy, or the request id
    for a share a trustee delivers to a recovery request (re-sealed to the new key).
    """

    chain_id: int
    registry: str
    patient: str
    context: int
    recipient_public_key: bytes

    def __post_init__(self) -> None:
        check_chain_id(self.chain_id)
        object.__setattr__(self, "registry", normalise_address(self.registry, "registry"))
        object.__setattr__(self, "patient", normalise_address(self.patient, "patient"))
        if not 0 <= self.context < 2**64:
            # A request id is patient << 96 | index; only its index part is bound (the patient is).
            object.__setattr__(self, "context", self.context & (2**64 - 1))
        object.__setattr__(
            self,
            "recipient_public_key",
            check_key32(self.recipient_public_key, "ShareBinding.recipient_public_key"),
        )

    def encode(self) -> bytes:
        return _LABEL + _BINDING.pack(
            self.chain_id,
            address_to_bytes(self.registry),
            address_to_bytes(self.patient),
            self.context,
            self.recipient_public_key,
        )


def split_secret(secret: bytes, threshold: int, count: int) -> list[str]:
    """Split a 32-byte secret into *count* SLIP-39 mnemonics, any *threshold* of which rebuild it.

    ``2 <= threshold <= count <= 16``: a threshold of 1 would hand each trustee the whole key
    (SLIP-39 then needs a group of one, which is no sharing at all).
    """
    check_key32(secret, "secret")
    if isinstance(threshold, bool) or isinstance(count, bool):
        raise ShareError("threshold and count are integers")
    if not 2 <= threshold <= count <= MAX_TRUSTEES:
        raise ShareError(
            f"need 2 <= threshold <= trustees <= {MAX_TRUSTEES}, got threshold {threshold} of "
            f"{count}: name more trustees or lower the threshold"
        )
    import shamir_mnemonic

    groups = shamir_mnemonic.generate_mnemonics(
        1, [(threshold, count)], bytes(secret), b"", True, _ITERATION_EXPONENT
    )
    return list(groups[0])


def combine_shares(mnemonics: Iterable[str]) -> bytes:
    """Rebuild the secret from at least the threshold's number of shares of one split.

    Raises :class:`~medrecord_sdk.errors.ShareError` for too few shares, shares of different
    splits, duplicates only, or an altered share (RS1024 checksum).
    """
    import shamir_mnemonic

    unique = list(dict.fromkeys(m.strip() for m in mnemonics))
    if not unique:
        raise ShareError("no recovery shares given: collect the trustees' approvals first")
    try:
        # SLIP-39 wants exactly the threshold's number of shares: more is a caller's surplus.
        threshold = shamir_mnemonic.Share.from_mnemonic(unique[0]).member_threshold
        secret: bytes = shamir_mnemonic.combine_mnemonics(unique[:threshold], b"")
    except shamir_mnemonic.MnemonicError as exc:
        raise ShareError(
            f"the recovery shares do not combine ({exc}): wait for more trustees to approve, "
            "or drop a share that belongs to another policy"
        ) from None
    if len(secret) != 32:
        raise ShareError("the recovery shares hold no 32-byte key")
    return secret


def seal_bytes(secret: bytes, recipient_public_key: bytes, binding: ShareBinding) -> bytes:
    """Seal a secret (a share, or the break-glass emergency key) to one recipient's X25519 key
    with HPKE, bound to *binding*; the result starts with :data:`SHARE_FORMAT`."""
    recipient = validate_public_key(recipient_public_key)
    if not hmac.compare_digest(recipient, binding.recipient_public_key):
        raise ShareError("the binding names another recipient than the key sealed to")
    sealed = _SUITE.encrypt(
        bytes(secret), X25519PublicKey.from_public_bytes(recipient), info=binding.encode()
    )
    return bytes([SHARE_FORMAT]) + sealed


def unseal_bytes(sealed: bytes, keypair: KeyPair, binding: ShareBinding) -> bytes:
    """Open :func:`seal_bytes` output with the recipient's key pair; WrongKeyError otherwise."""
    if not isinstance(sealed, bytes | bytearray) or len(sealed) < 2 or sealed[0] != SHARE_FORMAT:
        raise EnvelopeFormatError("not a sealed recovery share (format tag 0x11)")
    if not hmac.compare_digest(binding.recipient_public_key, keypair.public_bytes):
        raise WrongKeyError("this share is sealed to another key than this key pair")
    try:
        return _SUITE.decrypt(bytes(sealed[1:]), keypair.private_key, info=binding.encode())
    except (InvalidTag, ValueError):
        raise WrongKeyError(
            "the recovery share does not open with this key pair in this context: it was "
            "sealed to another trustee, patient, policy or request, or it was altered"
        ) from None


def seal_share(mnemonic: str, recipient_public_key: bytes, binding: ShareBinding) -> bytes:
    """Seal one SLIP-39 share to one recipient's X25519 key (HPKE, bound to *binding*)."""
    return seal_bytes(mnemonic.encode("ascii"), recipient_public_key, binding)


def unseal_share(sealed: bytes, keypair: KeyPair, binding: ShareBinding) -> str:
    """Open a sealed share with the recipient's key pair; raises WrongKeyError otherwise."""
    plain = unseal_bytes(sealed, keypair, binding)
    try:
        return plain.decode("ascii")
    except UnicodeDecodeError:
        raise ShareError("the sealed share does not hold a SLIP-39 mnemonic") from None


def share_indices(mnemonics: Sequence[str]) -> list[int]:
    """The member index of each share (for tests and diagnostics)."""
    import shamir_mnemonic

    return [int(shamir_mnemonic.Share.from_mnemonic(m).index) for m in mnemonics]
