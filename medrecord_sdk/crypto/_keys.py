"""X25519 key pairs for accounts, and validation of the public keys others publish.

Every account publishes a 32-byte X25519 public key in the ConsentRegistry
(``setEncryptionKey(bytes32)``); anyone wraps record keys to it. Those keys come from the chain,
i.e. from anyone, so :func:`validate_public_key` is applied to every key before it is used.

Threat model for public keys: an attacker publishes (or substitutes in transit) a malformed or
small-order point. A small-order point makes the Diffie-Hellman shared secret one of at most
eight values (all-zero after the clamping X25519 does), so a "wrapped" key would be readable by
anyone. Such keys are refused with :class:`~medrecord_sdk.errors.InvalidKeyError` by three
independent checks: an explicit blocklist of the known small-order encodings (compared with the
top bit masked, as X25519 ignores it), a test exchange whose all-zero result is refused, and a
canonical-encoding check (top bit clear, value below 2**255 - 19), which honest key generators
always satisfy and which removes encoding malleability.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from medrecord_sdk.crypto._encoding import check_key32
from medrecord_sdk.errors import InvalidKeyError

__all__ = ["LOW_ORDER_POINTS", "KeyPair", "validate_public_key"]

_P = 2**255 - 19

#: The u-coordinates of points of order 1, 2, 4 and 8 on Curve25519 and its twist, including
#: the non-canonical encodings of 0 and 1 (p and p + 1). Little-endian, as X25519 encodes them.
LOW_ORDER_POINTS: frozenset[bytes] = frozenset(
    {
        (0).to_bytes(32, "little"),
        (1).to_bytes(32, "little"),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        (_P - 1).to_bytes(32, "little"),
        _P.to_bytes(32, "little"),
        (_P + 1).to_bytes(32, "little"),
    }
)

# Any fixed scalar works for the probe exchange: clamping makes it a multiple of the cofactor 8,
# so the result is all-zero exactly when the point's order divides 8.
_PROBE = X25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"MedRecord X25519 small-order probe").digest()
)


def _mask_top_bit(raw: bytes) -> bytes:
    return raw[:31] + bytes([raw[31] & 0x7F])


def validate_public_key(public_key: bytes) -> bytes:
    """Return *public_key* as bytes if it is a usable X25519 public key, else raise.

    Raises :class:`~medrecord_sdk.errors.InvalidKeyError` for a wrong type or length, an
    all-zero key, a known small-order point (in any encoding), a non-canonical encoding, or any
    key for which a Diffie-Hellman exchange yields the all-zero secret.
    """
    raw = check_key32(public_key, "an X25519 public key")
    if not any(raw):
        raise InvalidKeyError(
            "the X25519 public key is all zero; the recipient must publish a real key"
        )
    if _mask_top_bit(raw) in LOW_ORDER_POINTS:
        raise InvalidKeyError(
            "the X25519 public key is a small-order point (anyone could read what is wrapped "
            "to it); refuse it and ask the recipient to publish a freshly generated key"
        )
    if raw[31] & 0x80 or int.from_bytes(raw, "little") >= _P:
        raise InvalidKeyError(
            "the X25519 public key is not canonically encoded (top bit set or >= 2**255 - 19); "
            "key generators never produce this, so the key was altered"
        )
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise InvalidKeyError(
            "the X25519 public key gives an all-zero shared secret (a small-order point); "
            "ask the recipient to publish a freshly generated key"
        ) from None
    return raw


class KeyPair:
    """An account's X25519 key pair.

    ``public_bytes`` (32 bytes) is what goes on-chain via ``setEncryptionKey(bytes32)``;
    ``private_bytes`` must stay with the account (see :func:`save_keystore`). A wallet-derived
    key (MetaMask uses the account's secp256k1 secret as the X25519 secret) can be loaded with
    :meth:`from_private_bytes`.
    """

    __slots__ = ("_private", "_public")

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> KeyPair:
        """A new key pair from the OS CSPRNG."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> KeyPair:
        """Rebuild a key pair from its 32-byte private key (any 32 bytes are valid; clamped)."""
        raw = check_key32(private_bytes, "an X25519 private key")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    @property
    def public_bytes(self) -> bytes:
        return self._public

    @property
    def private_bytes(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def private_key(self) -> X25519PrivateKey:
        """The underlying ``cryptography`` key object (for HPKE)."""
        return self._private

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyPair):
            return NotImplemented
        return hmac.compare_digest(self.private_bytes, other.private_bytes)

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        # Never print the private key, not even in tracebacks or logs.
        return f"KeyPair(public={self._public.hex()})"
